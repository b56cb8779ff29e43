"""Paths, payloads and settings every benchmark shares."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


SPEC = ROOT / "spec" / "webhooks.json"


PACKAGE = ROOT / "generated" / "incident_webhooks"


# `make bench` writes here (ignored by git), so running it leaves the tree clean; the
# committed figures in docs/ are refreshed deliberately with `--output docs`.
DEFAULT_OUTPUT = ROOT / "build" / "bench"


SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


ROUNDS = int(os.environ.get("BENCH_ROUNDS", "7"))


SMALL = "private_incident.membership_granted_v1"


LARGE = "public_incident.incident_created_v2"


SDK_MODELS = {
    SMALL: "incident_io.models.webhooks_private_incident_membership_granted_v1_response_body"
    ":WebhooksPrivateIncidentMembershipGrantedV1ResponseBody",
    LARGE: "incident_io.models.webhooks_public_incident_incident_created_v2_response_body"
    ":WebhooksPublicIncidentIncidentCreatedV2ResponseBody",
}


def example(event_type: str) -> bytes:
    doc = json.loads(SPEC.read_text())
    media = doc["webhooks"][event_type]["post"]["responses"]["200"]["content"]["application/json"]
    return json.dumps(media["example"]).encode()


def load(target: str) -> Any:
    module, name = target.split(":")
    return getattr(__import__(module, fromlist=[name]), name)


def tier(number: int, events: Any = None) -> None:
    """Put ``parse_event`` of ``events`` (incident_webhooks.events unless given) in its first
    tier (each body by its own model's validator, never promoted) or its second (the union
    of all models, as after ``PROMOTE_AFTER`` events or ``preload()``): the bench measures
    each on purpose rather than whichever it reached."""
    if events is None:
        from incident_webhooks import events

    if number == 1:
        events._PARSER.union = None
        events.PROMOTE_AFTER = sys.maxsize
    else:
        events.preload()
