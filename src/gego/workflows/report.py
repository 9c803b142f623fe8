"""`gego report`: figures (PNG), the numbers behind them (CSV) and a one-page HTML summary.

From one or more study files (the seeds of one calibrate or validate run):

* ``objective.png`` -- objective of every run against the run count, best-so-far per seed;
* ``convergence.png`` -- best-so-far parameters per seed against the run count (Figs 8, 12),
  dashed at the targets for a validation;
* ``temperature_fields.png`` -- reference vs optimised effective temperature T at
  gamma = 9, 15, 20, 35, 50 % (Figs 5, 9); ``strain_fields.png`` -- strain 2 E_xy at 18, 25, 35,
  45, 50 % (Figs 6, 10); ``stress_strain.png`` (Figs 7, 11) -- from one re-run at the best point;
* ``identifiability.png`` -- the near-optimal set of the GP surrogate (pairs), with Sobol
  indices of the surrogate mean: which parameters the objective determines and which trade off;
* ``fig3.png`` -- the paper's Fig 3 (Grassmann vs Euclidean distance of shear bands);
* ``index.html`` -- best parameters, their spread over seeds, the run costs, the figures.

The MD reference has no effective temperature of its own: its T field is the one the
coarse-graining hypothesis assigns, T = (e_z / k_B) beta (E(gamma) - E0) (Eq 38) with the
optimum's beta and E0 applied to the coarse-grained energy at each frame.
"""

from __future__ import annotations

import csv
import html
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gego.errors import GegoError
from gego.workflows import progress
from gego.workflows.calibrate import json_safe
from gego.workflows.config import PARAMETERS, WorkflowConfig
from gego.workflows.problem import DELTA_KEY

__all__ = [
    "StudyRun",
    "TEMPERATURE_STRAINS",
    "STRAIN_STRAINS",
    "identifiability",
    "load_runs",
    "make_report",
    "sobol_indices",
]

#: Strains of the effective-temperature panels (Figs 5, 9) and of the strain panels (Figs 6, 10).
TEMPERATURE_STRAINS = (0.09, 0.15, 0.20, 0.35, 0.50)
STRAIN_STRAINS = (0.18, 0.25, 0.35, 0.45, 0.50)


@dataclass(frozen=True)
class StudyRun:
    """One study file as the report reads it.

    Attributes
    ----------
    path : the study file.
    data : :class:`gego.optimize.StudyData` (arrays of every evaluation).
    config : the workflow configuration stored by calibrate/validate (None for a bare study).
    seed : the study's seed.
    reference_file : the synthetic reference of a validation ("" otherwise).
    """

    path: Path
    data: object
    config: WorkflowConfig | None
    seed: int
    reference_file: str

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.data.names)

    @property
    def delta(self) -> np.ndarray:
        """The Eq 41 objective of every evaluation (NaN where it did not complete); the stored
        objective is its logarithm when the study used a log transform."""
        return np.asarray(self.data.components.get(DELTA_KEY, self.data.objective), dtype=float)

    def best_index(self) -> int | None:
        obj = self.data.objective
        return None if np.all(np.isnan(obj)) else int(np.nanargmin(obj))

    def best(self) -> dict[str, float]:
        i = self.best_index()
        return {n: (math.nan if i is None else float(self.data.x[i, k])) for k, n in enumerate(self.names)}

    def best_objective(self) -> float:
        i = self.best_index()
        return math.inf if i is None else float(self.delta[i])

    def costs(self) -> dict:
        """Runs, failures and times (s) of this study."""
        from gego.workflows.calibrate import compute_time_s

        records = [r for r in self.data.records if r.status in ("complete", "failed")]
        started = [r.started for r in records if r.started]
        finished = [r.finished for r in records if r.finished]
        return {"n_runs": len(records), "n_failed": sum(r.status == "failed" for r in records),
                "compute_time_s": compute_time_s(records),
                "span_s": float(max(finished) - min(started)) if started and finished else 0.0}


def load_runs(paths) -> list[StudyRun]:
    """Read study files (a folder stands for every ``*.db`` / ``*.sqlite`` in it), seed order.

    Raises
    ------
    GegoError
        A path that does not exist or is not a study, or studies over different parameters.
    """
    from gego.optimize import load_study

    files: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            found = sorted([*p.glob("*.db"), *p.glob("*.sqlite")])
            if not found:
                raise GegoError(f"{p}: folder holds no study files (*.db, *.sqlite)")
            files.extend(found)
        else:
            files.append(p)
    runs = []
    for f in files:
        data = load_study(f)
        stored = data.config.get("workflow_config")
        config = (WorkflowConfig.from_dict(stored, source=f"{f} (stored configuration)", names=data.names)
                  if stored else None)
        seed = int(stored.get("seed", data.config.get("settings", {}).get("seed", 0))) if stored else \
            int(data.config.get("settings", {}).get("seed", 0))
        runs.append(StudyRun(f, data, config, seed, str(data.config.get("reference_file", ""))))
    if not runs:
        raise GegoError("no study files given")
    names = runs[0].names
    for run in runs[1:]:
        if run.names != names:
            raise GegoError(f"{run.path}: parameters {list(run.names)} differ from {runs[0].path}'s {list(names)}")
    return sorted(runs, key=lambda r: (r.seed, str(r.path)))


# --------------------------------------------------------------------------------- identifiability
def sobol_indices(predict, dim: int, *, n_base: int = 4096, seed: int = 0) -> dict[str, np.ndarray]:
    """First-order and total Sobol indices of ``predict`` over the unit cube.

    Saltelli's design with the Saltelli (2010) first-order and Jansen total-effect estimators:
    with base matrices A, B and A_B^(i) (A with column i from B),
    ``S_i = mean(f(B) (f(A_B^i) - f(A))) / V`` and ``ST_i = mean((f(A) - f(A_B^i))^2) / (2 V)``.

    Parameters
    ----------
    predict : callable mapping (n, dim) unit-cube points to (n,) values.
    dim : number of inputs.
    n_base : rows of A and B (the cost is (dim + 2) n_base calls).
    seed : seed of the scrambled Sobol base sample.
    """
    from scipy.stats import qmc

    base = qmc.Sobol(d=2 * dim, scramble=True, rng=np.random.default_rng(seed)).random(n_base)
    A, B = base[:, :dim], base[:, dim:]
    fA, fB = predict(A), predict(B)
    variance = np.var(np.concatenate([fA, fB]))
    first, total = np.zeros(dim), np.zeros(dim)
    if variance <= 0:
        return {"first": first, "total": total}
    for i in range(dim):
        ABi = A.copy()
        ABi[:, i] = B[:, i]
        fABi = predict(ABi)
        first[i] = np.mean(fB * (fABi - fA)) / variance
        total[i] = 0.5 * np.mean((fA - fABi) ** 2) / variance
    return {"first": first, "total": total}


def identifiability(x, y, bounds, names, *, kernel: str = "matern52", seed: int = 0, n_candidates: int = 16384,
                    near_fraction: float = 0.05, min_fraction: float = 0.01, inverse=None) -> dict:
    """Which parameters the objective determines, and which trade off, from a GP surrogate.

    A GP (the loop's surrogate) is fitted to every completed run. Its mean is then searched on
    ``n_candidates`` scrambled-Sobol points of the box: the *near-optimal set* is the points whose
    predicted objective lies within ``near_fraction`` of the objective's spread above the best,
    ``mu <= f_best + near_fraction (median(y) - f_best)``. A parameter whose near-optimal values
    span a small part of its box is well determined; two parameters whose near-optimal values are
    strongly correlated trade off (a ridge of near-equal objective). Sobol indices of the GP mean
    say how much of the objective's variation over the box each parameter drives.

    Returns
    -------
    dict with ``names``, ``n_train``, ``threshold``, ``near_optimal`` (the set, (m, d), in user
    units), ``spread`` ({name: {"p05", "p50", "p95", "width_fraction"}}), ``correlation``
    ((d, d) matrix), ``trade_offs`` (pairs with |r| >= 0.5), ``sobol_first``, ``sobol_total``,
    ``length_scales`` (GP, unit-cube units) and ``determined`` ({name: bool}, width_fraction < 0.2).
    """
    from scipy.stats import qmc

    from gego.surrogate import GaussianProcess

    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    ok = np.isfinite(y)
    x, y = x[ok], y[ok]
    bounds = np.asarray(bounds, dtype=float)
    lower, width = bounds[:, 0], bounds[:, 1] - bounds[:, 0]
    if y.size < len(names) + 2:
        raise GegoError(f"identifiability: {y.size} completed runs are too few for a surrogate of {len(names)} parameters")
    unit = (x - lower) / width
    gp = GaussianProcess(kernel=kernel, seed=seed).fit(unit, y)

    def mean(points):
        return np.concatenate([gp.predict(chunk, return_std=False)[0] for chunk in np.array_split(points, max(1, len(points) // 4096))])

    candidates = qmc.Sobol(d=len(names), scramble=True, rng=np.random.default_rng(seed)).random(n_candidates)
    candidates = np.vstack([candidates, unit])  # the runs themselves are candidates too
    mu = mean(candidates)
    inverse = inverse or (lambda v: v)
    # Measured from the best *observed* objective: the surrogate mean may undershoot it.
    y_raw = inverse(y)
    f_best = float(y_raw.min())
    threshold = f_best + near_fraction * max(float(np.median(y_raw)) - f_best, 0.0)
    # At least the best 1 % of the box: with a sharp optimum the threshold alone may keep a
    # handful of points, too few for a spread or a correlation.
    threshold = max(threshold, float(np.quantile(inverse(mu), min_fraction)))
    near = candidates[inverse(mu) <= threshold]
    near_user = lower + near * width
    p05, p50, p95 = np.percentile(near_user, [5, 50, 95], axis=0)
    correlation = np.corrcoef(near, rowvar=False) if len(near) > 2 else np.eye(len(names))
    correlation = np.nan_to_num(np.atleast_2d(correlation))
    spread = {n: {"p05": float(p05[i]), "p50": float(p50[i]), "p95": float(p95[i]),
                  "width_fraction": float((p95[i] - p05[i]) / width[i])} for i, n in enumerate(names)}
    trade_offs = [{"pair": [names[i], names[j]], "correlation": float(correlation[i, j])}
                  for i in range(len(names)) for j in range(i + 1, len(names)) if abs(correlation[i, j]) >= 0.5]
    sobol = sobol_indices(mean, len(names), seed=seed)
    return {
        "names": list(names),
        "n_train": int(y.size),
        "n_candidates": int(n_candidates),
        "f_best": f_best,
        "f_min_surrogate": float(inverse(mu.min())),
        "threshold": threshold,
        "near_optimal": near_user,
        "spread": spread,
        "correlation": correlation,
        "trade_offs": trade_offs,
        "sobol_first": {n: float(v) for n, v in zip(names, sobol["first"])},
        "sobol_total": {n: float(v) for n, v in zip(names, sobol["total"])},
        "length_scales": {n: float(v) for n, v in zip(names, gp.hyperparameters["length_scales"])},
        "determined": {n: spread[n]["width_fraction"] < 0.2 for n in names},
    }


# --------------------------------------------------------------------------------- figures
def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _write_csv(path: Path, header: list[str], rows) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def plot_objective(runs: list[StudyRun], out: Path) -> list[Path]:
    """Objective of every run and best-so-far against the run count, per seed."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    rows = []
    component_keys = sorted({k for r in runs for k in r.data.components} - {DELTA_KEY})
    for run in runs:
        d = run.data
        delta = run.delta
        count = np.arange(1, delta.size + 1)
        ax.plot(count, delta, ".", ms=3, alpha=0.35)
        best = np.fmin.accumulate(delta) if delta.size else delta
        ax.plot(count, best, "-", lw=1.5, label=f"seed {run.seed}", color=ax.lines[-1].get_color())
        for i in range(delta.size):
            rows.append([run.seed, i + 1, int(d.iteration[i]), d.status[i], *d.x[i], _num(delta[i]),
                         *[_num(d.components[k][i]) if k in d.components else "" for k in component_keys],
                         _num(best[i])])
    ax.set_xlabel("continuum runs")
    ax.set_ylabel("objective (Eq 41)")
    finite = np.concatenate([r.delta[np.isfinite(r.delta)] for r in runs])
    if finite.size and finite.min() > 0 and finite.max() / finite.min() > 20:
        ax.set_yscale("log")
    ax.set_title("objective per run (dots) and best so far (lines)")
    if len(runs) <= 10:
        ax.legend(fontsize=7)
    fig.tight_layout()
    png = out / "objective.png"
    fig.savefig(png, dpi=130)
    plt.close(fig)
    header = ["seed", "run", "iteration", "status", *runs[0].names, "objective", *component_keys, "best_so_far"]
    return [png, _write_csv(out / "objective.csv", header, rows)]


def plot_convergence(runs: list[StudyRun], out: Path, target: dict | None) -> list[Path]:
    """Best-so-far parameters per seed against the run count (the paper's Figs 8 and 12)."""
    plt = _plt()
    names = runs[0].names
    fig, axes = plt.subplots(len(names), 1, figsize=(6.5, 1.9 * len(names) + 0.6), sharex=True, squeeze=False)
    rows = []
    for run in runs:
        d = run.data
        obj = np.where(np.isnan(d.objective), np.inf, d.objective)
        best_at = np.zeros(obj.size, dtype=int)
        best_i = 0
        for i in range(obj.size):
            if obj[i] < obj[best_i]:
                best_i = i
            best_at[i] = best_i
        started = np.isfinite(np.minimum.accumulate(obj))
        trace = np.where(started[:, None], d.x[best_at], np.nan)
        count = np.arange(1, obj.size + 1)
        for k, name in enumerate(names):
            axes[k, 0].plot(count, trace[:, k], lw=1.2, drawstyle="steps-post", label=f"seed {run.seed}")
        rows.extend([run.seed, int(c), *t] for c, t in zip(count, trace))
    for k, name in enumerate(names):
        ax = axes[k, 0]
        unit = PARAMETERS[name].unit if name in PARAMETERS else ""
        ax.set_ylabel(f"{name}" + ("" if unit in ("", "1") else f" ({unit})"))
        if target and name in target:
            ax.axhline(target[name], ls="--", color="k", lw=1, label="target")
    axes[-1, 0].set_xlabel("continuum runs")
    axes[0, 0].set_title("best-so-far parameters per seed" + (" (dashed: target)" if target else ""))
    if len(runs) <= 10:
        axes[0, 0].legend(fontsize=6, ncol=4)
    fig.tight_layout()
    png = out / "convergence.png"
    fig.savefig(png, dpi=130)
    plt.close(fig)
    return [png, _write_csv(out / "convergence.csv", ["seed", "run", *names], rows)]


def _frame_at(gamma: np.ndarray, strain: float) -> int:
    return int(np.argmin(np.abs(np.asarray(gamma) - strain)))


def plot_field_pairs(reference_fields, reference_gamma, model_fields, model_gamma, strains, *, title: str,
                     label: str, cmap: str, path: Path, csv_path: Path) -> list[Path]:
    """Reference (left) and optimised model (right) fields at `strains`, one colour scale per row."""
    plt = _plt()
    fig, axes = plt.subplots(len(strains), 2, figsize=(5.4, 2.4 * len(strains)), squeeze=False)
    rows = []
    for r, strain in enumerate(strains):
        ref = np.asarray(reference_fields[_frame_at(reference_gamma, strain)])
        mod = np.asarray(model_fields[_frame_at(model_gamma, strain)])
        lo = float(np.nanmin([ref.min(), mod.min()]))
        hi = float(np.nanmax([ref.max(), mod.max()]))
        for c, (field, name) in enumerate(((ref, "reference"), (mod, "optimised"))):
            ax = axes[r, c]
            im = ax.imshow(field, origin="lower", cmap=cmap, vmin=lo, vmax=hi, aspect="equal")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(name, fontsize=9)
            if c == 0:
                ax.set_ylabel(f"gamma = {strain:.0%}", fontsize=8)
            for (iy, ix), v in np.ndenumerate(field):
                rows.append([name, strain, iy, ix, _num(v)])
        fig.colorbar(im, ax=axes[r, :].tolist(), shrink=0.8, label=label)
    fig.suptitle(title, fontsize=10)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return [path, _write_csv(csv_path, ["source", "gamma", "y", "x", label], rows)]


def plot_stress_strain(reference, result, path: Path, csv_path: Path, paper=None) -> list[Path]:
    """Mean shear stress against strain: reference and optimised model (Figs 7, 11)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    gamma_ref = np.asarray(reference["gamma"])
    tau_ref = np.asarray(reference["stress_xy_gpa"])
    if "stress_curve_xy_gpa" in reference:
        ax.plot(np.asarray(reference["stress_curve_gamma"]), np.asarray(reference["stress_curve_xy_gpa"]), color="0.6",
                lw=0.8, label="reference (every step)")
    ax.plot(gamma_ref, tau_ref, "k.", ms=3, label="reference (frames)")
    tau_model = np.interp(gamma_ref, result.gamma, result.stress_xy_gpa)
    ax.plot(gamma_ref, tau_model, "C3-", lw=1.6, label="optimised STZ")
    columns = [gamma_ref, tau_ref, tau_model]
    header = ["gamma", "reference_stress_gpa", "optimised_stress_gpa"]
    if paper is not None and paper.ok:
        tau_paper = np.interp(gamma_ref, paper.gamma, paper.stress_xy_gpa)
        ax.plot(gamma_ref, tau_paper, "C0--", lw=1.2, label="paper's X+")
        columns.append(tau_paper)
        header.append("paper_optimum_stress_gpa")
    ax.set_xlabel("shear strain gamma")
    ax.set_ylabel("mean shear stress (GPa)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return [path, _write_csv(csv_path, header, np.column_stack(columns).tolist())]


def plot_identifiability(ident: dict, bounds, path: Path, csv_path: Path) -> list[Path]:
    """Pairs of the near-optimal set (lower triangle), histograms (diagonal), Sobol indices (csv)."""
    plt = _plt()
    names = ident["names"]
    d = len(names)
    near = ident["near_optimal"]
    fig, axes = plt.subplots(d, d, figsize=(2.0 * d + 0.5, 2.0 * d + 0.5), squeeze=False)
    for i in range(d):
        for j in range(d):
            ax = axes[i, j]
            if j > i:
                ax.axis("off")
                continue
            if i == j:
                ax.hist(near[:, i], bins=30, range=tuple(bounds[i]), color="C0")
                s = ident["spread"][names[i]]
                ax.set_title(f"{names[i]}: {100 * s['width_fraction']:.0f}% of box\nS_T={ident['sobol_total'][names[i]]:.2f}",
                             fontsize=7)
            else:
                ax.plot(near[:, j], near[:, i], ".", ms=1, alpha=0.3)
                ax.set_xlim(bounds[j])
                ax.set_ylim(bounds[i])
                ax.text(0.03, 0.9, f"r={ident['correlation'][i, j]:.2f}", transform=ax.transAxes, fontsize=7)
            if i == d - 1:
                ax.set_xlabel(names[j], fontsize=8)
            if j == 0 and i > 0:
                ax.set_ylabel(names[i], fontsize=8)
            ax.tick_params(labelsize=6)
    fig.suptitle(f"near-optimal set of the GP surrogate ({len(near)} points, objective <= {ident['threshold']:.4g})",
                 fontsize=9)
    fig.subplots_adjust(left=0.1, right=0.97, bottom=0.08, top=0.9, wspace=0.35, hspace=0.45)  # tight_layout is slow here
    fig.savefig(path, dpi=120)
    plt.close(fig)
    rows = [[n, ident["spread"][n]["p05"], ident["spread"][n]["p50"], ident["spread"][n]["p95"],
             ident["spread"][n]["width_fraction"], ident["sobol_first"][n], ident["sobol_total"][n],
             ident["length_scales"][n], ident["determined"][n]] for n in names]
    return [path, _write_csv(csv_path, ["parameter", "near_optimal_p05", "near_optimal_p50", "near_optimal_p95",
                                        "width_fraction_of_box", "sobol_first", "sobol_total",
                                        "gp_length_scale_unit_box", "well_determined"], rows)]


def _num(value) -> str:
    value = float(value)
    return "" if not math.isfinite(value) else repr(value)


# --------------------------------------------------------------------------------- report
def _reference_for(run: StudyRun):
    """(reference dataset, MD dataset with the energy fields) of a study."""
    from gego.datasets import load_reference
    from gego.workflows.problem import load_workflow_reference

    md = load_workflow_reference(run.config)
    if run.config.workflow == "validate":
        if run.reference_file and Path(run.reference_file).is_file():
            return load_reference(run.reference_file), md
        from gego.workflows.problem import make_validation_reference

        return make_validation_reference(run.config, md), md  # deterministic: rebuild it
    return md, md


def make_report(paths, out: str | Path, *, quiet: bool = False, simulate: bool = True, seed: int = 0) -> dict:
    """Write the report of the studies at `paths` into the folder `out`.

    Parameters
    ----------
    paths : study files (the seeds of one run) or folders of them.
    out : output folder (created).
    quiet : no progress output.
    simulate : re-run the model at the best point (and at the paper's X+ for a calibration) for
        the field and stress figures; False draws only what the studies hold.
    seed : seed of the surrogate analysis.

    Returns
    -------
    dict
        The summary shown in the HTML page (also written as ``summary.json``), with ``files``.
    """
    from gego.workflows.problem import build_problem

    started = time.perf_counter()
    runs = load_runs(paths)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    names = runs[0].names
    config = next((r.config for r in runs if r.config is not None), None)
    target = dict(config.target) if config is not None and config.workflow == "validate" else None
    files: list[Path] = []
    best_run = min(runs, key=lambda r: (r.best_objective(), r.seed))
    summary: dict = {
        "workflow": config.workflow if config else "study",
        "studies": [str(r.path) for r in runs],
        "names": list(names),
        "units": {n: PARAMETERS[n].unit if n in PARAMETERS else "" for n in names},
        "best": best_run.best(),
        "best_seed": best_run.seed,
        "objective": _finite(best_run.best_objective()),
        "components": _components_of(best_run),
        "per_seed": [{"seed": r.seed, "study": str(r.path), "best": r.best(), "objective": _finite(r.best_objective()),
                      **r.costs()} for r in runs],
    }
    summary["spread"] = _spread(runs, names)
    summary["costs"] = {key: sum(s[key] for s in summary["per_seed"]) for key in ("n_runs", "n_failed", "compute_time_s")}
    if target:
        from gego.workflows.validate import recovery_errors

        median = {n: summary["spread"][n]["median"] for n in names if n in summary["spread"]}
        summary["target"] = target
        summary["errors"] = recovery_errors(median, {n: target[n] for n in names})

    steps = 4 + (2 if simulate and config is not None else 0)
    with progress.step("report", quiet=quiet, total=steps) as advance:
        files += plot_objective(runs, out)
        advance()
        files += plot_convergence(runs, out, target)
        advance()
        x_all = np.vstack([r.data.x for r in runs])
        y_all = np.concatenate([r.data.objective for r in runs])
        bounds = runs[0].data.bounds
        try:
            floor = config.log_floor if config else 0.0
            power = config.objective_power if config else 1.0
            inverse = ((lambda v: 10.0 ** np.asarray(v) - floor) if floor > 0
                       else (lambda v: np.maximum(np.asarray(v), 0.0) ** (1.0 / power)) if power != 1.0 else None)
            ident = identifiability(x_all, y_all, bounds, names, kernel=config.kernel if config else "matern52",
                                    seed=seed, inverse=inverse)
        except GegoError as exc:
            summary["identifiability"] = {"error": str(exc)}
        else:
            files += plot_identifiability(ident, bounds, out / "identifiability.png", out / "identifiability.csv")
            summary["identifiability"] = {k: v for k, v in ident.items() if k not in ("near_optimal", "correlation")}
            summary["identifiability"]["correlation"] = np.asarray(ident["correlation"]).tolist()
            summary["identifiability"]["n_near_optimal"] = int(len(ident["near_optimal"]))
        advance()
        files += _fig3(out)
        advance()
        if simulate and config is not None and math.isfinite(best_run.best_objective()):
            reference, md = _reference_for(best_run)
            problem = build_problem(best_run.config, reference, energy_source=md)
            x_best = [summary["best"][n] for n in names]
            reference = reference_at_point(problem, reference, x_best)
            result = problem.simulate(x_best)
            paper = None
            if config.workflow == "calibrate" and set(names) <= {"c0", "s_y", "beta", "E0"}:
                from gego.workflows.calibrate import PAPER_OPTIMUM_VALUES, evaluate_point

                paper_point = {n: PAPER_OPTIMUM_VALUES[n] for n in names}
                paper = problem.simulate([paper_point[n] for n in names])
                summary["paper_optimum"] = {"params": paper_point, **evaluate_point(problem, paper_point)}
            advance()
            files += _field_figures(problem, reference, result, summary["best"], out)
            files += plot_stress_strain(reference, result, out / "stress_strain.png", out / "stress_strain.csv", paper)
            advance()
    summary["report_time_s"] = time.perf_counter() - started
    summary["config"] = config.to_dict() if config else None
    summary["files"] = [str(f) for f in files]
    (out / "summary.json").write_text(json.dumps(json_safe(summary), indent=1))
    index = out / "index.html"
    index.write_text(render_html(summary, [f.name for f in files if f.suffix == ".png"]))
    summary["files"] += [str(out / "summary.json"), str(index)]
    return summary


def _fig3(out: Path) -> list[Path]:
    from gego.illustrations import fig3_distances, fig3_fields, plot_fig3

    fields = fig3_fields()
    png = plot_fig3(out / "fig3.png", fields)
    d = fig3_distances(fields)
    rows = [[kind, d[kind]["shifted"], d[kind]["homogeneous"]] for kind in ("grassmann", "euclidean")]
    return [Path(png), _write_csv(out / "fig3.csv", ["distance", "band_vs_shifted_band", "band_vs_homogeneous"], rows)]


def reference_at_point(problem, reference, x):
    """The reference as the objective saw it at `x`: re-coarse-grained at the point's c (Eq 37)
    when c is calibrated or fixed, else `reference` itself."""
    if problem.coarse_graining is None:
        return reference
    return problem.coarse_graining.reference_at(float(problem.values(x)["c"]))


def _field_figures(problem, reference, result, best: dict, out: Path) -> list[Path]:
    from gego.workflows.problem import reference_on_grid

    settings = problem.settings
    ref = reference_on_grid(reference, settings.n_y, settings.nx)
    files = plot_field_pairs(ref["strain_xy_eng"].values, ref["gamma"].values, result.strain_xy_eng, result.gamma,
                             STRAIN_STRAINS, title="shear strain 2 E_xy: reference vs optimised (Figs 6, 10)",
                             label="2 E_xy", cmap="viridis", path=out / "strain_fields.png",
                             csv_path=out / "strain_fields.csv")
    ez_over_kb = result.params.ez_over_kb_k
    if "temperature_k" in ref:
        ref_t = ref["temperature_k"].values
        title = "effective temperature T (K): reference vs optimised (Figs 5, 9)"
    elif "energy" in ref:
        # Eq 38 applied to every MD energy frame with the optimum's beta and E0.
        values = problem.values([best[n] for n in problem.names])
        ref_t = ez_over_kb * values["beta"] * (ref["energy"].values - values["E0"])
        title = "effective temperature T (K): MD energy via Eq 38 vs optimised (Figs 5, 9)"
    else:
        return files
    files += plot_field_pairs(ref_t, ref["gamma"].values, result.temperature_k, result.gamma, TEMPERATURE_STRAINS,
                              title=title, label="T (K)", cmap="inferno", path=out / "temperature_fields.png",
                              csv_path=out / "temperature_fields.csv")
    return files


def _components_of(run: StudyRun) -> dict:
    i = run.best_index()
    if i is None:
        return {}
    return {k: float(v[i]) for k, v in run.data.components.items() if np.isfinite(v[i]) and k != DELTA_KEY}


def _spread(runs: list[StudyRun], names) -> dict:
    out = {}
    for k, n in enumerate(names):
        values = np.array([r.best()[n] for r in runs])
        values = values[np.isfinite(values)]
        if values.size:
            out[n] = {"median": float(np.median(values)), "min": float(values.min()), "max": float(values.max()),
                      "std": float(values.std(ddof=1)) if values.size > 1 else 0.0}
    return out


def _finite(value):
    return float(value) if value is not None and math.isfinite(value) else None


def render_html(summary: dict, images: list[str]) -> str:
    """The one-page HTML summary (no external assets besides the PNGs next to it)."""
    e = html.escape
    names = summary["names"]

    def fmt(v, digits=6):
        return "&ndash;" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.{digits}g}"

    rows = []
    for n in names:
        s = summary["spread"].get(n, {})
        cells = [e(n), e(summary["units"].get(n, "")), fmt(summary["best"].get(n)), fmt(s.get("median")),
                 f"{fmt(s.get('min'))} &ndash; {fmt(s.get('max'))}", fmt(s.get("std"), 3)]
        if "target" in summary:
            err = summary["errors"][n]
            shown = f"{100 * err['rel_error']:.2f} %" if err["kind"] == "rel" else f"{err['abs_error']:.4f}"
            cells += [fmt(err["target"]), f"{shown} {'&#10003;' if err['ok'] else '&#10007;'}"]
        ident = summary.get("identifiability", {})
        if "spread" in ident:
            cells += [f"{100 * ident['spread'][n]['width_fraction']:.0f} %", fmt(ident["sobol_total"][n], 2)]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    head = ["parameter", "unit", "best", "median over seeds", "range over seeds", "std"]
    if "target" in summary:
        head += ["target", "median error"]
    if "spread" in summary.get("identifiability", {}):
        head += ["near-optimal width (of box)", "Sobol S_T"]
    table = "<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr>" + "".join(rows) + "</table>"
    comps = ", ".join(f"{e(k)} = {fmt(v, 4)}" for k, v in summary.get("components", {}).items())
    lines = [f"<p><b>best objective</b> {fmt(summary.get('objective'))} (seed {summary['best_seed']}; {comps})</p>"]
    paper = summary.get("paper_optimum")
    if paper:
        pcomps = ", ".join(f"{e(k)} = {fmt(v, 4)}" for k, v in (paper.get("components") or {}).items())
        lines.append(f"<p><b>paper's X+</b> {e(json.dumps(paper['params']))}: objective {fmt(paper.get('objective'))} "
                     f"({pcomps}) with the same objective and solver</p>")
    ident = summary.get("identifiability", {})
    if "spread" in ident:
        determined = [n for n, ok in ident["determined"].items() if ok]
        loose = [n for n, ok in ident["determined"].items() if not ok]
        trade = "; ".join(f"{a}&ndash;{b} (r = {c['correlation']:.2f})" for c in ident["trade_offs"] for a, b in [c["pair"]])
        lines.append(
            f"<p><b>identifiability</b> (GP surrogate on {ident['n_train']} runs; near-optimal set: "
            f"{ident['n_near_optimal']} of {ident['n_candidates']} box points with predicted objective &le; {fmt(ident['threshold'], 4)}): "
            f"well determined: {e(', '.join(determined)) or 'none'}; loosely determined: {e(', '.join(loose)) or 'none'}; "
            f"trade-offs: {trade or 'none found (|r| < 0.5)'}.</p>")
    elif "error" in ident:
        lines.append(f"<p><b>identifiability</b>: {e(ident['error'])}</p>")
    costs = summary["costs"]
    cost_rows = "".join(
        f"<tr><td>{s['seed']}</td><td>{e(Path(s['study']).name)}</td><td>{fmt(s['objective'])}</td><td>{s['n_runs']}</td>"
        f"<td>{s['n_failed']}</td><td>{s['compute_time_s']:.0f}</td><td>{s['span_s']:.0f}</td></tr>"
        for s in summary["per_seed"])
    cost_table = ("<table><tr><th>seed</th><th>study</th><th>best objective</th><th>runs</th><th>failed</th>"
                  "<th>solver time (s)</th><th>wall span (s)</th></tr>" + cost_rows + "</table>")
    figures = "".join(f'<figure><img src="{e(img)}" alt="{e(img)}"><figcaption>{e(img)}</figcaption></figure>'
                      for img in images)
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>gego {e(summary['workflow'])} report</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:1em auto;}} table{{border-collapse:collapse;margin:0.5em 0;}}
td,th{{border:1px solid #bbb;padding:2px 8px;font-size:90%;}} figure{{display:inline-block;margin:4px;vertical-align:top;}}
img{{max-width:520px;}} figcaption{{font-size:80%;color:#555;}}</style></head><body>
<h1>gego {e(summary['workflow'])}: {len(summary['per_seed'])} seed(s)</h1>
{table}
{''.join(lines)}
<p><b>cost</b>: {costs['n_runs']} continuum runs ({costs['n_failed']} failed), {costs['compute_time_s']:.0f} s of solver time.</p>
{cost_table}
{figures}
<p style="font-size:80%;color:#666">studies: {e(', '.join(summary['studies']))}</p>
</body></html>
"""
