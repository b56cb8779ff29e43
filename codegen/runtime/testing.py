"""Test your handlers and endpoints the way incident.io will call them.

* :func:`sign` gives the three headers incident.io's sender (Svix) puts on a delivery;
* :func:`example` and :func:`example_body` give the spec's example of every webhook, as its
  model or as the bytes of a request body.

Nothing here is needed at run time, and nothing here is imported with the package: the
examples are read from the package's data only when first asked for.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
import secrets
import time
import typing
from datetime import UTC, datetime

from standardwebhooks import Webhook

from . import events, signature


def sign(
    body: bytes | str,
    secret: str,
    *,
    msg_id: str | None = None,
    timestamp: datetime | int | None = None,
) -> dict[str, str]:
    """``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` for ``body``, signed
    with ``secret`` (``whsec_...``) by the Standard Webhooks library, as incident.io does.

    ``msg_id`` defaults to a new random id; ``timestamp`` to now.
    """
    signature.check_secret(secret)
    text = body.decode("utf-8") if isinstance(body, bytes) else body
    if timestamp is None:
        timestamp = int(time.time())
    at = (
        timestamp
        if isinstance(timestamp, datetime)
        else datetime.fromtimestamp(timestamp, tz=UTC)
    )
    msg_id = msg_id or "msg_" + secrets.token_hex(12)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, at, text),
        "content-type": "application/json",
    }


@functools.cache
def _examples() -> dict[str, typing.Any]:
    data = (
        importlib.resources.files(__package__)
        .joinpath("_examples.json")
        .read_text("utf-8")
    )
    examples: dict[str, typing.Any] = json.loads(data)
    return examples


def event_types() -> list[str]:
    """Every event type this package has an example of."""
    return sorted(_examples())


def example_body(event_type: str) -> bytes:
    """The spec's example of ``event_type``, as the bytes incident.io would send."""
    try:
        return json.dumps(_examples()[event_type]).encode()
    except KeyError:
        raise KeyError(
            f"no example of {event_type!r}; known: {', '.join(event_types())}"
        ) from None


def example(event_type: str) -> events.WebhookEvent:
    """The spec's example of ``event_type``, parsed into its model."""
    return events.parse_event(example_body(event_type))
