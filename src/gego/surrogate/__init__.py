"""Gaussian-process surrogate of the calibration objective (Sec 2.2, Eq 9-16; Sec 6 local GPs).

- :mod:`gego.surrogate.kernels`  SE (Eq 16, ARD) and Matern 5/2 covariances and their derivatives
- :mod:`gego.surrogate.gp`       the zero-mean GP: ML hyperparameters, Cholesky append, prediction
- :mod:`gego.surrogate.local`    local GPs on nearest neighbours for large N
"""

from gego.surrogate.gp import GaussianProcess, Hyperparameters
from gego.surrogate.kernels import KERNELS

__all__ = ["GaussianProcess", "Hyperparameters", "KERNELS"]
