"""Workflow configuration: TOML files, the paper's defaults, command-line overrides.

A configuration is one TOML file with these tables (every key optional; what is left out takes
the value of the default file shipped for the workflow, ``gego/configs/<workflow>.toml``)::

    study = "cuzr.db"            # study file (the --study option overrides it)

    [reference]
    path = "cuzr"                # "cuzr" = bundled CuZr MD data, or a NetCDF reference file

    [parameters]                 # calibrated parameters: name = [lower, upper], Table 1-2 units
    c0 = [0.05, 1.0]

    [fixed]                      # every model parameter that is not calibrated
    l_chi = 25.59
    chi_inf = "derived"          # beta (max E_final - E0), from the reference's last energy frame

    [target]                     # validate only: the parameters that make the synthetic reference

    [objective]                  # Eq 39-41
    snapshots = [0.02, 0.04, 0.06, 0.08, 0.09, 0.1, 0.2, 0.35, 0.5]
    strain_weight = 0.25
    stress_weight = 0.75

    [solver]                     # any field of gego.stz.SolverSettings (n, steps_per_frame, ...)

    [optimizer]                  # budget = total continuum runs per seed
    budget = 120; n_init = "auto"; batch_size = 2; seed = 0; repeats = 1

    [execution]
    workers = 2; dask_address = ""

Parameter names follow the paper (:data:`PARAMETERS`), in the units of Tables 1-2; this module
holds the one table that maps them onto the fields of :class:`gego.stz.STZParams`.

Errors (unknown key, bound inverted, missing file, wrong type) raise :class:`ConfigError` with one
line naming the file and the key.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

from gego.errors import ConfigError

__all__ = [
    "PARAMETERS",
    "ParameterInfo",
    "Bound",
    "WorkflowConfig",
    "WORKFLOWS",
    "default_config_text",
    "load_config",
    "parse_assignment",
    "parse_param_values",
    "stz_params_from_values",
]

WORKFLOWS = ("calibrate", "validate")


@dataclass(frozen=True)
class ParameterInfo:
    """One model parameter as the paper names it, and where it goes in :class:`STZParams`.

    Attributes
    ----------
    name : the paper's symbol (``c0``, ``s_y``, ``beta``, ``E0``, ...), the key used in TOML
        files, on the command line and in study files.
    field : the :class:`gego.stz.STZParams` attribute it sets.
    unit : unit in which users give it (Tables 1-2).
    to_field : factor from ``unit`` to the field's unit (tau0: ps -> s).
    description : what it is, with the equation it enters.
    """

    name: str
    field: str
    unit: str
    description: str
    to_field: float = 1.0


# The one table from the paper's names to the solver's fields (Tables 1-2, Sec 5.1.2-5.1.4).
PARAMETERS: dict[str, ParameterInfo] = {
    info.name: info
    for info in (
        ParameterInfo("c0", "c0", "1", "plastic work fraction, the specific-heat-like c0 of Eq 29"),
        ParameterInfo("s_y", "s_y_gpa", "GPa", "yield stress s_y, the stress unit of Eq 32"),
        ParameterInfo("beta", "beta_per_ev", "1/eV", "energy-to-chi scale beta of Eq 38"),
        ParameterInfo("E0", "e0_ev", "eV", "reference energy E0 of an ideally jammed glass, Eq 38"),
        ParameterInfo("l_chi", "l_chi_angstrom", "A", "chi diffusion length l_chi of Eq 34"),
        ParameterInfo("eps0", "eps0", "1", "STZ size epsilon_0 of Eq 32"),
        ParameterInfo("chi_inf", "chi_inf", "1", "steady-state effective temperature chi_inf of Eq 29"),
        ParameterInfo("mu", "mu_gpa", "GPa", "shear modulus mu (Table 1)"),
        ParameterInfo("K", "bulk_gpa", "GPa", "bulk modulus K (Table 1)"),
        ParameterInfo("tau0", "tau0_s", "ps", "molecular vibration time tau_0 of Eq 32", 1e-12),
        # not an STZ parameter (empty field): the reference is re-coarse-grained at c (needs a
        # reference with atom frames, `gego coarse-grain --keep-atoms`); in the reference's length unit
        ParameterInfo("c", "", "A", "coarse-graining length c of Eq 37 (reference length unit)"),
    )
}

# Keys of each table and the type they take; "parameters", "fixed", "target" and "solver" hold
# parameter names / solver settings and are checked separately.
_SCHEMA: dict[str, dict[str, tuple[type, ...]]] = {
    "": {"study": (str,)},
    "reference": {"path": (str,), "c_fields": (list,)},
    "objective": {"snapshots": (list,), "strain_weight": (int, float), "stress_weight": (int, float),
                  "rtol": (int, float)},
    "optimizer": {"budget": (int,), "n_init": (int, str), "batch_size": (int,), "seed": (int,),
                  "repeats": (int,), "design": (str,), "kernel": (str,), "log_floor": (int, float),
                  "output_clip": (int, float), "objective_power": (int, float), "trust_region": (bool,)},
    "execution": {"workers": (int,), "dask_address": (str,)},
}
_PARAMETER_TABLES = ("parameters", "fixed", "target")
_TABLES = tuple(t for t in _SCHEMA if t) + _PARAMETER_TABLES + ("solver",)
BUNDLED_REFERENCE = "cuzr"


@dataclass(frozen=True)
class Bound:
    """Search interval of one calibrated parameter, in the units of :data:`PARAMETERS`."""

    name: str
    lower: float
    upper: float


@dataclass(frozen=True)
class WorkflowConfig:
    """The effective configuration of one calibrate or validate run.

    Attributes
    ----------
    workflow : "calibrate" or "validate".
    reference : ``"cuzr"`` (bundled MD data) or the path of a NetCDF reference. For validate it
        supplies the energy fields (initial chi, Eq 38) of the synthetic reference.
    parameters : calibrated parameters in optimisation order, with their bounds.
    fixed : values of the model parameters that are not calibrated (paper names, Table 1 units);
        ``chi_inf`` may be the string ``"derived"``.
    target : validate only: the parameter values that make the synthetic reference.
    snapshots : global strains of the Grassmann term (Eq 39).
    strain_weight, stress_weight : w1 and w2 of Eq 41.
    rtol : relative singular-value cut (sigma_cut / sigma_1, Sec 2.1 Eq 6) of the strain snapshots.
    solver : keyword arguments of :class:`gego.stz.SolverSettings`.
    budget : total continuum runs per seed (initial design included).
    n_init : size of the Latin-hypercube initial design (``"auto"`` resolved to a number).
    batch_size : points proposed per EGO iteration.
    seed : first seed; repeat r uses ``seed + r``.
    repeats : independent seeds (the paper ran 9 for validation, 8 for the application).
    design, kernel : initial design ("lhs" or "sobol") and GP kernel ("matern52" or "se").
    log_floor : > 0: the surrogate models log10(objective + log_floor); 0: the objective itself.
    output_clip : quantile of the initial design's objectives at which the GP's training outputs
        are clipped (0 = no clipping; see :func:`gego.optimize.loop.clip_level`).
    objective_power : p; the surrogate models Delta**p of the Eq 41 objective Delta (1 = Delta
        itself). Eq 39-41 are means of distances and absolute differences, so near an exact match
        Delta rises linearly in every direction (a cone), which a smooth stationary GP resolves
        badly; Delta**2 is locally quadratic. Monotone: the best point is unchanged.
    trust_region : local EI steps in a trust region around the incumbent when EI stalls
        (:func:`gego.optimize.minimize`'s ``trust_region``).
    workers : parallel processes (over the batch, or over seeds when repeats > 1).
    dask_address : scheduler address of a Dask cluster ("" = local processes).
    study : study file ("" = none given).
    source : where the configuration came from (for messages).
    c_fields : the reference fields re-coarse-grained at each point's c when c (Eq 37) is
        calibrated or fixed (``reference.c_fields``): both by default; ``["energy"]`` keeps the
        compared strain field at the reference's own c and varies only the model's input.
    """

    workflow: str
    reference: str
    parameters: tuple[Bound, ...]
    fixed: Mapping[str, Any]
    target: Mapping[str, float]
    snapshots: tuple[float, ...]
    strain_weight: float
    stress_weight: float
    rtol: float
    solver: Mapping[str, Any]
    budget: int
    n_init: int
    batch_size: int
    seed: int
    repeats: int
    design: str
    kernel: str
    log_floor: float
    output_clip: float
    workers: int
    dask_address: str
    study: str
    source: str
    c_fields: tuple[str, ...] = ("energy", "strain_xy_eng")
    objective_power: float = 1.0
    trust_region: bool = False

    @property
    def names(self) -> tuple[str, ...]:
        """Calibrated parameter names, in optimisation order."""
        return tuple(b.name for b in self.parameters)

    @property
    def bounds(self) -> list[tuple[float, float]]:
        """(lower, upper) of each calibrated parameter."""
        return [(b.lower, b.upper) for b in self.parameters]

    @property
    def seeds(self) -> list[int]:
        """The seeds of the independent repeats."""
        return [self.seed + r for r in range(self.repeats)]

    @property
    def reference_path(self) -> Path | None:
        """The reference file, or None for the bundled CuZr data."""
        return None if self.reference == BUNDLED_REFERENCE else Path(self.reference)

    def to_dict(self) -> dict:
        """The configuration as TOML-shaped plain data (stored in the study, written as JSON)."""
        return {
            "workflow": self.workflow,
            "study": self.study,
            "reference": {"path": self.reference},
            "parameters": {b.name: [b.lower, b.upper] for b in self.parameters},
            "fixed": dict(self.fixed),
            "target": dict(self.target),
            "objective": {"snapshots": list(self.snapshots), "strain_weight": self.strain_weight, "rtol": self.rtol,
                          "stress_weight": self.stress_weight},
            "solver": dict(self.solver),
            "optimizer": {"budget": self.budget, "n_init": self.n_init, "batch_size": self.batch_size,
                          "seed": self.seed, "repeats": self.repeats, "design": self.design,
                          "kernel": self.kernel, "log_floor": self.log_floor,
                          "output_clip": self.output_clip,
                          # only when set, so that studies made before these options keep their identity
                          **({"objective_power": self.objective_power} if self.objective_power != 1.0 else {}),
                          **({"trust_region": True} if self.trust_region else {})},
            "execution": {"workers": self.workers, "dask_address": self.dask_address},
            # only when c is used, so that studies without c keep their stored identity
            **({"reference": {"path": self.reference, "c_fields": list(self.c_fields)}}
               if "c" in self.names or "c" in self.fixed else {}),
        }

    def identity(self) -> dict:
        """What defines the sequence of proposals of one study (checked when a study resumes).

        Budget, repeats, workers and the Dask address are left out: a study may be extended to a
        larger budget or resumed on another machine.
        """
        data = self.to_dict()
        data.pop("execution")
        data.pop("study")
        for key in ("budget", "repeats", "seed"):
            data["optimizer"].pop(key)
        return data

    @classmethod
    def from_dict(cls, data: Mapping, source: str = "stored configuration", names=None) -> "WorkflowConfig":
        """Rebuild (and re-validate) a configuration from :meth:`to_dict` output, e.g. the copy
        stored in a study.

        `names` gives the order of the calibrated parameters (JSON stores may sort table keys,
        and the order is that of the parameter vectors in the study).
        """
        data = dict(data)
        if names is not None:
            table = data.get("parameters", {})
            if set(names) != set(table):
                raise ConfigError(f"{source}: parameters {sorted(table)} differ from the study's {list(names)}")
            data["parameters"] = {n: table[n] for n in names}
        workflow = data.pop("workflow", "calibrate")
        if workflow not in WORKFLOWS:
            raise ConfigError(f"{source}: workflow: expected one of {WORKFLOWS}, got {workflow!r}")
        data.pop("seed", None)  # the per-study seed stored next to the configuration
        return _build(data, workflow, source)

    def replace(self, **changes) -> "WorkflowConfig":
        """A copy with some fields changed (no re-validation: use :func:`load_config` overrides)."""
        return dataclasses.replace(self, **changes)


# --------------------------------------------------------------------------------- loading
def default_config_text(workflow: str) -> str:
    """The TOML text of the default configuration shipped for `workflow`."""
    if workflow not in WORKFLOWS:
        raise ConfigError(f"workflow: expected one of {WORKFLOWS}, got {workflow!r}")
    return (resources.files("gego.configs") / f"{workflow}.toml").read_text()


def _parse_toml(text: str, source: str) -> dict:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML ({exc})") from None


def _read_toml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config file ({type(exc).__name__})") from None
    return _parse_toml(text, str(path))


def parse_assignment(text: str) -> tuple[str, Any]:
    """Parse a command-line override ``table.key=value`` (value in TOML syntax).

    Bare words are taken as strings, so ``reference.path=my.nc`` works unquoted. Returns
    (dotted key, value).

    Examples
    --------
    >>> parse_assignment("parameters.c0=[0.1, 0.9]")
    ('parameters.c0', [0.1, 0.9])
    >>> parse_assignment("optimizer.budget=60")
    ('optimizer.budget', 60)
    """
    key, sep, raw = text.partition("=")
    key, raw = key.strip(), raw.strip()
    if not sep or not key or not raw:
        raise ConfigError(f"--set {text!r}: expected TABLE.KEY=VALUE, e.g. optimizer.budget=60")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw  # a bare word: a string (a path, "derived", "sobol")
    return key, value


def parse_param_values(items, source: str = "--param") -> dict[str, float]:
    """Parse ``name=value`` items (e.g. ``--param c0=0.164``) into {paper name: float}."""
    values: dict[str, float] = {}
    for item in items or ():
        name, sep, raw = str(item).partition("=")
        name = name.strip()
        if not sep:
            raise ConfigError(f"{source} {item!r}: expected NAME=VALUE, e.g. c0=0.164")
        _check_parameter_name(name, source)
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"{source} {name}: expected a number, got {raw.strip()!r}") from None
        if not math.isfinite(value):
            raise ConfigError(f"{source} {name}: expected a finite number, got {raw.strip()!r}")
        values[name] = value
    return values


def _check_parameter_name(name: str, where: str) -> None:
    if name not in PARAMETERS:
        raise ConfigError(f"{where}: unknown parameter '{name}' (known: {', '.join(PARAMETERS)})")


def _check_keys(layer: dict, source: str, workflow: str) -> None:
    """Reject unknown tables and keys, naming the first one found."""
    for key, value in layer.items():
        if key in _SCHEMA[""]:
            continue
        if key not in _TABLES:
            raise ConfigError(f"{source}: unknown key '{key}' (tables: {', '.join(_TABLES)})")
        if key == "target" and workflow != "validate":
            raise ConfigError(f"{source}: table 'target' is only used by `gego validate`")
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: '{key}' must be a table ([{key}])")
        if key in _SCHEMA:
            for sub in value:
                if sub not in _SCHEMA[key]:
                    raise ConfigError(f"{source}: unknown key '{key}.{sub}' (known: {', '.join(_SCHEMA[key])})")
        elif key in _PARAMETER_TABLES:
            for sub in value:
                _check_parameter_name(sub, f"{source}: {key}.{sub}")
        elif key == "solver":
            known = _solver_fields()
            for sub in value:
                if known is not None and sub not in known:
                    raise ConfigError(f"{source}: unknown key 'solver.{sub}' (known: {', '.join(sorted(known))})")


def _solver_fields() -> set[str] | None:
    try:
        from gego.stz import SolverSettings
    except ImportError:  # solver not installed: its settings are checked when it runs
        return None
    return {f.name for f in dataclasses.fields(SolverSettings)}


def _merge(base: dict, layer: dict) -> dict:
    """Overlay `layer` on `base`: tables merge key by key, except that a calibrated parameter
    named in one of [parameters]/[fixed] by the layer leaves the other table."""
    merged = copy.deepcopy(base)
    for key, value in layer.items():
        if isinstance(value, dict):
            table = merged.setdefault(key, {})
            table.update(copy.deepcopy(value))
        else:
            merged[key] = value
    for name in layer.get("fixed", {}):
        if name not in layer.get("parameters", {}):
            merged.get("parameters", {}).pop(name, None)
    for name in layer.get("parameters", {}):
        if name not in layer.get("fixed", {}):
            merged.get("fixed", {}).pop(name, None)
    return merged


def _layer_from_assignments(assignments, source: str) -> dict:
    layer: dict = {}
    for text in assignments or ():
        key, value = parse_assignment(text) if isinstance(text, str) else text
        parts = key.split(".")
        if len(parts) == 1:
            layer[parts[0]] = value
        elif len(parts) == 2:
            layer.setdefault(parts[0], {})
            if not isinstance(layer[parts[0]], dict):
                raise ConfigError(f"{source}: '{parts[0]}' is a table, cannot also set it to a value")
            layer[parts[0]][parts[1]] = value
        else:
            raise ConfigError(f"{source} {key!r}: expected TABLE.KEY (one dot)")
    return layer


def load_config(path: str | Path | None = None, workflow: str = "calibrate", overrides=None) -> WorkflowConfig:
    """Build the effective configuration: shipped defaults, then the file at `path`, then overrides.

    Parameters
    ----------
    path : str or Path, optional
        A user TOML file; relative paths in it (``reference.path``, ``study``) are taken relative
        to the file's folder.
    workflow : "calibrate" or "validate"
        Which default file to start from.
    overrides : sequence of str or (key, value), optional
        ``"table.key=value"`` assignments applied last (the command line: ``--budget 60`` is
        ``"optimizer.budget=60"``).

    Raises
    ------
    ConfigError
        One line naming the file and key: unknown key, wrong type, inverted or empty bound, a
        parameter both calibrated and fixed (in one layer) or neither, missing file.
    """
    merged = _parse_toml(default_config_text(workflow), f"gego/configs/{workflow}.toml")
    source = f"default {workflow} config"
    if path is not None:
        layer = _read_toml(path)
        _check_keys(layer, str(path), workflow)
        _check_both(layer, str(path))
        layer = _relative_to(layer, Path(path).parent)
        merged = _merge(merged, layer)
        source = str(path)
    if overrides:
        layer = _layer_from_assignments(overrides, "command line")
        _check_keys(layer, "command line", workflow)
        _check_both(layer, "command line")
        merged = _merge(merged, layer)
    return _build(merged, workflow, source)


def _check_both(layer: dict, source: str) -> None:
    both = set(layer.get("parameters", {})) & set(layer.get("fixed", {}))
    if both:
        name = sorted(both)[0]
        raise ConfigError(f"{source}: parameter '{name}' is both calibrated ([parameters]) and fixed ([fixed])")


def _relative_to(layer: dict, folder: Path) -> dict:
    layer = copy.deepcopy(layer)
    ref = layer.get("reference", {}).get("path")
    if isinstance(ref, str) and ref != BUNDLED_REFERENCE and not Path(ref).is_absolute():
        layer["reference"]["path"] = str(folder / ref)
    study = layer.get("study")
    if isinstance(study, str) and study and not Path(study).is_absolute():
        layer["study"] = str(folder / study)
    return layer


def _typed(value, types: tuple[type, ...], where: str, expected: str):
    # bool is an int subclass in Python; a TOML `true` is never a valid count or weight.
    if isinstance(value, bool) or not isinstance(value, types):
        raise ConfigError(f"{where}: expected {expected}, got {value!r}")
    return value


def _number(value, where: str) -> float:
    value = float(_typed(value, (int, float), where, "a number"))
    if not math.isfinite(value):
        raise ConfigError(f"{where}: expected a finite number, got {value!r}")
    return value


def _count(value, where: str, minimum: int = 1) -> int:
    value = _typed(value, (int,), where, f"an integer >= {minimum}")
    if value < minimum:
        raise ConfigError(f"{where}: expected an integer >= {minimum}, got {value}")
    return int(value)


def _build(data: dict, workflow: str, source: str) -> WorkflowConfig:
    """Validate merged plain data into a :class:`WorkflowConfig`."""
    where = source
    parameters = []
    for name, pair in data.get("parameters", {}).items():
        key = f"{where}: parameters.{name}"
        if not (isinstance(pair, list) and len(pair) == 2):
            raise ConfigError(f"{key}: expected [lower, upper], got {pair!r}")
        lower, upper = _number(pair[0], key + " lower bound"), _number(pair[1], key + " upper bound")
        if not lower < upper:
            raise ConfigError(f"{key}: lower bound {lower:g} must be below upper bound {upper:g} ({PARAMETERS[name].unit})")
        parameters.append(Bound(name, lower, upper))
    _check_reference_parameters(data, parameters, workflow, where)
    if not parameters:
        raise ConfigError(f"{where}: [parameters] is empty; calibrate at least one parameter, e.g. c0 = [0.05, 1.0]")

    fixed: dict[str, Any] = {}
    for name, value in data.get("fixed", {}).items():
        if name == "chi_inf" and value == "derived":
            fixed[name] = value
            continue
        fixed[name] = _number(value, f"{where}: fixed.{name}")
    calibrated = {b.name for b in parameters}
    both = calibrated & set(fixed)
    if both:
        raise ConfigError(f"{where}: parameter '{sorted(both)[0]}' is both calibrated ([parameters]) and fixed ([fixed])")

    target: dict[str, float] = {}
    if workflow == "validate":
        for name, value in data.get("target", {}).items():
            target[name] = _number(value, f"{where}: target.{name}")
        for bound in parameters:
            if bound.name not in target:
                raise ConfigError(f"{where}: target.{bound.name} missing: validate needs a target for every calibrated parameter")
            if not bound.lower <= target[bound.name] <= bound.upper:
                raise ConfigError(f"{where}: target.{bound.name} = {target[bound.name]:g} lies outside its bounds "
                                  f"[{bound.lower:g}, {bound.upper:g}]")
    # c0, s_y, beta and E0 have no default: the model is undefined without them.
    for name in ("c0", "s_y", "beta", "E0"):
        if name not in calibrated and name not in fixed:
            raise ConfigError(f"{where}: parameter '{name}' is neither calibrated ([parameters]) nor fixed ([fixed])")

    objective = data.get("objective", {})
    snapshots = objective.get("snapshots", [])
    if not (isinstance(snapshots, list) and snapshots):
        raise ConfigError(f"{where}: objective.snapshots: expected a non-empty list of strains")
    snapshots = tuple(_number(s, f"{where}: objective.snapshots") for s in snapshots)
    if any(s <= 0 for s in snapshots):
        raise ConfigError(f"{where}: objective.snapshots: strains must be positive, got {list(snapshots)}")
    strain_weight = _number(objective.get("strain_weight"), f"{where}: objective.strain_weight")
    stress_weight = _number(objective.get("stress_weight"), f"{where}: objective.stress_weight")
    if strain_weight < 0 or stress_weight < 0 or strain_weight + stress_weight == 0:
        raise ConfigError(f"{where}: objective weights must be >= 0 and not both 0, got "
                          f"strain_weight={strain_weight:g}, stress_weight={stress_weight:g}")

    rtol = _number(objective.get("rtol", 0.1), f"{where}: objective.rtol")
    if not 0.0 < rtol < 1.0:
        raise ConfigError(f"{where}: objective.rtol: expected a relative singular-value cut in (0, 1), got {rtol:g}")

    opt = data.get("optimizer", {})
    budget = _count(opt.get("budget"), f"{where}: optimizer.budget", 2)
    dim = len(parameters)
    n_init = opt.get("n_init", "auto")
    if n_init == "auto":
        n_init = auto_n_init(dim, budget)
    else:
        n_init = _count(n_init, f"{where}: optimizer.n_init", 2)
    if n_init > budget:
        raise ConfigError(f"{where}: optimizer.n_init = {n_init} exceeds optimizer.budget = {budget}")
    design = _typed(opt.get("design", "lhs"), (str,), f"{where}: optimizer.design", "'lhs' or 'sobol'")
    if design not in ("lhs", "sobol"):
        raise ConfigError(f"{where}: optimizer.design: expected 'lhs' or 'sobol', got {design!r}")
    kernel = _typed(opt.get("kernel", "matern52"), (str,), f"{where}: optimizer.kernel", "'matern52' or 'se'")
    if kernel not in ("matern52", "se"):
        raise ConfigError(f"{where}: optimizer.kernel: expected 'matern52' or 'se', got {kernel!r}")

    log_floor = _number(opt.get("log_floor", 0.0), f"{where}: optimizer.log_floor")
    if log_floor < 0:
        raise ConfigError(f"{where}: optimizer.log_floor: expected 0 (no transform) or a positive floor, got {log_floor:g}")

    output_clip = _number(opt.get("output_clip", 0.0), f"{where}: optimizer.output_clip")
    if not 0.0 <= output_clip <= 1.0:
        raise ConfigError(f"{where}: optimizer.output_clip: expected 0 (off) or a quantile in (0, 1], got {output_clip:g}")

    objective_power = _number(opt.get("objective_power", 1.0), f"{where}: optimizer.objective_power")
    if not 0.0 < objective_power <= 4.0:
        raise ConfigError(f"{where}: optimizer.objective_power: expected a power in (0, 4] (1 = the objective itself), "
                          f"got {objective_power:g}")
    if objective_power != 1.0 and log_floor > 0:
        raise ConfigError(f"{where}: optimizer.objective_power and optimizer.log_floor are two transforms of the "
                          "objective: set one of them")
    trust_region = opt.get("trust_region", False)
    if not isinstance(trust_region, bool):
        raise ConfigError(f"{where}: optimizer.trust_region: expected true or false, got {trust_region!r}")

    execution = data.get("execution", {})
    reference = _typed(data.get("reference", {}).get("path", BUNDLED_REFERENCE), (str,),
                       f"{where}: reference.path", "'cuzr' or a file path")
    if reference != BUNDLED_REFERENCE and not Path(reference).is_file():
        raise ConfigError(f"{where}: reference.path: file not found: {reference}")
    c_fields = data.get("reference", {}).get("c_fields", list(C_FIELDS))
    if not (isinstance(c_fields, list) and c_fields and set(c_fields) <= set(C_FIELDS)
            and len(set(c_fields)) == len(c_fields)):
        raise ConfigError(f"{where}: reference.c_fields: expected a non-empty list from {list(C_FIELDS)}, got {c_fields!r}")
    return WorkflowConfig(
        workflow=workflow,
        reference=reference,
        parameters=tuple(parameters),
        fixed=fixed,
        target=target,
        snapshots=snapshots,
        strain_weight=strain_weight,
        rtol=rtol,
        stress_weight=stress_weight,
        solver=dict(data.get("solver", {})),
        budget=budget,
        n_init=n_init,
        batch_size=_count(opt.get("batch_size", 1), f"{where}: optimizer.batch_size"),
        seed=_count(opt.get("seed", 0), f"{where}: optimizer.seed", 0),
        repeats=_count(opt.get("repeats", 1), f"{where}: optimizer.repeats"),
        design=design,
        kernel=kernel,
        log_floor=log_floor,
        output_clip=output_clip,
        workers=_count(execution.get("workers", 1), f"{where}: execution.workers"),
        dask_address=_typed(execution.get("dask_address", ""), (str,), f"{where}: execution.dask_address", "a string"),
        study=_typed(data.get("study", ""), (str,), f"{where}: study", "a file path"),
        source=source,
        c_fields=tuple(c_fields),
        objective_power=objective_power,
        trust_region=trust_region,
    )


#: Reference fields that depend on the coarse-graining length c (Eq 36-37).
C_FIELDS = ("energy", "strain_xy_eng")


def _check_reference_parameters(data: dict, parameters: list[Bound], workflow: str, where: str) -> None:
    """c (Eq 37) must be a positive length, and only `gego calibrate` re-coarse-grains its reference."""
    for bound in parameters:
        if bound.name == "c" and bound.lower <= 0:
            raise ConfigError(f"{where}: parameters.c: the coarse-graining length must be positive, got lower bound {bound.lower:g}")
    fixed_c = data.get("fixed", {}).get("c")
    if fixed_c is not None and not (isinstance(fixed_c, (int, float)) and not isinstance(fixed_c, bool) and fixed_c > 0):
        raise ConfigError(f"{where}: fixed.c: expected a positive coarse-graining length, got {fixed_c!r}")
    wants_c = "c" in data.get("parameters", {}) or fixed_c is not None
    if workflow == "validate" and wants_c:
        raise ConfigError(f"{where}: parameter 'c' (coarse-graining length) is only used by `gego calibrate` "
                          "against a reference with atom frames; the validation's synthetic reference has none")
    if wants_c and data.get("reference", {}).get("path", BUNDLED_REFERENCE) == BUNDLED_REFERENCE:
        # a reference file is checked for atom frames when the problem is built (workflows.problem)
        raise ConfigError(f"{where}: parameter 'c': the bundled CuZr reference is pre-binned (no atom frames), so the "
                          "coarse-graining length cannot be varied; use a reference from `gego coarse-grain DUMP --keep-atoms`")


def auto_n_init(dim: int, budget: int) -> int:
    """Initial design size when ``n_init = "auto"``: 10 points per parameter (the usual EGO rule
    of thumb), but at most a third of the budget so that EGO has most of the runs."""
    return int(max(min(10 * dim, budget // 3), min(dim + 1, budget), 2))


# --------------------------------------------------------------------------------- to the solver
def stz_params_from_values(values: Mapping[str, Any], base=None):
    """Map paper-named values (Table 1-2 units) onto :class:`gego.stz.STZParams`.

    Parameters
    ----------
    values : mapping
        {paper name: value}; ``chi_inf = "derived"`` (or None) leaves chi_inf to be derived by the
        solver from the final energy field, chi_inf = beta (max E_final - E0).
    base : STZParams, optional
        Values of the parameters not named (default: ``STZParams()``, i.e. mu = 20 GPa,
        K = 60 GPa, tau0 = 0.1 ps as the authors' code).
    """
    from gego.stz import STZParams

    changes = {}
    for name, value in values.items():
        _check_parameter_name(name, "parameter")
        info = PARAMETERS[name]
        if not info.field:  # a reference parameter (c): not the model's
            continue
        if name == "chi_inf" and (value is None or value == "derived"):
            changes[info.field] = None
        else:
            changes[info.field] = float(value) * info.to_field
    return dataclasses.replace(base if base is not None else STZParams(), **changes)
