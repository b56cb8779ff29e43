"""Another vendor at scale: GitHub's published spec (261 webhooks, 433 schemas its payloads
reach, 2 MB) against incident.io's (34 webhooks), generated and used in the same run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT, ROUNDS, SPEC
from benchmarks.imports import bench_size
from benchmarks.timing import TIMED_IMPORT, paired, run_timed, summary

GITHUB = ROOT / "tests" / "fixtures" / "vendors" / "github.json"
# Generating GitHub's spec takes most of a minute: fewer rounds than the rest.
GENERATION_ROUNDS = 2


def _example(spec: Path, key: str) -> tuple[bytes, str]:
    """The first example GitHub's spec gives of webhook ``key``, and its X-GitHub-Event."""
    doc = json.loads(spec.read_text())
    operation = doc["webhooks"][key]["post"]
    media = operation["requestBody"]["content"]["application/json"]
    (ref,) = [e["$ref"] for e in media["examples"].values()][:1]
    value = doc["components"]["examples"][ref.rsplit("/", 1)[-1]]["value"]
    return json.dumps(value).encode(), operation["operationId"].split("/")[0].replace("-", "_")


def bench_vendors(scratch: Path) -> dict[str, Any]:
    sides = {"github": (GITHUB, "gh_pkg", 261), "incident": (SPEC, "io_pkg", 34)}
    seconds: dict[str, list[float]] = {name: [] for name in sides}
    memory: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(GENERATION_ROUNDS):
        for name, (spec, package, _count) in sides.items():
            out = scratch / f"vendor-{name}"
            shutil.rmtree(out, ignore_errors=True)
            spent, mib = run_timed([sys.executable, "-m", "codegen", "generate", "--spec", str(spec),
                                    "--out", str(out), "--package", package], ROOT)  # fmt: skip
            seconds[name].append(spent)
            memory[name].append(mib)
    for name in sides:
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(scratch / f"vendor-{name}")], check=True)
    body, event = _example(GITHUB, "check-run-completed")
    timed = {
        "import": "import pydantic\n" + TIMED_IMPORT.format(stmt="import {p}"),
        "first_parse": "import pydantic\n" + TIMED_IMPORT.format(stmt="import {p}; {p}.parse_event({body!r}, {headers!r})"),
    }  # fmt: skip
    incident_body = json.dumps(json.loads(SPEC.read_text())["webhooks"][
        "public_incident.incident_created_v2"]["post"]["responses"]["200"]["content"]["application/json"]["example"]
    ).encode()  # fmt: skip
    inputs = {"github": (body, {"X-GitHub-Event": event}), "incident": (incident_body, None)}
    rounds: dict[str, dict[str, list[float]]] = {n: {k: [] for k in timed} for n in sides}
    for _ in range(ROUNDS):
        for key, code in timed.items():
            for name, (_spec, package, _count) in sides.items():
                parsed_body, headers = inputs[name]
                text = code.format(p=package, body=parsed_body, headers=headers)
                env = {**os.environ, "PYTHONPATH": str(scratch / f"vendor-{name}")}
                done = subprocess.run([sys.executable, "-c", text], check=True, capture_output=True,
                                      text=True, env=env)  # fmt: skip
                rounds[name][key].append(float(done.stdout.strip().splitlines()[-1]))
    per_webhook = {n: [s / sides[n][2] for s in seconds[n]] for n in sides}
    sizes = {n: bench_size(scratch / f"vendor-{n}" / sides[n][1]) for n in sides}
    per_model = {n: [s / sizes[n]["model_modules"] for s in seconds[n]] for n in sides}
    return {
        "webhooks": {n: sides[n][2] for n in sides},
        "generation_seconds": {n: summary(v) for n, v in seconds.items()},
        "generation_peak_mib": {n: summary(v) for n, v in memory.items()},
        "generation_per_webhook_ratio": paired(per_webhook["github"], per_webhook["incident"]),
        "generation_per_model_module_ratio": paired(per_model["github"], per_model["incident"]),
        "memory_per_webhook_ratio": paired(
            [m / 261 for m in memory["github"]], [m / 34 for m in memory["incident"]]
        ),
        "seconds": {n: {k: summary(v) for k, v in r.items()} for n, r in rounds.items()},
        "import_ratio": paired(rounds["github"]["import"], rounds["incident"]["import"]),
        "first_parse_ratio": paired(rounds["github"]["first_parse"], rounds["incident"]["first_parse"]),
        "size": sizes,
    }
