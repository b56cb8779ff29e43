"""Which envelope a spec's webhooks come in: configured (``[tool.codegen] envelope`` or
``--envelope``), else inferred from what the spec says.

Inference, in order (the first that fits every webhook wins):

1. A header parameter ``X-GitHub-Event`` on the operations: GitHub's envelope (the event in
   that header, the action in the body, the payload the whole body, signed with
   ``X-Hub-Signature-256``).
2. Every body has ``event_type``, and the payload sits beside it under the event type's
   name (or ``event_type`` is not narrowed per webhook): incident.io's envelope.
3. One body property that every webhook narrows to a value of its own (a ``const`` or a
   one-value ``enum``): that property names the event type, as in Standard Webhooks'
   ``{type, data}`` (Svix, Resend, OpenAI, ...). The payload is ``data`` when every body has
   one, else the whole body; deliveries are signed the Standard Webhooks way.

A spec none of these fits is refused with the setting that would make it generate.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from .ir import ENVELOPES, GITHUB, INCIDENT_IO, STANDARD_WEBHOOKS, Envelope

SETTING = '[tool.codegen] envelope = "incident.io" | "standard-webhooks" | "github"'
# Property names tried first when several could name the event type.
_TAG_NAMES = ("type", "event_type", "event", "eventType", "webhook_type", "kind")
SIGNATURES = ("standard-webhooks", "github")
# The fields of ``[tool.codegen.envelope]`` as spelled in TOML, and the IR's names.
_KEYS = {f.name.replace("_", "-"): f.name for f in fields(Envelope)}


class EnvelopeSettingError(ValueError):
    """A configured envelope that cannot be used (the message names the setting)."""


@dataclass(frozen=True)
class Body:
    """What inference sees of one webhook: its key, operation and resolved body schema."""

    key: str
    operation: Mapping[str, Any]
    schema: Any


def from_setting(value: Any) -> Envelope:
    """``envelope = "github"``, or a table: ``kind`` (a preset to start from, default
    "custom" from Standard Webhooks') and any field spelled out (``type-field = "kind"``)."""
    if isinstance(value, str):
        if value not in ENVELOPES:
            raise EnvelopeSettingError(
                f"envelope {value!r} is not one of {', '.join(sorted(ENVELOPES))}"
            )
        return ENVELOPES[value]
    if not isinstance(value, Mapping):
        raise EnvelopeSettingError("envelope must be a kind's name or a table of fields")
    unknown = sorted(str(k) for k in value if k not in _KEYS)
    if unknown:
        raise EnvelopeSettingError(
            f"unknown envelope field(s) {', '.join(unknown)}; known: {', '.join(sorted(_KEYS))}"
        )
    kind = value.get("kind", "custom")
    base = ENVELOPES.get(str(kind), STANDARD_WEBHOOKS)
    changes: dict[str, Any] = {}
    for key, name in _KEYS.items():
        if key in value and key != "kind":
            given = value[key]
            if given is not None and not (isinstance(given, str) and given.strip()):
                raise EnvelopeSettingError(f"envelope {key} must be a non-empty string")
            changes[name] = given.lower() if given and name.endswith("header") else given
    envelope = replace(base, kind=str(kind) if kind in ENVELOPES and not changes else "custom", **changes)
    check(envelope)
    return envelope


def check(envelope: Envelope) -> None:
    if (envelope.type_field is None) == (envelope.type_header is None):
        raise EnvelopeSettingError(
            "envelope needs exactly one of type-field (a body property) or type-header"
        )
    if envelope.action_field is not None and envelope.type_header is None:
        raise EnvelopeSettingError("envelope action-field goes with type-header")
    if envelope.payload == "event-key" and envelope.type_field is None:
        raise EnvelopeSettingError('envelope payload = "event-key" needs a type-field')
    if envelope.signature not in SIGNATURES:
        raise EnvelopeSettingError(
            f"envelope signature {envelope.signature!r} is not one of {', '.join(SIGNATURES)}"
        )


def single_value(schema: Any, name: str, follow: Callable[[Any], Any]) -> str | None:
    """The one string property ``name`` always has in ``schema`` (``const`` or a one-value
    ``enum``), looking through ``$ref`` and into compositions whose members all agree."""
    schema = follow(schema)
    if not isinstance(schema, Mapping):
        return None
    properties = schema.get("properties")
    if isinstance(properties, Mapping) and name in properties:
        prop = follow(properties[name])
        if isinstance(prop, Mapping):
            if isinstance(prop.get("const"), str):
                return str(prop["const"])
            enum = prop.get("enum")
            if isinstance(enum, list) and len(enum) == 1 and isinstance(enum[0], str):
                return enum[0]
        return None
    for key in ("oneOf", "anyOf", "allOf"):
        members = schema.get(key)
        if isinstance(members, list) and members:
            found = {single_value(m, name, follow) for m in members}
            if key == "allOf":
                found.discard(None)
            if len(found) == 1:
                return found.pop()
    return None


def properties(schema: Any) -> Mapping[str, Any]:
    """A schema's ``properties``, or none when it has no such mapping."""
    properties = schema.get("properties") if isinstance(schema, Mapping) else None
    return properties if isinstance(properties, Mapping) else {}


def _headers(operation: Mapping[str, Any], follow: Callable[[Any], Any]) -> set[str]:
    found = set()
    parameters = operation.get("parameters")
    for parameter in parameters if isinstance(parameters, list) else ():
        parameter = follow(parameter)
        if isinstance(parameter, Mapping) and parameter.get("in") == "header":
            found.add(str(parameter.get("name", "")).lower())
    return found


def _narrowed(bodies: list[Body], name: str, follow: Callable[[Any], Any]) -> bool:
    """Whether every webhook narrows property ``name`` to a value no other one has."""
    values = [single_value(b.schema, name, follow) for b in bodies]
    return None not in values and len(set(values)) == len(values)


def infer(bodies: list[Body], follow: Callable[[Any], Any]) -> Envelope | str:
    """The envelope every webhook fits, or why none does (a message naming the setting)."""
    if any("x-github-event" in _headers(b.operation, follow) for b in bodies):
        return GITHUB
    if all("event_type" in properties(b.schema) for b in bodies) and (
        any(b.key in properties(b.schema) for b in bodies)
        or not _narrowed(bodies, "event_type", follow)
    ):
        # A webhook that then has no payload property of its own is reported at it.
        return INCIDENT_IO
    common = set.intersection(*(set(properties(b.schema)) for b in bodies))
    candidates = sorted(common, key=lambda n: (n not in _TAG_NAMES, _TAG_NAMES.index(n) if n in _TAG_NAMES else 0, n))
    for name in candidates:
        if _narrowed(bodies, name, follow):
            payload = "data" if "data" in common and name != "data" else "body"
            return replace(STANDARD_WEBHOOKS, type_field=name, payload=payload,
                           kind="standard-webhooks" if name == "type" and payload == "data" else "custom")
    return (
        "cannot tell where a delivery says which event it is: no header X-GitHub-Event, no "
        "event_type beside one payload property, and no body property that each webhook "
        f"narrows to a value of its own (const or one-value enum). Set {SETTING}, or spell the "
        'fields out: [tool.codegen.envelope] type-field = "<property>" (or type-header), '
        'payload = "data" | "body" | "event-key"'
    )
