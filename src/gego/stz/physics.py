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


def integrate_plastic_step(sbar, chi, dt, *, mu, eps0_per_strain, c0, chi_inf, adapt_dev=2e-3,
                           max_substeps=20000):
    """Integrate the local plastic relaxation over one step, with adaptive sub-steps (as the C++).

    Per cell, d|S|/dgamma = -2 mu D(|S|, chi) (stress in units of s_y, mu = mu_gpa / s_y_gpa) and
    dchi/dgamma = 2 D |S| (chi_inf - chi) / c0 (Eq 29, 32-33) are integrated with forward-Euler
    sub-steps, each lowering |S| by at most ``adapt_dev``; this keeps the stiff exp(-1/chi)
    factor from overshooting. Cells below yield are untouched.

    Parameters
    ----------
    sbar, chi : arrays of the same shape (deviator magnitude in s_y, effective temperature).
    dt : step in applied strain.
    mu, eps0_per_strain, c0, chi_inf : scalars or arrays broadcastable to ``sbar``.

    Returns
    -------
    drop : array, the decrease of |S| over the step (>= 0), the C++ ``ddev``.
    chi_new : array, chi after the plastic source.
    stuck : boolean array of ``sbar``'s shape, True where the sub-step cap was hit.
    """
    shape = sbar.shape
    sbar_flat = sbar.reshape(-1)
    chi_new = np.array(chi, dtype=float).reshape(-1).copy()
    drop = np.zeros(sbar_flat.size)
    stuck = np.zeros(sbar_flat.size, dtype=bool)
    idx = np.flatnonzero(sbar_flat >= 1.0)
    if idx.size == 0:
        return drop.reshape(shape), chi_new.reshape(shape), stuck.reshape(shape)

    def per_cell(value):
        return np.broadcast_to(np.asarray(value, dtype=float), shape).reshape(-1)

    mu_c, eps_c, c0_c, inf_c = (per_cell(v)[idx] for v in (mu, eps0_per_strain, c0, chi_inf))
    s = sbar_flat[idx].copy()
    c = chi_new[idx]
    s_start = s.copy()
    remaining = np.full(idx.size, float(dt))
    for _ in range(max_substeps):
        d_rate = plastic_rate_per_strain(s, c, eps_c)
        relax = 2.0 * mu_c * d_rate  # d|S|/dgamma from Eq 30 with D^pl = D S/|S|
        limited = remaining * relax > adapt_dev
        sub_dt = np.where(limited, adapt_dev / np.where(limited, relax, 1.0), remaining)
        remaining = np.where(limited, remaining - sub_dt, 0.0)
        c = c + chi_source_rate(d_rate, s, c, inf_c, c0_c) * sub_dt
        s = s - sub_dt * relax
        if not limited.any():
            break
        finished = ~limited
        if finished.any():  # write back finished cells and shrink the working set
            done = idx[finished]
            drop[done] = s_start[finished] - s[finished]
            chi_new[done] = c[finished]
            keep = limited
            idx, s, c, s_start, remaining = idx[keep], s[keep], c[keep], s_start[keep], remaining[keep]
            mu_c, eps_c, c0_c, inf_c = mu_c[keep], eps_c[keep], c0_c[keep], inf_c[keep]
    else:
        stuck[idx] = True
    drop[idx] = s_start - s
    chi_new[idx] = c
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
