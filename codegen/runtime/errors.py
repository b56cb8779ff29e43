"""The errors this package raises: about a delivery (:class:`WebhookError`), and about a
store (:class:`StoreUnavailable`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError


class WebhookError(Exception):
    """Base class of this package's errors about a delivery."""


class StoreUnavailable(Exception):
    """A store (the dedupe store, the inbox) could not be reached, or refused the request;
    nothing was dispatched or stored. Not a WebhookError: the delivery was fine."""


class UnknownEventType(WebhookError):
    """The body names an event type this package was not generated with.

    incident.io adds webhooks over time; receivers should acknowledge these, not fail.
    """

    def __init__(self, event_type: str, payload: Mapping[str, Any]) -> None:
        self.event_type = event_type
        self.payload = payload
        super().__init__(f"unknown event type {event_type!r}")


class InvalidPayload(WebhookError):
    """The body is not valid JSON, or does not match the schema of its event type."""

    def __init__(
        self,
        message: str,
        validation_error: ValidationError | None = None,
        *,
        event_type: str = "",
    ) -> None:
        self.validation_error = validation_error
        # The event type the body names, when it names a known one ("" otherwise).
        self.event_type = event_type
        super().__init__(message)

    @property
    def errors(self) -> list[dict[str, Any]]:
        """Pydantic's error details (location, message, type), one per problem."""
        if self.validation_error is None:
            return []
        return [dict(e) for e in self.validation_error.errors(include_url=False)]


class InvalidSignature(WebhookError):
    """The request was not signed by incident.io with a known secret, or is too old."""

    def __init__(self, message: str, *, stale: bool = False) -> None:
        # True when the signature may be right but the timestamp is outside the tolerance
        # (a replay, or a clock that is off), as opposed to a wrong or malformed signature.
        self.stale = stale
        super().__init__(message)
