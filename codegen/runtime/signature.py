"""Checks that a request really comes from the sender, by the scheme its spec's envelope
names (``events.ENVELOPE.signature``):

* ``standard-webhooks`` (incident.io, every Svix sender, ...): ``"{webhook-id}.
  {webhook-timestamp}.{body}"`` signed with HMAC-SHA256 under the endpoint's ``whsec_...``
  secret, sent as ``webhook-signature: v1,<base64> [v1,<base64> ...]``. The HMAC itself is
  computed by the ``standardwebhooks`` library; this module reads the headers defensively and
  applies the caller's clock tolerance.
* ``github``: ``x-hub-signature-256: sha256=<hex>``, HMAC-SHA256 of the body under the
  webhook's secret, as GitHub documents it. No library implements it; the comparison is
  constant-time. The scheme has no timestamp, so a captured delivery can be replayed: the
  dedupe store (or the inbox) is what refuses it, by ``x-github-delivery``.

Both accept several secrets, so that a secret can be rotated without dropping deliveries.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import re
import time
from base64 import b64decode
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from standardwebhooks import Webhook

from ._parsing import lookup_header
from .errors import InvalidSignature
from .events import ENVELOPE

DEFAULT_TOLERANCE_SECONDS = 300
# Far more than Svix ever sends (one signature per active secret); a longer header is refused
# before any work, so a hostile one cannot make verification slow.
MAX_SIGNATURE_HEADER_LENGTH = 4096
MAX_ID_LENGTH = 256
SVIX_NAMES = {
    "webhook-id": "svix-id",
    "webhook-timestamp": "svix-timestamp",
    "webhook-signature": "svix-signature",
}
# A day: longer would accept replays of deliveries incident.io stopped retrying long ago.
MAX_TOLERANCE_SECONDS = 24 * 3600
_SECRET = re.compile(r"(?:whsec_)?([A-Za-z0-9+/]+={0,2})")
# Svix's secrets are 24 bytes; a key this short is a typo or a placeholder, and an HMAC key of
# a few bytes is guessable.
MIN_SECRET_BYTES = 16


class SignatureVerifier:
    """Verifies requests against one or more secrets, by the sender's scheme; build it once,
    use it for every request."""

    def __init__(
        self, secret: str | Sequence[str], *, tolerance: int = DEFAULT_TOLERANCE_SECONDS
    ) -> None:
        self._scheme: StandardWebhooksVerifier | GitHubVerifier = (
            GitHubVerifier(secret)
            if ENVELOPE.signature == "github"
            else StandardWebhooksVerifier(secret, tolerance=tolerance)
        )
        self.tolerance = tolerance

    def verify(
        self, body: bytes, headers: Mapping[str, str], *, now: datetime | None = None
    ) -> None:
        """Raise :class:`InvalidSignature` unless ``body`` was signed with one of the secrets
        (and, where the scheme has a timestamp, within ``tolerance`` seconds of ``now``).
        Header names are case-insensitive."""
        self._scheme.verify(body, headers, now=now)


class GitHubVerifier:
    """GitHub's ``x-hub-signature-256`` scheme (see the module docstring)."""

    def __init__(self, secret: str | Sequence[str]) -> None:
        secrets = [secret] if isinstance(secret, str) else list(secret)
        if not secrets:
            raise ValueError("at least one webhook secret is needed")
        self._keys = [check_secret(s, "github").encode("utf-8") for s in secrets]

    def verify(
        self,
        body: bytes,
        headers: Mapping[str, str],
        *,
        now: datetime | None = None,  # the scheme has no timestamp
    ) -> None:
        delivery = header(headers, ENVELOPE.id_header)
        given = header(headers, "x-hub-signature-256")
        if len(given) > MAX_SIGNATURE_HEADER_LENGTH or len(delivery) > MAX_ID_LENGTH:
            raise InvalidSignature(
                f"x-hub-signature-256 or {ENVELOPE.id_header} header is too long"
            )
        scheme, _, digest = given.partition("=")
        if scheme != "sha256" or len(digest) != 64:
            raise InvalidSignature(
                "x-hub-signature-256 must look like sha256=<64 hex digits>"
            )
        candidate = digest.lower().encode("ascii", "replace")
        for key in self._keys:
            if hmac.compare_digest(github_digest(key, body).encode(), candidate):
                return
        raise InvalidSignature("x-hub-signature-256 matches no known secret")


def github_digest(key: bytes, body: bytes) -> str:
    """The hex HMAC-SHA256 of ``body`` under ``key``: what follows ``sha256=`` in GitHub's
    ``x-hub-signature-256``."""
    return hmac.new(key, body, hashlib.sha256).hexdigest()


class StandardWebhooksVerifier:
    """The Standard Webhooks scheme (see the module docstring)."""

    def __init__(
        self, secret: str | Sequence[str], *, tolerance: int = DEFAULT_TOLERANCE_SECONDS
    ) -> None:
        secrets = [secret] if isinstance(secret, str) else list(secret)
        if not secrets:
            raise ValueError("at least one webhook secret is needed")
        if (
            isinstance(tolerance, bool)
            or not isinstance(tolerance, int)
            or not 0 <= tolerance <= MAX_TOLERANCE_SECONDS
        ):
            raise ValueError(
                f"tolerance must be a whole number of seconds from 0 to {MAX_TOLERANCE_SECONDS}"
            )
        self._signers = [_signer(s) for s in secrets]
        self.tolerance = tolerance

    def verify(
        self, body: bytes, headers: Mapping[str, str], *, now: datetime | None = None
    ) -> None:
        """Raise :class:`InvalidSignature` unless ``body`` was signed with one of the secrets
        within ``tolerance`` seconds of ``now``. Header names are case-insensitive."""
        msg_id = header(headers, "webhook-id")
        signatures = header(headers, "webhook-signature")
        if len(signatures) > MAX_SIGNATURE_HEADER_LENGTH or len(msg_id) > MAX_ID_LENGTH:
            raise InvalidSignature("webhook-signature or webhook-id header is too long")
        clock = time.time() if now is None else now.timestamp()
        sent_at = _check_timestamp(
            header(headers, "webhook-timestamp"), clock, self.tolerance
        )
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidSignature(
                "the body is not UTF-8, so it cannot be signed"
            ) from None
        expected = [
            signer.sign(msg_id, sent_at, text).encode() for signer in self._signers
        ]
        # Fast path: Svix sends exactly what the library computes ("v1,<base64>").
        for entry in signatures.split():
            candidate = entry.encode("utf-8", "surrogateescape")
            for wanted in expected:
                if hmac.compare_digest(wanted, candidate):
                    return
        # Slow path, for failures only: read every entry strictly (a malformed header is
        # reported as such) and compare decoded bytes, so another base64 spelling of the
        # right signature is still accepted.
        passed = _decode_signatures(signatures)
        digests = [b64decode(e.split(b",", 1)[1]) for e in expected]
        if any(hmac.compare_digest(d, p) for d in digests for p in passed):
            return
        raise InvalidSignature(
            "no signature in webhook-signature matches a known secret"
        )


def verify(
    body: bytes,
    headers: Mapping[str, str],
    secret: str | Sequence[str],
    *,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
) -> None:
    """Raise :class:`InvalidSignature` unless the sender signed ``body`` with ``secret``.

    ``secret`` may be a list during a rotation: any one of them is accepted.
    """
    SignatureVerifier(secret, tolerance=tolerance).verify(body, headers)


def header(headers: Mapping[str, str], name: str) -> str:
    """The value of header ``name`` (lower case), whatever case the mapping uses.

    Raises :class:`InvalidSignature` when it is missing, blank or not text (a header with
    non-UTF-8 bytes arrives with lone surrogates, which nothing can sign or compare).
    """
    value = lookup_header(headers, name)
    if value is None and name in SVIX_NAMES:
        # The names the svix library sends and accepts too.
        value = lookup_header(headers, SVIX_NAMES[name])
    if not isinstance(value, str) or not value.strip():
        raise InvalidSignature(f"missing {name} header")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidSignature(f"the {name} header is not text") from None
    return value.strip()


def loggable_id(headers: Mapping[str, str]) -> str:
    """The delivery's id as sent, made safe for a log line (escaped, cut short), for the
    answers given before the id could be trusted."""
    value = lookup_header(headers, ENVELOPE.id_header)
    if value is None and ENVELOPE.id_header in SVIX_NAMES:
        value = lookup_header(headers, SVIX_NAMES[ENVELOPE.id_header])
    return "(none)" if value is None else ascii(str(value))[1:-1][:80]


def check_secret(secret: object, scheme: str = ENVELOPE.signature) -> str:
    """The secret as given, or ValueError with one line saying what is wrong with it.

    A secret that the library would accept but that cannot be the one incident.io signs
    with (a space around it, ``WHSEC_``, not base64) is refused here, at start-up, instead
    of turning every delivery into a 401.
    """
    if isinstance(secret, str) and secret != secret.strip():
        # One rule everywhere (the verifier, serve, send, the environment): a secret pasted
        # with a space or a newline around it is refused, never silently trimmed.
        wanted = (
            "the secret exactly as set on the webhook"
            if scheme == "github"
            else "the whsec_<base64> value exactly as incident.io's webhook settings show it"
        )
        raise ValueError(
            f"the webhook secret has a space or a line break around it: give {wanted}"
        )
    if scheme == "github":
        # Any text the webhook's owner chose; short ones are guessable offline from one
        # captured delivery.
        if (
            not isinstance(secret, str)
            or len(secret.encode("utf-8", "replace")) < MIN_SECRET_BYTES
        ):
            raise ValueError(
                f"a webhook secret must be text of at least {MIN_SECRET_BYTES} bytes (the one "
                "set on the webhook)"
            )
        return secret
    match = _SECRET.fullmatch(secret) if isinstance(secret, str) else None
    if match is None or not isinstance(secret, str):
        raise ValueError(
            "a webhook secret must be the whsec_<base64> value from incident.io's webhook "
            "settings (or its bare base64), with nothing around it"
        )
    try:
        key = b64decode(match.group(1), validate=True)
    except (binascii.Error, ValueError):
        where = "after whsec_ " if secret.startswith("whsec_") else ""
        raise ValueError(
            f"the webhook secret {where}is not valid base64 (expected the whsec_<base64> "
            "value from incident.io's webhook settings)"
        ) from None
    if not key:
        raise ValueError("the webhook secret is empty")
    if len(key) < MIN_SECRET_BYTES:
        raise ValueError(
            f"the webhook secret is {len(key)} bytes long, too short to be incident.io's "
            f"(at least {MIN_SECRET_BYTES}; theirs are 24): copy the whole whsec_... value"
        )
    return secret


def _signer(secret: str) -> Webhook:
    check_secret(secret)
    try:
        return Webhook(secret)
    except Exception as exc:  # the library raises several types for a bad secret
        raise ValueError(
            "a webhook secret must be the whsec_... value from incident.io's webhook settings"
        ) from exc


def _check_timestamp(value: str, now: float, tolerance: int) -> datetime:
    # isascii() first: isdigit() alone accepts digits of other scripts.
    if not (value.isascii() and value.isdigit() and len(value) <= 12):
        raise InvalidSignature("webhook-timestamp header is not a Unix time in seconds")
    sent_at = int(value)
    skew = now - sent_at
    if skew > tolerance:
        raise InvalidSignature(
            f"webhook-timestamp is {int(skew)}s old (tolerance {tolerance}s)",
            stale=True,
        )
    if -skew > tolerance:
        raise InvalidSignature(
            f"webhook-timestamp is {int(-skew)}s in the future", stale=True
        )
    try:
        return datetime.fromtimestamp(sent_at, tz=UTC)
    except (ValueError, OverflowError, OSError):
        raise InvalidSignature("webhook-timestamp is out of range") from None


def _decode_signatures(header_value: str) -> list[bytes]:
    found = []
    for entry in header_value.split():
        version, comma, encoded = entry.partition(",")
        if not comma:
            raise InvalidSignature(
                "webhook-signature entries must look like v1,<base64>"
            )
        if version != "v1":
            continue  # a scheme from the future: skip it, as the standard says
        try:
            found.append(b64decode(encoded, validate=True))
        except (binascii.Error, ValueError):
            raise InvalidSignature("webhook-signature holds invalid base64") from None
    if not found:
        raise InvalidSignature("webhook-signature holds no v1 signature")
    return found
