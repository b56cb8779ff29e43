"""Generation time against plain datamodel-codegen."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT, ROUNDS, SPEC
from benchmarks.timing import paired, run_timed, summary


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
