"""The generated project as an application gets it: its own distribution, a testing kit, the
`send` command, and a receiver that answers and logs the way operators need."""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import tomllib
import venv
from pathlib import Path

import pytest
from conftest import ROOT, Recorder, spec_examples
from incident_webhooks import EVENT_MODELS, WebhookReceiver, testing
from packages import build_wheel
from test_receiver import SECRET, Server

from codegen.cli import main

GENERATED = ROOT / "generated"
GRANTED = "private_incident.membership_granted_v1"


# -- the testing kit ----------------------------------------------------------------------------


def test_sign_makes_the_headers_the_receiver_accepts() -> None:
    body = testing.example_body(GRANTED)
    headers = testing.sign(body, SECRET, msg_id="msg_kit", timestamp=1_800_000_000)
    assert headers["webhook-id"] == "msg_kit"
    assert headers["webhook-timestamp"] == "1800000000"
    assert headers["webhook-signature"].startswith("v1,")
    receiver = WebhookReceiver(SECRET, Recorder(), tolerance=24 * 3600)
    assert receiver.handle(body, testing.sign(body, SECRET)).status == 200


def test_sign_agrees_with_the_svix_library_byte_for_byte() -> None:
    from datetime import UTC, datetime

    from svix.webhooks import Webhook as SvixWebhook

    body = testing.example_body(GRANTED)
    at = datetime.fromtimestamp(1_800_000_000, tz=UTC)
    ours = testing.sign(body, SECRET, msg_id="msg_1", timestamp=at)["webhook-signature"]
    assert ours == SvixWebhook(SECRET).sign("msg_1", at, body.decode())


def test_sign_refuses_a_secret_that_cannot_be_incident_ios() -> None:
    with pytest.raises(ValueError, match="whsec_"):
        testing.sign(b"{}", " whsec_abc")


def test_every_spec_example_is_carried_in_the_package() -> None:
    examples = spec_examples()
    assert testing.event_types() == sorted(examples) == sorted(EVENT_MODELS)
    for event_type, body in examples.items():
        assert json.loads(testing.example_body(event_type)) == body
        assert type(testing.example(event_type)) is EVENT_MODELS[event_type]


def test_an_unknown_example_names_the_known_ones() -> None:
    with pytest.raises(KeyError, match="no example of 'nope'; known: private_alert"):
        testing.example_body("nope")


def test_importing_the_package_does_not_load_the_examples() -> None:
    code = (
        "import sys, incident_webhooks\n"
        "print('incident_webhooks.testing' in sys.modules)\n"
        "from incident_webhooks import testing\n"
        "print(testing._examples.cache_info().currsize)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "0"]


# -- python -m incident_webhooks send ---------------------------------------------------------


def send(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "incident_webhooks", "send", *argv],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


def test_send_all_delivers_every_webhook_to_its_handler() -> None:
    with Server() as server:
        result = send(server.url + "/webhooks", "--secret", SECRET, "--all")
        calls = [name for name, _ in server.handlers.calls]
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == len(EVENT_MODELS) + 1
    assert all(line.split("\t")[1] == "200" for line in lines[:-1])
    assert lines[-1] == f"{len(EVENT_MODELS)} of {len(EVENT_MODELS)} deliveries answered 2xx"
    assert sorted(calls) == sorted("on_" + t.replace(".", "_") for t in EVENT_MODELS)


def test_send_one_event_or_a_body_file_with_the_secret_from_the_environment(tmp_path: Path) -> None:
    body = tmp_path / "delivery.json"
    body.write_bytes(testing.example_body(GRANTED))
    with Server() as server:
        one = send(server.url + "/webhooks", "--event", GRANTED, env={"INCIDENT_WEBHOOK_SECRET": SECRET})
        mine = send(server.url + "/webhooks", "--body", str(body), "--secret", SECRET)
    assert one.returncode == 0 and one.stdout.startswith(f"{GRANTED}\t200\t")
    assert mine.returncode == 0 and mine.stdout.startswith(f"{body}\t200\t")


def test_send_exits_1_when_an_answer_is_not_2xx() -> None:
    other = "whsec_" + "b3RoZXItc2VjcmV0LW5vdC10aGUtc2VydmVycyE="
    with Server() as server:
        result = send(server.url + "/webhooks", "--secret", other, "--event", GRANTED)
    assert result.returncode == 1
    assert f"{GRANTED}\t401\t" in result.stdout


def test_send_reports_an_unreachable_endpoint_per_delivery() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = send(f"http://127.0.0.1:{port}/webhooks", "--secret", SECRET, "--event", GRANTED)
    assert result.returncode == 1
    assert "\tfailed (" in result.stdout


def test_send_help_shows_an_example_and_bad_input_is_one_line() -> None:
    shown = send("--help")
    assert "example:" in shown.stdout and "--all" in shown.stdout
    unknown = send("http://127.0.0.1:9/webhooks", "--secret", SECRET, "--event", "nope")
    assert unknown.returncode == 2 and unknown.stderr.startswith("error: no example of 'nope'")
    bad = send("http://127.0.0.1:9/webhooks", "--secret", "notasecret", "--all")
    assert bad.returncode == 2 and "whsec_" in bad.stderr and "Traceback" not in bad.stderr


# -- the receiver, as an operator sees it -----------------------------------------------------


def test_svix_header_names_are_accepted_when_the_webhook_ones_are_absent() -> None:
    body = testing.example_body(GRANTED)
    signed = testing.sign(body, SECRET)
    svix = {k.replace("webhook-", "svix-"): v for k, v in signed.items()}
    assert WebhookReceiver(SECRET, Recorder()).handle(body, svix).status == 200


def test_the_demo_refuses_a_secret_that_is_not_whsec_base64_in_one_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "incident_webhooks", "serve"],
        env={**os.environ, "INCIDENT_WEBHOOK_SECRET": "notasecret"},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "whsec_" in result.stderr


@pytest.mark.parametrize(
    ("change", "status", "logged"),
    [
        ("no-signature", 401, "webhook-id msg_log (unverified): 401"),
        ("too-large", 413, "webhook-id msg_log (unverified): 413"),
        ("invalid", 400, "webhook-id msg_log: 400, invalid payload"),
        ("busy", 409, "webhook-id msg_log: 409"),
        ("raises", 500, "webhook-id msg_log: 500, the private_incident.membership_granted_v1 handler raised"),
    ],
)
def test_every_refused_delivery_is_logged_with_its_reason_and_webhook_id(
    caplog: pytest.LogCaptureFixture, change: str, status: int, logged: str
) -> None:
    handlers = Recorder()
    receiver = WebhookReceiver(SECRET, handlers, max_body_bytes=10_000)
    body = testing.example_body(GRANTED)
    if change == "too-large":
        body = body[:-1] + b"," + b'"x": "' + b"x" * 10_000 + b'"}'
    if change == "invalid":
        body = json.dumps({"event_type": GRANTED, GRANTED: {"user_id": 1}}).encode()
    headers = testing.sign(body, SECRET, msg_id="msg_log")
    if change == "no-signature":
        del headers["webhook-signature"]
    if change == "busy":
        receiver.dedupe.claim("default:msg_log")
    handlers.fail = change == "raises"
    caplog.set_level(logging.INFO)
    assert receiver.handle(body, headers).status == status
    assert any(logged in record.getMessage() for record in caplog.records), caplog.text


def test_the_demo_logs_the_webhook_id_and_only_an_id_the_event_has(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from incident_webhooks.__main__ import LoggingHandlers

    receiver = WebhookReceiver(SECRET, LoggingHandlers())
    caplog.set_level(logging.INFO)
    for event_type, msg_id in ((GRANTED, "msg_grant"), ("private_incident.action_created_v1", "msg_action")):
        body = testing.example_body(event_type)
        assert receiver.handle(body, testing.sign(body, SECRET, msg_id=msg_id)).status == 200
    demo = [r.getMessage() for r in caplog.records if r.name.endswith(".demo")]
    assert demo[0] == f"webhook-id msg_grant: {GRANTED}"
    assert demo[1].startswith("webhook-id msg_action: private_incident.action_created_v1 id=")


def test_scaffold_finds_the_spec_from_inside_the_project_or_says_what_to_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(ROOT / "tests")
    assert main(["scaffold", str(tmp_path / "mine.py")]) == 0
    monkeypatch.chdir(tmp_path)
    assert main(["scaffold", "other.py"]) == 2
    err = capsys.readouterr().err
    assert "no spec/webhooks.json in" in err and "pass --spec PATH" in err


# -- the distribution -------------------------------------------------------------------------


def test_the_generated_project_declares_only_runtime_dependencies() -> None:
    meta = tomllib.loads((GENERATED / "pyproject.toml").read_text())["project"]
    assert meta["name"] == "incident-webhooks"
    assert [d.split(">")[0].split("=")[0] for d in meta["dependencies"]] == ["pydantic", "standardwebhooks"]
    assert sorted(meta["optional-dependencies"]) == ["django", "flask", "metrics", "postgres", "redis", "server", "tracing"]
    assert meta["version"].startswith("0.2.0+code.")
    toolchain = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "incident_webhooks" not in json.dumps(toolchain["tool"]["setuptools"])


def test_the_readme_lists_every_webhook_with_its_model_and_handler() -> None:
    readme = (GENERATED / "README.md").read_text()
    for event_type, model in EVENT_MODELS.items():
        handler = "on_" + event_type.replace(".", "_")
        assert f"| `{event_type}` | `{model.__name__}` | `{handler}` |" in readme
    assert "| `incident_id` | string | yes |" in readme
    assert "| `actor_user_id` | string | no |" in readme


@pytest.fixture(scope="module")
def app_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtualenv outside the repo with the wheel built from generated/ installed in it.
    No network: the wheel is built without isolation, and the venv borrows the already
    installed dependencies (pydantic, standardwebhooks) through a path file."""
    root = tmp_path_factory.mktemp("app")
    # Built from a copy: setuptools leaves build/ and *.egg-info/ in the folder it builds.
    source = root / "source"
    shutil.copytree(GENERATED, source, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build"))
    wheel = build_wheel(source, root / "dist")
    assert wheel.name.startswith("incident_webhooks-"), wheel
    # Without a pip of its own (ensurepip takes seconds): this pip installs into it.
    venv.create(root / "venv", with_pip=False)
    python = root / "venv" / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    import pydantic

    deps = Path(pydantic.__file__).parent.parent
    (Path(site) / "borrowed_deps.pth").write_text(f"{deps}\n")
    install = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
         "--no-index", "--disable-pip-version-check", str(wheel)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert install.returncode == 0, install.stdout + install.stderr
    return python


def test_the_wheel_installs_in_an_app_venv_and_its_examples_round_trip(app_venv: Path) -> None:
    code = (
        "import json, incident_webhooks as w\n"
        "from incident_webhooks import testing\n"
        "assert '/site-packages/incident_webhooks/' in w.__file__, w.__file__\n"
        "for t in testing.event_types():\n"
        "    body = testing.example_body(t)\n"
        "    event = w.parse_event(body)\n"
        "    assert type(event) is w.EVENT_MODELS[t]\n"
        "    assert event.model_dump(mode='json', by_alias=True, exclude_unset=True) == json.loads(body)\n"
        "print(len(testing.event_types()))\n"
    )
    result = subprocess.run(
        [str(app_venv), "-I", "-c", code], capture_output=True, text=True, check=False, cwd="/"
    )
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) == len(EVENT_MODELS)


def test_mypy_strict_checks_a_user_module_against_the_installed_package(tmp_path: Path) -> None:
    (tmp_path / "handlers.py").write_text(
        "from incident_webhooks import PrivateIncidentMembershipGrantedV1, WebhookHandlers\n\n\n"
        "class Handlers(WebhookHandlers):\n"
        "    def on_private_incident_membership_granted_v1(\n"
        "        self, event: PrivateIncidentMembershipGrantedV1\n"
        "    ) -> None:\n"
        "        print(event.payload.user_id.upper())\n"
    )
    (tmp_path / "wrong.py").write_text(
        "from incident_webhooks import PrivateIncidentMembershipGrantedV1\n\n\n"
        "def f(event: PrivateIncidentMembershipGrantedV1) -> int:\n"
        "    return event.payload.user_id\n"
    )
    run = [sys.executable, "-m", "mypy", "--strict"]
    # A user's settings are not the project's: a cache of their own, since mypy rewrites
    # every entry of a shared one it reads with other options (the other mypy tests, which
    # use the project's settings, would then check everything again).
    env = {**os.environ, "MYPY_CACHE_DIR": str(tmp_path / "mypy-cache")}
    # Both modules in one run (mypy reports each error with its file): one cold start, not two.
    checked = subprocess.run([*run, "handlers.py", "wrong.py"], cwd=tmp_path, env=env, capture_output=True, text=True, check=False)  # fmt: skip
    errors = [line for line in checked.stdout.splitlines() if ": error:" in line]
    assert checked.returncode == 1 and len(errors) == 1, checked.stdout
    assert errors[0].startswith("wrong.py:5: error: Incompatible return value type (got \"str\", expected \"int\")"), errors


def test_the_readmes_handler_test_passes_as_written(tmp_path: Path) -> None:
    import re

    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.DOTALL)
    (snippet,) = [b for b in blocks if "from incident_webhooks.testing import" in b]
    (tmp_path / "test_mine.py").write_text(snippet)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_mine.py"],
        cwd=tmp_path, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout
    assert "1 passed" in result.stdout
