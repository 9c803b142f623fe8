"""The EGO loop (Alg 1): convergence, determinism, batches, failures, stopping, resume."""

import math

import numpy as np
import pytest

import gego.optimize.acquisition as acquisition
from gego.errors import ConfigError
from gego.optimize import Study, StudyError, best_after, load_study, minimize, minimize_repeats
from gego.optimize.design import make_box, to_unit
from gego.optimize.loop import DEFAULT_SURROGATE_OPTIONS, EgoSettings, refit_schedule, surrogate_at
from gego.optimize.study import EvaluationRecord

# Cheap settings: these tests are about the loop, not the quality of the surrogate.
FAST = dict(surrogate_options={"n_restarts": 1}, n_candidates=256, acquisition_options={"n_polish": 1})
BOX = [(-1.0, 2.0), (0.0, 3.0)]


def bowl(x):
    """Smooth bowl, minimum 0 at (0.5, 1.2)."""
    return float((x[0] - 0.5) ** 2 + 2.0 * (x[1] - 1.2) ** 2)


def branin(x):
    x1, x2 = x
    return float((x2 - 5.1 / (4 * np.pi**2) * x1**2 + 5 / np.pi * x1 - 6) ** 2
                 + 10 * (1 - 1 / (8 * np.pi)) * np.cos(x1) + 10)


def params(result):
    return np.array([r.x for r in result.history])


def test_finds_the_branin_minimum_with_few_evaluations():
    result = minimize(branin, [(-5, 10), (0, 15)], n_init=8, budget=28, seed=0)
    # Global minimum 0.397887 (three minimisers); random search with 28 points is typically > 1.
    assert result.fun < 0.45
    assert result.nfev == 28 and result.nit == 20 and result.stop_reason == "budget" and result.success
    complete = [r for r in result.history if r.status == "complete"]
    assert result.fun == min(r.objective for r in complete)
    np.testing.assert_array_equal(result.x, min(complete, key=lambda r: r.objective).x)
    assert [r.iteration for r in result.history] == [0] * 8 + list(range(1, 21))


def test_same_seed_same_history_other_seed_differs():
    a = minimize(bowl, BOX, n_init=5, budget=10, seed=3, **FAST)
    b = minimize(bowl, BOX, n_init=5, budget=10, seed=3, **FAST)
    c = minimize(bowl, BOX, n_init=5, budget=10, seed=4, **FAST)
    np.testing.assert_array_equal(params(a), params(b))
    assert not np.array_equal(params(a)[:5], params(c)[:5])


def test_trace_is_the_best_so_far_per_iteration():
    result = minimize(bowl, BOX, n_init=5, budget=11, seed=1, batch_size=2, **FAST)
    trace = result.trace
    np.testing.assert_array_equal(trace.iteration, [0, 1, 2, 3])
    np.testing.assert_array_equal(trace.nfev, [5, 7, 9, 11])
    for t, best_fun, best_x in zip(trace.iteration, trace.best_fun, trace.best_x):
        upto = [r for r in result.history if r.iteration <= t]
        best = min(upto, key=lambda r: r.objective)
        assert best_fun == best.objective
        np.testing.assert_array_equal(best_x, best.x)
    assert np.all(np.diff(trace.best_fun) <= 0)
    values = [r.objective for r in result.history]
    np.testing.assert_array_equal(best_after(result.history, [1, 5, 11, 50]),
                                  [values[0], min(values[:5]), min(values), min(values)])


def test_batches_respect_the_budget_and_both_strategies_give_distinct_points():
    for strategy in ("kriging_believer", "constant_liar"):
        result = minimize(bowl, BOX, n_init=5, budget=12, seed=2, batch_size=3, strategy=strategy,
                          executor="serial", **FAST)
        assert result.nfev == 12
        assert [r.iteration for r in result.history] == [0] * 5 + [1, 1, 1, 2, 2, 2, 3]
        X = params(result)
        distances = np.linalg.norm(X[:, None] - X[None], axis=-1) + np.eye(len(X))
        assert distances.min() > 1e-6


def test_vectorized_objective_sees_whole_batches_and_proposes_the_same_points():
    shapes = []

    def bowl_batch(X):
        shapes.append(X.shape)
        return [bowl(x) for x in X]

    batched = minimize(bowl_batch, BOX, n_init=4, budget=10, seed=5, batch_size=3, vectorized=True, **FAST)
    pointwise = minimize(bowl, BOX, n_init=4, budget=10, seed=5, batch_size=3, executor="serial", **FAST)
    assert shapes == [(4, 2), (3, 2), (3, 2)]
    np.testing.assert_array_equal(params(batched), params(pointwise))
    assert [r.objective for r in batched.history] == [r.objective for r in pointwise.history]


def test_failed_evaluations_are_recorded_excluded_and_avoided(monkeypatch):
    seen = []
    real_propose = acquisition.propose_batch

    def spy(gp, f_min, q, **kwargs):
        seen.append((gp.n_train, kwargs["avoid"]))
        return real_propose(gp, f_min, q, **kwargs)

    monkeypatch.setattr(acquisition, "propose_batch", spy)

    def fragile(x):
        if x[0] > 1.2:
            raise RuntimeError("solver diverged")
        if x[1] > 2.2:
            return float("nan")
        return {"objective": bowl(x), "components": {"d_field": 0.5 * bowl(x), "d_curve": 0.25}}

    result = minimize(fragile, BOX, n_init=10, budget=16, seed=0, **FAST)
    failed = [r for r in result.history if r.status == "failed"]
    complete = [r for r in result.history if r.status == "complete"]
    assert result.n_failed == len(failed) > 0 and result.nfev == 16 and math.isfinite(result.fun)
    assert all(("solver diverged" in r.error) or ("not finite" in r.error) for r in failed)
    assert all(r.objective is None for r in failed)
    assert all(r.components["d_curve"] == 0.25 for r in complete)
    box = make_box(BOX)
    for n_train, avoid in seen:
        it_failed = [r for r in result.history if r.status == "failed"][: len(avoid)]
        np.testing.assert_array_equal(avoid, to_unit(np.array([r.x for r in it_failed]), box))
    # The GP of iteration t was trained on exactly the completed rows of earlier iterations.
    for t, (n_train, _) in enumerate(seen, start=1):
        assert n_train == sum(r.status == "complete" and r.iteration < t for r in result.history)


def test_all_failing_design_falls_back_to_random_exploration():
    result = minimize(lambda x: float("nan"), BOX, n_init=3, budget=6, seed=0, **FAST)
    assert result.n_failed == 6 and not result.success and result.fun == math.inf
    assert np.all(np.isnan(result.x))


def test_stopping_rules():
    threshold = minimize(bowl, BOX, n_init=6, budget=40, seed=0, threshold=0.5, **FAST)
    assert threshold.stop_reason == "threshold" and threshold.fun <= 0.5
    # It stops at the first iteration that reaches the threshold.
    assert np.all(threshold.trace.best_fun[:-1] > 0.5)

    flat = minimize(lambda x: 1.0, BOX, n_init=4, budget=40, seed=0, patience=3, **FAST)
    assert flat.stop_reason == "patience" and flat.nit == 3 and flat.nfev == 7

    timed = minimize(bowl, BOX, n_init=4, budget=40, seed=0, max_time_s=1e-9, **FAST)
    assert timed.stop_reason == "max_time" and timed.nfev == 4

    calls = []

    def stop_at_two(info):
        calls.append(info)
        return info.iteration == 2

    stopped = minimize(bowl, BOX, n_init=4, budget=40, seed=0, callback=stop_at_two, **FAST)
    assert stopped.stop_reason == "callback" and stopped.nit == 2
    assert [c.iteration for c in calls] == [0, 1, 2] and calls[-1].nfev == 6
    assert calls[-1].best_fun == min(r.objective for r in stopped.history)


def test_extending_a_study_continues_exactly(tmp_path):
    path = tmp_path / "bowl.sqlite"
    first = minimize(bowl, BOX, n_init=5, budget=8, seed=9, study=path, **FAST)
    assert first.nfev == 8 and first.study_path == path
    extended = minimize(bowl, BOX, n_init=5, budget=12, seed=9, study=path, **FAST)
    straight = minimize(bowl, BOX, n_init=5, budget=12, seed=9, **FAST)
    np.testing.assert_array_equal(params(extended), params(straight))
    assert load_study(path).x.shape == (12, 2)


def test_a_crash_mid_evaluation_is_resumed_exactly(tmp_path):
    path = tmp_path / "crash.sqlite"
    calls = []

    def crashing(x):
        calls.append(x)
        if len(calls) == 8:  # the process dies while evaluating row 8 (an EGO row)
            raise KeyboardInterrupt
        return bowl(x)

    with pytest.raises(KeyboardInterrupt):
        minimize(crashing, BOX, n_init=5, budget=11, seed=4, study=path, refit_every=2, **FAST)
    with Study.open(path) as study:
        assert [r.status for r in study.records()].count("running") == 1
    resumed = minimize(bowl, BOX, n_init=5, budget=11, seed=4, study=path, refit_every=2, **FAST)
    straight = minimize(bowl, BOX, n_init=5, budget=11, seed=4, refit_every=2, **FAST)
    np.testing.assert_array_equal(params(resumed), params(straight))
    assert [r.objective for r in resumed.history] == [r.objective for r in straight.history]
    assert resumed.history[7].attempts == 2 and all(r.attempts == 1 for r in resumed.history[8:])


def test_resuming_with_another_configuration_is_refused(tmp_path):
    path = tmp_path / "s.sqlite"
    minimize(bowl, BOX, n_init=4, budget=4, seed=1, study=path, config={"model": "stz"}, **FAST)
    with pytest.raises(StudyError, match="'seed' differs"):
        minimize(bowl, BOX, n_init=4, budget=6, seed=2, study=path, config={"model": "stz"}, **FAST)
    with pytest.raises(StudyError, match="'bounds' differs"):
        minimize(bowl, [(-1.0, 2.0), (0.0, 4.0)], n_init=4, budget=6, seed=1, study=path,
                 config={"model": "stz"}, **FAST)
    with pytest.raises(StudyError, match="'config' differs"):
        minimize(bowl, BOX, n_init=4, budget=6, seed=1, study=path, config={"model": "other"}, **FAST)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_init": 1}, "n_init"),
        ({"budget": 3}, "budget: expected at least n_init"),
        ({"batch_size": 0}, "batch_size"),
        ({"strategy": "thompson"}, "strategy"),
        ({"design": "grid"}, "design"),
        ({"executor": "mpi"}, "executor"),
        ({"patience": 0}, "patience"),
        ({"executor": "process"}, "cannot be sent to worker processes"),
    ],
)
def test_bad_arguments_give_one_line_config_errors(kwargs, message):
    arguments = dict(n_init=4, budget=6, seed=0) | kwargs
    with pytest.raises(ConfigError, match=message):
        minimize(lambda x: bowl(x), BOX, **arguments)


def test_refit_schedule_is_a_function_of_the_history():
    def history(per_iteration, failed_at=()):
        rows, row_id = [], 0
        for it, n in enumerate(per_iteration):
            for _ in range(n):
                row_id += 1
                status = "failed" if (it, row_id) in failed_at or it in failed_at else "complete"
                rows.append(EvaluationRecord(row_id, it, np.zeros(2), 1.0 if status == "complete" else None,
                                             status=status))
        return rows

    rows = history([10] + [1] * 12)
    assert refit_schedule(rows, 12, None) == list(range(1, 13))  # "auto" below 50 points: every point
    assert refit_schedule(rows, 12, None, each_below=0) == [1, 4, 7, 10]  # studies stored before 0.6
    assert refit_schedule(rows, 12, None, each_below=14) == [1, 2, 3, 4, 5, 8, 11]  # then every 3
    assert refit_schedule(rows, 12, 1) == list(range(1, 13))
    assert refit_schedule(history([10] + [2] * 6), 6, 3) == [1, 3, 5]  # batches of 2: 4 >= 3 new points
    assert refit_schedule(history([200] + [1] * 12), 12, None) == [1, 11]  # 5 % of 200 = 10 new points
    # Failed design rows do not count: the first fit waits for 2 completed points.
    assert refit_schedule(history([3, 1, 1, 1], failed_at=(0,)), 3, None) == [3]


def test_study_stored_before_the_early_refits_resumes_with_its_own_schedule(tmp_path):
    """A study without `auto_refit_each_below` (gego <= 0.5) resumes, with the refit schedule it
    was made with, in any number of sessions; a new study refits on every point below 50."""
    kw = dict(n_init=6, seed=2, **FAST)

    def legacy_study(name):  # the design only, stored as 0.5 stored it: the key absent
        path = tmp_path / name
        minimize(bowl, BOX, budget=6, study=path, **kw)
        with Study.open(path) as study:
            study._conn.execute("DELETE FROM meta WHERE key = 'auto_refit_each_below'")
            study._conn.commit()
        return path

    one_go, two_goes = legacy_study("one.sqlite"), legacy_study("two.sqlite")
    straight = minimize(bowl, BOX, budget=14, study=one_go, **kw)
    minimize(bowl, BOX, budget=10, study=two_goes, **kw)
    resumed = minimize(bowl, BOX, budget=14, study=two_goes, **kw)
    np.testing.assert_array_equal([r.x for r in resumed.history], [r.x for r in straight.history])
    with Study.open(two_goes) as study:
        assert "auto_refit_each_below" not in study.config
        assert sorted(study.fits()) == refit_schedule(study.records(), 8, None, each_below=0) == [1, 4, 7]
    new = tmp_path / "new.sqlite"
    minimize(bowl, BOX, budget=14, study=new, **kw)
    with Study.open(new) as study:
        assert study.config["auto_refit_each_below"] == 50
        assert sorted(study.fits()) == list(range(1, 9))


def test_study_stored_before_the_constant_mean_resumes_with_the_zero_mean(tmp_path):
    """A study whose surrogate options lack `mean` (gego <= 0.9) resumes with the zero mean it was
    made with; a new study uses the constant mean, and an explicit `mean` is honoured."""
    import json

    kw = dict(n_init=6, seed=4, n_candidates=256, acquisition_options={"n_polish": 1})
    legacy = tmp_path / "legacy.sqlite"
    minimize(bowl, BOX, budget=6, study=legacy, surrogate_options={"n_restarts": 1}, **kw)
    with Study.open(legacy) as study:
        stored = study.config["surrogate_options"]
        assert stored["mean"] == "constant"
        del stored["mean"]
        study._conn.execute("UPDATE meta SET value = ? WHERE key = 'surrogate_options'",
                            (json.dumps(stored, sort_keys=True),))
        study._conn.commit()
    resumed = minimize(bowl, BOX, budget=14, study=legacy, surrogate_options={"n_restarts": 1}, **kw)
    zero = minimize(bowl, BOX, budget=14, surrogate_options={"n_restarts": 1, "mean": "zero"}, **kw)
    constant = minimize(bowl, BOX, budget=14, surrogate_options={"n_restarts": 1}, **kw)
    xs = lambda result: np.array([r.x for r in result.history])  # noqa: E731
    np.testing.assert_array_equal(xs(resumed), xs(zero))
    assert not np.array_equal(xs(constant), xs(zero))
    with Study.open(legacy) as study:
        assert "mean" not in study.config["surrogate_options"]
    with pytest.raises(StudyError, match="surrogate_options"):  # an explicit change is refused
        minimize(bowl, BOX, budget=16, study=legacy, surrogate_options={"n_restarts": 1, "mean": "constant"}, **kw)


def test_replayed_surrogate_is_bit_identical_to_the_live_one(tmp_path):
    path = tmp_path / "replay.sqlite"
    minimize(bowl, BOX, n_init=6, budget=12, seed=8, study=path, refit_every=3, **FAST)
    box = make_box(BOX)
    settings = EgoSettings(n_init=6, seed=8, refit_every=3, n_candidates=256,
                           surrogate_options={**DEFAULT_SURROGATE_OPTIONS, "n_restarts": 1},
                           acquisition_options={"n_polish": 1})
    probe = np.random.default_rng(0).random((50, 2))
    with Study.open(path) as study:
        history = study.records()
        assert sorted(study.fits()) == refit_schedule(history, 6, 3) == [1, 4]
        live = None
        for t in range(1, 7):  # carried forward one iteration at a time, as in a run
            live = surrogate_at(t, history, box, settings, study, live)
        replayed = surrogate_at(6, history, box, settings, study, None)
    assert live.gp.n_train == replayed.gp.n_train == 11
    for a, b in zip(live.gp.predict(probe), replayed.gp.predict(probe)):
        np.testing.assert_array_equal(a, b)


def test_repeats_over_seeds_have_their_own_studies(tmp_path):
    results = minimize_repeats(bowl, BOX, seeds=[1, 2], study_dir=tmp_path, n_init=4, budget=6, **FAST)
    assert [r.study_path.name for r in results] == ["seed-1.sqlite", "seed-2.sqlite"]
    assert not np.array_equal(params(results[0]), params(results[1]))
    assert all(r.nfev == 6 for r in results)


def cliff(x):
    """A bowl with a saturated plateau (like parameter sets where nothing yields)."""
    return min(bowl(x), 0.5) if x[0] < 1.5 else 50.0


def test_clip_level_is_a_quantile_of_the_completed_design_only():
    from gego.optimize.loop import clip_level

    rows = [EvaluationRecord(id=i, iteration=it, x=(0.0,), status=st, objective=y)
            for i, (it, st, y) in enumerate([(0, "complete", 1.0), (0, "complete", 3.0), (0, "failed", None),
                                             (0, "complete", 2.0), (1, "complete", -100.0)])]
    assert clip_level(rows, None) == math.inf
    assert clip_level(rows, 0.5) == 2.0  # the EGO row (iteration 1) and the failed row do not count
    assert clip_level(rows[:1], 0.5) == math.inf  # fewer than two design values: no clipping


def test_output_clipping_trains_on_clipped_values_and_resumes_exactly(tmp_path):
    path = tmp_path / "clip.sqlite"
    kw = dict(n_init=8, seed=3, refit_every=2, output_clip=0.5, **FAST)
    first = minimize(cliff, BOX, budget=11, study=path, **kw)
    extended = minimize(cliff, BOX, budget=15, study=path, **kw)
    straight = minimize(cliff, BOX, budget=15, **kw)
    np.testing.assert_array_equal(params(extended), params(straight))
    assert first.nfev == 11
    # the surrogate sees values clipped at the design median, and the raw ones are stored
    design = np.array([r.objective for r in straight.history[:8]])
    level = float(np.quantile(design, 0.5))
    box = make_box(BOX, None)
    cache = surrogate_at(3, straight.history, box, EgoSettings(**{k: v for k, v in kw.items() if k in EgoSettings.__dataclass_fields__}), Study.create(tmp_path / "x.sqlite", config={}), None)
    assert cache.gp.y_train.max() <= level + 1e-12
    assert max(r.objective for r in straight.history) > level
    unclipped = minimize(cliff, BOX, budget=15, **{**kw, "output_clip": None})
    assert not np.array_equal(params(unclipped)[8:], params(straight)[8:])


def test_output_clip_must_be_a_quantile():
    with pytest.raises(ConfigError, match="output_clip"):
        minimize(bowl, BOX, n_init=4, budget=5, seed=0, output_clip=1.5)


def _history(objectives_per_iteration):
    rows, row_id = [], 0
    for it, values in enumerate(objectives_per_iteration):
        for v in values:
            row_id += 1
            status = "failed" if v is None else "complete"
            rows.append(EvaluationRecord(row_id, it, np.zeros(2), v, status=status))
    return rows


def test_trust_region_state_follows_successes_and_failures():
    from gego.optimize.loop import TR_INIT, TR_MAX, TR_MIN, trust_region_state

    # design 1.0; it 1 improves (global), 2 fails (-> local), 3 improves (local: radius doubles),
    # 4 fails (local: radius halves, back to global), 5 fails (-> local), 6 fails (-> global).
    rows = _history([[1.0, 2.0], [0.5], [0.6], [0.4], [0.45], [None], [0.41]])
    states = [trust_region_state(rows, t) for t in range(1, 8)]
    assert states == [(False, TR_INIT), (False, TR_INIT), (True, TR_INIT), (True, min(2 * TR_INIT, TR_MAX)),
                      (False, min(2 * TR_INIT, TR_MAX) / 2), (True, min(2 * TR_INIT, TR_MAX) / 2),
                      (False, min(2 * TR_INIT, TR_MAX) / 4)]
    # Only rows of earlier iterations count, so the state of iteration t is fixed once t starts.
    assert trust_region_state(rows[:5], 4) == trust_region_state(rows, 4)
    # A long stall alternates global and ever smaller local steps, restarting below TR_MIN.
    stalled = _history([[1.0, 2.0]] + [[1.5]] * 60)
    radii = [r for local, r in (trust_region_state(stalled, t) for t in range(1, 61)) if local]
    assert all(TR_MIN <= r <= TR_MAX for r in radii) and radii[0] == TR_INIT
    assert min(radii) < 2 * TR_MIN and radii.count(TR_INIT) >= 2


def test_trust_region_steps_stay_in_their_box_and_resume_exactly(tmp_path):
    from gego.optimize.loop import trust_region_at, trust_region_state

    path = tmp_path / "tr.sqlite"
    kw = dict(n_init=6, seed=5, refit_every=2, trust_region=True, **FAST)
    first = minimize(branin, [(-5, 10), (0, 15)], budget=16, study=path, **kw)
    extended = minimize(branin, [(-5, 10), (0, 15)], budget=34, study=path, **kw)
    straight = minimize(branin, [(-5, 10), (0, 15)], budget=34, **kw)
    assert first.nfev == 16
    np.testing.assert_array_equal(params(extended), params(straight))
    box = make_box([(-5, 10), (0, 15)])
    settings = EgoSettings(n_init=6, seed=5, refit_every=2, trust_region=True, n_candidates=256,
                           surrogate_options={**DEFAULT_SURROGATE_OPTIONS, "n_restarts": 1},
                           acquisition_options={"n_polish": 1})
    history = straight.history
    n_local = 0
    with Study.open(path) as study:
        for t in range(1, straight.nit + 1):
            if not trust_region_state(history, t)[0]:
                continue
            n_local += 1
            gp = surrogate_at(t, history, box, settings, study, None).gp
            lower, upper = trust_region_at(history, t, gp)
            x_unit = to_unit(np.array([r.x for r in history if r.iteration == t]), box)
            assert np.all((x_unit >= lower - 1e-12) & (x_unit <= upper + 1e-12))
            centre = gp.X_train[np.argmin(gp.y_train)]
            assert np.all((centre >= lower) & (centre <= upper))
    assert n_local >= 3  # Branin from 6 points stalls often enough in 28 steps
    assert straight.fun < 0.45


def test_local_steps_refit_a_gp_to_the_points_nearest_the_incumbent():
    from gego.optimize.loop import TR_LOCAL_POINTS_PER_DIM, TR_LOCAL_RESTARTS, _new_gp, local_surrogate

    rng = np.random.default_rng(0)
    X = rng.random((60, 2))
    y = np.array([branin([-5 + 15 * a, 15 * b]) for a, b in X])
    settings = EgoSettings(n_init=6, seed=3, surrogate_options={**DEFAULT_SURROGATE_OPTIONS, "n_restarts": 1})
    gp = _new_gp(settings, 1).fit(X, y)
    local = local_surrogate(gp, settings, iteration=7)
    m = TR_LOCAL_POINTS_PER_DIM * 2
    assert local is not gp and local.n_train == m
    r2 = np.sum(((X - X[np.argmin(y)]) / gp.hyperparameters["length_scales"]) ** 2, axis=1)
    chosen = np.isin(X[:, 0], local.X_train[:, 0])
    assert chosen.sum() == m and r2[chosen].max() <= r2[~chosen].min()  # the m nearest, incumbent included
    assert local.hyperparameters["y_std"] == pytest.approx(np.std(y[chosen]))  # standardised on them
    np.testing.assert_allclose(local.predict(local.X_train, return_std=False)[0], y[chosen], rtol=1e-4)
    again = local_surrogate(gp, settings, iteration=7)
    assert again.hyperparameters == local.hyperparameters  # a pure function: resumed studies replay it
    assert local.fit_report_["n_starts_ok"] == 1 + min(TR_LOCAL_RESTARTS, gp.n_restarts)  # capped
    small = _new_gp(settings, 1).fit(X[:m - 5], y[:m - 5])
    refit = local_surrogate(small, settings, iteration=7)  # fewer than m points: all of them, refitted cold
    assert refit is not small and refit.n_train == m - 5
    np.testing.assert_array_equal(refit.X_train, small.X_train)


def test_trust_region_model_is_stored_and_old_studies_resume_with_the_global_one(tmp_path):
    """The trust region's model changes the proposals, so it is stored with the study. Left to
    gego, a new study gets "local" and a resumed one keeps its own: a study stored before the
    option (gego <= 0.10) resumes with the global GP it was made with. An explicit value that
    differs from the stored one is refused."""
    kw = dict(n_init=6, seed=5, refit_every=2, trust_region=True, **FAST)
    bounds = [(-5, 10), (0, 15)]
    local_path = tmp_path / "local.sqlite"
    minimize(branin, bounds, budget=20, study=local_path, **kw)
    local = minimize(branin, bounds, budget=40, study=local_path, **kw)
    np.testing.assert_array_equal(params(local), params(minimize(branin, bounds, budget=40,
                                                                 trust_region_model="local", **kw)))
    with Study.open(local_path) as study:
        assert study.config["trust_region_model"] == "local"
    with pytest.raises(StudyError, match="'trust_region_model' differs"):
        minimize(branin, bounds, budget=44, study=local_path, trust_region_model="global", **kw)
    legacy = tmp_path / "legacy.sqlite"
    minimize(branin, bounds, budget=6, study=legacy, **kw)
    with Study.open(legacy) as study:
        study._conn.execute("DELETE FROM meta WHERE key = 'trust_region_model'")
        study._conn.commit()
    minimize(branin, bounds, budget=20, study=legacy, **kw)
    resumed = minimize(branin, bounds, budget=40, study=legacy, **kw)
    global_gp = minimize(branin, bounds, budget=40, trust_region_model="global", **kw)
    np.testing.assert_array_equal(params(resumed), params(global_gp))
    assert not np.array_equal(params(local), params(global_gp))
    with pytest.raises(StudyError, match="'trust_region_model' differs"):
        minimize(branin, bounds, budget=44, study=legacy, trust_region_model="local", **kw)
    with pytest.raises(ConfigError, match="trust_region_model"):
        minimize(branin, bounds, budget=40, trust_region_model="nearest", **kw)


def test_a_study_stored_before_an_option_existed_still_resumes(tmp_path):
    path = tmp_path / "old.sqlite"
    minimize(bowl, BOX, n_init=4, budget=5, seed=1, study=path, **FAST)
    import sqlite3

    with sqlite3.connect(path) as conn:  # as written by a gego without the trust_region option
        conn.execute("DELETE FROM meta WHERE key='trust_region'")
    resumed = minimize(bowl, BOX, n_init=4, budget=7, seed=1, study=path, **FAST)
    assert resumed.nfev == 7
    with pytest.raises(StudyError, match="'trust_region' differs"):
        minimize(bowl, BOX, n_init=4, budget=8, seed=1, study=path, trust_region=True, **FAST)
