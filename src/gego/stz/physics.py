"""The physical terms of the STZ model, one function per term, on plain numpy arrays.

Conventions
-----------
* Time is measured in applied engineering shear strain (quasi-static limit): a rate "per unit
  strain" is a rate per second divided by the shear rate gamma_dot.
* Stresses are in units of the yield stress s_y. A stress state is the tuple
  ``(xx, yy, xy, zz)`` of plane-strain components; ``zz`` is carried because the deviator is
  three-dimensional.
* Parameters may be scalars or arrays broadcastable against the fields (a batch of parameter
  sets is a leading axis of shape ``(B, 1, 1)``).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "initial_chi",
    "chi_inf_from_energy",
    "deviator",
    "deviator_magnitude",
    "stz_factor",
    "plastic_rate_per_strain",
    "chi_source_rate",
    "integrate_plastic_step",
    "integrate_plastic_step_implicit",
    "elastic_stress_rate",
    "truesdell_terms",
    "sheared_to_physical",
    "physical_to_sheared",
    "chi_diffusivity",
]


def initial_chi(energy_ev: np.ndarray, beta_per_ev, e0_ev) -> np.ndarray:
    """Eq 38: chi = beta (E - E0), the initial effective temperature (dimensionless)."""
    return np.asarray(beta_per_ev) * (np.asarray(energy_ev, dtype=float) - np.asarray(e0_ev))


def chi_inf_from_energy(energy_final_ev: np.ndarray, beta_per_ev: float, e0_ev: float) -> float:
    """chi_inf = beta (max_x E_final(x) - E0), as the reference runs derived it (no 0.95 factor)."""
    return float(beta_per_ev * (np.max(energy_final_ev) - e0_ev))


def deviator(sxx, syy, sxy, szz):
    """Deviatoric part S = sigma - tr(sigma)/3 I of a plane-strain stress; returns (Sxx, Syy, Sxy, Szz)."""
    mean = (sxx + syy + szz) / 3.0
    return sxx - mean, syy - mean, sxy, szz - mean


def deviator_magnitude(sxx, syy, sxy, szz):
    """|S| = sqrt(S:S / 2) of the 3-D deviator (units of s_y; |S| = 1 is yield, Eq 32).

    Equals sqrt(s^2 + tau^2 + 3 q^2) in the C++ variables (p, q, s, tau).
    """
    dxx, dyy, _, dzz = deviator(sxx, syy, sxy, szz)
    return np.sqrt(0.5 * (dxx * dxx + dyy * dyy + dzz * dzz) + sxy * sxy)


def stz_factor(sbar):
    """Eq 33: F(|S|) = -2 + |S| + exp(-|S|) (2 + |S|)."""
    return -2.0 + sbar + np.exp(-sbar) * (2.0 + sbar)


def plastic_rate_per_strain(sbar, chi, eps0_per_strain):
    """Eq 32: scalar plastic rate D (per unit applied strain), with D^pl = D S / |S|.

    D = eps0 / (tau0 gamma_dot) * exp(-1/chi) * (1 - 1/|S|) * F(|S|) for |S| >= 1, else 0.
    ``eps0_per_strain`` is eps0 / (tau0 gamma_dot).
    """
    sbar_safe = np.maximum(sbar, 1.0)
    rate = eps0_per_strain * np.exp(-1.0 / chi) * (1.0 - 1.0 / sbar_safe) * stz_factor(sbar_safe)
    return np.where(sbar >= 1.0, rate, 0.0)


def chi_source_rate(d_rate, sbar, chi, chi_inf, c0):
    """Eq 29 source term as coded: dchi/dgamma = S:D^pl (chi_inf - chi) / c0 = 2 D |S| (chi_inf - chi) / c0."""
    return 2.0 * d_rate * sbar * (chi_inf - chi) / c0


def _plastic_cells(sbar, chi, dt, load_rate, mu, eps0_per_strain, c0, chi_inf):
    """Flattened outputs and the working set of the plastic integrators: every cell at or above
    yield, or brought there within the step by its load rate (Eq 32: D = 0 below |S| = 1).

    Returns (shape, |S| flat, chi flat (a copy, the output), drop, stuck, cell indices, then per
    working cell: mu, eps0_per_strain, c0, chi_inf, |S|, chi, load rate).
    """
    shape = sbar.shape
    sbar_flat = sbar.reshape(-1)
    chi_new = np.array(chi, dtype=float).reshape(-1).copy()
    drop = np.zeros(sbar_flat.size)
    stuck = np.zeros(sbar_flat.size, dtype=bool)
    load_flat = np.zeros(sbar_flat.size) if load_rate is None else np.asarray(load_rate, dtype=float).reshape(-1)
    idx = np.flatnonzero((sbar_flat >= 1.0) | (sbar_flat + load_flat * dt >= 1.0))

    def per_cell(value):
        return np.broadcast_to(np.asarray(value, dtype=float), shape).reshape(-1)[idx]

    params = tuple(per_cell(v) for v in (mu, eps0_per_strain, c0, chi_inf))
    return (shape, sbar_flat, chi_new, drop, stuck, idx, *params, sbar_flat[idx].copy(), chi_new[idx], load_flat[idx])


def _keep(keep, *arrays):
    """The arrays restricted to the cells still sub-stepping (``keep``)."""
    return tuple(a[keep] for a in arrays)


def integrate_plastic_step(sbar, chi, dt, *, mu, eps0_per_strain, c0, chi_inf, adapt_dev=2e-3,
                           max_substeps=20000, load_rate=None):
    """Integrate the local plastic relaxation over one step, with adaptive sub-steps.

    Per cell, d|S|/dgamma = g - 2 mu D(|S|, chi) (stress in units of s_y, mu = mu_gpa / s_y_gpa) and
    dchi/dgamma = 2 D |S| (chi_inf - chi) / c0 (Eq 29, 32-33) are integrated with forward-Euler
    sub-steps of length at most ``adapt_dev / max(2 mu D, |g|)``; this keeps the stiff exp(-1/chi)
    factor from overshooting. ``g`` (``load_rate``) is the non-plastic rate of |S| (elastic
    loading, Truesdell, advection) of the previous step: with g = 0 (the C++) each cell relaxes
    as if its total strain were frozen for the step, which caps a stiff cell's plastic rate at
    about (1 - exp(-k dt)) / dt instead of k and under-resolves shear bands (first order in
    k dt, k = d(2 mu D)/d|S|); with g the cell creeps at the stress its surroundings hold it at.
    Cells below yield that the load does not bring to yield within the step are untouched.

    Parameters
    ----------
    sbar, chi : arrays of the same shape (deviator magnitude in s_y, effective temperature).
    dt : step in applied strain.
    mu, eps0_per_strain, c0, chi_inf : scalars or arrays broadcastable to ``sbar``.
    load_rate : None (= 0, the C++) or array of ``sbar``'s shape, d|S|/dgamma without plasticity.

    Returns
    -------
    drop : array, the plastic decrease of |S| over the step, int 2 mu D dgamma (>= 0; with
        g = 0 the C++ ``ddev``).
    chi_new : array, chi after the plastic source.
    stuck : boolean array of ``sbar``'s shape, True where the sub-step cap was hit.
    """
    cells = _plastic_cells(sbar, chi, dt, load_rate, mu, eps0_per_strain, c0, chi_inf)
    shape, sbar_flat, chi_new, drop, stuck, idx = cells[:6]
    if idx.size == 0:
        return drop.reshape(shape), chi_new.reshape(shape), stuck.reshape(shape)
    mu_c, eps_c, c0_c, inf_c, s, c, g = cells[6:]
    s_start = s.copy()
    remaining = np.full(idx.size, float(dt))
    for _ in range(max_substeps):
        d_rate = plastic_rate_per_strain(s, c, eps_c)
        relax = 2.0 * mu_c * d_rate  # plastic d|S|/dgamma from Eq 30 with D^pl = D S/|S|
        speed = np.maximum(relax, np.abs(g))  # = relax for the C++ split (g = 0)
        limited = remaining * speed > adapt_dev
        sub_dt = np.where(limited, adapt_dev / np.where(limited, speed, 1.0), remaining)
        remaining = np.where(limited, remaining - sub_dt, 0.0)
        c = c + chi_source_rate(d_rate, s, c, inf_c, c0_c) * sub_dt  # Eq 29 source
        s = s + sub_dt * (g - relax)
        if not limited.any():
            break
        finished = ~limited
        if finished.any():  # write back finished cells and shrink the working set
            done = idx[finished]
            drop[done] = s_start[finished] - s[finished] + g[finished] * dt
            chi_new[done] = c[finished]
            idx, s, c, s_start, remaining, g, mu_c, eps_c, c0_c, inf_c = _keep(
                limited, idx, s, c, s_start, remaining, g, mu_c, eps_c, c0_c, inf_c)
    else:
        stuck[idx] = True
    drop[idx] = s_start - s + g * (dt - remaining)
    chi_new[idx] = c
    # plastic flow only lowers |S| (with g != 0 the difference above can round to -1e-16), and the
    # deviator is scaled by (1 - drop/|S|): never past zero. Both are no-ops for g = 0.
    np.clip(drop, 0.0, sbar_flat, out=drop)
    return drop.reshape(shape), chi_new.reshape(shape), stuck.reshape(shape)


def stz_rate_and_stiffness(sbar, chi, eps0_per_strain, mu):
    """(2 mu D, d(2 mu D)/d|S|) of Eq 32-33 for |S| >= 1 (zeros below yield), units of s_y per unit strain.

    d/ds[(1 - 1/s) F(s)] = F(s)/s^2 + (1 - 1/s) F'(s) with F'(s) = 1 - exp(-s)(1 + s).
    """
    s = np.maximum(sbar, 1.0)
    es = np.exp(-s)
    f = -2.0 + s + es * (2.0 + s)  # F(|S|), Eq 33
    amp = 2.0 * mu * eps0_per_strain * np.exp(-1.0 / chi)
    relax = amp * (1.0 - 1.0 / s) * f  # 2 mu D, Eq 32
    stiff = amp * (f / (s * s) + (1.0 - 1.0 / s) * (1.0 - es * (1.0 + s)))  # d(2 mu D)/d|S|
    yielding = sbar >= 1.0
    return np.where(yielding, relax, 0.0), np.where(yielding, stiff, 0.0)


def integrate_plastic_step_implicit(sbar, chi, dt, load_rate, *, mu, eps0_per_strain, c0, chi_inf,
                                    adapt_dev=2e-3, adapt_chi=1e-2, max_substeps=20000):
    """Plastic sub-steps of d|S|/dgamma = g - 2 mu D(|S|, chi), dchi/dgamma = Eq 29 source, linearly implicit in |S|.

    Each sub-step is a Rosenbrock-Euler step |S| += h (g - R) / (1 + h R') with R = 2 mu D and
    R' = dR/d|S| (:func:`stz_rate_and_stiffness`), chi explicit with the source (Eq 29) at the
    sub-step's midpoint in |S| (R + R' ds / 2 at |S| + ds / 2: second order in ds at no extra
    exp). Unlike the C++'s forward Euler (:func:`integrate_plastic_step`, whose sub-step bound
    relax * h <= adapt_dev does not bound h R' and leaves an O(adapt_dev) error in the overstress
    |S| - 1 of stiff cells), it is stable for any h, so the sub-step only has to resolve the
    change of the rate along the path: the NET change of |S| is at most the larger of
    ``adapt_dev`` and the change that moves R by ``adapt_chi`` relative (adapt_chi R / R', a
    function of |S| alone: 0.0034 at |S| = 1.5, 0.036 at |S| = 6), and exp(-1/chi) changes by at
    most ``adapt_chi`` relative (|dchi| <= adapt_chi chi^2). In steady creep (R = g) that is
    about one sub-step per step; a low-chi cell loaded elastically far above yield (a brittle
    sample before its avalanche) no longer sub-steps at the |S| bound 2e-3 (gego <= 0.6: about
    4 sub-steps per step at 15 steps per frame for nothing; with both changes the 0-D error of
    tests/test_stz.py::test_uniform_chi_matches_ode_solution is 0.64 % instead of 0.61 %).

    Returns (plastic drop int R dgamma (>= 0, at most |S|), chi_new, stuck) as
    :func:`integrate_plastic_step`.
    """
    cells = _plastic_cells(sbar, chi, dt, load_rate, mu, eps0_per_strain, c0, chi_inf)
    shape, sbar_flat, chi_new, drop, stuck, idx = cells[:6]
    if idx.size == 0:
        return drop.reshape(shape), chi_new.reshape(shape), stuck.reshape(shape)
    mu_c, eps_c, c0_c, inf_c, s, c, g = cells[6:]
    plastic = np.zeros(idx.size)
    remaining = np.full(idx.size, float(dt))
    for _ in range(max_substeps):
        relax, stiff = stz_rate_and_stiffness(s, c, eps_c, mu_c)
        net = np.abs(g - relax)
        # |ds| <= ds_max: adapt_dev, or where looser the |S| change that moves R (Eq 32-33) by adapt_chi relative
        ds_max = np.where(stiff > 0, np.maximum(adapt_dev, adapt_chi * relax / np.where(stiff > 0, stiff, 1.0)),
                          adapt_dev)
        excess = net - ds_max * stiff  # |ds| = h net / (1 + h R') <= ds_max  <=>  h excess <= ds_max
        h = np.where(excess > 0, np.minimum(remaining, ds_max / np.where(excess > 0, excess, 1.0)), remaining)
        chi_rate = relax / mu_c * s * (inf_c - c) / c0_c  # Eq 29 source, 2 D |S| (chi_inf - chi) / c0
        chi_cap = adapt_chi * c * c
        h = np.where(np.abs(chi_rate) * h > chi_cap, chi_cap / np.maximum(np.abs(chi_rate), 1e-300), h)
        limited = h < remaining
        remaining = np.where(limited, remaining - h, 0.0)
        ds = h * (g - relax) / (1.0 + h * stiff)  # Rosenbrock-Euler step of d|S|/dgamma = g - 2 mu D (Eq 30, 32)
        plastic = plastic + (h * g - ds)
        # Eq 29 chi source at the sub-step's midpoint in |S| (R linearised, no extra exp): the explicit
        # chi update is what limits the looser |S| bound above
        c = c + (relax + 0.5 * stiff * ds) / mu_c * (s + 0.5 * ds) * (inf_c - c) / c0_c * h
        s = s + ds
        if not limited.any():
            break
        finished = ~limited
        if finished.any():  # write back finished cells and shrink the working set
            done = idx[finished]
            drop[done] = plastic[finished]
            chi_new[done] = c[finished]
            idx, s, c, g, plastic, remaining, mu_c, eps_c, c0_c, inf_c = _keep(
                limited, idx, s, c, g, plastic, remaining, mu_c, eps_c, c0_c, inf_c)
    else:
        stuck[idx] = True
    drop[idx] = plastic
    chi_new[idx] = c
    # the linearised sub-step can give a small negative plastic increment in a stiff cell unloading
    # fast (g < 0): plastic flow only lowers |S|; the deviator is scaled by (1 - drop/|S|): never past zero
    np.clip(drop, 0.0, sbar_flat, out=drop)
    return drop.reshape(shape), chi_new.reshape(shape), stuck.reshape(shape)


def elastic_stress_rate(lxx, lxy, lyx, lyy, lame_lambda, mu):
    """Eq 30: C : D for isotropic C, with D = sym(L), L_ij = d v_i / d x_j (plane strain, D_zz = 0).

    Returns (xx, yy, xy, zz) in the units of ``mu`` times the units of L.
    """
    trace = lxx + lyy
    return (lame_lambda * trace + 2.0 * mu * lxx,
            lame_lambda * trace + 2.0 * mu * lyy,
            mu * (lxy + lyx),
            lame_lambda * trace)


def truesdell_terms(sxx, syy, sxy, szz, lxx, lxy, lyx, lyy):
    """Eq 30: the non-corotational part of the Truesdell rate, L sigma + sigma L^T - tr(L) sigma.

    d sigma/dt (material) = C:(D - D^pl) + L sigma + sigma L^T - tr(L) sigma.
    Returns (xx, yy, xy, zz).
    """
    trace = lxx + lyy
    txx = 2.0 * (lxx * sxx + lxy * sxy) - trace * sxx
    tyy = 2.0 * (lyx * sxy + lyy * syy) - trace * syy
    txy = lxx * sxy + lxy * syy + sxx * lyx + sxy * lyy - trace * sxy
    tzz = -trace * szz
    return txx, tyy, txy, tzz


def sheared_to_physical(gamma, sxx, syy, sxy, szz):
    """sigma = T Sigma T^T with T = [[1, gamma], [0, 1]] (Eq 35).

    Sigma is the sheared-frame stress the C++ stores (its ``tau`` is Sigma_xy); the physical
    shear stress is sigma_xy = Sigma_xy + gamma Sigma_yy (= tau - gamma (p + q + s)).
    """
    return (sxx + 2.0 * gamma * sxy + gamma * gamma * syy, syy, sxy + gamma * syy, szz)


def physical_to_sheared(gamma, sxx, syy, sxy, szz):
    """Sigma = T^-1 sigma T^-T, the inverse of :func:`sheared_to_physical`."""
    return (sxx - 2.0 * gamma * sxy + gamma * gamma * syy, syy, sxy - gamma * syy, szz)


def chi_diffusivity(d_rate, l_chi, c0, form: str):
    """Diffusivity of chi (area per unit strain) from the scalar plastic rate D.

    ``"code"``: l_chi^2 D (what the C++ integrates; no 1/c0).
    ``"paper"``: l_chi^2 sqrt(D^pl:D^pl) / c0 = l_chi^2 sqrt(2) D / c0 (Eq 29 with Eq 34).
    """
    if form == "code":
        return l_chi * l_chi * d_rate
    if form == "paper":
        return l_chi * l_chi * np.sqrt(2.0) * d_rate / c0
    raise ValueError(f"unknown diffusion form {form!r}")
