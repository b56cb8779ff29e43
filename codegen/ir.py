"""The intermediate model: everything the emitters need, read once from the spec.

Emitters work from these objects only; none of them looks at the raw spec document.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .runtime import _parsing

# JSON Schema, as plain data. References always have the form ``#/components/schemas/<name>``.
Schema = Mapping[str, Any]
SCHEMA_PREFIX = "#/components/schemas/"


# How a vendor wraps its events: where a delivery says which event it is, where the payload
# sits, which header names the delivery and how it is signed. One definition for both sides:
# the generator reads it from the spec into the IR, and the generated package holds the same
# class (``events.ENVELOPE``), built from the IR's values.
Envelope = _parsing.Envelope

INCIDENT_IO = Envelope(
    kind="incident.io", type_field="event_type", type_header=None, action_field=None,
    payload="event-key", id_header="webhook-id", signature="standard-webhooks",
)  # fmt: skip
STANDARD_WEBHOOKS = Envelope(
    kind="standard-webhooks", type_field="type", type_header=None, action_field=None,
    payload="data", id_header="webhook-id", signature="standard-webhooks",
)  # fmt: skip
GITHUB = Envelope(
    kind="github", type_field=None, type_header="x-github-event", action_field="action",
    payload="body", id_header="x-github-delivery", signature="github",
)  # fmt: skip
ENVELOPES = {e.kind: e for e in (INCIDENT_IO, STANDARD_WEBHOOKS, GITHUB)}


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
    # The envelope key that holds the payload; incident.io uses the event type itself. None
    # when the event model is the whole body (every envelope but incident.io's): then
    # ``payload_schema`` names the event model itself.
    payload_key: str | None
    # Always a ``$ref`` into ``Spec.schemas``: inline payloads are hoisted and named by the parser.
    payload_schema: Schema
    payload_fields: tuple[PayloadField, ...]
    example: Any | None
    # Where the webhook sits in the spec, for messages.
    pointer: str
    # With a header envelope: the header's value and the body's action (None: any action).
    header_value: str | None = None
    action: str | None = None

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
    envelope: Envelope = INCIDENT_IO
