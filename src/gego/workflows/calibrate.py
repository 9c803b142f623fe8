"""`gego calibrate`: Grassmannian EGO of the STZ model against a reference (paper Sec 5.4).

The run is Alg 1 of the paper per seed: a Latin-hypercube design, then EGO iterations to the
budget, every evaluation committed to the seed's study file (so Ctrl-C leaves a study that the
same command resumes). Independent seeds (the paper's 8 repeats) run in parallel worker
processes when there are several workers; a single seed spreads each EGO batch over the workers.

The same machinery runs the validation (:mod:`gego.workflows.validate`); only the reference
differs.
"""

from __future__ import annotations

import math
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gego.errors import ConfigError, GegoError
from gego.workflows import progress
from gego.workflows.config import PARAMETERS, WorkflowConfig
from gego.workflows.problem import (DELTA_KEY, CalibrationProblem, build_problem, delta_of, feasible_bounds,
                                    load_workflow_reference)

__all__ = [
    "SeedResult",
    "WorkflowResult",
    "calibrate",
    "evaluate_point",
    "run_seeds",
    "study_paths",
    "PAPER_OPTIMUM_VALUES",
]

#: The paper's optimum against the CuZr MD data, X+ (Sec 5.4, Fig 11), paper names and units.
PAPER_OPTIMUM_VALUES = {"c0": 0.164, "s_y": 0.906, "beta": 6.882, "E0": -3.369}


@dataclass(frozen=True)
class SeedResult:
    """Outcome of one seed's study.

    Attributes
    ----------
    seed : the seed.
    study : the study file.
    best : best parameters by paper name (Table 1-2 units); NaN if nothing completed.
    objective : best objective (inf if nothing completed).
    components : the best point's objective components (Eq 39, 40).
    n_runs : continuum runs finished in this study (all sessions, failed included).
    n_failed : runs that failed (model could not run the point, or diverged).
    wall_time_s : wall time of this session, s.
    compute_time_s : summed solver+objective time of every run in the study, s.
    stop_reason : why the loop stopped ("budget", "interrupted", ...).
    """

    seed: int
    study: Path
    best: dict[str, float]
    objective: float
    components: dict[str, float]
    n_runs: int
    n_failed: int
    wall_time_s: float
    compute_time_s: float
    stop_reason: str

    def to_dict(self) -> dict:
        return {"seed": self.seed, "study": str(self.study), "best": self.best, "objective": _finite(self.objective),
                "components": self.components, "n_runs": self.n_runs, "n_failed": self.n_failed,
                "wall_time_s": self.wall_time_s, "compute_time_s": self.compute_time_s,
                "stop_reason": self.stop_reason}


@dataclass(frozen=True)
class WorkflowResult:
    """All seeds of one calibrate or validate run, with what the workflow adds.

    Attributes
    ----------
    config : the effective :class:`WorkflowConfig`.
    seeds : one :class:`SeedResult` per seed, in seed order.
    wall_time_s : wall time of the whole command, s.
    extra : workflow-specific results (validate: targets and errors; calibrate: the objective
        at the paper's X+).
    """

    config: WorkflowConfig
    seeds: list[SeedResult]
    wall_time_s: float
    extra: dict = field(default_factory=dict)

    @property
    def best(self) -> SeedResult:
        """The seed with the lowest objective."""
        return min(self.seeds, key=lambda s: (s.objective, s.seed))

    @property
    def n_runs(self) -> int:
        return sum(s.n_runs for s in self.seeds)

    def spread(self) -> dict[str, dict[str, float]]:
        """Per parameter over seeds: median, min, max, standard deviation, IQR."""
        out = {}
        for name in self.config.names:
            values = np.array([s.best[name] for s in self.seeds if math.isfinite(s.best[name])])
            if values.size == 0:
                continue
            q25, q50, q75 = np.percentile(values, [25, 50, 75])
            out[name] = {"median": float(q50), "min": float(values.min()), "max": float(values.max()),
                         "std": float(values.std(ddof=1)) if values.size > 1 else 0.0,
                         "iqr": float(q75 - q25), "unit": PARAMETERS[name].unit}
        return out

    def summary(self) -> dict:
        """The ``--json`` summary: best parameters by name, objective and components, runs,
        wall time, seeds, spread over seeds, and the effective configuration."""
        best = self.best
        return {
            "workflow": self.config.workflow,
            "best": best.best,
            "units": {name: PARAMETERS[name].unit for name in self.config.names},
            "objective": _finite(best.objective),
            "components": best.components,
            "best_seed": best.seed,
            "n_runs": self.n_runs,
            "n_failed": sum(s.n_failed for s in self.seeds),
            "wall_time_s": self.wall_time_s,
            "compute_time_s": sum(s.compute_time_s for s in self.seeds),
            "seeds": [s.seed for s in self.seeds],
            "spread": self.spread(),
            "per_seed": [s.to_dict() for s in self.seeds],
            **self.extra,
            "config": self.config.to_dict(),
        }


def _finite(value: float):
    return float(value) if math.isfinite(value) else None


def json_safe(value):
    """Plain JSON data: numpy scalars and arrays unpacked, tuples as lists, NaN/inf as None."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, np.generic):
        return json_safe(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# --------------------------------------------------------------------------------- studies
def study_paths(config: WorkflowConfig, study: str | Path | None) -> list[Path]:
    """Study file of each seed: `study` itself for one seed, ``<stem>-seed<S><suffix>`` for
    several (all in `study`'s folder). Default `study`: ``gego-<workflow>.db``."""
    base = Path(study or config.study or f"gego-{config.workflow}.db")
    if config.repeats == 1:
        return [base]
    return [base.with_name(f"{base.stem}-seed{seed}{base.suffix}") for seed in config.seeds]


def _executor(config: WorkflowConfig, workers: int):
    """(executor, vectorized) for one seed's study."""
    from gego.optimize import DaskExecutor, ProcessExecutor, SerialExecutor

    if config.dask_address:
        return DaskExecutor(config.dask_address), False
    if workers > 1 and config.batch_size > 1:
        return ProcessExecutor(max_workers=min(workers, config.batch_size)), False
    # One process: the batched solver advances the whole batch (the design too) in one call.
    return SerialExecutor(), True


def compute_time_s(records) -> float:
    """Solver + objective time of finished evaluations, s. The points of one batched solver call
    share its start time and each records the whole call's duration; they are counted once (their
    finish times differ by the microseconds it takes to commit them one after another)."""
    calls: dict = {}
    for r in records:
        if r.status in ("complete", "failed"):
            key = (r.worker, r.started)
            calls[key] = max(calls.get(key, 0.0), r.duration_s or 0.0)
    return float(sum(calls.values()))


def _seed_result(seed: int, path: Path, names, opt_result, wall: float) -> SeedResult:
    history = opt_result.history
    complete = [r for r in history if r.status == "complete"]
    best = min(complete, key=lambda r: (r.objective, r.id)) if complete else None
    return SeedResult(
        seed=seed,
        study=path,
        best={n: float(v) for n, v in zip(names, best.x)} if best else {n: math.nan for n in names},
        objective=delta_of(best.objective, best.components) if best else math.inf,
        components={k: float(v) for k, v in best.components.items() if k != DELTA_KEY} if best else {},
        n_runs=sum(r.status in ("complete", "failed") for r in history),
        n_failed=sum(r.status == "failed" for r in history),
        wall_time_s=wall,
        compute_time_s=compute_time_s(history),
        stop_reason=opt_result.stop_reason,
    )


def run_seed(problem: CalibrationProblem, config: WorkflowConfig, seed: int, path: Path, *, workers: int = 1,
             quiet: bool = True, position: int | None = None, label: str = "", meta: dict | None = None) -> SeedResult:
    """One study: LHS design + EGO to the budget (resuming `path` if it exists).

    The effective configuration is stored in the study (``workflow_config``, with `meta`
    entries next to it); the part that defines the proposals (:meth:`WorkflowConfig.identity`)
    is checked when a study resumes.
    """
    from gego.optimize import Study, minimize

    executor, vectorized = _executor(config, workers)
    fun = problem.batch if vectorized else problem
    bounds, _ = feasible_bounds(config, problem)
    started = time.perf_counter()
    try:
        with progress.StudyProgress(path, config.budget, label or f"seed {seed}", quiet=quiet, position=position):
            result = minimize(
                fun, bounds, names=config.names, n_init=config.n_init, budget=config.budget, seed=seed,
                batch_size=config.batch_size, study=path, executor=executor, vectorized=vectorized,
                design=config.design, kernel=config.kernel, config=config.identity(),
                output_clip=config.output_clip or None,
                trust_region=config.trust_region,
            )
    finally:
        executor.shutdown()
        if path.is_file():
            with Study.open(path) as study:
                study.set_meta("workflow_config", {**config.to_dict(), "seed": seed})
                for key, value in (meta or {}).items():
                    study.set_meta(key, value)
    return _seed_result(seed, path, config.names, result, time.perf_counter() - started)


def _run_seed_in_worker(problem, config, seed, path, meta):
    # Top level so that it pickles to the seed-parallel pool; no bars in workers (the parent
    # process follows every study file). One solver thread per worker: the workers already
    # fill the cores.
    try:
        import numba

        numba.set_num_threads(1)
    except ImportError:
        pass
    return run_seed(problem, config, seed, path, workers=1, quiet=True, meta=meta)


def run_seeds(problem: CalibrationProblem, config: WorkflowConfig, study: str | Path | None = None, *,
              quiet: bool = False, meta: dict | None = None) -> list[SeedResult]:
    """Run every seed of the configuration; returns their results in seed order.

    With several seeds and several workers, seeds run in parallel processes (each evaluates its
    own batches in-process with the batched solver); otherwise seeds run one after another and
    each spreads its batches over the workers. On Ctrl-C every study keeps what was committed;
    running the same command again resumes.
    """
    paths = study_paths(config, study)
    for note in feasible_bounds(config, problem)[1]:
        progress.log(note, quiet=quiet)
    for path in paths:
        if path.is_file():
            progress.log(f"resuming study {path}", quiet=quiet)
    seeds = config.seeds
    workers = config.workers
    if len(seeds) == 1 or workers == 1 or config.dask_address:
        return [run_seed(problem, config, seed, path, workers=workers, quiet=quiet, label=f"seed {seed}", meta=meta)
                for seed, path in zip(seeds, paths)]
    pool = ProcessPoolExecutor(max_workers=min(workers, len(seeds)))
    bars = [progress.StudyProgress(path, config.budget, f"seed {seed}", quiet=quiet, position=i)
            for i, (seed, path) in enumerate(zip(seeds, paths))]
    results: dict[int, SeedResult] = {}
    try:
        for bar in bars:
            bar.__enter__()
        futures = {pool.submit(_run_seed_in_worker, problem, config, seed, path, meta): seed
                   for seed, path in zip(seeds, paths)}
        pending = set(futures)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                results[futures[future]] = future.result()
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        _stop_workers(pool)
        raise
    finally:
        for bar in bars:
            bar.__exit__(None, None, None)
    pool.shutdown()
    return [results[seed] for seed in seeds]


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """Terminate the seed workers after Ctrl-C (the terminal delivers SIGINT to them too; this
    makes sure none keeps running). Their studies keep every committed evaluation."""
    processes = getattr(pool, "_processes", None) or {}
    for process in list(processes.values()):
        if process.is_alive():
            process.terminate()


# --------------------------------------------------------------------------------- workflow
def evaluate_point(problem: CalibrationProblem, values: dict[str, float]) -> dict:
    """Objective and components at one point given by paper names (every calibrated name).

    Returns ``{"objective": float or None, "components": {...}, "error": str or None,
    "wall_time_s": float}``.
    """
    from gego.workflows.problem import EvaluationFailed

    missing = [n for n in problem.names if n not in values]
    if missing:
        raise ConfigError(f"missing value for parameter '{missing[0]}' (give every calibrated parameter)")
    x = [values[n] for n in problem.names]
    started = time.perf_counter()
    try:
        record = problem(x)
    except EvaluationFailed as exc:
        return {"objective": None, "components": {}, "error": str(exc), "wall_time_s": time.perf_counter() - started}
    components = {k: v for k, v in record["components"].items() if k != DELTA_KEY}
    return {"objective": delta_of(record["objective"], record["components"]), "components": components,
            "error": None, "wall_time_s": time.perf_counter() - started}


def calibrate(config: WorkflowConfig, study: str | Path | None = None, *, quiet: bool = False,
              compare_paper: bool = True) -> WorkflowResult:
    """Calibrate the model of `config` against its reference (paper Sec 5.4).

    Parameters
    ----------
    config : the effective configuration (:func:`gego.workflows.config.load_config`).
    study : study file (one seed) or the base name of the per-seed files.
    quiet : no progress bars or status lines.
    compare_paper : also evaluate the paper's optimum X+ with the same objective and solver
        (when the calibrated parameters are the paper's four), reported as ``paper_optimum``.
    """
    started = time.perf_counter()
    reference = load_workflow_reference(config)
    problem = build_problem(config, reference)
    progress.log(f"calibrating {', '.join(config.names)} against {config.reference} "
                 f"({problem.settings.n_y} x {problem.settings.nx} grid, budget {config.budget} runs per seed, "
                 f"seeds {config.seeds})", quiet=quiet)
    seeds = run_seeds(problem, config, study, quiet=quiet)
    extra: dict[str, Any] = {}
    if compare_paper and set(config.names) <= set(PAPER_OPTIMUM_VALUES):
        with progress.step("objective at the paper's X+", quiet=quiet):
            at_paper = evaluate_point(problem, PAPER_OPTIMUM_VALUES)
        extra["paper_optimum"] = {"params": {n: PAPER_OPTIMUM_VALUES[n] for n in config.names}, **at_paper}
    return WorkflowResult(config=config, seeds=seeds, wall_time_s=time.perf_counter() - started, extra=extra)


def require_runs(result: WorkflowResult) -> None:
    """Raise if no seed completed a single run (nothing to report)."""
    if all(not math.isfinite(s.objective) for s in result.seeds):
        raise GegoError("no continuum run completed: check the bounds and the fixed values "
                        "(e.g. E0 must lie below the initial energy field)")
