"""``make bench``: our generated package against the baselines a user would otherwise use,
measured side by side in one run on this machine.

Every figure is the median of several rounds, with min and max. Each ratio is computed within
a round (per-call ratios from alternating short bursts, or two processes run one after the
other), then summarised the same way, so a noisy neighbour slows both sides of a ratio alike.
Writes ``benchmarks.md`` and ``benchmarks.json`` under build/bench (or ``--output``).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.burst import bench_burst, wrk_available
from benchmarks.common import DEFAULT_OUTPUT, PACKAGE, ROUNDS
from benchmarks.generation import bench_generation
from benchmarks.imports import bench_import, bench_size
from benchmarks.inbox import bench_inbox
from benchmarks.metrics import bench_metrics
from benchmarks.parsing import bench_parsing
from benchmarks.receive import bench_receive
from benchmarks.report import cpu_model, render, targets
from benchmarks.scale import bench_scale
from benchmarks.stores import bench_stores
from benchmarks.vendors import bench_vendors


def main(argv: list[str] | None = None) -> int:
    import argparse
    from importlib.metadata import version

    cli = argparse.ArgumentParser(description=__doc__)
    cli.add_argument("--output", type=Path, default=DEFAULT_OUTPUT,
                     help="folder for benchmarks.md and benchmarks.json (default build/bench)")
    cli.add_argument("--from-json", type=Path, metavar="FILE",
                     help="measure nothing: write the report again from a benchmarks.json a run "
                          "wrote (after its prose changed)")
    args = cli.parse_args(argv)
    args.output.mkdir(parents=True, exist_ok=True)
    report, results_file = args.output / "benchmarks.md", args.output / "benchmarks.json"
    if args.from_json is not None:
        results = json.loads(args.from_json.read_text())
        results["targets"] = targets(results)
        if args.from_json.resolve() != results_file.resolve():
            results_file.write_text(json.dumps(results, indent=2) + "\n")
        report.write_text(render(results))
        print(f"wrote {report} from {args.from_json}")
        return 0
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
            "inbox": bench_inbox(Path(scratch)),
            "metrics": bench_metrics(),
            "import": bench_import(),
            "size": bench_size(),
            "scale": bench_scale(Path(scratch)),
            "vendors": bench_vendors(Path(scratch)),
        }
        if wrk_available():
            results["burst"] = bench_burst(Path(scratch))
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
