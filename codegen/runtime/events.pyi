# What the runtime uses of the spec-shaped ``events`` module (codegen/templates/events.py.jinja).
from collections.abc import Mapping
from typing import Any, TypeAlias

from ._base import WebhookModel
from ._parsing import Envelope

# The union of the package's event models (discriminated on the envelope's tag, if any).
WebhookEvent: TypeAlias = Any
EVENT_MODELS: Mapping[str, type[WebhookModel]]
ENVELOPE: Envelope

def parse_event(
    data: bytes | bytearray | str | Mapping[str, Any],
    headers: Mapping[str, str] | None = None,
) -> WebhookEvent: ...
def event_type_of(event: object) -> str: ...
def event_type_of_body(
    data: bytes | bytearray | str | Mapping[str, Any],
    headers: Mapping[str, str] | None = None,
) -> str: ...
def preload() -> None: ...
