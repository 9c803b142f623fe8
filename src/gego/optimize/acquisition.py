"""Expected improvement and its maximisation (Sec 2.3, Eq 17-20; Alg 1 steps 9-11).

- `expected_improvement`: Eq 20 exactly, with s the predictive standard deviation (the authors'
  script used sqrt(s); we do not).
- `log_expected_improvement`: the log of Eq 20 computed without forming EI, finite for
  z = (f_min - mean) / std anywhere in [-1e100, 1e100], so the maximiser can rank candidates
  whose EI underflows to 0 (late iterations, far from the incumbent).
- `maximize_ei`: the paper's Monte Carlo search (a fresh space-filling set of N* candidates,
  Sec 3.5) followed by L-BFGS-B polishing of the best few with analytic gradients.
- `propose_batch`: q points per iteration by kriging believer or constant liar; q = 1 is the
  paper's algorithm.

All points live in the unit cube [0, 1]^d, like the surrogate's inputs.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize
from scipy.special import erfcx, log_ndtr, ndtr
from scipy.stats import qmc

from gego.errors import ConfigError
from gego.surrogate.gp import LBFGSB_MAX_LINE_SEARCH, single_thread_blas

_LOG_SQRT_2PI = 0.5 * np.log(2.0 * np.pi)
_SQRT_HALF_PI = np.sqrt(0.5 * np.pi)
_INV_SQRT_2PI = 1.0 / np.sqrt(2.0 * np.pi)
_Z_CLIP = 1e150  # beyond this z*z overflows; Eq 20's asymptotics are flat long before
_STD_FLOOR = 1e-300  # std of exactly 0 (a training point, no noise) still gives a finite z
_ASYMPTOTIC_FROM = 100.0  # |z| from which 1 - |z| Phi/phi uses its series (_log_h_and_ratios)

STRATEGIES = ("kriging_believer", "constant_liar")
LIES = ("min", "mean", "max")
DESIGNS = ("sobol", "lhs")

# Screening (branch-and-bound) pays off once the exact std costs O(N^2) per candidate.
_SCREEN_FROM_N = 300
_SCREEN_BLOCK = 64
# Training points of the local GP on which each start is polished (exact GP below that size).
_POLISH_NEIGHBOURS = 256
# Polishing starts more than this many nats of log EI below the best candidate are not polished,
# and trial points this far below every start are floored (_polish).
_POLISH_SPREAD_NATS = 1000.0


# ---------------------------------------------------------------------------------------------
# Expected improvement, Eq 20
# ---------------------------------------------------------------------------------------------


def expected_improvement(mean, std, f_min) -> np.ndarray:
    """Expected improvement of a minimisation, Eq 20.

    ``EI = (f_min - mean) Phi(z) + std phi(z)`` with ``z = (f_min - mean) / std``; where std is 0
    the limit ``max(f_min - mean, 0)`` (the improvement of Eq 17 without uncertainty).

    Parameters
    ----------
    mean, std : array_like
        Predictive mean y-hat and standard deviation s of Eq 19 (same units as f_min).
    f_min : float or array_like
        Best objective value so far (Eq 18).

    Returns
    -------
    ndarray
        EI >= 0, broadcast shape of the inputs.
    """
    mean, std, f_min = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in (mean, std, f_min)))
    improvement = f_min - mean
    positive = std > 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(positive, improvement / np.where(positive, std, 1.0), 0.0)
    pdf = np.exp(-0.5 * z * z) / np.sqrt(2.0 * np.pi)
    ei = improvement * ndtr(z) + std * pdf  # Eq 20
    return np.where(positive, np.maximum(ei, 0.0), np.maximum(improvement, 0.0))


def _log_h_and_ratios(z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """log h(z), log(Phi(z) / h(z)) and log(phi(z) / h(z)), with ``h(z) = z Phi(z) + phi(z)``.

    ``EI = std h(z)`` (Eq 20 divided by std); the two ratios give the derivatives of log EI.
    Three regimes:

    - z > -1: direct; h(z) >= h(-1) = 0.083, no cancellation to fear.
    - -100 < z <= -1: ``h = phi(z) t`` with ``t = 1 - |z| R`` and the Mills ratio
      ``R = Phi(z) / phi(z) = erfcx(|z| / sqrt2) sqrt(pi / 2)``; the relative round-off of t is
      about eps z^2 <= 2e-12.
    - z <= -100: the series ``t = z^-2 - 3 z^-4 + 15 z^-6 - 105 z^-8 + O(z^-10)`` and
      ``R = |z|^-1 (1 - z^-2 + 3 z^-4 - 15 z^-6 + O(z^-8))``, relative truncation error < 1e-13.

    In the last two regimes the ratios are ``phi / h = 1 / t`` and ``Phi / h = R / t``, formed
    from t and R directly: subtracting the two huge logs (~ -z^2 / 2) would lose every digit.
    """
    z = np.asarray(z, dtype=float)
    upper = z > -1.0
    if upper.all():  # the usual case while polishing: the direct branch alone, without masked copies
        with np.errstate(over="ignore", under="ignore"):
            return _direct_ratios(z)
    log_h, log_Phi_ratio, log_phi_ratio = (np.empty_like(z) for _ in range(3))
    with np.errstate(over="ignore", under="ignore"):
        log_h[upper], log_Phi_ratio[upper], log_phi_ratio[upper] = _direct_ratios(z[upper])
    w = -z[~upper]
    log_t, log_R = np.empty_like(w), np.empty_like(w)
    middle = w < _ASYMPTOTIC_FROM
    log_t[middle], log_R[middle] = _mills_log_t_and_R(w[middle])
    log_t[~middle], log_R[~middle] = _series_log_t_and_R(w[~middle])
    log_h[~upper], log_Phi_ratio[~upper], log_phi_ratio[~upper] = _lower_ratios(w, log_t, log_R)
    return log_h, log_Phi_ratio, log_phi_ratio


# The regimes of _log_h_and_ratios, one function each, so that the masked evaluation there and
# the whole-array one of _log_ei_with_gradient_polish share the formulas (and their roundings).
def _direct_ratios(z):
    """z > -1: (log h, log(Phi / h), log(phi / h)) directly."""
    pdf = np.exp(-0.5 * z * z) / np.sqrt(2.0 * np.pi)
    log_h = np.log(z * ndtr(z) + pdf)
    return log_h, log_ndtr(z) - log_h, -0.5 * z * z - _LOG_SQRT_2PI - log_h


def _mills_log_t_and_R(w):
    """w = -z in [1, 100): (log t, log R) from the Mills ratio R = erfcx(w / sqrt2) sqrt(pi / 2)."""
    mills = erfcx(w / np.sqrt(2.0)) * _SQRT_HALF_PI
    return np.log1p(-w * mills), np.log(mills)


def _series_log_t_and_R(w):
    """w = -z >= 100: (log t, log R) from their asymptotic series."""
    inv2 = 1.0 / (w * w)
    log_w = np.log(w)
    return (-2.0 * log_w + np.log1p(inv2 * (-3.0 + inv2 * (15.0 - 105.0 * inv2))),
            -log_w + np.log1p(inv2 * (-1.0 + inv2 * (3.0 - 15.0 * inv2))))


def _lower_ratios(w, log_t, log_R):
    """z <= -1: (log h, log(Phi / h), log(phi / h)) from h = phi(z) t and Phi = phi(z) R."""
    return -0.5 * w * w - _LOG_SQRT_2PI + log_t, log_R - log_t, -log_t


def _confident_log_ei(z, improvement):
    """z > 1: log EI = log(f_min - mean) + log(Phi(z) + phi(z) / z) (see _log_ei)."""
    return np.log(improvement) + np.log(ndtr(z) + np.exp(-0.5 * z * z - _LOG_SQRT_2PI) / z)


def _standardised_improvement(mean, std, f_min):
    mean, std, f_min = (np.asarray(a, dtype=float) for a in (mean, std, f_min))
    if mean.shape != std.shape or f_min.shape not in ((), mean.shape):
        mean, std, f_min = np.broadcast_arrays(mean, std, f_min)
    elif f_min.shape == ():
        f_min = float(f_min)  # the polishing path: one scalar incumbent, no broadcast copies
    std_safe = np.asarray(np.maximum(std, _STD_FLOOR))
    improvement = np.asarray(f_min - mean)
    with np.errstate(over="ignore"):
        z = np.asarray(np.clip(improvement / std_safe, -_Z_CLIP, _Z_CLIP))
    return z, std_safe, improvement


def _log_ei(z, std_safe, improvement, log_h):
    """log EI = log std + log h(z); for z > 1 the equivalent
    ``log(f_min - mean) + log(Phi(z) + phi(z) / z)``, which does not add two large logs of
    opposite sign when std is tiny (keeps log EI monotone to the last bit there)."""
    log_ei = np.array(np.log(std_safe) + log_h, dtype=float)  # an array even for 0-d input
    confident = z > 1.0
    if np.any(confident):
        with np.errstate(under="ignore", over="ignore"):
            log_ei[confident] = _confident_log_ei(z[confident], improvement[confident])
    return log_ei


def log_expected_improvement(mean, std, f_min) -> np.ndarray:
    """Natural log of Eq 20, computed stably: ``log EI = log std + log h(z)``.

    Finite for every finite input (std is floored at 1e-300 and z clipped at +-1e150), equal to
    ``log(expected_improvement(...))`` wherever EI is representable, monotone decreasing in
    mean and increasing in std.
    """
    z, std_safe, improvement = _standardised_improvement(mean, std, f_min)
    return _log_ei(z, std_safe, improvement, _log_h_and_ratios(z)[0])


def log_expected_improvement_with_gradient(mean, std, f_min):
    """log EI and its partial derivatives in mean and std (for gradient-based polishing).

    With ``EI = s h(z)``: ``dEI/dmean = -Phi(z)`` and ``dEI/ds = phi(z)``, so
    ``dlogEI/dmean = -(Phi(z) / h(z)) / s`` and ``dlogEI/ds = (phi(z) / h(z)) / s``, the ratios
    formed without cancellation (see _log_h_and_ratios); finite over z in [-1e100, 1e100].

    Returns
    -------
    log_ei, dlog_ei_dmean, dlog_ei_dstd : ndarray
    """
    z, std_safe, improvement = _standardised_improvement(mean, std, f_min)
    log_h, log_Phi_ratio, log_phi_ratio = _log_h_and_ratios(z)
    log_ei = _log_ei(z, std_safe, improvement, log_h)
    with np.errstate(over="ignore", under="ignore"):
        d_mean = -np.exp(log_Phi_ratio) / std_safe
        d_std = np.exp(log_phi_ratio) / std_safe
    return log_ei, d_mean, d_std


def _log_ei_with_gradient_polish(mean, std, f_min):
    """:func:`log_expected_improvement_with_gradient` for the polishing loop's few points (a
    scalar ``f_min``), with a fraction of its array operations: where every z > -1 (h(z) >= 0.083,
    no cancellation) the direct form; otherwise the same values as the general function, bit for
    bit, from each regime's formula evaluated on the whole (tiny) array and picked per element
    (the general function's boolean masks, reductions and copies cost more than the arithmetic
    on a handful of points; measured 140 -> 20-30 us per call)."""
    std_safe = np.maximum(std, _STD_FLOOR)
    z = (f_min - mean) / std_safe
    z_list = z.tolist()
    lo, hi = min(z_list), max(z_list)
    if any(v != v for v in z_list) or not (lo > -_Z_CLIP and hi < _Z_CLIP):
        return log_expected_improvement_with_gradient(mean, std, f_min)  # NaN or clipped z
    if lo > -1.0:
        cdf = ndtr(z)
        pdf = np.exp(-0.5 * z * z) * _INV_SQRT_2PI
        h = z * cdf + pdf  # EI / std (Eq 20)
        inv = 1.0 / (h * std_safe)
        return np.log(std_safe * h), -cdf * inv, pdf * inv
    with np.errstate(all="ignore"):  # each regime's formula also runs on the other regimes' points
        w = -z
        log_t, log_R = _mills_log_t_and_R(w)
        if lo <= -_ASYMPTOTIC_FROM:
            far = w >= _ASYMPTOTIC_FROM
            t_far, R_far = _series_log_t_and_R(w)
            log_t, log_R = np.where(far, t_far, log_t), np.where(far, R_far, log_R)
        ratios = _lower_ratios(w, log_t, log_R)
        if hi > -1.0:
            upper = z > -1.0
            ratios = tuple(np.where(upper, d, low) for d, low in zip(_direct_ratios(z), ratios))
        log_h, log_Phi_ratio, log_phi_ratio = ratios
        log_ei = np.log(std_safe) + log_h
        if hi > 1.0:
            log_ei = np.where(z > 1.0, _confident_log_ei(z, f_min - mean), log_ei)
        return log_ei, -np.exp(log_Phi_ratio) / std_safe, np.exp(log_phi_ratio) / std_safe


# ---------------------------------------------------------------------------------------------
# Penalty near failed evaluations
# ---------------------------------------------------------------------------------------------


def log_avoid_penalty(X: np.ndarray, avoid: np.ndarray | None, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Log of a multiplicative penalty on EI near failed evaluations, and its gradient in X.

    ``penalty(x) = prod_a (1 - exp(-|x - a|^2 / (2 radius^2)))``: 0 at a failed point, 0.39 at
    one radius, 0.99 at three. Its log is floored at log(1e-300) so the acquisition stays finite.

    Returns
    -------
    log_penalty : ndarray, shape (n,)
    dlog_penalty_dx : ndarray, shape (n, d)
    """
    n, d = X.shape
    if avoid is None or len(avoid) == 0:
        return np.zeros(n), np.zeros((n, d))
    diff = X[:, None, :] - avoid[None, :, :]  # (n, n_avoid, d)
    t = np.einsum("ijk,ijk->ij", diff, diff) / (2.0 * radius**2)
    one_minus = -np.expm1(-t)
    log_penalty = np.log(np.maximum(one_minus, 1e-300)).sum(axis=1)
    with np.errstate(divide="ignore", over="ignore"):
        # d/dx log(1 - e^-t) = (dt/dx) / (e^t - 1), dt/dx = (x - a) / radius^2.
        weight = np.where(one_minus > 1e-300, 1.0 / np.expm1(t), 0.0)
    grad = np.einsum("ij,ijk->ik", weight, diff) / radius**2
    return log_penalty, grad


# ---------------------------------------------------------------------------------------------
# Maximisation (Monte Carlo search + L-BFGS-B)
# ---------------------------------------------------------------------------------------------


def candidate_set(n_candidates: int, n_dim: int, rng: np.random.Generator, design: str = "sobol") -> np.ndarray:
    """A fresh space-filling set of points in [0, 1]^d (the paper's MCS sample of N* points).

    "sobol": the first n_candidates points of a scrambled Sobol sequence (drawn as the next
    power of two, then cut, which avoids scipy's balance warning); "lhs": a Latin hypercube.
    """
    seed = int(rng.integers(2**63 - 1))
    if design == "sobol":
        m = int(np.ceil(np.log2(max(n_candidates, 2))))
        return qmc.Sobol(n_dim, scramble=True, rng=np.random.default_rng(seed)).random_base2(m)[:n_candidates]
    if design == "lhs":
        return qmc.LatinHypercube(n_dim, rng=np.random.default_rng(seed)).random(n_candidates)
    raise ConfigError(f"design: expected one of {', '.join(DESIGNS)}, got {design!r}")


def _local_candidates(gp, n_local: int, rng: np.random.Generator, n_best: int = 5, region=None) -> np.ndarray:
    """Gaussian perturbations of the best training points (scale 0.1 length scale, clipped).

    EI peaks near the incumbent are narrow once the GP is confident there; a uniform sample
    rarely hits them in d >= 6, so a few candidates are spent there (not in the paper's MCS).
    """
    if n_local <= 0:
        return np.empty((0, gp.n_dim))
    X_train, y_train = gp.X_train, gp.y_train
    if region is not None:
        n_best = 1  # a trust region is centred on the incumbent: perturb it at the region's scale
    best = np.argsort(y_train, kind="stable")[: min(n_best, y_train.size)]
    centres = X_train[best[rng.integers(best.size, size=n_local)]]
    scale = np.clip(0.1 * np.asarray(gp.hyperparameters["length_scales"]), 1e-3, 0.1)
    lower, upper = (0.0, 1.0) if region is None else region
    if region is not None:
        scale = np.minimum(scale, 0.25 * (upper - lower))
    return np.clip(centres + rng.normal(size=centres.shape) * scale, lower, upper)


def _acquisition_values(gp, X: np.ndarray, f_min: float, avoid, avoid_radius: float) -> np.ndarray:
    mean, std = gp.predict(X, return_std=True)
    return log_expected_improvement(mean, std, f_min) + log_avoid_penalty(X, avoid, avoid_radius)[0]


def _screened_acquisition_values(gp, X, f_min, avoid, avoid_radius, n_top: int) -> np.ndarray:
    """log EI (+ penalty) of the candidates that can be among the n_top best; -inf for the rest.

    Branch-and-bound on the monotonicity of EI in std (Sec 2.3, after Eq 20): with the exact
    mean and a cheap upper bound on std (gp.predict_mean_and_std_bound), every candidate gets an
    upper bound on log EI. Candidates are then scored exactly in decreasing order of that bound
    until the n_top-th best exact score is at least the next bound; no unscored candidate can
    then beat the n_top best, so the ranking's top is that of the brute-force computation at a
    fraction of its O(N* N^2) cost.
    """
    log_penalty = log_avoid_penalty(X, avoid, avoid_radius)[0]
    mean, std_bound = gp.predict_mean_and_std_bound(X)
    bound = log_expected_improvement(mean, std_bound, f_min) + log_penalty
    order = np.argsort(-bound, kind="stable")
    values = np.full(X.shape[0], -np.inf)
    done = 0
    while done < order.size:
        block = order[done : done + _SCREEN_BLOCK]
        mean_b, std_b = gp.predict(X[block], return_std=True)
        values[block] = log_expected_improvement(mean_b, std_b, f_min) + log_penalty[block]
        done += block.size
        if done >= n_top and done < order.size:
            kth_best = np.partition(values[order[:done]], done - n_top)[done - n_top]
            if kth_best >= bound[order[done]]:
                break
    return values


def maximize_ei(
    gp,
    f_min: float,
    *,
    n_dim: int,
    rng: np.random.Generator,
    n_candidates: int = 2048,
    n_polish: int = 2,
    avoid=None,
    avoid_radius: float = 0.05,
    design: str = "sobol",
    local_fraction: float = 0.125,
    polish_maxiter: int = 50,
    screen: bool = True,
    region=None,
) -> np.ndarray:
    """The point of the unit cube maximising expected improvement (Eq 20).

    1. Monte Carlo search (Sec 3.5): log EI on a fresh set of n_candidates points, space-filling
       except for a fraction `local_fraction` drawn near the best training points.
    2. L-BFGS-B polishing, with analytic gradients of log EI, from the `n_polish` best candidates.
    The best point found by either stage is returned.

    Parameters
    ----------
    gp : GaussianProcess
        Fitted surrogate (predict, predict_with_gradient, X_train, y_train).
    f_min : float
        Best objective value so far (Eq 18), in the units of y.
    n_dim : int
        Dimension d of the unit cube.
    rng : numpy.random.Generator
        Source of every random draw (candidate set, local perturbations).
    n_candidates : int
        N*, the Monte Carlo sample size (space-filling and local candidates together).
    n_polish : int
        Starting points for L-BFGS-B (0 = Monte Carlo search only, as in the paper).
    avoid : array, shape (k, d), optional
        Unit-cube points of failed evaluations; EI is multiplied by a penalty vanishing there.
    avoid_radius : float
        Length (unit cube) over which the penalty acts.
    design : {"sobol", "lhs"}
        Candidate design.
    local_fraction : float
        Fraction of the candidates drawn around the best training points (0 = pure MCS).
    polish_maxiter : int
        Iteration cap per L-BFGS-B run.
    screen : bool
        Rank the candidates by branch-and-bound on an upper bound of EI (exact GP with at least
        300 points): the same best candidates as brute force, far fewer O(N^2) std evaluations.
    region : (lower, upper) pair of arrays of shape (d,), optional
        Search only this sub-box of the unit cube (a trust region around the incumbent, see
        gego.optimize.loop.trust_region_at); candidates, local perturbations and polishing all
        stay inside it.

    Returns
    -------
    ndarray, shape (d,)
    """
    n_dim = _check_positive_int(n_dim, "n_dim")
    n_candidates = _check_positive_int(n_candidates, "n_candidates")
    if gp.n_dim is not None and gp.n_dim != n_dim:
        raise ConfigError(f"n_dim: the surrogate has {gp.n_dim} dimensions, got n_dim={n_dim}")
    if int(n_polish) < 0:
        raise ConfigError(f"n_polish: expected an integer >= 0, got {n_polish!r}")
    if not 0.0 <= float(local_fraction) < 1.0:
        raise ConfigError(f"local_fraction: expected a number in [0, 1), got {local_fraction!r}")
    if not avoid_radius > 0.0:
        raise ConfigError(f"avoid_radius: expected a positive number, got {avoid_radius!r}")
    if not np.isfinite(f_min):
        raise ConfigError(f"f_min: expected a finite number, got {f_min!r}")
    avoid = _check_avoid(avoid, n_dim)
    region = _check_region(region, n_dim)

    with single_thread_blas():  # many small BLAS calls: threads only add contention
        return _maximize(gp, f_min, n_dim, rng, n_candidates, int(n_polish), avoid, float(avoid_radius),
                         design, float(local_fraction), int(polish_maxiter), bool(screen), region)


def _maximize(gp, f_min, n_dim, rng, n_candidates, n_polish, avoid, avoid_radius, design,
              local_fraction, polish_maxiter, screen, region=None) -> np.ndarray:
    n_local = int(round(local_fraction * n_candidates))
    space_filling = candidate_set(n_candidates - n_local, n_dim, rng, design)
    if region is not None:
        space_filling = region[0] + (region[1] - region[0]) * space_filling
    candidates = np.vstack([space_filling, _local_candidates(gp, n_local, rng, region=region)])
    if screen and getattr(gp, "uses_local", True) is False and gp.n_train >= _SCREEN_FROM_N:
        values = _screened_acquisition_values(gp, candidates, f_min, avoid, avoid_radius, max(n_polish, 1))
    else:
        values = _acquisition_values(gp, candidates, f_min, avoid, avoid_radius)
    order = np.argsort(-values, kind="stable")
    best_x, best_value = candidates[order[0]].copy(), float(values[order[0]])

    top = values[order[:n_polish]]
    # Starts hopelessly below the best candidate are dropped: they cannot win, and a log EI of
    # -1e300 (std ~ 0 next to a training point) in the polish's summed objective would swamp
    # the other starts' changes in round-off.
    starts = candidates[order[:n_polish]][np.isfinite(top) & (top >= best_value - _POLISH_SPREAD_NATS)]
    if starts.shape[0] == 0:
        return best_x
    polished = _polish(gp, starts, f_min, avoid, avoid_radius, polish_maxiter, region)
    # Re-score with the same function as the candidates, so the comparison is like for like.
    polished_values = _acquisition_values(gp, polished, f_min, avoid, avoid_radius)
    winner = int(np.argmax(polished_values))
    if polished_values[winner] > best_value:
        best_x = polished[winner]
    return best_x


def _polish(gp, starts: np.ndarray, f_min, avoid, avoid_radius, maxiter: int, region=None) -> np.ndarray:
    """L-BFGS-B ascent of log EI from every start at once, in the unit cube.

    The p starts are optimised as one separable problem in p * d variables (the sum of their
    log EI values), so one L-BFGS-B run serves them all. Above _POLISH_NEIGHBOURS training
    points each start is polished on the exact GP of its nearest _POLISH_NEIGHBOURS points
    (gp.neighbourhood): O(M^2) per step instead of streaming the N x N factor, and the caller
    re-scores the polished points with the full GP before accepting them. Values more than
    _POLISH_SPREAD_NATS below every start are floored (flat), so that a trial point next to a
    training point (log EI ~ -1e300) does not end the line search of every start.
    """
    p, d = starts.shape
    if hasattr(gp, "neighbourhood"):
        models = [gp.neighbourhood(start, _POLISH_NEIGHBOURS) for start in starts]
    else:
        models = [gp] * p
    shared = all(model is models[0] for model in models)
    predictors = [getattr(model, "gradient_predictor", lambda: None)() for model in models[: 1 if shared else p]]
    if all(pred is not None for pred in predictors):
        # the GP's unchecked fast path, in standardised units (log EI moves by the constant
        # log y_std, its gradient not at all): a polish calls it some 40 times per start
        y_mean, y_std = predictors[0][1], predictors[0][2]
        fns = [pred[0] for pred in predictors]
        f_target = (f_min - y_mean) / y_std
        ei_with_gradient = _log_ei_with_gradient_polish
    else:  # any surrogate with predict_with_gradient, in the units of y
        fns = [model.predict_with_gradient for model in models[: 1 if shared else p]]
        f_target = f_min
        ei_with_gradient = log_expected_improvement_with_gradient

    def predict_with_gradient(X):
        if shared:
            return fns[0](X)
        parts = [fn(X[i : i + 1]) for i, fn in enumerate(fns)]
        return tuple(np.concatenate([part[k] for part in parts]) for k in range(4))

    def values_and_gradients(X):
        mean, std, dmean, dstd = predict_with_gradient(X)
        value, d_mean, d_std = ei_with_gradient(mean, std, f_target)
        with np.errstate(invalid="ignore"):  # an infinite slope (std ~ 0) times a zero derivative
            grad = d_mean[:, None] * dmean + d_std[:, None] * dstd
        if avoid is not None:
            log_pen, dlog_pen = log_avoid_penalty(X, avoid, avoid_radius)
            value, grad = value + log_pen, grad + dlog_pen
        return value, grad

    # Near a training point std ~ 0 and log EI ~ -1e300: one such trial point in a line search
    # wrecks its interpolation (and its NaN gradient would end the run of every start). Values
    # far below every start are floored, flat: the search backs off from them as from any
    # worse point.
    floor = float(np.min(values_and_gradients(starts)[0])) - _POLISH_SPREAD_NATS

    def negative(flat):
        value, grad = values_and_gradients(flat.reshape(p, d))
        below = ~(value >= floor)  # NaN too
        flat_rows = below | ~np.all(np.isfinite(grad), axis=1)
        if np.any(flat_rows):
            value, grad = np.where(below, floor, value), np.where(flat_rows[:, None], 0.0, grad)
        return -float(value.sum()), -grad.ravel()

    lower, upper = (np.zeros(d), np.ones(d)) if region is None else region
    bounds = list(zip(np.tile(lower, p), np.tile(upper, p)))
    result = minimize(negative, starts.ravel(), jac=True, method="L-BFGS-B", bounds=bounds,
                      options={"maxiter": maxiter, "maxls": LBFGSB_MAX_LINE_SEARCH})
    return np.clip(result.x.reshape(p, d), lower, upper)


def propose_batch(
    gp,
    f_min: float,
    q: int,
    *,
    rng: np.random.Generator,
    strategy: str = "kriging_believer",
    lie: str = "min",
    avoid=None,
    **maximize_kwargs,
) -> np.ndarray:
    """q points to evaluate next, one EI maximisation per point on a fantasised GP.

    After each point x_j the GP is conditioned (`gp.condition_on`) on a fantasy value:
    "kriging_believer" uses the posterior mean at x_j, "constant_liar" a constant lie (the
    minimum, mean or maximum of the observed y). f_min is lowered to the fantasy if it is lower.
    The fantasy collapses the predictive std at x_j, so later points go elsewhere; q = 1 is the
    paper's Alg 1.

    Parameters
    ----------
    gp : GaussianProcess
    f_min : float
        Best objective value so far (Eq 18).
    q : int
        Batch size.
    rng : numpy.random.Generator
    strategy : {"kriging_believer", "constant_liar"}
    lie : {"min", "mean", "max"}
        Constant liar's value (ignored by kriging believer).
    avoid : array, shape (k, d), optional
        Unit-cube points of failed evaluations (see maximize_ei).
    **maximize_kwargs
        Passed to maximize_ei (n_candidates, n_polish, avoid_radius, design, ...).

    Returns
    -------
    ndarray, shape (q, d)
        Distinct points of the unit cube.
    """
    q = _check_positive_int(q, "q")
    if strategy not in STRATEGIES:
        raise ConfigError(f"strategy: expected one of {', '.join(STRATEGIES)}, got {strategy!r}")
    if lie not in LIES:
        raise ConfigError(f"lie: expected one of {', '.join(LIES)}, got {lie!r}")
    n_dim = int(maximize_kwargs.pop("n_dim", gp.n_dim))
    avoid = _check_avoid(avoid, n_dim)
    y_obs = gp.y_train
    constant_lie = {"min": np.min(y_obs), "mean": np.mean(y_obs), "max": np.max(y_obs)}[lie]

    model, f_best, batch = gp, float(f_min), []
    for _ in range(q):
        x = maximize_ei(model, f_best, n_dim=n_dim, rng=rng, avoid=avoid, **maximize_kwargs)
        if batch and np.min(np.linalg.norm(np.asarray(batch) - x, axis=1)) < 1e-8:
            # The fantasy did not push EI away (e.g. a flat surrogate): exclude the batch so far.
            extra = np.asarray(batch) if avoid is None else np.vstack([avoid, batch])
            x = maximize_ei(model, f_best, n_dim=n_dim, rng=rng, avoid=extra, **maximize_kwargs)
        batch.append(x)
        if len(batch) == q:
            break
        if strategy == "kriging_believer":
            fantasy = float(model.predict(x[None, :], return_std=False)[0][0])
        else:
            fantasy = float(constant_lie)
        model = model.condition_on(x[None, :], [fantasy])
        f_best = min(f_best, fantasy)
    return np.asarray(batch)


def _check_positive_int(value, name: str) -> int:
    if isinstance(value, bool) or int(value) != value or int(value) < 1:
        raise ConfigError(f"{name}: expected a positive integer, got {value!r}")
    return int(value)


def _check_region(region, n_dim: int):
    if region is None:
        return None
    try:
        lower, upper = (np.asarray(v, dtype=float).reshape(-1) for v in region)
    except (TypeError, ValueError):
        raise ConfigError("region: expected a (lower, upper) pair of arrays") from None
    if lower.size != n_dim or upper.size != n_dim:
        raise ConfigError(f"region: expected lower and upper of {n_dim} values each")
    if not (np.all(lower >= 0.0) and np.all(upper <= 1.0) and np.all(lower < upper)):
        raise ConfigError("region: expected 0 <= lower < upper <= 1 in every coordinate")
    return lower, upper


def _check_avoid(avoid, n_dim: int) -> np.ndarray | None:
    if avoid is None:
        return None
    avoid = np.asarray(avoid, dtype=float)
    if avoid.size == 0:
        return None
    avoid = avoid.reshape(-1, n_dim) if avoid.ndim == 1 and avoid.size == n_dim else avoid
    if avoid.ndim != 2 or avoid.shape[1] != n_dim:
        raise ConfigError(f"avoid: expected an array of shape (k, {n_dim}), got shape {avoid.shape}")
    if not np.all(np.isfinite(avoid)):
        raise ConfigError("avoid: points contain NaN or inf")
    return avoid
