"""Discrete operators on periodic grids in the sheared coordinates xi (x = T(gamma) xi, Eq 35).

Fields are arrays ``(..., ny, nx)``: the last axis runs along xi_1 (x), the one before along
xi_2 (y). Because T is uniform in space, physical derivatives are constant-coefficient
combinations of xi derivatives, d/dx = d/dxi_1 and d/dy = d/dxi_2 - gamma d/dxi_1, so the
projection's elliptic problem is diagonal in Fourier space.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "Wavenumbers",
    "wavenumbers",
    "box_symbols_full",
    "project_velocity",
    "advection_increment",
    "centered_gradient",
    "diffusion_divergence",
    "diffusion_substeps",
]


@dataclass(frozen=True)
class Wavenumbers:
    """Derivative symbols on the ``rfft2`` grid (shape ``(ny, nx // 2 + 1)``), units 1/A.

    ``kappa1``, ``kappa2``: real symbols with d/dxi_a -> i kappa_a. ``average``: the symbol of
    the operator that brings the projected velocity to cell centres for advection.
    """

    kappa1: np.ndarray
    kappa2: np.ndarray
    average: np.ndarray


def wavenumbers(nx: int, ny: int, length_x: float, length_y: float, kind: str = "box") -> Wavenumbers:
    """Derivative symbols for the projection.

    ``"box"``: velocities live on cell corners and stresses on cell centres, as in the C++;
    the compact corner<->centre differences have symbols
    ``e^{-i phi} i kappa`` with kappa_1 = (2/h_1) sin(k_1 h_1/2) cos(k_2 h_2/2) and
    kappa_2 = (2/h_2) cos(k_1 h_1/2) sin(k_2 h_2/2); the common phase cancels in the projection,
    and the corner velocity is averaged to centres (symbol cos cos) for advection. The scheme
    constrains row- and column-alternating modes (only the checkerboard is free).
    ``"spectral"``: exact wavenumbers, Nyquist components of first derivatives set to zero.
    """
    h1, h2 = length_x / nx, length_y / ny
    k1 = 2.0 * np.pi * np.fft.rfftfreq(nx, d=h1)[None, :]
    k2 = 2.0 * np.pi * np.fft.fftfreq(ny, d=h2)[:, None]
    if kind == "box":
        c1, s1 = np.cos(0.5 * k1 * h1), np.sin(0.5 * k1 * h1)
        c2, s2 = np.cos(0.5 * k2 * h2), np.sin(0.5 * k2 * h2)
        kappa1 = (2.0 / h1) * s1 * c2
        kappa2 = (2.0 / h2) * c1 * s2
        average = c1 * c2
    elif kind == "spectral":
        k1 = np.where(np.arange(k1.shape[1])[None, :] * 2 == nx, 0.0, k1)
        k2 = np.where(np.arange(ny)[:, None] * 2 == ny, 0.0, k2)
        kappa1 = np.broadcast_to(k1, (ny, k1.shape[1])).copy()
        kappa2 = np.broadcast_to(k2, (ny, k1.shape[1])).copy()
        average = np.ones_like(kappa1)
    else:
        raise ValueError(f"unknown derivative kind {kind!r}")
    return Wavenumbers(kappa1, kappa2, average)


def box_symbols_full(nx: int, ny: int, length_x: float, length_y: float) -> tuple[np.ndarray, np.ndarray]:
    """The ``"box"`` symbols kappa_1, kappa_2 of :func:`wavenumbers` on the full ``(ny, nx)`` ``fft2`` grid, 1/A.

    Used by the compiled projection (:mod:`gego.stz.fast`), which transforms the two corner
    force components packed as one complex field and so needs every wavevector, not the
    ``rfft2`` half plane. The symbols are odd in k; the operator M(k) they build is even.
    """
    h1, h2 = length_x / nx, length_y / ny
    k1 = 2.0 * np.pi * np.fft.fftfreq(nx, d=h1)[None, :]
    k2 = 2.0 * np.pi * np.fft.fftfreq(ny, d=h2)[:, None]
    kappa1 = (2.0 / h1) * np.sin(0.5 * k1 * h1) * np.cos(0.5 * k2 * h2)
    kappa2 = (2.0 / h2) * np.cos(0.5 * k1 * h1) * np.sin(0.5 * k2 * h2)
    return np.ascontiguousarray(kappa1), np.ascontiguousarray(kappa2)


def project_velocity(stress_star: np.ndarray, gamma: float, dt: float, lame_lambda, mu,
                     wn: Wavenumbers) -> tuple[np.ndarray, np.ndarray]:
    """Projection step (Rycroft, Sui & Bouchbinder 2015) enforcing Eq 31 after a step of Eq 30.

    Solves div(C : sym grad u) dt = -div sigma* for the periodic velocity u (zero mean), so that
    sigma* + dt C : sym grad u is divergence-free in the discrete sense. With physical
    wavevector k = (kappa1, kappa2 - gamma kappa1) the operator is the 2 x 2 matrix
    M = mu |k|^2 I + (lambda + mu) k k^T, inverted in closed form.

    Parameters
    ----------
    stress_star : array ``(B, 3, ny, nx)``: physical sigma*_xx, sigma*_yy, sigma*_xy.
    gamma : applied strain at the end of the step (T(gamma) of Eq 35).
    dt : step in applied strain.
    lame_lambda, mu : arrays ``(B, 1, 1)`` or scalars, units of the stress.

    Returns
    -------
    velocity : ``(B, 2, ny, nx)``, the periodic physical velocity at cell centres (A per unit strain).
    grad : ``(B, 4, ny, nx)``, L_ij = du_i/dx_j as (xx, xy, yx, yy), per unit strain.
    """
    ny, nx = stress_star.shape[-2:]
    spec = np.fft.rfft2(stress_star, axes=(-2, -1))
    kx = wn.kappa1
    ky = wn.kappa2 - gamma * wn.kappa1
    ksq = kx * kx + ky * ky
    inv_ksq = np.divide(1.0, ksq, out=np.zeros_like(ksq), where=ksq > 1e-30)
    sxx, syy, sxy = spec[:, 0], spec[:, 1], spec[:, 2]
    # i k_j sigma*_ij: the (Fourier) force density per unit strain step
    f1 = 1j * (kx * sxx + ky * sxy)
    f2 = 1j * (kx * sxy + ky * syy)
    coef = np.asarray((lame_lambda + mu) / (lame_lambda + 2.0 * mu))
    mu_arr = np.asarray(mu)
    k_dot_f = (kx * f1 + ky * f2) * inv_ksq
    scale = inv_ksq / (mu_arr * dt)
    u1 = (f1 - coef * kx * k_dot_f) * scale
    u2 = (f2 - coef * ky * k_dot_f) * scale
    out = np.stack([wn.average * u1, wn.average * u2,
                    1j * kx * u1, 1j * ky * u1, 1j * kx * u2, 1j * ky * u2], axis=1)
    real = np.fft.irfft2(out, s=(ny, nx), axes=(-2, -1))
    return real[:, :2], real[:, 2:]


def _eno2_upwind(f, axis, positive):
    """ENO2 one-sided derivative times the grid spacing (C++ ``eno2``), per direction of flow."""
    fp1 = np.roll(f, -1, axis)
    fm1 = np.roll(f, 1, axis)
    central = 0.5 * (fp1 - fm1)
    curv_c = np.abs(fp1 - 2.0 * f + fm1)
    if positive:
        fm2 = np.roll(f, 2, axis)
        curv_up = np.abs(f - 2.0 * fm1 + fm2)
        return np.where(curv_c > curv_up, 0.5 * (3.0 * f - 4.0 * fm1 + fm2), central)
    fp2 = np.roll(f, -2, axis)
    curv_up = np.abs(f - 2.0 * fp1 + fp2)
    return np.where(curv_c > curv_up, -0.5 * (3.0 * f - 4.0 * fp1 + fp2), central)


def advection_increment(fields: np.ndarray, v1: np.ndarray, v2: np.ndarray, dt: float,
                        h1: float, h2: float) -> np.ndarray:
    """-dt (V . grad_xi) f by second-order ENO upwinding (as the C++), per cell-centred field.

    Parameters
    ----------
    fields : ``(B, F, ny, nx)``.
    v1, v2 : ``(B, ny, nx)``: velocity in xi coordinates, V = T^-1 u (A per unit strain).
    """
    v1e = v1[:, None]
    v2e = v2[:, None]
    d1 = np.where(v1e > 0, _eno2_upwind(fields, -1, True), _eno2_upwind(fields, -1, False))
    d2 = np.where(v2e > 0, _eno2_upwind(fields, -2, True), _eno2_upwind(fields, -2, False))
    return -dt * (v1e * d1 / h1 + v2e * d2 / h2)


def centered_gradient(f: np.ndarray, h1: float, h2: float) -> tuple[np.ndarray, np.ndarray]:
    """Second-order centred differences (d f/d xi_1, d f/d xi_2) on the periodic grid."""
    d1 = (np.roll(f, -1, -1) - np.roll(f, 1, -1)) / (2.0 * h1)
    d2 = (np.roll(f, -1, -2) - np.roll(f, 1, -2)) / (2.0 * h2)
    return d1, d2


def diffusion_divergence(chi: np.ndarray, diffusivity: np.ndarray, gamma: float, h1: float,
                         h2: float) -> np.ndarray:
    """div_x(K grad_x chi) written conservatively in xi coordinates (Eq 29 diffusion term).

    With d/dx = d1, d/dy = d2 - gamma d1: div_x q = d1(q_x - gamma q_y) + d2 q_y, so the
    face fluxes are q_1 = K((1 + gamma^2) d1 chi - gamma d2 chi) on x-faces and
    q_2 = K(d2 chi - gamma d1 chi) on y-faces, with face-averaged K (the C++'s choice) and the
    transverse derivative averaged over the two cells of the face. Conserves the mean of chi.
    """
    chi_e = np.roll(chi, -1, -1)  # east neighbour
    chi_n = np.roll(chi, -1, -2)  # north neighbour
    dy_c = (np.roll(chi, -1, -2) - np.roll(chi, 1, -2)) / (2.0 * h2)
    dx_c = (np.roll(chi, -1, -1) - np.roll(chi, 1, -1)) / (2.0 * h1)
    k_east = 0.5 * (diffusivity + np.roll(diffusivity, -1, -1))
    k_north = 0.5 * (diffusivity + np.roll(diffusivity, -1, -2))
    d1_face = (chi_e - chi) / h1
    d2_on_x_face = 0.5 * (dy_c + np.roll(dy_c, -1, -1))
    q1 = k_east * ((1.0 + gamma * gamma) * d1_face - gamma * d2_on_x_face)
    d2_face = (chi_n - chi) / h2
    d1_on_y_face = 0.5 * (dx_c + np.roll(dx_c, -1, -2))
    q2 = k_north * (d2_face - gamma * d1_on_y_face)
    return (q1 - np.roll(q1, 1, -1)) / h1 + (q2 - np.roll(q2, 1, -2)) / h2


def diffusion_substeps(max_diffusivity: np.ndarray, dt: float, gamma: float, h1: float, h2: float,
                       safety: float = 0.4) -> np.ndarray:
    """Explicit sub-steps needed for stable diffusion, per batch member (>= 1).

    The bound dt_sub K ((1 + gamma^2)/h1^2 + 1/h2^2 + |gamma|/(h1 h2)) <= safety keeps the
    forward-Euler update of :func:`diffusion_divergence` stable (safety 0.4 < 1/2).
    """
    stiffness = np.asarray(max_diffusivity) * dt * ((1.0 + gamma * gamma) / h1**2 + 1.0 / h2**2
                                                    + abs(gamma) / (h1 * h2))
    return np.maximum(1, np.ceil(stiffness / safety)).astype(int)
