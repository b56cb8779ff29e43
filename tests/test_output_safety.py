"""`generate --out DIR` writes only where it may: an absent or empty folder, or a project this
generator wrote (its manifest lists every file). Anything else is refused, untouched."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import ROOT, tree_hash
from golden_cases import spec_path
from packages import run_cli

from codegen import output, parser, project

SPEC = str(spec_path("membership_granted"))


def generate(out: Path | str) -> tuple[int, str]:
    return run_cli("generate", "--spec", SPEC, "--out", str(out))


def stat_snapshot(root: Path) -> list[tuple[str, int, int]]:
    """Every path under ``root`` with its size and modification time: any file written,
    added or removed shows, without reading the bytes of a checkout and its virtualenv.
    Caches are left out (``__pycache__``, ``.mypy_cache``, ...): tests running beside this
    one write them into the checkout while it looks, and the generator never does."""
    found = []
    for folder, folders, names in os.walk(root):
        folders[:] = [f for f in folders if f not in output.CACHE_DIRS]
        for name in names:
            stat = os.lstat(os.path.join(folder, name))
            found.append((os.path.join(folder, name), stat.st_size, stat.st_mtime_ns))
    return sorted(found)


def refused(
    out: Path,
    message: str,
    *,
    hashed: Path | None = None,
    snapshot: Callable[[Path], object] = tree_hash,
) -> None:
    folder = hashed or out
    before = snapshot(folder) if folder.exists() else None
    code, output = generate(out)
    assert code == 2, output
    assert message in output, output
    assert output.count("\n") == 1 and "Traceback" not in output
    assert (snapshot(folder) if folder.exists() else None) == before


def test_an_absent_or_empty_folder_is_written(tmp_path: Path) -> None:
    assert generate(tmp_path / "new")[0] == 0
    (tmp_path / "empty").mkdir()
    assert generate(tmp_path / "empty")[0] == 0
    assert (tmp_path / "empty" / output.MANIFEST).is_file()


def test_a_folder_the_generator_wrote_is_rewritten(tmp_path: Path) -> None:
    out = tmp_path / "generated"
    assert generate(out)[0] == 0
    (out / "incident_webhooks" / "events.py").write_text("edited = True\n")
    assert generate(out)[0] == 0
    assert "edited" not in (out / "incident_webhooks" / "events.py").read_text()


def test_a_folder_with_files_the_generator_did_not_write_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "keep"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    refused(out, "is not empty and was not written by this generator")
    assert (out / "notes.txt").read_text() == "mine"


def test_a_user_file_inside_a_generated_folder_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "generated"
    assert generate(out)[0] == 0
    (out / "incident_webhooks" / "my_handlers.py").write_text("mine")
    refused(out, "holds incident_webhooks/my_handlers.py, which the generator did not write")
    assert (out / "incident_webhooks" / "my_handlers.py").read_text() == "mine"


def test_caches_tools_leave_behind_do_not_block_regeneration(tmp_path: Path) -> None:
    out = tmp_path / "generated"
    assert generate(out)[0] == 0
    for cache in ("incident_webhooks/__pycache__/x.pyc", "incident_webhooks.egg-info/PKG-INFO"):
        (out / cache).parent.mkdir(parents=True, exist_ok=True)
        (out / cache).write_text("cache")
    assert generate(out)[0] == 0


def test_the_current_folder_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "app.py").write_text("mine")
    monkeypatch.chdir(tmp_path)
    refused(Path("."), "is the current folder or holds it", hashed=tmp_path)


def test_a_parent_of_the_current_folder_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "inner").mkdir()
    monkeypatch.chdir(tmp_path / "inner")
    refused(Path(".."), "is the current folder or holds it", hashed=tmp_path)


def test_the_root_and_home_folders_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, output = generate("/")
    assert code == 2 and "is the file system root" in output
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / ".bashrc").write_text("mine")
    refused(tmp_path / "home", "is your home folder")


def test_a_repository_root_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    refused(repo, "is the root of a repository")
    monkeypatch.chdir(ROOT / "tests")
    refused(ROOT, "is the current folder or holds it", snapshot=stat_snapshot)


def test_a_file_and_a_symbolic_link_are_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("mine")
    refused(tmp_path / "file", "is a file, not a folder")
    (tmp_path / "target").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "target")
    refused(tmp_path / "link", "is a symbolic link")


def test_a_forged_or_broken_manifest_is_not_trusted(tmp_path: Path) -> None:
    out = tmp_path / "generated"
    out.mkdir()
    (out / output.MANIFEST).write_text("not json")
    (out / "data.csv").write_text("mine")
    refused(out, "no valid .codegen.json")


def test_leftovers_of_a_killed_run_are_cleared_and_nothing_else(tmp_path: Path) -> None:
    out = tmp_path / "generated"
    assert generate(out)[0] == 0

    def staging(name: str, target: Path | None, *, manifest: bool = True) -> Path:
        folder = tmp_path / name
        (folder / "tree").mkdir(parents=True)
        if target is not None:
            marker = {"target": str(target.resolve()), "pid": 1}
            (folder / output.STAGING_MARKER).write_text(json.dumps(marker))
        if manifest:
            (folder / "tree" / output.MANIFEST).write_text("{}")
        return folder

    stale = staging(".generated.codegen-abc123", out)
    other_target = staging(".generated.codegen-xyz", tmp_path / "elsewhere" / "generated")
    no_marker = staging(".generated.codegen-nomarker", None)
    # A user's own backup that holds a copy of a manifest, named much like a staging folder.
    backup = staging(".gen.backup-1", None)
    old_style = staging(".generated.new-mine", None)
    # Runs killed right after making their folder, before or while writing the marker.
    unmarked = [tmp_path / ".generated.codegen-empty", tmp_path / ".generated.codegen-cut"]
    for folder in unmarked:
        folder.mkdir()
    (unmarked[1] / output.STAGING_MARKER).write_text('{"target": "/')
    (out / "incident_webhooks" / "events.py").write_text("# changed\n")
    assert generate(out)[0] == 0
    assert not stale.exists()
    assert not any(folder.exists() for folder in unmarked)
    for kept in (other_target, no_marker, backup, old_style):
        assert (kept / "tree" / output.MANIFEST).read_text() == "{}", kept


def test_two_runs_on_one_folder_at_once_both_finish_and_leave_a_whole_project(
    tmp_path: Path,
) -> None:
    out = tmp_path / "generated"
    assert generate(out)[0] == 0
    (out / "incident_webhooks" / "events.py").write_text("# changed\n")
    command = [sys.executable, "-m", "codegen", "generate", "--spec", SPEC, "--out", str(out)]
    runs = [
        subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(3)
    ]
    outputs = [run.communicate(timeout=120)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0, 0], outputs
    assert run_cli("generate", "--spec", SPEC, "--out", str(tmp_path / "expected"))[0] == 0
    assert tree_hash(out) == tree_hash(tmp_path / "expected")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def waiting_for_the_lock(run: subprocess.Popen[str], timeout: float = 60) -> None:
    """Returns once ``run`` is blocked on a file lock (Linux lists blocked requests in
    /proc/locks as ``N: -> FLOCK ... <pid> ...``), or has ended; elsewhere after 4 s."""
    locks = Path("/proc/locks")
    if not locks.exists():
        time.sleep(4)
        return
    deadline = time.monotonic() + timeout
    while run.poll() is None and time.monotonic() < deadline:
        for line in locks.read_text().splitlines():
            fields = line.split()
            if fields[1:3] == ["->", "FLOCK"] and fields[5] == str(run.pid):
                return
        time.sleep(0.02)


def test_a_run_waits_for_another_run_on_the_same_folder_and_never_removes_its_staging(
    tmp_path: Path,
) -> None:
    import fcntl

    out = tmp_path / "generated"
    assert generate(out)[0] == 0
    (out / "incident_webhooks" / "events.py").write_text("# changed\n")
    # Another run is writing: it holds the folder's lock and has a staging folder.
    live = tmp_path / ".generated.codegen-live"
    (live / "tree").mkdir(parents=True)
    (live / output.STAGING_MARKER).write_text(json.dumps({"target": str(out.resolve())}))
    holder = os.open(tmp_path, os.O_RDONLY)
    fcntl.flock(holder, fcntl.LOCK_EX)
    command = [sys.executable, "-m", "codegen", "generate", "--spec", SPEC, "--out", str(out)]
    run = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        waiting_for_the_lock(run)
        assert run.poll() is None, "it did not wait for the other run"
        assert (live / output.STAGING_MARKER).exists(), "it removed a live run's staging folder"
    finally:
        os.close(holder)  # the other run ends
    assert run.wait(120) == 0, run.stdout.read() if run.stdout else ""
    assert not live.exists(), "once the other run is gone, its leftovers go"
    assert (out / "incident_webhooks" / "events.py").read_text() != "# changed\n"


@pytest.mark.parametrize("case", ["under-a-file", "dangling-scaffold", "read-only-parent"])
def test_unwritable_places_are_one_line_and_exit_2(tmp_path: Path, case: str) -> None:
    if case == "under-a-file":
        (tmp_path / "plain").write_text("x")
        code, output = run_cli("generate", "--spec", SPEC, "--out", str(tmp_path / "plain" / "out"))
        assert "is under" in output and "a file, not a folder" in output
    elif case == "dangling-scaffold":
        (tmp_path / "link.py").symlink_to(tmp_path / "nowhere" / "x.py")
        code, output = run_cli("scaffold", "--spec", SPEC, str(tmp_path / "link.py"))
        assert "exists; scaffold never overwrites" in output
    else:
        # Root ignores permission bits; a read-only bind of the folder is not available in a
        # test, so a path below /proc (never writable) stands in for it.
        code, output = run_cli("generate", "--spec", SPEC, "--out", "/proc/self/nope/generated")
        assert output.startswith("error: ") and "cannot write" in output, output
    assert code == 2
    assert output.startswith("error: ") and output.count("\n") == 1, output
    assert "Traceback" not in output


def test_an_interrupted_run_leaves_the_old_project_or_the_new_one(tmp_path: Path) -> None:
    """Kill generate at many moments while it rewrites a project: afterwards the folder is
    always a whole project, old or new, and no staging folder remains after the next run."""
    out = tmp_path / "generated"
    assert run_cli("generate", "--out", str(out))[0] == 0  # the full spec: the "old" project
    old = tree_hash(out)
    command = [sys.executable, "-m", "codegen", "generate", "--spec", SPEC]
    # The kills fall across the length of a whole run, measured here, and most in its last
    # part, where the files are written: fixed delays would mostly land after the end of the
    # run on a fast machine (and before the writing on a slow one).
    # (Timed after a first run, here, has filled the generator's cache, as for the kills.)
    assert run_cli("generate", "--spec", SPEC, "--out", str(tmp_path / "expected"))[0] == 0
    started = time.monotonic()
    subprocess.run([*command, "--out", str(tmp_path / "timed")], cwd=ROOT, check=True, capture_output=True)
    length = time.monotonic() - started
    new = tree_hash(tmp_path / "expected")
    seen = set()
    for part in (0.3, 0.6, 0.75, 0.85, 0.9, 0.95, 1.0):
        process = subprocess.Popen(
            [*command, "--out", str(out)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )  # fmt: skip
        delay = part * length
        time.sleep(delay)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(30)
        state = tree_hash(out)
        assert state in (old, new), f"a mix after a kill at {delay}s"
        seen.add("new" if state == new else "old")
        if state == new:  # put the old project back for the next round
            assert run_cli("generate", "--out", str(out))[0] == 0
    assert generate(out)[0] == 0
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    assert "old" in seen


def test_ctrl_c_while_writing_leaves_the_old_project_and_no_staging(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "generated"
    assert generate(out)[0] == 0
    before = tree_hash(out)
    spec = parser.parse(json.loads((ROOT / "spec" / "webhooks.json").read_text()), "spec")
    files = project.build(spec, "incident_webhooks")
    calls = {"n": 0}
    real = Path.write_text

    def interrupted(self: Path, *args: object, **kwargs: object) -> int:
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "write_text", interrupted)
    with pytest.raises(KeyboardInterrupt):
        output.write_tree(files, out)
    monkeypatch.undo()
    assert tree_hash(out) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
