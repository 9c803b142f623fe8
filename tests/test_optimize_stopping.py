"""Stopping rules (Alg 1 step 7) as pure functions of the history, checked by brute force."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gego.errors import ConfigError
from gego.optimize.loop import best_after
from gego.optimize.stopping import StopRules, iterations_without_improvement, stop_reason
from gego.optimize.study import EvaluationRecord

# A history: per iteration, a list of objective values (None = failed evaluation).
histories = st.lists(
    st.lists(st.one_of(st.none(), st.floats(-10, 10, allow_nan=False)), min_size=1, max_size=3),
    min_size=1, max_size=12,
)


def _records(per_iteration):
    rows, row_id = [], 0
    for it, values in enumerate(per_iteration):
        for value in values:
            row_id += 1
            rows.append(EvaluationRecord(row_id, it, np.zeros(1), value,
                                         status="failed" if value is None else "complete"))
    return rows


@settings(max_examples=100, deadline=None)
@given(histories, st.integers(1, 6), st.floats(-10, 10), st.integers(1, 40))
def test_stop_reason_matches_a_brute_force_reading_of_alg_1(per_iteration, patience, threshold, budget):
    rows = _records(per_iteration)
    values = [v for vs in per_iteration for v in vs if v is not None]
    best = min(values, default=math.inf)
    # Iteration of the first occurrence of the final best value.
    best_iteration = next((it for it, vs in enumerate(per_iteration) if best in vs), 0)
    stale = len(per_iteration) - 1 - best_iteration
    assert iterations_without_improvement(rows) == stale
    rules = StopRules(budget=budget, threshold=threshold, patience=patience)
    expected = ("threshold" if best <= threshold else "budget" if len(rows) >= budget
                else "patience" if stale >= patience else None)
    assert stop_reason(rules, rows, elapsed_s=0.0) == expected


@settings(max_examples=100, deadline=None)
@given(histories)
def test_best_after_is_the_running_minimum_over_finished_rows(per_iteration):
    rows = _records(per_iteration)
    flat = [math.inf if v is None else v for vs in per_iteration for v in vs]
    counts = list(range(1, len(flat) + 3))
    expected = [min(flat[: min(n, len(flat))]) for n in counts]
    np.testing.assert_array_equal(best_after(rows, counts), expected)


def test_wall_time_rule_and_bad_rules():
    assert stop_reason(StopRules(budget=10, max_time_s=5.0), _records([[1.0]]), elapsed_s=5.0) == "max_time"
    assert stop_reason(StopRules(budget=10, max_time_s=5.0), _records([[1.0]]), elapsed_s=4.9) is None
    for kwargs, message in [({"budget": 0}, "budget"), ({"budget": 5, "threshold": math.nan}, "threshold"),
                            ({"budget": 5, "max_time_s": -1.0}, "max_time_s"), ({"budget": 5, "patience": 0}, "patience")]:
        with pytest.raises(ConfigError, match=message):
            StopRules(**kwargs)
