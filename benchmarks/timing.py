"""How things are timed: medians of rounds, ratios within a round, alternating bursts."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def paired(ours: list[float], baseline: list[float]) -> dict[str, float]:
    """ours/baseline per round: above 1 means ours takes longer."""
    return summary([a / b for a, b in zip(ours, baseline, strict=True)])


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


TIMED_IMPORT = "import time\nt = time.perf_counter()\n{stmt}\nprint(time.perf_counter() - t)"
