"""Putting a generated project on disk safely: only into a folder that is absent, empty or
this generator's (its manifest lists every file), written beside it and swapped in with one
atomic exchange under a lock, so an interrupted run leaves the old project or the new one.
"""

from __future__ import annotations

import contextlib
import ctypes
import difflib
import errno
import glob
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

_AT_FDCWD = -100  # linux/fcntl.h
_RENAME_EXCHANGE = 2  # linux/fs.h
# The marker a generated project carries: which generator wrote it, and every file it wrote.
MANIFEST = ".codegen.json"


def manifest(files: Mapping[str, str]) -> str:
    """The marker that says a folder is this generator's, and which files in it are."""
    body = {
        "generator": "python -m codegen generate",
        "note": "Every file listed here is generated: do not edit; run `make generate`.",
        "files": sorted(files),
    }
    return json.dumps(body, indent=2) + "\n"


# Caches and build output that tools leave in a generated project: neither the generator's
# nor the user's work, so they neither block regeneration nor count as differences.
CACHE_DIRS = frozenset(
    {"__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache", "build", "dist"}
)


def _is_cache(relative: Path) -> bool:
    return any(
        part in CACHE_DIRS or part.endswith(".egg-info") for part in relative.parts[:-1]
    ) or (relative.suffix == ".pyc")


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
            raise UnsafeOutput(
                f"--out {out} is under {above}, which is a file, not a folder"
            )
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


def write_tree(
    files: Mapping[str, str], out: Path, *, inside_allowed: bool = False
) -> bool:
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
            check_output(
                out, inside_allowed=inside_allowed
            )  # another run may have written it
            _remove_leftovers(out)
            _replace(files, out)
    except OSError as exc:
        raise UnsafeOutput(
            f"cannot write {exc.filename or out}: {exc.strerror}"
        ) from None
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
    if (
        renameat2(
            _AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE
        )
        == 0
    ):
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


def diff_trees(
    expected: Mapping[str, str], actual: Mapping[str, str], label: str
) -> str:
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
                tofile=(
                    f"{label}/{name} (generated)" if new is not None else "/dev/null"
                ),
            )
        )
    return "".join(chunks)
