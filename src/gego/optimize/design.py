"""Search box and initial space-filling design (Alg 1 step 2, Sec 3.2).

The EGO loop works in the unit cube: the GP sees inputs scaled to [0, 1]^d and the acquisition
proposes points there. This module owns the two maps between the user's box and the unit cube,
the validation of the box, and the initial design (Latin hypercube or scrambled Sobol, drawn with
scipy.stats.qmc from a seed).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy.stats import qmc

from gego.errors import ConfigError

DESIGN_METHODS = ("lhs", "sobol")


@dataclass(frozen=True)
class SearchBox:
    """A box of parameters, one closed interval per parameter, uniform by default.

    Attributes
    ----------
    lower, upper : ndarray, shape (d,)
        Bounds in the user's units (whatever units `fun` expects).
    names : tuple of str
        One name per parameter; used in the study store and in error messages.
    """

    lower: np.ndarray
    upper: np.ndarray
    names: tuple[str, ...]

    @property
    def dim(self) -> int:
        return self.lower.size

    @property
    def bounds(self) -> list[tuple[float, float]]:
        """The bounds as plain (lower, upper) float pairs (JSON-safe)."""
        return [(float(lo), float(hi)) for lo, hi in zip(self.lower, self.upper)]


def make_box(bounds, names=None) -> SearchBox:
    """Validate `bounds` (a sequence of (lower, upper) pairs, or a scipy Bounds) into a SearchBox.

    Raises
    ------
    ConfigError
        One line naming the parameter at fault: not a pair, not finite, or lower >= upper.
    """
    if hasattr(bounds, "lb") and hasattr(bounds, "ub"):  # scipy.optimize.Bounds
        bounds = list(zip(np.atleast_1d(bounds.lb), np.atleast_1d(bounds.ub)))
    try:
        pairs = np.asarray(bounds, dtype=float)
    except (TypeError, ValueError):
        raise ConfigError("bounds: expected a sequence of (lower, upper) number pairs") from None
    if pairs.ndim != 2 or pairs.shape[1] != 2 or pairs.shape[0] == 0:
        raise ConfigError(f"bounds: expected shape (d, 2) of (lower, upper) pairs, got shape {pairs.shape}")
    dim = pairs.shape[0]
    if names is None:
        names = tuple(f"x{i}" for i in range(dim))
    else:
        names = tuple(str(n) for n in names)
        if len(names) != dim:
            raise ConfigError(f"names: expected {dim} parameter names (one per bound), got {len(names)}")
        if len(set(names)) != dim:
            raise ConfigError(f"names: parameter names must be unique, got {list(names)}")
    for name, (lo, hi) in zip(names, pairs):
        if not (np.isfinite(lo) and np.isfinite(hi)):
            raise ConfigError(f"bounds for parameter '{name}': expected finite numbers, got ({lo}, {hi})")
        if not lo < hi:
            raise ConfigError(f"bounds for parameter '{name}': expected lower < upper, got ({lo}, {hi})")
    return SearchBox(lower=pairs[:, 0].copy(), upper=pairs[:, 1].copy(), names=names)


def to_unit(x, box: SearchBox) -> np.ndarray:
    """Map points from the box to the unit cube, u = (x - lower) / (upper - lower)."""
    return (np.asarray(x, dtype=float) - box.lower) / (box.upper - box.lower)


def from_unit(u, box: SearchBox) -> np.ndarray:
    """Map unit-cube points into the box, x = lower + u (upper - lower), clipped to the bounds.

    Clipping guards against round-off pushing a point a few ulps outside the box the user gave.
    """
    x = box.lower + np.asarray(u, dtype=float) * (box.upper - box.lower)
    return np.clip(x, box.lower, box.upper)


def initial_design(n_points: int, dim: int, *, method: str = "lhs", seed) -> np.ndarray:
    """Space-filling initial design in the unit cube (Alg 1 step 2).

    Parameters
    ----------
    n_points : int
        Number of points (the paper used 350-400 for the 4-parameter STZ calibration).
    dim : int
        Number of parameters.
    method : {"lhs", "sobol"}
        Latin hypercube (one point per stratum in every coordinate, randomly placed within the
        stratum) or scrambled Sobol.
    seed : int or sequence of int
        Seed of the design; the same seed gives the same design.

    Returns
    -------
    ndarray, shape (n_points, dim)
        Points in [0, 1)^dim.
    """
    if int(n_points) < 1:
        raise ConfigError(f"n_init: expected a positive number of initial points, got {n_points}")
    rng = np.random.default_rng(seed)
    if method == "lhs":
        sampler = qmc.LatinHypercube(d=dim, rng=rng)
    elif method == "sobol":
        sampler = qmc.Sobol(d=dim, scramble=True, rng=rng)
    else:
        raise ConfigError(f"design: expected one of {DESIGN_METHODS}, got {method!r}")
    with warnings.catch_warnings():
        # Sobol balance is best at powers of two; any size is still a valid scrambled design.
        warnings.simplefilter("ignore", UserWarning)
        return sampler.random(int(n_points))
