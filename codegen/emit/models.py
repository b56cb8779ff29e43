"""The models, written by datamodel-code-generator from the intermediate model.

Everything is set through its options (names, aliases, base classes, enum bases); its output
is never patched, only split into modules whole (``split.py``).
"""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import json
import warnings
from pathlib import Path
from typing import Any

from datamodel_code_generator import LiteralType, PythonVersion, generate
from datamodel_code_generator.enums import (
    DataModelType,
    InputFileType,
    NamingStrategy,
    OpenAPIScope,
)

from ..cache import cached
from ..errors import GenerationError
from ..ir import Spec, Webhook
from ..schemas import without_constraints

# The generated event models reach their payload through this attribute, whatever its JSON key.
PAYLOAD_ATTRIBUTE = "payload"


def envelope_schema(hook: Webhook) -> dict[str, Any]:
    """The event model's schema: ``event_type`` narrowed to this webhook's own type, which is
    what lets a union of all events discriminate on it."""
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            "event_type": {"type": "string", "const": hook.event_type},
            hook.payload_key: dict(hook.payload_schema),
        },
        "required": ["event_type", hook.payload_key],
    }
    doc = "\n\n".join(part for part in (hook.summary, hook.description) if part)
    if doc:
        schema["description"] = doc
    return schema


def openapi_document(spec: Spec) -> dict[str, Any]:
    keep = dict if spec.constraints else without_constraints
    schemas: dict[str, Any] = {name: keep(schema) for name, schema in spec.schemas.items()}
    for hook in spec.webhooks:
        if hook.payload_key is not None:
            schemas[hook.class_name] = envelope_schema(hook)
    return {
        "openapi": "3.1.0",
        "info": {"title": spec.title or "webhooks", "version": spec.version or "0"},
        "paths": {},
        "components": {"schemas": schemas},
    }


# Formats whose default type would fail the package or the tolerant reader, and what they are
# read as instead. Every other format keeps its type (a date-time is still checked).
TYPE_MAPPINGS = [
    # Types from modules the package does not depend on: pydantic's EmailStr needs
    # email-validator, a ULID the ulid package. The value is still the string sent.
    "email=string", "idn-email=string", "ulid=string",
    # Types that rewrite or hide what was sent, so a body no longer round-trips: AnyUrl adds
    # a trailing slash, SecretStr dumps as stars, Base64Str decodes. Kept as strings.
    "uri=string", "password=string", "byte=string",
    # Checks stricter than the type: a UUID of another version, a host name against a
    # pattern, are still valid data from a producer's point of view.
    "uuid1=uuid", "uuid3=uuid", "uuid4=uuid", "uuid5=uuid",
    # A value read as another JSON type would come back as that type: a number as a time,
    # a string as a number, a number as a Decimal (which pydantic writes as a string).
    "integer+date-time=integer", "number+date-time=number", "number+time=number",
    "number+time-delta=number", "number+unixtime=number", "number+decimal=number",
    "string+integer=string", "string+unixtime=string",
]  # fmt: skip


# What decides the models besides the document: the tool's version and the options below.
_GENERATOR = (
    f"datamodel-code-generator {importlib.metadata.version('datamodel-code-generator')} "
    + hashlib.sha256(Path(__file__).read_bytes()).hexdigest()
)


def render_models(spec: Spec, package: str, header: str) -> str:
    document = openapi_document(spec)
    key = json.dumps([_GENERATOR, package, header, document], sort_keys=True, default=repr)
    return cached("models", key, lambda: _render_models(spec, document, package, header))


def _render_models(
    spec: Spec, document: dict[str, Any], package: str, header: str
) -> str:
    base = f"{package}._base"
    with warnings.catch_warnings():
        # It warns about its own future defaults; the options below are explicit.
        warnings.simplefilter("ignore")
        code = generate(
            document,
            input_file_type=InputFileType.OpenAPI,
            openapi_scopes=[OpenAPIScope.Schemas],
            output_model_type=DataModelType.PydanticV2BaseModel,
            target_python_version=PythonVersion.PY_311,
            # Names come from the spec: nested enums and objects are named after their parent
            # schema and property (IncidentV2Mode), never numbered (Mode1, Mode2).
            naming_strategy=NamingStrategy.FullPath,
            aliases={
                f"{h.class_name}.{h.payload_key}": PAYLOAD_ATTRIBUTE
                for h in spec.webhooks
                if h.payload_key is not None
            },
            # Config (unknown properties kept, population by name) lives on one base class.
            base_class=f"{base}.WebhookModel",
            # Enum classes derive from the package's open enums, which accept values added
            # upstream after generation instead of failing the whole event.
            import_overrides={"StrEnum": base, "IntEnum": base, "RootModel": f"{package}._root"},
            use_subclass_enum=True,
            # A default of an enum type is its member, as the annotation says, not the bare
            # value (which mypy --strict refuses).
            set_default_enum_member=True,
            type_mappings=TYPE_MAPPINGS,
            enum_field_as_literal=LiteralType.Off,
            use_annotated=True,
            use_double_quotes=True,
            use_schema_description=True,
            use_field_description=True,
            keep_model_order=True,
            disable_timestamp=True,
            strict_refs=True,
            custom_file_header=header,
            formatters=[],  # one formatting pass, for every file, in project.py
        )
    if not isinstance(code, str):
        raise GenerationError("datamodel-code-generator split the models into several modules")
    return code


def event_class_names(tree: ast.Module, spec: Spec) -> dict[str, str]:
    """Event type -> the class that models it in the parsed models module ``tree``.

    datamodel-code-generator renames a class whose name the module already imports (an
    event ``field`` becomes ``FieldModel``, beside pydantic's ``Field``); the other modules
    must use the name it chose. Each event class is found by what it is: the class with
    ``event_type: Literal["<its type>"]`` and the payload attribute.
    """
    found: dict[str, list[str]] = {}
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        fields = {
            item.target.id: item.annotation
            for item in node.body
            if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name)
        }
        tag = fields.get("event_type")
        if (
            PAYLOAD_ATTRIBUTE in fields
            and isinstance(tag, ast.Subscript)
            and isinstance(tag.value, ast.Name)
            and tag.value.id == "Literal"
            and isinstance(tag.slice, ast.Constant)
            and isinstance(tag.slice.value, str)
        ):
            found.setdefault(tag.slice.value, []).append(node.name)
    names: dict[str, str] = {}
    classes = {node.name for node in tree.body if isinstance(node, ast.ClassDef)}
    for hook in spec.webhooks:
        if hook.payload_key is None:
            # The event model is the body's schema, named by the parser; renamed like any
            # class that meets an imported name.
            chosen = next(
                (n for n in (hook.class_name, hook.class_name + "Model") if n in classes), None
            )
            if chosen is None:
                raise GenerationError(f"cannot find the model class of {hook.event_type!r}")
            names[hook.event_type] = chosen
            continue
        candidates = found.get(hook.event_type, [])
        if hook.class_name in candidates:
            names[hook.event_type] = hook.class_name
        elif len(candidates) == 1:
            names[hook.event_type] = candidates[0]
        else:
            raise GenerationError(f"cannot find the model class of {hook.event_type!r}")
    return names

