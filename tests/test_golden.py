"""The generator's exact output, pinned by the packages in tests/golden."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from golden_cases import (
    PACKAGE,
    cases,
    expected_dir,
    runtime_paths,
    spec_path,
    spec_shaped,
)

from codegen import formatting, output, runtime
from codegen.cli import main
from codegen.emit import templates


def generate(spec: Path, out: Path) -> dict[str, str]:
    """The spec-shaped part of the project generated from ``spec``."""
    assert main(["generate", "--spec", str(spec), "--out", str(out)]) == 0
    return spec_shaped(output.read_tree(out))


@pytest.mark.parametrize("case", cases())
def test_generated_package_matches_golden_files(case: str, tmp_path: Path) -> None:
    actual = generate(spec_path(case), tmp_path / "generated")
    expected = output.read_tree(expected_dir(case))
    assert expected, f"no golden files for {case}: run `make golden`"
    diff = output.diff_trees(actual, expected, f"tests/golden/{case}/generated")
    if diff:
        pytest.fail(f"generated code differs from the golden files (`make golden` if intended):\n{diff}")


def test_request_body_and_response_200_specs_generate_identical_code() -> None:
    assert output.read_tree(expected_dir("request_body")) == output.read_tree(
        expected_dir("membership_granted")
    )


def test_golden_cases_cover_the_features_the_generator_must_handle() -> None:
    assert {"membership_granted", "request_body", "yaml_spec", "schema_features"} <= set(cases())
    assert spec_path("yaml_spec").suffix == ".yaml"


def test_a_changed_template_fails_the_golden_comparison_with_a_readable_diff(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    altered = tmp_path / "templates"
    shutil.copytree(templates.TEMPLATE_DIR, altered)
    handlers = altered / "handlers.py.jinja"
    handlers.write_text(handlers.read_text().replace("does nothing", "does NOTHING AT ALL"))
    monkeypatch.setattr(templates, "_ENV", templates._environment(altered))

    actual = generate(spec_path("membership_granted"), tmp_path / "generated")
    diff = output.diff_trees(actual, output.read_tree(expected_dir("membership_granted")), "g")

    assert f"--- g/{PACKAGE}/handlers.py\n+++ g/{PACKAGE}/handlers.py (generated)" in diff
    assert "+    A method you do not override does NOTHING AT ALL" in diff
    assert "-    A method you do not override does nothing" in diff


@pytest.mark.parametrize("case", cases())
def test_the_runtime_modules_are_copies_of_codegen_runtime_under_a_fixed_header(
    case: str, tmp_path: Path
) -> None:
    main(["generate", "--spec", str(spec_path(case)), "--out", str(tmp_path / "generated")])
    tree = output.read_tree(tmp_path / "generated")
    for path in sorted(runtime_paths()):
        name = path.split("/", 1)[1]
        source = (templates.RUNTIME_DIR / name).read_text()
        assert tree[path] == templates.RUNTIME_HEADER.format(name=name) + source, path
    assert not set(runtime_paths()) & set(output.read_tree(expected_dir(case)))


def test_the_runtime_is_kept_formatted_as_the_generated_code_is() -> None:
    for name in runtime.MODULES:
        source = (templates.RUNTIME_DIR / name).read_text()
        assert formatting.format_python(source, name, PACKAGE) == source, f"codegen/runtime/{name}"


def test_the_runtime_depends_on_no_spec_and_names_no_package() -> None:
    for name in runtime.MODULES:
        source = (templates.RUNTIME_DIR / name).read_text()
        assert "{{" not in source and "{%" not in source, name
        # Data may say incident_webhooks (the Redis key prefix); code never names the package.
        for reference in ("incident_webhooks.", "import incident_webhooks", 'getLogger("'):
            assert reference not in source, f"{name} names the package; use __package__"
