"""Generate a package from a spec held in memory, then use it the way an application would:
in a fresh interpreter, with warnings as errors, and under mypy --strict."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import unittest.mock
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from codegen.cli import main
from codegen.output import MANIFEST

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*argv: str) -> tuple[int, str]:
    """Run ``python -m codegen`` in this process; exit code and everything it printed."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = main(list(argv))
    return code, out.getvalue()


def run_main(
    main: Callable[[list[str]], int], argv: Sequence[str], env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """A command's ``main`` run in this process as a process would run it, with ``env`` added
    to the environment: its exit code (``SystemExit`` included) and what it printed. For the
    tests of what a command says; the tests of a command as a process start one."""
    out, err = io.StringIO(), io.StringIO()
    with (
        unittest.mock.patch.dict(os.environ, env or {}),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        try:
            code = main(list(argv))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    return subprocess.CompletedProcess(list(argv), code, out.getvalue(), err.getvalue())


def generate(doc: Any, root: Path, package: str = "pkg") -> tuple[int, str, Path]:
    """Write ``doc`` as a spec under ``root`` and generate the project ``root/package``
    (holding the package ``root/package/package``) from it; returns the package folder."""
    root.mkdir(parents=True, exist_ok=True)
    spec = root / f"{package}.spec.json"
    spec.write_text(json.dumps(doc), encoding="utf-8")
    out = root / package
    code, output = run_cli("generate", "--spec", str(spec), "--out", str(out), "--package", package)
    return code, output, out / package


def projects(root: Path) -> list[Path]:
    """The generated projects under ``root`` (each holds a package of the same name)."""
    return sorted(p for p in root.iterdir() if (p / MANIFEST).is_file())


def python(root: Path, code: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter that sees the packages under ``root``, with
    every warning an error (an import that warns fails here)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(p) for p in projects(root))}
    return subprocess.run(
        [sys.executable, "-W", "error", "-c", code],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def mypy(root: Path, *packages: str) -> subprocess.CompletedProcess[str]:
    """mypy --strict over generated packages, with the project's own mypy settings."""
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict",
         "--config-file", str(ROOT / "pyproject.toml"), *(f"{p}/{p}" for p in packages)],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )  # fmt: skip


# PEP 517 without isolation, as `pip wheel --no-build-isolation` does, minus pip's own start-up
# (1.6 s against 0.4 s here): the backend the project names builds the wheel into ``out``.
BUILD_WHEEL = """
import importlib, sys, tomllib
backend = tomllib.load(open("pyproject.toml", "rb"))["build-system"]["build-backend"]
print(importlib.import_module(backend).build_wheel(sys.argv[1]))
"""


def build_wheel(source: Path, out: Path) -> Path:
    """The wheel of the project in ``source``, built by its own build backend into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    build = subprocess.run(
        [sys.executable, "-c", BUILD_WHEEL, str(out)],
        cwd=source, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert build.returncode == 0, build.stdout + build.stderr
    return out / build.stdout.strip().splitlines()[-1]


# Imports a generated package, parses every example given to it, checks that each comes back
# as the model of its event type and that dumping it gives the example again.
ROUND_TRIP = """
import json, sys
import {package} as p
examples = json.loads({examples!r})
for body in examples:
    event = p.parse_event(json.dumps(body).encode())
    assert type(event) is p.EVENT_MODELS[body["event_type"]], type(event)
    again = event.model_dump(mode="json", by_alias=True, exclude_unset=True)
    assert again == body, (again, body)
    event = p.parse_event(body)
try:
    p.parse_event(b'{{"event_type": "never.heard_of_v9", "x": 1}}')
except p.UnknownEventType:
    pass
else:
    raise AssertionError("an unknown event type was not UnknownEventType")
missing_payload = [json.dumps({{"event_type": b["event_type"]}}).encode() for b in examples[:1]]
for bad in (*missing_payload, b"[1]", b"{{"):
    try:
        p.parse_event(bad)
    except p.InvalidPayload:
        pass
    else:
        raise AssertionError(f"{{bad!r}} was not InvalidPayload")
print("ok", len(examples))
"""


def round_trip(root: Path, package: str, examples: list[dict[str, Any]]) -> subprocess.CompletedProcess[str]:
    return python(root, ROUND_TRIP.format(package=package, examples=json.dumps(examples)))


def round_trip_each(root: Path, examples: dict[str, list[dict[str, Any]]]) -> dict[str, str | None]:
    """The round trip of each package's examples in one fresh interpreter, each on its own:
    package -> None when it passed, else its traceback."""
    codes = {package: ROUND_TRIP.format(package=package, examples=json.dumps(bodies))
             for package, bodies in examples.items()}  # fmt: skip
    runner = (
        "import json, traceback\n"
        f"results = {{}}\nfor package, code in {codes!r}.items():\n"
        "    try:\n        exec(code, {})\n        results[package] = None\n"
        "    except BaseException:\n        results[package] = traceback.format_exc()\n"
        "print(json.dumps(results))\n"
    )
    result = python(root, runner)
    if result.returncode != 0:
        return dict.fromkeys(examples, result.stderr[-3000:])
    results: dict[str, str | None] = json.loads(result.stdout.splitlines()[-1])
    return results
