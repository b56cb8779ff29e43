"""No DSN is ever printed with its password (runtime ``redact.py``): every spelling a user
writes, well-formed or not, through every command and log line that names a database."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from incident_webhooks import redact
from incident_webhooks.inbox import InboxUnavailable, PostgresInbox
from packages import run_main
from test_inbox import SECRET

PIECES = ("s3cr", "etPW")


def _forms() -> dict[str, str]:
    forms: dict[str, str] = {}
    for name, sep in [("plain", ""), ("hash", "#"), ("slash", "/"), ("space", " "), ("at", "@"),
                      ("question", "?"), ("encoded-at", "%40"), ("colon", ":"), ("ampersand", "&")]:  # fmt: skip
        password = PIECES[0] + sep + PIECES[1]
        forms[f"url-{name}"] = f"postgresql://u:{password}@127.0.0.1:1/db"
        forms[f"query-{name}"] = f"postgresql://u@127.0.0.1:1/db?sslmode=disable&password={password}"
        forms[f"keyvalue-{name}"] = f"host=127.0.0.1 port=1 user=u password={password} dbname=db"
        forms[f"keyvalue-quoted-{name}"] = f"host=127.0.0.1 port=1 password='{password}' user=u"
    forms.update({
        "postgres-scheme": f"postgres://u:{PIECES[0]}{PIECES[1]}@127.0.0.1:1/db",
        "no-user": f"postgresql://:{PIECES[0]}{PIECES[1]}@127.0.0.1:1/db",
        "upper-scheme": f"POSTGRESQL://u:{PIECES[0]}{PIECES[1]}@127.0.0.1:1/db",
        "multi-host": f"postgresql://u:{PIECES[0]}{PIECES[1]}@127.0.0.1:1,127.0.0.1:2/db",
        "socket": f"postgresql://u:{PIECES[0]}{PIECES[1]}@/db?host=/nonexistent",
        "ipv6-broken": f"postgresql://u:{PIECES[0]}{PIECES[1]}@[::1:1/db",
        "sslpassword": f"postgresql://u@127.0.0.1:1/db?sslpassword={PIECES[0]}-{PIECES[1]}",
        "spaces-around-equals": f"password = {PIECES[0]}{PIECES[1]} host=127.0.0.1 port=1",
        "unterminated-quote": f"host=127.0.0.1 password='{PIECES[0]} {PIECES[1]}",
        "keyvalue-trailing-junk": f"host=127.0.0.1 password={PIECES[0]}{PIECES[1]} bogus",
    })  # fmt: skip
    return forms


FORMS = _forms()


def cli_main(*args: str, env: dict[str, str] | None = None) -> Any:
    from incident_webhooks.__main__ import main

    return run_main(main, args, env)


def assert_hidden(text: str, where: str) -> None:
    for piece in PIECES:
        assert piece not in text, f"{where} prints a piece of the password: {text!r}"


@pytest.mark.parametrize("form", sorted(FORMS))
def test_the_redacted_dsn_holds_no_piece_of_the_password(form: str) -> None:
    shown = redact.dsn(FORMS[form])
    assert_hidden(shown, "redact.dsn")
    assert redact.HIDDEN in shown


@pytest.mark.parametrize("form", sorted(FORMS))
def test_the_inbox_refuses_every_form_without_printing_its_password(form: str) -> None:
    try:
        PostgresInbox(FORMS[form], connect_timeout=1)
    except (InboxUnavailable, ValueError) as exc:
        assert_hidden(str(exc), "PostgresInbox's error")
        assert_hidden(repr(exc), "PostgresInbox's error")
    else:
        pytest.fail("port 1 answered")


@pytest.mark.parametrize("form", sorted(FORMS))
@pytest.mark.parametrize(
    "command",
    [
        ("inbox", "status"),
        ("inbox", "list"),
        ("inbox", "prune", "--older-than", "1d"),
        ("worker", "--handlers", "incident_webhooks.handlers:WebhookHandlers"),
        ("serve", "--secret", SECRET),
    ],
    ids=["status", "list", "prune", "worker", "serve"],
)
def test_no_command_prints_a_password_of_any_form(form: str, command: tuple[str, ...]) -> None:
    for how in ("flag", "environment"):
        if how == "flag":
            done = cli_main(*command, "--inbox", FORMS[form])
        else:
            done = cli_main(*command, env={"INCIDENT_WEBHOOK_INBOX": FORMS[form]}) if command[0] == "inbox" else None
        if done is None:
            continue
        assert done.returncode == 2, done
        assert_hidden(done.stdout + done.stderr, f"{' '.join(command)} ({how})")
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr


@pytest.mark.parametrize(
    "url",
    [f"redis://:{PIECES[0]}{PIECES[1]}@127.0.0.1:1/0", f"redis://u:{PIECES[0]}#{PIECES[1]}@127.0.0.1:1/0",
     f"rediss://u:{PIECES[0]}/{PIECES[1]}@127.0.0.1:1/0"],
)  # fmt: skip
def test_a_dedupe_url_is_never_printed_with_its_password(url: str) -> None:
    done = cli_main("serve", "--secret", SECRET, "--dedupe", url)
    assert done.returncode == 2
    assert_hidden(done.stdout + done.stderr, "serve --dedupe")


def test_readiness_names_no_host_or_port_and_its_log_no_password(caplog: pytest.LogCaptureFixture) -> None:
    import asyncio

    import httpx
    from incident_webhooks import WebhookHandlers
    from incident_webhooks.app import create_app
    from incident_webhooks.dedupe import AsyncRedisDedupeStore

    url = f"redis://u:{PIECES[0]}{PIECES[1]}@127.0.0.1:1/0"
    app = create_app(WebhookHandlers(), SECRET, dedupe=AsyncRedisDedupeStore(url))

    async def probe() -> Any:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get("/readyz")

    with caplog.at_level(logging.WARNING):
        ready = asyncio.run(probe())
    assert ready.status_code == 503
    assert ready.json() == {"status": "unavailable", "reason": "the dedupe store is unavailable"}
    assert "not ready" in caplog.text
    assert_hidden(caplog.text, "the readiness log line")

