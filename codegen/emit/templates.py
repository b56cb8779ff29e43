"""The hand-written parts of the package (everything but the models), rendered by jinja2."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2

from .. import __version__
from ..ir import Spec, Webhook
from ..naming import PUBLIC_NAMES
from .literals import comment, docstring, md_code, py_string, toml_string

TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "templates"
# Modules of the generated package that come from templates, besides the models package.
PACKAGE_TEMPLATES = (
    "__init__.py", "__main__.py", "_base.py", "_root.py", "app.py", "errors.py", "events.py",
    "handlers.py", "receiver.py", "signature.py", "testing.py", "dedupe.py",
)  # fmt: skip


# When parse_event moves from each model's own validator to the union of all of them: after
# this many events per webhook in the spec. Building the union costs about as much per
# webhook as that many events save by using it (measured: docs/benchmarks.md), so a process
# that sees fewer events never pays for it, and one that sees more pays at most twice.
PROMOTE_AFTER_PER_WEBHOOK = 3_000


def handler_doc(hook: Webhook) -> str:
    text = "\n\n".join(part for part in (hook.summary, hook.description) if part)
    return text or f"Handle ``{hook.event_type}`` events."


def _environment(template_dir: Path = TEMPLATE_DIR) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(template_dir),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,  # the output is Python, not HTML
    )
    env.filters.update(
        py_string=py_string,
        docstring=docstring,
        comment=comment,
        handler_doc=handler_doc,
        toml_string=toml_string,
        md_code=md_code,
    )
    return env


_ENV = _environment()


def render(template: str, **context: Any) -> str:
    return _ENV.get_template(template + ".jinja").render(**context)


def exports(spec: Spec) -> list[str]:
    names = set(PUBLIC_NAMES)
    names.update(hook.class_name for hook in spec.webhooks)
    # isort's order (CONSTANTS, Classes, functions), the one ruff's RUF022 expects.
    return sorted(names, key=lambda n: (0 if n.isupper() else 1 if n[0].isupper() else 2, n))


def render_package(
    spec: Spec, package: str, model_names: Mapping[str, str], model_modules: Mapping[str, str]
) -> dict[str, str]:
    """``model_names``: event type -> the name of its model class; ``model_modules``: model
    class -> its module in the models package."""
    context = {
        "spec": spec, "package": package, "exports": exports(spec),
        "model_names": model_names, "model_modules": model_modules,
        "promote_after": PROMOTE_AFTER_PER_WEBHOOK * len(spec.webhooks),
    }  # fmt: skip
    return {name: render(name, **context) for name in PACKAGE_TEMPLATES}


def render_models_init(spec: Spec, where: Mapping[str, str]) -> str:
    """``models/__init__.py``: every model name (``where``: class -> its module), each
    loaded with its module on first use; type checkers see them all."""
    # isort's order (CONSTANTS, Classes), the one ruff's RUF022 expects.
    names = sorted(where, key=lambda n: (0 if n.isupper() else 1, n))
    return render("models/__init__.py", spec=spec, names=names, where=where)


def render_project(spec: Spec, package: str, package_files: Mapping[str, str]) -> dict[str, str]:
    """The files around the package that make it an installable project of its own, and the
    examples it carries as data (read only when the testing kit asks for them)."""
    digest = hashlib.sha256()
    for name, text in sorted(package_files.items()):
        digest.update(name.encode() + b"\0" + text.encode() + b"\0")
    context = {
        "spec": spec,
        "package": package,
        "distribution": package.replace("_", "-"),
        "version": f"{__version__}+code.{digest.hexdigest()[:12]}",
    }
    examples = {hook.event_type: hook.example for hook in spec.webhooks if hook.example is not None}
    return {
        "pyproject.toml": render("project/pyproject.toml", **context),
        "README.md": render("project/README.md", **context),
        f"{package}/_examples.json": json.dumps(examples, indent=1, ensure_ascii=False) + "\n",
    }


def header(spec: Spec) -> str:
    return render("_header", spec=spec).rstrip("\n")
