"""How spec names become Python names; the same rules everywhere, so names can be guessed."""

from __future__ import annotations

import keyword
import re

# The package's own public names. The generated modules import modules rather than names
# wherever event classes are named, so these are the only names an event class cannot take.
PUBLIC_NAMES = frozenset({
    "AsyncWebhookHandlers", "EVENT_MODELS", "InvalidPayload", "InvalidSignature",
    "UnknownEventType", "WebhookError", "WebhookEvent", "WebhookHandlers", "parse_event",
    "DedupeStore", "InMemoryDedupeStore", "Response", "SignatureVerifier", "WebhookReceiver",
    "verify", "SQLiteDedupeStore", "RedisDedupeStore", "AsyncRedisDedupeStore",
    "StoreUnavailable", "preload",
})  # fmt: skip

_WORD = re.compile(r"[A-Za-z0-9]+")


def class_name(event_type: str) -> str:
    """``private_incident.membership_granted_v1`` -> ``PrivateIncidentMembershipGrantedV1``."""
    name = "".join(word[:1].upper() + word[1:] for word in _WORD.findall(event_type))
    if not name or name[0].isdigit():
        name = "Event" + name
    return name


def handler_name(event_type: str) -> str:
    """``private_incident.membership_granted_v1`` -> ``on_private_incident_membership_granted_v1``."""
    words = [word.lower() for word in _WORD.findall(event_type)]
    return "on_" + "_".join(words) if words else "on_"


def is_identifier(name: str) -> bool:
    return name.isidentifier() and not keyword.iskeyword(name)
