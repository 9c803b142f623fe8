"""Workflow internals: the calibration problem, the validation reference, recovery, identifiability.

Everything runs the real STZ solver on a tiny grid (8 x 8 cells, 50 frames, 1 step per frame),
where one run takes a fraction of a second.
"""

import math
import pickle

import numpy as np
import pytest

from gego.workflows.config import load_config
from gego.workflows.problem import (EvaluationFailed, build_problem, feasible_bounds, load_workflow_reference,
                                    make_validation_reference, reference_on_grid)

TINY = ["solver.n=8", "solver.steps_per_frame=1", "solver.n_frames=50", "execution.workers=1"]


@pytest.fixture(scope="module")
def validation_setup():
    config = load_config(workflow="validate", overrides=TINY + ["optimizer.log_floor=0", "optimizer.objective_power=1"])
    md = load_workflow_reference(config)
    reference = make_validation_reference(config, md)
    problem = build_problem(config, reference, energy_source=md)
    return config, md, reference, problem


def target_vector(config):
    return np.array([config.target[n] for n in config.names])


def test_objective_is_zero_at_the_targets_and_positive_elsewhere(validation_setup):
    config, _, reference, problem = validation_setup
    x = target_vector(config)
    at_target = problem(x)
    assert at_target["objective"] == pytest.approx(0.0, abs=1e-12)
    moved = problem(x * np.array([1.2, 1.0, 1.0, 1.0]))  # c0 20 % off
    assert moved["objective"] > 1e-3
    assert set(moved["components"]) == {"grassmann_strain_xy_eng", "curve_stress_xy_gpa"}
    # the synthetic reference has the solver grid and the layout the objective reads
    assert reference["strain_xy_eng"].shape == (51, 8, 8)
    assert {"gamma", "stress_xy_gpa", "temperature_k"} <= set(reference.variables)


def test_batch_equals_single_calls_and_survives_pickling(validation_setup):
    config, _, _, problem = validation_setup
    X = target_vector(config) * np.array([[1.0, 1.0, 1.0, 1.0], [0.8, 1.05, 0.95, 1.0]])
    batch = problem.batch(X)
    single = [problem(x) for x in X]
    clone = pickle.loads(pickle.dumps(problem))  # what a process pool receives
    for b, s, c in zip(batch, single, [clone(x) for x in X]):
        assert b["objective"] == pytest.approx(s["objective"], rel=1e-10, abs=1e-13)
        assert c["objective"] == s["objective"]


def test_a_point_the_model_cannot_run_fails_alone(validation_setup):
    config, _, _, problem = validation_setup
    bad = target_vector(config).copy()
    bad[config.names.index("E0")] = -3.356  # above the lowest initial energy: chi <= 0 (Eq 38)
    with pytest.raises(EvaluationFailed, match="non-positive"):
        problem(bad)
    records = problem.batch([bad, target_vector(config)])
    assert math.isnan(records[0]["objective"])
    assert records[1]["objective"] == pytest.approx(0.0, abs=1e-12)


def test_feasible_bounds_cut_the_e0_interval_below_the_lowest_energy(validation_setup):
    config, md, _, problem = validation_setup
    bounds, notes = feasible_bounds(config, problem)
    i = config.names.index("E0")
    # on the 8 x 8 solver grid the energy is block-averaged... by the solver's resampling
    from gego.stz.solver import resample_field

    e_min = resample_field(md["energy"].values[0], 8, 8).min()
    assert bounds[i][1] < e_min < config.bounds[i][1]
    assert bounds[i][0] == config.bounds[i][0]
    assert len(notes) == 1 and "E0 upper bound lowered" in notes[0]
    p = target_vector(config)
    p[i] = bounds[i][1]
    assert math.isfinite(problem.batch([p])[0]["objective"])  # the new corner runs


def test_reference_on_grid_block_averages(rng):
    import xarray as xr

    fields = rng.normal(size=(3, 8, 12))
    ds = xr.Dataset({"strain_xy_eng": (("frame", "y", "x"), fields), "stress_xy_gpa": (("frame",), [0.0, 1.0, 2.0])},
                    coords={"gamma": (("frame",), [0.0, 0.1, 0.2])})
    coarse = reference_on_grid(ds, 4, 6)
    assert coarse["strain_xy_eng"].shape == (3, 4, 6)
    np.testing.assert_allclose(coarse["strain_xy_eng"].values[:, 0, 0], fields[:, :2, :2].mean(axis=(1, 2)))
    np.testing.assert_allclose(coarse["strain_xy_eng"].values.mean(axis=(1, 2)), fields.mean(axis=(1, 2)))
    np.testing.assert_array_equal(coarse["stress_xy_gpa"], ds["stress_xy_gpa"])
    assert reference_on_grid(ds, 8, 12) is ds


def test_reduced_validation_recovers_c0_and_s_y(tmp_path):
    """End to end on the tiny grid: a synthetic reference at the Table 2 targets, EGO over the
    Table 2 box for (c0, s_y) with beta and E0 fixed at their targets. Fails if the recovered
    values are more than 5 % off (the full 4-parameter runs are slow tests and README commands)."""
    from gego.workflows.validate import validate

    config = load_config(workflow="validate", overrides=TINY + [
        "fixed.beta=8.27674103", "fixed.E0=-3.36821766", "optimizer.budget=30", "optimizer.n_init=8",
        "optimizer.batch_size=1"])
    result = validate(config, tmp_path / "v.db", quiet=True)
    summary = result.summary()
    assert summary["objective_at_target"] == pytest.approx(0.0, abs=1e-12)
    assert summary["n_runs"] == 30
    for name in ("c0", "s_y"):
        assert summary["errors"][name]["rel_error"] < 0.05, (name, summary["best"])
    assert summary["objective"] < 0.01
    # the study holds the effective configuration and the reference it was run against
    from gego.optimize import Study

    with Study.open(tmp_path / "v.db") as study:
        stored = study.config
    assert stored["workflow_config"]["fixed"]["beta"] == 8.27674103
    assert stored["reference_file"].endswith("v.reference.nc")


@pytest.mark.slow
@pytest.mark.timeout(3600)  # 2,700 solver runs: 5 min on the earlier machine, over 15 min on a slower, busy one
def test_full_validation_recovers_every_parameter(tmp_path):
    """The issue's criterion, on the paper's grid: 9 seeds, 300 runs each, median within 2 %
    (E0 within 0.002 eV)."""
    from gego.workflows.validate import validate

    config = load_config(workflow="validate", overrides=["optimizer.repeats=9", "optimizer.budget=300"])
    summary = validate(config, tmp_path / "v.db", quiet=True).summary()
    assert summary["recovered"], summary["errors"]


# ------------------------------------------------------------------------- recovery and analysis
def test_recovery_errors():
    from gego.workflows.validate import recovery_errors

    errors = recovery_errors({"c0": 0.56, "E0": -3.3712}, {"c0": 0.55, "E0": -3.3682})
    assert errors["c0"]["rel_error"] == pytest.approx(0.01 / 0.55)
    assert errors["c0"]["ok"]
    assert errors["E0"]["abs_error"] == pytest.approx(0.003)
    assert not errors["E0"]["ok"]  # 0.003 eV > 0.002 eV


def test_sobol_indices_of_an_additive_linear_function():
    from gego.workflows.report import sobol_indices

    a = np.array([3.0, 1.0, 0.0])
    # for f = a.x with independent U(0, 1) inputs, S_i = ST_i = a_i^2 / sum a^2
    indices = sobol_indices(lambda X: X @ a, 3, n_base=8192, seed=1)
    expected = a**2 / np.sum(a**2)
    np.testing.assert_allclose(indices["first"], expected, atol=0.02)
    np.testing.assert_allclose(indices["total"], expected, atol=0.02)


def test_identifiability_separates_determined_free_and_trading_parameters(rng):
    from gego.workflows.report import identifiability

    bounds = np.array([[0.0, 1.0], [0.0, 1.0], [0.0, 1.0]])
    x = rng.random((120, 3))
    # x0 pinned at 0.3; x1 and x2 only through x1 + x2 (a ridge: they trade off); no noise
    y = 10 * (x[:, 0] - 0.3) ** 2 + (x[:, 1] + x[:, 2] - 1.0) ** 2
    ident = identifiability(x, y, bounds, ["a", "b", "c"], seed=0)
    assert ident["determined"]["a"]
    assert ident["spread"]["a"]["p50"] == pytest.approx(0.3, abs=0.05)
    assert ident["spread"]["b"]["width_fraction"] > 0.3
    pairs = {tuple(t["pair"]): t["correlation"] for t in ident["trade_offs"]}
    assert pairs.get(("b", "c"), 0.0) < -0.5  # b + c = 1: negatively correlated along the ridge
    assert ("a", "b") not in pairs


def test_progress_snapshot():
    from gego.optimize import EvaluationRecord
    from gego.workflows.progress import describe, snapshot_of

    records = [EvaluationRecord(1, 0, np.zeros(1), 0.5, status="complete"),
               EvaluationRecord(2, 0, np.zeros(1), None, status="failed"),
               EvaluationRecord(3, 1, np.zeros(1), 0.2, status="complete"),
               EvaluationRecord(4, 2, np.zeros(1), None, status="running")]
    snap = snapshot_of(records)
    assert (snap.finished, snap.failed, snap.best, snap.iteration, snap.design_done) == (3, 1, 0.2, 2, True)
    assert describe(snap) == ("EGO it 2", "best=0.2 failed=1")
    assert describe(snapshot_of(records[:1] + [EvaluationRecord(5, 0, np.zeros(1), None)]))[0] == "LHS"


def test_log_transform_is_monotone_and_keeps_the_objective(validation_setup):
    import dataclasses

    from gego.workflows.problem import DELTA_KEY, delta_of

    config, _, _, problem = validation_setup
    logged = dataclasses.replace(problem, log_floor=1e-3)
    points = target_vector(config) * np.array([[1.0, 1.0, 1.0, 1.0], [1.1, 1.0, 1.0, 1.0], [1.3, 0.9, 1.0, 1.0]])
    plain = [problem(x) for x in points]
    transformed = [logged(x) for x in points]
    for p, t in zip(plain, transformed):
        assert t["components"][DELTA_KEY] == p["objective"]
        assert t["objective"] == pytest.approx(math.log10(p["objective"] + 1e-3))
        assert delta_of(t["objective"], t["components"]) == p["objective"]
    assert np.argsort([p["objective"] for p in plain]).tolist() == np.argsort([t["objective"] for t in transformed]).tolist()


def test_power_transform_squares_the_objective_and_keeps_it(validation_setup):
    import dataclasses

    from gego.workflows.problem import DELTA_KEY, delta_of

    config, _, _, problem = validation_setup
    squared = dataclasses.replace(problem, objective_power=2.0)
    points = target_vector(config) * np.array([[1.0, 1.0, 1.0, 1.0], [1.1, 1.0, 1.0, 1.0], [1.3, 0.9, 1.0, 1.0]])
    plain = [problem(x) for x in points]
    transformed = squared.batch(points)
    assert transformed[0]["objective"] == pytest.approx(0.0, abs=1e-24)
    for p, t in zip(plain, transformed):
        assert t["components"][DELTA_KEY] == pytest.approx(p["objective"], rel=1e-12)
        assert t["objective"] == pytest.approx(p["objective"] ** 2, rel=1e-12)
        assert delta_of(t["objective"], t["components"]) == pytest.approx(p["objective"], rel=1e-12)


@pytest.mark.slow
def test_application_beats_the_papers_optimum(tmp_path):
    """The README run (bundled CuZr data, paper's grid, 120 runs): the objective at gego's
    optimum is no worse than at the paper's X+ with the same objective and solver."""
    from gego.workflows.calibrate import calibrate

    summary = calibrate(load_config(overrides=["optimizer.budget=120"]), tmp_path / "c.db", quiet=True).summary()
    assert summary["objective"] <= summary["paper_optimum"]["objective"]


def test_compute_time_counts_each_batched_solver_call_once():
    """Points of one batched call share its start and duration but are committed microseconds
    apart; separate calls (or workers) add up; failed runs count, pending ones do not."""
    from gego.optimize.study import EvaluationRecord
    from gego.workflows.calibrate import compute_time_s

    def rec(i, started, finished, duration, worker="h:1", status="complete"):
        return EvaluationRecord(id=i, iteration=0, x=np.zeros(2), objective=1.0, status=status, started=started,
                                finished=finished, duration_s=duration, worker=worker)

    records = [rec(1, 10.0, 18.000001, 8.0), rec(2, 10.0, 18.000003, 8.0), rec(3, 10.0, 18.000005, 8.0, status="failed"),
               rec(4, 20.0, 20.5, 0.5), rec(5, 10.0, 11.0, 1.0, worker="h:2"),
               rec(6, None, None, None, status="pending")]
    assert compute_time_s(records) == pytest.approx(8.0 + 0.5 + 1.0)
