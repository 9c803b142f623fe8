"""Stationary ARD covariance functions for the GP surrogate (Sec 2.2, Eq 10 and 16).

Two kernels, both of the form ``k(x, x') = signal_var * rho(r)`` with the ARD scaled distance
``r^2 = sum_k (x_k - x'_k)^2 / l_k^2``:

- ``"se"``: squared exponential, ``rho = exp(-r^2 / 2)``; the paper's Eq 16 with one length
  scale per coordinate direction (the "multidimensional GP" paragraph after Eq 16).
- ``"matern52"``: Matern nu = 5/2, ``rho = (1 + sqrt5 r + 5 r^2 / 3) exp(-sqrt5 r)``; twice
  differentiable, the usual default for Bayesian optimisation.

Both kernels share one derivative identity that the GP code exploits. With
``G(r) = -(1/r) d k / d r``,

    d k / d log(l_k)  =  G * (x_k - x'_k)^2 / l_k^2
    d k / d x_k       = -G * (x_k - x'_k)   / l_k^2

where G = k for the SE kernel and ``G = (5/3) signal_var (1 + sqrt5 r) exp(-sqrt5 r)`` for
Matern 5/2 (no singularity at r = 0). `kernel_and_slope` returns (k, G) together.

The noise term (sigma_n^2 delta_ij of Eq 10 and 16) is not part of these functions: the GP adds
it to the diagonal of the training covariance.
"""

from __future__ import annotations

import numpy as np

from gego.errors import ConfigError

KERNELS = ("se", "matern52")

_SQRT5 = np.sqrt(5.0)


def check_kernel(kernel: str) -> str:
    """Return `kernel` if it names a known kernel, else raise a one-line ConfigError."""
    if kernel not in KERNELS:
        raise ConfigError(f"kernel: expected one of {', '.join(KERNELS)}, got {kernel!r}")
    return kernel


def scaled_sq_dist(X1: np.ndarray, X2: np.ndarray, length_scales: np.ndarray) -> np.ndarray:
    """Squared ARD distance ``r^2 = sum_k (x1_k - x2_k)^2 / l_k^2`` for all pairs.

    Parameters
    ----------
    X1 : ndarray, shape (n1, d)
    X2 : ndarray, shape (n2, d)
    length_scales : ndarray, shape (d,)
        Length scales l_k in the units of X (unit cube for the surrogate).

    Returns
    -------
    ndarray, shape (n1, n2)
        Non-negative squared distances (round-off clipped at 0).
    """
    A = X1 / length_scales
    B = A if X2 is X1 else X2 / length_scales  # K(X, X): the likelihood's case, one half of the work
    # |a|^2 + |b|^2 - 2 a.b uses one matrix product (BLAS) instead of an (n1, n2, d) tensor.
    a_sq = np.einsum("ij,ij->i", A, A)
    b_sq = a_sq if B is A else np.einsum("ij,ij->i", B, B)
    r2 = a_sq[:, None] + b_sq[None, :]
    r2 -= 2.0 * (A @ B.T)
    np.maximum(r2, 0.0, out=r2)
    return r2


# pairwise_sq_diffs up to this many entries (16 MB): n = 500 at d = 8, 1000 at d = 2
SQ_DIFFS_MAX = 2_000_000


def pairwise_sq_diffs(X: np.ndarray) -> np.ndarray | None:
    """``D[k, i * n + j] = (x_ik - x_jk)^2``, shape (d, n * n), or None above SQ_DIFFS_MAX entries.

    For a caller that needs K(X, X) for many length scales (a likelihood fit): the r^2 of Eq 16
    is then one vector-matrix product ``l^-2 @ D``, exact where scaled_sq_dist's
    ``|a|^2 + |b|^2 - 2 a.b`` cancels, and the length-scale gradient is another, ``D @ vec(M)``.
    (d, n * n) rather than (n * n, d): both products run 2-3 times faster in this layout.
    """
    n, d = X.shape
    if n * n * d > SQ_DIFFS_MAX:
        return None
    diffs = X.T[:, :, None] - X.T[:, None, :]
    diffs *= diffs
    return diffs.reshape(d, n * n)


def kernel_from_r2(kernel: str, r2: np.ndarray, signal_var: float) -> np.ndarray:
    """Covariance from squared scaled distances (Eq 16 for "se"; Matern 5/2 otherwise)."""
    if kernel == "se":
        # Eq 16 with ARD length scales: sigma_f^2 exp(-r^2 / 2).
        k = np.multiply(r2, -0.5)
        np.exp(k, out=k)
        k *= signal_var
        return k
    # In-place steps: this runs on (100,000 x N) blocks, where temporaries cost more than flops.
    r = np.sqrt(r2)
    k = np.multiply(r2, 5.0 / 3.0)
    k += 1.0
    k += _SQRT5 * r
    r *= -_SQRT5
    np.exp(r, out=r)
    k *= r
    k *= signal_var
    return k


def kernel_and_slope(kernel: str, r2: np.ndarray, signal_var: float) -> tuple[np.ndarray, np.ndarray]:
    """Covariance k and its slope ``G = -(1/r) dk/dr`` from squared scaled distances.

    G turns every derivative the GP needs into an elementwise product (module docstring).
    """
    if kernel == "se":
        k = signal_var * np.exp(-0.5 * r2)
        return k, k
    # the shared factors once, in place (the likelihood calls this thousands of times per fit);
    # the same roundings as sigma_f^2 (1 + sqrt5 r + 5 r^2 / 3) e^{-sqrt5 r} and
    # (5/3) sigma_f^2 (1 + sqrt5 r) e^{-sqrt5 r} written out
    sqrt5_r = np.sqrt(r2)
    sqrt5_r *= _SQRT5
    decay = np.negative(sqrt5_r)
    np.exp(decay, out=decay)
    linear = np.add(sqrt5_r, 1.0, out=sqrt5_r)  # 1 + sqrt5 r
    k = np.multiply(r2, 5.0 / 3.0)
    k += linear
    k *= signal_var
    k *= decay
    slope = np.multiply(linear, (5.0 / 3.0) * signal_var, out=linear)
    slope *= decay
    return k, slope


def kernel_matrix(
    kernel: str, X1: np.ndarray, X2: np.ndarray, length_scales: np.ndarray, signal_var: float
) -> np.ndarray:
    """Noise-free covariance matrix K(X1, X2), shape (n1, n2)."""
    return kernel_from_r2(kernel, scaled_sq_dist(X1, X2, length_scales), signal_var)


def kernel_gradient_log_params(
    kernel: str, X: np.ndarray, length_scales: np.ndarray, signal_var: float
) -> tuple[np.ndarray, np.ndarray]:
    """K(X, X) and its derivatives in the log-hyperparameters, as a dense tensor.

    The reference form, for tests and small n: the GP's likelihood gradient uses the same
    identity without building the (n, n, d + 1) tensor.

    Returns
    -------
    K : ndarray, shape (n, n)
    dK : ndarray, shape (n, n, d + 1)
        ``dK[..., k] = dK / d log(l_k)`` for k < d and ``dK[..., d] = dK / d log(signal_var)``.
    """
    K, slope = kernel_and_slope(kernel, scaled_sq_dist(X, X, length_scales), signal_var)
    diff_scaled = (X[:, None, :] - X[None, :, :]) / length_scales
    dK = np.empty(K.shape + (X.shape[1] + 1,))
    dK[..., :-1] = slope[..., None] * diff_scaled**2
    dK[..., -1] = K  # k is proportional to signal_var
    return K, dK


def cross_kernel_gradient_x(
    kernel: str, X_star: np.ndarray, X: np.ndarray, length_scales: np.ndarray, signal_var: float
) -> tuple[np.ndarray, np.ndarray]:
    """K(X_star, X) and its derivative with respect to the test inputs X_star.

    Returns
    -------
    K_star : ndarray, shape (n_star, n)
    dK_star : ndarray, shape (n_star, n, d)
        ``dK_star[i, j, k] = d k(x*_i, x_j) / d x*_ik``.
    """
    K_star, slope = kernel_and_slope(kernel, scaled_sq_dist(X_star, X, length_scales), signal_var)
    diff = X_star[:, None, :] - X[None, :, :]
    dK_star = -slope[..., None] * diff / length_scales**2
    return K_star, dK_star
