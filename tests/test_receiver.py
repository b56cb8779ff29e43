"""Receiving webhooks over real HTTP: signatures, status codes, deduplication, load.

Requests are signed with the Standard Webhooks and Svix libraries, as incident.io signs them,
and sent to a uvicorn server that each test starts on 127.0.0.1 and stops afterwards.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Self

import httpx
import pytest
import uvicorn
from conftest import ROOT, Recorder, spec_examples
from incident_webhooks import (
    EVENT_MODELS,
    AsyncWebhookHandlers,
    InMemoryDedupeStore,
    PrivateIncidentMembershipGrantedV1,
    WebhookHandlers,
    WebhookReceiver,
)
from incident_webhooks.app import create_app
from incident_webhooks.dedupe import Lease
from servers import HTTP, LoadClient
from standardwebhooks import Webhook

SECRET = "whsec_" + base64.b64encode(b"secret-used-only-by-these-tests!").decode()
OTHER_SECRET = "whsec_" + base64.b64encode(b"another-secret-for-the-rotation").decode()
EXAMPLES = spec_examples()
GRANTED = "private_incident.membership_granted_v1"


def sign(
    body: bytes,
    msg_id: str = "msg_1",
    *,
    secret: str = SECRET,
    at: datetime | None = None,
) -> dict[str, str]:
    at = at or datetime.now(UTC)
    signature = Webhook(secret).sign(msg_id, at, body.decode())
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
    }


def example_body(event_type: str = GRANTED) -> bytes:
    return json.dumps(EXAMPLES[event_type]).encode()


class Server:
    def __init__(self, secret: str | Sequence[str] = SECRET, **options: Any) -> None:
        self.handlers = Recorder()
        self.app = create_app(self.handlers, secret, **options)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(self.app, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]})

    def __enter__(self) -> Self:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()

    def post(self, body: Any, headers: Mapping[str, str], path: str = "/webhooks") -> httpx.Response:
        return HTTP.post(self.url + path, content=body, headers=headers)


@pytest.fixture
def server() -> Iterator[Server]:
    with Server() as running:
        yield running


def test_every_spec_example_signed_and_sent_reaches_its_handler_typed(server: Server) -> None:
    for number, event_type in enumerate(sorted(EXAMPLES)):
        body = example_body(event_type)
        response = server.post(body, sign(body, f"msg_{number}"))
        assert response.status_code == 200, (event_type, response.text)
        name, (event,) = server.handlers.calls[-1]
        assert name == "on_" + event_type.replace(".", "_")
        assert type(event) is EVENT_MODELS[event_type]
    assert len(server.handlers.calls) == len(EXAMPLES) >= 30


def svix_signature(msg_id: str, now: datetime, body: bytes) -> str:
    """The signature Svix's own library makes. Imported here, not at the top: svix loads
    its whole API client (0.7 s for each of the suite's processes that collect this file)."""
    from svix.webhooks import Webhook as SvixWebhook

    signature: str = SvixWebhook(SECRET).sign(msg_id, now, body.decode())
    return signature


def test_a_request_signed_by_the_svix_library_is_accepted(server: Server) -> None:
    body = example_body()
    now = datetime.now(UTC)
    signature = svix_signature("msg_svix", now, body)
    headers = {"svix-id": "ignored", "webhook-id": "msg_svix", "webhook-timestamp": str(int(now.timestamp())), "webhook-signature": signature}
    assert server.post(body, headers).status_code == 200
    assert [name for name, _ in server.handlers.calls] == ["on_private_incident_membership_granted_v1"]


def test_header_names_are_case_insensitive(server: Server) -> None:
    body = example_body()
    headers = {name.upper(): value for name, value in sign(body).items()}
    assert server.post(body, headers).status_code == 200


@pytest.mark.parametrize(
    "tamper",
    [
        lambda body, headers: (body.replace(b"abc123", b"abc124", 1), headers),
        lambda body, headers: (body, {**headers, "webhook-id": "msg_other"}),
        lambda body, headers: (body, {**headers, "webhook-timestamp": str(int(headers["webhook-timestamp"]) + 1)}),
        lambda body, headers: (body, sign(body, secret=OTHER_SECRET)),
        lambda body, headers: (body, sign(body, at=datetime.now(UTC) - timedelta(seconds=330))),
        lambda body, headers: (body, sign(body, at=datetime.now(UTC) + timedelta(seconds=330))),
        lambda body, headers: (body, {k: v for k, v in headers.items() if k != "webhook-signature"}),
        lambda body, headers: (body, {k: v for k, v in headers.items() if k != "webhook-timestamp"}),
        lambda body, headers: (body, {k: v for k, v in headers.items() if k != "webhook-id"}),
    ],
    ids=["body", "id", "timestamp", "wrong-secret", "stale", "future", "no-signature", "no-timestamp", "no-id"],
)
def test_bad_or_stale_signatures_get_401_and_nothing_is_dispatched(server: Server, tamper: Any) -> None:
    body = example_body()
    sent_body, headers = tamper(body, sign(body))
    response = server.post(sent_body, headers)
    assert response.status_code == 401
    assert server.handlers.calls == []


def test_several_secrets_are_accepted_during_a_rotation() -> None:
    with Server([SECRET, OTHER_SECRET]) as running:
        body = example_body()
        assert running.post(body, sign(body, "m1", secret=SECRET)).status_code == 200
        assert running.post(body, sign(body, "m2", secret=OTHER_SECRET)).status_code == 200
        assert len(running.handlers.calls) == 2


def test_a_body_over_the_limit_gets_413_before_any_work() -> None:
    with Server(max_body_bytes=1000) as running:
        body = json.dumps({**EXAMPLES[GRANTED], "padding": "x" * 2000}).encode()
        assert running.post(body, sign(body)).status_code == 413
        # Without a Content-Length (chunked), the limit still holds while streaming.
        chunks = iter([body[:500], body[500:]])
        assert running.post(chunks, sign(body, "m2")).status_code == 413
        assert running.handlers.calls == []


def test_invalid_json_gets_400_and_the_webhook_id_is_logged(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    body = b'{"event_type": '
    with caplog.at_level(logging.ERROR, logger="incident_webhooks"):
        assert server.post(body, sign(body, "msg_broken_json")).status_code == 400
    assert "msg_broken_json" in caplog.text
    assert server.handlers.calls == []


def test_a_known_event_failing_validation_gets_400_and_the_webhook_id_is_logged(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    raw = json.loads(example_body())
    del raw[GRANTED]["incident_id"]
    body = json.dumps(raw).encode()
    with caplog.at_level(logging.ERROR, logger="incident_webhooks"):
        response = server.post(body, sign(body, "msg_invalid"))
    assert response.status_code == 400
    assert "incident_id" in response.json()["error"]
    assert "msg_invalid" in caplog.text
    assert server.handlers.calls == []


def test_an_unknown_event_type_gets_200_and_on_unknown_is_called(server: Server) -> None:
    raw = {"event_type": "status_page.something_new_v1", "status_page.something_new_v1": {"id": "x"}}
    body = json.dumps(raw).encode()
    assert server.post(body, sign(body)).status_code == 200
    assert server.handlers.calls == [("on_unknown", ("status_page.something_new_v1", raw))]


def test_a_failing_handler_gets_500_and_is_logged_so_the_retry_is_handled(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    body = example_body()
    server.handlers.fail = True
    with caplog.at_level(logging.ERROR, logger="incident_webhooks"):
        assert server.post(body, sign(body, "msg_retry")).status_code == 500
    assert "msg_retry" in caplog.text and "handler is broken" in caplog.text
    server.handlers.fail = False
    assert server.post(body, sign(body, "msg_retry")).status_code == 200
    assert len(server.handlers.calls) == 1


def test_a_redelivery_after_success_gets_2xx_without_calling_the_handler_again(server: Server) -> None:
    body = example_body()
    first = server.post(body, sign(body, "msg_once"))
    again = server.post(body, sign(body, "msg_once"))
    assert (first.status_code, again.status_code) == (200, 200)
    assert again.json() == {"status": "duplicate"}
    assert len(server.handlers.calls) == 1


def test_the_app_works_mounted_inside_fastapi() -> None:
    from fastapi import FastAPI

    running = Server()
    parent = FastAPI()
    parent.mount("/incident", running.app)
    running.server.config.app = parent
    with running:
        body = example_body()
        assert running.post(body, sign(body), path="/incident/webhooks").status_code == 200
        assert HTTP.get(running.url + "/incident/healthz").status_code == 200
    assert [name for name, _ in running.handlers.calls] == ["on_private_incident_membership_granted_v1"]


def in_process(app: Any, *requests: tuple[str, str, bytes, Mapping[str, str]]) -> list[httpx.Response]:
    """Each request sent to ``app`` in this process (no server, no lifespan), in order."""

    async def send() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return [
                await client.request(method, path, content=body, headers=headers)
                for method, path, body, headers in requests
            ]

    return asyncio.run(send())


def test_middleware_added_to_the_app_sees_every_delivery() -> None:
    """The app answers ``POST /webhooks`` without Starlette's layers only while nobody
    has added any: a middleware added by the user still sees each delivery."""
    seen: list[tuple[str, str]] = []

    class Seeing:
        def __init__(self, app: Any) -> None:
            self.app = app

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http":
                seen.append((scope["method"], scope["path"]))
            await self.app(scope, receive, send)

    handlers = Recorder()
    app = create_app(handlers, SECRET)
    app.add_middleware(Seeing)
    body = example_body()
    [answer] = in_process(app, ("POST", "/webhooks", body, sign(body)))
    assert answer.status_code == 200
    assert seen == [("POST", "/webhooks")]
    assert len(handlers.calls) == 1


def test_an_exception_handler_added_to_the_app_answers_for_the_deliveries_endpoint() -> None:
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse

    app = create_app(Recorder(), SECRET)

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug below the endpoint")

    async def explain(request: Request, exc: Exception) -> PlainTextResponse:
        return PlainTextResponse(f"handled: {exc}", 500)

    app.state.receiver.handle_async = broken
    app.add_exception_handler(RuntimeError, explain)
    body = example_body()
    [answer] = in_process(app, ("POST", "/webhooks", body, sign(body)))
    assert (answer.status_code, answer.text) == (500, "handled: a bug below the endpoint")


def test_the_deliveries_endpoint_answers_as_its_route_would_around_the_shortcut() -> None:
    """Only an exact ``POST {path}`` at the app's root skips Starlette; every other
    request is routed as before (405, the trailing-slash redirect, 404)."""
    handlers = Recorder()
    app = create_app(handlers, SECRET)
    body = example_body()
    [stored] = in_process(app, ("POST", "/webhooks", body, sign(body)))
    assert stored.status_code == 200
    # Starlette built none of its layers for that delivery.
    assert app.middleware_stack is None
    wrong_method, slash, elsewhere = in_process(
        app,
        ("GET", "/webhooks", b"", {}),
        ("POST", "/webhooks/", body, sign(body, "msg_2")),
        ("POST", "/elsewhere", body, sign(body, "msg_3")),
    )
    assert wrong_method.status_code == 405
    assert (slash.status_code, slash.headers["location"]) == (307, "http://t/webhooks")
    assert elsewhere.status_code == 404
    assert len(handlers.calls) == 1


def test_healthz_answers_200(server: Server) -> None:
    response = HTTP.get(server.url + "/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_load_500_deliveries_50_in_flight_each_handled_once_then_redeliveries_are_not(
    server: Server,
) -> None:
    types = sorted(EXAMPLES)
    # Each body carries its delivery number as an extra property, which the models keep.
    bodies = [
        (f"load_{n}", json.dumps({**EXAMPLES[types[n % len(types)]], "delivery": n}).encode())
        for n in range(500)
    ]

    async def send_all(batch: list[tuple[str, bytes]]) -> list[int]:
        async with LoadClient(connections=50) as client:

            async def send(msg_id: str, body: bytes) -> int:
                status, _ = await client.post(server.url + "/webhooks", body, sign(body, msg_id))
                return status

            return await asyncio.gather(*(send(msg_id, body) for msg_id, body in batch))

    started = time.perf_counter()
    statuses = asyncio.run(send_all(bodies))
    elapsed = time.perf_counter() - started
    failures = [s for s in statuses if not 200 <= s < 300]
    assert failures == []
    handled = sorted(args[0].model_extra["delivery"] for _, args in server.handlers.calls)
    assert handled == list(range(500)), "every delivery handled exactly once"

    redelivered = asyncio.run(send_all(bodies[:50]))
    assert all(200 <= s < 300 for s in redelivered)
    assert len(server.handlers.calls) == 500, "a redelivery was handled twice"
    print(
        f"\nload: 500 requests, 50 in flight, {len(failures)} failures, {elapsed:.2f}s "
        f"({500 / elapsed:.0f}/s); 50 redeliveries, 0 handled twice"
    )


def test_a_delivery_being_handled_right_now_gets_409_so_it_is_retried_later() -> None:
    store = InMemoryDedupeStore()
    receiver = WebhookReceiver(SECRET, WebhookHandlers(), dedupe=store)
    body = example_body()
    lease = store.claim("default:msg_busy")  # the receiver's key: its endpoint, then the id
    assert isinstance(lease, Lease)
    assert receiver.handle(body, sign(body, "msg_busy")).status == 409
    store.complete(lease)
    assert receiver.handle(body, sign(body, "msg_busy")).status == 200


def test_the_synchronous_receiver_answers_like_the_app() -> None:
    receiver = WebhookReceiver(SECRET, WebhookHandlers())
    body = example_body()
    assert receiver.handle(body, sign(body)).status == 200
    assert receiver.handle(body, {}).status == 401
    assert receiver.handle(b"x" * (2 << 20), sign(b"x")).status == 413


def test_in_memory_dedupe_forgets_after_its_ttl_and_beyond_its_size() -> None:
    store = InMemoryDedupeStore(ttl_seconds=0.05, max_entries=3)
    first = store.claim("a")
    assert isinstance(first, Lease)
    store.complete(first)
    assert store.claim("a") == "done"
    time.sleep(0.06)
    again = store.claim("a")
    assert isinstance(again, Lease)
    store.complete(again)
    for key in "bc":
        assert isinstance(store.claim(key), Lease)
    assert isinstance(store.claim("d"), Lease), "the oldest completed entry made room"


def test_a_bad_secret_is_refused_when_the_receiver_is_built() -> None:
    with pytest.raises(ValueError, match="whsec_"):
        WebhookReceiver("not base64 !!", WebhookHandlers())
    with pytest.raises(ValueError):
        WebhookReceiver([], WebhookHandlers())


def test_the_demo_server_refuses_to_start_without_a_secret() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "incident_webhooks"],
        check=False,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT / "generated")},
        timeout=60,
    )
    assert result.returncode == 2
    assert "INCIDENT_WEBHOOK_SECRET is not set" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_demo_server_accepts_svix_signed_requests_and_refuses_tampered_ones() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "incident_webhooks", "--port", str(port)],
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT / "generated"), "INCIDENT_WEBHOOK_SECRET": SECRET},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if HTTP.get(url + "/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the demo server did not start"
                time.sleep(0.1)
        body = example_body()
        now = datetime.now(UTC)
        headers = {"webhook-id": "msg_demo", "webhook-timestamp": str(int(now.timestamp()))}
        headers["webhook-signature"] = svix_signature("msg_demo", now, body)
        assert HTTP.post(url + "/webhooks", content=body, headers=headers).status_code == 200
        tampered = body.replace(b"abc123", b"evil12", 1)
        assert HTTP.post(url + "/webhooks", content=tampered, headers=headers).status_code == 401
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=30)
    assert "private_incident.membership_granted_v1" in output
    assert "msg_demo" in output


def test_async_handlers_are_awaited_by_handle_async() -> None:
    seen: list[str] = []

    class Handlers(AsyncWebhookHandlers):
        async def on_private_incident_membership_granted_v1(
            self, event: PrivateIncidentMembershipGrantedV1
        ) -> None:
            seen.append(event.payload.user_id)

        async def on_unknown(self, event_type: str, payload: Mapping[str, Any]) -> None:
            seen.append(event_type)

        async def on_private_incident_membership_revoked_v1(self, event: Any) -> None:
            raise RuntimeError("broken")

    receiver = WebhookReceiver(SECRET, Handlers())
    body = example_body()
    unknown = b'{"event_type": "brand.new_v1"}'
    revoked = example_body("private_incident.membership_revoked_v1")
    statuses = [
        asyncio.run(receiver.handle_async(body, sign(body, "a"))).status,
        asyncio.run(receiver.handle_async(unknown, sign(unknown, "b"))).status,
        asyncio.run(receiver.handle_async(revoked, sign(revoked, "c"))).status,
    ]
    assert statuses == [200, 200, 500]
    assert seen == ["abc123", "brand.new_v1"]
    with pytest.raises(TypeError, match="handle_async"):
        receiver.handle(body, sign(body, "d"))
