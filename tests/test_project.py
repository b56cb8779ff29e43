"""The project's own interface: make targets and the CI workflow users copy."""

from __future__ import annotations

import re
import subprocess

import yaml
from conftest import ROOT


def test_make_help_lists_every_target_with_its_description() -> None:
    makefile = (ROOT / "Makefile").read_text()
    targets = re.findall(r"^([a-z][a-z-]*):", makefile, flags=re.MULTILINE)
    documented = re.findall(r"^([a-z][a-z-]*):.*## ", makefile, flags=re.MULTILINE)
    assert targets == documented, "every target needs a ## description"
    shown = subprocess.run(
        ["make", "--no-print-directory", "help"], check=True, capture_output=True, text=True, cwd=ROOT
    ).stdout
    for target in ("generate", "check", "test", "golden", "lint", "serve", "update-spec"):
        assert f"make {target} " in shown


def test_the_user_workflow_runs_make_check_on_every_pull_request() -> None:
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "codegen.yml").read_text())
    # YAML reads the bare key `on` as True.
    triggers = workflow.get("on", workflow.get(True))
    assert "pull_request" in triggers
    steps = [step.get("run", "") for job in workflow["jobs"].values() for step in job["steps"]]
    assert "make check" in steps


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    first_screen = "\n".join(readme.splitlines()[:20])
    assert "make generate" in first_screen and "make test" in first_screen
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_the_toolchain_wheel_ships_the_runtime_and_the_templates(tmp_path: object) -> None:
    import zipfile
    from pathlib import Path

    from packages import build_wheel

    wheel = build_wheel(ROOT, Path(str(tmp_path)))
    assert wheel.name.startswith("incident_webhooks_codegen-"), wheel
    names = set(zipfile.ZipFile(wheel).namelist())
    from codegen import runtime

    assert {f"codegen/runtime/{name}" for name in runtime.MODULES} <= names
    assert {"codegen/templates/events.py.jinja", "codegen/templates/handlers.py.jinja"} <= names
