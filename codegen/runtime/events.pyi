# What the runtime uses of the spec-shaped ``events`` module (codegen/templates/events.py.jinja).
from collections.abc import Mapping
from typing import Any, TypeAlias

from ._base import WebhookModel

# The union of the package's event models, discriminated on ``event_type``.
WebhookEvent: TypeAlias = Any
EVENT_MODELS: Mapping[str, type[WebhookModel]]

def parse_event(data: bytes | bytearray | str | Mapping[str, Any]) -> WebhookEvent: ...
def preload() -> None: ...
