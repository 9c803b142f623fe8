"""The transformation T: coarse-grained potential energy -> effective temperature chi.

The paper's hypothesis (Eq 38, after Shi et al.) is affine, ``chi = beta (E - E0)``, with beta in
1/eV and E0 the energy per atom of an ideally jammed glass (eV). Any other hypothesis is a
function with the same call shape ``f(energy, **parameters) -> chi``; register it in
:data:`TRANSFORMS` to select it by name. :func:`chi_inf_from_energy` gives the steady-state
effective temperature chi_inf from the final energy field (paper Sec 5.2: "chi_inf can be
directly determined from prescribed values of beta and E0").
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from gego.errors import ConfigError

__all__ = ["linear_chi", "quadratic_chi", "TRANSFORMS", "chi_from_energy", "chi_inf_from_energy"]


def linear_chi(energy: np.ndarray, beta: float, e0: float) -> np.ndarray:
    """Eq 38: chi = beta (E - E0). energy and e0 in eV/atom, beta in 1/eV."""
    return beta * (np.asarray(energy, dtype=float) - e0)  # Eq 38


def quadratic_chi(energy: np.ndarray, beta: float, e0: float, curvature: float = 0.0) -> np.ndarray:
    """A non-linear alternative to Eq 38: chi = beta (E - E0) + curvature (E - E0)^2.

    ``curvature`` in 1/eV^2; ``curvature = 0`` is Eq 38. An example of the one-function change the
    paper suggests (Sec 5.4: "a non-linear mapping could yield more appropriate initial fields").
    """
    excess = np.asarray(energy, dtype=float) - e0
    return beta * excess + curvature * excess**2


TRANSFORMS: dict[str, Callable[..., np.ndarray]] = {"linear": linear_chi, "quadratic": quadratic_chi}


def chi_from_energy(energy: np.ndarray, hypothesis: str = "linear", **parameters: float) -> np.ndarray:
    """Apply the named transformation T (default Eq 38) to a coarse-grained energy field."""
    try:
        transform = TRANSFORMS[hypothesis]
    except KeyError:
        raise ConfigError(f"unknown energy-to-chi hypothesis '{hypothesis}'; known: {', '.join(TRANSFORMS)}") from None
    try:
        return transform(energy, **parameters)
    except TypeError as exc:
        raise ConfigError(f"hypothesis '{hypothesis}': {exc}") from None


def chi_inf_from_energy(
    final_energy: np.ndarray,
    beta: float,
    e0: float,
    quantile: float = 1.0,
    hypothesis: str = "linear",
    **parameters: float,
) -> float:
    """Steady-state chi_inf from the energy field of the last (steady-flow) frame.

    In steady flow the material inside the shear band has reached its maximal disorder, so chi_inf
    is the transformed energy there: the ``quantile`` of the final field (1.0 = its maximum; use
    e.g. 0.95 to be robust against single noisy grid points), mapped with T.
    """
    if not 0.0 <= quantile <= 1.0:
        raise ConfigError(f"chi_inf quantile must be in [0, 1], got {quantile}")
    values = np.asarray(final_energy, dtype=float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        raise ConfigError("chi_inf: the final energy field has no finite value")
    level = float(np.quantile(values, quantile))
    return float(chi_from_energy(np.asarray(level), hypothesis, beta=beta, e0=e0, **parameters))
