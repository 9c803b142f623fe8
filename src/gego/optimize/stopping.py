"""Stopping rules of the EGO loop (Alg 1 step 7, generalised).

Alg 1 stops when the best distance is below a threshold Delta_th or after T iterations. We also
stop on a budget of evaluations, on the wall time of the session, and after `patience`
iterations without improvement. All rules except wall time are pure functions of the stored
history, so a resumed study stops exactly where an uninterrupted one would.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from gego.errors import ConfigError


@dataclass(frozen=True)
class StopRules:
    """When the loop stops (checked after every iteration, in this order).

    Attributes
    ----------
    budget : int
        Maximum finished evaluations (complete or failed), initial design included.
    threshold : float, optional
        Stop once the best objective is <= threshold (Alg 1: Delta <= Delta_th).
    max_time_s : float, optional
        Stop once the current session has run this long (s).
    patience : int, optional
        Stop after this many consecutive iterations without a new best objective.
    """

    budget: int
    threshold: float | None = None
    max_time_s: float | None = None
    patience: int | None = None

    def __post_init__(self):
        if int(self.budget) < 1:
            raise ConfigError(f"budget: expected a positive number of evaluations, got {self.budget}")
        if self.threshold is not None and not math.isfinite(float(self.threshold)):
            raise ConfigError(f"threshold: expected a finite number, got {self.threshold}")
        if self.max_time_s is not None and not float(self.max_time_s) > 0:
            raise ConfigError(f"max_time_s: expected a positive number of seconds, got {self.max_time_s}")
        if self.patience is not None and int(self.patience) < 1:
            raise ConfigError(f"patience: expected a positive number of iterations, got {self.patience}")


def n_finished(history) -> int:
    """Evaluations that are complete or failed."""
    return sum(r.status in ("complete", "failed") for r in history)


def best_objective(history) -> float:
    """Smallest completed objective (inf if none)."""
    return min((r.objective for r in history if r.status == "complete"), default=math.inf)


def iterations_without_improvement(history) -> int:
    """Iterations since the one that set the current best objective (0 if it was the last)."""
    best, best_iteration = math.inf, 0
    for r in sorted(history, key=lambda r: r.id):
        if r.status == "complete" and r.objective < best:
            best, best_iteration = r.objective, r.iteration
    last = max((r.iteration for r in history), default=0)
    return last - best_iteration


def stop_reason(rules: StopRules, history, elapsed_s: float) -> str | None:
    """The first rule that holds ("threshold", "budget", "patience", "max_time"), or None."""
    if rules.threshold is not None and best_objective(history) <= rules.threshold:
        return "threshold"
    if n_finished(history) >= rules.budget:
        return "budget"
    if rules.patience is not None and iterations_without_improvement(history) >= rules.patience:
        return "patience"
    if rules.max_time_s is not None and elapsed_s >= rules.max_time_s:
        return "max_time"
    return None
