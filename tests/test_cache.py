"""The generator's optional cache (CODEGEN_CACHE): the same bytes as without it, and a
cache that cannot be used only makes a run slower."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import tree_hash
from packages import ROOT, run_cli

# A one-webhook spec: the cache's behaviour, not the full spec's size, is under test.
SPEC = str(ROOT / "tests" / "golden" / "membership_granted" / "spec.json")


@pytest.mark.uncached
def test_a_cached_run_writes_the_same_tree_as_an_uncached_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CODEGEN_CACHE", raising=False)
    assert run_cli("generate", "--spec", SPEC, "--out", str(tmp_path / "plain"))[0] == 0
    monkeypatch.setenv("CODEGEN_CACHE", str(tmp_path / "cache"))
    assert run_cli("generate", "--spec", SPEC, "--out", str(tmp_path / "filled"))[0] == 0
    assert run_cli("generate", "--spec", SPEC, "--out", str(tmp_path / "read"))[0] == 0
    assert tree_hash(tmp_path / "plain") == tree_hash(tmp_path / "filled") == tree_hash(tmp_path / "read")
    kinds = {p.name for p in (tmp_path / "cache").iterdir()}
    assert kinds == {"models", "formatted"}
    assert not list((tmp_path / "cache").rglob("*.tmp")), "no partial entry is left"


@pytest.mark.uncached
def test_a_cache_that_cannot_be_written_or_read_only_makes_the_run_slower(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CODEGEN_CACHE", raising=False)
    assert run_cli("generate", "--spec", SPEC, "--out", str(tmp_path / "plain"))[0] == 0
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the cache should be")
    monkeypatch.setenv("CODEGEN_CACHE", str(blocked))
    assert run_cli("generate", "--spec", SPEC, "--out", str(tmp_path / "out"))[0] == 0
    assert tree_hash(tmp_path / "plain") == tree_hash(tmp_path / "out")
