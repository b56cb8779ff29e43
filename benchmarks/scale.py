"""Generation, import and parse at 34 and 340 webhooks, against the package before the lazy layout."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson

from benchmarks.common import LARGE, ROOT, ROUNDS, SMALL, SPEC, example, tier
from benchmarks.imports import bench_size
from benchmarks.timing import TIMED_IMPORT, against, paired, run_timed, summary

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
