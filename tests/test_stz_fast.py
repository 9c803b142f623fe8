"""The compiled kernels (gego.stz.fast) reproduce the readable numpy reference step."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings as hyp_settings, strategies as st

from gego.stz import SolverSettings, VALIDATION_TARGET, simulate_batch
from gego.stz import fast

pytestmark = pytest.mark.skipif(not fast.AVAILABLE, reason="numba not installed")


@pytest.mark.parametrize("diffusion,derivative,split,substeps", [
    ("code", "box", "loaded", "implicit"), ("code", "box", "loaded", "explicit"), ("code", "box", "cpp", "explicit"),
    ("paper", "spectral", "loaded", "implicit"), ("paper", "spectral", "cpp", "explicit")])
def test_numba_backend_matches_numpy_reference(diffusion, derivative, split, substeps):
    from gego.datasets import load_cuzr

    energy = load_cuzr()["energy"].values
    batch = [VALIDATION_TARGET, dataclasses.replace(VALIDATION_TARGET, c0=0.2, eps0=40.0, chi_inf=0.15)]
    base = SolverSettings(n=16, ny=12, n_frames=12, gamma_final=0.24, steps_per_frame=8, diffusion=diffusion,
                          derivative=derivative, plastic_split=split, plastic_substeps=substeps)
    ref = simulate_batch(batch, energy[0], energy_final_ev=energy[-1], settings=dataclasses.replace(base, backend="numpy"))
    got = simulate_batch(batch, energy[0], energy_final_ev=energy[-1], settings=dataclasses.replace(base, backend="numba"))
    assert max(r.strain_xy_eng[-1].max() for r in ref) > 0.3, "plastic flow must be exercised"
    for r, g in zip(ref, got):
        assert r.ok and g.ok
        for name in ("strain_xy_eng", "strain_xx", "chi", "stress_xy_gpa", "stress_xy_sheared_gpa", "pressure_gpa"):
            # the FFTs differ in the last bit (numpy vs rocket-fft) and band formation amplifies
            # round-off (~10x per frame here), hence 1e-7 rather than machine precision
            assert np.abs(r[name] - g[name]).max() <= 1e-7 * max(1.0, np.abs(r[name]).max())


def test_numba_matches_numpy_where_an_avalanche_frame_is_redone():
    """The chi-jump rejection (frame restarted from its saved start with 2x the steps, up to 120) takes the
    same decisions and gives the same numbers on both backends."""
    from gego.datasets import load_cuzr

    energy = load_cuzr()["energy"].values
    brittle = dataclasses.replace(VALIDATION_TARGET, c0=0.05, s_y_gpa=0.8, beta_per_ev=15.0,
                                  e0_ev=round(float(energy[0].min()) - 1e-3, 4), chi_inf=None)
    settings = SolverSettings(n_frames=62, gamma_final=0.31, avalanche_growth=2, avalanche_steps_per_frame=120)
    ref, got = (simulate_batch([VALIDATION_TARGET, brittle], energy[0], energy_final_ev=energy[-1],
                               settings=dataclasses.replace(settings, backend=b)) for b in ("numpy", "numba"))
    assert ref[1].steps_per_frame_used.max() == 120 and ref[0].steps_per_frame_used.max() == 15
    for r, g in zip(ref, got):
        assert r.ok and g.ok
        assert np.array_equal(r.steps_per_frame_used, g.steps_per_frame_used)
        for name in ("strain_xy_eng", "chi", "stress_xy_gpa"):
            assert np.abs(r[name] - g[name]).max() <= 1e-7 * max(1.0, np.abs(r[name]).max())


@hyp_settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31), gamma=st.floats(-0.5, 1.0), ny=st.integers(4, 11), nx=st.integers(4, 11))
def test_box_corner_projection_matches_reference_projection(seed, gamma, ny, nx):
    """Real-space corner forces + one complex FFT pair (fast.py) == operators.project_velocity (3 + 6 real FFTs).

    Checks velocity, L = grad u and the elastically corrected stress (Eq 30-31) on random stresses,
    even and odd grid sizes (Nyquist rows/columns present or not) and rectangular cells.
    """
    from gego.stz import operators, physics

    rng = np.random.default_rng(seed)
    lx, ly, dt, lam, mu = 160.0, 120.0, 1e-3, 40.0, 20.0
    h1, h2 = lx / nx, ly / ny
    sheared_star = rng.normal(size=(4, ny, nx))  # sigma* in the sheared frame (Eq 35)
    phys = physics.sheared_to_physical(gamma, *sheared_star)
    phys_star = np.ascontiguousarray(np.stack(phys[:3]))

    wn = operators.wavenumbers(nx, ny, lx, ly, "box")
    velocity_ref, grad_ref = operators.project_velocity(phys_star[None], gamma, dt, lam, mu, wn)
    elastic = physics.elastic_stress_rate(grad_ref[0, 0], grad_ref[0, 1] + 1.0, grad_ref[0, 2], grad_ref[0, 3],
                                          lam, mu)
    sigma_ref = sheared_star + np.stack(physics.physical_to_sheared(gamma, *(dt * e for e in elastic)))

    kappa1, kappa2 = operators.box_symbols_full(nx, ny, lx, ly)
    z = np.empty((ny, nx), complex)
    fast.corner_force_stage(phys_star, gamma, h1, h2, z)
    uhat = np.empty((ny, nx), complex)
    fast.box_solve_stage(np.fft.fft2(z), kappa1, kappa2, gamma, dt, lam, mu, uhat, np.empty((8, nx)))
    sigma, velocity, grad = np.empty((4, ny, nx)), np.empty((2, ny, nx)), np.empty((4, ny, nx))
    sbar_next, load = np.empty((ny, nx)), np.empty((ny, nx))
    sbar_rel = rng.uniform(0.5, 1.5, size=(ny, nx))
    fast.box_finish_stage(np.fft.ifft2(uhat), sheared_star, gamma, dt, lam, mu, h1, h2,
                          np.empty((2, ny + 1, nx + 1)), sigma, velocity, grad, sbar_next, sbar_rel, load, True)
    # the fused |S| at the new strain and the non-plastic load rate (solver._step, loaded split)
    sbar_want = physics.deviator_magnitude(*physics.sheared_to_physical(gamma, *sigma))
    np.testing.assert_allclose(sbar_next, sbar_want, rtol=1e-13)
    np.testing.assert_allclose(load, (sbar_want - sbar_rel) / dt, rtol=1e-9, atol=1e-9 * np.abs(load).max())

    scale_v = np.abs(velocity_ref).max() + 1e-300
    scale_g = np.abs(grad_ref).max()
    assert scale_g > 1e-3, "the random stress must drive a velocity"
    assert np.abs(velocity - velocity_ref[0]).max() <= 1e-11 * max(scale_v, scale_g * max(h1, h2))
    assert np.abs(grad - grad_ref[0]).max() <= 1e-11 * scale_g
    assert np.abs(sigma - sigma_ref).max() <= 1e-11 * np.abs(sigma_ref).max()


def test_box_symbols_full_agree_with_rfft_half_plane():
    """The full-grid symbols equal the rfft-grid ones on the shared columns (below Nyquist) and are odd in k."""
    from gego.stz import operators

    for nx, ny in ((8, 6), (9, 7)):
        wn = operators.wavenumbers(nx, ny, 100.0, 70.0, "box")
        k1, k2 = operators.box_symbols_full(nx, ny, 100.0, 70.0)
        shared = (nx + 1) // 2  # columns 0 .. ceil(nx/2)-1 have the same (non-negative) frequency in both
        assert np.allclose(k1[:, :shared], wn.kappa1[:, :shared], atol=1e-15)
        assert np.allclose(k2[:, :shared], wn.kappa2[:, :shared], atol=1e-15)
        neg = (-np.arange(ny)[:, None] % ny, -np.arange(nx)[None, :] % nx)
        odd_rows = np.arange(ny) * 2 != ny  # Nyquist row/column map to themselves: skip
        odd_cols = np.arange(nx) * 2 != nx
        mask = odd_rows[:, None] & odd_cols[None, :]
        assert np.allclose(k1[neg][mask], -k1[mask], atol=1e-15)
        assert np.allclose(k2[neg][mask], -k2[mask], atol=1e-15)


@pytest.mark.slow
def test_numba_matches_numpy_on_full_default_run():
    """The production settings (32 x 32, 100 frames, default steps per frame): both backends agree to round-off."""
    from gego.datasets import load_cuzr

    energy = load_cuzr()["energy"].values
    ref = simulate_batch([VALIDATION_TARGET], energy[0], energy_final_ev=energy[-1],
                         settings=SolverSettings(backend="numpy"))[0]
    got = simulate_batch([VALIDATION_TARGET], energy[0], energy_final_ev=energy[-1],
                         settings=SolverSettings(backend="numba"))[0]
    assert ref.ok and got.ok and ref.strain_xy_eng[-1].max() > 1.5
    for name in ("strain_xy_eng", "chi", "stress_xy_gpa", "stress_xy_sheared_gpa", "pressure_gpa"):
        assert np.abs(ref[name] - got[name]).max() <= 1e-10 * max(1.0, np.abs(ref[name]).max())


def test_exp_array_within_one_ulp_of_libm():
    """The vectorisable exp used by the plastic sub-steps: <= 1 ulp from math.exp, exact specials."""
    import math

    rng = np.random.default_rng(3)
    x = np.concatenate([rng.uniform(-708.0, 709.0, 20000), rng.uniform(-25.0, 0.0, 20000),
                        rng.uniform(-0.4, 0.4, 5000), [0.0, -1.0, 1.0, 709.0, -708.0]])
    out = np.empty_like(x)
    fast.exp_array(x, out, np.empty(x.size, dtype=np.int64), x.size)
    ref = np.array([math.exp(v) for v in x])
    assert np.all(np.abs(out - ref) <= np.spacing(ref))
    assert out[-5] == 1.0
    special = np.array([-800.0, 800.0, np.nan, -np.inf, np.inf])
    got = np.empty(5)
    fast.exp_array(special, got, np.empty(5, dtype=np.int64), 5)
    assert got[0] == 0.0 and got[1] == np.inf and np.isnan(got[2]) and got[3] == 0.0 and got[4] == np.inf


@hyp_settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31), dt=st.floats(1e-5, 5e-3), adapt=st.sampled_from([2e-3, 2e-2]),
       mode=st.sampled_from(["cpp", "loaded-explicit", "loaded-implicit"]))
def test_plastic_stage_matches_reference_substeps(seed, dt, adapt, mode):
    """fast.plastic_stage (compacted, vectorised rounds) == physics.integrate_plastic_step(_implicit) per cell.

    The loaded modes get a random load rate of either sign, with some cells below yield that the load
    brings to yield within the step (they must be integrated) and some it does not (left untouched).
    """
    from gego.stz import physics

    rng = np.random.default_rng(seed)
    ny, nx, g = 7, 9, float(rng.uniform(0.0, 0.5))
    mu, eps0s, c0, chi_inf, l_chi, adapt_chi = 23.5, 7e5, 0.55, 0.16, 40.0, 1e-2
    sig = rng.normal(scale=0.9, size=(4, ny, nx))
    chi = rng.uniform(0.06, 0.2, size=(ny, nx))
    phys = physics.sheared_to_physical(g, *sig)
    sbar = physics.deviator_magnitude(*phys)
    assert (sbar >= 1.0).any() and (sbar < 1.0).any()
    loaded, implicit = mode != "cpp", mode == "loaded-implicit"
    load = np.zeros((ny, nx))
    if loaded:
        load = rng.normal(scale=2.0 * mu, size=(ny, nx))
        below = sbar < 1.0
        reach = 1.0 - sbar + rng.uniform(-0.5, 0.5, size=(ny, nx)) * dt * mu  # some just reach yield, some not
        load[below] = (reach / dt)[below]
    kw = dict(mu=mu, eps0_per_strain=eps0s, c0=c0, chi_inf=chi_inf, adapt_dev=adapt, max_substeps=20000)
    if implicit:
        drop, chi_ref, stuck = physics.integrate_plastic_step_implicit(sbar, chi, dt, load, adapt_chi=adapt_chi, **kw)
    else:
        drop, chi_ref, stuck = physics.integrate_plastic_step(sbar, chi, dt, load_rate=load if loaded else None, **kw)
    ratio, chi_pl, kap, sbar_rel = (np.full((ny, nx), np.nan) for _ in range(4))

    def stage(max_sub, sbar_given=None):
        sbar_grid = np.empty((ny, nx)) if sbar_given is None else sbar_given.copy()
        return fast.plastic_stage(sig, chi, load, loaded, implicit, g, dt, mu, eps0s, c0, chi_inf, l_chi, False,
                                  adapt, adapt_chi, max_sub, ratio, chi_pl, kap, sbar_rel, sbar_grid,
                                  sbar_given is not None, *fast.plastic_scratch(ny * nx))

    # |S| handed over by the previous step's finish stage gives the same result as computing it
    kmax_given, _ = stage(20000, sbar_given=sbar)
    given = [a.copy() for a in (ratio, chi_pl, kap, sbar_rel)]
    kmax, flag = stage(20000)
    assert kmax == kmax_given and all(np.array_equal(a, b, equal_nan=True)
                                      for a, b in zip(given, (ratio, chi_pl, kap, sbar_rel)))
    assert not flag and not stuck.any()
    assert np.allclose(ratio * sbar, drop, rtol=1e-12, atol=1e-15)
    assert np.allclose(chi_pl, chi_ref, rtol=1e-12, atol=0)
    k_ref = physics.chi_diffusivity(drop / (2.0 * mu * dt), l_chi, c0, "code")
    assert np.allclose(kap, k_ref, rtol=1e-12, atol=1e-300) and kmax == kap.max()
    if loaded:
        assert np.allclose(sbar_rel, sbar - drop, rtol=1e-12, atol=1e-15)
        untouched = (sbar < 1.0) & (sbar + load * dt < 1.0)
        assert untouched.any() and np.all(ratio[untouched] == 0.0) and np.all(chi_pl[untouched] == chi[untouched])
    assert np.all(drop >= 0) and np.all(drop <= sbar)
    # a cap far below the needed sub-steps is reported as stuck
    if (drop > 3 * adapt).any():
        _, flag = stage(2)
        assert flag


def test_compiled_frame_recording_matches_numpy_record():
    """fast.record_frame / finite_members == solver._record / _finite_members on a random batched state."""
    from gego.stz import solver

    rng = np.random.default_rng(11)
    nb, ny, nx, gamma, h1, h2 = 3, 6, 5, 0.37, 12.5, 9.0
    state = solver._State(sigma=rng.normal(size=(nb, 4, ny, nx)), chi=rng.uniform(0.05, 0.2, (nb, ny, nx)),
                          refmap=rng.normal(scale=2.0, size=(nb, 2, ny, nx)), velocity=rng.normal(size=(nb, 2, ny, nx)),
                          grad=rng.normal(size=(nb, 4, ny, nx)), load_rate=rng.normal(size=(nb, ny, nx)))
    mat = solver._Material.from_params([VALIDATION_TARGET, dataclasses.replace(VALIDATION_TARGET, s_y_gpa=0.9),
                                        dataclasses.replace(VALIDATION_TARGET, s_y_gpa=1.1)])
    members = np.array([4, 0, 2])
    ref, got = (solver._Buffers.allocate(5, 3, ny, nx, True) for _ in range(2))
    solver._record(ref, 1, members, state, gamma, mat, h1, h2, True)
    solver._record_compiled(got, 1, members, state, gamma, mat, h1, h2, True)
    for name, arr in ref.named.items():
        assert np.isnan(arr[[1, 3]]).all() and np.isnan(got.named[name][[1, 3]]).all(), name
        assert np.allclose(got.named[name][members], arr[members], rtol=1e-13, atol=1e-14, equal_nan=True), name
        assert np.isfinite(got.named[name][members, 1]).all() and np.isnan(got.named[name][members, 0]).all(), name
    state.chi[1, 2, 3] = -0.1
    state.refmap[2, 0, 0, 0] = np.nan
    ok = np.empty(nb, dtype=np.bool_)
    fast.finite_members(state.sigma, state.chi, state.refmap, state.velocity, ok)
    assert list(ok) == list(solver._finite_members(state)) == [True, False, False]


def test_numba_matches_numpy_where_frames_are_refined(stiff_bulk):
    """The stiff-bulk refinement (frames of 120-240 steps) gives the same numbers on both backends."""
    from gego.datasets import load_cuzr

    energy = load_cuzr()["energy"].values
    settings = SolverSettings(n_frames=30, gamma_final=0.15)
    ref, got = (simulate_batch([stiff_bulk], energy[0], energy_final_ev=energy[-1],
                               settings=dataclasses.replace(settings, backend=b))[0] for b in ("numpy", "numba"))
    assert ref.ok and got.ok and ref.steps_per_frame_used.max() > 15
    assert np.array_equal(ref.steps_per_frame_used, got.steps_per_frame_used)
    for name in ("strain_xy_eng", "chi", "stress_xy_gpa"):
        assert np.abs(ref[name] - got[name]).max() <= 1e-10 * max(1.0, np.abs(ref[name]).max())


@hyp_settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), gamma=st.floats(0.0, 0.5), stress=st.floats(0.5, 1.5),
       chi_mean=st.floats(0.05, 0.4))
def test_compiled_stiffness_quantile_matches_frame_steps_reference(seed, gamma, stress, chi_mean):
    """fast.stiff_quantile gives the numpy frame_steps' 90th-percentile stiffness."""
    from gego.stz import VALIDATION_TARGET, physics
    from gego.stz import solver

    rng = np.random.default_rng(seed)
    nb, ny, nx = 3, 8, 12
    sigma = rng.normal(scale=0.2, size=(nb, 4, ny, nx))
    sigma[:, 2] += stress
    state = solver._State(sigma=sigma, chi=chi_mean * (1 + 0.3 * rng.random((nb, ny, nx))),
                          refmap=np.zeros((nb, 2, ny, nx)), velocity=np.zeros((nb, 2, ny, nx)),
                          grad=np.zeros((nb, 4, ny, nx)), load_rate=rng.normal(scale=10.0, size=(nb, ny, nx)))
    mat = solver._Material.from_params([VALIDATION_TARGET] * nb)
    settings = SolverSettings(n=nx, ny=ny)
    dgamma = settings.gamma_final / settings.n_frames
    rank = int(0.9 * (ny * nx - 1))
    got = np.empty(nb)
    fast.stiff_quantile(state.sigma, state.chi, state.load_rate, gamma, dgamma, mat.eps0_per_strain.ravel(),
                        mat.mu.ravel(), rank, got)
    phys = physics.sheared_to_physical(gamma, *(sigma[:, k] for k in range(4)))
    sbar = physics.deviator_magnitude(*phys)
    reach = sbar + np.maximum(state.load_rate, 0) * dgamma >= 1
    _, k = physics.stz_rate_and_stiffness(np.where(reach, np.maximum(sbar, 1), sbar), state.chi,
                                          mat.eps0_per_strain, mat.mu)
    want = np.sort(k.reshape(nb, -1), axis=1)[:, rank]
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)


@hyp_settings(max_examples=60, deadline=None)
@given(k_stiff=st.floats(0.0, 1e6), frame=st.integers(0, 99), first=st.sampled_from([np.inf, 0.0, 0.05, 0.2]),
       base=st.sampled_from([10, 15, 60]), limit=st.sampled_from([None, 4.0, 1.0]),
       window=st.sampled_from([None, 0.1, 0.03]), base_adv=st.sampled_from([0, 1, 3]), diffuse_at_base=st.booleans())
def test_compiled_frame_plan_matches_the_python_frame_rules(k_stiff, frame, first, base, limit, window, base_adv,
                                                           diffuse_at_base):
    """fast.frame_plan (the compiled frame loop's planning) = solver.doubled_steps (frame_steps' rule),
    windowed_steps, advect_every and diffuse_every."""
    from gego.stz import solver

    settings = SolverSettings(steps_per_frame=base, stiff_step_limit=limit, stiff_window_strain=window,
                              base_steps_per_advection=base_adv, diffuse_at_base_step=diffuse_at_base)
    gamma = settings.gamma_final * frame / settings.n_frames
    dgamma = settings.gamma_final / settings.n_frames
    planned = solver.doubled_steps(np.array([k_stiff]), settings)
    want_steps, want_first = solver.windowed_steps(planned, np.array([first]), gamma, settings)
    n = int(want_steps[0])
    got = fast.frame_plan(k_stiff, gamma, first, base, limit or 0.0, settings.max_steps_per_frame, dgamma,
                          window or 0.0, settings.late_max_steps_per_frame, base_adv, diffuse_at_base)
    assert got == (n, want_first[0], solver.advect_every(n, settings), solver.diffuse_every(n, settings))
