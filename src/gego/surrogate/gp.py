"""Zero-mean Gaussian-process surrogate with ML hyperparameters (Sec 2.2, Eq 9-16).

Conventions
-----------
- Inputs are already scaled to the unit cube [0, 1]^d (the loop's job); length scales are in
  those units.
- Outputs are standardised, ``y_s = (y - y_mean) / y_std`` (the paper's remark after Eq 16: a
  zero-mean GP wants standardised data); predictions come back in the original units of y.
- Hyperparameters are fitted on the standardised outputs: ARD length scales, signal variance
  sigma_f^2 and noise (nugget) variance sigma_n^2 >= `noise_floor` (both in standardised units,
  i.e. fractions of var(y)). The optimiser works on ``theta = log([l_1..l_d, sigma_f^2,
  sigma_n^2])``, the same ordering as ``log_marginal_likelihood(theta)``.
- Predicted std is that of the latent function f (Eq 15), without the noise term: that is
  the s of Eq 19-20 that the expected improvement needs.

Numerics
--------
The training covariance is factorised once, ``K + sigma_n^2 I = L L^T`` (Cholesky); if it is not
numerically positive definite a jitter is added to the diagonal and escalated by factors of 100
instead of failing. Appending points between refits extends L by a block update in
O(N^2 m) rather than refactorising in O(N^3). Above `max_points_exact` training points the GP
switches to local GPs on the nearest points (gego.surrogate.local, the paper's Sec 6), and the
hyperparameters are always fitted on at most `max_points_fit` points (a seeded subset), so a
refit costs O(max_points_fit^3) whatever N. BLAS runs single-threaded inside the GP (see
single_thread_blas): its many small calls only lose to thread contention.
"""

from __future__ import annotations

import contextlib
import copy
import functools
from dataclasses import dataclass, replace

import numpy as np
from scipy.linalg import lapack, solve_triangular
from scipy.optimize import minimize

from gego.errors import ConfigError, GegoError
from gego.surrogate.kernels import (
    check_kernel,
    cross_kernel_gradient_x,
    kernel_and_slope,
    kernel_from_r2,
    kernel_matrix,
    pairwise_sq_diffs,
    scaled_sq_dist,
)

_LOG_2PI = np.log(2.0 * np.pi)

try:  # optional: threadpoolctl ships with scikit-learn
    from threadpoolctl import ThreadpoolController

    _BLAS_CONTROLLER = ThreadpoolController()
except ImportError:  # pragma: no cover - depends on the environment
    _BLAS_CONTROLLER = None


def single_thread_blas():
    """Context manager running BLAS/LAPACK on one thread (a no-op without threadpoolctl).

    The GP's matrices are small (<= a few thousand rows) and its calls many: on a shared 2-core
    machine multi-threaded OpenBLAS made one 30-point likelihood evaluation 10-20x slower than
    single-threaded, and a 2,000-point one no faster.
    """
    return _single_thread_blas_context()


def blas_threads(n_threads: int | None):
    """Context manager limiting BLAS/LAPACK to ``n_threads`` threads (None, or no threadpoolctl:
    a no-op). Uses the controller found once at import: ``threadpool_limits`` would search the
    process's loaded libraries again on every call (~3 ms, 13 % of a Branin run's overhead when
    the EGO loop entered it every iteration)."""
    if n_threads is None or _BLAS_CONTROLLER is None:
        return contextlib.nullcontext()
    return _BLAS_CONTROLLER.limit(limits=int(n_threads), user_api="blas")


_blas_limit_depth = 0  # nested uses (maximize_ei -> predict) switch the limit once, not per call


@contextlib.contextmanager
def _single_thread_blas_context():
    global _blas_limit_depth
    if _BLAS_CONTROLLER is None or _blas_limit_depth > 0:
        _blas_limit_depth += 1
        try:
            yield
        finally:
            _blas_limit_depth -= 1
        return
    with _BLAS_CONTROLLER.limit(limits=1, user_api="blas"):
        _blas_limit_depth += 1
        try:
            yield
        finally:
            _blas_limit_depth -= 1


def _single_threaded(method):
    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        with single_thread_blas():
            return method(*args, **kwargs)

    return wrapper


# Search box for the log-hyperparameters (inputs on the unit cube, standardised outputs).
LENGTH_SCALE_BOUNDS = (5e-3, 20.0)
SIGNAL_VAR_BOUNDS = (1e-2, 1e2)
NOISE_VAR_MAX = 1.0

# Rows of test points per block in predictions: a block holds at most this many kernel entries
# (2**22 doubles = 32 MiB), so 100,000+ candidates never build one huge matrix.
_BLOCK_ENTRIES = 2**22

# From this many fitting points, multistart stops when two starts agree (see _maximise_likelihood).
_CONFIRM_FROM_N = 200

# Line-search tries per L-BFGS-B iteration (scipy's default is 20), for the likelihood fit and the
# EI polish (gego.optimize.acquisition). Near their optima both objectives are flat down to
# round-off (a std or a noise variance near 1e-10 of the signal variance: at the end of Branin
# polishes, central differences over 1e-7 disagree with the exact gradient by orders of
# magnitude), so a line search there cannot succeed and ends in "ABNORMAL" after all its tries:
# half of the Branin polishes and 40 % of its fits did. With 8 tries a Branin run evaluates the
# polish objective 32 % and the likelihood 26 % less often; the median best values over 30 seeds
# on Branin and Hartmann-3 are unchanged, and on Hartmann-6 (100 seeds, budget 50) the best is
# lower than before on 6 / 34 / 43 seeds after 25 / 40 / 50 evaluations and higher on 7 / 32 / 27
# (benchmarks/bench_ego_quality.py).
LBFGSB_MAX_LINE_SEARCH = 8

_JITTER_START = 1e-10  # relative to the mean diagonal
_JITTER_GROWTH = 100.0
_JITTER_TRIES = 7


@dataclass(frozen=True)
class Hyperparameters:
    """Fitted state that defines the GP besides its data (plain numbers, JSON-safe via as_dict).

    Attributes
    ----------
    kernel : str
        "se" or "matern52".
    length_scales : ndarray, shape (d,)
        ARD length scales in unit-cube units.
    signal_var, noise_var : float
        sigma_f^2 and sigma_n^2 of Eq 16, in units of var(y) (standardised outputs).
    y_mean, y_std : float
        The standardisation of the outputs, in the units of y.
    """

    kernel: str
    length_scales: np.ndarray
    signal_var: float
    noise_var: float
    y_mean: float
    y_std: float

    def as_dict(self) -> dict:
        return {
            "kernel": self.kernel,
            "length_scales": [float(v) for v in self.length_scales],
            "signal_var": float(self.signal_var),
            "noise_var": float(self.noise_var),
            "y_mean": float(self.y_mean),
            "y_std": float(self.y_std),
        }

    @property
    def theta(self) -> np.ndarray:
        """Log-hyperparameters ``log([l_1..l_d, signal_var, noise_var])``."""
        return np.log(np.concatenate([self.length_scales, [self.signal_var, self.noise_var]]))


@dataclass(frozen=True)
class Factor:
    """An exact GP conditioned on data: the Cholesky factor and weights of Eq 14-15.

    Attributes
    ----------
    X : ndarray, shape (n, d)
        Training inputs (unit cube).
    y : ndarray, shape (n,)
        Standardised training outputs.
    chol : ndarray, shape (n, n)
        Lower Cholesky factor of ``K(X, X) + (noise_var + jitter) I``.
    alpha : ndarray, shape (n,)
        ``(K + sigma_n^2 I)^{-1} y`` (the weights of Eq 14).
    jitter : float
        Diagonal jitter added on top of noise_var to make the factorisation succeed.
    """

    X: np.ndarray
    y: np.ndarray
    chol: np.ndarray
    alpha: np.ndarray
    jitter: float


# ---------------------------------------------------------------------------------------------
# Pure numerical kernels of the GP (shared by the exact and the local GP)
# ---------------------------------------------------------------------------------------------


def cholesky_with_jitter(K: np.ndarray) -> tuple[np.ndarray, float]:
    """Lower Cholesky factor of the symmetric matrix K, adding diagonal jitter if needed.

    The jitter starts at 1e-10 times the mean diagonal and grows by 100 per failed attempt, so an
    ill-conditioned matrix (near-duplicate inputs, tiny noise) degrades gracefully instead of
    stopping the optimisation.

    Returns
    -------
    chol : ndarray, shape (n, n)
        Lower triangular factor of ``K + jitter I``.
    jitter : float
        The jitter actually added (0.0 if none was needed).
    """
    # a finite sum means finite entries (one reduction, no boolean temporary); else check them
    if not np.isfinite(K.sum()) and not np.all(np.isfinite(K)):
        raise GegoError("GP covariance matrix has NaN/inf entries: check the training inputs")
    jitter = 0.0
    for _ in range(_JITTER_TRIES):
        Kj = K if jitter == 0.0 else K + jitter * np.eye(K.shape[0])
        chol, info = lapack.dpotrf(Kj, lower=1, clean=1, overwrite_a=0)
        if info == 0:
            return chol, jitter
        if jitter == 0.0:  # the scale only when the first attempt failed
            jitter = (float(np.mean(np.diag(K))) if K.size else 1.0) * _JITTER_START
        else:
            jitter *= _JITTER_GROWTH
    raise GegoError(
        "GP covariance matrix is not positive definite even with jitter "
        f"{jitter / _JITTER_GROWTH:.1e}: increase noise_floor"
    )


def _cho_solve(chol: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(L L^T)^{-1} b`` by one LAPACK call (the GP's matrices are small: call overhead counts)."""
    x, info = lapack.dpotrs(chol, b, lower=1)
    if info != 0:
        raise GegoError(f"GP solve failed (LAPACK dpotrs info={info})")
    return x


def factorise(X: np.ndarray, y: np.ndarray, hp: Hyperparameters) -> Factor:
    """Condition the GP on (X, y): Cholesky of ``K + sigma_n^2 I`` (Eq 11) and alpha (Eq 14)."""
    K = kernel_matrix(hp.kernel, X, X, hp.length_scales, hp.signal_var)
    K[np.diag_indices_from(K)] += hp.noise_var
    chol, jitter = cholesky_with_jitter(K)
    return Factor(X=X, y=y, chol=chol, alpha=_cho_solve(chol, y), jitter=jitter)


def extend_factor(factor: Factor, X_new: np.ndarray, y_new: np.ndarray, hp: Hyperparameters) -> Factor:
    """Append points to a factor by a block Cholesky update, O(n^2 m) for m new points.

    With ``K_new = [[K11, K12], [K21, K22]]`` and ``K11 = L11 L11^T``, the new factor is
    ``[[L11, 0], [L21, L22]]`` with ``L21 = (L11^{-1} K12)^T`` and ``L22 = chol(K22 - L21 L21^T)``.
    The same jitter as the existing factor is used, so the result equals a refactorisation.
    If the Schur complement is not positive definite (a new point duplicates an old one) the
    whole matrix is refactorised with escalated jitter instead.
    """
    X_all = np.vstack([factor.X, X_new])
    y_all = np.concatenate([factor.y, y_new])
    K12 = kernel_matrix(hp.kernel, factor.X, X_new, hp.length_scales, hp.signal_var)
    K22 = kernel_matrix(hp.kernel, X_new, X_new, hp.length_scales, hp.signal_var)
    K22[np.diag_indices_from(K22)] += hp.noise_var + factor.jitter
    L21 = solve_triangular(factor.chol, K12, lower=True, check_finite=False).T
    schur = K22 - L21 @ L21.T
    L22, info = lapack.dpotrf(schur, lower=1, clean=1, overwrite_a=0)
    if info != 0:
        return factorise(X_all, y_all, hp)
    n, m = factor.X.shape[0], X_new.shape[0]
    chol = np.zeros((n + m, n + m))
    chol[:n, :n] = factor.chol
    chol[n:, :n] = L21
    chol[n:, n:] = L22
    return Factor(X=X_all, y=y_all, chol=chol, alpha=_cho_solve(chol, y_all), jitter=factor.jitter)


def _block_rows(n_train: int, n_dim: int = 1) -> int:
    return max(1, _BLOCK_ENTRIES // max(1, n_train * n_dim))


def predict_standardised(
    factor: Factor, hp: Hyperparameters, X_star: np.ndarray, want_std: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """Posterior mean (Eq 14) and latent std (sqrt of the diagonal of Eq 15), standardised units.

    Works in blocks of rows so that 100,000+ test points never build one (n_star, n) matrix.
    """
    n_star = X_star.shape[0]
    mean = np.empty(n_star)
    std = np.empty(n_star) if want_std else None
    step = _block_rows(factor.X.shape[0])
    for start in range(0, n_star, step):
        rows = slice(start, min(start + step, n_star))
        K_star = kernel_matrix(hp.kernel, X_star[rows], factor.X, hp.length_scales, hp.signal_var)
        mean[rows] = K_star @ factor.alpha  # Eq 14
        if want_std:
            # Eq 15 diagonal: k(x*, x*) - |L^{-1} k(X, x*)|^2, with k(x*, x*) = signal_var.
            v = solve_triangular(factor.chol, K_star.T, lower=True, check_finite=False)
            var = hp.signal_var - np.einsum("ij,ij->j", v, v)
            std[rows] = np.sqrt(np.maximum(var, 0.0))
    return mean, std


def predict_std_upper_bound_standardised(
    factor: Factor, hp: Hyperparameters, X_star: np.ndarray, n_nearest: int
) -> tuple[np.ndarray, np.ndarray]:
    """Exact posterior mean (Eq 14) and an upper bound on the latent std, standardised units.

    The bound is the std of the GP conditioned only on the `n_nearest` training points with the
    largest covariance to x* (Eq 15 restricted to them): conditioning a Gaussian on more data
    never increases its variance, so this is >= the exact std, at O(n_nearest^3) per point
    instead of O(N^2). A relative slack of 1e-8 of the prior variance covers round-off.
    """
    n_star, n = X_star.shape[0], factor.X.shape[0]
    k = min(int(n_nearest), n)
    mean = np.empty(n_star)
    std_bound = np.empty(n_star)
    step = _block_rows(n)
    diag_extra = hp.noise_var + factor.jitter
    for start in range(0, n_star, step):
        rows = slice(start, min(start + step, n_star))
        K_star = kernel_matrix(hp.kernel, X_star[rows], factor.X, hp.length_scales, hp.signal_var)
        mean[rows] = K_star @ factor.alpha  # Eq 14, exact
        nearest = np.argpartition(-K_star, k - 1, axis=1)[:, :k] if k < n else np.broadcast_to(
            np.arange(n), K_star.shape
        )
        k_near = np.take_along_axis(K_star, nearest, axis=1)  # (b, k)
        Z_near = factor.X[nearest] / hp.length_scales  # (b, k, d)
        r2 = np.sum((Z_near[:, :, None, :] - Z_near[:, None, :, :]) ** 2, axis=-1)
        K_near = kernel_from_r2(hp.kernel, r2, hp.signal_var)
        K_near[:, np.arange(k), np.arange(k)] += diag_extra
        try:
            weights = np.linalg.solve(K_near, k_near[..., None])[..., 0]
            var = hp.signal_var - np.einsum("bk,bk->b", k_near, weights)
        except np.linalg.LinAlgError:
            var = np.full(k_near.shape[0], hp.signal_var)  # the prior std is always a bound
        std_bound[rows] = np.sqrt(np.maximum(var, 0.0) + 1e-8 * hp.signal_var)
    return mean, std_bound


def gradient_predictor(factor: Factor, hp: Hyperparameters):
    """A fast, unchecked :func:`predict_gradient_standardised` for a few points at a time.

    Returns ``fn(X) -> (mean, std, dmean, dstd)`` in standardised units, for an optimiser that
    calls it thousands of times on a handful of points inside the unit cube (acquisition
    polishing): the training-side arrays are prepared once, the kernel derivative is summed
    without the (n_star, n, d) tensor (``sum_n c_n dk(x*, x_n)/dx* = -(x* sum_n c_n G_n -
    sum_n c_n G_n x_n) / l^2``, kernels module docstring, with c = alpha for the mean, Eq 14,
    and c = -2 (K + sigma_n^2 I)^-1 k* for the variance, Eq 15) and nothing is validated.
    Equal to :func:`predict_gradient_standardised` to round-off.
    """
    X = factor.X
    inv_l = 1.0 / hp.length_scales
    inv_l2 = inv_l * inv_l
    B = X * inv_l
    b_sq = np.einsum("ij,ij->i", B, B)
    alpha, chol, sv = factor.alpha, factor.chol, hp.signal_var

    def predict(X_star):
        p = X_star.shape[0]
        A = X_star * inv_l
        r2 = np.einsum("ij,ij->i", A, A)[:, None] + b_sq - 2.0 * (A @ B.T)
        np.maximum(r2, 0.0, out=r2)  # as kernels.scaled_sq_dist, with the training side prepared
        K, G = kernel_and_slope(hp.kernel, r2, sv)  # Eq 16 / Matern 5/2 and G = -(1/r) dk/dr
        W = _cho_solve(chol, K.T)  # (n, p)
        mean = K @ alpha
        var = sv - np.einsum("in,ni->i", K, W)
        coeff = np.empty((2 * p, X.shape[0]))
        np.multiply(G, alpha, out=coeff[:p])
        np.multiply(G, W.T, out=coeff[p:])
        coeff[p:] *= -2.0
        grads = (coeff @ X - np.concatenate((X_star, X_star)) * coeff.sum(axis=1)[:, None]) * inv_l2
        std = np.sqrt(np.maximum(var, 0.0))
        dstd = grads[p:] / (2.0 * np.maximum(std, 1e-300)[:, None])
        dstd[std <= 0.0] = 0.0
        return mean, std, grads[:p], dstd

    return predict


def predict_gradient_standardised(
    factor: Factor, hp: Hyperparameters, X_star: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Mean, latent std and their gradients in x*, standardised units.

    ``d mean / dx* = dk(x*, X)/dx* alpha`` (Eq 14) and, from Eq 15,
    ``d var / dx* = -2 dk(x*, X)/dx* (K + sigma_n^2 I)^{-1} k(X, x*)``, ``d std = d var / (2 std)``.
    """
    n_star, d = X_star.shape
    mean, std = np.empty(n_star), np.empty(n_star)
    dmean, dstd = np.empty((n_star, d)), np.empty((n_star, d))
    step = _block_rows(factor.X.shape[0], d)
    for start in range(0, n_star, step):
        rows = slice(start, min(start + step, n_star))
        K_star, dK_star = cross_kernel_gradient_x(
            hp.kernel, X_star[rows], factor.X, hp.length_scales, hp.signal_var
        )
        mean[rows] = K_star @ factor.alpha
        dmean[rows] = np.einsum("inj,n->ij", dK_star, factor.alpha)
        weights = _cho_solve(factor.chol, K_star.T)  # (n, block)
        var = hp.signal_var - np.einsum("in,ni->i", K_star, weights)
        dvar = -2.0 * np.einsum("inj,ni->ij", dK_star, weights)
        s = np.sqrt(np.maximum(var, 0.0))
        std[rows] = s
        with np.errstate(divide="ignore", invalid="ignore"):
            dstd[rows] = np.where(s[:, None] > 0.0, dvar / (2.0 * s[:, None]), 0.0)
    return mean, std, dmean, dstd


def gls_mean(chol: np.ndarray, y: np.ndarray) -> float:
    """Generalised least-squares constant mean ``1^T K^-1 y / 1^T K^-1 1`` given chol of K.

    The mean that maximises the likelihood of ``y - m`` (ordinary kriging's constant trend).
    Unlike the sample mean it discounts clustered points: a region sampled densely (the basin EGO
    exploits) counts as one region, so away from the data the GP reverts to the level of the
    whole box rather than to the level of the points EGO crowded together.
    """
    return _gls_mean_and_weights(chol, _cho_solve(chol, y))[0]


def _gls_mean_and_weights(chol: np.ndarray, alpha: np.ndarray) -> tuple[float, np.ndarray]:
    """(m, K^-1 1) given chol of K and alpha = K^-1 y."""
    ones_weights = _cho_solve(chol, np.ones(alpha.shape[0]))
    return float(np.sum(alpha)) / float(np.sum(ones_weights)), ones_weights


def log_marginal_likelihood_standardised(
    theta: np.ndarray, X: np.ndarray, y: np.ndarray, kernel: str, eval_gradient: bool,
    sq_diffs: np.ndarray | None = None, mean: str = "zero",
) -> tuple[float, np.ndarray | None]:
    """Log marginal likelihood of standardised outputs and its gradient in theta.

    ``log p(y | X, theta) = -y^T alpha / 2 - sum log diag L - n log(2 pi) / 2`` (the Gaussian of
    Eq 11). Gradient: ``dlogp / dtheta_j = tr(W dK/dtheta_j) / 2 = sum_ij W_ij (dK/dtheta_j)_ij / 2``
    with ``W = alpha alpha^T - (K + sigma_n^2 I)^{-1}`` (Rasmussen & Williams Eq 5.9). For the
    length scales ``dK/dlog l_k = G * (x_ik - x_jk)^2 / l_k^2`` (kernels module), so with
    ``M = W * G`` the trace is ``sum_ij M_ij (x_ik - x_jk)^2``: a product with `sq_diffs`, or
    without it ``x_k^2 . (M 1 + M^T 1) - 2 x_k^T M x_k`` (one matrix product, no (n, n, d) tensor).

    Parameters
    ----------
    theta : ndarray, shape (d + 2,)
        ``log([l_1..l_d, signal_var, noise_var])``.
    sq_diffs : ndarray, shape (d, n * n), optional
        :func:`gego.surrogate.kernels.pairwise_sq_diffs` of X, for a caller that evaluates many theta on the same X.
    mean : {"zero", "constant"}
        "constant" profiles out a constant mean m: the likelihood of ``y - m`` at the m that
        maximises it, the generalised least-squares mean ``1^T K^-1 y / 1^T K^-1 1`` (ordinary
        kriging). m is optimal for every theta, so the gradient is that at fixed m (envelope
        theorem) and the formula below applies to ``y - m`` unchanged.

    Returns
    -------
    lml : float
    grad : ndarray, shape (d + 2,) or None
    """
    n, d = X.shape
    length_scales = np.exp(theta[:d])
    signal_var, noise_var = np.exp(theta[d]), np.exp(theta[d + 1])
    if sq_diffs is None:
        r2 = scaled_sq_dist(X, X, length_scales)
    else:
        r2 = (length_scales**-2 @ sq_diffs).reshape(n, n)
    K, slope = kernel_and_slope(kernel, r2, signal_var)
    K_noisy = K.copy()
    K_noisy.flat[:: n + 1] += noise_var  # the diagonal
    chol, _ = cholesky_with_jitter(K_noisy)
    alpha = _cho_solve(chol, y)
    if mean == "constant":
        m, ones_weights = _gls_mean_and_weights(chol, alpha)
        y, alpha = y - m, alpha - m * ones_weights  # K^-1 (y - m 1)
    lml = -0.5 * float(y @ alpha) - float(np.log(chol.diagonal()).sum()) - 0.5 * n * _LOG_2PI
    if not eval_gradient:
        return lml, None
    K_inv, info = lapack.dpotri(chol, lower=1)
    if info != 0:
        raise GegoError(f"GP likelihood gradient: inverse of the covariance failed (info={info})")
    # dpotri fills the lower triangle of K^-1 (the upper one is chol's zeros). Each use of W below
    # is a sum of W_ij S_ij over all (i, j) with S symmetric, so the strict lower triangle, doubled,
    # stands for both halves (no symmetrised copy).
    K_inv *= 2.0
    K_inv.flat[:: n + 1] *= 0.5
    W = np.outer(alpha, alpha)
    W -= K_inv
    M = W * slope
    if sq_diffs is None:
        # differences are shift-invariant; centring limits cancellation. M is not symmetric here:
        # sum_ij M_ij (x_i - x_j)^2 = x^2 . (M 1 + M^T 1) - 2 x^T M x
        Xc = X - X.mean(axis=0)
        trace_terms = (M.sum(axis=1) + M.sum(axis=0)) @ Xc**2 - 2.0 * np.einsum("ij,ij->j", Xc, M @ Xc)
    else:
        trace_terms = sq_diffs @ M.reshape(-1)
    grad = np.empty(d + 2)
    grad[:d] = 0.5 * trace_terms / length_scales**2
    grad[d] = 0.5 * float(W.reshape(-1) @ K.reshape(-1))  # dK/dlog sigma_f^2 = K
    grad[d + 1] = 0.5 * noise_var * float(W.trace())  # dK/dlog sigma_n^2 = sigma_n^2 I
    return lml, grad


# ---------------------------------------------------------------------------------------------
# The estimator
# ---------------------------------------------------------------------------------------------


def _as_inputs(X, name: str, n_dim: int | None = None) -> np.ndarray:
    X = np.asarray(X, dtype=float)
    if X.ndim != 2:
        raise ConfigError(f"{name}: expected a 2-D array (n_points, n_dim), got shape {X.shape}")
    if n_dim is not None and X.shape[1] != n_dim:
        raise ConfigError(f"{name}: expected {n_dim} columns (the GP's dimension), got {X.shape[1]}")
    if not np.all(np.isfinite(X)):
        raise ConfigError(f"{name}: inputs contain NaN or inf")
    return X


def _as_outputs(y, name: str, n_points: int) -> np.ndarray:
    y = np.asarray(y, dtype=float).reshape(-1)
    if y.size != n_points:
        raise ConfigError(f"{name}: expected {n_points} values (one per input row), got {y.size}")
    if not np.all(np.isfinite(y)):
        raise ConfigError(f"{name}: values contain NaN or inf (exclude failed evaluations)")
    return y


class GaussianProcess:
    """GP surrogate on unit-cube inputs, zero or constant mean, sklearn-like (fit / predict).

    Parameters
    ----------
    kernel : {"matern52", "se"}
        Covariance function; "se" is the paper's Eq 16 with ARD length scales.
    noise_floor : float
        Lower bound on the noise (nugget) variance, in units of var(y). The default 1e-10 lets
        the GP resolve improvements of ~1e-5 of the output range near the optimum (Branin: the
        last 0.03 above its minimum 0.3979 when y spans 0.4-300); 1e-6 stalled there.
    n_restarts : int
        Random restarts of L-BFGS-B besides the default start, drawn from `seed`. From 200
        fitting points on, the restarts stop early once two starts agree on the best optimum.
    n_restarts_warm : int
        Random restarts (at most n_restarts) besides the warm start when `fit` is given one.
    seed : int
        Seed of every random choice (restarts, fitting subset, local anchors).
    max_points_exact : int
        Above this many training points predictions use local GPs (gego.surrogate.local).
    local_neighbours : int
        Training points per local GP.
    max_points_fit : int
        Hyperparameters are fitted on at most this many points (a seeded random subset beyond
        it), which bounds a refit at O(max_points_fit^3) whatever N.
    noise_max : float
        Upper bound on the noise variance, in units of var(y) (default 1). For a deterministic
        objective a GP that explains a large part of var(y) as noise is a failed fit (with few
        points in several dimensions, "all noise, length scales at the lower bound" can be the
        likelihood's maximum); the EGO loop lowers it (gego.optimize.loop).
    length_scale_prior : {None, "dimension_scaled"}
        None: maximum likelihood. "dimension_scaled": maximum a posteriori with a weak
        log-normal prior on each length scale (see log_length_scale_prior).
    mean : {"zero", "constant"}
        "zero": the zero-mean GP on outputs standardised by their sample mean and std.
        "constant": a constant mean fitted with the hyperparameters (profiled likelihood, see
        :func:`gls_mean`), i.e. ordinary kriging; the fitted mean is folded into ``y_mean``, so
        the GP is still zero-mean in its standardised outputs and stores as the same plain data.
        The predictive variance leaves out the mean's own uncertainty. The EGO loop uses
        "constant" (gego.optimize.loop.DEFAULT_SURROGATE_OPTIONS).

    Notes
    -----
    Deterministic: the same calls with the same inputs and seed give bit-identical results. The
    fitted hyperparameters depend only on (X, y, seed) and the `warm_start` passed to fit, never
    on hidden state of an earlier fit.
    """

    def __init__(
        self,
        kernel: str = "matern52",
        *,
        noise_floor: float = 1e-10,
        n_restarts: int = 4,
        n_restarts_warm: int = 0,
        seed: int = 0,
        max_points_exact: int = 2000,
        local_neighbours: int = 256,
        max_points_fit: int = 500,
        length_scale_prior: str | None = None,
        noise_max: float = NOISE_VAR_MAX,
        mean: str = "zero",
    ):
        self.kernel = check_kernel(kernel)
        if not (noise_floor > 0.0 and np.isfinite(noise_floor)):
            raise ConfigError(f"noise_floor: expected a positive number, got {noise_floor!r}")
        if int(n_restarts) < 0:
            raise ConfigError(f"n_restarts: expected an integer >= 0, got {n_restarts!r}")
        if int(n_restarts_warm) < 0:
            raise ConfigError(f"n_restarts_warm: expected an integer >= 0, got {n_restarts_warm!r}")
        if int(local_neighbours) < 2:
            raise ConfigError(f"local_neighbours: expected an integer >= 2, got {local_neighbours!r}")
        if int(max_points_exact) < 1:
            raise ConfigError(f"max_points_exact: expected a positive integer, got {max_points_exact!r}")
        if int(max_points_fit) < 2:
            raise ConfigError(f"max_points_fit: expected an integer >= 2, got {max_points_fit!r}")
        if length_scale_prior not in (None, "dimension_scaled"):
            raise ConfigError(f"length_scale_prior: expected None or 'dimension_scaled', got {length_scale_prior!r}")
        self.length_scale_prior = length_scale_prior
        if mean not in ("zero", "constant"):
            raise ConfigError(f"mean: expected 'zero' or 'constant', got {mean!r}")
        self.mean = mean
        if not (noise_max > 0.0 and np.isfinite(noise_max)):
            raise ConfigError(f"noise_max: expected a positive number, got {noise_max!r}")
        self.noise_max = float(noise_max)
        self.noise_floor = float(noise_floor)
        self.n_restarts = int(n_restarts)
        self.n_restarts_warm = int(n_restarts_warm)
        self.seed = int(seed)
        self.max_points_exact = int(max_points_exact)
        self.local_neighbours = int(local_neighbours)
        self.max_points_fit = int(max_points_fit)
        # Fitted state (None until fit / set_hyperparameters).
        self._hp: Hyperparameters | None = None
        self._factor: Factor | None = None  # exact mode
        self._local = None  # LocalGP in local mode
        self.fit_report_: dict | None = None

    # --- state -----------------------------------------------------------------------------

    @property
    def n_dim(self) -> int | None:
        data = self._training_X()
        return None if data is None else data.shape[1]

    @property
    def n_train(self) -> int:
        data = self._training_X()
        return 0 if data is None else data.shape[0]

    @property
    def uses_local(self) -> bool:
        """True when predictions come from local GPs (more than max_points_exact points)."""
        return self._local is not None

    @property
    def X_train(self) -> np.ndarray:
        """Training inputs (unit cube), shape (n, d)."""
        X = self._training_X()
        if X is None:
            raise ConfigError("GaussianProcess: not fitted yet (call fit first)")
        return X

    @property
    def y_train(self) -> np.ndarray:
        """Training outputs in the original units of y, shape (n,)."""
        hp = self._require_hp()
        ys = self._local.y if self._local is not None else self._factor.y
        return ys * hp.y_std + hp.y_mean

    @property
    def hyperparameters(self) -> dict:
        """Plain-data hyperparameters: kernel, length_scales, signal_var, noise_var, y_mean, y_std."""
        return self._require_hp().as_dict()

    @property
    def theta(self) -> np.ndarray:
        """Log-hyperparameters ``log([l_1..l_d, signal_var, noise_var])`` (standardised units)."""
        return self._require_hp().theta

    @_single_threaded
    def set_hyperparameters(self, hp: dict) -> None:
        """Install hyperparameters (e.g. from a study store) without refitting.

        If the GP holds data, it is re-conditioned on the same data (outputs re-standardised
        with the new y_mean / y_std).
        """
        required = ("kernel", "length_scales", "signal_var", "noise_var", "y_mean", "y_std")
        missing = [key for key in required if key not in hp]
        if missing:
            raise ConfigError(f"hyperparameters: missing field(s) {', '.join(missing)}")
        length_scales = np.asarray(hp["length_scales"], dtype=float).reshape(-1)
        values = {k: float(hp[k]) for k in ("signal_var", "noise_var", "y_std")}
        if np.any(~(length_scales > 0)) or any(not (v > 0 and np.isfinite(v)) for v in values.values()):
            raise ConfigError("hyperparameters: length_scales, signal_var, noise_var and y_std must be > 0")
        if not np.isfinite(float(hp["y_mean"])):
            raise ConfigError("hyperparameters: y_mean must be finite")
        X = self._training_X()
        if X is not None and X.shape[1] != length_scales.size:
            raise ConfigError(
                f"hyperparameters: length_scales has {length_scales.size} entries, the data has "
                f"{X.shape[1]} dimensions"
            )
        y = None if X is None else self.y_train
        self._hp = Hyperparameters(
            kernel=check_kernel(str(hp["kernel"])),
            length_scales=length_scales,
            signal_var=values["signal_var"],
            noise_var=values["noise_var"],
            y_mean=float(hp["y_mean"]),
            y_std=values["y_std"],
        )
        self.kernel = self._hp.kernel
        self._factor, self._local = None, None
        if X is not None:
            self._condition(X, (y - self._hp.y_mean) / self._hp.y_std)

    # --- fitting ---------------------------------------------------------------------------

    @_single_threaded
    def fit(self, X, y, *, optimize: bool = True, warm_start: dict | None = None) -> "GaussianProcess":
        """Standardise y, fit hyperparameters by maximum likelihood and condition on (X, y).

        With ``mean="constant"`` the likelihood is profiled over a constant mean, and the fitted
        mean is folded into the standardisation (``hyperparameters["y_mean"]``).

        Maximises the log marginal likelihood (Eq 11) with analytic gradients by L-BFGS-B from a
        default start plus `n_restarts` seeded random starts, inside the bounds
        LENGTH_SCALE_BOUNDS, SIGNAL_VAR_BOUNDS and [noise_floor, 1]. With `warm_start` the
        starts are that earlier optimum and `n_restarts_warm` seeded random starts instead.

        Parameters
        ----------
        X : array, shape (n, d)
            Inputs scaled to the unit cube.
        y : array, shape (n,)
            Objective values (finite: failed evaluations must be excluded by the caller).
        optimize : bool
            False keeps the current hyperparameters and standardisation (as installed by
            set_hyperparameters or an earlier fit) and only conditions on the data.
        warm_start : dict, optional
            Hyperparameters of an earlier fit (the `hyperparameters` dict, e.g. from a study
            store) of the same kind of data: the likelihood changes little when a few points are
            added, so its optimum is the best start, and fewer random restarts are needed. Its
            variances are re-expressed in the new standardisation of y before starting.
        """
        X = _as_inputs(X, "X")
        y = _as_outputs(y, "y", X.shape[0])
        if X.shape[0] < 1:
            raise ConfigError("X: expected at least one training point")
        if not optimize:
            hp = self._require_hp()
            if hp.length_scales.size != X.shape[1]:
                raise ConfigError(
                    f"X: expected {hp.length_scales.size} columns (the hyperparameters' dimension), "
                    f"got {X.shape[1]}"
                )
            self._factor, self._local = None, None
            self._condition(X, (y - hp.y_mean) / hp.y_std)
            return self
        y_mean = float(np.mean(y))
        y_std = float(np.std(y))
        if not y_std > 0.0:
            y_std = 1.0  # constant outputs: nothing to scale
        ys = (y - y_mean) / y_std
        X_fit, y_fit = self._fitting_subset(X, ys)
        theta_warm = None if warm_start is None else self._warm_theta(warm_start, X.shape[1], y_std)
        theta, report = self._maximise_likelihood(X_fit, y_fit, theta_warm)
        d = X.shape[1]
        self._hp = Hyperparameters(
            kernel=self.kernel,
            length_scales=np.exp(theta[:d]),
            signal_var=float(np.exp(theta[d])),
            noise_var=float(np.exp(theta[d + 1])),
            y_mean=y_mean,
            y_std=y_std,
        )
        self.fit_report_ = report
        self._factor, self._local = None, None
        if self.mean == "constant":
            # The mean the likelihood was maximised at, on the fitting points, folded into the
            # standardisation: ys - m is what the zero-mean machinery below conditions on.
            chol, _ = cholesky_with_jitter(self._covariance(X_fit))
            shift = gls_mean(chol, y_fit)
            self._hp = replace(self._hp, y_mean=y_mean + shift * y_std)
            ys = ys - shift
            self.fit_report_ = {**report, "mean_standardised": shift}
        self._condition(X, ys)
        return self

    def _covariance(self, X: np.ndarray) -> np.ndarray:
        """K(X, X) + noise_var I with the current hyperparameters."""
        hp = self._require_hp()
        K, _ = kernel_and_slope(hp.kernel, scaled_sq_dist(X, X, hp.length_scales), hp.signal_var)
        K.flat[:: X.shape[0] + 1] += hp.noise_var
        return K

    def _fitting_subset(self, X: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = X.shape[0]
        if n <= self.max_points_fit:
            return X, ys
        rng = np.random.default_rng([self.seed, n, 1])
        keep = np.sort(rng.choice(n, size=self.max_points_fit, replace=False))
        return X[keep], ys[keep]

    def log_length_scale_prior(self, n_dim: int) -> tuple[float, float] | None:
        """(mean, std) of the normal prior on each log length scale, or None (plain ML).

        "dimension_scaled" is the weak prior of Hvarfner et al. (2024, "Vanilla Bayesian
        optimization performs great in high dimensions"), log l ~ N(sqrt2 + log(d) / 2, sqrt3)
        for inputs on the unit cube: with few points the likelihood is flat or multimodal in
        the length scales, and the prior keeps them from collapsing (a GP that reverts to its
        mean everywhere, so EI only explores) or from running off to the bound.
        """
        if self.length_scale_prior is None:
            return None
        return float(np.sqrt(2.0) + 0.5 * np.log(n_dim)), float(np.sqrt(3.0))

    def theta_bounds(self, n_dim: int) -> np.ndarray:
        """Bounds of theta for L-BFGS-B, shape (n_dim + 2, 2), log space."""
        bounds = [np.log(LENGTH_SCALE_BOUNDS)] * n_dim
        bounds.append(np.log(SIGNAL_VAR_BOUNDS))
        bounds.append(np.log([self.noise_floor, max(self.noise_max, 10 * self.noise_floor)]))
        return np.array(bounds)

    def _warm_theta(self, warm_start: dict, n_dim: int, y_std: float) -> np.ndarray:
        """theta of an earlier fit, its variances rescaled from its y_std to the new one."""
        try:
            length_scales = np.asarray(warm_start["length_scales"], dtype=float).reshape(-1)
            rescale = (float(warm_start["y_std"]) / y_std) ** 2
            variances = [float(warm_start["signal_var"]) * rescale, float(warm_start["noise_var"]) * rescale]
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"warm_start: expected a hyperparameters dict ({exc})") from None
        theta = np.log(np.concatenate([length_scales, variances]))
        if length_scales.size != n_dim or not np.all(np.isfinite(theta)):
            raise ConfigError(f"warm_start: expected {n_dim} positive length scales and positive variances")
        return theta

    def _maximise_likelihood(self, X: np.ndarray, ys: np.ndarray,
                             theta_warm: np.ndarray | None = None) -> tuple[np.ndarray, dict]:
        n, d = X.shape
        bounds = self.theta_bounds(d)
        # Default start: length scale 0.5 of the unit cube, unit signal variance (standardised
        # outputs), small noise; then seeded random starts over a plausible sub-box. A warm
        # start (the previous optimum) goes first and replaces most random starts.
        starts = [np.concatenate([np.full(d, np.log(0.5)), [0.0], [np.log(max(1e-4, self.noise_floor))]])]
        n_random = self.n_restarts
        if theta_warm is not None:
            starts = [theta_warm]
            n_random = min(self.n_restarts, self.n_restarts_warm)
        rng = np.random.default_rng([self.seed, n, 0])
        for _ in range(n_random):
            start = np.concatenate(
                [
                    rng.uniform(np.log(0.05), np.log(2.0), size=d),
                    rng.uniform(np.log(0.3), np.log(3.0), size=1),
                    rng.uniform(np.log(max(1e-6, self.noise_floor)), np.log(1e-1), size=1),
                ]
            )
            starts.append(start)

        prior = self.log_length_scale_prior(d)

        sq_diffs = pairwise_sq_diffs(X)  # once per fit: every start and evaluation reuses it

        def objective(theta):
            lml, grad = log_marginal_likelihood_standardised(theta, X, ys, self.kernel, True, sq_diffs,
                                                             self.mean)
            if prior is not None:  # MAP: add the log-normal prior of the length scales
                offset = (theta[:d] - prior[0]) / prior[1] ** 2
                lml = lml - 0.5 * float(np.sum(offset * (theta[:d] - prior[0])))
                grad = grad.copy()
                grad[:d] -= offset
            return -lml, -grad

        # With many points the likelihood is sharply peaked and one evaluation costs O(n^3):
        # stop once a second start confirms the best optimum (1e-6 relative). Small data sets
        # (multimodal likelihoods, cheap evaluations) always run every start.
        confirm = n >= _CONFIRM_FROM_N
        best_theta, best_value, n_ok, n_agree = None, np.inf, 0, 0
        for start in starts:
            start = np.clip(start, bounds[:, 0], bounds[:, 1])
            try:
                result = minimize(objective, start, jac=True, method="L-BFGS-B", bounds=bounds,
                                  options={"maxls": LBFGSB_MAX_LINE_SEARCH})
            except (GegoError, np.linalg.LinAlgError, FloatingPointError):
                continue
            if not np.isfinite(result.fun):
                continue
            n_ok += 1
            if abs(result.fun - best_value) <= 1e-6 * max(1.0, abs(best_value)):
                n_agree += 1
            elif result.fun < best_value:
                n_agree = 1
            if result.fun < best_value:
                best_theta, best_value = np.clip(result.x, bounds[:, 0], bounds[:, 1]), result.fun
            if confirm and n_agree >= 2:
                break
        if best_theta is None:
            raise GegoError(
                "GP hyperparameter fit failed from every start: check for constant or duplicated "
                "data, or raise noise_floor"
            )
        return best_theta, {"log_marginal_likelihood": float(-best_value), "includes_log_prior": prior is not None,
                            "n_points": n, "n_starts_ok": n_ok,
                            "n_starts_agreeing": n_agree}

    def _condition(self, X: np.ndarray, ys: np.ndarray) -> None:
        """Condition on standardised data: exact factor, or local GPs above max_points_exact."""
        hp = self._require_hp()
        if X.shape[0] > self.max_points_exact:
            from gego.surrogate.local import LocalGP

            self._factor = None
            self._local = LocalGP.build(X, ys, hp, n_neighbours=self.local_neighbours, seed=self.seed)
        else:
            self._local = None
            self._factor = factorise(X, ys, hp)

    # --- updates ---------------------------------------------------------------------------

    @_single_threaded
    def append(self, X_new, y_new) -> "GaussianProcess":
        """Add observations with the current hyperparameters and standardisation.

        Exact mode: block Cholesky update, O(N^2) per point instead of an O(N^3) refactorisation.
        Crossing max_points_exact switches to local GPs. Returns self.
        """
        hp = self._require_hp()
        X_old = self._training_X()
        X_new = _as_inputs(X_new, "X_new", hp.length_scales.size)
        y_new = _as_outputs(y_new, "y_new", X_new.shape[0])
        ys_new = (y_new - hp.y_mean) / hp.y_std
        if X_new.shape[0] == 0:
            return self
        if X_old is None:
            self._condition(X_new, ys_new)
        elif self._local is not None:
            self._local = self._local.extended(X_new, ys_new)
        elif X_old.shape[0] + X_new.shape[0] > self.max_points_exact:
            self._condition(np.vstack([X_old, X_new]), np.concatenate([self._factor.y, ys_new]))
        else:
            self._factor = extend_factor(self._factor, X_new, ys_new, hp)
        return self

    def condition_on(self, X_fake, y_fake) -> "GaussianProcess":
        """A copy conditioned on extra (fantasy) points; self is unchanged.

        Used for batches (kriging believer, constant liar): hyperparameters and standardisation
        stay those of self.
        """
        twin = copy.copy(self)  # factors are immutable and append builds new ones
        return twin.append(X_fake, y_fake)

    # --- prediction ------------------------------------------------------------------------

    @_single_threaded
    def predict(self, X, return_std: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """Posterior mean (Eq 14) and latent std (Eq 15) in the units of y.

        Parameters
        ----------
        X : array, shape (n_star, d)
            Test inputs in the unit cube; evaluated in blocks, so 100,000+ rows are fine.
        return_std : bool
            If False the std is not computed and None is returned in its place.

        Returns
        -------
        mean : ndarray, shape (n_star,)
        std : ndarray, shape (n_star,) or None
        """
        hp = self._require_hp()
        X = _as_inputs(X, "X", hp.length_scales.size)
        if self._local is not None:
            mean, std = self._local.predict(X, return_std)
        else:
            mean, std = predict_standardised(self._require_factor(), hp, X, return_std)
        mean = mean * hp.y_std + hp.y_mean
        return mean, (None if std is None else std * hp.y_std)

    @_single_threaded
    def predict_mean_and_std_bound(self, X, n_nearest: int = 8) -> tuple[np.ndarray, np.ndarray]:
        """Exact mean and a cheap upper bound on the latent std (units of y), for screening.

        The bound conditions on the `n_nearest` most correlated training points only (see
        predict_std_upper_bound_standardised): O(n_nearest^3) per point instead of O(N^2), and
        always >= the std of `predict`. In local mode the local prediction's own std is returned.
        """
        hp = self._require_hp()
        X = _as_inputs(X, "X", hp.length_scales.size)
        if self._local is not None:
            mean, std = self._local.predict(X, True)
        else:
            mean, std = predict_std_upper_bound_standardised(self._require_factor(), hp, X, n_nearest)
        return mean * hp.y_std + hp.y_mean, std * hp.y_std

    def nearest_training_points(self, x, n_points: int) -> np.ndarray:
        """Sorted indices of the `n_points` training points nearest to x in the ARD-scaled
        distance of the fitted length scales (all of them if there are no more)."""
        hp = self._require_hp()
        X = self.X_train
        if X.shape[0] <= n_points:
            return np.arange(X.shape[0])
        x = _as_inputs(np.reshape(x, (1, -1)), "x", hp.length_scales.size)
        r2 = scaled_sq_dist(x, X, hp.length_scales)[0]
        return np.sort(np.argpartition(r2, n_points - 1)[:n_points])

    @_single_threaded
    def neighbourhood(self, x, n_points: int) -> "GaussianProcess":
        """An exact GP on the `n_points` training points nearest to x (ARD-scaled distance).

        Same hyperparameters and standardisation as self; self if it has no more points than
        that. Cheap (O(n_points^3)) surrogate of self near x, used to polish acquisition optima
        (whose final score is then re-computed with self).
        """
        hp = self._require_hp()
        X = self.X_train
        if X.shape[0] <= n_points:
            return self
        nearest = self.nearest_training_points(x, n_points)
        ys = (self.y_train - hp.y_mean) / hp.y_std
        local = copy.copy(self)
        local._local = None
        local._factor = factorise(X[nearest], ys[nearest], hp)
        return local

    def gradient_predictor(self):
        """(fn, y_mean, y_std): ``fn(X)`` = mean, latent std and their gradients in X in
        standardised units (y = y_mean + y_std * value), unchecked and fast for a few points
        (:func:`gradient_predictor`); None in local mode (use :meth:`neighbourhood` first).
        The caller limits BLAS threads (:func:`single_thread_blas`) if it wants to."""
        hp = self._require_hp()
        if self._local is not None:
            return None
        return gradient_predictor(self._require_factor(), hp), hp.y_mean, hp.y_std

    @_single_threaded
    def predict_with_gradient(self, X) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Mean, latent std and their gradients with respect to X, in the units of y.

        Returns
        -------
        mean, std : ndarray, shape (n_star,)
        dmean_dx, dstd_dx : ndarray, shape (n_star, d)
        """
        hp = self._require_hp()
        X = _as_inputs(X, "X", hp.length_scales.size)
        if self._local is not None:
            mean, std, dmean, dstd = self._local.predict_with_gradient(X)
        else:
            mean, std, dmean, dstd = predict_gradient_standardised(self._require_factor(), hp, X)
        return mean * hp.y_std + hp.y_mean, std * hp.y_std, dmean * hp.y_std, dstd * hp.y_std

    @_single_threaded
    def log_marginal_likelihood(self, theta=None, eval_gradient: bool = False):
        """Log marginal likelihood of the standardised training outputs (Eq 11).

        Parameters
        ----------
        theta : array, shape (d + 2,), optional
            ``log([l_1..l_d, signal_var, noise_var])``; default: the fitted values.
        eval_gradient : bool
            Also return the gradient with respect to theta (sklearn's convention).

        Notes
        -----
        Uses all current training points in exact mode (O(N^3), for checks and diagnostics); in
        local mode (N > max_points_exact) the seeded subset that fit uses, so that memory stays
        O(max_points_fit^2) rather than several N x N matrices (3 GB at N = 8,000).
        """
        hp = self._require_hp()
        theta = hp.theta if theta is None else np.asarray(theta, dtype=float).reshape(-1)
        if theta.size != hp.length_scales.size + 2:
            raise ConfigError(f"theta: expected {hp.length_scales.size + 2} values, got {theta.size}")
        X = self.X_train
        ys = (self.y_train - hp.y_mean) / hp.y_std
        if self._local is not None:
            X, ys = self._fitting_subset(X, ys)
        lml, grad = log_marginal_likelihood_standardised(theta, X, ys, hp.kernel, eval_gradient, mean=self.mean)
        return (lml, grad) if eval_gradient else lml

    # --- helpers ---------------------------------------------------------------------------

    def _training_X(self) -> np.ndarray | None:
        if self._local is not None:
            return self._local.X
        if self._factor is not None:
            return self._factor.X
        return None

    def _require_hp(self) -> Hyperparameters:
        if self._hp is None:
            raise ConfigError("GaussianProcess: not fitted yet (call fit or set_hyperparameters first)")
        return self._hp

    def _require_factor(self) -> Factor:
        if self._factor is None:
            raise ConfigError("GaussianProcess: no training data yet (call fit or append first)")
        return self._factor
