"""An optional cache of the generator's two slow steps, by the digest of their input: the
models datamodel-code-generator writes, and each formatted file.

Off unless ``CODEGEN_CACHE`` names a folder. A run that repeats work a run did before (CI
regenerating an unchanged spec, the test suite's hundreds of generations) then reads the
result instead. Every key holds the versions and settings of the tools, so another version
never reads this one's output; a result is written whole under another name and renamed, so
a reader never sees half of one; a cache that cannot be read or written is only slower.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable
from pathlib import Path

CACHE_ENV = "CODEGEN_CACHE"


def cached(kind: str, key: str, compute: Callable[[], str]) -> str:
    """``compute()``, or what it returned before for the same ``kind`` and ``key``."""
    folder = os.environ.get(CACHE_ENV)
    if not folder:
        return compute()
    digest = hashlib.sha256(f"{kind}\0{key}".encode()).hexdigest()
    kept = Path(folder) / kind / digest[:2] / digest
    with contextlib.suppress(OSError, UnicodeDecodeError):
        return kept.read_text(encoding="utf-8")
    result = compute()
    with contextlib.suppress(OSError):
        kept.parent.mkdir(parents=True, exist_ok=True)
        partial = kept.with_name(f"{digest}.{os.getpid()}.tmp")
        partial.write_text(result, encoding="utf-8")
        os.replace(partial, kept)
    return result
