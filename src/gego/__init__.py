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
"""

__version__ = "0.1.0"

from gego.datasets import load_cuzr, load_reference  # noqa: E402

__all__ = ["__version__", "load_cuzr", "load_reference"]
