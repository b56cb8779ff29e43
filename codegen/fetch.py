"""``update-spec``: bring in a new spec only when it is plausibly a real, usable spec.

A truncated download or an HTML error page must never become the committed spec (and then
an empty package), so the bytes are checked as thoroughly as ``generate`` would check them
before the committed file is replaced, atomically.
"""

from __future__ import annotations

import json
import os
import tempfile
import tomllib
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from . import loader, parser
from .errors import SpecError, SpecProblem
from .ir import Envelope, Spec

MAX_SPEC_BYTES = loader.MAX_SPEC_BYTES
TIMEOUT_SECONDS = 60


def tool_config(pyproject: Path = Path("pyproject.toml")) -> dict[str, Any]:
    """The ``[tool.codegen]`` table of the project's pyproject.toml (empty when absent)."""
    try:
        config = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return {}
    table = config.get("tool", {}).get("codegen", {})
    return table if isinstance(table, dict) else {}


def has_tool_config(pyproject: Path) -> bool:
    """Whether ``pyproject`` exists and has a ``[tool.codegen]`` table."""
    try:
        config = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return False
    tool = config.get("tool")
    return isinstance(tool, dict) and isinstance(tool.get("codegen"), dict)


def configured_url(pyproject: Path = Path("pyproject.toml")) -> str | None:
    url = tool_config(pyproject).get("spec-url")
    return url if isinstance(url, str) else None


def download(url: str) -> bytes:
    request = urllib.request.Request(url, headers={"Accept": "application/json, */*;q=0.5"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
            declared = response.headers.get("Content-Length")
            raw: bytes = response.read(MAX_SPEC_BYTES + 1)
    except urllib.error.HTTPError as exc:
        raise SpecError(url, [SpecProblem(f"download failed: HTTP {exc.code} {exc.reason}")]) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise SpecError(url, [SpecProblem(f"download failed: {reason}")]) from None
    if len(raw) > MAX_SPEC_BYTES:
        raise SpecError(url, [SpecProblem(f"larger than {MAX_SPEC_BYTES} bytes: not a spec")])
    if declared and declared.isdigit() and int(declared) != len(raw):
        problem = SpecProblem(f"truncated download: {len(raw)} of {declared} bytes")
        raise SpecError(url, [problem])
    return raw


def validate(
    raw: bytes, source: str, *, constraints: bool = False, envelope: Envelope | None = None
) -> tuple[Any, Spec]:
    """The document and its intermediate model; raises SpecError for anything unusable."""
    document = loader.parse_bytes(raw, source)
    return document, parser.parse(document, source, constraints=constraints, envelope=envelope)


def write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, scratch = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(scratch, 0o644)
        os.replace(scratch, path)
    finally:
        if os.path.exists(scratch):
            os.unlink(scratch)


def spec_bytes(document: Any, raw: bytes, target: Path) -> bytes:
    """What to commit: the bytes as published when they are JSON, else the same document as
    JSON, so that a ``.json`` file always holds JSON."""
    if target.suffix == ".json" and not raw.lstrip().startswith((b"{", b"[")):
        return (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode()
    return raw
