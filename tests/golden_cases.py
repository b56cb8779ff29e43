"""The golden cases: each folder in tests/golden holds a small fixture spec named for what it
exercises, and beside it the exact package the generator must make from it.

``python tests/golden_cases.py --refresh`` (``make golden``) rewrites the expected packages
after an intended change; review the diff before committing it.
"""

from __future__ import annotations

import sys
from pathlib import Path

GOLDEN = Path(__file__).resolve().parent / "golden"
PACKAGE = "incident_webhooks"


def cases() -> list[str]:
    return sorted(p.name for p in GOLDEN.iterdir() if p.is_dir() and not p.name.startswith("."))


def spec_path(case: str) -> Path:
    (spec,) = sorted((GOLDEN / case).glob("spec.*"))
    return spec


def expected_dir(case: str) -> Path:
    """The generated project (metadata, and the package in ``PACKAGE/``) but the runtime."""
    return GOLDEN / case / "generated"


def runtime_paths() -> set[str]:
    """The package's runtime modules, as project paths: copied from codegen/runtime, the same
    for every spec, so the golden cases leave them out (a test pins them once)."""
    from codegen import runtime

    return {f"{PACKAGE}/{name}" for name in runtime.MODULES}


def spec_shaped(tree: dict[str, str]) -> dict[str, str]:
    """A generated project without its runtime modules (and the manifest that lists them)."""
    left_out = runtime_paths()
    return {name: text for name, text in tree.items() if name not in left_out}


def refresh() -> int:
    import shutil
    import tempfile

    from codegen import output
    from codegen.cli import main

    for case in cases():
        with tempfile.TemporaryDirectory() as scratch:
            out = Path(scratch) / "generated"
            code = main(["generate", "--spec", str(spec_path(case)), "--out", str(out)])
            if code:
                return code
            shutil.rmtree(expected_dir(case), ignore_errors=True)
            for name, text in spec_shaped(output.read_tree(out)).items():
                target = expected_dir(case) / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text, encoding="utf-8", newline="\n")
        print(f"wrote {expected_dir(case)} (without the runtime modules)")
    return 0


if __name__ == "__main__":
    if sys.argv[1:] != ["--refresh"]:
        sys.exit(__doc__)
    sys.path.insert(0, str(GOLDEN.parent.parent))
    sys.exit(refresh())
