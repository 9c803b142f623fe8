"""gego: Grassmannian EGO calibration of continuum models against coarse-grained atomistics.

The package layout follows the pipeline of the paper (Kontolati et al., Grassmannian EGO):

- :mod:`gego.grassmann`   Grassmann projection and distances (Sec 2.1, Eq 1-8)
- :mod:`gego.objective`   the calibration objective (Sec 3.3-3.4, 5.2.2, Eq 21-24, 39-41)
- :mod:`gego.surrogate`   Gaussian-process surrogate (Sec 2.2, Eq 9-16, 25-26)
- :mod:`gego.optimize`    expected improvement, EGO loop, study store (Sec 2.3, Alg 1, Eq 17-20)
- :mod:`gego.stz`         the STZ continuum solver (Sec 5.1.2-5.1.3, Eq 27-35)
- :mod:`gego.md`          LAMMPS readers and coarse-graining (Sec 5.1.4, Eq 36-38)
- :mod:`gego.workflows`   calibrate / validate / evaluate / report (Sec 5.3-5.4)
- :mod:`gego.datasets`    the bundled CuZr MD reference

Top-level names are imported lazily, so ``import gego`` stays cheap (worker processes and the
crash-resume subprocesses import it many times).
"""

from __future__ import annotations

import importlib

__version__ = "0.12.0"

_LAZY = {
    "minimize": "gego.optimize",
    "load_study": "gego.optimize",
    "Objective": "gego.objective",
    "load_cuzr": "gego.datasets",
    "load_reference": "gego.datasets",
    "simulate": "gego.stz",
    "simulate_batch": "gego.stz",
    "STZParams": "gego.stz",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'gego' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
