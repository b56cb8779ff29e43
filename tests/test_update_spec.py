"""``python -m codegen update-spec``: a new spec comes in only if it is a usable spec."""

from __future__ import annotations

import http.server
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
import yaml
from golden_cases import spec_path

from codegen import fetch
from codegen.cli import main

GOOD = spec_path("membership_granted").read_bytes()


def newer() -> bytes:
    doc = json.loads(GOOD)
    doc["components"]["schemas"]["WebhookIncidentUserV2"]["properties"]["team_id"] = {"type": "string"}
    return json.dumps(doc, indent=2).encode()


@pytest.fixture
def committed(tmp_path: Path) -> Path:
    spec = tmp_path / "spec" / "webhooks.json"
    spec.parent.mkdir()
    spec.write_bytes(GOOD)
    return spec


def update(spec: Path, *args: str) -> int:
    return main(["update-spec", "--spec", str(spec), *args])


def test_a_newer_spec_replaces_the_committed_one_and_the_change_is_reported(
    committed: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "download.json"
    source.write_bytes(newer())
    assert update(committed, "--from", str(source)) == 0
    assert committed.read_bytes() == newer()
    out = capsys.readouterr().out
    assert "updated" in out
    assert "0 breaking, 0 source, 1 compatible, 0 informational" in out
    assert "property added: WebhookIncidentUserV2.team_id" in out
    assert [p.name for p in committed.parent.iterdir()] == ["webhooks.json"], "no scratch file left"


def test_identical_content_is_reported_unchanged_and_nothing_is_rewritten(
    committed: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "same.json"
    source.write_text(json.dumps(json.loads(GOOD)))  # same content, other formatting
    mtime = committed.stat().st_mtime_ns
    assert update(committed, "--from", str(source)) == 0
    assert "spec unchanged" in capsys.readouterr().out
    assert committed.stat().st_mtime_ns == mtime
    assert committed.read_bytes() == GOOD


def _without_webhooks() -> bytes:
    doc = json.loads(GOOD)
    doc["webhooks"] = {}
    return json.dumps(doc).encode()


def _dangling() -> bytes:
    doc = json.loads(GOOD)
    doc["components"]["schemas"].pop("WebhookIncidentUserV2")
    return json.dumps(doc).encode()


REFUSED = {
    "empty": (b"", "the file is empty"),
    "whitespace": (b"  \n", "the file is empty"),
    "html": (b"<!DOCTYPE html>\n<html><head><title>Sign in</title></head></html>", "HTML"),
    "truncated": (GOOD[: len(GOOD) // 2], "truncated"),
    "not-json-or-yaml": (b"\x89PNG\r\n\x1a\n\x00\x00", "not UTF-8"),
    "plain-text": (b"Service Unavailable", "not JSON: the file starts with 'Service Unavailable'"),
    "swagger-2": (b'{"swagger": "2.0", "paths": {}}', "Swagger 2.0 is not supported"),
    "not-openapi-3": (b'{"openapi": "2.0", "paths": {}}', "not an OpenAPI 3.x"),
    "no-webhooks": (_without_webhooks(), "has no webhooks"),
    "dangling-ref": (_dangling(), "WebhookIncidentUserV2' does not resolve"),
}


@pytest.mark.parametrize("case", REFUSED.values(), ids=REFUSED.keys())
def test_unusable_bytes_are_refused_with_exit_2_and_the_committed_spec_untouched(
    case: tuple[bytes, str], committed: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    content, message = case
    source = tmp_path / "download.json"
    source.write_bytes(content)
    assert update(committed, "--from", str(source)) == 2
    assert committed.read_bytes() == GOOD
    assert message in capsys.readouterr().err
    assert [p.name for p in committed.parent.iterdir()] == ["webhooks.json"]


def test_a_yaml_spec_is_committed_as_json(committed: Path, tmp_path: Path) -> None:
    source = tmp_path / "download.yaml"
    source.write_text(yaml.safe_dump(json.loads(newer())))
    assert update(committed, "--from", str(source)) == 0
    assert json.loads(committed.read_bytes()) == json.loads(newer())


class _Handler(http.server.BaseHTTPRequestHandler):
    routes: ClassVar[dict[str, tuple[int, bytes, dict[str, str]]]] = {}

    def do_GET(self) -> None:
        status, body, headers = self.routes.get(self.path, (404, b"not found", {}))
        self.send_response(status)
        for name, value in {"Content-Length": str(len(body)), **headers}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def spec_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    _Handler.routes = {
        "/webhooks.json": (200, newer(), {"Content-Type": "application/json"}),
        "/truncated.json": (200, newer()[:200], {"Content-Length": str(len(newer()))}),
        "/error.html": (200, b"<html><body>Bad gateway</body></html>", {"Content-Type": "text/html"}),
    }
    thread = threading.Thread(target=server.serve_forever, args=(0.05,))
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_a_spec_is_downloaded_from_a_url(committed: Path, spec_server: str) -> None:
    assert update(committed, "--url", spec_server + "/webhooks.json") == 0
    assert committed.read_bytes() == newer()


@pytest.mark.parametrize(
    ("path", "message"),
    [("/missing.json", "HTTP 404"), ("/truncated.json", "truncated"), ("/error.html", "HTML")],
)
def test_failed_or_bad_downloads_leave_the_spec_untouched(
    path: str, message: str, committed: Path, spec_server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert update(committed, "--url", spec_server + path) == 2
    assert committed.read_bytes() == GOOD
    assert message in capsys.readouterr().err


def test_the_default_url_comes_from_pyproject(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[tool.codegen]\nspec-url = "http://127.0.0.1:1/spec.json"\n')
    assert fetch.configured_url(pyproject) == "http://127.0.0.1:1/spec.json"
    assert fetch.configured_url(tmp_path / "missing.toml") is None


def test_an_unreachable_url_is_a_clear_error(committed: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as sock:  # a loopback port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert update(committed, "--url", f"http://127.0.0.1:{port}/spec.json") == 2
    assert "download failed" in capsys.readouterr().err
    assert committed.read_bytes() == GOOD
