"""``verify``: the Standard Webhooks signature check, against honest and hostile headers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from incident_webhooks import InvalidSignature, SignatureVerifier, WebhookError, verify
from standardwebhooks import Webhook
from test_receiver import OTHER_SECRET, SECRET, sign

BODY = b'{"event_type": "private_incident.membership_granted_v1"}'


def test_a_correctly_signed_body_verifies() -> None:
    verify(BODY, sign(BODY), SECRET)


def test_several_signatures_in_one_header_are_accepted_when_any_matches() -> None:
    headers = sign(BODY)
    other = sign(BODY, secret=OTHER_SECRET)["webhook-signature"]
    headers["webhook-signature"] = f"{other} v2,ignored= {headers['webhook-signature']}"
    verify(BODY, headers, SECRET)


def test_any_of_several_secrets_is_accepted() -> None:
    verify(BODY, sign(BODY, secret=OTHER_SECRET), [SECRET, OTHER_SECRET])


def test_the_tolerance_is_the_callers() -> None:
    old = sign(BODY, at=datetime.now(UTC) - timedelta(seconds=600))
    with pytest.raises(InvalidSignature, match="old"):
        verify(BODY, old, SECRET)
    verify(BODY, old, SECRET, tolerance=900)


def test_the_signature_covers_the_exact_bytes() -> None:
    with pytest.raises(InvalidSignature, match="matches"):
        verify(BODY + b" ", sign(BODY), SECRET)


def _with(**changes: str | None) -> dict[str, str]:
    headers = sign(BODY)
    for name, value in changes.items():
        key = name.replace("_", "-")
        if value is None:
            headers.pop(key)
        else:
            headers[key] = value
    return headers


GOOD = sign(BODY)["webhook-signature"]
HOSTILE = {
    "no-id": _with(webhook_id=None),
    "no-timestamp": _with(webhook_timestamp=None),
    "no-signature": _with(webhook_signature=None),
    "empty-id": _with(webhook_id=""),
    "empty-signature": _with(webhook_signature=""),
    "blank-signature": _with(webhook_signature="   "),
    "garbage-signature": _with(webhook_signature="garbage"),
    "missing-comma": _with(webhook_signature="v1" + GOOD[3:]),
    "wrong-version": _with(webhook_signature="v2," + GOOD[3:]),
    "empty-v1": _with(webhook_signature="v1,"),
    "bad-base64": _with(webhook_signature="v1,@@@not-base64@@@"),
    "truncated-base64": _with(webhook_signature=GOOD[:-5]),
    "unicode-signature": _with(webhook_signature="v1,ŝïĝñåţüŕé=="),
    "unicode-timestamp": _with(webhook_timestamp="١٧٠٠٠٠٠٠٠٠"),
    "huge-signature": _with(webhook_signature="v1," + "A" * 100_000),
    "many-signatures": _with(webhook_signature=" ".join(["v1,AAAA"] * 5000)),
    "huge-id": _with(webhook_id="m" * 100_000),
    "float-timestamp": _with(webhook_timestamp="1700000000.5"),
    "negative-timestamp": _with(webhook_timestamp="-1"),
    "huge-timestamp": _with(webhook_timestamp="9" * 400),
    "text-timestamp": _with(webhook_timestamp="yesterday"),
    "zero-timestamp": _with(webhook_timestamp="0"),
}


@pytest.mark.parametrize("headers", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_headers_raise_invalid_signature_and_nothing_else(headers: dict[str, str]) -> None:
    with pytest.raises(InvalidSignature) as caught:
        verify(BODY, headers, SECRET)
    assert isinstance(caught.value, WebhookError)


def test_a_body_that_is_not_utf8_is_refused_cleanly() -> None:
    body = b"\xff\xfe{}"
    headers = sign(b"{}")
    with pytest.raises(InvalidSignature):
        verify(body, headers, SECRET)


def test_a_verifier_is_built_once_and_reused() -> None:
    verifier = SignatureVerifier(SECRET)
    for n in range(3):
        verifier.verify(BODY, sign(BODY, f"m{n}"))


def test_the_library_and_this_package_agree_on_the_scheme() -> None:
    # What standardwebhooks itself accepts, verify accepts, and the reverse.
    headers = sign(BODY)
    Webhook(SECRET).verify(BODY, headers)
    verify(BODY, headers, SECRET)


def test_the_tolerance_boundary_is_inclusive_in_both_directions() -> None:
    sent = datetime(2026, 1, 1, tzinfo=UTC)
    headers = sign(BODY, at=sent)
    verifier = SignatureVerifier(SECRET, tolerance=300)
    for seconds in (-300, 0, 300):
        verifier.verify(BODY, headers, now=sent + timedelta(seconds=seconds))
    for seconds in (-301, 301):
        with pytest.raises(InvalidSignature):
            verifier.verify(BODY, headers, now=sent + timedelta(seconds=seconds))
