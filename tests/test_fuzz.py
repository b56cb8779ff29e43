"""The seeded spec fuzzer (tests/fuzz_specs.py), bounded for every run of the suite: the same
seeds every time, so a failure here is a failure of the change, not of luck.
``make fuzz`` runs the same checks on new seeds for ten minutes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fuzz_specs import build, generate_seed
from packages import mypy, round_trip_each

SEEDS = range(24)
# In four parts, so that the suite's workers share them.
PARTS = 4


@pytest.mark.parametrize("part", range(PARTS))
def test_every_seeded_spec_is_refused_cleanly_or_generates_a_working_package(
    tmp_path: Path, part: int
) -> None:
    outcomes: dict[str, list[int]] = {"ok": [], "refused": [], "FAILED": []}
    generated: dict[str, list[dict[str, Any]]] = {}
    failures = []
    seeds = SEEDS[part::PARTS]
    for seed in seeds:
        outcome, detail, bodies = generate_seed(seed, tmp_path)
        outcomes[outcome].append(seed)
        if outcome == "ok":
            generated[detail] = bodies
        elif outcome == "FAILED":
            failures.append(f"seed {seed}: {detail}")
    assert not failures, "\n\n".join(failures)
    # The seeds must exercise both paths, or the test proves little.
    assert len(outcomes["ok"]) >= len(seeds) // 2
    # Every package's bodies read back, in one interpreter for the part (as `make fuzz`
    # does one package at a time).
    failed = {package: error for package, error in round_trip_each(tmp_path, generated).items() if error}
    assert not failed, "\n\n".join(f"{package}: {error}" for package, error in failed.items())
    typed = mypy(tmp_path, *generated)
    assert typed.returncode == 0, typed.stdout


def test_the_generator_is_deterministic_for_a_seed() -> None:
    assert build(7) == build(7)
    assert build(7) != build(8)
