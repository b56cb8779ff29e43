"""The layouts incident.io publishes its webhooks in, read into one neutral form.

* The docs' ``webhooks.json``: OpenAPI 3.1, a top-level ``webhooks:`` map keyed by event type.
* The API spec behind incident.io's SDKs: OpenAPI 3.0.x, webhooks under ``x-webhooks`` keyed
  ``/x-webhooks/<event type>``, beside ``/x-audit-logs/...`` items (not webhooks), REST
  ``paths`` and hundreds of schemas that no webhook reaches.

Everything after this module works from :class:`Layout` and never asks which one it was.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import SpecError, SpecProblem, json_pointer

X_WEBHOOKS_PREFIX = "/x-webhooks/"
SUPPORTED = (
    "the docs' webhooks.json (OpenAPI 3.1 `webhooks:`) or incident.io's API spec "
    "(OpenAPI 3.0 `x-webhooks`)"
)


@dataclass(frozen=True)
class HookItem:
    event_type: str
    item: Any
    # Where the path item stands in the document, for messages and $ref resolution.
    at: tuple[str, ...]


@dataclass(frozen=True)
class Layout:
    name: str
    hooks: tuple[HookItem, ...]
    schemas: Mapping[str, Any]
    info: Mapping[str, Any]


def read(doc: Any, source: str) -> Layout:
    def fail(message: str, *pointer: str) -> SpecError:
        return SpecError(source, [SpecProblem(message, json_pointer(*pointer))])

    if not isinstance(doc, Mapping):
        raise fail("the document is not a mapping: not an OpenAPI spec")
    if "swagger" in doc and "openapi" not in doc:
        raise fail(f"Swagger {doc['swagger']} is not supported; give {SUPPORTED}", "swagger")
    version = doc.get("openapi")
    if not (isinstance(version, str) and version.startswith("3.")):
        raise fail(f"not an OpenAPI 3.x document (openapi: {version!r}); give {SUPPORTED}", "openapi")
    docs_hooks = doc.get("webhooks")
    api_hooks = doc.get("x-webhooks")
    if docs_hooks is not None and api_hooks is not None:
        raise SpecError(
            source,
            [
                SpecProblem("webhooks in two layouts: here and at /x-webhooks; keep one", "/webhooks"),
                SpecProblem("webhooks in two layouts: here and at /webhooks; keep one", "/x-webhooks"),
            ],
        )
    hooks: list[HookItem] = []
    if isinstance(docs_hooks, Mapping):
        name = "webhooks"
        hooks = [HookItem(str(k), v, ("webhooks", str(k))) for k, v in docs_hooks.items()]
    elif isinstance(api_hooks, Mapping):
        name = "x-webhooks"
        # Audit-log entries share the map and are not webhooks; they are skipped unread.
        hooks = [
            HookItem(key[len(X_WEBHOOKS_PREFIX) :], value, ("x-webhooks", key))
            for key, value in api_hooks.items()
            if isinstance(key, str) and key.startswith(X_WEBHOOKS_PREFIX)
            and key != X_WEBHOOKS_PREFIX
        ]  # fmt: skip
    if not hooks:
        raise fail(
            "the spec has no webhooks (expected a non-empty `webhooks:` map, or "
            "`x-webhooks` entries keyed /x-webhooks/<event type>)"
        )
    components = doc.get("components", {})
    schemas = components.get("schemas", {}) if isinstance(components, Mapping) else {}
    info = doc.get("info")
    return Layout(
        name=name,
        hooks=tuple(sorted(hooks, key=lambda h: h.event_type)),
        schemas=schemas if isinstance(schemas, Mapping) else {},
        info=info if isinstance(info, Mapping) else {},
    )
