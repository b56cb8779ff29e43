# What the runtime uses of the spec-shaped ``handlers`` module (codegen/templates/handlers.py.jinja).
from collections.abc import Mapping
from typing import Any

from .events import WebhookEvent

HANDLER_NAMES: Mapping[str, str]

class WebhookHandlers:
    def on_unknown(self, event_type: str, payload: Mapping[str, Any]) -> None: ...
    def dispatch(self, event: WebhookEvent) -> None: ...
    def handle(
        self,
        body: bytes | bytearray | str | Mapping[str, Any],
        headers: Mapping[str, str] | None = None,
    ) -> None: ...

class AsyncWebhookHandlers:
    async def on_unknown(self, event_type: str, payload: Mapping[str, Any]) -> None: ...
    async def dispatch(self, event: WebhookEvent) -> None: ...
    async def handle(
        self,
        body: bytes | bytearray | str | Mapping[str, Any],
        headers: Mapping[str, str] | None = None,
    ) -> None: ...
