"""The STZ continuum model of plasticity in amorphous solids (paper Sec 5.1.2-5.1.4).

Quasi-static periodic simple shear in sheared coordinates (Eq 35), Truesdell hypoelasticity
(Eq 30) with equilibrium by FFT projection (Eq 31), STZ plastic rate (Eq 32-33) and effective
temperature (Eq 29, 34), initial chi from a coarse-grained energy field (Eq 38).

>>> from gego.stz import simulate, VALIDATION_TARGET, SolverSettings   # doctest: +SKIP
"""

from gego.stz.params import (PAPER_OPTIMUM, PRESETS, REFERENCE_CODE, TABLE1, VALIDATION_TARGET,
                             SolverSettings, STZParams)
from gego.stz.solver import STZResult, simulate, simulate_batch

__all__ = ["STZParams", "SolverSettings", "STZResult", "simulate", "simulate_batch", "TABLE1",
           "REFERENCE_CODE", "VALIDATION_TARGET", "PAPER_OPTIMUM", "PRESETS"]
