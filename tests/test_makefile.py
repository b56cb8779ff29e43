"""`make servers` (run by `make test`): each server the tests need is checked on its own, and
only what is missing is installed. Run with a PATH that holds exactly the programs a case
needs, so the machine's own servers do not count."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAKE = shutil.which("make")


def servers(
    tmp_path: Path, *present: str, postgres_in_lib: bool = False
) -> subprocess.CompletedProcess[str]:
    """`make servers` in dry-run mode with a PATH of ``ls``, ``id`` and ``present``;
    ``postgres_in_lib``: initdb only where Debian keeps it, not on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("ls", "id"):
        (bin_dir / tool).symlink_to(shutil.which(tool) or f"/bin/{tool}")
    for name in present:
        stub = bin_dir / name
        stub.write_text("#!/bin/sh\nexit 99\n")  # never run: only looked up
        stub.chmod(0o755)
    lib = tmp_path / "lib" / "postgresql"
    if postgres_in_lib:
        (lib / "15" / "bin").mkdir(parents=True)
        (lib / "15" / "bin" / "initdb").write_text("")
    assert MAKE is not None
    return subprocess.run(
        [MAKE, "-s", "-C", str(ROOT), "servers", "SERVERS_DRY_RUN=1", f"PG_BIN_GLOB={lib}/*/bin"],
        env={"PATH": str(bin_dir), "HOME": str(tmp_path)},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


needs_root = pytest.mark.skipif(
    os.getuid() != 0, reason="the install branch is taken as root only"
)


@needs_root
@pytest.mark.parametrize(
    ("present", "in_lib", "installed"),
    [
        (("apt-get",), False, "would install: redis-server postgresql"),
        (("apt-get", "redis-server"), False, "would install: postgresql"),
        # The case that once installed nothing: PostgreSQL present counted as both present.
        (("apt-get", "initdb"), False, "would install: redis-server"),
        (("apt-get",), True, "would install: redis-server"),
        (("apt-get", "redis-server", "initdb"), False, ""),
        (("apt-get", "redis-server"), True, ""),
    ],
    ids=[
        "neither",
        "redis-only",
        "postgres-on-path-only",
        "postgres-in-lib-only",
        "both",
        "both-lib",
    ],
)
def test_each_missing_server_is_installed_on_its_own(
    tmp_path: Path, present: tuple[str, ...], in_lib: bool, installed: str
) -> None:
    result = servers(tmp_path, *present, postgres_in_lib=in_lib)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == installed


@pytest.mark.parametrize(
    ("present", "named"),
    [
        ((), "redis-server postgresql"),
        (("initdb",), "redis-server"),
        (("redis-server",), "postgresql"),
    ],
    ids=["neither", "no-redis", "no-postgres"],
)
def test_without_a_way_to_install_one_line_names_what_to_install(
    tmp_path: Path, present: tuple[str, ...], named: str
) -> None:
    result = servers(tmp_path, *present)
    assert result.returncode != 0
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"the tests need {named}: install it")
