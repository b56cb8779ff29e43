"""Strings from the spec never become code: they reach the generated package only as data."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from codegen.cli import main

FIXTURE = Path(__file__).parent / "fixtures" / "hostile_text.json"
SPEC = json.loads(FIXTURE.read_text())
HOSTILE = SPEC["webhooks"]["hostile.text_v1"]["post"]


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("hostile") / "generated"
    assert main(["generate", "--spec", str(FIXTURE), "--out", str(out)]) == 0
    return out / "incident_webhooks"


def run_in_package(package: Path, code: str) -> Any:
    """Import the generated package in a fresh interpreter and return what ``code`` prints."""
    result = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        capture_output=True,
        text=True,
        cwd=package.parent,
        env={"PYTHONPATH": str(package.parent), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _allowed_module_statement(node: ast.stmt, module: str) -> bool:
    if isinstance(node, ast.Import | ast.ImportFrom | ast.ClassDef):
        return True
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        return True
    if isinstance(node, ast.Assign | ast.AnnAssign):
        return True
    if isinstance(node, ast.Expr):
        value = node.value
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            return True  # the module docstring
        # `Model.model_rebuild()` after recursive models, and nothing else
        return (
            isinstance(value, ast.Call)
            and isinstance(value.func, ast.Attribute)
            and value.func.attr == "model_rebuild"
            and not value.args
        )
    if isinstance(node, ast.If):
        test = ast.unparse(node.test)
        if test == "typing.TYPE_CHECKING":  # imports for type checkers only
            # imports, and type aliases only type checkers read
            kinds = ast.Import | ast.ImportFrom | ast.AnnAssign
            return all(isinstance(inner, kinds) for inner in node.body)
        if test == "not typing.TYPE_CHECKING":  # the lazy modules' __getattr__, hidden from mypy
            return all(isinstance(inner, ast.FunctionDef) for inner in node.body)
        if test == "hasattr(os, 'register_at_fork')" and module in FORK_SAFE_MODULES:
            return [ast.unparse(inner) for inner in node.body] in (
                ["os.register_at_fork(after_in_child=_after_fork_in_child)"],
                # _parsing.py: the model-loading locks taken around the fork
                ["os.register_at_fork(before=_before_fork, after_in_parent=_after_fork, after_in_child=_after_fork)"],
            )
        return module == "__main__.py" and test == "__name__ == '__main__'"
    return False


# The runtime modules that re-create their locks and connections in a forked child; the
# only ones besides __main__ that may import os.
FORK_SAFE_MODULES = frozenset({"_parsing.py", "_sqlite.py", "dedupe.py", "inbox.py", "metrics.py"})
# Runtime modules that name processes (a worker's lease owner, the commands' environment,
# prometheus' multiprocess folder, serve's server processes).
PROCESS_MODULES = frozenset({"__main__.py", "_cli.py", "_processes.py", "metrics.py", "worker.py"})
# Runtime modules that look at a store's file (its identity at its path, its disk's space).
FILE_MODULES = frozenset({"_sqlite.py"})


def _allowed_class_statement(node: ast.stmt) -> bool:
    if isinstance(node, ast.AnnAssign | ast.Assign | ast.FunctionDef | ast.AsyncFunctionDef):
        return True
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)


def test_the_package_generated_from_hostile_text_imports_and_parses(package: Path) -> None:
    example = HOSTILE["requestBody"]["content"]["application/json"]["example"]
    dumped = run_in_package(
        package,
        "import json, incident_webhooks as w\n"
        f"event = w.parse_event({json.dumps(example)!r})\n"
        "print(json.dumps(event.model_dump(mode='json', by_alias=True, exclude_unset=True)))",
    )
    assert dumped == example


def test_module_level_statements_are_only_the_expected_kinds(package: Path) -> None:
    for path in sorted(package.rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in tree.body:
            assert _allowed_module_statement(node, path.name), f"{path.name}: {ast.unparse(node)}"
            if isinstance(node, ast.ClassDef):
                for inner in node.body:
                    assert _allowed_class_statement(inner), f"{path.name}: {ast.unparse(inner)}"


def test_no_call_that_could_come_from_spec_text_appears_anywhere(package: Path) -> None:
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                assert ast.unparse(node.func) not in {"os.system", "system", "exec", "eval"}
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = {alias.name for alias in node.names}
                allowed = path.name in PROCESS_MODULES | FORK_SAFE_MODULES | FILE_MODULES
                assert "os" not in names or allowed, ast.unparse(node)


def test_handler_docstrings_hold_the_spec_text_verbatim(package: Path) -> None:
    docs = run_in_package(
        package,
        "import inspect, json, incident_webhooks as w\n"
        "print(json.dumps({'hostile': w.WebhookHandlers.on_hostile_text_v1.__doc__,"
        " 'async': w.AsyncWebhookHandlers.on_hostile_text_v1.__doc__,"
        " 'plain': inspect.getdoc(w.WebhookHandlers.on_plain_event_v1)}))",
    )
    expected = HOSTILE["summary"] + "\n\n" + HOSTILE["description"]
    assert docs["hostile"] == expected
    assert docs["async"] == expected
    plain = SPEC["webhooks"]["plain.event_v1"]["post"]
    assert docs["plain"] == plain["summary"] + "\n\n" + plain["description"]


def test_model_docstrings_hold_the_spec_text(package: Path) -> None:
    docs = run_in_package(
        package,
        "import json\nfrom incident_webhooks import models as m\n"
        "print(json.dumps([m.HostilePayload.__doc__, m.HostileTextV1.__doc__]))",
    )
    docs = [textwrap.dedent(doc).strip("\n ") for doc in docs]
    description = SPEC["components"]["schemas"]["HostilePayload"]["description"]
    # Python source turns a written CRLF into LF, so a model docstring keeps the text with
    # LF line ends; the handler docstrings (above) keep it exactly.
    assert docs[0] == description.replace("\r\n", "\n")
    assert docs[1] == (HOSTILE["summary"] + "\n\n" + HOSTILE["description"]).replace("\r\n", "\n")


def test_enum_values_and_property_names_stay_data(package: Path) -> None:
    names = run_in_package(
        package,
        "import json\nfrom incident_webhooks.models import HostilePayload as P, HostilePayloadChoice as C\n"
        "print(json.dumps({'aliases': sorted(f.alias or n for n, f in P.model_fields.items()),"
        " 'values': [c.value for c in C]}))",
    )
    properties = SPEC["components"]["schemas"]["HostilePayload"]["properties"]
    assert names["aliases"] == sorted(properties)
    assert names["values"] == properties["choice"]["enum"]


def test_the_header_comment_cannot_be_broken_out_of(package: Path) -> None:
    from codegen import runtime

    for path in sorted(package.rglob("*.py")):
        lines = path.read_text().splitlines()
        if path.parent == package and path.name in runtime.MODULES:
            # The runtime's header names no spec text at all.
            assert lines[0] == f"# Generated by `python -m codegen generate`: codegen/runtime/{path.name} of the generator, the"
            continue
        assert lines[0].startswith("# Generated by")
        assert lines[1].startswith("# (hostile\\nimport os 1\\r\\n")
        assert lines[2].startswith("# ")
