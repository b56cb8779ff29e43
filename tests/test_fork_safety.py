"""A process forked while another thread loads or builds a model (a pre-fork server,
multiprocessing with fork) gets a child that parses every event type, whichever entry the
other thread was in: ``parse_event``, ``preload``, a model class reached through the
package, its ``models``, ``EVENT_MODELS``, or a model's own ``model_validate``. Two kinds of
lock are involved besides the package's own: Python's per-module import locks (held while a
model's module runs) and pydantic's global lock (held while a deferred model is built).
Each case runs in a fresh interpreter, so that nothing is loaded or built before the fork."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import importlib, importlib.abc, importlib.machinery, json, os, signal, sys, threading, time
    import incident_webhooks as pkg
    from incident_webhooks import events, testing

    ENTRY = sys.argv[1]
    TYPES = sorted(testing.event_types())
    FIRST = TYPES[0]
    MODULE, CLASS = events.EVENT_MODELS._where[FIRST]
    TARGET = f"incident_webhooks.models.{MODULE}"
    inside = threading.Event()

    class SlowImport(importlib.abc.MetaPathFinder):
        # The other thread is caught inside the model module's import: it takes a while.
        def find_spec(self, name, path, target=None):
            if name != TARGET:
                return None
            spec = importlib.machinery.PathFinder.find_spec(name, path)
            real = spec.loader

            class Loader(importlib.abc.Loader):
                def create_module(self, s):
                    return real.create_module(s)

                def exec_module(self, module):
                    inside.set()
                    time.sleep(0.6)
                    real.exec_module(module)

            spec.loader = Loader()
            return spec

    sys.meta_path.insert(0, SlowImport())

    def slow_build():
        # The other thread is caught inside pydantic's build of a deferred model.
        import pydantic.main
        lock = pydantic.main._rebuild_lock
        with lock:
            inside.set()
            time.sleep(0.6)

    entries = {
        "parse_event": lambda: events.parse_event(testing.example_body(FIRST)),
        "preload": events.preload,
        "package-attribute": lambda: getattr(pkg, CLASS),
        "models-attribute": lambda: getattr(importlib.import_module("incident_webhooks.models"), CLASS),
        "EVENT_MODELS": lambda: events.EVENT_MODELS[FIRST],
        "model_validate": lambda: slow_build(),
        "parser-lock": None,
    }
    if ENTRY == "parser-lock":
        def hold():
            with events._PARSER.building:
                inside.set()
                time.sleep(0.6)
        worker = threading.Thread(target=hold)
    else:
        worker = threading.Thread(target=entries[ENTRY])
    worker.start()
    assert inside.wait(30), "the other thread never got there"
    pid = os.fork()
    if pid == 0:
        signal.alarm(20)  # a hang ends the child with SIGALRM
        for t in TYPES:
            event = events.parse_event(testing.example_body(t))
            assert event.event_type == t
            events.EVENT_MODELS[t].model_validate_json(testing.example_body(t))
            name = events.EVENT_MODELS._where[t][1]
            getattr(pkg, name)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    worker.join()
    print(os.waitstatus_to_exitcode(status))
    """
)

ENTRIES = ["parse_event", "preload", "package-attribute", "models-attribute", "EVENT_MODELS", "model_validate",
           "parser-lock"]  # fmt: skip


@pytest.mark.parametrize("entry", ENTRIES)
def test_a_child_forked_while_another_thread_loads_or_builds_a_model_parses_every_event_type(entry: str) -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT, entry], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    code = done.stdout.strip().splitlines()[-1]
    assert code == "0", "the child hung (SIGALRM)" if code == "-14" else f"the child failed: {code}\n{done.stderr[-2000:]}"
