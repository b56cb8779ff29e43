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
    """The generated project (metadata, and the package in ``PACKAGE/``)."""
    return GOLDEN / case / "generated"


def refresh() -> int:
    from codegen.cli import main

    for case in cases():
        code = main(["generate", "--spec", str(spec_path(case)), "--out", str(expected_dir(case))])
        if code:
            return code
    return 0


if __name__ == "__main__":
    if sys.argv[1:] != ["--refresh"]:
        sys.exit(__doc__)
    sys.path.insert(0, str(GOLDEN.parent.parent))
    sys.exit(refresh())
