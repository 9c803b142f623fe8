"""The calibration problem: parameter vector -> STZParams -> STZ solver -> objective.

:class:`CalibrationProblem` is what the EGO loop minimises. It is a frozen dataclass of plain
data (arrays, the solver settings, the objective), so it pickles to worker processes and Dask
workers; calling it runs one point, :meth:`CalibrationProblem.batch` runs a batch through the
batched solver (one numpy call advances every member).

What a point returns is the loop's record format ``{"objective": float, "components": {...}}``.
A point the model cannot run (e.g. E0 above the lowest initial energy, so that chi = beta (E - E0)
of Eq 38 would be non-positive somewhere) or a solver failure returns a NaN objective with the
reason, so the loop records it as failed and the surrogate leaves it out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import xarray as xr

from gego.errors import ConfigError, GegoError
from gego.workflows.config import WorkflowConfig, stz_params_from_values

__all__ = [
    "CalibrationProblem",
    "DELTA_KEY",
    "EvaluationFailed",
    "delta_of",
    "build_objective",
    "build_problem",
    "make_validation_reference",
    "load_workflow_reference",
    "reference_on_grid",
    "solver_settings",
    "energy_frames",
    "feasible_bounds",
]


def solver_settings(config: WorkflowConfig, reference: xr.Dataset | None = None):
    """The :class:`gego.stz.SolverSettings` of a configuration.

    The grid and cell default to the reference's (``n`` = its x size, the cell lengths from its
    attributes) and the frames to its strain range, so that model and reference snapshots have
    the same shape and strains (Sec 3.2); ``[solver]`` keys override.
    """
    from gego.stz import SolverSettings

    values: dict[str, Any] = {}
    if reference is not None:
        ny, nx = reference.sizes["y"], reference.sizes["x"]
        values["n"] = int(nx)
        if ny != nx:
            values["ny"] = int(ny)
        if "cell_length_x_angstrom" in reference.attrs:
            values["cell_length_angstrom"] = float(reference.attrs["cell_length_x_angstrom"])
        if "cell_length_y_angstrom" in reference.attrs:
            values["cell_height_angstrom"] = float(reference.attrs["cell_length_y_angstrom"])
        gamma = np.asarray(reference["gamma"], dtype=float)
        values["gamma_final"] = float(gamma[-1])
        values["n_frames"] = int(gamma.size - 1)
    values.update(config.solver)
    try:
        return SolverSettings(**values).validate()
    except TypeError as exc:  # an unknown key that slipped past the config check
        raise ConfigError(f"{config.source}: [solver]: {exc}") from None


def energy_frames(reference: xr.Dataset, source: str = "reference") -> tuple[np.ndarray, np.ndarray]:
    """(initial, final) coarse-grained energy fields of a reference, eV/atom.

    The initial frame gives the initial chi (Eq 38); the final one chi_inf = beta (max E_final -
    E0) when chi_inf is derived (Sec 5.2.1).
    """
    if "energy" not in reference:
        raise GegoError(f"{source}: no 'energy' (frame, y, x) variable: the STZ model needs the "
                        "coarse-grained energy field for its initial effective temperature (Eq 38)")
    energy = np.asarray(reference["energy"], dtype=float)
    return energy[0], energy[-1]


def build_objective(config: WorkflowConfig, reference: xr.Dataset):
    """The objective of Eq 41 for `reference`, with the configuration's snapshots, weights and
    singular-value cut."""
    from gego.objective import Objective

    return Objective.paper(reference, strains=config.snapshots,
                           weights=(config.strain_weight, config.stress_weight), rtol=config.rtol)


@dataclass(frozen=True)
class CalibrationProblem:
    """Objective of the calibration as a function of the calibrated parameter vector.

    Attributes
    ----------
    names : calibrated parameters (paper names), the order of ``x``.
    fixed : the other parameters {paper name: value}; ``chi_inf`` may be ``"derived"``.
    energy_initial_ev, energy_final_ev : (ny, nx) energy fields, eV/atom (Eq 38, chi_inf).
    settings : :class:`gego.stz.SolverSettings`.
    objective : :class:`gego.objective.Objective` comparing a run with the reference.
    coarse_graining : None, or a :class:`ReferenceAtLength` when the coarse-graining length c
        (Eq 37) is calibrated or fixed: then the energy fields and the objective are those of the
        reference re-coarse-grained at each point's c (the fields above are at the lowest c, for
        the feasible E0 bound).
    log_floor : if > 0, the value handed to the optimiser is ``log10(Delta + log_floor)`` of the
        Eq 41 objective Delta (stored as the component :data:`DELTA_KEY`). The objective spans
        orders of magnitude (a narrow basin next to plateaus where nothing yields and spikes of
        diverging runs); on a log scale a stationary GP models the basin instead of the spikes.
        The transform is monotone, so the best point is the same.
    objective_power : if not 1, the value handed to the optimiser is ``Delta ** objective_power``
        (Delta stored as :data:`DELTA_KEY`). Near an exact match Eq 39-41 rise linearly in every
        direction (means of distances and absolute differences: a cone), which a smooth GP fits
        badly; squared, the basin is locally quadratic. Monotone too.
    """

    names: tuple[str, ...]
    fixed: Mapping[str, Any]
    energy_initial_ev: np.ndarray = field(repr=False)
    energy_final_ev: np.ndarray = field(repr=False)
    settings: Any
    objective: Any = field(repr=False)
    log_floor: float = 0.0
    objective_power: float = 1.0
    coarse_graining: Any = None

    def values(self, x) -> dict[str, Any]:
        """All parameter values by paper name: ``x`` (by :attr:`names`) over the fixed ones."""
        x = np.asarray(x, dtype=float).reshape(-1)
        if x.size != len(self.names):
            raise ConfigError(f"expected {len(self.names)} parameter values ({', '.join(self.names)}), got {x.size}")
        return {**self.fixed, **{name: float(v) for name, v in zip(self.names, x)}}

    def params(self, x):
        """The :class:`gego.stz.STZParams` of the parameter vector ``x``."""
        return stz_params_from_values(self.values(x))

    def simulate(self, x):
        """Run the solver at ``x``; returns the :class:`gego.stz.STZResult`."""
        return self._simulate_batch([self.params(x)], self._inputs(self.values(x)))[0]

    def score(self, result, objective=None) -> dict:
        """The loop record of a solver result: ``{"objective", "components"}`` (against
        `objective`, default :attr:`objective`).

        Raises
        ------
        EvaluationFailed
            The run failed, or the objective cannot compare it (e.g. NaN stresses).
        """
        if not result.ok:
            raise EvaluationFailed(f"STZ run failed: {result.reason}")
        try:
            value = (self.objective if objective is None else objective).evaluate(result)
        except GegoError as exc:
            raise EvaluationFailed(f"objective: {exc}") from None
        components = {k: float(v) for k, v in value.components.items()}
        delta = float(value.total)
        if self.log_floor > 0:
            return {"objective": math.log10(delta + self.log_floor), "components": {DELTA_KEY: delta, **components}}
        if self.objective_power != 1.0:
            return {"objective": delta ** self.objective_power, "components": {DELTA_KEY: delta, **components}}
        return {"objective": delta, "components": components}

    def __call__(self, x) -> dict:
        """Objective at one parameter vector (the loop's ``fun``).

        A point the model cannot run raises :class:`EvaluationFailed`, which the loop records
        as a failed evaluation with the reason.
        """
        values = self.values(x)
        params = stz_params_from_values(values)
        try:
            inputs = self._inputs(values)
            result = self._simulate_batch([params], inputs)[0]
        except ConfigError as exc:
            raise EvaluationFailed(str(exc)) from None
        return self.score(result, inputs[2])

    def _inputs(self, values: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray, Any]:
        """(initial energy, final energy, objective) of a point: the fixed ones, or those of the
        reference re-coarse-grained at the point's c (Eq 36-37)."""
        if self.coarse_graining is None:
            return self.energy_initial_ev, self.energy_final_ev, self.objective
        return self.coarse_graining.inputs(float(values["c"]))

    def batch(self, X) -> list[dict]:
        """Objective at each row of ``X`` (shape (m, d)) through one batched solver call.

        A point that cannot run or be scored gets a NaN objective (the loop records it as
        failed), so one bad point does not sink the batch.
        """
        from gego.stz.solver import prepare_chi

        X = np.atleast_2d(np.asarray(X, dtype=float))
        values = [self.values(x) for x in X]
        params = [stz_params_from_values(v) for v in values]
        records: list[dict] = [_FAILED] * len(params)
        # members share the energy fields of one solver call: group the points by c (one group
        # when c is not a parameter)
        groups: dict[float, list[int]] = {}
        for i, v in enumerate(values):
            groups.setdefault(float(v.get("c", math.nan)) if self.coarse_graining is not None else 0.0, []).append(i)
        for c, members in groups.items():
            try:
                inputs = self._inputs(values[members[0]])
            except ConfigError:
                continue
            runnable = []
            for i in members:
                try:  # the solver validates the whole batch at once: screen each point first
                    prepare_chi(params[i], inputs[0], inputs[1], self.settings)
                except ConfigError:
                    continue
                runnable.append(i)
            if runnable:
                for i, result in zip(runnable, self._simulate_batch([params[i] for i in runnable], inputs)):
                    try:
                        records[i] = self.score(result, inputs[2])
                    except EvaluationFailed:
                        pass
        return records

    def _simulate_batch(self, params, inputs=None):
        from gego.stz import simulate_batch

        energy_initial, energy_final = (self.energy_initial_ev, self.energy_final_ev) if inputs is None else inputs[:2]
        return simulate_batch(params, energy_initial, energy_final_ev=energy_final, settings=self.settings)


#: Component holding the Eq 41 objective when the optimiser sees its logarithm.
DELTA_KEY = "delta_eq41"


def delta_of(objective: float, components: dict) -> float:
    """The Eq 41 objective of a stored evaluation (undoing the log transform if one was used)."""
    return float(components[DELTA_KEY]) if DELTA_KEY in components else float(objective)


class EvaluationFailed(GegoError):
    """A parameter point the model cannot run or the objective cannot score (recorded as failed)."""


_FAILED = {"objective": math.nan, "components": {}}


#: Smallest initial chi allowed at the upper E0 bound, as an energy margin: chi >= beta x 1e-4 eV.
E0_MARGIN_EV = 1e-4


def feasible_bounds(config: WorkflowConfig, problem: CalibrationProblem) -> tuple[list[tuple[float, float]], list[str]]:
    """The search box with the part where the model cannot run cut off, and notes saying so.

    Eq 38 gives chi = beta (E - E0), which must be positive in every cell: E0 must lie below the
    lowest initial energy on the solver grid. The Table 2 box reaches E0 = -3.355 eV, above the
    CuZr minimum (-3.3606 eV); points there are certain failures that would waste runs, so the
    upper E0 bound is lowered to min(E) - :data:`E0_MARGIN_EV`.

    Raises
    ------
    ConfigError
        If the whole E0 interval lies above the lowest energy.
    """
    from gego.stz.solver import resample_field

    bounds = list(config.bounds)
    notes = []
    if "E0" in config.names:
        i = config.names.index("E0")
        e_min = float(resample_field(problem.energy_initial_ev, problem.settings.n_y, problem.settings.nx).min())
        limit = e_min - E0_MARGIN_EV
        lower, upper = bounds[i]
        if lower >= limit:
            raise ConfigError(f"{config.source}: parameters.E0 = [{lower:g}, {upper:g}] eV lies above the lowest initial "
                              f"energy {e_min:.5f} eV: chi = beta (E - E0) (Eq 38) would be non-positive")
        if upper > limit:
            bounds[i] = (lower, limit)
            notes.append(f"E0 upper bound lowered from {upper:g} to {limit:.5f} eV: above the lowest initial energy "
                         f"({e_min:.5f} eV) chi = beta (E - E0) of Eq 38 would be non-positive")
    return bounds, notes


def load_workflow_reference(config: WorkflowConfig) -> xr.Dataset:
    """The reference dataset named by the configuration (bundled CuZr or a NetCDF file)."""
    from gego.datasets import load_reference

    return load_reference(config.reference_path)


def make_validation_reference(config: WorkflowConfig, md_reference: xr.Dataset) -> xr.Dataset:
    """The synthetic reference of the validation (Sec 5.3): one STZ run at the target parameters.

    The run uses the energy fields of `md_reference` (the CuZr MD data by default) for its
    initial chi and chi_inf, and the same solver settings as the calibration runs, so the targets
    are an exact zero of the objective. Returned in the reference layout (``gamma``,
    ``strain_xy_eng``, ``stress_xy_gpa``) with the run's ``chi`` and ``temperature_k`` kept for
    the figures; the energy fields stay with the MD data (pass it as ``energy_source`` to
    :func:`build_problem`).
    """
    from gego.stz import simulate

    settings = solver_settings(config, md_reference)
    energy_initial, energy_final = energy_frames(md_reference, config.reference)
    values = {**config.fixed, **config.target}
    result = simulate(stz_params_from_values(values), energy_initial, energy_final_ev=energy_final,
                      settings=settings)
    if not result.ok:
        raise GegoError(f"validation reference: the STZ run at the target parameters failed ({result.reason})")
    ds = result.to_dataset()
    ref = ds[["strain_xy_eng", "stress_xy_gpa", "stress_xy_sheared_gpa", "chi", "temperature_k"]]
    ref.attrs = {"title": "synthetic STZ reference at the validation targets (Sec 5.3)",
                 "cell_length_x_angstrom": settings.cell_length_angstrom,
                 "cell_length_y_angstrom": settings.length_y_angstrom,
                 **{f"target_{k}": float(v) for k, v in config.target.items()}}
    return ref


def reference_on_grid(reference: xr.Dataset, ny: int, nx: int) -> xr.Dataset:
    """The reference with its (frame, y, x) fields on an ``ny x nx`` grid (unchanged if it is).

    Model and reference snapshots must have the same shape (Sec 3.2). To calibrate on a coarser
    solver grid than the data (quick runs, tests), the fields are block-averaged when the grid
    sizes divide, and resampled (periodic cubic) otherwise. Per-frame curves are unchanged.
    """
    from gego.stz.solver import resample_field

    if (reference.sizes["y"], reference.sizes["x"]) == (ny, nx):
        return reference
    my, mx = reference.sizes["y"], reference.sizes["x"]
    out = reference.drop_dims(["y", "x"])
    for name, var in reference.data_vars.items():
        if var.dims != ("frame", "y", "x"):
            continue
        values = np.asarray(var, dtype=float)
        if my % ny == 0 and mx % nx == 0:
            coarse = values.reshape(values.shape[0], ny, my // ny, nx, mx // nx).mean(axis=(2, 4))
        else:
            coarse = np.stack([resample_field(frame, ny, nx) for frame in values])
        out[name] = (("frame", "y", "x"), coarse, var.attrs)
    out.attrs = {**reference.attrs, "grid": f"{ny} x {nx}", "regridded_from": f"{my} x {mx}"}
    return out


def build_problem(config: WorkflowConfig, reference: xr.Dataset, energy_source: xr.Dataset | None = None,
                  settings=None) -> CalibrationProblem:
    """The :class:`CalibrationProblem` of a configuration against `reference`.

    Parameters
    ----------
    config : the workflow configuration.
    reference : what the runs are compared with (MD data, or the synthetic validation reference).
    energy_source : where the energy fields come from (default: `reference`).
    settings : solver settings (default: :func:`solver_settings` of the energy source).
    """
    energy_source = reference if energy_source is None else energy_source
    settings = settings if settings is not None else solver_settings(config, energy_source)
    if "c" in config.names or "c" in config.fixed:
        return _problem_with_length_c(config, reference, energy_source, settings)
    energy_initial, energy_final = energy_frames(energy_source, config.reference)
    return CalibrationProblem(
        names=config.names,
        fixed=dict(config.fixed),
        energy_initial_ev=energy_initial,
        energy_final_ev=energy_final,
        settings=settings,
        objective=build_objective(config, reference_on_grid(reference, settings.n_y, settings.nx)),
        log_floor=config.log_floor,
        objective_power=config.objective_power,
    )


# --------------------------------------------------------------------------------- c (Eq 37)
@dataclass(frozen=True)
class ReferenceAtLength:
    """The reference as a function of the coarse-graining length c (Eq 36-37).

    Holds plain data (the reference without its c-dependent fields' history, the
    :class:`gego.md.recoarse.ReCoarseGraining` of its atom frames, the configuration), so it
    pickles to worker processes; the per-c inputs are cached in the process (and the
    coarse-grained fields on disk by ``ReCoarseGraining``), never pickled.
    """

    config: WorkflowConfig = field(repr=False)
    reference: xr.Dataset = field(repr=False)
    recoarse: Any
    n_y: int
    n_x: int
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def reference_at(self, c: float) -> xr.Dataset:
        """The reference dataset coarse-grained at length c (reference length unit)."""
        return self.recoarse.reference_at(self.reference, c, self.config.c_fields)

    def inputs(self, c: float) -> tuple[np.ndarray, np.ndarray, Any]:
        """(initial energy, final energy, objective) at c; ConfigError if C cannot be applied."""
        key = float(c).hex()
        if key not in self._cache:
            ref = self.reference_at(c)
            energy_initial, energy_final = energy_frames(ref, self.config.reference)
            objective = build_objective(self.config, reference_on_grid(ref, self.n_y, self.n_x))
            if len(self._cache) >= 64:
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = (energy_initial, energy_final, objective)
        return self._cache[key]

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_cache": {}}


def _problem_with_length_c(config: WorkflowConfig, reference: xr.Dataset, energy_source: xr.Dataset,
                           settings) -> CalibrationProblem:
    """The problem when c is calibrated or fixed: the reference is re-coarse-grained per point."""
    from gego.md.recoarse import ReCoarseGraining

    if energy_source is not reference:
        raise ConfigError(f"{config.source}: parameter 'c' needs the energy and strain fields from one atomistic reference")
    where = config.reference if config.reference_path is None else str(config.reference_path)
    try:
        recoarse = ReCoarseGraining.of_reference(reference, config.reference_path, config.snapshots)
    except ConfigError as exc:
        raise ConfigError(f"{config.source}: parameter 'c': {exc}") from None
    at_length = ReferenceAtLength(config=config, reference=reference, recoarse=recoarse, n_y=settings.n_y,
                                  n_x=settings.nx)
    if "c" in config.fixed:
        c_first, what = float(config.fixed["c"]), "fixed.c"
    else:
        c_first, what = config.bounds[config.names.index("c")][0], "parameters.c lower bound"
    try:  # the lowest c: its energy field has the lowest minimum, which bounds E0 (feasible_bounds)
        recoarse.fields(c_first)
    except ConfigError as exc:
        raise ConfigError(f"{config.source}: {what} = {c_first:g}: {where} cannot be coarse-grained there ({exc})") from None
    energy_initial, energy_final, objective = at_length.inputs(c_first)
    return CalibrationProblem(
        names=config.names,
        fixed={k: v for k, v in config.fixed.items()},
        energy_initial_ev=energy_initial,
        energy_final_ev=energy_final,
        settings=settings,
        objective=objective,
        log_floor=config.log_floor,
        objective_power=config.objective_power,
        coarse_graining=at_length,
    )
