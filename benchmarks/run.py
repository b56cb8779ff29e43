"""``make bench``: our generated package against the baselines a user would otherwise use,
measured side by side in one run on this machine.

Every figure is the median of several rounds, with min and max. Each ratio is computed within
a round (per-call ratios from alternating short bursts, or two processes run one after the
other), then summarised the same way, so a noisy neighbour slows both sides of a ratio alike.
Writes ``benchmarks.md`` and ``benchmarks.json`` under build/bench (or ``--output``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from standardwebhooks import Webhook

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "spec" / "webhooks.json"
PACKAGE = ROOT / "generated" / "incident_webhooks"
# `make bench` writes here (ignored by git), so running it leaves the tree clean; the
# committed figures in docs/ are refreshed deliberately with `--output docs`.
DEFAULT_OUTPUT = ROOT / "build" / "bench"
SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "7"))
SMALL = "private_incident.membership_granted_v1"
LARGE = "public_incident.incident_created_v2"
SDK_MODELS = {
    SMALL: "incident_io.models.webhooks_private_incident_membership_granted_v1_response_body"
    ":WebhooksPrivateIncidentMembershipGrantedV1ResponseBody",
    LARGE: "incident_io.models.webhooks_public_incident_incident_created_v2_response_body"
    ":WebhooksPublicIncidentIncidentCreatedV2ResponseBody",
}


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def paired(ours: list[float], baseline: list[float]) -> dict[str, float]:
    """ours/baseline per round: above 1 means ours takes longer."""
    return summary([a / b for a, b in zip(ours, baseline, strict=True)])


# -- measuring ------------------------------------------------------------------------------


def run_timed(command: list[str], cwd: Path) -> tuple[float, float]:
    """Wall seconds and peak resident MiB of one child process."""
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"{' '.join(command)} failed: {process.stderr.read().decode() if process.stderr else ''}")
    return elapsed, usage.ru_maxrss / 1024


def per_call(func: Callable[[], object], budget: float = 0.15) -> float:
    """Seconds per call, from a loop long enough to trust the clock."""
    loops = 1
    while True:
        start = time.perf_counter()
        for _ in range(loops):
            func()
        elapsed = time.perf_counter() - start
        if elapsed >= budget:
            return elapsed / loops
        loops *= 2 if elapsed == 0 else max(2, int(budget / elapsed * 1.2))


def against(func: Callable[[], object], base: Callable[[], object], bursts: int = 21) -> tuple[float, float]:
    """(seconds per call of ``func``, its time over ``base``'s), from short bursts of each in
    turn: a shared machine changes speed within a second, and alternating bursts see the
    same speed, so the median of the burst ratios holds where two separate loops drift."""
    func(), base()  # a first call may build what later ones reuse: not what is measured
    loops = max(1, int(0.004 / per_call(func, budget=0.02)))
    base_loops = max(1, int(0.004 / per_call(base, budget=0.02)))
    times, ratios = [], []
    for _ in range(bursts):
        start = time.perf_counter()
        for _ in range(loops):
            func()
        middle = time.perf_counter()
        for _ in range(base_loops):
            base()
        end = time.perf_counter()
        times.append((middle - start) / loops)
        ratios.append(times[-1] / ((end - middle) / base_loops))
    return statistics.median(times), statistics.median(ratios)


def fresh_python(code: str) -> float:
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return float(out.stdout.strip().splitlines()[-1])


# -- the benchmarks -------------------------------------------------------------------------


def bench_generation(scratch: Path) -> dict[str, Any]:
    ours = [sys.executable, "-m", "codegen", "generate", "--spec", str(SPEC)]
    plain = [
        str(Path(sys.executable).with_name("datamodel-codegen")),
        "--input", str(SPEC), "--input-file-type", "openapi",
        "--output-model-type", "pydantic_v2.BaseModel", "--output", str(scratch / "plain.py"),
    ]  # fmt: skip
    out = scratch / "incident_webhooks"
    times: dict[str, list[float]] = {"ours": [], "plain": [], "noop": []}
    memory: dict[str, list[float]] = {"ours": [], "plain": [], "noop": []}
    for _ in range(max(3, ROUNDS // 2)):
        shutil.rmtree(out, ignore_errors=True)
        for name, command in (("ours", ours), ("noop", ours), ("plain", plain)):
            seconds, mib = run_timed([*command, "--out", str(out)] if name != "plain" else command, ROOT)
            times[name].append(seconds)
            memory[name].append(mib)
    return {
        "commands": {
            "ours": "python -m codegen generate --spec spec/webhooks.json --out <empty dir>",
            "noop": "python -m codegen generate (again, spec unchanged)",
            "plain": "datamodel-codegen --input spec/webhooks.json --input-file-type openapi "
            "--output-model-type pydantic_v2.BaseModel --output plain.py",
        },
        "seconds": {k: summary(v) for k, v in times.items()},
        "peak_mib": {k: summary(v) for k, v in memory.items()},
        "ratio_vs_plain": paired(times["ours"], times["plain"]),
        "noop_ratio_vs_plain": paired(times["noop"], times["plain"]),
        "memory_ratio_vs_plain": paired(memory["ours"], memory["plain"]),
    }


def example(event_type: str) -> bytes:
    doc = json.loads(SPEC.read_text())
    media = doc["webhooks"][event_type]["post"]["responses"]["200"]["content"]["application/json"]
    return json.dumps(media["example"]).encode()


def load(target: str) -> Any:
    module, name = target.split(":")
    return getattr(__import__(module, fromlist=[name]), name)


def tier(number: int, events: Any = None) -> None:
    """Put ``parse_event`` of ``events`` (incident_webhooks.events unless given) in its first
    tier (each body by its own model's validator, never promoted) or its second (the union
    of all models, as after ``PROMOTE_AFTER`` events or ``preload()``): the bench measures
    each on purpose rather than whichever it reached."""
    if events is None:
        from incident_webhooks import events

    if number == 1:
        events._union = None
        events.PROMOTE_AFTER = sys.maxsize
    else:
        events.preload()


def any_floor(event_type: str) -> Callable[[bytes], object]:
    """pydantic's floor for one event, as the issue that set the parse targets defined it:
    the same envelope and payload models with every field typed ``Any`` (same aliases, same
    required fields, unknown properties kept), validated from JSON by the compiled validator
    with no Python in between."""
    from incident_webhooks import EVENT_MODELS
    from pydantic import ConfigDict, Field, create_model

    model = EVENT_MODELS[event_type]
    payload = model.model_fields["payload"]
    inner = payload.annotation
    assert isinstance(inner, type)
    fields: dict[str, Any] = {
        name: (Any, Field(... if f.is_required() else None, alias=f.alias))
        for name, f in inner.model_fields.items()  # type: ignore[attr-defined]
    }
    config = ConfigDict(extra="allow")
    inner_any = create_model(f"{inner.__name__}Any", __config__=config, **fields)
    envelope = create_model("EnvelopeAny", __config__=config, event_type=(Any, ...),
                            payload=(inner_any, Field(alias=payload.alias)))  # fmt: skip
    return envelope.__pydantic_validator__.validate_json


def bench_parsing() -> dict[str, Any]:
    from incident_webhooks import parse_event

    results: dict[str, Any] = {}
    for label, event_type in (("small", SMALL), ("large", LARGE)):
        body = example(event_type)
        sdk_model = load(SDK_MODELS[event_type])
        floor = any_floor(event_type)
        # name -> (tier of parse_event to measure it in, or 0 for none, the call)
        candidates: dict[str, tuple[int, Callable[[], object]]] = {
            "parse_event": (2, lambda body=body: parse_event(body)),
            "parse_event, first tier": (1, lambda body=body: parse_event(body)),
            "pydantic floor": (0, lambda body=body, floor=floor: floor(body)),
            "orjson.loads": (0, lambda body=body: orjson.loads(body)),
            "json.loads": (0, lambda body=body: json.loads(body)),
            "sdk.from_dict": (0, lambda body=body, m=sdk_model: m.from_dict(json.loads(body))),
        }
        rounds: dict[str, list[float]] = {name: [] for name in candidates}
        ratios: dict[str, list[float]] = {name: [] for name in candidates}
        for _ in range(ROUNDS):
            for name, (number, func) in candidates.items():
                if number:
                    tier(number)
                seconds, ratio = against(func, candidates["orjson.loads"][1])
                rounds[name].append(seconds)
                ratios[name].append(ratio)
        results[label] = {
            "event_type": event_type,
            "bytes": len(body),
            "events_per_second": {k: summary([1 / s for s in v]) for k, v in rounds.items()},
            "ratio_vs_orjson": {k: summary(v) for k, v in ratios.items()},
            "sdk_over_ours": paired(ratios["sdk.from_dict"], ratios["parse_event"]),
            "first_tier_over_union": paired(ratios["parse_event, first tier"], ratios["parse_event"]),
            "ours_over_floor": paired(ratios["parse_event"], ratios["pydantic floor"]),
            "seconds_per_call": {k: summary(v) for k, v in rounds.items()},
        }
    tier(2)  # the receive-path benchmarks below measure the steady state
    return results


def bench_receive() -> dict[str, Any]:
    from incident_webhooks import SignatureVerifier, WebhookHandlers, parse_event

    verifier = SignatureVerifier(SECRET, tolerance=3600)
    handlers = WebhookHandlers()
    key = Webhook(SECRET)._whsecret
    results: dict[str, Any] = {}
    for label, event_type in (("small", SMALL), ("large", LARGE)):
        body = example(event_type)
        now = datetime.now(UTC)
        headers = {
            "webhook-id": "msg_bench",
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": Webhook(SECRET).sign("msg_bench", now, body.decode()),
        }
        signed = f"msg_bench.{headers['webhook-timestamp']}.".encode() + body

        def ours(body: bytes = body, headers: dict[str, str] = headers) -> None:
            verifier.verify(body, headers)
            handlers.dispatch(parse_event(body))

        def floor(body: bytes = body, signed: bytes = signed) -> None:
            hmac.new(key, signed, hashlib.sha256).digest()
            orjson.loads(body)

        ours_rounds, floor_rounds, ratios = [], [], []
        for _ in range(ROUNDS):
            seconds, ratio = against(ours, floor)
            ours_rounds.append(seconds)
            floor_rounds.append(seconds / ratio)
            ratios.append(ratio)
        results[label] = {
            "event_type": event_type,
            "events_per_second": {
                "verify+parse_event+dispatch": summary([1 / s for s in ours_rounds]),
                "floor: hmac-sha256+orjson.loads": summary([1 / s for s in floor_rounds]),
            },
            "ratio_vs_floor": summary(ratios),
        }
    return results


def bench_stores(scratch: Path) -> dict[str, Any]:
    """The whole receive path (`WebhookReceiver.handle`: verify, parse, claim, dispatch,
    complete) per dedupe store, every delivery a new webhook-id, as a ratio to the in-memory
    store measured in the same round."""
    sys.path.insert(0, str(ROOT / "tests"))
    from incident_webhooks import WebhookHandlers, WebhookReceiver
    from incident_webhooks.dedupe import (
        InMemoryDedupeStore,
        RedisDedupeStore,
        SQLiteDedupeStore,
    )
    from incident_webhooks.testing import sign
    from servers import RedisServer

    body = example(SMALL)
    per_round = 1000
    with RedisServer(scratch / "redis") as redis_server:
        stores = {
            "memory": lambda: InMemoryDedupeStore(),
            "sqlite": lambda: SQLiteDedupeStore(scratch / f"bench-{time.monotonic_ns()}.db"),
            "redis": lambda: RedisDedupeStore(redis_server.url, prefix=f"bench{time.monotonic_ns()}:"),
        }
        rounds: dict[str, list[float]] = {name: [] for name in stores}
        for round_number in range(ROUNDS):
            for name, make in stores.items():
                receiver = WebhookReceiver(SECRET, WebhookHandlers(), dedupe=make(), tolerance=3600)
                deliveries = [
                    sign(body, SECRET, msg_id=f"msg_{round_number}_{n}") for n in range(per_round)
                ]
                started = time.perf_counter()
                for headers in deliveries:
                    receiver.handle(body, headers)
                rounds[name].append((time.perf_counter() - started) / per_round)
    return {
        "event_type": SMALL,
        "deliveries_per_round": per_round,
        "events_per_second": {k: summary([1 / s for s in v]) for k, v in rounds.items()},
        "ratio_vs_memory": {k: paired(v, rounds["memory"]) for k, v in rounds.items()},
    }


TIMED_IMPORT = "import time\nt = time.perf_counter()\n{stmt}\nprint(time.perf_counter() - t)"


def bench_import() -> dict[str, Any]:
    sdk_module, sdk_name = SDK_MODELS[LARGE].split(":")
    body = example(LARGE).decode()
    statements = {
        "pydantic": "import pydantic",
        # pydantic with its validation machinery loaded, as any model definition loads it
        "pydantic_ready": "from pydantic import BaseModel\nclass M(BaseModel): a: int",
        "incident_webhooks": "import incident_webhooks",
        "sdk_one_model": f"from {sdk_module} import {sdk_name}",
        "ours_first_event": f"import incident_webhooks; incident_webhooks.parse_event({body!r})",
        "sdk_first_event": f"import json; from {sdk_module} import {sdk_name} as M; M.from_dict(json.loads({body!r}))",
    }
    rounds: dict[str, list[float]] = {name: [] for name in statements}
    added: list[float] = []
    for _ in range(ROUNDS):
        for name, stmt in statements.items():
            rounds[name].append(fresh_python(TIMED_IMPORT.format(stmt=stmt)))
        added.append(fresh_python("import pydantic\n" + TIMED_IMPORT.format(stmt="import incident_webhooks")))
    return {
        "seconds": {k: summary(v) for k, v in rounds.items()},
        "added_over_pydantic_seconds": summary(added),
        "added_over_pydantic_ready_seconds": summary(
            [a - b for a, b in zip(rounds["incident_webhooks"], rounds["pydantic_ready"], strict=True)]
        ),
        "sdk_over_ours": paired(rounds["sdk_one_model"], rounds["incident_webhooks"]),
        "sdk_over_ours_first_event": paired(rounds["sdk_first_event"], rounds["ours_first_event"]),
    }


def bench_size(package: Path = PACKAGE) -> dict[str, Any]:
    files = sorted(p for p in package.rglob("*.py"))
    return {
        "files": len(files),
        "lines": sum(len(p.read_text().splitlines()) for p in files),
        "bytes": sum(p.stat().st_size for p in files),
        "model_modules": len(list((package / "models").glob("*.py"))) - 1,
    }


SIZES = (34, 340)


def synthetic_spec(webhooks: int, target: Path) -> Path:
    """incident.io's spec with its webhooks cloned under new event types (``<type>_clone<k>``)
    until it has ``webhooks`` of them: the same payloads, ten times the events."""
    doc = json.loads(SPEC.read_text())
    real = doc["webhooks"]
    grown: dict[str, Any] = {}
    copy = 0
    while len(grown) < webhooks:
        for event_type, item in real.items():
            if len(grown) < webhooks:
                grown[event_type if copy == 0 else f"{event_type}_clone{copy}"] = item
        copy += 1
    doc["webhooks"] = grown
    target.write_text(json.dumps(doc))
    return target


# "Today's" package, as issue 12 measured it: the generator at the last commit before the
# lazy layout (every model in one module, all built at import, and the union with them).
# The bench generates it from the same spec in the same run, so "import + first parse" is
# compared with what users had, not with a variant of the new layout.
BEFORE_COMMIT = "194c67232368fe026c54a7f90957fd89cb11bfad"


def before_generator(scratch: Path) -> Path | None:
    """The generator at BEFORE_COMMIT, extracted into ``scratch``; None when the checkout has
    no such commit (a shallow clone), and the comparisons with it are then left out."""
    tree = scratch / "before-generator"
    if not tree.exists():
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", BEFORE_COMMIT, "codegen"],
                                 capture_output=True, check=False)  # fmt: skip
        if archive.returncode != 0:
            return None
        tree.mkdir()
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    return tree


def bench_scale(scratch: Path) -> dict[str, Any]:
    """Generation, size, import, import + first parse (against the package as it was before)
    and steady parse in both tiers at 34 and 340 webhooks, each package generated here and
    byte-compiled (as pip does on install)."""
    results: dict[str, Any] = {}
    large, small = example(LARGE), example(SMALL)
    prepared: dict[int, tuple[dict[str, tuple[Path, str]], list[float], list[float]]] = {}
    for n in SIZES:
        spec = synthetic_spec(n, scratch / f"spec{n}.json")
        package, out = f"pkg{n}", scratch / f"gen{n}"
        command = [sys.executable, "-m", "codegen", "generate", "--spec", str(spec), "--out", str(out),
                   "--package", package]  # fmt: skip
        seconds = []
        for _ in range(3):
            shutil.rmtree(out, ignore_errors=True)
            seconds.append(run_timed(command, ROOT)[0])
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(out)], check=True)
        before_package, before_out = f"before{n}", scratch / f"before{n}"
        tree = before_generator(scratch)
        has_before = tree is not None
        before_seconds = []
        if tree is not None:
            # Run from the old tree, so that `-m codegen` is the old generator (today's pins).
            before_command = [sys.executable, "-m", "codegen", "generate", "--spec", str(spec),
                              "--out", str(before_out), "--package", before_package]  # fmt: skip
            for _ in range(3):
                shutil.rmtree(before_out, ignore_errors=True)
                before_seconds.append(run_timed(before_command, tree)[0])
            subprocess.run([sys.executable, "-m", "compileall", "-q", str(before_out)], check=True)
        first_parse = "import pydantic\n" + TIMED_IMPORT.format(stmt="import {p}; {p}.parse_event({body!r})")
        timed: dict[str, tuple[Path, str]] = {
            "import": (out, "import pydantic\n" + TIMED_IMPORT.format(stmt=f"import {package}")),
            "import_total": (out, TIMED_IMPORT.format(stmt=f"import {package}")),
            "first_parse": (out, first_parse.format(p=package, body=large.decode())),
            # pydantic's own floor: its model machinery made ready by a one-field model
            "pydantic_ready": (out, "import pydantic\n" + TIMED_IMPORT.format(
                stmt="from pydantic import BaseModel\nclass M(BaseModel):\n    a: int")),
            # after the first event (one model built): what promotion to the union costs
            "union_build": (out, (f"import {package}; from {package} import events\n"
                                  f"{package}.parse_event({large.decode()!r})\n")
                            + TIMED_IMPORT.format(stmt="events.preload()")),
        }  # fmt: skip
        if has_before:
            timed["before_first_parse"] = (before_out, first_parse.format(p=before_package, body=large.decode()))
            timed["before_import"] = (before_out, "import pydantic\n" + TIMED_IMPORT.format(stmt=f"import {before_package}"))
            timed["before_import_total"] = (before_out, TIMED_IMPORT.format(stmt=f"import {before_package}"))
        prepared[n] = (timed, seconds, before_seconds)
    # Each statement at both sizes back to back, so that "340 over 34" compares processes run
    # a moment apart, not minutes apart on a machine whose speed drifts.
    every_round: dict[int, dict[str, list[float]]] = {n: {k: [] for k in prepared[n][0]} for n in SIZES}
    for _ in range(ROUNDS):
        for name in prepared[SIZES[0]][0]:
            for n in SIZES:
                path, code = prepared[n][0][name]
                env = {**os.environ, "PYTHONPATH": str(path)}
                out_text = subprocess.run(
                    [sys.executable, "-c", code], check=True, capture_output=True, text=True, env=env
                ).stdout
                every_round[n][name].append(float(out_text.strip().splitlines()[-1]))
    for n in SIZES:
        timed, seconds, before_seconds = prepared[n]
        rounds = every_round[n]
        package, out = f"pkg{n}", scratch / f"gen{n}"
        before_package, before_out = f"before{n}", scratch / f"before{n}"
        has_before = "before_first_parse" in timed
        sys.path.insert(0, str(out))
        parse = __import__(package).parse_event
        events = __import__(f"{package}.events", fromlist=["events"])
        promote_after = events.PROMOTE_AFTER
        steady: dict[str, list[float]] = {}
        if has_before:
            sys.path.insert(0, str(before_out))
            before_parse = __import__(before_package).parse_event
        for _ in range(ROUNDS):
            for label, body in (("large", large), ("small", small)):
                base = lambda b=body: orjson.loads(b)
                if has_before:
                    spent, ratio = against(lambda b=body, parse=before_parse: parse(b), base)
                    steady.setdefault(f"{label}_before", []).append(spent)
                    steady.setdefault(f"{label}_before_ratio", []).append(ratio)
                for number in (1, 2):
                    tier(number, events)
                    spent, ratio = against(lambda b=body, parse=parse: parse(b), base)
                    steady.setdefault(f"{label}_tier{number}", []).append(spent)
                    steady.setdefault(f"{label}_tier{number}_ratio", []).append(ratio)
        build = statistics.median(rounds["union_build"])
        # Per round, from the two tiers' ratios to the same baseline (times taken at
        # different moments on a shared machine would drift), in orjson.loads units.
        saved = {
            label: statistics.median(
                (r1 - r2) * (t1 / r1)
                for t1, r1, r2 in zip(steady[f"{label}_tier1"], steady[f"{label}_tier1_ratio"],
                                      steady[f"{label}_tier2_ratio"], strict=True)
            )
            for label in ("large", "small")
        }  # fmt: skip
        results[str(n)] = {
            "webhooks": n,
            "generation_seconds": summary(seconds),
            "generation_seconds_per_webhook": summary([s / n for s in seconds]),
            "size": bench_size(out / package),
            "seconds": {k: summary(v) for k, v in rounds.items()},
            "first_parse_vs_before": (
                paired(rounds["first_parse"], rounds["before_first_parse"]) if has_before else None
            ),
            # the part of import + first parse that is ours, past pydantic's floor
            "own_work_vs_before": (
                paired(
                    [a - f for a, f in zip(rounds["first_parse"], rounds["pydantic_ready"], strict=True)],
                    [b - f for b, f in zip(rounds["before_first_parse"], rounds["pydantic_ready"], strict=True)],
                )
                if has_before
                else None
            ),
            "steady_vs_orjson": {
                f"{label}_{kind}": summary(steady[f"{label}_{kind}_ratio"])
                for label in ("large", "small")
                for kind in ("tier1", "tier2", *(("before",) if has_before else ()))
            },
            "steady_seconds": {key: summary(values) for key, values in steady.items()},
            "before_generation_seconds_per_webhook": (
                summary([s / n for s in before_seconds]) if has_before else None
            ),
            "promote_after": promote_after,
            "saved_per_event_seconds": saved,
            # events after which the union has paid for itself, were every event this size
            "break_even_events": {
                label: (round(build / value) if value > 0 else None) for label, value in saved.items()
            },
            "_rounds": rounds,
        }
    a, b = results["34"], results["340"]
    results["import_340_over_34"] = paired(b["_rounds"]["import_total"], a["_rounds"]["import_total"])
    results["generation_per_webhook_340_over_34"] = (
        b["generation_seconds_per_webhook"]["median"] / a["generation_seconds_per_webhook"]["median"]
    )
    if a["first_parse_vs_before"] is not None:
        results["before"] = {
            "import_340_over_34": paired(b["_rounds"]["before_import_total"], a["_rounds"]["before_import_total"]),
            "generation_per_webhook_340_over_34": (
                b["before_generation_seconds_per_webhook"]["median"]
                / a["before_generation_seconds_per_webhook"]["median"]
            ),
        }
    for n in SIZES:
        del results[str(n)]["_rounds"]
    return results


# -- the report -----------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def fmt(stat: dict[str, float], unit: str = "", scale: float = 1.0, digits: int = 2) -> str:
    m, lo, hi = (stat[k] * scale for k in ("median", "min", "max"))
    return f"{m:,.{digits}f}{unit} ({lo:,.{digits}f}–{hi:,.{digits}f})"


def render(results: dict[str, Any]) -> str:
    g, p, r, i, s = (results[k] for k in ("generation", "parsing", "receive", "import", "size"))
    env = results["environment"]
    lines = [
        "# Benchmarks",
        "",
        "Written by `make bench` (`python benchmarks/run.py`); do not edit by hand. Each figure is",
        f"the median of {env['rounds']} rounds with (min–max). Each ratio is taken within a round: per-call",
        "ratios from alternating short bursts of the two calls (their median), or two processes run",
        "one after the other, so it is the figure to compare across machines. Absolute times on a",
        "shared machine mean little, and even ratios move by about ±10% from one run to the next",
        "here (2 shared cores): a target within that of its line is met in some runs, not others.",
        "",
        f"- CPU: {env['cpu']} ({env['cores']} cores), Python {env['python']} on {env['system']}",
        (f"- pydantic {env['versions']['pydantic']}, datamodel-code-generator "
        f"{env['versions']['datamodel-code-generator']}, incident-io SDK {env['versions']['incident-io']}, "
        f"orjson {env['versions']['orjson']}"),
        "",
        "## Targets",
        "",
        (f"*Before*: the package the generator made at commit {BEFORE_COMMIT[:7]}, before the lazy "
         "layout, measured in the same run where this bench measures it (the first eight rows)."),
        "",
        "| target | before | measured | met |",
        "|---|---|---|---|",
    ]
    for target in results["targets"]:
        lines.append(
            f"| {target['target']} | {target['before'] or ''} | {target['measured']} | {'yes' if target['met'] else '**no**'} |"
        )
    lines += [
        "",
        "## Generation (full spec, 34 webhooks)",
        "",
        "| run | seconds | peak MiB | ratio to plain datamodel-codegen |",
        "|---|---|---|---|",
        f"| ours: `{g['commands']['ours']}` | {fmt(g['seconds']['ours'])} | {fmt(g['peak_mib']['ours'], digits=0)} | {fmt(g['ratio_vs_plain'], '×')} |",
        f"| ours, no-op: `{g['commands']['noop']}` | {fmt(g['seconds']['noop'])} | {fmt(g['peak_mib']['noop'], digits=0)} | {fmt(g['noop_ratio_vs_plain'], '×')} |",
        f"| baseline: `{g['commands']['plain']}` | {fmt(g['seconds']['plain'])} | {fmt(g['peak_mib']['plain'], digits=0)} | 1× |",
        "",
        f"Peak memory, ours over plain: {fmt(g['memory_ratio_vs_plain'], '×')}.",
        "",
        "## Parsing one event from bytes",
        "",
        "| payload | candidate | events/s | time vs `orjson.loads` |",
        "|---|---|---|---|",
    ]
    for label in ("small", "large"):
        block = p[label]
        for name in ("parse_event", "parse_event, first tier", "pydantic floor", "orjson.loads", "json.loads", "sdk.from_dict"):
            shown = {
                "sdk.from_dict": "official SDK `from_dict(json.loads(b))`",
                "parse_event": "ours `parse_event(b)`, steady (the union)",
                "parse_event, first tier": "ours `parse_event(b)`, first tier (its own model)",
                "pydantic floor": "pydantic's floor: the same envelope and payload, every field `Any`",
            }.get(name, f"`{name}(b)`")
            lines.append(
                f"| {label}: {block['event_type']} ({block['bytes']} B) | {shown} | "
                f"{fmt(block['events_per_second'][name], digits=0)} | {fmt(block['ratio_vs_orjson'][name], '×')} |"
            )
        lines.append(f"| | official SDK time over ours | | {fmt(block['sdk_over_ours'], '×')} |")
        lines.append(f"| | ours (steady) over pydantic's floor | | {fmt(block['ours_over_floor'], '×')} |")
    lines += [
        "",
        "## Full receive path per event",
        "",
        "`SignatureVerifier.verify` + `parse_event` + `WebhookHandlers.dispatch`, against the floor of one",
        "HMAC-SHA256 over the signed content plus `orjson.loads`.",
        "",
        "| payload | ours events/s | floor events/s | time vs floor |",
        "|---|---|---|---|",
    ]
    for label in ("small", "large"):
        block = r[label]
        eps = block["events_per_second"]
        lines.append(
            f"| {label}: {block['event_type']} | {fmt(eps['verify+parse_event+dispatch'], digits=0)} | "
            f"{fmt(eps['floor: hmac-sha256+orjson.loads'], digits=0)} | {fmt(block['ratio_vs_floor'], '×')} |"
        )
    st = results["stores"]
    lines += [
        "",
        "## Receive path per dedupe store",
        "",
        (f"`WebhookReceiver.handle` (verify, parse, claim, dispatch, complete) for {st['event_type']}, "
         f"{st['deliveries_per_round']} new webhook-ids per round; Redis is a local redis-server "
         "with AOF `appendfsync always`, SQLite a file in a temporary folder (WAL)."),
        "",
        "| store | events/s | time vs in-memory |",
        "|---|---|---|",
    ]
    for name in ("memory", "sqlite", "redis"):
        lines.append(
            f"| {name} | {fmt(st['events_per_second'][name], digits=0)} | {fmt(st['ratio_vs_memory'][name], '×')} |"
        )
    lines += [
        "",
        "## Import, in a fresh interpreter",
        "",
        "| import | milliseconds |",
        "|---|---|",
        f"| `import pydantic` | {fmt(i['seconds']['pydantic'], scale=1000, digits=0)} |",
        f"| `import incident_webhooks` (all 34 webhooks) | {fmt(i['seconds']['incident_webhooks'], scale=1000, digits=0)} |",
        f"| `import incident_webhooks` after `import pydantic` | {fmt(i['added_over_pydantic_seconds'], scale=1000, digits=0)} |",
        f"| official SDK, one webhook model (`{SDK_MODELS[LARGE].split(':')[1]}`) | {fmt(i['seconds']['sdk_one_model'], scale=1000, digits=0)} |",
        f"| pydantic ready to validate (`import pydantic` + a one-field model) | {fmt(i['seconds']['pydantic_ready'], scale=1000, digits=0)} |",
        f"| ours over pydantic ready to validate | {fmt(i['added_over_pydantic_ready_seconds'], scale=1000, digits=0)} |",
        f"| import + first `parse_event` ({LARGE}) | {fmt(i['seconds']['ours_first_event'], scale=1000, digits=0)} |",
        f"| official SDK import + first `from_dict` (same payload) | {fmt(i['seconds']['sdk_first_event'], scale=1000, digits=0)} |",
        "",
        (f"Official SDK over ours: import {fmt(i['sdk_over_ours'], '×')}; import and first event "
        f"{fmt(i['sdk_over_ours_first_event'], '×')}. Importing `incident_webhooks` builds no "
        "model: each event model loads (with the models it reaches) on first use, so the first "
        "event pays for pydantic's model machinery and its own model, once."),
        "",
        "## At scale: 34 and 340 webhooks",
        "",
        ("The bench builds a spec of 340 webhooks (the 34 real ones cloned under new event types) "
         "and generates, byte-compiles and measures both sizes in the same run. Import and "
         "first parse are in a fresh interpreter after `import pydantic`. *Before* is the package "
         f"as users had it when this layout was planned: the generator at commit {BEFORE_COMMIT[:7]} "
         "(every model in one module, all of them and their union built at import), run on the "
         f"same spec in the same run; both parse {LARGE}."),
        "",
        "| | 34 webhooks | 340 webhooks |",
        "|---|---|---|",
        *scale_rows(results["scale"]),
        "",
        ("Where the union is built, by measurement: `parse_event` works in two tiers. At first "
         "each body is validated by its own model's compiled validator, picked by the event type "
         "it starts with; a model is built on the first event of its type, so the first event "
         "of a process pays for pydantic's machinery and one model, never for all of them. "
         "After `PROMOTE_AFTER` events (3,000 per webhook in the spec) or a call to `preload()`, "
         "the union of all models, built once, validates every body in one compiled call, which "
         "is cheaper than picking the model in Python. The threshold is set near where the "
         "time saved per event has paid for building the union (the rows above), so a process "
         "that sees few events never builds it and one that sees many pays at most about "
         "twice the optimum. The trade: the first event of each new type costs a model build "
         "(a few ms), the promotion one pause of the union's build (table above), and a body "
         "that fails validation before promotion builds the union to explain itself in the "
         "same words as always (the union then serves every body). A server that would rather "
         "pay all of this at start-up calls "
         "`preload()` there. The parsing tables above measure the steady state (after "
         "promotion) and, separately, the first tier."),
        "",
        "## Size of the generated package",
        "",
        f"{s['files']} Python files ({s['model_modules']} model modules), {s['lines']:,} lines, {s['bytes']:,} bytes.",
        "",
        "## Reproduce",
        "",
        "```sh",
        "make bench                   # sets up .venv with the bench extra, then:",
        "python benchmarks/run.py     # BENCH_ROUNDS=N for more rounds; writes build/bench/",
        "python benchmarks/run.py --output docs   # refresh the committed figures, deliberately",
        "```",
        "",
    ]
    return "\n".join(lines)


def size_cell(result: dict[str, Any]) -> str:
    size = result["size"]
    return f"{size['files']} / {size['model_modules']} / {size['bytes']:,}"


def saved_cell(result: dict[str, Any]) -> str:
    saved = result["saved_per_event_seconds"]
    return " / ".join(f"{saved[k] * 1e6:.2f} µs" for k in ("large", "small"))


def break_even_cell(result: dict[str, Any]) -> str:
    events = result["break_even_events"]
    return " / ".join(f"{events[k]:,}" if events[k] else "never" for k in ("large", "small"))


def scale_rows(scale: dict[str, Any]) -> list[str]:
    a, b = scale["34"], scale["340"]

    def both(get: Callable[[dict[str, Any]], str]) -> str:
        return f"{get(a)} | {get(b)}"

    ms = {"scale": 1000, "digits": 1, "unit": " ms"}
    return [
        f"| generation, seconds | {both(lambda r: fmt(r['generation_seconds']))} |",
        f"| generation per webhook, ms | {both(lambda r: fmt(r['generation_seconds_per_webhook'], **ms))} |",
        f"| package: files / model modules / bytes | {both(size_cell)} |",
        f"| `import` (after pydantic) | {both(lambda r: fmt(r['seconds']['import'], **ms))} |",
        f"| `import` including pydantic | {both(lambda r: fmt(r['seconds']['import_total'], **ms))} |",
        f"| import + first parse | {both(lambda r: fmt(r['seconds']['first_parse'], **ms))} |",
        f"| before: import + first parse (generator at {BEFORE_COMMIT[:7]}) | {both(lambda r: fmt(r['seconds']['before_first_parse'], **ms) if r['first_parse_vs_before'] else 'n/a')} |",
        f"| import + first parse vs before | {both(lambda r: fmt(r['first_parse_vs_before'], '×') if r['first_parse_vs_before'] else 'n/a')} |",
        f"| pydantic ready to validate (a one-field model), after `import pydantic` | {both(lambda r: fmt(r['seconds']['pydantic_ready'], **ms))} |",
        f"| past that floor: ours vs before | {both(lambda r: fmt(r['own_work_vs_before'], '×') if r['own_work_vs_before'] else 'n/a')} |",
        f"| steady parse (the union), large, vs `orjson.loads` | {both(lambda r: fmt(r['steady_vs_orjson']['large_tier2'], '×'))} |",
        f"| steady parse (the union), small, vs `orjson.loads` | {both(lambda r: fmt(r['steady_vs_orjson']['small_tier2'], '×'))} |",
        f"| first tier (own model), large, vs `orjson.loads` | {both(lambda r: fmt(r['steady_vs_orjson']['large_tier1'], '×'))} |",
        f"| first tier (own model), small, vs `orjson.loads` | {both(lambda r: fmt(r['steady_vs_orjson']['small_tier1'], '×'))} |",
        f"| building the union after the first event | {both(lambda r: fmt(r['seconds']['union_build'], **ms))} |",
        f"| time the union saves per event, large / small | {both(saved_cell)} |",
        f"| events for the union to pay for itself, large / small | {both(break_even_cell)} |",
        f"| `PROMOTE_AFTER` in the generated package | {both(lambda r: format(r['promote_after'], ','))} |",
    ]


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    p, r, i, g = results["parsing"], results["receive"], results["import"], results["generation"]

    def row(target: str, stat: dict[str, float], ok: bool, unit: str = "×", before: str = "") -> dict[str, Any]:
        return {"target": target, "measured": f"{stat['median']:.2f}{unit}", "met": ok, "before": before}

    sc = results["scale"]
    was = sc.get("before")
    b34 = sc["34"]

    def before_steady(label: str) -> str:
        return f"{b34['steady_vs_orjson'][f'{label}_before']['median']:.2f}×" if was else "n/a"

    def before_sdk(label: str) -> str:
        if not was:
            return "n/a"
        sdk = p[label]["ratio_vs_orjson"]["sdk.from_dict"]["median"]
        return f"{sdk / b34['steady_vs_orjson'][f'{label}_before']['median']:.2f}×"

    added_ms = {k: v * 1000 for k, v in i["added_over_pydantic_seconds"].items()}
    import34 = {k: v * 1000 for k, v in sc["34"]["seconds"]["import"].items()}
    per_webhook = sc["generation_per_webhook_340_over_34"]
    return [
        row("import adds ≤ 50 ms over `import pydantic` (34 webhooks)", import34, import34["median"] <= 50, " ms",
            f"{b34['seconds']['before_import']['median'] * 1000:.2f} ms" if was else "n/a"),
        row("import at 340 webhooks ≤ 1.2× import at 34", sc["import_340_over_34"], sc["import_340_over_34"]["median"] <= 1.2,
            before=f"{was['import_340_over_34']['median']:.2f}×" if was else "n/a"),
        (row(f"import + first parse ≤ 0.6× before (the generator at {BEFORE_COMMIT[:7]}, 34)", before, before["median"] <= 0.6,
             before="1.00×")
         if (before := b34["first_parse_vs_before"]) else
         {"target": "import + first parse ≤ 0.6× before", "measured": "not measured (no git history)", "met": False, "before": "n/a"}),
        row("steady parse, large ≤ 3.2× `orjson.loads`", p["large"]["ratio_vs_orjson"]["parse_event"], p["large"]["ratio_vs_orjson"]["parse_event"]["median"] <= 3.2,
            before=before_steady("large")),
        row("steady parse, small ≤ 3.2× `orjson.loads`", p["small"]["ratio_vs_orjson"]["parse_event"], p["small"]["ratio_vs_orjson"]["parse_event"]["median"] <= 3.2,
            before=before_steady("small")),
        row("≥3.8× faster than the official SDK (large)", p["large"]["sdk_over_ours"], p["large"]["sdk_over_ours"]["median"] >= 3.8,
            before=before_sdk("large")),
        row("≥3.8× faster than the official SDK (small)", p["small"]["sdk_over_ours"], p["small"]["sdk_over_ours"]["median"] >= 3.8,
            before=before_sdk("small")),
        row("generation linear: per webhook at 340 ≤ 1.1× at 34", {"median": per_webhook}, per_webhook <= 1.1,
            before=f"{was['generation_per_webhook_340_over_34']:.2f}×" if was else "n/a"),
        row("large payload parses within 3× `orjson.loads`", p["large"]["ratio_vs_orjson"]["parse_event"], p["large"]["ratio_vs_orjson"]["parse_event"]["median"] <= 3),
        row("small payload parses within 4.5× `orjson.loads`", p["small"]["ratio_vs_orjson"]["parse_event"], p["small"]["ratio_vs_orjson"]["parse_event"]["median"] <= 4.5),
        row("≥3× faster than the official SDK (large)", p["large"]["sdk_over_ours"], p["large"]["sdk_over_ours"]["median"] >= 3),
        row("≥3× faster than the official SDK (small)", p["small"]["sdk_over_ours"], p["small"]["sdk_over_ours"]["median"] >= 3),
        row("receive path within 3× its floor (large)", r["large"]["ratio_vs_floor"], r["large"]["ratio_vs_floor"]["median"] <= 3),
        row("receive path within 3× its floor (small)", r["small"]["ratio_vs_floor"], r["small"]["ratio_vs_floor"]["median"] <= 3),
        row("`import incident_webhooks` adds < 100 ms over pydantic", added_ms, added_ms["median"] < 100, " ms"),
        row("import ≥10× faster than the SDK's", i["sdk_over_ours"], i["sdk_over_ours"]["median"] >= 10),
        row("generation no slower than plain datamodel-codegen", g["ratio_vs_plain"], g["ratio_vs_plain"]["median"] <= 1),
    ]


def main(argv: list[str] | None = None) -> int:
    import argparse
    from importlib.metadata import version

    cli = argparse.ArgumentParser(description=__doc__)
    cli.add_argument("--output", type=Path, default=DEFAULT_OUTPUT,
                     help="folder for benchmarks.md and benchmarks.json (default build/bench)")
    args = cli.parse_args(argv)
    args.output.mkdir(parents=True, exist_ok=True)
    report, results_file = args.output / "benchmarks.md", args.output / "benchmarks.json"
    # Every fresh interpreter reads byte-compiled modules, as after a pip install; with
    # PYTHONDONTWRITEBYTECODE each one would compile the package again and measure that.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(PACKAGE)], check=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        results: dict[str, Any] = {
            "generation": bench_generation(Path(scratch)),
            "parsing": bench_parsing(),
            "receive": bench_receive(),
            "stores": bench_stores(Path(scratch)),
            "import": bench_import(),
            "size": bench_size(),
            "scale": bench_scale(Path(scratch)),
        }
    results["environment"] = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "system": platform.system(),
        "rounds": ROUNDS,
        "versions": {n: version(n) for n in ("pydantic", "datamodel-code-generator", "incident-io", "orjson")},
    }
    results["targets"] = targets(results)
    results_file.write_text(json.dumps(results, indent=2) + "\n")
    report.write_text(render(results))
    print(report.read_text())
    print(f"bench took {time.perf_counter() - started:.0f}s; wrote {report} and {results_file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
