"""``python -m codegen``: generate, check and scaffold, as a user runs them."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, SPEC, spec_examples, tree_hash
from golden_cases import spec_path

from codegen import output, runtime
from codegen.cli import main
from codegen.emit import templates

PACKAGE = "incident_webhooks"


@pytest.mark.uncached
def test_two_runs_give_byte_identical_trees(tmp_path: Path) -> None:
    assert main(["generate", "--out", str(tmp_path / "a")]) == 0
    assert main(["generate", "--out", str(tmp_path / "b")]) == 0
    assert tree_hash(tmp_path / "a") == tree_hash(tmp_path / "b")


def test_regenerating_an_unchanged_spec_rewrites_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "generated"
    assert main(["generate", "--out", str(out)]) == 0
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    assert main(["generate", "--out", str(out)]) == 0
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before
    assert "unchanged" in capsys.readouterr().out


def test_generated_code_has_no_timestamps(tmp_path: Path) -> None:
    out = tmp_path / "generated"
    main(["generate", "--out", str(out)])
    # The spec's own examples (data) hold dates; nothing the generator writes does.
    text = "".join(t for n, t in output.read_tree(out).items() if not n.endswith(".json"))
    assert not re.search(r"\d{4}-\d\d-\d\d[T ]\d\d|\d\d:\d\d:\d\d", text)


def test_output_folder_is_rebuilt_so_removed_webhooks_leave_no_file(tmp_path: Path) -> None:
    out = tmp_path / "generated"
    assert main(["generate", "--out", str(out)]) == 0
    # A module an earlier generator version wrote, listed in the manifest as generated.
    (out / PACKAGE / "removed_webhook.py").write_text("stale = True\n")
    manifest = json.loads((out / output.MANIFEST).read_text())
    manifest["files"].append(f"{PACKAGE}/removed_webhook.py")
    (out / output.MANIFEST).write_text(json.dumps(manifest))
    assert main(["generate", "--spec", str(spec_path("membership_granted")), "--out", str(out)]) == 0
    assert not (out / PACKAGE / "removed_webhook.py").exists()
    assert sorted(p.name for p in (out / PACKAGE).iterdir()) == sorted(
        [*templates.PACKAGE_TEMPLATES, *runtime.MODULES, "models", "py.typed", "_examples.json"]
    )
    # The models of the webhooks the smaller spec lacks are gone too.
    assert sorted(p.name for p in (out / PACKAGE / "models").iterdir()) == [
        "__init__.py", "private_incident_membership_granted_v1.py", "webhook_incident_user_v2.py"
    ]
    assert sorted(p.name for p in out.iterdir()) == [output.MANIFEST, "README.md", PACKAGE, "pyproject.toml"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no staging left"


def test_a_failed_run_leaves_the_existing_package_untouched(tmp_path: Path) -> None:
    out = tmp_path / "generated"
    main(["generate", "--out", str(out)])
    before = tree_hash(out)
    bad = tmp_path / "bad.json"
    bad.write_text('{"openapi": "3.1.0", "webhooks": {"a.b": {"post": {}}}}')
    assert main(["generate", "--spec", str(bad), "--out", str(out)]) == 2
    assert tree_hash(out) == before


def test_check_passes_on_the_committed_package(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--spec", str(SPEC), "--out", str(ROOT / "generated")]) == 0
    assert "up to date" in capsys.readouterr().out


@pytest.mark.parametrize("name", ["pyproject.toml", "README.md", f"{PACKAGE}/handlers.py"])
def test_check_fails_with_a_unified_diff_when_the_project_is_stale(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    out = tmp_path / "generated"
    main(["generate", "--out", str(out)])
    capsys.readouterr()
    stale = out / name
    stale.write_text(stale.read_text() + "# edited by hand\n")
    assert main(["check", "--out", str(out)]) == 1
    printed = capsys.readouterr()
    assert f"--- {out}/{name}\n+++ {out}/{name} (generated)" in printed.out
    assert "-# edited by hand" in printed.out
    assert "make generate" in printed.err


def test_the_package_name_must_be_a_python_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["generate", "--out", str(tmp_path / "x"), "--package", "not-a-name"]) == 2
    assert "not a Python package name" in capsys.readouterr().err


def test_scaffold_writes_a_subclass_with_a_stub_for_every_webhook(tmp_path: Path) -> None:
    target = tmp_path / "my_handlers.py"
    assert main(["scaffold", str(target)]) == 0
    tree = ast.parse(target.read_text())
    (cls,) = [node for node in tree.body if isinstance(node, ast.ClassDef)]
    assert [ast.unparse(base) for base in cls.bases] == ["WebhookHandlers"]
    methods = {node.name for node in cls.body if isinstance(node, ast.FunctionDef)}
    assert len(methods) == len(spec_examples()) >= 30
    assert "on_private_incident_membership_granted_v1" in methods
    assert "#   incident_id: string\n" in target.read_text()
    assert "#   actor_user_id: string (optional)\n" in target.read_text()


def test_scaffolded_module_imports_and_type_checks(tmp_path: Path) -> None:
    target = tmp_path / "my_handlers.py"
    main(["scaffold", str(target)])
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", str(target)],
        check=False,
        capture_output=True,
        text=True,
        cwd=ROOT,
        # mypy does not follow the editable install's import hook.
        env={**os.environ, "MYPYPATH": str(ROOT / "generated")},
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_scaffold_refuses_to_overwrite_an_existing_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "mine.py"
    target.write_text("# my own code\n")
    assert main(["scaffold", str(target)]) == 2
    assert target.read_text() == "# my own code\n"
    assert "never overwrites" in capsys.readouterr().err


def test_module_entry_point_runs_as_python_dash_m(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "codegen", "check"],
        check=False,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stderr
