from __future__ import annotations

import hashlib
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from incident_webhooks import WebhookHandlers

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "spec" / "webhooks.json"
sys.path.insert(0, str(Path(__file__).resolve().parent))


def tree_hash(root: Path) -> str:
    """One digest of every file's path and bytes under ``root`` (caches aside)."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def spec_examples(spec: Path = SPEC) -> dict[str, dict[str, Any]]:
    """Event type -> the example payload the spec gives for it, in either published layout."""
    from codegen import loader, parser

    model = parser.parse(loader.load_spec(spec), str(spec))
    return {hook.event_type: hook.example for hook in model.webhooks if hook.example is not None}


@pytest.fixture(scope="session")
def examples() -> dict[str, dict[str, Any]]:
    return spec_examples()


class Recorder(WebhookHandlers):
    """Records each call; ``fail`` makes the next calls raise, like a broken handler."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.fail = False
        self.lock = threading.Lock()

    def __getattribute__(self, name: str) -> Any:
        if name.startswith("on_"):
            return lambda *args: object.__getattribute__(self, "record")(name, args)
        return object.__getattribute__(self, name)

    def record(self, name: str, args: tuple[Any, ...]) -> None:
        if self.fail:
            raise RuntimeError("handler is broken")
        with self.lock:
            self.calls.append((name, args))
