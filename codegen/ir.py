"""The intermediate model: everything the emitters need, read once from the spec.

Emitters work from these objects only; none of them looks at the raw spec document.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# JSON Schema, as plain data. References always have the form ``#/components/schemas/<name>``.
Schema = Mapping[str, Any]
SCHEMA_PREFIX = "#/components/schemas/"


@dataclass(frozen=True)
class PayloadField:
    """One top-level property of a payload, described for people (scaffold comments)."""

    name: str
    type_text: str
    required: bool


@dataclass(frozen=True)
class Webhook:
    event_type: str
    class_name: str
    handler_name: str
    summary: str
    description: str
    tags: tuple[str, ...]
    # The envelope key that holds the payload; incident.io uses the event type itself.
    payload_key: str
    # Always a ``$ref`` into ``Spec.schemas``: inline payloads are hoisted and named by the parser.
    payload_schema: Schema
    payload_fields: tuple[PayloadField, ...]
    example: Any | None
    # Where the webhook sits in the spec, for messages.
    pointer: str

    @property
    def payload_schema_name(self) -> str:
        return str(self.payload_schema["$ref"]).rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Spec:
    source: str
    title: str
    version: str
    # Sorted by event type, so that upstream reordering never changes the generated code.
    webhooks: tuple[Webhook, ...]
    # Every named schema a payload reaches, sorted by name, after the tolerant-reader rules
    # (codegen.schemas); value constraints are kept here, for the diff.
    schemas: Mapping[str, Schema]
    # Whether the models enforce value constraints (lengths, patterns, bounds): off by
    # default, since incident.io relaxes them without notice.
    constraints: bool = False
