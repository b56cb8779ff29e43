"""Turns a parsed spec into the project's files, in memory: the build, as its steps. Nothing
on disk changes here (``output.write_tree`` puts the result in place).
"""

from __future__ import annotations

import ast

from .emit.models import event_class_names, render_models
from .emit.split import MODELS_PACKAGE, split_models
from .emit.templates import (
    header,
    render_models_init,
    render_package,
    render_project,
    runtime_modules,
)
from .errors import GenerationError
from .formatting import format_halves
from .ir import Spec
from .output import MANIFEST, manifest


def build(spec: Spec, package: str) -> dict[str, str]:
    """Every file of the project (metadata and package), relative path -> text."""
    # 1. The models, by datamodel-code-generator, as one module.
    models = _models(spec, package)
    # 2. Split into one module per class (cycles together), and the event classes found.
    tree = ast.parse(models)
    model_modules, where = split_models(tree, header(spec))
    names = event_class_names(tree, spec)
    split = {
        f"{MODELS_PACKAGE}/{name}.py": text for name, text in model_modules.items()
    }
    split[f"{MODELS_PACKAGE}/__init__.py"] = render_models_init(spec, where)
    # 3. The modules the spec shapes, naming the event classes as the models do.
    templated = render_package(
        spec, package, names, {n: where[n] for n in names.values()}
    )
    # 4. Formatted, both halves at once for a large spec.
    formatted = format_halves(templated, split, package)
    # 5. The runtime, as it stands, and the typing marker.
    formatted |= runtime_modules()
    formatted["py.typed"] = ""
    # 6. The project around the package, and the manifest of it all.
    files = {f"{package}/{name}": text for name, text in formatted.items()}
    files |= render_project(spec, package, files)
    files[MANIFEST] = manifest(files)
    return dict(sorted(files.items()))


def _models(spec: Spec, package: str) -> str:
    try:
        models = render_models(spec, package, header(spec))
    except GenerationError:
        raise
    except Exception as exc:  # its errors share no base class; re-raised with context
        message = f"datamodel-code-generator could not model the schemas: {exc}"
        raise GenerationError(message) from exc
    if "python-re" in models:
        # Refused patterns never get here (codegen.constraints); this keeps it so.
        raise GenerationError(
            "the models would enforce a pattern with a backtracking engine"
        )
    return models
