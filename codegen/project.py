"""Turns a parsed spec into the package's files, and puts them on disk safely.

The whole tree is rendered in memory first; nothing on disk changes until every file has
been rendered and formatted, and then the old folder is swapped for the new one.
"""

from __future__ import annotations

import ast
import contextlib
import ctypes
import difflib
import errno
import glob
import hashlib
import importlib.metadata
import json
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

from .cache import cached
from .emit.models import event_class_names, render_models
from .emit.split import MODELS_PACKAGE, split_models
from .emit.templates import (
    header,
    render_models_init,
    render_package,
    render_project,
    runtime_modules,
)
from .errors import GenerationError
from .ir import Spec

_PR_SET_PDEATHSIG = 1  # linux/prctl.h
_AT_FDCWD = -100  # linux/fcntl.h
_RENAME_EXCHANGE = 2  # linux/fs.h
# The marker a generated project carries: which generator wrote it, and every file it wrote.
MANIFEST = ".codegen.json"
BLACK_MODE = black.mode.Mode(target_versions={black.mode.TargetVersion.PY311}, line_length=88)


def isort_config(package: str) -> isort.Config:
    # Every setting explicit: isort would otherwise read the configuration and the folders
    # of wherever it is run, and the same spec could give different bytes on two machines.
    return isort.Config(
        profile="black", known_first_party=[package], src_paths=(), directory="/", quiet=True
    )


# What decides a formatted file besides its text: the formatters' versions, and their
# settings (in this file).
_FORMATTER = (
    f"black {importlib.metadata.version('black')} isort {isort.__version__} "
    + hashlib.sha256(Path(__file__).read_bytes()).hexdigest()
)


# Forking the second formatter costs tens of milliseconds, and saves the time of the shorter
# of the two halves: it pays from about this many characters in each (34 webhooks give
# 60,000 of templated modules and 67,000 of models, 1 s of formatting each; a spec of a few
# webhooks has models of a few thousand, formatted in 30 ms).
PARALLEL_FORMAT_CHARS = 20_000


def format_python(code: str, name: str, package: str) -> str:
    return cached(
        "formatted",
        f"{_FORMATTER}\0{package}\0{code}",
        lambda: _format_python(code, name, package),
    )


def _format_python(code: str, name: str, package: str) -> str:
    try:
        return black.format_str(isort.code(code, config=isort_config(package)), mode=BLACK_MODE)
    except black.parsing.InvalidInput as exc:  # a generator bug, never a spec problem
        raise GenerationError(f"generated {name} is not valid Python: {exc}") from exc


def format_files(files: Mapping[str, str], package: str) -> dict[str, str]:
    return {name: format_python(text, name, package) for name, text in files.items()}


def build(spec: Spec, package: str) -> dict[str, str]:
    """Every file of the project (metadata and package), relative path -> text."""
    try:
        models = render_models(spec, package, header(spec))
    except GenerationError:
        raise
    except Exception as exc:  # its errors share no base class; re-raised with context
        message = f"datamodel-code-generator could not model the schemas: {exc}"
        raise GenerationError(message) from exc
    if "python-re" in models:
        # Refused patterns never get here (codegen.constraints); this keeps it so.
        raise GenerationError("the models would enforce a pattern with a backtracking engine")
    tree = ast.parse(models)
    model_modules, where = split_models(tree, header(spec))
    names = event_class_names(tree, spec)
    # The other modules name the event classes as the models do, and import each from its
    # own module.
    templated = render_package(spec, package, names, {n: where[n] for n in names.values()})
    split = {f"{MODELS_PACKAGE}/{name}.py": text for name, text in model_modules.items()}
    split[f"{MODELS_PACKAGE}/__init__.py"] = render_models_init(spec, where)
    # Formatting is the slowest step; for a large spec the templated modules are formatted
    # in a forked worker while the models are formatted here. Same bytes either way.
    overlap = min(sum(map(len, templated.values())), sum(map(len, split.values())))
    with _formatter(overlap >= PARALLEL_FORMAT_CHARS) as pool:
        pending = pool.submit(format_files, templated, package) if pool else None
        formatted = format_files(split, package)
        formatted |= pending.result() if pending else format_files(templated, package)
    formatted |= runtime_modules()
    formatted["py.typed"] = ""
    files = {f"{package}/{name}": text for name, text in formatted.items()}
    files |= render_project(spec, package, files)
    files[MANIFEST] = manifest(files)
    return dict(sorted(files.items()))


def manifest(files: Mapping[str, str]) -> str:
    """The marker that says a folder is this generator's, and which files in it are."""
    body = {
        "generator": "python -m codegen generate",
        "note": "Every file listed here is generated: do not edit; run `make generate`.",
        "files": sorted(files),
    }
    return json.dumps(body, indent=2) + "\n"


@contextlib.contextmanager
def _formatter(wanted: bool = True) -> Iterator[ProcessPoolExecutor | None]:
    """A one-process pool, where the platform can fork (a fork starts with black already
    imported; a spawned process would spend longer importing it than it saves)."""
    if not wanted or "fork" not in multiprocessing.get_all_start_methods():
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


# Caches and build output that tools leave in a generated project: neither the generator's
# nor the user's work, so they neither block regeneration nor count as differences.
CACHE_DIRS = frozenset({"__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache", "build", "dist"})


def _is_cache(relative: Path) -> bool:
    return any(part in CACHE_DIRS or part.endswith(".egg-info") for part in relative.parts[:-1]) or (
        relative.suffix == ".pyc"
    )


def read_tree(root: Path) -> dict[str, str]:
    if not root.is_dir():
        return {}
    return {
        path.relative_to(root).as_posix(): path.read_text(encoding="utf-8")
        for path in sorted(root.rglob("*"))
        if path.is_file() and not _is_cache(path.relative_to(root))
    }


class UnsafeOutput(Exception):
    """The output folder holds something the generator did not write: nothing is touched."""


def check_output(out: Path, *, inside_allowed: bool = False) -> None:
    """Refuse any ``--out`` but an absent or empty folder or one this generator wrote (its
    manifest lists every file in it). A generator that deletes a user's file is the one bug
    nobody forgives, so nothing here is guessed."""
    resolved = out.resolve()
    cwd = Path.cwd().resolve()
    if resolved == Path(resolved.anchor):
        raise UnsafeOutput(f"--out {out} is the file system root")
    if resolved == Path.home().resolve():
        raise UnsafeOutput(f"--out {out} is your home folder")
    if (resolved == cwd or resolved in cwd.parents) and not inside_allowed:
        raise UnsafeOutput(f"--out {out} is the current folder or holds it")
    if (resolved / ".git").exists():
        raise UnsafeOutput(f"--out {out} is the root of a repository")
    if out.is_symlink():
        raise UnsafeOutput(f"--out {out} is a symbolic link")
    for above in resolved.parents:
        if above.exists() and not above.is_dir():
            raise UnsafeOutput(f"--out {out} is under {above}, which is a file, not a folder")
    if not resolved.exists():
        return
    if not resolved.is_dir():
        raise UnsafeOutput(f"--out {out} is a file, not a folder")
    if not any(resolved.iterdir()):
        return
    marker = resolved / MANIFEST
    try:
        listed = {MANIFEST, *json.loads(marker.read_text(encoding="utf-8"))["files"]}
    except (OSError, ValueError, KeyError, TypeError):
        raise UnsafeOutput(
            f"--out {out} is not empty and was not written by this generator (no valid "
            f"{MANIFEST}); give an empty or new folder"
        ) from None
    for path in sorted(resolved.rglob("*")):
        relative = path.relative_to(resolved)
        is_file = path.is_file() or path.is_symlink()
        if is_file and not _is_cache(relative) and relative.as_posix() not in listed:
            raise UnsafeOutput(
                f"--out {out} holds {relative.as_posix()}, which the generator did not "
                "write; move it out of the folder first"
            )


# A staging folder is ``.<out name>.codegen-<random>/``, holding this marker (which target
# it is for) and ``tree/``, the new project. Only folders of that name *and* marker *for
# this target* are ever removed as leftovers, and only while this run holds the target's lock,
# so no other run can be using them.
STAGING_MARKER = "codegen-staging.json"


def write_tree(files: Mapping[str, str], out: Path, *, inside_allowed: bool = False) -> bool:
    """Replace ``out`` with exactly ``files``. Returns False when it already held them.

    The new tree is written beside ``out`` and exchanged with it in one atomic step, so an
    interrupted run leaves either the old project or the new one, never a mix. Two runs on
    the same ``out`` take turns (a lock beside it).
    """
    check_output(out, inside_allowed=inside_allowed)
    if read_tree(out) == dict(files):
        return False
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with _locked(out):
            check_output(out, inside_allowed=inside_allowed)  # another run may have written it
            _remove_leftovers(out)
            _replace(files, out)
    except OSError as exc:
        raise UnsafeOutput(f"cannot write {exc.filename or out}: {exc.strerror}") from None
    return True


@contextlib.contextmanager
def _locked(out: Path) -> Iterator[None]:
    """Runs writing into the same folder take turns: an advisory lock on the folder itself
    (no lock file left beside the project)."""
    try:
        import fcntl
    except ImportError:  # no advisory locks on this platform
        yield
        return
    fd = os.open(out.parent, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _replace(files: Mapping[str, str], out: Path) -> None:
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.codegen-", dir=out.parent))
    try:
        marker = {"target": str(out.resolve()), "pid": os.getpid()}
        (staging / STAGING_MARKER).write_text(json.dumps(marker), encoding="utf-8")
        tree = staging / "tree"
        for name, text in files.items():
            target = tree / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8", newline="\n")
        os.chmod(tree, 0o755)
        if not out.exists():
            os.rename(tree, out)
        elif not _exchange(tree, out):
            # No atomic exchange on this platform: two renames, with a window between them.
            os.rename(out, staging / "old")
            os.rename(tree, out)
    finally:
        # After an exchange ``tree`` holds the old project; either way all of it goes.
        shutil.rmtree(staging, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two folders atomically (Linux renameat2 RENAME_EXCHANGE); False if unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL):
        return False
    raise OSError(code, os.strerror(code), str(b))


def _remove_leftovers(out: Path) -> None:
    """Staging folders of a run on this same target that was killed outright (SIGKILL, power
    loss). Called with the target's lock held, so none of them belongs to a live run."""
    target = str(out.resolve())
    for stale in out.parent.glob(f".{glob.escape(out.name)}.codegen-*"):
        if not stale.is_dir() or stale.is_symlink():
            continue
        try:
            marker = json.loads((stale / STAGING_MARKER).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            # A run killed between making the folder and writing its marker, the first thing
            # it writes there: nothing else inside, so nothing anyone made is lost.
            with contextlib.suppress(OSError):
                if {p.name for p in stale.iterdir()} <= {STAGING_MARKER}:
                    shutil.rmtree(stale, ignore_errors=True)
            continue
        if isinstance(marker, dict) and marker.get("target") == target:
            shutil.rmtree(stale, ignore_errors=True)


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
