"""The ``inbox`` commands an operator runs (runtime ``_cli.py``): what they refuse, what they
never create or delete, and what they print."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from incident_webhooks.inbox import (
    Failure,
    InboxMissing,
    SQLiteInbox,
    from_url,
    sqlite_path,
)
from incident_webhooks.receiver import WebhookReceiver
from servers import PostgresServer, new_inbox
from test_inbox import SECRET, Recording, inbox_cli, signed

INSPECTIONS = [
    ("status",),
    ("list",),
    ("show", "msg_0"),
    ("replay", "--state", "dead"),
    ("prune", "--older-than", "0"),
]


def a_row_in_every_state(url: str) -> None:
    """One row pending, failed, dead, invalid, done and processing, all old enough to prune."""
    inbox = from_url(url)
    receiver = WebhookReceiver(SECRET, Recording(), inbox=inbox)
    for n in range(6):
        receiver.handle(*signed(f"msg_{n}"))
    rows = inbox.claim("w", 30, limit=5)  # msg_0 stays pending
    inbox.fail(rows[0].id, "w", Failure("RuntimeError", "down"), retry_at=4e9)
    inbox.fail(rows[1].id, "w", Failure("RuntimeError", "down"), retry_at=None)
    inbox.mark_invalid(rows[2].id, "w", Failure("InvalidPayload", "bad"))
    inbox.complete(rows[3].id)  # rows[4] stays processing


# -- row 4: prune never deletes an unhandled event unless told to by name --------------------


@pytest.mark.parametrize("state", ["pending", "failed", "invalid", "dead"])
@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_prune_of_an_unhandled_state_needs_force_and_says_how_many(
    kind: str, state: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    server = request.getfixturevalue("postgres") if kind == "postgres" else None
    url = new_inbox(kind, tmp_path, server)
    a_row_in_every_state(url)
    refused = inbox_cli("inbox", "prune", "--older-than", "0", "--state", state, "--inbox", url)
    assert refused.returncode == 2
    assert f"1 {state} rows older than 0" in refused.stderr and "--force" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    counts = from_url(url).status().counts
    assert all(count == 1 for count in counts.values()), counts
    forced = inbox_cli("inbox", "prune", "--older-than", "0", "--state", state, "--force", "--inbox", url)
    assert forced.returncode == 0 and f"removed 1 {state} rows" in forced.stdout
    assert from_url(url).status().counts[state] == 0


def test_prune_deletes_done_rows_without_force_and_never_processing_ones(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/inbox.db"
    a_row_in_every_state(url)
    assert "removed 1 done rows" in inbox_cli("inbox", "prune", "--older-than", "0", "--inbox", url).stdout
    never = inbox_cli("inbox", "prune", "--older-than", "0", "--state", "processing", "--force", "--inbox", url)
    assert never.returncode == 2
    assert from_url(url).status().counts["processing"] == 1


@pytest.mark.parametrize("state", ["pending", "failed", "invalid", "dead"])
def test_the_library_refuses_to_prune_unhandled_rows_without_force(state: str, tmp_path: Path) -> None:
    inbox = SQLiteInbox(tmp_path / "inbox.db")
    with pytest.raises(ValueError, match="force"):
        inbox.prune(0, state)  # type: ignore[arg-type]
    assert inbox.prune(0, state, force=True) == 0  # type: ignore[arg-type]


# -- row 11: inspecting never creates an inbox; ambiguous URLs are refused --------------------


@pytest.mark.parametrize("command", INSPECTIONS, ids=[c[0] for c in INSPECTIONS])
@pytest.mark.parametrize("typo", ["inobx.db", "missing/inbox.db", "inbox.sqlite"])
def test_inspecting_an_inbox_that_does_not_exist_creates_nothing(
    command: tuple[str, ...], typo: str, tmp_path: Path
) -> None:
    (tmp_path / "real").mkdir()
    a_row_in_every_state(f"sqlite:///{tmp_path}/real/inbox.db")
    (tmp_path / "other").mkdir()
    done = inbox_cli("inbox", *command, "--inbox", f"sqlite:///{tmp_path}/other/{typo}")
    assert done.returncode == 2, done
    assert "no inbox" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not any((tmp_path / "other").iterdir()), "nothing is created"


@pytest.mark.parametrize("command", INSPECTIONS, ids=[c[0] for c in INSPECTIONS])
def test_inspecting_a_file_that_is_not_an_inbox_is_refused(command: tuple[str, ...], tmp_path: Path) -> None:
    for name, content in [("empty.db", b""), ("notes.txt", b"not a database")]:
        path = tmp_path / name
        path.write_bytes(content)
        done = inbox_cli("inbox", *command, "--inbox", f"sqlite:///{path}")
        assert done.returncode == 2, done
        assert len(done.stderr.strip().splitlines()) == 1
        assert path.read_bytes() == content


def test_inspecting_a_postgres_database_without_an_inbox_is_refused(postgres: PostgresServer) -> None:
    url = postgres.database(f"empty_{os.getpid()}")
    for command in INSPECTIONS:
        done = inbox_cli("inbox", *command, "--inbox", url)
        assert done.returncode == 2 and "no inbox" in done.stderr, done
    import psycopg

    with psycopg.connect(url) as db:
        assert db.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone() == (0,)
    with pytest.raises(InboxMissing):
        from_url(url, create=False)


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///var/lib/app/inbox.db", "/var/lib/app/inbox.db"),
        ("sqlite:////var/lib/app/inbox.db", "/var/lib/app/inbox.db"),  # SQLAlchemy's spelling
        ("sqlite://///var/lib/app/inbox.db", "/var/lib/app/inbox.db"),
        ("sqlite:/var/lib/app/inbox.db", "/var/lib/app/inbox.db"),
        ("sqlite:inbox.db", "inbox.db"),
        ("sqlite:data/inbox.db", "data/inbox.db"),
    ],
)
def test_sqlite_urls_name_one_file(url: str, path: str) -> None:
    assert sqlite_path(url) == path


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("sqlite://tmp/x.db", "sqlite:///tmp/x.db for the absolute path /tmp/x.db, or sqlite:tmp/x.db"),
        ("sqlite://x.db", "ambiguous"),
        ("sqlite://", "ambiguous"),
        ("sqlite:", "names no file"),
        ("sqlite:///", "names no file"),
        ("sqlite:///tmp/", "names no file"),
        ("sqlite:///tmp/x\0.db", "names no file"),
    ],
)
def test_ambiguous_or_empty_sqlite_urls_are_refused_with_the_right_spellings(url: str, says: str) -> None:
    with pytest.raises(ValueError) as refused:
        sqlite_path(url)
    assert says in str(refused.value)
    done = inbox_cli("inbox", "status", "--inbox", url)
    assert done.returncode == 2 and says in done.stderr


@pytest.mark.parametrize("url", ["sqlite:/tmp/x.db", "sqllite:///x.db", "sqlite//x.db", "postgres:/x", "file:///x.db", ""])
def test_other_typos_in_the_inbox_url_are_one_line_and_exit_2(url: str, tmp_path: Path) -> None:
    done = inbox_cli("inbox", "status", "--inbox", url or " ")
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done
    assert not any(tmp_path.iterdir())


def test_the_worker_still_creates_the_inbox_on_its_first_start(tmp_path: Path) -> None:
    inbox = from_url(f"sqlite:///{tmp_path}/new.db")
    assert inbox.status().counts["pending"] == 0
    assert json.loads(inbox_cli("inbox", "status", "--json", "--inbox", f"sqlite:///{tmp_path}/new.db").stdout)


# -- row 10: what the commands print cannot drive the operator's terminal --------------------

CONTROLS = ["\x1b[2J", "\x1b]0;owned\x07", "\x9b31m", "\r", "\x08", "\x7f", "\u202e", "\u2028", "\x00", "\x85"]


def hostile_rows(url: str) -> str:
    """A failed row and a dead one whose event type, error, traceback and body carry every
    control in CONTROLS; returns the text they carry."""
    inbox = from_url(url)
    text = "evil" + "".join(CONTROLS) + "end"
    for n, retry in enumerate([4e9, None]):
        body = json.dumps({"event_type": text, text: {"note": text}}, ensure_ascii=False).encode()
        inbox.store("/webhooks", f"msg_{n}", text, body, {"webhook-id": f"msg_{n}"})
    for n, row in enumerate(inbox.claim("w", 30, limit=2)):
        inbox.fail(row.id, "w", Failure("Boom" + text, text, f"Traceback:\n  {text}\nBoom: {text}"), [4e9, None][n])
    return text


def assert_printable(output: str) -> None:
    for line in output.split("\n"):
        assert line.isprintable(), f"a raw control character reached the terminal: {line!r}"


@pytest.mark.parametrize(
    "command",
    [("status",), ("list",), ("list", "--state", "dead"), ("show", "msg_0"), ("show", "msg_1"),
     ("replay", "--state", "dead"), ("replay", "--id", "msg_0"), ("show", "no\x1b[2Jsuch")],
    ids=["status", "list", "list-dead", "show-failed", "show-dead", "replay-state", "replay-id", "show-missing"],
)  # fmt: skip
def test_human_readable_output_escapes_every_control_character(command: tuple[str, ...], tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/inbox.db"
    hostile_rows(url)
    done = inbox_cli("inbox", *command, "--inbox", url)
    assert done.returncode in (0, 1), done
    assert_printable(done.stdout)
    assert_printable(done.stderr)
    if command[0] != "show" or "such" not in command[1]:
        assert "\\x1b" in done.stdout + done.stderr, "escaped, not dropped"


def test_json_output_stays_exact(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/inbox.db"
    text = hostile_rows(url)
    # An error is stored as text both databases take: a NUL written as Python would.
    error = text.replace("\x00", "\\x00")
    (shown,) = json.loads(inbox_cli("inbox", "show", "msg_1", "--json", "--inbox", url).stdout)
    assert shown["event_type"] == text and shown["last_error_message"] == error
    assert json.loads(shown["body"])[text] == {"note": text}
    status = json.loads(inbox_cli("inbox", "status", "--json", "--inbox", url).stdout)
    assert status["last_errors"][text]["message"] == error


def test_an_error_naming_a_hostile_argument_is_escaped(tmp_path: Path) -> None:
    done = inbox_cli("inbox", "list", "--since", "\x1b[2J\x9b", "--inbox", f"sqlite:///{tmp_path}/x.db")
    assert done.returncode == 2
    assert_printable(done.stderr)


# -- row 15: the demo server runs a newcomer's handlers, so a failed row can be made and replayed


def test_serve_runs_your_handlers_and_a_failed_row_can_be_replayed(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    from servers import HTTP, free_port, wait_until

    (tmp_path / "failing.py").write_text(
        "from incident_webhooks import WebhookHandlers\n\n\n"
        "class Failing(WebhookHandlers):\n"
        "    def dispatch(self, event):\n"
        "        raise RuntimeError('downstream is down')\n"
    )
    url = f"sqlite:///{tmp_path}/inbox.db"
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "INCIDENT_WEBHOOK_SECRET": SECRET}
    server = subprocess.Popen(
        [sys.executable, "-m", "incident_webhooks", "serve", "--port", str(port), "--inbox", url,
         "--handlers", "failing:Failing"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_until(lambda: _answers(HTTP, f"http://127.0.0.1:{port}/healthz"), "serve")
        body, headers = signed("msg_newcomer")
        assert HTTP.post(f"http://127.0.0.1:{port}/webhooks", content=body, headers=headers).status_code == 200
        wait_until(lambda: from_url(url).get("msg_newcomer")[0].state == "failed", "the failed row", timeout=20)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)
    (row,) = from_url(url).get("msg_newcomer")
    assert row.last_error_type == "RuntimeError" and row.last_error_message == "downstream is down"
    replayed = inbox_cli("inbox", "replay", "--id", "msg_newcomer", "--inbox", url)
    assert replayed.returncode == 0 and from_url(url).get("msg_newcomer")[0].state == "pending"


def _answers(http: Any, url: str) -> bool:
    import httpx

    try:
        return bool(http.get(url, timeout=1).status_code == 200)
    except httpx.TransportError:
        return False


@pytest.mark.parametrize(("spec", "says"), [("nothing_here:x", "cannot import"), ("json", "module:attribute"),
                                            ("json:decoder", "not a WebhookHandlers")])  # fmt: skip
def test_serve_refuses_handlers_it_cannot_use_in_one_line(spec: str, says: str, tmp_path: Path) -> None:
    from test_inbox import cli

    done = cli("serve", "--inbox", f"sqlite:///{tmp_path}/inbox.db", "--secret", SECRET, "--handlers", spec)
    assert done.returncode == 2 and says in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


# -- row 14: which code ran each attempt is on record -----------------------------------------


def test_inbox_show_says_which_handlers_ran_each_attempt(tmp_path: Path) -> None:
    import asyncio

    from test_inbox import work

    url = f"sqlite:///{tmp_path}/inbox.db"
    inbox = from_url(url)
    WebhookReceiver(SECRET, Recording(), inbox=inbox).handle(*signed("msg_1"))
    failing = Recording(fail=1)
    asyncio.run(work(inbox, failing, lambda: inbox.get("msg_1")[0].state == "failed",
                     handlers_name="app_one.webhooks:Handlers", retry_base=1))  # fmt: skip
    asyncio.run(work(inbox, Recording(), lambda: inbox.get("msg_1")[0].state == "done",
                     handlers_name="app_two.webhooks:Handlers"))  # fmt: skip
    shown = inbox_cli("inbox", "show", "msg_1", "--inbox", url).stdout
    assert "attempt 1: failed (RuntimeError), run by app_one.webhooks:Handlers in " in shown
    assert "attempt 2: done, run by app_two.webhooks:Handlers in " in shown
    (as_json,) = json.loads(inbox_cli("inbox", "show", "msg_1", "--json", "--inbox", url).stdout)
    assert [(a["attempt"], a["handlers"], a["outcome"]) for a in as_json["attempts_log"]] == [
        (1, "app_one.webhooks:Handlers", "failed"), (2, "app_two.webhooks:Handlers", "done"),
    ]  # fmt: skip


def test_the_worker_command_records_its_handlers_argument(tmp_path: Path) -> None:
    from servers import WorkerProcess, wait_until

    url = f"sqlite:///{tmp_path}/inbox.db"
    inbox = from_url(url)
    WebhookReceiver(SECRET, Recording(), inbox=inbox).handle(*signed("msg_1"))
    with WorkerProcess(tmp_path / "record", url):
        wait_until(lambda: inbox.get("msg_1")[0].state == "done", "handled")
    (row,) = inbox.get("msg_1")
    assert [a["handlers"] for a in inbox.attempts_of(row.id)] == ["recording_app:RecordingHandlers"]
