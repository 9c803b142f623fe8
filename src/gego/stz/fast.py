"""Compiled (numba) kernels for one quasi-static step: the same arithmetic as the readable numpy
reference in :mod:`gego.stz.solver` / :mod:`gego.stz.physics` / :mod:`gego.stz.operators`,
fused into three passes over the grid so that a 32 x 32 step costs tens of microseconds
instead of a hundred numpy calls. ``tests/test_stz_fast.py`` checks the two paths agree.

:func:`run_steps` runs whole frames inside compiled code, with the FFTs from ``numpy.fft``
made available to numba by the ``rocket-fft`` package. Batch members are independent and run
one after the other (threads split a batch in :mod:`gego.stz.solver`), so each member's
arithmetic is identical whatever the batch size or thread count.
"""

from __future__ import annotations

import math

import numpy as np

try:
    import rocket_fft  # noqa: F401  (registers numpy.fft for numba)
    from numba import njit

    AVAILABLE = True
except ImportError:  # pragma: no cover - numba / rocket-fft are optional
    AVAILABLE = False

__all__ = ["AVAILABLE", "explicit_stage", "spectral_stage", "finish_stage", "run_steps"]

if AVAILABLE:

    @njit(cache=True, inline="always")
    def _plastic_cell(sbar, chi, dt, mu, eps0s, c0, chi_inf, adapt, max_sub):
        """Adaptive plastic sub-steps of one cell (Eq 29, 32-33); returns (drop, chi, stuck)."""
        if sbar < 1.0:
            return 0.0, chi, False
        s = sbar
        c = chi
        remaining = dt
        for _ in range(max_sub):
            if s >= 1.0:
                sf = -2.0 + s + math.exp(-s) * (2.0 + s)  # Eq 33
                d_rate = eps0s * math.exp(-1.0 / c) * (1.0 - 1.0 / s) * sf  # Eq 32
            else:
                d_rate = 0.0
            relax = 2.0 * mu * d_rate
            if remaining * relax > adapt:
                sub = adapt / relax
                remaining = remaining - sub
                limited = True
            else:
                sub = remaining
                remaining = 0.0
                limited = False
            c = c + 2.0 * d_rate * s * (chi_inf - c) / c0 * sub  # Eq 29 source
            s = s - sub * relax
            if not limited:
                return sbar - s, c, False
        return sbar - s, c, True

    @njit(cache=True, inline="always")
    def _eno2(f, fm2, fm1, fp1, fp2, positive):
        """ENO2 one-sided derivative times h (operators._eno2_upwind); both sides are computed and
        selected without data-dependent branches, which measured 40 % faster on random data."""
        central = 0.5 * (fp1 - fm1)
        curv_c = abs(fp1 - 2.0 * f + fm1)
        up_m = 0.5 * (3.0 * f - 4.0 * fm1 + fm2)
        up_p = -0.5 * (3.0 * f - 4.0 * fp1 + fp2)
        curv_m = abs(f - 2.0 * fm1 + fm2)
        curv_p = abs(f - 2.0 * fp1 + fp2)
        upwind = up_m if positive else up_p
        curv_up = curv_m if positive else curv_p
        return upwind if curv_c > curv_up else central

    @njit(cache=True)
    def _neighbours(n):
        """Periodic index tables i+1, i-1, i+2, i-2 (avoids integer modulo in the inner loops)."""
        p1 = np.empty(n, dtype=np.int64)
        m1 = np.empty(n, dtype=np.int64)
        p2 = np.empty(n, dtype=np.int64)
        m2 = np.empty(n, dtype=np.int64)
        for i in range(n):
            p1[i] = (i + 1) % n
            m1[i] = (i - 1) % n
            p2[i] = (i + 2) % n
            m2[i] = (i - 2) % n
        return p1, m1, p2, m2

    @njit(cache=True)
    def _diffusion_div(chi, kappa, gamma, h1, h2, out):
        """div_x(K grad_x chi) in xi coordinates (see operators.diffusion_divergence)."""
        ny, nx = chi.shape
        q1 = np.empty((ny, nx))
        q2 = np.empty((ny, nx))
        g2 = 1.0 + gamma * gamma
        for j in range(ny):
            jp = (j + 1) % ny
            jm = (j - 1) % ny
            jpp = (j + 2) % ny
            for i in range(nx):
                ip = (i + 1) % nx
                im = (i - 1) % nx
                ipp = (i + 2) % nx
                dy_c = (chi[jp, i] - chi[jm, i]) / (2.0 * h2)
                dy_e = (chi[jp, ip] - chi[jm, ip]) / (2.0 * h2)
                k_e = 0.5 * (kappa[j, i] + kappa[j, ip])
                q1[j, i] = k_e * (g2 * ((chi[j, ip] - chi[j, i]) / h1) - gamma * (0.5 * (dy_c + dy_e)))
                dx_c = (chi[j, ip] - chi[j, im]) / (2.0 * h1)
                dx_n = (chi[jp, ip] - chi[jp, im]) / (2.0 * h1)
                k_n = 0.5 * (kappa[j, i] + kappa[jp, i])
                q2[j, i] = k_n * ((chi[jp, i] - chi[j, i]) / h2 - gamma * (0.5 * (dx_c + dx_n)))
        for j in range(ny):
            jm = (j - 1) % ny
            for i in range(nx):
                im = (i - 1) % nx
                out[j, i] = (q1[j, i] - q1[j, im]) / h1 + (q2[j, i] - q2[jm, i]) / h2

    @njit(cache=True, nogil=True)
    def explicit_stage(sig, chi, refmap, vel, grad, gamma, dt, mu, lam, eps0s, c0, chi_inf, l_chi,
                       paper_form, adapt, max_sub, h1, h2, sig_out, chi_out, ref_out, fft_in, stuck):
        """Steps 1-3 of solver._step and the physical sigma* at gamma + dt for the projection."""
        nb, _, ny, nx = sig.shape
        g = gamma
        gn = gamma + dt
        xp1, xm1, xp2, xm2 = _neighbours(nx)
        yp1, ym1, yp2, ym2 = _neighbours(ny)
        for b in range(nb):
            drop = np.empty((ny, nx))
            ratio = np.empty((ny, nx))
            chi_pl = np.empty((ny, nx))
            kap = np.empty((ny, nx))
            mu_b = mu[b]
            any_stuck = False
            kmax = 0.0
            # 1. plastic relaxation per cell
            for j in range(ny):
                for i in range(nx):
                    a_xx = sig[b, 0, j, i]
                    a_yy = sig[b, 1, j, i]
                    a_xy = sig[b, 2, j, i]
                    a_zz = sig[b, 3, j, i]
                    pxx = a_xx + 2.0 * g * a_xy + g * g * a_yy
                    pyy = a_yy
                    pxy = a_xy + g * a_yy
                    mean = (pxx + pyy + a_zz) / 3.0
                    dxx = pxx - mean
                    dyy = pyy - mean
                    dzz = a_zz - mean
                    sbar = math.sqrt(0.5 * (dxx * dxx + dyy * dyy + dzz * dzz) + pxy * pxy)
                    d, c_new, st = _plastic_cell(sbar, chi[b, j, i], dt, mu_b, eps0s[b], c0[b],
                                                 chi_inf[b], adapt, max_sub)
                    any_stuck = any_stuck or st
                    drop[j, i] = d
                    chi_pl[j, i] = c_new
                    ratio[j, i] = d / sbar if sbar > 1e-12 else 0.0
                    d_avg = d / (2.0 * mu_b * dt)
                    if paper_form:
                        k = l_chi[b] * l_chi[b] * math.sqrt(2.0) * d_avg / c0[b]
                    else:
                        k = l_chi[b] * l_chi[b] * d_avg
                    kap[j, i] = k
                    if k > kmax:
                        kmax = k
            stuck[b] = any_stuck
            # 2. chi diffusion, sub-cycled explicitly
            chi_d = chi[b].copy()
            if kmax > 0.0:
                stiff = kmax * dt * ((1.0 + g * g) / (h1 * h1) + 1.0 / (h2 * h2) + abs(g) / (h1 * h2))
                n_sub = max(1, int(math.ceil(stiff / 0.4)))
                sub_dt = dt / n_sub
                div = np.empty((ny, nx))
                for _ in range(n_sub):
                    _diffusion_div(chi_d, kap, g, h1, h2, div)
                    for j in range(ny):
                        for i in range(nx):
                            chi_d[j, i] = chi_d[j, i] + sub_dt * div[j, i]
            # 3. advection, Truesdell and plastic terms
            s0 = sig[b, 0]
            s1 = sig[b, 1]
            s2 = sig[b, 2]
            s3 = sig[b, 3]
            cb = chi[b]
            r0 = refmap[b, 0]
            r1 = refmap[b, 1]
            for j in range(ny):
                jp1 = yp1[j]
                jm1 = ym1[j]
                jp2 = yp2[j]
                jm2 = ym2[j]
                for i in range(nx):
                    ip1 = xp1[i]
                    im1 = xm1[i]
                    ip2 = xp2[i]
                    im2 = xm2[i]
                    u1 = vel[b, 0, j, i]
                    u2 = vel[b, 1, j, i]
                    v1 = u1 - g * u2
                    v2 = u2
                    pos1 = v1 > 0
                    pos2 = v2 > 0
                    c1 = -dt * v1 / h1
                    c2 = -dt * v2 / h2
                    adv0 = c1 * _eno2(s0[j, i], s0[j, im2], s0[j, im1], s0[j, ip1], s0[j, ip2], pos1) \
                        + c2 * _eno2(s0[j, i], s0[jm2, i], s0[jm1, i], s0[jp1, i], s0[jp2, i], pos2)
                    adv1 = c1 * _eno2(s1[j, i], s1[j, im2], s1[j, im1], s1[j, ip1], s1[j, ip2], pos1) \
                        + c2 * _eno2(s1[j, i], s1[jm2, i], s1[jm1, i], s1[jp1, i], s1[jp2, i], pos2)
                    adv2 = c1 * _eno2(s2[j, i], s2[j, im2], s2[j, im1], s2[j, ip1], s2[j, ip2], pos1) \
                        + c2 * _eno2(s2[j, i], s2[jm2, i], s2[jm1, i], s2[jp1, i], s2[jp2, i], pos2)
                    adv3 = c1 * _eno2(s3[j, i], s3[j, im2], s3[j, im1], s3[j, ip1], s3[j, ip2], pos1) \
                        + c2 * _eno2(s3[j, i], s3[jm2, i], s3[jm1, i], s3[jp1, i], s3[jp2, i], pos2)
                    adv4 = c1 * _eno2(cb[j, i], cb[j, im2], cb[j, im1], cb[j, ip1], cb[j, ip2], pos1) \
                        + c2 * _eno2(cb[j, i], cb[jm2, i], cb[jm1, i], cb[jp1, i], cb[jp2, i], pos2)
                    adv5 = c1 * _eno2(r0[j, i], r0[j, im2], r0[j, im1], r0[j, ip1], r0[j, ip2], pos1) \
                        + c2 * _eno2(r0[j, i], r0[jm2, i], r0[jm1, i], r0[jp1, i], r0[jp2, i], pos2)
                    adv6 = c1 * _eno2(r1[j, i], r1[j, im2], r1[j, im1], r1[j, ip1], r1[j, ip2], pos1) \
                        + c2 * _eno2(r1[j, i], r1[jm2, i], r1[jm1, i], r1[jp1, i], r1[jp2, i], pos2)
                    a_xx = sig[b, 0, j, i]
                    a_yy = sig[b, 1, j, i]
                    a_xy = sig[b, 2, j, i]
                    a_zz = sig[b, 3, j, i]
                    pxx = a_xx + 2.0 * g * a_xy + g * g * a_yy
                    pyy = a_yy
                    pxy = a_xy + g * a_yy
                    pzz = a_zz
                    mean = (pxx + pyy + pzz) / 3.0
                    lxx = grad[b, 0, j, i]
                    lxy = grad[b, 1, j, i]
                    lyx = grad[b, 2, j, i]
                    lyy = grad[b, 3, j, i]
                    tr = lxx + lyy
                    r = ratio[j, i]
                    # Eq 30 Truesdell terms minus the plastic relaxation, physical components
                    exx = dt * (2.0 * (lxx * pxx + lxy * pxy) - tr * pxx) - r * (pxx - mean)
                    eyy = dt * (2.0 * (lyx * pxy + lyy * pyy) - tr * pyy) - r * (pyy - mean)
                    exy = dt * (lxx * pxy + lxy * pyy + pxx * lyx + pxy * lyy - tr * pxy) - r * pxy
                    ezz = dt * (-tr * pzz) - r * (pzz - mean)
                    # to the sheared frame, Sigma = T^-1 sigma T^-T
                    s_xx = a_xx + adv0 + (exx - 2.0 * g * exy + g * g * eyy)
                    s_yy = a_yy + adv1 + eyy
                    s_xy = a_xy + adv2 + (exy - g * eyy)
                    s_zz = a_zz + adv3 + ezz
                    sig_out[b, 0, j, i] = s_xx
                    sig_out[b, 1, j, i] = s_yy
                    sig_out[b, 2, j, i] = s_xy
                    sig_out[b, 3, j, i] = s_zz
                    chi_out[b, j, i] = chi_pl[j, i] + adv4 + (chi_d[j, i] - chi[b, j, i])
                    ref_out[b, 0, j, i] = refmap[b, 0, j, i] + adv5 + dt * v1
                    ref_out[b, 1, j, i] = refmap[b, 1, j, i] + adv6 + dt * v2
                    fft_in[b, 0, j, i] = s_xx + 2.0 * gn * s_xy + gn * gn * s_yy
                    fft_in[b, 1, j, i] = s_yy
                    fft_in[b, 2, j, i] = s_xy + gn * s_yy

    @njit(cache=True, nogil=True)
    def spectral_stage(spec, kappa1, kappa2, average, gamma_new, dt, lam, mu, out):
        """Closed-form 2 x 2 solve of the projection per wavevector (operators.project_velocity)."""
        nb, _, ny, nk = spec.shape
        for b in range(nb):
            coef = (lam[b] + mu[b]) / (lam[b] + 2.0 * mu[b])
            for j in range(ny):
                for i in range(nk):
                    kx = kappa1[j, i]
                    ky = kappa2[j, i] - gamma_new * kappa1[j, i]
                    ksq = kx * kx + ky * ky
                    if ksq > 1e-30:
                        inv = 1.0 / ksq
                    else:
                        inv = 0.0
                    f1 = 1j * (kx * spec[b, 0, j, i] + ky * spec[b, 2, j, i])
                    f2 = 1j * (kx * spec[b, 2, j, i] + ky * spec[b, 1, j, i])
                    kf = (kx * f1 + ky * f2) * inv
                    scale = inv / (mu[b] * dt)
                    u1 = (f1 - coef * kx * kf) * scale
                    u2 = (f2 - coef * ky * kf) * scale
                    out[b, 0, j, i] = average[j, i] * u1
                    out[b, 1, j, i] = average[j, i] * u2
                    out[b, 2, j, i] = 1j * kx * u1
                    out[b, 3, j, i] = 1j * ky * u1
                    out[b, 4, j, i] = 1j * kx * u2
                    out[b, 5, j, i] = 1j * ky * u2

    @njit(cache=True, nogil=True)
    def finish_stage(sig_star, real, gamma_new, dt, lam, mu, sig_out, vel_out, grad_out):
        """Add dt C:(D_affine + sym grad u) in the sheared frame; store velocity and gradient."""
        nb, _, ny, nx = sig_star.shape
        gn = gamma_new
        for b in range(nb):
            for j in range(ny):
                for i in range(nx):
                    lxx = real[b, 2, j, i]
                    lxy = real[b, 3, j, i] + 1.0
                    lyx = real[b, 4, j, i]
                    lyy = real[b, 5, j, i]
                    tr = lxx + lyy
                    exx = dt * (lam[b] * tr + 2.0 * mu[b] * lxx)
                    eyy = dt * (lam[b] * tr + 2.0 * mu[b] * lyy)
                    exy = dt * (mu[b] * (lxy + lyx))
                    ezz = dt * (lam[b] * tr)
                    sig_out[b, 0, j, i] = sig_star[b, 0, j, i] + (exx - 2.0 * gn * exy + gn * gn * eyy)
                    sig_out[b, 1, j, i] = sig_star[b, 1, j, i] + eyy
                    sig_out[b, 2, j, i] = sig_star[b, 2, j, i] + (exy - gn * eyy)
                    sig_out[b, 3, j, i] = sig_star[b, 3, j, i] + ezz
                    vel_out[b, 0, j, i] = real[b, 0, j, i]
                    vel_out[b, 1, j, i] = real[b, 1, j, i]
                    grad_out[b, 0, j, i] = real[b, 2, j, i]
                    grad_out[b, 1, j, i] = real[b, 3, j, i]
                    grad_out[b, 2, j, i] = real[b, 4, j, i]
                    grad_out[b, 3, j, i] = real[b, 5, j, i]
    @njit(cache=True, nogil=True)
    def run_steps(sig, chi, refmap, vel, grad, gamma0, n_steps, dt, mu, lam, eps0s, c0, chi_inf, l_chi,
                  paper_form, adapt, max_sub, h1, h2, kappa1, kappa2, average, stuck):
        """Advance every member by ``n_steps`` steps from strain ``gamma0``, in place.

        Each member runs on its own (one-member views), so its arithmetic does not depend on the
        batch. The FFTs are numpy.fft inside numba (rocket-fft), so no Python runs between steps.
        A member whose plastic sub-steps hit the cap is flagged in ``stuck`` and left as it was
        at the start of the failing step.
        """
        nb, _, ny, nx = sig.shape
        nk = nx // 2 + 1
        for b in range(nb):
            s_cur = sig[b:b + 1]
            c_cur = chi[b:b + 1]
            r_cur = refmap[b:b + 1]
            v_cur = vel[b:b + 1]
            g_cur = grad[b:b + 1]
            mu_b = mu[b:b + 1]
            lam_b = lam[b:b + 1]
            s_star = np.empty((1, 4, ny, nx))
            c_new = np.empty((1, ny, nx))
            r_new = np.empty((1, 2, ny, nx))
            fft_in = np.empty((1, 3, ny, nx))
            spec = np.empty((1, 3, ny, nk), dtype=np.complex128)
            spec_out = np.empty((1, 6, ny, nk), dtype=np.complex128)
            real = np.empty((1, 6, ny, nx))
            flag = np.zeros(1, dtype=np.bool_)
            for j in range(n_steps):
                g = gamma0 + j * dt
                explicit_stage(s_cur, c_cur, r_cur, v_cur, g_cur, g, dt, mu_b, lam_b, eps0s[b:b + 1],
                               c0[b:b + 1], chi_inf[b:b + 1], l_chi[b:b + 1], paper_form, adapt, max_sub,
                               h1, h2, s_star, c_new, r_new, fft_in, flag)
                if flag[0]:
                    stuck[b] = True
                    break
                gn = g + dt
                for k in range(3):
                    spec[0, k] = np.fft.rfft2(fft_in[0, k])
                spectral_stage(spec, kappa1, kappa2, average, gn, dt, lam_b, mu_b, spec_out)
                for k in range(6):
                    real[0, k] = np.fft.irfft2(spec_out[0, k], s=(ny, nx))
                finish_stage(s_star, real, gn, dt, lam_b, mu_b, s_cur, v_cur, g_cur)
                c_cur[:] = c_new
                r_cur[:] = r_new

else:  # pragma: no cover
    explicit_stage = spectral_stage = finish_stage = run_steps = None
