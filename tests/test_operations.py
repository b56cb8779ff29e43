"""Operating it: Prometheus metrics (exact counts, multiprocess mode), OpenTelemetry spans
and their links, Svix's abort-message, and the Django view and Flask blueprint (their test
clients, a real server each, and the README's snippets as written)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import httpx
import pytest
from incident_webhooks import WebhookHandlers, testing
from incident_webhooks.app import create_app
from incident_webhooks.dedupe import InMemoryDedupeStore, Lease, StoreUnavailable, Taken
from incident_webhooks.receiver import WebhookReceiver
from prometheus_client.parser import text_string_to_metric_families
from servers import HTTP, ROOT, AppServer, LoadClient, free_port, records, wait_until

SECRET = "whsec_" + base64.b64encode(b"secret-used-only-by-these-tests!").decode()
GRANTED = "private_incident.membership_granted_v1"
README = (ROOT / "README.md").read_text()


def signed(msg_id: str, body: bytes | None = None) -> tuple[bytes, dict[str, str]]:
    body = testing.example_body(GRANTED) if body is None else body
    return body, testing.sign(body, SECRET, msg_id=msg_id)


class Switchable(InMemoryDedupeStore):
    down = False

    def claim(self, key: str) -> Lease | Taken:
        if self.down:
            raise StoreUnavailable("switched off")
        return super().claim(key)


class RaisesOnce(WebhookHandlers):
    def dispatch(self, event: Any) -> None:
        if getattr(event.payload, "user_id", "") == "raise":
            raise RuntimeError("handler failed")


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def delivered(found: dict[Any, float], outcome: str, event_type: str = GRANTED) -> float:
    key = ("incident_webhooks_deliveries_total", (("event_type", event_type), ("outcome", outcome)))
    return found.get(key, 0.0)


# -- metrics ---------------------------------------------------------------------------------


def test_metrics_count_each_outcome_of_a_scripted_mix_exactly() -> None:
    store = Switchable()
    app = create_app(RaisesOnce(), SECRET, dedupe=store, metrics=True)
    good = testing.example_body(GRANTED)
    raising = json.dumps({**json.loads(good), GRANTED: {**json.loads(good)[GRANTED], "user_id": "raise"}}).encode()
    invalid = json.dumps({"event_type": GRANTED, GRANTED: {"user_id": 1}}).encode()

    async def scripted() -> tuple[str, str]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            before = (await client.get("/metrics")).text

            async def post(body: bytes, headers: dict[str, str]) -> int:
                return (await client.post("/webhooks", content=body, headers=headers)).status_code

            answers = []
            for n in range(3):
                answers.append(await post(*signed(f"good-{n}")))
            answers.append(await post(*signed("good-0")))  # a duplicate
            forged = {**signed("forged")[1], "webhook-signature": "v1,AAAA"}
            answers.append(await post(good, forged))
            answers.append(await post(*signed("invalid", invalid)))
            answers.append(await post(*signed("raising", raising)))
            store.down = True
            answers.append(await post(*signed("down")))
            store.down = False
            assert answers == [200, 200, 200, 200, 401, 400, 500, 503]
            return before, (await client.get("/metrics")).text

    before, after = asyncio.run(scripted())
    was, now = samples(before), samples(after)
    expected = {("handled", GRANTED): 3, ("duplicate", GRANTED): 1, ("bad_signature", ""): 1,
                ("invalid", GRANTED): 1, ("handler_error", GRANTED): 1, ("store_unavailable", GRANTED): 1}  # fmt: skip
    for (outcome, event_type), count in expected.items():
        assert delivered(now, outcome, event_type) - delivered(was, outcome, event_type) == count, outcome
    runs = ("incident_webhooks_handler_duration_seconds_count", (("event_type", GRANTED), ("result", "ok")))
    errors = ("incident_webhooks_handler_duration_seconds_count", (("event_type", GRANTED), ("result", "error")))
    assert now[runs] - was.get(runs, 0) == 3 and now[errors] - was.get(errors, 0) == 1
    assert "webhook_id" not in after and "good-0" not in after, "a webhook-id is never a label"


def test_an_unknown_event_type_is_counted_as_other(tmp_path: Path) -> None:
    from incident_webhooks import metrics

    metrics.enable()
    receiver = WebhookReceiver(SECRET, WebhookHandlers())
    before = samples(metrics.render().decode())
    for n in range(3):
        body = json.dumps({"event_type": f"new.type_{n}", f"new.type_{n}": {}}).encode()
        assert receiver.handle(*signed(f"u{n}", body)).status == 200
    after = samples(metrics.render().decode())
    assert delivered(after, "unknown_type", "other") - delivered(before, "unknown_type", "other") == 3
    assert not any("new.type" in str(key) for key in after)


def test_metrics_add_up_across_two_uvicorn_workers_in_multiprocess_mode(tmp_path: Path) -> None:
    folder = tmp_path / "prometheus"
    folder.mkdir()
    record = tmp_path / "calls.log"
    env = {"PROMETHEUS_MULTIPROC_DIR": str(folder), "METRICS": "1"}
    with AppServer(record, f"sqlite:{tmp_path / 'dedupe.db'}", secret=SECRET, workers=2, **env) as app:

        async def deliver(first: int) -> list[int]:
            async with LoadClient(connections=16) as client:
                answers = await asyncio.gather(*(client.post(app.url + "/webhooks", *signed(f"mp-{n}")) for n in range(first, first + 50)))
            return [status for status, _ in answers]

        # uvicorn reports healthy once one worker answers; the other may still be starting.
        sent = 0
        while len({p for _, p, _ in records(record)}) < 2 and sent < 2000:
            assert asyncio.run(deliver(sent)) == [200] * 50
            sent += 50
        pids = {p for _, p, _ in records(record)}
        # A new connection each time: whichever worker answers the scrape, it reads both,
        # once each has applied its queued updates (within a second).
        def scrape() -> float:
            return delivered(samples(HTTP.get(app.url + "/metrics").text), "handled")

        wait_until(lambda: scrape() == sent, "both workers' counts", timeout=10)
        scraped = [scrape() for _ in range(6)]
    assert len(pids) == 2, "both workers handled deliveries"
    assert scraped == [sent] * 6


def test_the_inbox_is_read_at_each_scrape(tmp_path: Path) -> None:
    from incident_webhooks import metrics
    from incident_webhooks.inbox import Failure, SQLiteInbox

    inbox = SQLiteInbox(tmp_path / "inbox.db")
    for n in range(3):
        inbox.store("e", f"m{n}", GRANTED, b"{}", {})
    (row,) = inbox.claim("w", 30)
    inbox.fail(row.id, "w", Failure("E", "x"), None)
    found = samples(metrics.render(inbox).decode())
    assert found[("incident_webhooks_inbox_rows", (("state", "pending"),))] == 2
    assert found[("incident_webhooks_inbox_rows", (("state", "dead"),))] == 1
    assert found[("incident_webhooks_inbox_up", ())] == 1
    assert found[("incident_webhooks_inbox_oldest_pending_seconds", ())] >= 0
    import sqlite3

    locked = SQLiteInbox(tmp_path / "inbox.db", timeout=0.1)
    holder = sqlite3.connect(tmp_path / "inbox.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # the database does not answer: the scrape says so
    assert samples(metrics.render(locked).decode())[("incident_webhooks_inbox_up", ())] == 0
    holder.execute("ROLLBACK")


def test_without_the_extra_nothing_imports_prometheus_client() -> None:
    script = textwrap.dedent(f"""
        import sys
        from incident_webhooks import WebhookHandlers, testing
        from incident_webhooks.app import create_app
        app = create_app(WebhookHandlers(), {SECRET!r})
        assert "prometheus_client" not in sys.modules
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert done.stdout.strip() == "ok", done.stderr


# -- traces ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def spans() -> Any:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
        InMemorySpanExporter,
    )

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return exporter


def test_a_delivery_is_a_server_span_and_its_handler_a_linked_process_span(spans: Any) -> None:
    from opentelemetry.trace import SpanKind

    spans.clear()
    app = create_app(RaisesOnce(), SECRET)

    async def post() -> int:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            body, headers = signed("msg_traced")
            return (await client.post("/webhooks", content=body, headers=headers)).status_code

    assert asyncio.run(post()) == 200
    (server,) = [s for s in spans.get_finished_spans() if s.kind == SpanKind.SERVER]
    (process,) = [s for s in spans.get_finished_spans() if s.kind == SpanKind.CONSUMER]
    assert server.name == "POST /webhooks"
    assert server.attributes["http.request.method"] == "POST"
    assert server.attributes["http.route"] == "/webhooks"
    assert server.attributes["url.path"] == "/webhooks"
    assert server.attributes["http.response.status_code"] == 200
    assert process.name == f"process {GRANTED}"
    assert process.attributes["messaging.message.id"] == "msg_traced"
    assert process.attributes["messaging.destination.name"] == GRANTED
    assert process.attributes["messaging.operation.type"] == "process"
    assert process.parent is not None and process.parent.span_id == server.context.span_id
    assert [link.context.span_id for link in process.links] == [server.context.span_id]


def test_a_mounted_apps_server_span_has_the_path_the_request_was_sent_to(spans: Any) -> None:
    from opentelemetry.trace import SpanKind
    from starlette.applications import Starlette
    from starlette.routing import Mount

    spans.clear()
    site = Starlette(routes=[Mount("/incident", app=create_app(RaisesOnce(), SECRET))])

    async def post() -> int:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=site), base_url="http://t") as client:
            body, headers = signed("msg_mounted")
            return (await client.post("/incident/webhooks", content=body, headers=headers)).status_code

    assert asyncio.run(post()) == 200
    (server,) = [s for s in spans.get_finished_spans() if s.kind == SpanKind.SERVER]
    assert (server.attributes["http.route"], server.attributes["url.path"]) == ("/webhooks", "/incident/webhooks")


def test_a_worker_s_process_span_links_to_the_span_that_stored_the_row(spans: Any, tmp_path: Path) -> None:
    from incident_webhooks.inbox import SQLiteInbox
    from incident_webhooks.worker import Worker
    from opentelemetry.trace import SpanKind, StatusCode

    spans.clear()
    inbox = SQLiteInbox(tmp_path / "inbox.db")
    app = create_app(RaisesOnce(), SECRET, inbox=inbox, worker=False)

    async def post() -> int:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            body, headers = signed("msg_later")
            return (await client.post("/webhooks", content=body, headers=headers)).status_code

    assert asyncio.run(post()) == 200
    (server,) = [s for s in spans.get_finished_spans() if s.kind == SpanKind.SERVER]
    assert not [s for s in spans.get_finished_spans() if s.kind == SpanKind.CONSUMER]

    async def work() -> None:
        worker = Worker(inbox, RaisesOnce(), retention_seconds=None)
        task = asyncio.create_task(worker.run())
        while inbox.get("msg_later")[0].state != "done":
            await asyncio.sleep(0.02)
        worker.stop()
        await task

    asyncio.run(work())
    (process,) = [s for s in spans.get_finished_spans() if s.kind == SpanKind.CONSUMER]
    assert process.attributes["messaging.message.id"] == "msg_later"
    assert [link.context.span_id for link in process.links] == [server.context.span_id]
    assert process.links[0].context.trace_id == server.context.trace_id
    assert process.parent is None, "a new trace, linked back"
    assert process.status.status_code != StatusCode.ERROR


def test_a_handler_that_raises_records_the_exception_on_its_span(spans: Any) -> None:
    from opentelemetry.trace import SpanKind, StatusCode

    spans.clear()
    good = json.loads(testing.example_body(GRANTED))
    body = json.dumps({**good, GRANTED: {**good[GRANTED], "user_id": "raise"}}).encode()
    assert WebhookReceiver(SECRET, RaisesOnce()).handle(*signed("msg_err", body)).status == 500
    (process,) = [s for s in spans.get_finished_spans() if s.kind == SpanKind.CONSUMER]
    assert process.status.status_code == StatusCode.ERROR
    assert [e.name for e in process.events] == ["exception"]


# -- Svix's delivery controls ----------------------------------------------------------------


def test_answers_no_retry_can_change_ask_svix_to_stop_and_others_do_not() -> None:
    receiver = WebhookReceiver(SECRET, WebhookHandlers(), event_types={GRANTED})
    not_json = receiver.handle(*signed("j", b"{nope"))
    assert (not_json.status, not_json.headers.get("webhook-delivery")) == (400, "abort-message")
    other = json.dumps({"event_type": "public_incident.incident_created_v2", "x": {}}).encode()
    refused = receiver.handle(*signed("o", other))
    assert (refused.status, refused.headers.get("webhook-delivery")) == (422, "abort-message")
    invalid = json.dumps({"event_type": GRANTED, GRANTED: {"user_id": 1}}).encode()
    kept_retrying = receiver.handle(*signed("i", invalid))
    assert kept_retrying.status == 400 and "webhook-delivery" not in kept_retrying.headers
    assert receiver.handle(*signed("g")).status == 200
    quiet = WebhookReceiver(SECRET, WebhookHandlers(), event_types={GRANTED}, abort_retries=False)
    assert "webhook-delivery" not in quiet.handle(*signed("o", other)).headers
    everything = WebhookReceiver(SECRET, WebhookHandlers()).handle(*signed("o", other))
    assert everything.status == 400 and "webhook-delivery" not in everything.headers, "no event_types: every type is for it"


# -- Django and Flask ------------------------------------------------------------------------


HANDLERS_MODULE = """
import os
from incident_webhooks import WebhookHandlers
from incident_webhooks.receiver import current_webhook_id

class Handlers(WebhookHandlers):
    def dispatch(self, event):
        with open(os.environ["RECORD"], "a") as out:
            out.write(f"handled {os.getpid()} {current_webhook_id.get()}\\n")
"""


def snippet(marker: str) -> str:
    blocks = re.findall(r"```python\n(.*?)```", README, re.DOTALL)
    (found,) = [b for b in blocks if marker in b]
    return found


def project(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "myapp").mkdir()
    (tmp_path / "myapp" / "__init__.py").write_text("")
    (tmp_path / "myapp" / "webhooks.py").write_text(HANDLERS_MODULE)
    return {**os.environ, "PYTHONPATH": str(tmp_path), "RECORD": str(tmp_path / "calls.log"),
            "INCIDENT_WEBHOOK_SECRET": SECRET, "DJANGO_SETTINGS_MODULE": "settings"}  # fmt: skip


DJANGO_SETTINGS = """
SECRET_KEY = "not-a-secret-only-for-these-tests"
ROOT_URLCONF = "urls"
ALLOWED_HOSTS = ["*"]
DEBUG = False
INSTALLED_APPS = []
MIDDLEWARE = ["django.middleware.csrf.CsrfViewMiddleware"]
DATABASES = {}
"""


def test_the_readmes_django_snippet_answers_as_the_starlette_app_in_djangos_test_client(tmp_path: Path) -> None:
    env = project(tmp_path)
    urls = snippet("incident_webhooks.django import")
    urls += "from incident_webhooks.django import settings_view\nurlpatterns.append(path('from-settings/', settings_view()))\n"
    (tmp_path / "urls.py").write_text(urls)
    inbox = f"sqlite://{tmp_path / 'inbox.db'}"
    configured = f"INCIDENT_WEBHOOKS = {{'HANDLERS': 'myapp.webhooks:Handlers', 'SECRET': {SECRET!r}, 'INBOX': {inbox!r}}}\n"
    (tmp_path / "settings.py").write_text(DJANGO_SETTINGS + configured + snippet("LOGGING = {"))
    script = textwrap.dedent(f"""
        import django, json, asyncio
        django.setup()
        from django.test import Client, AsyncClient
        from incident_webhooks import testing
        from incident_webhooks.django import webhook_view
        from incident_webhooks import AsyncWebhookHandlers
        secret = {SECRET!r}
        body = testing.example_body("{GRANTED}")
        client = Client(enforce_csrf_checks=True)
        def post(msg_id, data=body, headers=None):
            signed = headers or testing.sign(data, secret, msg_id=msg_id)
            return client.post("/webhooks/incident/", data=data, content_type="application/json",
                               headers=signed)
        first = post("dj-1")
        again = post("dj-1")
        forged = post("dj-2", headers={{**testing.sign(body, secret, msg_id="dj-2"), "webhook-signature": "v1,AAAA"}})
        not_json = post("dj-3", data=b"{{nope")
        print(first.status_code, json.loads(first.content), again.status_code, json.loads(again.content))
        print(forged.status_code, not_json.status_code, not_json["webhook-delivery"])
        print(client.get("/webhooks/incident/").status_code, client.get("/readyz").status_code)
        class Async(AsyncWebhookHandlers):
            async def dispatch(self, event):
                print("async", event.event_type)
        view = webhook_view(Async(), secret=secret)
        assert asyncio.iscoroutinefunction(view)
        from django.test import AsyncRequestFactory
        request = AsyncRequestFactory().post("/x", data=body, content_type="application/json",
                                             headers=testing.sign(body, secret, msg_id="dj-async"))
        print("async-answer", asyncio.run(view(request)).status_code)
        from incident_webhooks.dedupe import AsyncRedisDedupeStore
        from incident_webhooks.django import ready_view
        down = webhook_view(Async(), secret=secret, dedupe=AsyncRedisDedupeStore("redis://127.0.0.1:1/0"))
        ready = ready_view(down)
        assert asyncio.iscoroutinefunction(ready)
        print("async-ready", asyncio.run(ready(AsyncRequestFactory().get("/readyz"))).status_code)
        stored = client.post("/from-settings/", data=body, content_type="application/json",
                             headers=testing.sign(body, secret, msg_id="dj-settings"))
        print("settings", stored.status_code, json.loads(stored.content))
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "200 {'status': 'ok'} 200 {'status': 'duplicate'}"
    assert lines[1] == "401 400 abort-message"
    assert lines[2] == "405 200"
    assert lines[3:] == [f"async {GRANTED}", "async-answer 200", "async-ready 503", "settings 200 {'status': 'stored'}"]
    from incident_webhooks.inbox import from_url

    assert from_url(inbox).get("dj-settings")[0].state == "pending"
    assert [i for w, _, i in records(tmp_path / "calls.log") if w == "handled"] == ["dj-1"]
    assert "INFO incident_webhooks.receiver handled" in done.stderr, "the README's LOGGING shows it"


def test_the_readmes_flask_snippet_answers_as_the_starlette_app_in_flasks_test_client(tmp_path: Path) -> None:
    env = project(tmp_path)
    (tmp_path / "flask_site.py").write_text(snippet("incident_webhooks.flask import"))
    script = textwrap.dedent(f"""
        import json
        from flask_site import app
        from incident_webhooks import testing
        secret = {SECRET!r}
        body = testing.example_body("{GRANTED}")
        client = app.test_client()
        def post(msg_id, data=body, headers=None):
            return client.post("/incident/webhooks", data=data, headers=headers or testing.sign(data, secret, msg_id=msg_id))
        first, again = post("fl-1"), post("fl-1")
        print(first.status_code, first.get_json(), again.status_code, again.get_json())
        forged = post("fl-2", headers={{**testing.sign(body, secret, msg_id="fl-2"), "webhook-signature": "v1,AAAA"}})
        big = post("fl-3", data=b"x" * 2_000_000)
        print(forged.status_code, big.status_code, client.get("/incident/healthz").status_code, client.get("/incident/readyz").status_code)
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["200 {'status': 'ok'} 200 {'status': 'duplicate'}", "401 413 200 200"]
    assert [i for w, _, i in records(tmp_path / "calls.log") if w == "handled"] == ["fl-1"]


def send_all(url: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "incident_webhooks", "send", url, "--all"],
                          env=env, capture_output=True, text=True, timeout=120, check=False)  # fmt: skip


def served(command: list[str], url: str, cwd: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)

    def up() -> bool:
        assert server.poll() is None, "the server died"
        try:
            HTTP.get(url, timeout=1)
            return True
        except httpx.TransportError:
            return False

    wait_until(up, " ".join(command[:4]))
    return server


@pytest.mark.parametrize("framework", ["django", "flask"])
def test_a_real_server_receives_every_example_signed_by_send(framework: str, tmp_path: Path) -> None:
    env = project(tmp_path)
    port = free_port()
    if framework == "django":
        (tmp_path / "urls.py").write_text(snippet("incident_webhooks.django import"))
        (tmp_path / "settings.py").write_text(DJANGO_SETTINGS)
        command = [sys.executable, "-m", "django", "runserver", f"127.0.0.1:{port}", "--noreload"]
        url = f"http://127.0.0.1:{port}/webhooks/incident/"
    else:
        (tmp_path / "flask_site.py").write_text(snippet("incident_webhooks.flask import"))
        command = [sys.executable, "-m", "flask", "--app", "flask_site", "run", "--port", str(port)]
        url = f"http://127.0.0.1:{port}/incident/webhooks"
    server = served(command, url, tmp_path, env)
    try:
        sent = send_all(url, env)
    finally:
        server.terminate()
        server.wait(20)
    assert sent.returncode == 0, sent.stdout + sent.stderr
    assert "34 of 34 deliveries answered 2xx" in sent.stdout
    handled = [i for w, _, i in records(tmp_path / "calls.log") if w == "handled"]
    assert len(handled) == 34 == len(set(handled))


def test_a_worker_process_serves_its_metrics_and_the_inboxs(tmp_path: Path) -> None:
    from incident_webhooks.inbox import SQLiteInbox
    from servers import WorkerProcess

    url = f"sqlite://{tmp_path / 'inbox.db'}"
    receiver = WebhookReceiver(SECRET, WebhookHandlers(), inbox=SQLiteInbox(tmp_path / "inbox.db"))
    for n in range(5):
        assert receiver.handle(*signed(f"w{n}")).status == 200
    port = free_port()
    with WorkerProcess(tmp_path / "calls.log", url, "--metrics-port", str(port)):

        def scrape() -> dict[Any, float]:
            try:
                return samples(HTTP.get(f"http://127.0.0.1:{port}/metrics").text)
            except httpx.TransportError:
                return {}

        done = ("incident_webhooks_inbox_attempts_total", (("event_type", GRANTED), ("result", "done")))
        wait_until(lambda: scrape().get(done) == 5, "the worker's metrics", timeout=15)
        found = scrape()
    assert found[("incident_webhooks_inbox_rows", (("state", "done"),))] == 5
    assert found[("incident_webhooks_handler_delay_seconds_count", (("event_type", GRANTED),))] == 5


def test_the_metrics_app_serves_from_any_route_with_the_inboxs_rows(tmp_path: Path) -> None:
    from incident_webhooks import metrics
    from incident_webhooks.inbox import SQLiteInbox
    from starlette.applications import Starlette
    from starlette.routing import Route

    inbox = SQLiteInbox(tmp_path / "inbox.db")
    inbox.store("e", "m1", GRANTED, b"{}", {})
    # A Route takes an ASGI app as it is (a Mount would redirect to the path with a "/").
    app = Starlette(routes=[Route("/internal/metrics", metrics.app(inbox))])

    async def scrape() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            return await client.get("/internal/metrics")

    answer = asyncio.run(scrape())
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    assert samples(answer.text)[("incident_webhooks_inbox_rows", (("state", "pending"),))] == 1
