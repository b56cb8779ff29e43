"""The receiver's answers to what an adversarial pass threw at it: interrupted handlers, header
bytes that are not text, secrets and tolerances that cannot work, dropped connections."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT
from incident_webhooks import (
    AsyncWebhookHandlers,
    InvalidPayload,
    InvalidSignature,
    PrivateIncidentMembershipGrantedV1,
    SignatureVerifier,
    WebhookHandlers,
    WebhookReceiver,
    parse_event,
)
from incident_webhooks.app import create_app
from incident_webhooks.dedupe import InMemoryDedupeStore
from test_receiver import SECRET, example_body, sign


class Interrupting(AsyncWebhookHandlers):
    """Raises ``error`` on the first call, then records the calls that follow."""

    def __init__(self, error: BaseException | None) -> None:
        self.error = error
        self.handled: list[str] = []

    async def on_private_incident_membership_granted_v1(
        self, event: PrivateIncidentMembershipGrantedV1
    ) -> None:
        if self.error is not None:
            error, self.error = self.error, None
            raise error
        self.handled.append(event.payload.user_id)


@pytest.mark.parametrize(
    "error", [asyncio.CancelledError(), SystemExit(3), KeyboardInterrupt(), GeneratorExit()]
)
def test_a_handler_interrupted_by_any_base_exception_frees_its_claim_for_the_retry(
    error: BaseException,
) -> None:
    handlers = Interrupting(error)
    receiver = WebhookReceiver(SECRET, handlers)
    body = example_body()
    headers = sign(body, "msg_interrupted")
    with pytest.raises(type(error)):
        asyncio.run(receiver.handle_async(body, headers))
    retry = asyncio.run(receiver.handle_async(body, headers))
    assert retry.status == 200 and json.loads(retry.body) == {"status": "ok"}
    assert handlers.handled == ["abc123"]


def test_a_delivery_timed_out_by_the_caller_is_handled_when_retried() -> None:
    class Slow(AsyncWebhookHandlers):
        calls = 0

        async def on_private_incident_membership_granted_v1(
            self, event: PrivateIncidentMembershipGrantedV1
        ) -> None:
            Slow.calls += 1
            if Slow.calls == 1:
                await asyncio.sleep(10)

    receiver = WebhookReceiver(SECRET, Slow())
    body = example_body()
    headers = sign(body, "msg_timeout")

    async def deliver_twice() -> int:
        with pytest.raises(TimeoutError):
            # Long enough for the handler to have started on a busy machine: cancelled
            # before it, the second delivery would be the first to run it.
            await asyncio.wait_for(receiver.handle_async(body, headers), 1)
        return (await receiver.handle_async(body, headers)).status

    assert asyncio.run(deliver_twice()) == 200
    assert Slow.calls == 2


def test_sync_handle_releases_the_claim_on_keyboard_interrupt() -> None:
    class Handlers(WebhookHandlers):
        interrupted = False

        def on_private_incident_membership_granted_v1(
            self, event: PrivateIncidentMembershipGrantedV1
        ) -> None:
            if not Handlers.interrupted:
                Handlers.interrupted = True
                raise KeyboardInterrupt

    receiver = WebhookReceiver(SECRET, Handlers())
    body = example_body()
    headers = sign(body, "msg_ctrl_c")
    with pytest.raises(KeyboardInterrupt):
        receiver.handle(body, headers)
    assert receiver.handle(body, headers).status == 200
    assert json.loads(receiver.handle(body, headers).body) == {"status": "duplicate"}


@pytest.mark.parametrize("outcome", ["succeeds", "raises"])
def test_a_cancelled_delivery_to_a_thread_handler_is_settled_by_what_the_thread_did(
    outcome: str,
) -> None:
    """The thread cannot be stopped; while it runs a retry gets 409, and afterwards the
    retry is a duplicate (it succeeded) or handled (it raised): never handled twice."""
    release = threading.Event()
    calls: list[str] = []

    class Blocking(WebhookHandlers):
        def on_private_incident_membership_granted_v1(
            self, event: PrivateIncidentMembershipGrantedV1
        ) -> None:
            calls.append("call")
            if len(calls) == 1:
                release.wait(10)
                if outcome == "raises":
                    raise RuntimeError("failed after its caller gave up")

    receiver = WebhookReceiver(SECRET, Blocking())
    body = example_body()
    headers = sign(body, "msg_thread")

    async def scenario() -> list[int]:
        task = asyncio.ensure_future(receiver.handle_async(body, headers))
        while not calls:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        during = (await receiver.handle_async(body, headers)).status
        release.set()
        for _ in range(500):  # the thread settles the claim when it ends
            await asyncio.sleep(0.01)
            answer = await receiver.handle_async(body, headers)
            if answer.status != 409:
                return [during, answer.status, len(calls)]
        raise AssertionError("the claim was never settled")

    during, after, handled = asyncio.run(scenario())
    assert during == 409
    assert after == 200
    assert handled == (1 if outcome == "succeeds" else 2)


@pytest.mark.parametrize("name", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_header_text_with_lone_surrogates_is_an_invalid_signature(name: str) -> None:
    body = example_body()
    headers = {**sign(body), name: "msg_\udc80\udcff"}
    with pytest.raises(InvalidSignature):
        SignatureVerifier(SECRET).verify(body, headers)
    response = WebhookReceiver(SECRET, WebhookHandlers()).handle(body, headers)
    assert response.status == 401


@pytest.mark.parametrize(
    "secret",
    [" " + SECRET, SECRET + "\n", "WHSEC_" + SECRET[6:], "notasecret", "whsec_", "whsec_!!!!"],
)
def test_a_secret_that_cannot_be_incident_ios_is_refused_when_built(secret: str) -> None:
    with pytest.raises(ValueError, match="secret"):
        SignatureVerifier(secret)


def _b64(key: bytes) -> str:
    import base64

    return base64.b64encode(key).decode()


# Weak keys and secrets mangled by a copy and paste, each refused by every entry point.
REFUSED_SECRETS = {
    "one-byte": "whsec_YQ==",
    "fifteen-bytes": "whsec_" + _b64(b"x" * 15),
    "bare-short": _b64(b"short"),
    "leading-space": " " + SECRET,
    "trailing-space": SECRET + " ",
    "trailing-newline": SECRET + "\n",
    "trailing-crlf": SECRET + "\r\n",
    "leading-tab": "\t" + SECRET,
    "non-breaking-space": SECRET + "\u00a0",
}


def _entry_points() -> dict[str, Any]:
    from incident_webhooks import __main__ as cli
    from incident_webhooks import testing

    def from_environment(secret: str) -> None:
        previous = os.environ.get("INCIDENT_WEBHOOK_SECRET")
        os.environ["INCIDENT_WEBHOOK_SECRET"] = secret
        try:
            cli._secret(None)
        finally:
            if previous is None:
                del os.environ["INCIDENT_WEBHOOK_SECRET"]
            else:
                os.environ["INCIDENT_WEBHOOK_SECRET"] = previous

    return {
        "verifier": SignatureVerifier,
        "receiver": lambda secret: WebhookReceiver(secret, WebhookHandlers()),
        "app": lambda secret: create_app(WebhookHandlers(), secret),
        "testing.sign": lambda secret: testing.sign(b"{}", secret),
        "cli --secret": cli._secret,
        "cli environment": from_environment,
    }


@pytest.mark.parametrize("entry", sorted(_entry_points()))
@pytest.mark.parametrize("secret", sorted(REFUSED_SECRETS))
def test_a_weak_or_mangled_secret_is_refused_by_every_entry_point(
    entry: str, secret: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises((ValueError, SystemExit)) as refused:
        _entry_points()[entry](REFUSED_SECRETS[secret])
    if refused.type is SystemExit:
        assert refused.value.code == 2
        message = capsys.readouterr().err
        assert message.count("\n") == 1 and "secret" in message
    else:
        assert "secret" in str(refused.value)


def test_a_sixteen_byte_key_is_the_shortest_accepted() -> None:
    SignatureVerifier("whsec_" + _b64(b"k" * 16))
    with pytest.raises(ValueError, match="15 bytes long"):
        SignatureVerifier("whsec_" + _b64(b"k" * 15))


def test_a_bare_base64_secret_is_accepted() -> None:
    body = example_body()
    SignatureVerifier(SECRET.removeprefix("whsec_")).verify(body, sign(body))


@pytest.mark.parametrize("tolerance", [-1, 10**12, 1.5, True])
def test_a_tolerance_that_is_not_a_sane_number_of_seconds_is_refused(tolerance: Any) -> None:
    with pytest.raises(ValueError, match="tolerance"):
        SignatureVerifier(SECRET, tolerance=tolerance)


def test_a_timestamp_beyond_any_date_is_an_invalid_signature_at_the_largest_tolerance() -> None:
    body = example_body()
    verifier = SignatureVerifier(SECRET, tolerance=24 * 3600)
    for stamp in ("999999999999", "0"):
        with pytest.raises(InvalidSignature):
            verifier.verify(body, {**sign(body), "webhook-timestamp": stamp})


def test_a_client_that_disconnects_mid_body_logs_no_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = create_app(WebhookHandlers(), SECRET)
    events = iter(
        [
            {"type": "http.request", "body": b'{"event_type": ', "more_body": True},
            {"type": "http.disconnect"},
        ]
    )
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return next(events)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http", "method": "POST", "path": "/webhooks", "headers": [],
        "query_string": b"", "root_path": "", "scheme": "http", "server": ("127.0.0.1", 80),
    }  # fmt: skip
    caplog.set_level(logging.DEBUG)
    asyncio.run(app(scope, receive, send))
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.WARNING]
    assert any("disconnected" in r.getMessage() for r in caplog.records)


def test_an_empty_body_is_answered_not_taken_for_a_client_that_left() -> None:
    app = create_app(WebhookHandlers(), SECRET)
    events = iter([{"type": "http.request", "body": b"", "more_body": False}])
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return next(events)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    body = b""
    headers = [(k.encode(), v.encode()) for k, v in sign(body).items()]
    scope = {
        "type": "http", "method": "POST", "path": "/webhooks", "headers": headers,
        "query_string": b"", "root_path": "", "scheme": "http", "server": ("127.0.0.1", 80),
    }  # fmt: skip
    asyncio.run(app(scope, receive, send))
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 400
    assert (b"content-length", str(len(sent[1]["body"])).encode()) in sent[0]["headers"]


def _post_in_chunks(
    app: Any, chunks: list[bytes], headers: dict[str, str]
) -> tuple[list[dict[str, Any]], int]:
    """The app's answer to a POST whose body arrives in ``chunks``, and how many of them
    it read."""
    events = [
        {"type": "http.request", "body": c, "more_body": n < len(chunks) - 1}
        for n, c in enumerate(chunks)
    ]
    taken = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal taken
        taken += 1
        return events[taken - 1]

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http", "method": "POST", "path": "/webhooks", "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "root_path": "", "scheme": "http", "server": ("127.0.0.1", 80),
    }  # fmt: skip
    asyncio.run(app(scope, receive, send))
    return sent, taken


def test_the_app_joins_a_body_sent_in_chunks_and_stops_reading_one_over_the_limit() -> None:
    body = example_body()
    app = create_app(WebhookHandlers(), SECRET, max_body_bytes=len(body))
    third = len(body) // 3
    chunks = [body[:third], body[third : 2 * third], body[2 * third :]]
    sent, taken = _post_in_chunks(app, chunks, sign(body, msg_id="chunked"))
    assert (sent[0]["status"], json.loads(sent[1]["body"]), taken) == (200, {"status": "ok"}, 3)
    assert (b"content-type", b"application/json") in sent[0]["headers"]
    assert (b"content-length", str(len(sent[1]["body"])).encode()) in sent[0]["headers"]

    # No Content-Length, and one byte too many in the second of four chunks: refused
    # there, without reading the rest.
    over = [body[:third], body[third:] + b" ", b"x" * 10, b"y"]
    sent, taken = _post_in_chunks(app, over, sign(body, msg_id="over"))
    assert (sent[0]["status"], taken) == (413, 2)
    assert json.loads(sent[1]["body"]) == {"error": f"body larger than {len(body)} bytes"}

    # A Content-Length over the limit is refused before any of the body is read.
    declared = {**sign(body, msg_id="declared"), "content-length": str(len(body) + 1)}
    sent, taken = _post_in_chunks(app, [body + b" "], declared)
    assert (sent[0]["status"], taken) == (413, 0)


def test_a_503_from_the_app_carries_retry_after_and_the_receivers_headers() -> None:
    class Down(InMemoryDedupeStore):
        def claim(self, key: str) -> Any:
            raise ConnectionError("store down")

    app = create_app(WebhookHandlers(), SECRET, dedupe=Down())
    body = example_body()
    sent, _ = _post_in_chunks(app, [body], sign(body, msg_id="down"))
    assert sent[0]["status"] == 503
    assert (b"retry-after", b"5") in sent[0]["headers"]


def test_json_nested_beyond_the_parsers_limit_says_what_the_limit_is() -> None:
    body = b'{"event_type": "private_incident.membership_granted_v1", "x": ' + b"[" * 300
    body += b"]" * 300 + b"}"
    with pytest.raises(InvalidPayload, match="nests deeper than the JSON parser's limit of 200"):
        parse_event(body)
    with pytest.raises(InvalidPayload, match="not valid JSON"):
        parse_event(b'{"event_type": ')


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        found += [int(c) for c in task.read_text().split()]
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_killing_generate_also_ends_its_formatter_worker(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "codegen", "generate", "--out", str(tmp_path / "pkg")],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    workers: list[int] = []
    while not workers and process.poll() is None and time.monotonic() < deadline:
        workers = _children(process.pid)
        time.sleep(0.005)
    if not workers:
        process.wait(60)
        pytest.fail("generate finished before its formatter worker could be seen")
    os.kill(process.pid, signal.SIGKILL)
    process.wait(10)
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{w}").exists() and _state(w) != "Z" for w in workers):
        assert time.monotonic() < deadline, "the formatter worker outlived generate"
        time.sleep(0.05)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "gone"
