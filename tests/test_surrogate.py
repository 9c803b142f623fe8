"""Tests of the GP surrogate (gego.surrogate): kernels, likelihood, fit, append, prediction.

Independent references: finite differences for every analytic derivative, scikit-learn's
GaussianProcessRegressor for the likelihood, its gradient and the predictions.
"""

import copy

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gego.errors import ConfigError
from gego.surrogate import KERNELS, GaussianProcess
from gego.surrogate.gp import cholesky_with_jitter, log_marginal_likelihood_standardised
from gego.surrogate.kernels import (
    cross_kernel_gradient_x,
    kernel_gradient_log_params,
    kernel_matrix,
    pairwise_sq_diffs,
)

sk_gp = pytest.importorskip("sklearn.gaussian_process")
sk_kernels = pytest.importorskip("sklearn.gaussian_process.kernels")


def toy_function(X):
    """A smooth, anisotropic test function on the unit cube."""
    return np.sin(5.0 * X[:, 0]) + 2.0 * X[:, 1] ** 2 + 0.3 * np.cos(3.0 * X[:, -1])


def toy_data(rng, n=40, d=3):
    X = rng.random((n, d))
    return X, toy_function(X)


def central_difference(fun, x, step=1e-6):
    """Central finite-difference gradient of a scalar (or array) function of a vector."""
    grads = []
    for k in range(x.size):
        e = np.zeros_like(x)
        e[k] = step
        grads.append((fun(x + e) - fun(x - e)) / (2 * step))
    return np.stack(grads, axis=-1)


# --------------------------------------------------------------------------------- kernels


@pytest.mark.parametrize("kernel", KERNELS)
def test_kernel_log_parameter_gradient_matches_finite_differences(kernel, rng):
    X = rng.random((7, 3))
    theta = np.log([0.3, 0.7, 1.4, 2.5])  # three length scales, signal variance

    def K_of(theta):
        return kernel_matrix(kernel, X, X, np.exp(theta[:3]), np.exp(theta[3]))

    K, dK = kernel_gradient_log_params(kernel, X, np.exp(theta[:3]), np.exp(theta[3]))
    np.testing.assert_allclose(K, K_of(theta), rtol=1e-14)
    np.testing.assert_allclose(dK, central_difference(K_of, theta), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("kernel", KERNELS)
def test_kernel_input_gradient_matches_finite_differences(kernel, rng):
    X = rng.random((6, 2))
    x_star = rng.random(2)
    ls, sv = np.array([0.4, 0.9]), 1.7

    def row(x):
        return kernel_matrix(kernel, x[None, :], X, ls, sv)[0]

    K_star, dK_star = cross_kernel_gradient_x(kernel, x_star[None, :], X, ls, sv)
    np.testing.assert_allclose(K_star[0], row(x_star), rtol=1e-14)
    np.testing.assert_allclose(dK_star[0], central_difference(row, x_star), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("kernel", KERNELS)
def test_kernel_analytic_values(kernel):
    """k(x, x) = signal variance; SE at r = 1 is exp(-1/2) (Eq 16); Matern at r = 1 by hand."""
    x = np.array([[0.2, 0.5]])
    ls = np.array([0.3, 0.4])
    assert kernel_matrix(kernel, x, x, ls, 2.0)[0, 0] == pytest.approx(2.0, rel=1e-14)
    x_unit_away = x + np.array([[0.3, 0.0]])  # exactly one length scale along axis 0
    expected = np.exp(-0.5) if kernel == "se" else (1 + np.sqrt(5) + 5 / 3) * np.exp(-np.sqrt(5))
    assert kernel_matrix(kernel, x, x_unit_away, ls, 1.0)[0, 0] == pytest.approx(expected, rel=1e-12)


# --------------------------------------------------------------------- likelihood vs sklearn


def sklearn_regressor(kernel, hp, X, y):
    """sklearn's GPR with the same kernel and hyperparameters, not optimised."""
    base = (
        sk_kernels.RBF(length_scale=hp["length_scales"])
        if kernel == "se"
        else sk_kernels.Matern(length_scale=hp["length_scales"], nu=2.5)
    )
    sk_kernel = sk_kernels.ConstantKernel(hp["signal_var"]) * base + sk_kernels.WhiteKernel(hp["noise_var"])
    model = sk_gp.GaussianProcessRegressor(sk_kernel, alpha=0.0, optimizer=None, normalize_y=True)
    return model.fit(X, y)


@pytest.mark.parametrize("kernel", KERNELS)
def test_likelihood_gradient_and_predictions_match_sklearn(kernel, rng):
    X, y = toy_data(rng, n=35, d=3)
    hp = {
        "kernel": kernel,
        "length_scales": [0.35, 0.6, 1.3],
        "signal_var": 1.8,
        "noise_var": 1e-3,
        "y_mean": float(np.mean(y)),
        "y_std": float(np.std(y)),  # sklearn's normalize_y uses the ddof=0 std too
    }
    gp = GaussianProcess(kernel)
    gp.set_hyperparameters(hp)
    gp.fit(X, y, optimize=False)
    sk = sklearn_regressor(kernel, hp, X, y)

    # sklearn orders theta as [log signal_var, log length scales..., log noise_var].
    sk_theta = sk.kernel_.theta
    ours_theta = np.concatenate([sk_theta[1:4], sk_theta[:1], sk_theta[4:]])
    np.testing.assert_allclose(ours_theta, gp.theta, rtol=1e-14)
    sk_lml, sk_grad = sk.log_marginal_likelihood(sk_theta, eval_gradient=True)
    lml, grad = gp.log_marginal_likelihood(eval_gradient=True)
    assert lml == pytest.approx(sk_lml, rel=1e-10)
    sk_grad_ours_order = np.concatenate([sk_grad[1:4], sk_grad[:1], sk_grad[4:]])
    np.testing.assert_allclose(grad, sk_grad_ours_order, rtol=1e-7, atol=1e-8)
    # The fit's path, on precomputed squared differences, against the same reference.
    ys = (y - hp["y_mean"]) / hp["y_std"]
    lml_d, grad_d = log_marginal_likelihood_standardised(gp.theta, X, ys, kernel, True, pairwise_sq_diffs(X))
    assert lml_d == pytest.approx(sk_lml, rel=1e-10)
    np.testing.assert_allclose(grad_d, sk_grad_ours_order, rtol=1e-7, atol=1e-8)

    X_test = rng.random((50, 3))
    mean, std = gp.predict(X_test)
    sk_mean, sk_std = sk.predict(X_test, return_std=True)
    np.testing.assert_allclose(mean, sk_mean, rtol=1e-9, atol=1e-10)
    # sklearn's std includes the WhiteKernel noise; ours is the latent std of Eq 15.
    noise_in_y_units = hp["noise_var"] * hp["y_std"] ** 2
    np.testing.assert_allclose(std**2 + noise_in_y_units, sk_std**2, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("kernel", KERNELS)
def test_likelihood_gradient_matches_finite_differences(kernel, rng):
    X, y = toy_data(rng, n=25, d=2)
    ys = (y - y.mean()) / y.std()
    theta = np.log([0.3, 0.8, 1.5, 1e-2])
    for mean in ("zero", "constant"):
        numeric = central_difference(
            lambda t: log_marginal_likelihood_standardised(t, X, ys, kernel, False, mean=mean)[0], theta, step=1e-5)
        for sq_diffs in (None, pairwise_sq_diffs(X)):
            _, grad = log_marginal_likelihood_standardised(theta, X, ys, kernel, True, sq_diffs, mean=mean)
            np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-6)


def test_squared_differences_layout_and_size_cap(rng, monkeypatch):
    """D[k, i n + j] = (x_ik - x_jk)^2; above the cap the likelihood falls back to the
    matrix-product form, which gives the same value and gradient."""
    import gego.surrogate.kernels as kernels_module

    X = rng.random((7, 3))
    D = pairwise_sq_diffs(X)
    assert D.shape == (3, 49)
    assert D[2, 3 * 7 + 5] == (X[3, 2] - X[5, 2]) ** 2
    np.testing.assert_array_equal(D.reshape(3, 7, 7), np.transpose(D.reshape(3, 7, 7), (0, 2, 1)))
    monkeypatch.setattr(kernels_module, "SQ_DIFFS_MAX", 3 * 49 - 1)
    assert pairwise_sq_diffs(X) is None
    y = np.sin(4 * X).sum(axis=1)
    ys = (y - y.mean()) / y.std()
    theta = np.log([0.4, 0.7, 1.1, 1.3, 1e-3])
    with_d = log_marginal_likelihood_standardised(theta, X, ys, "matern52", True, D)
    without = log_marginal_likelihood_standardised(theta, X, ys, "matern52", True, None)
    assert with_d[0] == pytest.approx(without[0], rel=1e-12)
    np.testing.assert_allclose(with_d[1], without[1], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_fit_reaches_sklearn_maximum_likelihood(kernel, rng):
    """Our multistart L-BFGS-B finds a likelihood at least as high as sklearn's own optimiser
    on the same model and bounds."""
    X, y = toy_data(rng, n=30, d=2)
    gp = GaussianProcess(kernel, seed=3).fit(X, y)
    base = sk_kernels.RBF([0.5, 0.5], (5e-3, 20.0)) if kernel == "se" else sk_kernels.Matern(
        [0.5, 0.5], (5e-3, 20.0), nu=2.5
    )
    sk_kernel = sk_kernels.ConstantKernel(1.0, (1e-2, 1e2)) * base + sk_kernels.WhiteKernel(
        1e-4, (gp.noise_floor, 1.0)
    )
    sk = sk_gp.GaussianProcessRegressor(
        sk_kernel, alpha=0.0, normalize_y=True, n_restarts_optimizer=2, random_state=0
    ).fit(X, y)
    assert gp.log_marginal_likelihood() >= sk.log_marginal_likelihood_value_ - 1e-4 * abs(
        sk.log_marginal_likelihood_value_
    )
    # A local maximum in every hyperparameter strictly inside its bounds. Checked on values, not
    # by |gradient| < tol: with the noise variance at its floor the likelihood is flat down to
    # round-off (~1e-5 here) and L-BFGS-B stops where its line search cannot improve, which may
    # leave a gradient of a few 1e-2 in a direction that gains nothing.
    best = gp.log_marginal_likelihood()
    bounds = gp.theta_bounds(2)
    for k in np.flatnonzero((gp.theta > bounds[:, 0] + 0.05) & (gp.theta < bounds[:, 1] - 0.05)):
        for step in (-0.05, -0.01, 0.01, 0.05):
            theta = gp.theta.copy()
            theta[k] += step
            assert gp.log_marginal_likelihood(theta) <= best + 1e-6 * abs(best), (k, step)


# --------------------------------------------------------------------------- fit behaviour


def test_fit_is_deterministic_and_respects_noise_floor(rng):
    X, y = toy_data(rng, n=30, d=3)
    a = GaussianProcess(seed=5, noise_floor=1e-4).fit(X, y)
    b = GaussianProcess(seed=5, noise_floor=1e-4).fit(X, y)
    assert a.hyperparameters == b.hyperparameters
    X_test = rng.random((100, 3))
    assert np.array_equal(a.predict(X_test)[0], b.predict(X_test)[0])
    assert np.array_equal(a.predict(X_test)[1], b.predict(X_test)[1])
    assert a.hyperparameters["noise_var"] >= 1e-4


def test_warm_start_finds_the_cold_optimum_with_fewer_likelihood_evaluations(rng, monkeypatch):
    """A refit after a few new points, started from the previous optimum, reaches the same
    likelihood maximum as the cold multistart (to optimiser tolerance) in far fewer evaluations;
    a warm start in other output units is rescaled (same length scales, same optimum)."""
    import gego.surrogate.gp as gp_module

    calls = []
    real = gp_module.log_marginal_likelihood_standardised
    monkeypatch.setattr(gp_module, "log_marginal_likelihood_standardised",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    X, y = toy_data(rng, n=33, d=3)
    before = GaussianProcess(seed=1).fit(X[:30], y[:30])
    calls.clear()
    cold = GaussianProcess(seed=2).fit(X, y)
    n_cold, calls[:] = len(calls), []
    warm = GaussianProcess(seed=2).fit(X, y, warm_start=before.hyperparameters)
    n_warm, calls[:] = len(calls), []
    assert warm.log_marginal_likelihood() >= cold.log_marginal_likelihood() - 1e-5 * abs(cold.log_marginal_likelihood())
    assert n_warm * 3 <= n_cold
    # Restarting at an optimum stays there.
    again = GaussianProcess(seed=2).fit(X, y, warm_start=warm.hyperparameters)
    np.testing.assert_allclose(again.theta, warm.theta, atol=1e-3)
    # Variances are fractions of var(y): a start fitted when std(y) was twice today's keeps its
    # absolute variances, i.e. four times the standardised ones.
    hp = warm.hyperparameters
    theta = GaussianProcess()._warm_theta({**hp, "y_std": 2 * hp["y_std"]}, 3, hp["y_std"])
    np.testing.assert_allclose(np.exp(theta), [*hp["length_scales"], 4 * hp["signal_var"], 4 * hp["noise_var"]])
    with pytest.raises(ConfigError, match="warm_start"):
        GaussianProcess().fit(X, y, warm_start={"length_scales": [0.5, 0.5]})
    with pytest.raises(ConfigError, match="warm_start: expected 3"):
        GaussianProcess().fit(X, y, warm_start={**warm.hyperparameters, "length_scales": [0.5, 0.5]})


def test_length_scale_prior_is_a_map_estimate_between_ml_and_the_prior(rng):
    """With the prior, the fit is stationary for log-likelihood + log-prior (finite differences
    of that sum vanish at the interior optimum), and with few points it pulls the length scales
    from the ML values towards the prior's median."""
    X, y = toy_data(rng, n=12, d=3)
    ml = GaussianProcess(seed=0).fit(X, y)
    gp = GaussianProcess(seed=0, length_scale_prior="dimension_scaled").fit(X, y)
    mu, sigma = gp.log_length_scale_prior(3)
    assert mu == pytest.approx(np.sqrt(2) + 0.5 * np.log(3)) and sigma == pytest.approx(np.sqrt(3))

    def log_posterior(theta):
        return gp.log_marginal_likelihood(theta) - 0.5 * np.sum(((theta[:3] - mu) / sigma) ** 2)

    bounds = gp.theta_bounds(3)
    theta = gp.theta
    interior = (theta > bounds[:, 0] + 1e-4) & (theta < bounds[:, 1] - 1e-4)
    grad = central_difference(log_posterior, theta, step=1e-5)
    assert np.all(np.abs(grad[interior]) < 1e-2)
    assert log_posterior(theta) >= log_posterior(ml.theta) - 1e-8
    assert np.all(np.abs(theta[:3] - mu) <= np.abs(ml.theta[:3] - mu) + 1e-6)
    assert gp.fit_report_["includes_log_prior"] and not ml.fit_report_["includes_log_prior"]
    with pytest.raises(ConfigError, match="length_scale_prior"):
        GaussianProcess(length_scale_prior="gamma")


def test_gp_interpolates_and_reverts_to_prior(rng):
    """Analytic limits: near-noise-free data are reproduced with ~0 std at the training points;
    far from the data mean -> y_mean and std -> sqrt(signal_var) y_std (Eq 14-15)."""
    X, y = toy_data(rng, n=30, d=2)
    gp = GaussianProcess("se", noise_floor=1e-8, seed=0).fit(X, y)
    mean, std = gp.predict(X)
    np.testing.assert_allclose(mean, y, atol=1e-3 * np.std(y))
    assert np.all(std < 1e-2 * np.std(y))
    hp = gp.hyperparameters
    far = np.full((1, 2), 1e3 * max(hp["length_scales"]))
    mean_far, std_far = gp.predict(far)
    assert mean_far[0] == pytest.approx(hp["y_mean"], abs=1e-12)
    assert std_far[0] == pytest.approx(np.sqrt(hp["signal_var"]) * hp["y_std"], rel=1e-12)


def test_cholesky_jitter_escalation_on_singular_matrix():
    v = np.array([1.0, 2.0, 3.0])
    singular = np.outer(v, v)  # rank one: plain Cholesky fails
    chol, jitter = cholesky_with_jitter(singular)
    assert jitter > 0.0
    np.testing.assert_allclose(chol @ chol.T, singular + jitter * np.eye(3), rtol=1e-12, atol=1e-14)


def test_duplicate_points_do_not_break_fit_or_append(rng):
    X, y = toy_data(rng, n=20, d=2)
    X_dup = np.vstack([X, X[:5]])
    y_dup = np.concatenate([y, y[:5]])
    gp = GaussianProcess(noise_floor=1e-12, seed=0).fit(X_dup, y_dup)
    gp.append(X[:3], y[:3])
    mean, std = gp.predict(rng.random((10, 2)))
    assert np.all(np.isfinite(mean)) and np.all(np.isfinite(std))


# ---------------------------------------------------------------------------------- append


@pytest.mark.parametrize("kernel", KERNELS)
def test_append_equals_full_refactorisation(kernel, rng):
    X, y = toy_data(rng, n=60, d=3)
    # Fixed, moderately conditioned hyperparameters: the comparison tests the algebra, not the
    # round-off amplification of a condition number of 1e10.
    hp = {"kernel": kernel, "length_scales": [0.3, 0.4, 0.5], "signal_var": 1.0,
          "noise_var": 1e-4, "y_mean": float(np.mean(y[:40])), "y_std": float(np.std(y[:40]))}
    base = GaussianProcess(kernel)
    base.set_hyperparameters(hp)
    base.fit(X[:40], y[:40], optimize=False)
    one_by_one = copy.deepcopy(base)
    for i in range(40, 60):
        one_by_one.append(X[i : i + 1], y[i : i + 1])
    block = copy.deepcopy(base).append(X[40:], y[40:])
    full = GaussianProcess(kernel)
    full.set_hyperparameters(base.hyperparameters)
    full.fit(X, y, optimize=False)
    for model in (one_by_one, block):
        np.testing.assert_allclose(model._factor.chol, full._factor.chol, rtol=0, atol=1e-10)
        np.testing.assert_allclose(model._factor.alpha, full._factor.alpha, rtol=1e-10, atol=1e-10)
        X_test = rng.random((200, 3))
        for got, want in zip(model.predict(X_test), full.predict(X_test)):
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
    assert one_by_one.hyperparameters == base.hyperparameters  # append never refits


def test_condition_on_leaves_original_unchanged(rng):
    X, y = toy_data(rng, n=30, d=2)
    gp = GaussianProcess(seed=0).fit(X, y)
    X_test = rng.random((20, 2))
    before = gp.predict(X_test)
    x_fake = np.array([[0.5, 0.5]])
    mean0, std0 = gp.predict(x_fake)
    twin = gp.condition_on(x_fake, [-3.0])
    after = gp.predict(X_test)
    assert gp.n_train == 30 and twin.n_train == 31
    assert np.array_equal(before[0], after[0]) and np.array_equal(before[1], after[1])
    # Rank-one Gaussian update at the fantasy point: m' = m + v / (v + noise) (y - m).
    hp = gp.hyperparameters
    v, noise = std0[0] ** 2, hp["noise_var"] * hp["y_std"] ** 2
    expected = mean0[0] + v / (v + noise) * (-3.0 - mean0[0])
    assert twin.predict(x_fake)[0][0] == pytest.approx(expected, rel=1e-6)


def test_set_hyperparameters_replays_bit_identically(rng):
    X, y = toy_data(rng, n=30, d=3)
    live = GaussianProcess(seed=2).fit(X, y)
    replay = GaussianProcess(seed=2)
    replay.set_hyperparameters(live.hyperparameters)
    replay.fit(X, y, optimize=False)
    rebuilt = GaussianProcess(seed=2)
    rebuilt.set_hyperparameters(live.hyperparameters)
    rebuilt.fit(X, y, optimize=False)
    X_test = rng.random((64, 3))
    assert np.array_equal(replay.predict(X_test)[1], rebuilt.predict(X_test)[1])
    np.testing.assert_allclose(replay.predict(X_test)[0], live.predict(X_test)[0], rtol=1e-12)


# ------------------------------------------------------------------------------ prediction


def test_prediction_vectorised_over_100000_points(rng):
    X, y = toy_data(rng, n=60, d=4)
    gp = GaussianProcess(seed=0).fit(X, y)
    X_test = rng.random((100_000, 4))
    mean, std = gp.predict(X_test)
    assert mean.shape == (100_000,) and std.shape == (100_000,)
    assert np.all(np.isfinite(mean)) and np.all(std >= 0)
    # Block boundaries change nothing: any subset predicted alone gives the same numbers.
    subset = rng.choice(100_000, size=500, replace=False)
    sub_mean, sub_std = gp.predict(X_test[subset])
    np.testing.assert_allclose(sub_mean, mean[subset], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(sub_std, std[subset], rtol=1e-10, atol=1e-12)
    assert gp.predict(X_test[:10], return_std=False)[1] is None


def _fixed_gp(kernel, X, y):
    """A GP on (X, y) with fixed hyperparameters (3-D inputs, noise variance 1e-4)."""
    gp = GaussianProcess(kernel)
    gp.set_hyperparameters({"kernel": kernel, "length_scales": [0.3, 0.5, 0.8], "signal_var": 1.5,
                            "noise_var": 1e-4, "y_mean": 0.2, "y_std": 1.3})
    return gp.fit(X, y, optimize=False)


@pytest.mark.parametrize("kernel", KERNELS)
def test_gradient_predictor_equals_predict_with_gradient(kernel, rng):
    # the polishing fast path (no (n*, n, d) tensor, standardised units, no checks) = the checked one
    X, y = toy_data(rng, n=50, d=3)
    # a noise variance that keeps K well conditioned: the latent variance sv - k* K^-1 k* is then
    # free of cancellation, so the two summation orders agree to round-off
    gp = _fixed_gp(kernel, X, y)
    fn, y_mean, y_std = gp.gradient_predictor()
    X_test = np.vstack([rng.random((4, 3)), X[7] + 1e-3])  # one point next to a training point
    want = gp.predict_with_gradient(X_test)
    mean, std, dmean, dstd = fn(X_test)
    got = (y_mean + y_std * mean, y_std * std, y_std * dmean, y_std * dstd)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-12 * np.abs(w).max())
    local = GaussianProcess(kernel, seed=0, max_points_exact=20).fit(X, y)
    assert local.uses_local and local.gradient_predictor() is None  # polish on neighbourhoods instead


@pytest.mark.parametrize("kernel", KERNELS)
def test_predict_with_gradient_matches_finite_differences(kernel, rng):
    X, y = toy_data(rng, n=40, d=3)
    gp = _fixed_gp(kernel, X, y)
    X_test = rng.random((5, 3))
    mean, std, dmean, dstd = gp.predict_with_gradient(X_test)
    ref_mean, ref_std = gp.predict(X_test)
    np.testing.assert_allclose(mean, ref_mean, rtol=1e-10)
    np.testing.assert_allclose(std, ref_std, rtol=1e-8)
    for i, x in enumerate(X_test):
        fd_mean = central_difference(lambda v: gp.predict(v[None, :])[0][0], x)
        fd_std = central_difference(lambda v: gp.predict(v[None, :])[1][0], x)
        np.testing.assert_allclose(dmean[i], fd_mean, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(dstd[i], fd_std, rtol=1e-4, atol=1e-6)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(3, 25), d=st.integers(1, 4))
def test_std_bounded_by_prior_and_shrinks_with_data(seed, n, d):
    """Posterior std <= prior std, and conditioning on more points never increases it."""
    rng = np.random.default_rng(seed)
    X = rng.random((n, d))
    y = rng.normal(size=n)
    hp = {"kernel": "matern52", "length_scales": list(rng.uniform(0.1, 1.0, d)),
          "signal_var": 1.3, "noise_var": 1e-3, "y_mean": 0.0, "y_std": 1.0}
    gp = GaussianProcess()
    gp.set_hyperparameters(hp)
    gp.fit(X[:-1], y[:-1], optimize=False)
    X_test = rng.random((30, d))
    std_before = gp.predict(X_test)[1]
    std_after = gp.condition_on(X[-1:], y[-1:]).predict(X_test)[1]
    assert np.all(std_before <= np.sqrt(1.3) * (1 + 1e-12))
    assert np.all(std_after <= std_before + 1e-9)


# ---------------------------------------------------------------------------------- local GP


def test_local_gp_with_all_points_as_neighbours_equals_exact(rng):
    """With every point in every neighbourhood, the local GP is the exact GP."""
    X, y = toy_data(rng, n=60, d=2)
    exact = GaussianProcess(seed=0).fit(X, y)
    local = GaussianProcess(seed=0, max_points_exact=59, local_neighbours=60)
    local.set_hyperparameters(exact.hyperparameters)
    local.fit(X[:59], y[:59], optimize=False)
    local.append(X[59:], y[59:])  # crossing max_points_exact switches to local GPs
    assert local.uses_local and not exact.uses_local
    X_test = rng.random((300, 2))
    for got, want in zip(local.predict(X_test), exact.predict(X_test)):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-10)
    got = local.predict_with_gradient(X_test[:5])
    want = exact.predict_with_gradient(X_test[:5])
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-10)


def test_local_gp_close_to_exact_and_append_updates(rng):
    X, y = toy_data(rng, n=700, d=2)
    hp = {"kernel": "matern52", "length_scales": [0.25, 0.5], "signal_var": 2.0,
          "noise_var": 1e-5, "y_mean": float(np.mean(y)), "y_std": float(np.std(y))}
    exact = GaussianProcess()
    exact.set_hyperparameters(hp)
    exact.fit(X, y, optimize=False)
    local = GaussianProcess(seed=0, max_points_exact=300, local_neighbours=100)
    local.set_hyperparameters(exact.hyperparameters)
    local.fit(X, y, optimize=False)
    assert local.uses_local
    X_test = rng.random((2000, 2))
    mean_l, std_l = local.predict(X_test)
    mean_e, std_e = exact.predict(X_test)
    scale = np.std(y)
    assert np.median(np.abs(mean_l - mean_e)) < 1e-4 * scale
    assert np.max(np.abs(mean_l - mean_e)) < 5e-3 * scale
    # Conditioning on fewer points can only raise the std.
    assert np.all(std_l >= std_e - 1e-9 * scale)
    # A new point changes the local prediction next to it and is reproduced there.
    x_new = np.array([[0.123, 0.456]])
    y_new = np.array([toy_function(x_new)[0] + 0.5])
    before = local.predict(x_new)[0][0]
    twin = local.condition_on(x_new, y_new)
    # The point joins the owning neighbourhood: rank-one update m' = m + v / (v + noise) (y - m).
    v = local.predict(x_new)[1][0] ** 2
    expected = before + v / (v + hp["noise_var"] * hp["y_std"] ** 2) * (y_new[0] - before)
    assert twin.predict(x_new)[0][0] == pytest.approx(expected, rel=1e-3)
    assert local.predict(x_new)[0][0] == before  # the original is untouched
    assert twin.n_train == 701 and local.n_train == 700


# ------------------------------------------------------------------------------ bad input


def test_bad_inputs_raise_one_line_config_errors(rng):
    with pytest.raises(ConfigError, match="kernel"):
        GaussianProcess("rbf")
    with pytest.raises(ConfigError, match="noise_floor"):
        GaussianProcess(noise_floor=0.0)
    X, y = toy_data(rng, n=10, d=2)
    with pytest.raises(ConfigError, match="y: expected 10 values"):
        GaussianProcess().fit(X, y[:5])
    y_nan = y.copy()
    y_nan[3] = np.nan
    with pytest.raises(ConfigError, match="NaN"):
        GaussianProcess().fit(X, y_nan)
    gp = GaussianProcess().fit(X, y)
    with pytest.raises(ConfigError, match="X: expected 2 columns"):
        gp.predict(rng.random((3, 3)))
    with pytest.raises(ConfigError, match="not fitted"):
        GaussianProcess().predict(X)
    with pytest.raises(ConfigError, match="missing field"):
        GaussianProcess().set_hyperparameters({"kernel": "se"})


def test_neighbourhood_is_exact_gp_on_nearest_points(rng):
    X, y = toy_data(rng, n=200, d=2)
    gp = GaussianProcess()
    gp.set_hyperparameters({"kernel": "matern52", "length_scales": [0.2, 0.5], "signal_var": 1.0,
                            "noise_var": 1e-6, "y_mean": float(y.mean()), "y_std": float(y.std())})
    gp.fit(X, y, optimize=False)
    assert gp.neighbourhood(X[0], 500) is gp  # no more points than asked: the GP itself
    centre = np.array([0.4, 0.6])
    local = gp.neighbourhood(centre, 50)
    assert local.n_train == 50 and gp.n_train == 200
    assert local.hyperparameters == gp.hyperparameters
    # Its points are the 50 nearest in the ARD-scaled metric.
    scaled = np.sum(((X - centre) / np.asarray(gp.hyperparameters["length_scales"])) ** 2, axis=1)
    np.testing.assert_array_equal(np.sort(local.X_train, axis=0), np.sort(X[np.argsort(scaled)[:50]], axis=0))
    # Fewer conditioning points: std can only grow.
    X_test = centre + 0.02 * rng.standard_normal((20, 2))
    assert np.all(local.predict(X_test)[1] >= gp.predict(X_test)[1] - 1e-12)


# --- constant mean (ordinary kriging) --------------------------------------------------------


@pytest.mark.parametrize("kernel", KERNELS)
def test_profiled_constant_mean_is_the_likelihood_maximum_over_the_mean(kernel, rng):
    """The "constant" likelihood equals the zero-mean likelihood of y - m maximised over m (found
    here by a scalar search), and its gradient matches finite differences of itself."""
    from scipy.optimize import minimize_scalar

    X, y = toy_data(rng, n=25, d=2)
    ys = (y - y.mean()) / y.std() + 0.7  # offset, so that the mean to fit is far from 0
    theta = np.log([0.3, 0.8, 1.5, 1e-2])

    def zero_mean_lml(m):
        return log_marginal_likelihood_standardised(theta, X, ys - m, kernel, False)[0]

    best = minimize_scalar(lambda m: -zero_mean_lml(m), bracket=(-3.0, 3.0), tol=1e-12)
    profiled, grad = log_marginal_likelihood_standardised(theta, X, ys, kernel, True, mean="constant")
    assert profiled == pytest.approx(-best.fun, rel=1e-10, abs=1e-10)
    assert profiled > zero_mean_lml(0.0) + 1e-3  # the offset costs the zero mean something

    def lml(theta):
        return log_marginal_likelihood_standardised(theta, X, ys, kernel, False, mean="constant")[0]

    np.testing.assert_allclose(grad, central_difference(lml, theta, step=1e-5), rtol=1e-5, atol=1e-6)


def test_constant_mean_gp_predicts_the_ordinary_kriging_formula(rng):
    """Fitted with mean="constant", predictions equal m + k^T K^-1 (y - m 1) with the GLS mean m,
    computed here directly from the fitted hyperparameters; far from the data they revert to m,
    not to the sample mean."""
    X = np.vstack([0.1 + 0.05 * rng.random((12, 2)), rng.random((8, 2))])  # a crowded corner
    y = np.where(np.all(X < 0.2, axis=1), -2.0, 0.0) + 0.1 * np.sin(5 * X[:, 0])
    gp = GaussianProcess("matern52", seed=1, mean="constant").fit(X, y)
    hp = gp.hyperparameters
    K = kernel_matrix("matern52", X, X, np.asarray(hp["length_scales"]), hp["signal_var"])
    K[np.diag_indices_from(K)] += hp["noise_var"]
    ones = np.ones(len(y))
    m = (ones @ np.linalg.solve(K, y)) / (ones @ np.linalg.solve(K, ones))  # in units of y (scale-free)
    assert hp["y_mean"] == pytest.approx(m, rel=1e-7, abs=1e-9)
    assert hp["y_mean"] > y.mean() + 0.2  # the crowded low points count as one region
    X_test = rng.random((30, 2))
    K_star = kernel_matrix("matern52", X_test, X, np.asarray(hp["length_scales"]), hp["signal_var"])
    expected = m + K_star @ np.linalg.solve(K, y - m)
    np.testing.assert_allclose(gp.predict(X_test)[0], expected, rtol=1e-7, atol=1e-7)
    assert gp.fit_report_["mean_standardised"] == pytest.approx((m - y.mean()) / y.std(), rel=1e-7)
    # A zero-mean GP installed with the same hyperparameters is the same predictor.
    twin = GaussianProcess("matern52")
    twin.fit(X, y)
    twin.set_hyperparameters(hp)
    np.testing.assert_allclose(twin.predict(X_test)[0], gp.predict(X_test)[0], rtol=1e-12, atol=1e-12)


def test_mean_option_is_validated():
    with pytest.raises(ConfigError, match="mean: expected 'zero' or 'constant'"):
        GaussianProcess(mean="linear")
