"""The diff's classification checked against the truth, on fixed seeds (``make fuzz`` runs
the same oracle on new seeds for minutes): no body the new spec allows is refused by the old
models unless the diff said "breaking"."""

from __future__ import annotations

import pytest
from fuzz_diff import run

from codegen import diff

# Fixed seeds, and those on which `make fuzz` once found a misclassification.
SEEDS = [*range(40), 1795812122, 1795812786]


def test_every_change_the_diff_calls_compatible_leaves_the_old_models_reading_new_bodies() -> None:
    tally = run(SEEDS)
    assert not tally.findings, "\n".join(tally.findings[:5])
    # Evidence that the seeds exercise both sides of the rule.
    assert tally.trials == len(SEEDS) and tally.bodies > 500
    assert tally.old_refused > 20 and tally.breaking_reports > 5


def test_the_oracle_catches_a_diff_that_misses_breaking_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(diff, "compare", lambda old, new, source=True: diff.Report())
    tally = run(SEEDS[:15])
    assert any("refuse a body" in finding for finding in tally.findings)
