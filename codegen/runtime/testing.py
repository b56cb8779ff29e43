"""Test your handlers and endpoints the way incident.io will call them.

* :func:`sign` gives the headers the sender puts on a delivery (Standard Webhooks' three
  for incident.io and every Svix sender; GitHub's for GitHub);
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
import uuid
from datetime import UTC, datetime

from standardwebhooks import Webhook

from . import events, signature


def sign(
    body: bytes | str,
    secret: str,
    *,
    msg_id: str | None = None,
    timestamp: datetime | int | None = None,
    event_type: str | None = None,
) -> dict[str, str]:
    """The headers the sender puts on a delivery of ``body``, signed with ``secret`` by its
    scheme (``events.ENVELOPE``).

    Standard Webhooks (incident.io, Svix senders): ``webhook-id``, ``webhook-timestamp`` and
    ``webhook-signature``, signed by the ``standardwebhooks`` library; ``timestamp`` defaults
    to now. GitHub: ``x-github-delivery``, ``x-hub-signature-256`` and ``x-github-event``,
    the header of ``event_type`` (``issues`` of ``issues.opened``), which is then required.
    ``msg_id`` defaults to a new random id.
    """
    envelope = events.ENVELOPE
    signature.check_secret(secret)
    raw = body.encode("utf-8") if isinstance(body, str) else body
    if envelope.signature == "github":
        if envelope.type_header is not None and not event_type:
            raise TypeError(
                f"sign() needs event_type=: the {envelope.type_header} header names the event"
            )
        digest = signature.github_digest(secret.encode("utf-8"), raw)
        headers = {
            envelope.id_header: msg_id or str(uuid.uuid4()),
            "x-hub-signature-256": "sha256=" + digest,
            "content-type": "application/json",
        }
        if envelope.type_header is not None and event_type:
            headers[envelope.type_header] = event_type.partition(".")[0]
        return headers
    text = raw.decode("utf-8")
    if timestamp is None:
        timestamp = int(time.time())
    at = (
        timestamp
        if isinstance(timestamp, datetime)
        else datetime.fromtimestamp(timestamp, tz=UTC)
    )
    msg_id = msg_id or "msg_" + secrets.token_hex(12)
    return {
        envelope.id_header: msg_id,
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
    headers = None
    if events.ENVELOPE.type_header is not None:
        headers = {events.ENVELOPE.type_header: event_type.partition(".")[0]}
    return events.parse_event(example_body(event_type), headers)
