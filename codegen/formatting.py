"""Formatting every generated Python file (isort, then black), with settings that depend on
nothing but this file, so the same spec gives the same bytes on every machine; cached by the
text and the formatters' versions. A large project is formatted in two halves at once, the
second in a forked process.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import importlib.metadata
import multiprocessing
import os
import signal
import sys
from collections.abc import Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import black
import isort

from .cache import cached
from .errors import GenerationError

_PR_SET_PDEATHSIG = 1  # linux/prctl.h
BLACK_MODE = black.mode.Mode(
    target_versions={black.mode.TargetVersion.PY311}, line_length=88
)


def isort_config(package: str) -> isort.Config:
    # Every setting explicit: isort would otherwise read the configuration and the folders
    # of wherever it is run, and the same spec could give different bytes on two machines.
    return isort.Config(
        profile="black",
        known_first_party=[package],
        src_paths=(),
        directory="/",
        quiet=True,
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
        return black.format_str(
            isort.code(code, config=isort_config(package)), mode=BLACK_MODE
        )
    except black.parsing.InvalidInput as exc:  # a generator bug, never a spec problem
        raise GenerationError(f"generated {name} is not valid Python: {exc}") from exc


def format_files(files: Mapping[str, str], package: str) -> dict[str, str]:
    return {name: format_python(text, name, package) for name, text in files.items()}


def format_halves(
    first: Mapping[str, str], second: Mapping[str, str], package: str
) -> dict[str, str]:
    """Both sets of files formatted, for a large project in two halves of about the same
    size, one in a forked worker (formatting is the slowest step: GitHub's 4,500 model
    modules are most of its generation). Same bytes either way."""
    files = {**first, **second}
    halves: tuple[dict[str, str], dict[str, str]] = ({}, {})
    sizes = [0, 0]
    # Largest first, each to the lighter half: balanced, and the same split every run.
    for name in sorted(files, key=lambda n: (-len(files[n]), n)):
        lighter = 0 if sizes[0] <= sizes[1] else 1
        halves[lighter][name] = files[name]
        sizes[lighter] += len(files[name])
    with _formatter(min(sizes) >= PARALLEL_FORMAT_CHARS) as pool:
        pending = pool.submit(format_files, halves[0], package) if pool else None
        formatted = format_files(halves[1], package)
        formatted |= pending.result() if pending else format_files(halves[0], package)
    return {name: formatted[name] for name in files}


@contextlib.contextmanager
def _formatter(wanted: bool = True) -> Iterator[ProcessPoolExecutor | None]:
    """A one-process pool, where the platform can fork (a fork starts with black already
    imported; a spawned process would spend longer importing it than it saves)."""
    if not wanted or "fork" not in multiprocessing.get_all_start_methods():
        yield None
        return
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(
        max_workers=1,
        mp_context=context,
        initializer=_die_with,
        initargs=(os.getpid(),),
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
