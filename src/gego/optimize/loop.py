"""The EGO loop (Alg 1) and its public entry point :func:`minimize`.

Alg 1 of the paper, generalised to batches and made durable:

    design (step 2)  ->  evaluate (steps 3-5)  ->  while not stopped (step 7):
        update the GP surrogate (step 8, Eq 13-16, 25-26)
        propose q points maximising expected improvement (steps 9-12, Eq 20)
        evaluate them (step 13) and append to the data set (step 14)
    return the best point (step 17)

Every evaluation is a row of the study store (:mod:`gego.optimize.study`) committed before the
loop moves on; the loop keeps no state that is not in the store. Determinism and exact resume
rest on three rules:

1. every random choice of iteration t uses ``np.random.default_rng([seed, t])`` (the design uses
   ``[seed, 0]``, the GP multistart of a refit at t uses a seed drawn from ``[seed, t, 1]``);
2. the surrogate is refitted on a fixed schedule of training-set sizes, and the hyperparameters
   of each refit are stored; a refit starts from the stored hyperparameters of the previous one
   (warm start; every COLD_REFIT_EVERY-th refit is a full multistart), so it is a function of
   the store too; between refits, the points of each iteration are appended (Cholesky update)
   in id order;
3. on resume, the surrogate is rebuilt by *replaying* exactly those operations from the store
   (latest stored refit, then the appends), so the resumed study proposes bit-for-bit the same
   points as one that never stopped. Rows in flight at a crash are re-run, never re-proposed.
"""

from __future__ import annotations

import math
import os
import socket
import time
import warnings
from concurrent.futures import FIRST_COMPLETED, wait
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from gego.errors import ConfigError, GegoError
from gego.optimize import stopping
from gego.optimize.design import DESIGN_METHODS, SearchBox, from_unit, initial_design, make_box, to_unit
from gego.optimize.executors import make_executor
from gego.optimize.study import EvaluationRecord, Outcome, Study, WriterLock
from gego.surrogate.gp import blas_threads

STRATEGIES = ("kriging_believer", "constant_liar")

# A nugget floor far below the GP's generic default: the objectives are deterministic solver
# runs, and near the optimum the surrogate must resolve differences of 1e-5 relative (a floor of
# 1e-6 var(y) blurs them: on Branin the best after 50 evaluations drops from ~1e-4 above the
# minimum to ~1e-6). Maximum likelihood still raises the noise for a noisy objective.
#
# The noise ceiling: on Hartmann-6 from 20 points, one refit in five seeds found its likelihood
# maximum at "all noise" (noise 0.69 var(y), every length scale at the lower bound), and the GP,
# flat, proposed the same point three times. The objectives here are deterministic: a GP that
# calls more than 10 % of var(y) noise has failed. Pass a larger noise_max for noisy objectives.
# (Not part of the stored options, so that studies stored before it existed still resume.)
#
# The constant mean (ordinary kriging, gego.surrogate.gp.gls_mean): after EGO has crowded points
# into a basin, their sample mean sits low and a zero-mean GP on the standardised outputs predicts
# that low level everywhere it has no data; the fitted constant mean is the level of the box as a
# whole, so unexplored regions look as they are. Hartmann-6 (30 seeds, budget 100, paired
# against the zero mean): lower after 50 evaluations on 27 seeds, after 100 on 29
# (docs/dev/ego-0.10-constant-mean.md).
DEFAULT_SURROGATE_OPTIONS = {"noise_floor": 1e-10, "mean": "constant"}
# Surrogate options that are gego's policy: a resumed study that does not set one explicitly keeps
# the value it was stored with (or, stored before the option existed, this one), so it proposes
# what it would have.
SURROGATE_POLICY_LEGACY = {"mean": "zero"}
LOOP_NOISE_MAX = 0.1

# "auto" refits the hyperparameters after every new point while the training set is smaller
# than this (see refit_interval); studies stored before it existed resume with 0 (LEGACY_DEFAULTS).
AUTO_REFIT_EACH_BELOW = 50


# The GP the trust region's local steps maximise EI on (minimize's trust_region_model).
TRUST_REGION_MODELS = ("global", "local")
TRUST_REGION_MODEL_DEFAULT = "local"  # for new studies; resumed ones keep their own


@dataclass(frozen=True)
class EgoSettings:
    """Options that define a study's sequence of proposals (stored; checked on resume)."""

    n_init: int
    seed: int
    batch_size: int = 1
    design: str = "lhs"
    kernel: str = "matern52"
    n_candidates: int | None = None
    refit_every: int | None = None  # None: "auto", see refit_interval
    auto_refit_each_below: int = AUTO_REFIT_EACH_BELOW  # "auto" refits on every point below this N
    strategy: str = "kriging_believer"
    vectorized: bool = False
    surrogate_options: dict = field(default_factory=dict)
    acquisition_options: dict = field(default_factory=dict)
    output_clip: float | None = None  # quantile of the design's objectives; see clip_level
    trust_region: bool = False  # local EI steps around the incumbent when EI stalls; see trust_region_at
    trust_region_model: str = TRUST_REGION_MODEL_DEFAULT  # the GP of local steps; see local_surrogate


# Keys of the stored configuration that define a study: resuming with any of them changed is
# refused (a different box, seed or model would not continue the same sequence of proposals).
# The budget and the stopping rules may change between sessions (a study can be extended).
IDENTITY_KEYS = ("bounds", "names", *EgoSettings.__dataclass_fields__, "config")
# Settings added after studies were first stored: a study that lacks one was made with this value.
LEGACY_DEFAULTS = {"trust_region": False, "auto_refit_each_below": 0, "trust_region_model": "global"}
# Settings that are gego's policy rather than the user's choice: a resumed study keeps the value
# it was stored with (so it resumes, and proposes what it would have), a new one gets today's.
ADOPTED_FROM_STUDY = ("auto_refit_each_below",)


@dataclass(frozen=True)
class Trace:
    """Best-so-far after each iteration (0 = the initial design), for convergence plots
    (the paper's Figs 8 and 12).

    Attributes
    ----------
    iteration : ndarray of int, shape (T,)
    nfev : ndarray of int, shape (T,)
        Finished evaluations (complete or failed) by the end of each iteration.
    best_fun : ndarray, shape (T,)
        Best objective so far (inf while nothing has completed).
    best_x : ndarray, shape (T, d)
        Parameters of the best objective so far (NaN while nothing has completed).
    """

    iteration: np.ndarray
    nfev: np.ndarray
    best_fun: np.ndarray
    best_x: np.ndarray


@dataclass(frozen=True)
class OptimizeResult:
    """Result of :func:`minimize`, in the spirit of scipy.optimize.OptimizeResult.

    Attributes
    ----------
    x : ndarray, shape (d,)
        Best parameters found (Alg 1 step 17), NaN if no evaluation completed.
    fun : float
        Objective at `x` (inf if no evaluation completed).
    nfev : int
        Finished evaluations, complete or failed (all sessions of the study).
    nit : int
        EGO iterations after the initial design.
    n_failed : int
        Evaluations that failed (exception, NaN, lost worker after retries).
    success : bool
        True if at least one evaluation completed.
    stop_reason : str
        "threshold", "budget", "patience", "max_time" or "callback".
    history : list of EvaluationRecord
        Every evaluation, in id order.
    trace : Trace
        Best-so-far per iteration.
    study_path : Path or None
        The study file (None for an in-memory study).
    names : tuple of str
        Parameter names.
    """

    x: np.ndarray
    fun: float
    nfev: int
    nit: int
    n_failed: int
    success: bool
    stop_reason: str
    history: list
    trace: Trace
    study_path: Path | None
    names: tuple

    @property
    def message(self) -> str:
        return f"stopped by {self.stop_reason} after {self.nfev} evaluations ({self.n_failed} failed)"


@dataclass(frozen=True)
class IterationInfo:
    """What the `callback` of :func:`minimize` receives after each iteration."""

    iteration: int
    nfev: int
    best_x: np.ndarray
    best_fun: float
    new_records: list


# ---------------------------------------------------------------------------- evaluation (workers)
def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _outcome_from_value(value, started: float, t0: float) -> Outcome:
    """Interpret what the objective returned: a number, or {"objective": v, "components": {...}}."""
    components = {}
    if isinstance(value, dict):
        if "objective" not in value:
            return _failed(f"objective returned a dict without an 'objective' key: {sorted(value)}", started, t0)
        components = dict(value.get("components") or {})
        value = value["objective"]
    try:
        objective = float(value)
    except (TypeError, ValueError):
        return _failed(f"objective returned {type(value).__name__}, expected a float", started, t0)
    if not math.isfinite(objective):
        return _failed(f"objective is not finite ({objective})", started, t0, components)
    duration = time.perf_counter() - t0
    return Outcome(objective, components, "complete", None, started, started + duration, duration, _worker_name())


def _failed(error: str, started: float, t0: float, components=None) -> Outcome:
    duration = time.perf_counter() - t0
    return Outcome(None, components or {}, "failed", error, started, started + duration, duration, _worker_name())


def evaluate_point(fun, x) -> Outcome:
    """Run the objective on one parameter vector in a worker; exceptions become failed outcomes."""
    started, t0 = time.time(), time.perf_counter()
    try:
        value = fun(np.array(x, dtype=float))
    except Exception as exc:  # noqa: BLE001 - any failure of the user's model is data, not a crash
        return _failed(f"{type(exc).__name__}: {exc}", started, t0)
    return _outcome_from_value(value, started, t0)


def evaluate_batch(fun, X) -> list[Outcome]:
    """Run a vectorized objective on an (m, d) batch; it returns m values (numbers or dicts)."""
    X = np.array(X, dtype=float)
    started, t0 = time.time(), time.perf_counter()
    try:
        values = list(fun(X))
    except Exception as exc:  # noqa: BLE001
        return [_failed(f"{type(exc).__name__}: {exc}", started, t0) for _ in X]
    if len(values) != len(X):
        error = f"vectorized objective returned {len(values)} values for {len(X)} points"
        return [_failed(error, started, t0) for _ in X]
    # The batch shares one wall time; each row records the whole batch's duration.
    return [_outcome_from_value(v, started, t0) for v in values]


def _evaluate_pending(study: Study, fun, executor, *, vectorized: bool, max_retries: int, on_done) -> None:
    """Evaluate every pending row, committing each result as it arrives.

    At most ``executor.max_workers`` tasks are in flight, so a serial executor evaluates and
    commits one row at a time. A future that raises (the worker was lost: the objective's own
    exceptions are caught in :func:`evaluate_point`) is resubmitted up to `max_retries` times.
    """
    pending = study.records("pending")
    if vectorized:  # one task per iteration: the batched solver sees the whole batch at once
        tasks = {}
        for rec in pending:
            tasks.setdefault(rec.iteration, []).append(rec)
        queue = [(evaluate_batch, recs) for recs in tasks.values()]
    else:
        queue = [(evaluate_point, [rec]) for rec in pending]
    queue.reverse()  # pop() from the end takes rows in id order
    window = max(1, int(getattr(executor, "max_workers", 1) or 1))
    in_flight: dict = {}
    attempts: dict[int, int] = {}

    def submit(task, recs):
        for rec in recs:
            study.mark_running(rec.id)
        attempts[recs[0].id] = attempts.get(recs[0].id, 0) + 1
        arg = recs[0].x if task is evaluate_point else np.array([r.x for r in recs])
        in_flight[executor.submit(task, fun, arg)] = (task, recs)

    while queue or in_flight:
        while queue and len(in_flight) < window:
            submit(*queue.pop())
        done, _ = wait(list(in_flight), return_when=FIRST_COMPLETED)
        for future in sorted(done, key=lambda f: in_flight[f][1][0].id):
            task, recs = in_flight.pop(future)
            try:
                result = future.result()
                outcomes = result if task is evaluate_batch else [result]
            except Exception as exc:  # noqa: BLE001 - a lost worker: retry, bounded
                if attempts[recs[0].id] <= max_retries:
                    queue.append((task, recs))
                    continue
                now = time.time()
                error = f"worker lost after {attempts[recs[0].id]} attempts: {type(exc).__name__}: {exc}"
                outcomes = [Outcome(None, {}, "failed", error, now, now, 0.0, "") for _ in recs]
            for rec, outcome in zip(recs, outcomes):
                study.record_outcome(rec.id, outcome)
                on_done(rec, outcome)


# ---------------------------------------------------------------------------- surrogate replay
# Every COLD_REFIT_EVERY-th refit (the first included) runs the full seeded multistart; the others
# start from the previous refit's stored optimum only (GaussianProcess.fit's warm_start), which
# cuts their likelihood evaluations several-fold while the periodic cold refit keeps the GP from
# staying in a poor local optimum of the likelihood for long.
COLD_REFIT_EVERY = 10


def refit_interval(n_at_last_fit: int, refit_every: int | None, each_below: int = AUTO_REFIT_EACH_BELOW) -> int:
    """New points needed before the next hyperparameter refit.

    `refit_every` fixes it; "auto" (None) refits after every new point below `each_below`
    training points, every 3 new points up to 150, then whenever the training set has grown by
    5 % (so the amortised refit cost per iteration stays bounded at thousands of points).

    Every point early: with few points the likelihood moves a lot per point, and a GP that
    keeps the design's length scales for three iterations steers EI badly. On Hartmann-6 (LHS
    of 20, 30 seeds, benchmarks/bench_ego_quality.py) it raised the median best after 40
    evaluations from -2.69 to -3.12 (23 seeds better, 7 worse) and after 50 from -3.19 to
    -3.23, the same after 25 and 100 and on Branin and Hartmann-3, for 10-20 % more optimiser
    time; a fit on < 50 points costs milliseconds. Every 3 later: on Branin and Hartmann-6 (5
    seeds) it halves the optimiser overhead against every point and the median best after 100
    evaluations is as good or better; between refits the new points still enter the GP by
    Cholesky updates.
    """
    if refit_every is not None:
        return int(refit_every)
    if n_at_last_fit < each_below:
        return 1
    return 3 if n_at_last_fit < 150 else math.ceil(0.05 * n_at_last_fit)


def refit_schedule(history: list[EvaluationRecord], iteration: int, refit_every: int | None,
                   each_below: int = AUTO_REFIT_EACH_BELOW) -> list[int]:
    """Iterations <= `iteration` at which the GP hyperparameters are (re)fitted.

    A pure function of the stored history: the GP of iteration t is trained on the complete rows
    of iterations < t; it is first fitted once 2 points have completed, then refitted whenever
    the training set has grown by :func:`refit_interval` points since the last fit.
    """
    completed_per_iteration = np.bincount(
        [r.iteration for r in history if r.status == "complete"], minlength=iteration + 1
    )
    n_train = np.cumsum(completed_per_iteration)  # n_train[t - 1] = rows the GP of iteration t sees
    schedule, n_last = [], None
    for t in range(1, iteration + 1):
        n_t = int(n_train[t - 1])
        if n_t < 2:
            continue
        if n_last is None or n_t - n_last >= refit_interval(n_last, refit_every, each_below):
            schedule.append(t)
            n_last = n_t
    return schedule


def clip_level(history, quantile: float | None) -> float:
    """The level above which objectives are clipped before the GP sees them (inf: no clipping).

    Calibration objectives have cliffs: parameter sets where nothing yields saturate the
    Grassmann distance and the stress misfit, and a few such values dominate the output
    standardisation, so the GP fits long length scales to every direction but the cliff's and
    EI ends up proposing box corners. Clipping at a quantile of the *initial design's*
    objectives (iteration 0, fixed once the design is complete) keeps the surrogate's attention
    on the region worth improving; being a function of the design alone, it is the same at
    every refit, append and replay, so resumed studies stay bit-identical.
    """
    if quantile is None:
        return np.inf
    design = [r.objective for r in history if r.status == "complete" and r.iteration == 0]
    if len(design) < 2:
        return np.inf
    return float(np.quantile(np.asarray(design, dtype=float), quantile))


def _training_data(history, box: SearchBox, before_iteration: int, from_iteration: int = 0,
                   clip: float = np.inf):
    rows = [r for r in history if r.status == "complete" and from_iteration <= r.iteration < before_iteration]
    X_unit = to_unit(np.array([r.x for r in rows]).reshape(len(rows), box.dim), box)
    y = np.minimum(np.array([r.objective for r in rows], dtype=float), clip)
    return X_unit, y


def _fit_seed(seed: int, iteration: int, stream: int = 1) -> int:
    """Seed of the GP fitted at `iteration`: stream 1 the global GP, 2 the local one."""
    return int(np.random.SeedSequence([seed, iteration, stream]).generate_state(1)[0])


def _new_gp(settings: EgoSettings, seed: int, max_restarts: int | None = None):
    from gego.surrogate import GaussianProcess

    options = {"noise_max": LOOP_NOISE_MAX, **SURROGATE_POLICY_LEGACY, **settings.surrogate_options}
    if max_restarts is not None:
        options["n_restarts"] = min(int(options.get("n_restarts", max_restarts)), max_restarts)
    return GaussianProcess(kernel=settings.kernel, seed=seed, **options)


def _fitted_gp(settings: EgoSettings, X_unit, y, iteration: int, hyperparameters: dict | None,
               warm_start: dict | None = None):
    """A GP fitted at a refit iteration: by maximum likelihood (live), or from stored
    hyperparameters (replay).

    A live fit starts from `warm_start`, the stored hyperparameters of the previous refit (a
    function of the store, so a fit redone after a crash starts from the same point). The live
    path also ends by rebuilding from the optimised hyperparameters, so live and replayed GPs
    are the result of the same floating-point operations.
    """
    if hyperparameters is None:
        gp = _new_gp(settings, _fit_seed(settings.seed, iteration))
        gp.fit(X_unit, y, warm_start=warm_start)
        hyperparameters = gp.hyperparameters
    gp = _new_gp(settings, _fit_seed(settings.seed, iteration))
    gp.set_hyperparameters(hyperparameters)
    gp.fit(X_unit, y, optimize=False)
    return gp, hyperparameters


@dataclass
class _SurrogateCache:
    iteration: int
    gp: object


def surrogate_at(iteration: int, history, box: SearchBox, settings: EgoSettings, study: Study,
                 cache: _SurrogateCache | None) -> _SurrogateCache | None:
    """The GP of `iteration`, continuing `cache` (the GP of iteration - 1) or replaying from the
    store; None while fewer than 2 points have completed."""
    schedule = refit_schedule(history, iteration, settings.refit_every, settings.auto_refit_each_below)
    if not schedule:
        return None
    last_refit = schedule[-1]
    if last_refit == iteration or cache is None or cache.iteration != iteration - 1:
        # Refit now, or replay: the stored refit at last_refit, then one append per iteration.
        fits = study.fits()
        stored = fits.get(last_refit)
        previous = None if (len(schedule) - 1) % COLD_REFIT_EVERY == 0 else fits.get(schedule[-2])
        clip = clip_level(history, settings.output_clip)
        X_unit, y = _training_data(history, box, last_refit, clip=clip)
        gp, hp = _fitted_gp(settings, X_unit, y, last_refit, stored and stored["hyperparameters"],
                            warm_start=previous and previous["hyperparameters"])
        if stored is None:
            study.save_fit(last_refit, len(y), hp)
        start = last_refit + 1
    else:
        gp, start = cache.gp, iteration
        clip = clip_level(history, settings.output_clip)
    for t in range(start, iteration + 1):
        X_new, y_new = _training_data(history, box, t, from_iteration=t - 1, clip=clip)
        if len(y_new):
            gp.append(X_new, y_new)
    return _SurrogateCache(iteration, gp)


# Trust region (half-widths in the unit cube, before the length-scale weighting): start, floor
# (below it the region restarts at TR_INIT) and ceiling.
TR_INIT, TR_MIN, TR_MAX = 0.1, 1e-3, 0.2


def trust_region_state(history: list[EvaluationRecord], iteration: int) -> tuple[bool, float]:
    """Whether `iteration` is a local (trust-region) step, and the region's radius.

    A pure function of the stored history (so resumed studies replay it), in the spirit of
    TREGO (Diouane et al. 2021): EGO steps are global while they improve the best objective; a
    global step that does not improve is followed by a local step, EI maximised inside a box
    around the incumbent. A local step that improves doubles the radius (up to TR_MAX) and the
    next step is local again; one that does not halves it and hands back to a global step, so
    while EI stalls global and ever finer local steps alternate. Below TR_MIN the radius
    restarts at TR_INIT. (Delaying local steps until 10 d points had completed was tried:
    on Hartmann-6 it helped after 25 evaluations and hurt after 40, and it lost Branin's and
    Hartmann-3's gains at 25; benchmarks/bench_ego_quality.py, 5 seeds.)
    """
    best_before = math.inf
    local, radius = False, TR_INIT
    by_iteration: dict[int, list[float]] = {}
    for r in history:
        if r.status == "complete" and r.iteration < iteration:
            by_iteration.setdefault(r.iteration, []).append(r.objective)
    for t in range(iteration):
        best_t = min(by_iteration.get(t, []), default=math.inf)
        improved = best_t < best_before
        best_before = min(best_before, best_t)
        if t == 0 or not math.isfinite(best_before):
            continue  # the design sets the incumbent; steps are judged from iteration 1 on
        if not local:
            local = not improved
        elif improved:
            radius = min(2.0 * radius, TR_MAX)
        else:
            radius, local = radius / 2.0, False
            if radius < TR_MIN:
                radius = TR_INIT
    return local, radius


def trust_region_at(history, iteration: int, gp) -> tuple[np.ndarray, np.ndarray] | None:
    """The unit-cube box (lower, upper) a local step of `iteration` searches, or None (global).

    Centred on the incumbent (the best complete point the GP was trained on); the half-width in
    direction k is radius * l_k / geomean(l) (length scales of the GP, as TuRBO weights its
    boxes), at most 0.5, clipped to the unit cube.
    """
    local, radius = trust_region_state(history, iteration)
    if not local:
        return None
    X, y = gp.X_train, gp.y_train
    centre = X[int(np.argmin(y))]
    length_scales = np.asarray(gp.hyperparameters["length_scales"], dtype=float)
    weights = length_scales / np.exp(np.mean(np.log(length_scales)))
    half_width = np.minimum(radius * weights, 0.5)
    lower, upper = np.clip(centre - half_width, 0.0, 1.0), np.clip(centre + half_width, 0.0, 1.0)
    if np.any(upper <= lower):
        return None
    return lower, upper


# "local": local steps refit a GP to the training points nearest the incumbent, this many per
# dimension (10 per dimension was better on Branin and Hartmann-3 but lost the STZ validation,
# docs/dev/ego-0.11-local-trust-region.md), with at most this many random restarts besides the
# default start (4 instead of 1: 27 % more optimiser CPU on Branin, no measurable gain over 30 seeds;
# 0 instead of 1: about 20 % less on Branin and better there after 40-50, but the STZ validation's
# best objective higher on 18 of 27 seeds, 16 of 27 in an earlier run; docs/dev/ego-0.12-cheaper-fits.md).
TR_LOCAL_POINTS_PER_DIM = 20
TR_LOCAL_RESTARTS = 1


def local_surrogate(gp, settings: EgoSettings, iteration: int):
    """The GP a local (trust-region) step maximises EI on: refitted to the points near the incumbent.

    The max(TR_LOCAL_POINTS_PER_DIM * d, 2 d + 2) training points nearest the incumbent (in the
    global GP's ARD-scaled distance), or all of them while there are fewer, standardised on
    themselves, hyperparameters fitted by maximum likelihood from a cold start (the global GP is
    warm-started from its previous fit). Returns `gp` itself if the local fit fails. A pure
    function of (gp, settings, iteration), so resumed studies replay it.

    Why (measured, docs/dev/ego-0.11-local-trust-region.md): on the global GP, local steps on
    Branin keep re-sampling ~1e-6 above the minimum, where the global GP is confident; on the
    local GP they spread over the region and find lower points. On the STZ validation (18 seeds x
    300 runs) the best objective was lower than with the global GP on 12 seeds, higher on 6. (A more
    precise mean near the incumbent was what I expected; in a synthetic check the local GP's
    mean there was not more accurate.) While N is below the neighbourhood size the refit is a
    cold refit of all the points; on Hartmann-6 that is where the gain after 40 and 50
    evaluations comes from. A warm start from the global hyperparameters halved the cost and
    lost that gain.
    """
    X, y = gp.X_train, gp.y_train
    nearest = gp.nearest_training_points(X[int(np.argmin(y))], max(TR_LOCAL_POINTS_PER_DIM * X.shape[1],
                                                                    2 * X.shape[1] + 2))
    local = _new_gp(settings, _fit_seed(settings.seed, iteration, stream=2), max_restarts=TR_LOCAL_RESTARTS)
    try:
        local.fit(X[nearest], y[nearest])  # maximum likelihood, Eq 11
    except GegoError:
        return gp
    return local


def default_n_candidates(n_dim: int) -> int:
    """N* of the Monte Carlo search when not set: 1024 per dimension, at least 2048.

    A fixed N* thins out with the dimension; on Hartmann-3 (5 seeds) 3072 instead of 2048
    candidates improved the median best after 25 evaluations from -3.8604 to -3.8622.
    """
    return max(2048, 1024 * int(n_dim))


def _propose(iteration: int, q: int, history, box: SearchBox, settings: EgoSettings, surrogate) -> np.ndarray:
    """The q points of `iteration` (Alg 1 steps 8-12), in the user's units."""
    rng = np.random.default_rng([settings.seed, iteration])
    if surrogate is None:
        # Fewer than 2 completed points (the design failed): keep exploring at random.
        return from_unit(rng.random((q, box.dim)), box)
    from gego.optimize.acquisition import propose_batch

    _, y = _training_data(history, box, iteration)
    failed = [r.x for r in history if r.status == "failed"]
    avoid = to_unit(np.array(failed), box) if failed else None
    options = dict(settings.acquisition_options)
    if settings.n_candidates is not None:
        options["n_candidates"] = settings.n_candidates
    elif "n_candidates" not in options:
        options["n_candidates"] = default_n_candidates(box.dim)
    gp = surrogate.gp
    if settings.trust_region:
        options["region"] = trust_region_at(history, iteration, gp)
        if options["region"] is not None and settings.trust_region_model == "local":
            gp = local_surrogate(gp, settings, iteration)
    X_unit = propose_batch(gp, float(np.min(y)), q, rng=rng, strategy=settings.strategy, avoid=avoid, **options)
    return from_unit(X_unit, box)


# ---------------------------------------------------------------------------- traces and results
def trace_of(history: list[EvaluationRecord], dim: int) -> Trace:
    """Best-so-far after each iteration whose rows have all finished."""
    finished = [r for r in history if r.status in ("complete", "failed")]
    open_iterations = {r.iteration for r in history if r.status not in ("complete", "failed")}
    last = max((r.iteration for r in finished), default=-1)
    iterations, nfev, best_fun, best_x = [], [], [], []
    best, best_params, count = math.inf, np.full(dim, np.nan), 0
    by_iteration: dict[int, list] = {}
    for r in finished:
        by_iteration.setdefault(r.iteration, []).append(r)
    for t in range(last + 1):
        if t in open_iterations:
            break
        for r in by_iteration.get(t, []):
            count += 1
            if r.status == "complete" and r.objective < best:
                best, best_params = r.objective, r.x
        iterations.append(t)
        nfev.append(count)
        best_fun.append(best)
        best_x.append(best_params)
    return Trace(np.array(iterations, dtype=int), np.array(nfev, dtype=int), np.array(best_fun, dtype=float),
                 np.array(best_x, dtype=float).reshape(len(best_x), dim))


def best_after(history: list[EvaluationRecord], counts) -> np.ndarray:
    """Best objective among the first n finished evaluations (id order), for each n in `counts`.

    The usual convergence measure of benchmarks: inf where nothing had completed yet, and the
    final best where the study has fewer than n evaluations.
    """
    values = np.array([r.objective if r.status == "complete" else np.inf
                       for r in history if r.status in ("complete", "failed")], dtype=float)
    running = np.minimum.accumulate(values) if values.size else values
    return np.array([running[min(int(n), running.size) - 1] if running.size and n > 0 else np.inf
                     for n in counts])


def _result(history, box: SearchBox, reason: str, study: Study) -> OptimizeResult:
    complete = [r for r in history if r.status == "complete"]
    best = min(complete, key=lambda r: (r.objective, r.id)) if complete else None
    return OptimizeResult(
        x=best.x.copy() if best else np.full(box.dim, np.nan),
        fun=float(best.objective) if best else math.inf,
        nfev=sum(r.status in ("complete", "failed") for r in history),
        nit=max((r.iteration for r in history), default=0),
        n_failed=sum(r.status == "failed" for r in history),
        success=best is not None,
        stop_reason=reason,
        history=history,
        trace=trace_of(history, box.dim),
        study_path=None if str(study.path) == ":memory:" else study.path,
        names=box.names,
    )


# ---------------------------------------------------------------------------- entry point
def _check_settings(settings: EgoSettings, budget: int) -> None:
    if int(settings.n_init) < 2:
        raise ConfigError(f"n_init: expected at least 2 initial points, got {settings.n_init}")
    if int(budget) < int(settings.n_init):
        raise ConfigError(f"budget: expected at least n_init = {settings.n_init} evaluations, got {budget}")
    if int(settings.batch_size) < 1:
        raise ConfigError(f"batch_size: expected a positive integer, got {settings.batch_size}")
    if settings.design not in DESIGN_METHODS:
        raise ConfigError(f"design: expected one of {DESIGN_METHODS}, got {settings.design!r}")
    if settings.strategy not in STRATEGIES:
        raise ConfigError(f"strategy: expected one of {STRATEGIES}, got {settings.strategy!r}")
    if settings.output_clip is not None and not 0.0 < settings.output_clip <= 1.0:
        raise ConfigError(f"output_clip: expected a quantile in (0, 1] or None, got {settings.output_clip}")
    if settings.refit_every is not None and int(settings.refit_every) < 1:
        raise ConfigError(f"refit_every: expected a positive integer or 'auto', got {settings.refit_every}")
    if settings.n_candidates is not None and int(settings.n_candidates) < 1:
        raise ConfigError(f"n_candidates: expected a positive integer, got {settings.n_candidates}")
    if settings.trust_region_model not in TRUST_REGION_MODELS:
        raise ConfigError(f"trust_region_model: expected one of {TRUST_REGION_MODELS}, "
                          f"got {settings.trust_region_model!r}")


def _adopt_stored_policy(opened: Study, settings: EgoSettings, policy_keys=(),
                         adopted=ADOPTED_FROM_STUDY) -> EgoSettings:
    """`settings` with the stored values of the `adopted` settings of the study being resumed
    (ADOPTED_FROM_STUDY and those the caller left to gego), and its stored values of the
    surrogate options in `policy_keys` (those the caller did not set)."""
    stored = opened.config
    surrogate = dict(settings.surrogate_options)
    stored_surrogate = stored.get("surrogate_options") or {}
    for key in policy_keys:  # absent from the stored options: _new_gp applies the legacy value
        if key in stored_surrogate:
            surrogate[key] = stored_surrogate[key]
        else:
            surrogate.pop(key, None)
    return replace(settings, surrogate_options=surrogate,
                   **{key: stored.get(key, LEGACY_DEFAULTS[key]) for key in adopted})


def _stored_config(box: SearchBox, settings: EgoSettings, config: dict | None) -> dict:
    import gego

    return {"bounds": box.bounds, "names": list(box.names), **asdict(settings),
            "config": config or {}, "gego_version": gego.__version__}


def _open_study(study, box: SearchBox, settings: EgoSettings, config: dict | None, policy_keys=(),
                adopted=ADOPTED_FROM_STUDY):
    """Lock, then create or re-open the study.

    Returns (study, whether we opened it and must close it, the writer lock or None, the
    settings: those given, with the stored ADOPTED_FROM_STUDY values when resuming). The lock
    is taken before the file is looked at, so two processes starting the same new study cannot
    both create it.
    """
    import gego

    if study is None:
        return Study.create(":memory:", config=_stored_config(box, settings, config)), True, None, settings
    path = study.path if isinstance(study, Study) else Path(study)
    lock = None if str(path) == ":memory:" else WriterLock.acquire(path)
    try:
        if isinstance(study, Study):
            settings = _adopt_stored_policy(study, settings, policy_keys, adopted)
            study.check_config(_stored_config(box, settings, config), IDENTITY_KEYS, LEGACY_DEFAULTS)
            return study, False, lock, settings
        if not path.exists():
            return Study.create(path, config=_stored_config(box, settings, config)), True, lock, settings
        opened = Study.open(path)
    except BaseException:
        if lock is not None:
            lock.release()
        raise
    try:
        settings = _adopt_stored_policy(opened, settings, policy_keys, adopted)
        opened.check_config(_stored_config(box, settings, config), IDENTITY_KEYS, LEGACY_DEFAULTS)
    except BaseException:
        opened.close()
        if lock is not None:
            lock.release()
        raise
    version = opened.config.get("gego_version")
    if version != gego.__version__:
        warnings.warn(f"{path}: study written by gego {version}, resuming with {gego.__version__}; "
                      "proposals may differ from an uninterrupted run", stacklevel=3)
    return opened, True, lock, settings


def minimize(fun, bounds, *, n_init: int, budget: int, seed: int, batch_size: int = 1, study=None,
             executor=None, vectorized: bool = False, names=None, design: str = "lhs",
             kernel: str = "matern52", n_candidates: int | None = None, refit_every: int | str = "auto",
             strategy: str = "kriging_believer", threshold: float | None = None,
             max_time_s: float | None = None, patience: int | None = None, callback=None,
             progress: bool = False, config: dict | None = None, max_retries: int = 2,
             surrogate_options: dict | None = None, acquisition_options: dict | None = None,
             optimizer_threads: int | None = 1, output_clip: float | None = None,
             trust_region: bool = False, trust_region_model: str | None = None) -> OptimizeResult:
    """Minimise an expensive black-box function over a box by efficient global optimisation.

    Alg 1 of the paper (Sec 2.2-2.3, 3.5): a space-filling initial design, then iterations of
    "fit a GP surrogate, propose the batch maximising expected improvement (Eq 20), evaluate it"
    until a stopping rule holds. Every evaluation is committed to the study store before the loop
    moves on; calling again with the same `study` path resumes (or extends) the study and
    proposes exactly the points an uninterrupted run would have.

    Parameters
    ----------
    fun : callable
        ``fun(x) -> float`` for x of shape (d,), or, with ``vectorized=True``, ``fun(X) -> m
        values`` for X of shape (m, d). A value may also be a dict ``{"objective": float,
        "components": {name: float}}`` (the components, e.g. the distances of Eq 24, are stored).
        An exception or a non-finite value is recorded as a failed evaluation: it is left out of
        the surrogate and the acquisition avoids its neighbourhood.
    bounds : sequence of (lower, upper) pairs, or scipy.optimize.Bounds
        The box searched; the initial design is uniform over it.
    n_init : int
        Size of the initial design (the paper: 350-400 for 4 STZ parameters).
    budget : int
        Maximum number of evaluations (complete or failed, initial design included, all sessions).
    seed : int
        Seed of every random choice (design, GP multistart, candidate sets).
    batch_size : int
        Points per iteration q; 1 reproduces the paper.
    study : str or Path or Study, optional
        The SQLite study file; created if missing, resumed if present. None keeps the study in
        memory (nothing survives the process).
    executor : None, "serial", "process", "dask", or an executor object
        Where evaluations run (:mod:`gego.optimize.executors`). None: a process pool with one
        worker per point of the batch when batch_size > 1 (falls back to serial if `fun` cannot
        be pickled), serial otherwise.
    vectorized : bool
        `fun` takes the whole (m, d) batch of an iteration (e.g. the batched STZ solver).
    names : sequence of str, optional
        Parameter names (stored; used in exports).
    design : {"lhs", "sobol"}
        Initial design: Latin hypercube or scrambled Sobol.
    kernel : {"matern52", "se"}
        GP kernel (the paper's Eq 16 is "se").
    n_candidates : int, optional
        Size N* of the fresh space-filling candidate set the EI is maximised over (Sec 3.5).
    refit_every : int or "auto"
        New points between hyperparameter refits (see :func:`refit_interval`).
    strategy : {"kriging_believer", "constant_liar"}
        How a batch of q > 1 points is built.
    threshold : float, optional
        Stop once the best objective is <= threshold (Alg 1 step 7, Delta_th).
    max_time_s : float, optional
        Stop (between iterations) once this session has run this long (s, wall time).
    patience : int, optional
        Stop after this many iterations without improvement of the best objective.
    callback : callable, optional
        ``callback(IterationInfo)`` after each iteration; returning True stops the loop.
    progress : bool
        Show a tqdm progress bar of evaluations.
    config : dict, optional
        User configuration stored with the study (e.g. the calibration's TOML); part of the
        study identity.
    max_retries : int
        Retries of an evaluation whose worker was lost before it is recorded as failed.
    surrogate_options, acquisition_options : dict, optional
        Extra keyword arguments of :class:`gego.surrogate.GaussianProcess` (default
        ``noise_floor=1e-10, mean="constant"``, see DEFAULT_SURROGATE_OPTIONS) and of
        :func:`gego.optimize.acquisition.propose_batch`. A study stored without a ``mean``
        (gego < 0.10) resumes with the zero mean it was made with, unless ``mean`` is given here.
    optimizer_threads : int or None
        BLAS threads while fitting the GP and maximising EI (None: leave the library default).
        The default 1 makes the proposals bit-identical on machines with any number of cores
        (threaded BLAS reductions round differently) and avoids the heavy slowdown of spinning
        BLAS threads on cores shared with workers; the GP's matrices (N <= a few thousand) gain
        little from threads.
    output_clip : float in (0, 1] or None
        Clip the objectives the GP is trained on at this quantile of the initial design's
        objectives (see :func:`clip_level`); None (default) trains on the raw values. Useful for
        objectives with saturated regions (calibrations where some parameter sets never yield).
    trust_region : bool
        When a global EI step does not improve the best objective, take local steps: EI
        maximised inside a box around the incumbent that grows on success and shrinks on
        failure (:func:`trust_region_state`). Helps refine a minimum that the global EI
        approaches but stalls near (narrow valleys, ridges).
    trust_region_model : {"local", "global"} or None
        The GP the local steps maximise EI on: one refitted to the points nearest the
        incumbent (:func:`local_surrogate`), or the loop's global GP (gego <= 0.10). None
        (default): "local" for a new study; a resumed study keeps the model it was stored with
        ("global" if it was stored before the option). The choice is stored with the study;
        an explicit value that differs from the stored one is refused.

    Returns
    -------
    OptimizeResult
    """
    box = make_box(bounds, names)
    settings = EgoSettings(
        n_init=int(n_init), seed=int(seed), batch_size=int(batch_size), design=design, kernel=kernel,
        n_candidates=None if n_candidates is None else int(n_candidates),
        refit_every=None if refit_every == "auto" else int(refit_every), strategy=strategy,
        vectorized=bool(vectorized), surrogate_options={**DEFAULT_SURROGATE_OPTIONS, **(surrogate_options or {})},
        acquisition_options=dict(acquisition_options or {}),
        output_clip=None if output_clip is None else float(output_clip),
        trust_region=bool(trust_region), trust_region_model=trust_region_model or TRUST_REGION_MODEL_DEFAULT,
    )
    _check_settings(settings, budget)
    rules = stopping.StopRules(budget=int(budget), threshold=threshold, max_time_s=max_time_s, patience=patience)
    policy_keys = [key for key in SURROGATE_POLICY_LEGACY if key not in (surrogate_options or {})]
    # Left to gego (None), the trust region's model is policy: a resumed study keeps its own.
    adopted = ADOPTED_FROM_STUDY + (("trust_region_model",) if trust_region_model is None else ())
    store, owns_store, lock, settings = _open_study(study, box, settings, config, policy_keys, adopted)
    try:
        pool, owns_pool = make_executor(executor, fun, batch_size=settings.batch_size,
                                        vectorized=settings.vectorized)
    except BaseException:
        if owns_store:
            store.close()
        if lock is not None:
            lock.release()
        raise
    bar = _progress_bar(progress, rules.budget)
    session_start = time.monotonic()
    interrupted = True  # until the loop returns: then an owned pool is shut down without waiting
    try:
        store.set_meta("budget", rules.budget)
        store.requeue_running()  # rows in flight at a crash are re-run
        history = store.records()
        if not history:  # Alg 1 step 2, written as pending rows so a crash mid-design resumes
            design_unit = initial_design(settings.n_init, box.dim, method=settings.design, seed=[settings.seed, 0])
            store.add_pending(0, from_unit(design_unit, box))
        if bar is not None:
            bar.update(sum(r.status in ("complete", "failed") for r in history))
        cache = None
        while True:
            _evaluate_pending(store, fun, pool, vectorized=settings.vectorized, max_retries=max_retries,
                              on_done=lambda rec, out: bar is not None and bar.update(1))
            history = store.records()
            reason = stopping.stop_reason(rules, history, time.monotonic() - session_start)
            if reason is None and callback is not None and callback(_iteration_info(history, box)):
                reason = "callback"
            if reason is not None:
                interrupted = False
                return _result(history, box, reason, store)
            iteration = history[-1].iteration + 1
            q = min(settings.batch_size, rules.budget - stopping.n_finished(history))
            with blas_threads(optimizer_threads):
                cache = surrogate_at(iteration, history, box, settings, store, cache)  # Alg 1 step 8
                X_next = _propose(iteration, q, history, box, settings, cache)  # Alg 1 steps 9-12
            store.add_pending(iteration, X_next)
    finally:
        if bar is not None:
            bar.close()
        if owns_pool:
            # On Ctrl-C or an error, do not wait for evaluations in flight: their rows stay
            # 'running' and are re-run when the study resumes.
            pool.shutdown(wait=not interrupted, cancel_futures=interrupted)
        if owns_store:
            store.close()
        if lock is not None:
            lock.release()


def _iteration_info(history, box: SearchBox) -> IterationInfo:
    trace = trace_of(history, box.dim)
    last = history[-1].iteration
    return IterationInfo(iteration=last, nfev=int(trace.nfev[-1]), best_x=trace.best_x[-1],
                         best_fun=float(trace.best_fun[-1]), new_records=[r for r in history if r.iteration == last])


def _progress_bar(progress: bool, total: int):
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="eval", desc="EGO")


def minimize_repeats(fun, bounds, *, seeds, study_dir=None, **kwargs) -> list[OptimizeResult]:
    """Independent repeats of :func:`minimize` over `seeds` (the paper ran 8-9).

    Each repeat has its own study file ``study_dir/seed-<seed>.sqlite`` (resumable) when
    `study_dir` is given. Returns one result per seed, in order; their ``trace`` and
    :func:`best_after` give the convergence curves of the paper's Figs 8 and 12.
    """
    results = []
    for seed in seeds:
        study = None if study_dir is None else Path(study_dir) / f"seed-{int(seed)}.sqlite"
        results.append(minimize(fun, bounds, seed=int(seed), study=study, **kwargs))
    return results
