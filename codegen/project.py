"""Turns a parsed spec into the package's files, and puts them on disk safely.

The whole tree is rendered in memory first; nothing on disk changes until every file has
been rendered and formatted, and then the old folder is swapped for the new one.
"""

from __future__ import annotations

import contextlib
import ctypes
import difflib
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import black
import isort

from .emit.models import event_class_names, render_models
from .emit.templates import header, render_package
from .errors import GenerationError
from .ir import Spec

_PR_SET_PDEATHSIG = 1  # linux/prctl.h
BLACK_MODE = black.mode.Mode(target_versions={black.mode.TargetVersion.PY311}, line_length=88)


def isort_config(package: str) -> isort.Config:
    # Every setting explicit: isort would otherwise read the configuration and the folders
    # of wherever it is run, and the same spec could give different bytes on two machines.
    return isort.Config(
        profile="black", known_first_party=[package], src_paths=(), directory="/", quiet=True
    )


def format_python(code: str, name: str, package: str) -> str:
    try:
        return black.format_str(isort.code(code, config=isort_config(package)), mode=BLACK_MODE)
    except black.parsing.InvalidInput as exc:  # a generator bug, never a spec problem
        raise GenerationError(f"generated {name} is not valid Python: {exc}") from exc


def format_files(files: Mapping[str, str], package: str) -> dict[str, str]:
    return {name: format_python(text, name, package) for name, text in files.items()}


def build(spec: Spec, package: str) -> dict[str, str]:
    """Every file of the package, relative path -> text, formatted."""
    try:
        models = render_models(spec, package, header(spec))
    except GenerationError:
        raise
    except Exception as exc:  # its errors share no base class; re-raised with context
        message = f"datamodel-code-generator could not model the schemas: {exc}"
        raise GenerationError(message) from exc
    # The other modules name the event classes as the models module does.
    templated = render_package(spec, package, event_class_names(models, spec))
    # Formatting is the slowest step; the templated modules are formatted in a forked
    # worker while the models are formatted here. Same bytes either way.
    with _formatter() as pool:
        pending = pool.submit(format_files, templated, package) if pool else None
        formatted = format_files({"models.py": models}, package)
        formatted |= pending.result() if pending else format_files(templated, package)
    formatted["py.typed"] = ""
    return dict(sorted(formatted.items()))


@contextlib.contextmanager
def _formatter() -> Iterator[ProcessPoolExecutor | None]:
    """A one-process pool, where the platform can fork (a fork starts with black already
    imported; a spawned process would spend longer importing it than it saves)."""
    if "fork" not in multiprocessing.get_all_start_methods():
        yield None
        return
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(
        max_workers=1, mp_context=context, initializer=_die_with, initargs=(os.getpid(),)
    ) as pool:
        yield pool


def _die_with(parent: int) -> None:
    """Runs first in the worker: if ``generate`` is killed, the worker goes too, instead of
    living on for minutes holding the caller's pipes open."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the line above took effect
        os._exit(1)


def read_tree(root: Path) -> dict[str, str]:
    if not root.is_dir():
        return {}
    return {
        path.relative_to(root).as_posix(): path.read_text(encoding="utf-8")
        for path in sorted(root.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }


def write_tree(files: Mapping[str, str], out: Path) -> bool:
    """Replace ``out`` with exactly ``files``. Returns False when it already held them.

    The new tree is written beside ``out`` and renamed into place, so an interrupted run
    leaves either the old package or the new one, never a mix.
    """
    if read_tree(out) == dict(files):
        return False
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.new-", dir=out.parent))
    try:
        for name, text in files.items():
            target = staging / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8", newline="\n")
        os.chmod(staging, 0o755)
        if out.exists():
            retired = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.rename(out, retired / out.name)
            os.rename(staging, out)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.rename(staging, out)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return True


def diff_trees(expected: Mapping[str, str], actual: Mapping[str, str], label: str) -> str:
    """A unified diff from what is on disk (``actual``) to what should be (``expected``)."""
    chunks: list[str] = []
    for name in sorted(set(expected) | set(actual)):
        old, new = actual.get(name), expected.get(name)
        if old == new:
            continue
        chunks.extend(
            difflib.unified_diff(
                (old or "").splitlines(keepends=True),
                (new or "").splitlines(keepends=True),
                fromfile=f"{label}/{name}" if old is not None else "/dev/null",
                tofile=f"{label}/{name} (generated)" if new is not None else "/dev/null",
            )
        )
    return "".join(chunks)
