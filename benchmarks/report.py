"""The targets, and the Markdown and JSON reports."""

from __future__ import annotations

import platform
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.common import LARGE, SDK_MODELS
from benchmarks.inbox import inbox_targets, render_inbox
from benchmarks.scale import BEFORE_COMMIT


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


def render_vendors(v: dict[str, Any]) -> list[str]:
    gh, io = v["size"]["github"], v["size"]["incident"]
    ms = 1000.0
    return [
        "## Another vendor at scale: GitHub's spec",
        "",
        ("GitHub's published webhook spec (`tests/fixtures/vendors/github.json`: 261 webhooks, a few "
         "hundred schemas, the X-GitHub-Event envelope) against incident.io's 34, both generated "
         "and imported in the same run, each package byte-compiled."),
        "",
        "| | GitHub (261) | incident.io (34) | ratio |",
        "|---|---|---|---|",
        f"| generation, seconds | {fmt(v['generation_seconds']['github'])} | {fmt(v['generation_seconds']['incident'])} | |",
        f"| generation per webhook | | | {fmt(v['generation_per_webhook_ratio'], '×')} |",
        f"| generation per model module | | | {fmt(v['generation_per_model_module_ratio'], '×')} |",
        f"| peak memory, MiB | {fmt(v['generation_peak_mib']['github'], digits=0)} | {fmt(v['generation_peak_mib']['incident'], digits=0)} | per webhook {fmt(v['memory_per_webhook_ratio'], '×')} |",
        f"| import after pydantic, ms | {fmt(v['seconds']['github']['import'], scale=ms)} | {fmt(v['seconds']['incident']['import'], scale=ms)} | {fmt(v['import_ratio'], '×')} |",
        f"| import + first parse, ms | {fmt(v['seconds']['github']['first_parse'], scale=ms)} | {fmt(v['seconds']['incident']['first_parse'], scale=ms)} | {fmt(v['first_parse_ratio'], '×')} |",
        f"| package | {gh['files']:,} files ({gh['model_modules']:,} model modules), {gh['bytes']:,} bytes | {io['files']} files ({io['model_modules']} model modules), {io['bytes']:,} bytes | |",
        "",
        ("A GitHub webhook reaches about 17 model classes where an incident.io one reaches 4, so time "
         "per webhook is not the like-for-like figure: per model module generation is linear. "
         "Where the time goes: datamodel-code-generator (one process, about a third) and black "
         "over each model module (two halves at once, about half). First parse: GitHub's "
         "check_run.completed (its model and the ~40 it reaches) against incident.io's "
         "incident_created_v2."),
        "",
    ]


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
        *(render_inbox(results["inbox"]) if "inbox" in results else []),
        *(render_vendors(results["vendors"]) if "vendors" in results else []),
        *(render_burst(results["burst"]) if "burst" in results else []),
        *([(f"Receiving with metrics on (Prometheus counters and histograms) takes {results['metrics']['on_over_off']['median']:.3f}× "
           "the time with them off (alternating bursts, the same signed delivery)."), ""] if "metrics" in results else []),
        "## Reproduce",
        "",
        "```sh",
        "make bench                   # sets up .venv with the bench extra, then:",
        "python benchmarks/run.py     # BENCH_ROUNDS=N for more rounds; writes build/bench/",
        "python benchmarks/run.py --output docs   # refresh the committed figures, deliberately",
        "python benchmarks/run.py --from-json build/bench/benchmarks.json --output docs   # the same figures, the report's prose as it is now",
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


def render_burst(b: dict[str, Any]) -> list[str]:
    nothing = b["do_nothing"]
    lines = [
        "## Bursts through the real HTTP server",
        "",
        (f"`serve --inbox URL --no-worker --workers 2` under {b['connections']} concurrent keep-alive "
         f"connections from `wrk` for {b['seconds']} s, each request a pre-signed unique delivery of "
         "incident_created_v2 (4.4 KB, as `json.dumps` writes its example), against a bare sequential INSERT + COMMIT loop on the same "
         "database with the inbox's durability (SQLite WAL + synchronous=FULL; PostgreSQL "
         f"fsync={b['postgres_settings']['fsync']}, synchronous_commit="
         f"{b['postgres_settings']['synchronous_commit']}, read with SHOW). The disk's flush rate "
         "drifts within a run, so that loop runs before each database's figures, between its "
         "ingest and its drains, and after them, each time after a sync (so that it does not "
         "measure the writeback of the figure before it); the median of the three is the "
         "baseline. The load generator against "
         f"a do-nothing app on the same stack (uvicorn, uvloop, httptools, 2 processes): "
         f"{nothing['per_second']:,.0f} requests/s, p99 {nothing['p99_ms']:.1f} ms: it is not the limit."),
        "",
        "| | SQLite | PostgreSQL |",
        "|---|---|---|",
        f"| bare INSERT + COMMIT, rows/s: median (before, between, after) | {b['bare_per_second']['sqlite']:,.0f} ({', '.join(f'{x:,.0f}' for x in b['bare_runs']['sqlite'])}) | {b['bare_per_second']['postgres']:,.0f} ({', '.join(f'{x:,.0f}' for x in b['bare_runs']['postgres'])}) |",
    ]
    s, p = b["sqlite"], b["postgres"]
    lines += [
        f"| `serve` stores, deliveries/s | {s['ingest']['stored_per_second']:,.0f} ({s['ingest_over_bare']:.2f}×) | {p['ingest']['stored_per_second']:,.0f} ({p['ingest_over_bare']:.2f}×) |",
        f"| p50 / p99 answer, ms | {s['ingest']['p50_ms']:.0f} / {s['ingest']['p99_ms']:.0f} | {p['ingest']['p50_ms']:.0f} / {p['ingest']['p99_ms']:.0f} |",
        f"| answers that were not 2xx | {s['ingest']['non_2xx']} | {p['ingest']['non_2xx']} |",
    ]
    for key in ("", "_c4"):
        small, large = s[f"drain_1000{key}"], s[f"drain_20000{key}"]
        psmall, plarge = p[f"drain_1000{key}"], p[f"drain_20000{key}"]
        label = f"`--concurrency {small['concurrency']}`" + (" (the default)" if not key else " (the old default; not a target)")
        lines += [
            f"| 2 workers, {label}, drain 1,000 pending (no-op handler), rows/s | {small['per_second']:,.0f} ({small['over_bare']:.2f}×) | {psmall['per_second']:,.0f} ({psmall['over_bare']:.2f}×) |",
            f"| 2 workers, {label}, drain 20,000 pending, rows/s | {large['per_second']:,.0f} ({large['over_bare']:.2f}×) | {plarge['per_second']:,.0f} ({plarge['over_bare']:.2f}×) |",
            f"| 2 workers, {label}, drain at 20,000 over at 1,000 | {large['over_1000']:.2f}× | {plarge['over_1000']:.2f}× |",
        ]
    lines += [
        "",
        *burst_explained(b),
        *(render_slow_flush(b["slow_flush"]) if "slow_flush" in b else []),
    ]
    return lines


def burst_explained(b: dict[str, Any]) -> list[str]:
    """Where the time goes, figure by figure: measured beside the bench runs (py-spy, /proc),
    so the numbers here are the measurements', not this run's."""
    bare = b["bare_per_second"]["sqlite"]
    nothing = b["do_nothing"]["per_second"]
    best = max(b[db]["ingest"]["stored_per_second"] for db in ("sqlite", "postgres"))
    return [
        ("Where the time goes, figure by figure (py-spy and /proc/<pid>/stat beside bench runs on "
        "this machine; the comparisons are interleaved pairs of processes, old against new):"),
        "",
        (f"- **The load generator and the HTTP stack** are not the limit: against a do-nothing app "
        f"on the same stack they answer {nothing / best:.0f}× the inbox's best rate above. A Rust "
        "HTTP server (granian 2.8.9, ASGI, 2 processes, uvloop) in uvicorn's place stored "
        "3,252 and 3,715 deliveries/s against uvicorn's 3,386 and 3,229."),
        ("- **The bare loop** waits for one flush per row: it measures the disk. Its three "
        "placements show how far the flush rate drifted during the run; on a day it swung 4× "
        "within minutes, every ratio here moved with it."),
        ("- **Ingest is CPU.** Both `serve` processes run at 80-90 % of a core. A stored delivery "
        "costs ~0.25 ms of CPU across the processes on SQLite (measured in RAM) and ~0.32 ms on "
        "PostgreSQL: HTTP and the answer, the signature, reading the event type (the whole body "
        "is parsed, so malformed JSON is refused; the worker validates the payload, as it must "
        "anyway), the log line, and the process's share of a commit. Concurrent requests of a "
        "process share one commit (up to 64 rows), so the flush is paid per batch: matching the "
        "bare loop needs at most 2 cores ÷ its rate of CPU per delivery, machine-wide with the "
        f"load generator (~{2000 / bare:.2f} ms at this run's {bare:,.0f} rows/s on SQLite), and "
        "with a 1 ms flush the same work stands at 4-6× bare (below). What brought it there, "
        "each measured alone:"),
        ("  - each answer leaves in one write (uvicorn writes the head and the body as two "
        "`send`s, the largest share of a loaded process's GIL time, py-spy --gil 13.6 % and "
        "4.6 %): in RAM 7,047 against 6,198 deliveries/s, 0.254 against 0.280 ms of CPU each;"),
        ("  - no payload validation at receipt (it was ~19-30 % of the GIL time): 4,880 against "
        "4,048 deliveries/s, 0.32 against 0.41 ms;"),
        ("  - SQLite: the batch's statements run on the event loop and only the waits (the write "
        "lock, the flush) in a thread, since a writer thread taking the GIL back for each "
        "statement cost more than the statements: 20-33 % more deliveries/s at 18 % less CPU. "
        "The two processes take turns at the file's write lock, and a commit takes its rows "
        "once it holds it, so rows that arrived meanwhile join it (2,964-3,307 against "
        "2,657-2,807 deliveries/s);"),
        ("  - PostgreSQL: a writer thread sends each batch as one pipeline (one round trip), its "
        "rows as one `executemany` (0.050-0.055 ms of client CPU a row against 0.072-0.076); "
        "the server's processes share the same 2 cores (~0.25-0.30 ms a delivery), and store "
        "bodies with lz4 where they can (0.072-0.078 ms of the backend a row against pglz's "
        "0.120-0.126);"),
        ("  - the POST route is a bare ASGI endpoint, reached without Starlette's router and "
        "middleware while the app has none added (0.92× the CPU in one process);"),
        ("  - tried and within noise, so not kept: psycopg's asyncio connection from the loop, one "
        "multi-row INSERT per batch (on PostgreSQL from arrays: 0.14 ms a row, slower), the "
        "garbage collector's thresholds raised tenfold, one notification per batch. What is "
        "left, by py-spy: the log line (10-14 µs a record, in `timeit`), "
        "verification, the HTTP parser."),
        ("- **p99** is a request's wait for the commit before its own and its own commit, plus "
        "the event loop's queue."),
        ("- **Drain is CPU too**: ~0.27 ms of a worker's event-loop thread per row on uvloop "
        "(validating the 4.4 KB body 0.085 ms, the log line 0.05 ms, the row's task, the "
        "handler's hand-off to its thread; ~0.45 ms on asyncio's own loop) plus the statements, "
        "the 2 cores 75-80 % busy. A worker records the outcomes that arrive while one "
        "transaction commits in the next, which also claims rows for the slots they free: one "
        "transaction per 8-16 rows at the default `--concurrency 16`, per 2-4 at 4, which is "
        "why 4 drains at half to two thirds the rate (its slots idle while each transaction commits). "
        "On SQLite the write lock is held ~60 % of a drain, half of it in the flush; bodies "
        "live in a table of their own, so claims and completions do not write them again "
        "(20,000 rows drained ~25 % faster once they did not). On PostgreSQL a transaction "
        "of successes is one pipeline (1,000 rows at 3,664-3,711 rows/s against 2,061-2,185 "
        "with two round trips a row). The worker command runs the garbage collector's youngest "
         "generation every 10,000 allocations, not 700: it had taken 14 % of a drain (gc.callbacks), "
         "and two workers then used 12-15 % less CPU for the same rows. Running rows claimed "
         "ahead while a transaction commits "
        "bought nothing at 16 and was not kept."),
        ("- **Drain at 20,000 pending against 1,000**: a claim reads the partial index of due "
        "rows (`INDEXED BY` on SQLite), so its cost does not grow with the backlog. On "
        "PostgreSQL the inbox's connections keep scans off, since a plan kept from a nearly "
        "empty table scanned the whole backlog for every claim and completion, and statements "
        "that find a row by its id test its state in a form no partial index matches, since a "
        "completion once went through the index of due rows and read the whole backlog "
        "(both pinned in tests/test_inbox.py). Each 1,000-row figure is the median of five "
        "drains of well under a second, the 20,000-row one a single drain of several seconds, "
        "so what the disk does meanwhile weighs on the long one: on a day the disk's flush rate "
        "swung 4×, SQLite's ratio fell to 0.68-0.73 in three runs (0.84-1.02 in RAM), and with "
        "every flush slowed by 1 ms (below) the ratios of four runs were 0.99-1.44 on SQLite "
        "and 0.79-1.23 on PostgreSQL (not a target; not explained yet). Each PostgreSQL drain "
        "starts from a "
        "`VACUUM` and a `CHECKPOINT`, since autovacuum and the checkpoint of earlier figures' "
        "pages otherwise ran inside a drain and halved it (the servers' logs are kept as "
        "build/bench/pg-*.log); a production drain shares its disk with them too."),
        "",
    ]


def render_slow_flush(f: dict[str, Any]) -> list[str]:
    s, p = f["sqlite"], f["postgres"]

    def drain(r: dict[str, Any], rows: int) -> str:
        d = r[f"drain_{rows}"]
        return f"{d['per_second']:,.0f} ({d['over_bare']:.2f}×)"

    runs = {k: ", ".join(f"{x:,.0f}" for x in v) for k, v in f["bare_runs"].items()}
    return [
        f"### The same, with a {f['delay_us'] / 1000:g} ms flush",
        "",
        ("This machine's disk flushes in ~0.2 ms; most cloud disks take 1-2 ms. Here every "
         f"fsync and fdatasync of the database's processes (the bare loop's, `serve`'s and the "
         f"workers' for SQLite; PostgreSQL's server) first waits {f['delay_us']:,} µs, through a small "
         "LD_PRELOAD library the bench builds (benchmarks/burst.py); the rest is as above, at "
         "the default concurrency. Each commit of the bare loop waits for one flush, so it "
         "measures the disk; the inbox shares each flush among the rows of the requests "
         "waiting (a batch) and a worker's outcomes (a settle), so the same CPU work as above "
         "now stands against a slower baseline. Not a target of its own: the targets above are "
         "this machine's."),
        "",
        "| | SQLite | PostgreSQL |",
        "|---|---|---|",
        f"| bare INSERT + COMMIT, rows/s: median (before, between, after) | {f['bare_per_second']['sqlite']:,.0f} ({runs['sqlite']}) | {f['bare_per_second']['postgres']:,.0f} ({runs['postgres']}) |",
        f"| `serve` stores, deliveries/s | {s['ingest']['stored_per_second']:,.0f} ({s['ingest_over_bare']:.2f}×) | {p['ingest']['stored_per_second']:,.0f} ({p['ingest_over_bare']:.2f}×) |",
        f"| p50 / p99 answer, ms | {s['ingest']['p50_ms']:.0f} / {s['ingest']['p99_ms']:.0f} | {p['ingest']['p50_ms']:.0f} / {p['ingest']['p99_ms']:.0f} |",
        f"| answers that were not 2xx | {s['ingest']['non_2xx']} | {p['ingest']['non_2xx']} |",
        f"| 2 workers drain 1,000 pending, rows/s | {drain(s, 1000)} | {drain(p, 1000)} |",
        f"| 2 workers drain 20,000 pending, rows/s | {drain(s, 20000)} | {drain(p, 20000)} |",
        "",
    ]


def burst_targets(b: dict[str, Any]) -> list[dict[str, Any]]:
    def row(target: str, value: float, ok: bool, unit: str = "×") -> dict[str, Any]:
        return {"target": target, "measured": f"{value:.2f}{unit}", "met": ok, "before": ""}

    s, p = b["sqlite"], b["postgres"]
    rows = [
        row("burst ingest through HTTP ≥ 1× bare INSERT + COMMIT (SQLite)", s["ingest_over_bare"], s["ingest_over_bare"] >= 1),
        row("burst ingest through HTTP ≥ 1.5× bare (PostgreSQL, fsync on)", p["ingest_over_bare"], p["ingest_over_bare"] >= 1.5),
        row("burst p99 ≤ 250 ms (SQLite)", s["ingest"]["p99_ms"], s["ingest"]["p99_ms"] <= 250, " ms"),
        row("burst p99 ≤ 250 ms (PostgreSQL)", p["ingest"]["p99_ms"], p["ingest"]["p99_ms"] <= 250, " ms"),
    ]
    # The targets hold at the worker's default concurrency; the `--concurrency 4` drains are
    # shown in the burst table for handlers that must not run many at once, not judged here.
    for name, r in (("SQLite", s), ("PostgreSQL", p)):
        small, large = r["drain_1000"], r["drain_20000"]
        how = f"{name}, --concurrency {small['concurrency']}"
        rows += [
            row(f"drain ≥ 1× bare ({how}, 1,000 pending)", small["over_bare"], small["over_bare"] >= 1),
            row(f"drain at 20,000 pending ≥ 1/1.2 of at 1,000 ({how})", large["over_1000"], large["over_1000"] >= 1 / 1.2),
        ]
    return rows


def vendor_targets(v: dict[str, Any]) -> list[dict[str, Any]]:
    def row(target: str, stat: dict[str, float], ok: bool, unit: str = "×") -> dict[str, Any]:
        return {"target": target, "measured": f"{stat['median']:.2f}{unit}", "met": ok, "before": ""}

    seconds = v["generation_seconds"]["github"]
    return [
        row("GitHub's spec (261 webhooks): generation per webhook ≤ 1.1× incident.io's (34)",
            v["generation_per_webhook_ratio"], v["generation_per_webhook_ratio"]["median"] <= 1.1),
        row("GitHub's spec: generation per model module ≤ 1.1× incident.io's",
            v["generation_per_model_module_ratio"], v["generation_per_model_module_ratio"]["median"] <= 1.1),
        row("GitHub's spec: peak memory per webhook ≤ 1.1× incident.io's",
            v["memory_per_webhook_ratio"], v["memory_per_webhook_ratio"]["median"] <= 1.1),
        row("GitHub's spec: import after pydantic ≤ 1.2× the 34-webhook package's",
            v["import_ratio"], v["import_ratio"]["median"] <= 1.2),
        row("GitHub's spec generates in under a minute (2 cores)", seconds, seconds["median"] < 60, " s"),
    ]


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    p, r, i = results["parsing"], results["receive"], results["import"]

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
        row("generation linear: per webhook at 340 ≤ 1.1× at 34", {"median": per_webhook}, per_webhook <= 1.1,
            before=f"{was['generation_per_webhook_340_over_34']:.2f}×" if was else "n/a"),
        row("≥3× faster than the official SDK (large)", p["large"]["sdk_over_ours"], p["large"]["sdk_over_ours"]["median"] >= 3,
            before=before_sdk("large")),
        row("≥3× faster than the official SDK (small)", p["small"]["sdk_over_ours"], p["small"]["sdk_over_ours"]["median"] >= 3,
            before=before_sdk("small")),
        row("receive path within 3× its floor (large)", r["large"]["ratio_vs_floor"], r["large"]["ratio_vs_floor"]["median"] <= 3),
        row("receive path within 3× its floor (small)", r["small"]["ratio_vs_floor"], r["small"]["ratio_vs_floor"]["median"] <= 3),
        row("import ≥10× faster than the SDK's", i["sdk_over_ours"], i["sdk_over_ours"]["median"] >= 10),
        *(inbox_targets(results["inbox"]) if "inbox" in results else []),
        *(vendor_targets(results["vendors"]) if "vendors" in results else []),
        *(burst_targets(results["burst"]) if "burst" in results else []),
        *([row("receive path with metrics on ≤ 1.1× off", m, m["median"] <= 1.1)]
          if (m := results.get("metrics", {}).get("on_over_off")) else []),
    ]
