"""`gego evaluate`: the objective and its components at one parameter point.

To test a hypothesis ("is E0 = -3.37 eV better?") or to score a published optimum (the paper's
X+) with gego's objective and solver. The point is the configuration's fixed values overlaid with
the values given; every calibrated parameter must be given a value.
"""

from __future__ import annotations

import time

from gego.errors import ConfigError
from gego.workflows.calibrate import PAPER_OPTIMUM_VALUES, evaluate_point
from gego.workflows.config import PARAMETERS, WorkflowConfig
from gego.workflows.problem import build_problem, load_workflow_reference

__all__ = ["PRESET_POINTS", "evaluate"]

#: Named points (paper names, Table 1-2 units): the paper's application optimum X+ (Sec 5.4) and
#: the validation targets (Table 2).
PRESET_POINTS = {
    "paper-optimum": dict(PAPER_OPTIMUM_VALUES),
    "validation-target": {"c0": 0.54989662, "s_y": 1.00556564, "beta": 8.27674103, "E0": -3.36821766},
}


def evaluate(config: WorkflowConfig, values: dict[str, float]) -> dict:
    """Objective of the configuration's reference at one point.

    Parameters
    ----------
    config : the effective configuration; its [fixed] values fill what `values` leaves out.
    values : {paper name: value}; must cover the calibrated parameters. A value for a fixed
        parameter replaces the fixed value.

    Returns
    -------
    dict
        ``{"params": every parameter value used, "objective", "components", "error",
        "n_runs": 1, "wall_time_s"}``; objective None (and error set) if the run failed.
    """
    missing = [n for n in config.names if n not in values]
    if missing:
        raise ConfigError(f"--param {missing[0]}=VALUE missing: give a value for every calibrated parameter "
                          f"({', '.join(config.names)}) or use --preset")
    started = time.perf_counter()
    extra_fixed = {n: v for n, v in values.items() if n not in config.names}
    config = config.replace(fixed={**config.fixed, **extra_fixed})
    problem = build_problem(config, load_workflow_reference(config))
    record = evaluate_point(problem, {n: values[n] for n in config.names})
    params = {**config.fixed, **{n: values[n] for n in config.names}}
    return {
        "params": params,
        "units": {n: PARAMETERS[n].unit for n in params},
        "objective": record["objective"],
        "components": record["components"],
        "error": record["error"],
        "n_runs": 1,
        "wall_time_s": time.perf_counter() - started,
        "solver_time_s": record["wall_time_s"],
        "config": config.to_dict(),
    }
