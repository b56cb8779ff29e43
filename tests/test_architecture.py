"""ARCHITECTURE.md stays true: every path it names exists, every module of the generator is
on it, and every module of the generated package it lists is generated."""

from __future__ import annotations

import re

from conftest import ROOT

PAGE = (ROOT / "ARCHITECTURE.md").read_text()
PACKAGE = ROOT / "generated" / "incident_webhooks"


def test_every_path_the_page_names_exists() -> None:
    paths = set(re.findall(r"`((?:codegen|tests|generated)/[^`\s]*)`", PAGE))
    assert len(paths) > 20
    for path in sorted(paths):
        path = path.split(" ")[0].removesuffix(":")
        if "<" in path:  # a pattern such as tests/golden/<feature>/spec.*
            continue
        assert list(ROOT.glob(path)), f"ARCHITECTURE.md names {path}, which does not exist"


def test_every_module_of_the_generator_is_on_the_page() -> None:
    modules = [p.relative_to(ROOT).as_posix() for p in (ROOT / "codegen").rglob("*.py")]
    for module in sorted(modules):
        if module.endswith(("__init__.py", "__main__.py")) or "/runtime/" in module:
            continue  # packages, and the runtime (named as a folder)
        assert f"`{module}`" in PAGE, f"{module} is not on ARCHITECTURE.md"


def test_every_generated_module_the_page_lists_is_generated() -> None:
    table = PAGE.split("## The generated package", 1)[1].split("## ", 1)[0]
    named = set(re.findall(r"`([\w/<> ]+\.(?:py|json))`", table))
    assert len(named) > 10
    for name in sorted(named):
        if "<" in name:
            assert list((PACKAGE / "models").glob("*.py"))
            continue
        assert (PACKAGE / name).is_file(), f"ARCHITECTURE.md lists {name}, which is not generated"
    generated = {p.name for p in PACKAGE.glob("*.py")} | {"_examples.json"}
    assert generated <= named | {"py.typed"}, f"not on the page: {generated - named}"


def test_the_map_of_tests_names_every_module_and_every_test_file() -> None:
    table = PAGE.split("## Where the tests are", 1)[1].split("## ", 1)[0]
    named = set(re.findall(r"`((?:codegen|tests)/[^`]+\.py)`", table))
    modules = {
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "codegen").rglob("*.py")
        if p.name != "__init__.py" and not (p.name == "__main__.py" and p.parent.name == "codegen")
    }
    tests = {p.relative_to(ROOT).as_posix() for p in (ROOT / "tests").glob("test_*.py")}
    assert modules - named == set(), "modules with no tests on the map"
    assert tests - named == set(), "test files not on the map"
    assert named - modules - tests == set(), "the map names files that do not exist"
