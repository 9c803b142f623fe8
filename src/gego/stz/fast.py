"""Compiled (numba) kernels for the quasi-static step: the same arithmetic as the readable numpy
reference in :mod:`gego.stz.solver` / :mod:`gego.stz.physics` / :mod:`gego.stz.operators`.
``tests/test_stz_fast.py`` checks the two paths agree.

:func:`run_steps` runs whole frames inside compiled code (FFTs from ``numpy.fft`` made available
to numba by the ``rocket-fft`` package), and :func:`run_frames` runs the frame loop of
``solver._run_members`` around it (step planning, checks, recording; Python between frames cost
11-17 ms per run, 10-15 % of a typical one). One step is a short sequence of member-level stages, each a
single pass over the grid into scratch arrays allocated once per call (no temporaries per step):

1. :func:`plastic_stage`    plastic relaxation and chi source per cell (Eq 29, 32-33), for the
   loaded split driven by the cell's non-plastic |S| rate of the previous step (formed in the
   finish stage of step 4, with |S| at the new strain, which the next plastic stage reuses);
2. :func:`diffusion_stage`  explicit, sub-cycled chi diffusion (Eq 29, 34), in a refined frame
   once per base step with the mean diffusivity of its steps;
3. :func:`transport_stage`  ENO2 advection of Sigma, chi and the reference map, Truesdell terms
   (Eq 30), and the physical predicted stress sigma* at the new strain;
4. projection (Eq 31). For the ``"box"`` derivative (the C++ scheme) the force div sigma* is
   formed in real space on the cell corners (:func:`corner_force_stage`), the two corner
   components are packed as one complex field F1 + i F2, so ONE complex forward and ONE complex
   inverse 2-D FFT (:func:`box_solve_stage`) give the corner velocity; the centre velocity and
   L = grad u are the corner -> centre stencils (:func:`box_finish_stage`). The corner stencils'
   symbols are ``e^{-+i phi} i kappa`` (:mod:`gego.stz.operators`), so this equals the reference
   ``project_velocity`` (3 forward + 6 inverse real FFTs) to round-off. For ``"spectral"`` the
   reference route is kept (:func:`spectral_stage`, :func:`finish_stage`).

All kernels use ``error_model="numpy"``: a division by zero gives inf/NaN as in IEEE arithmetic
(and the numpy reference) instead of raising, which also keeps the checks out of the vectorised
loops. No fastmath: every operation rounds as written.

Speed notes (measured, see benchmarks/bench_stz.py): loops are written so that LLVM vectorises
them: point-wise passes run over the flattened grid (a row of 32 is shorter than the vector loop
LLVM picks, so row loops at N = 32 stay mostly scalar), loops write few arrays (a loop storing
to ten arrays needs too many runtime alias checks and is left scalar), stencils read row views
of ghost-padded copies (no index wrapping). The plastic sub-steps use :func:`exp_array`, a
vectorisable exp within 1 ulp of libm's (libm's is a scalar call); the only change of results
against libm's exp is at that round-off level. Frames are recorded by :func:`record_frame`.

Batch members are independent and run one after the other (threads split a batch in
:mod:`gego.stz.solver`), so each member's arithmetic is identical whatever the batch size or
thread count.
"""

from __future__ import annotations

import math
import os

import numpy as np

try:
    import rocket_fft  # noqa: F401  (registers numpy.fft for numba)
    from numba import njit
    from rocket_fft import c2c  # DUCC0 complex FFT into a caller-provided array (no allocation)

    AVAILABLE = True
    if os.environ.get("GEGO_LLVM_INTERLEAVE", "2") != "0":
        # LLVM's loop vectoriser picks 4 interleaved vector bodies here (64 doubles per iteration
        # on AVX-512), so a loop over a row of 32 cells only ever runs its scalar remainder.
        # Forcing 2 makes the N = 32 row loops vectorise: measured 38.4 -> 33.0 us per step at
        # gamma 0.3, results bit-identical (no reductions are vectorised without fastmath).
        # The option is process-wide (LLVM cl::opt; affects numba code compiled after this
        # import). GEGO_LLVM_INTERLEAVE=0 keeps LLVM's default.
        import llvmlite.binding as _llvm

        _llvm.set_option("gego", "-force-vector-interleave=" + os.environ.get("GEGO_LLVM_INTERLEAVE", "2"))
except ImportError:  # pragma: no cover - numba / rocket-fft are optional
    AVAILABLE = False

__all__ = ["AVAILABLE", "exp_array", "plastic_scratch", "plastic_stage", "diffusion_stage", "transport_stage",
           "corner_force_stage", "box_solve_stage", "box_finish_stage", "spectral_stage", "finish_stage",
           "run_steps", "frame_plan", "run_frames", "record_frame", "finite_members", "stiff_quantile"]

if AVAILABLE:

    # exp(x) = 2^k exp(r), k = round(x / ln 2), |r| <= ln(2) / 2: Cody-Waite reduction with the
    # fdlibm split of ln 2 (k * _LN2_HI is exact), degree-13 Taylor polynomial (truncation
    # < 1e-17 relative). Written out so that LLVM vectorises it (libm's exp is a scalar call);
    # within 1 ulp of libm's exp on [-708, 709] (tests/test_stz_fast.py).
    _LOG2E = 1.4426950408889634
    _LN2_HI = 6.93147180369123816490e-01
    _LN2_LO = 1.90821492927058770002e-10

    @njit(cache=True, nogil=True, error_model="numpy")
    def exp_array(x, out, kbuf, n):
        """``out[:n] = exp(x[:n])``, SIMD; 0 below -708 (true value < 3.3e-308), inf above 709.

        ``kbuf``: int64 scratch of length >= n (holds the bits of 2^k).
        """
        for i in range(n):
            xi = min(max(x[i], -708.0), 709.0)
            kf = math.floor(xi * _LOG2E + 0.5)
            r = (xi - kf * _LN2_HI) - kf * _LN2_LO
            p = 1.0 / 6227020800.0
            p = p * r + 1.0 / 479001600.0
            p = p * r + 1.0 / 39916800.0
            p = p * r + 1.0 / 3628800.0
            p = p * r + 1.0 / 362880.0
            p = p * r + 1.0 / 40320.0
            p = p * r + 1.0 / 5040.0
            p = p * r + 1.0 / 720.0
            p = p * r + 1.0 / 120.0
            p = p * r + 1.0 / 24.0
            p = p * r + 1.0 / 6.0
            p = p * r + 0.5
            p = p * r + 1.0
            p = p * r + 1.0
            out[i] = p
            kbuf[i] = (np.int64(kf) + 1023) << 52  # IEEE bits of 2^k
        scale = kbuf.view(np.float64)
        for i in range(n):
            xi = x[i]
            v = out[i] * scale[i]
            v = 0.0 if xi < -708.0 else v
            v = math.inf if xi > 709.0 else v
            v = xi if xi != xi else v  # NaN propagates
            out[i] = v

    @njit(cache=True, error_model="numpy")
    def plastic_scratch(n_cells):
        """Scratch arrays for :func:`plastic_stage` on a grid of ``n_cells`` cells."""
        return (np.empty((5, n_cells)), np.empty(2 * n_cells), np.empty(2 * n_cells),
                np.empty(2 * n_cells, dtype=np.int64), np.empty(n_cells, dtype=np.int64),
                np.empty(n_cells, dtype=np.bool_))

    @njit(cache=True, nogil=True, error_model="numpy", inline="always")
    def _round_exponentials(work, xs, es, kbuf, n):
        """es[:n] = exp(-max(|S|, 1)), es[n:2n] = exp(-1/chi) for the ``n`` active cells of ``work``
        (one vectorised exp pass; below yield the rate is zero whatever es holds)."""
        s = work[0]
        c = work[1]
        for i in range(n):
            xs[i] = -max(s[i], 1.0)
            xs[n + i] = -1.0 / c[i]
        exp_array(xs, es, kbuf, 2 * n)

    @njit(cache=True, nogil=True, error_model="numpy", inline="always")
    def _relax_and_stiffness(sc, e_s, amp):
        """(R, R') = (2 mu D, d(2 mu D)/d|S|) at |S| = sc >= 1 (Eq 32-33; physics.stz_rate_and_stiffness),
        with e_s = exp(-sc) and amp = 2 mu eps0 / (tau0 gamma_dot) exp(-1/chi), units of s_y per unit strain."""
        sf = -2.0 + sc + e_s * (2.0 + sc)  # F(|S|), Eq 33
        return amp * (1.0 - 1.0 / sc) * sf, amp * (sf / (sc * sc) + (1.0 - 1.0 / sc) * (1.0 - e_s * (1.0 + sc)))

    @njit(cache=True, nogil=True, error_model="numpy", inline="always")
    def _physical_and_sbar(a_xx, a_yy, a_xy, a_zz, g):
        """(sigma_xx, sigma_xy, |S|) of a sheared-frame Sigma at strain g: sigma = T Sigma T^T (Eq 35),
        |S| = sqrt(S:S / 2) of its deviator, units of s_y (physics.deviator_magnitude)."""
        pxx = a_xx + 2.0 * g * a_xy + g * g * a_yy
        pxy = a_xy + g * a_yy
        mean = (pxx + a_yy + a_zz) / 3.0
        dxx = pxx - mean
        dyy = a_yy - mean
        dzz = a_zz - mean
        return pxx, pxy, math.sqrt(0.5 * (dxx * dxx + dyy * dyy + dzz * dzz) + pxy * pxy)

    @njit(cache=True, nogil=True, error_model="numpy")
    def _plastic_round_loaded(work, xs, es, kbuf, limited, n, mu, eps0s, c0, chi_inf, adapt):
        """One forward-Euler sub-step of d|S|/dgamma = g - 2 mu D (physics.integrate_plastic_step with
        ``load_rate``) for the ``n`` active cells in ``work`` (rows |S|, chi, remaining strain,
        load g). The sub-step moves |S| by at most ``adapt`` through either term. With g = 0 this is
        the C++ scheme to the bit (speed = 2 mu D >= 0, si + h (0 - R) = si - h R exactly)."""
        s = work[0]
        c = work[1]
        rem = work[2]
        load = work[3]
        _round_exponentials(work, xs, es, kbuf, n)
        for i in range(n):
            si = s[i]
            ci = c[i]
            gi = load[i]
            sf = -2.0 + si + es[i] * (2.0 + si)  # Eq 33
            d_rate = eps0s * es[n + i] * (1.0 - 1.0 / si) * sf  # Eq 32
            d_rate = d_rate if si >= 1.0 else 0.0
            relax = 2.0 * mu * d_rate
            ag = abs(gi)
            speed = relax if relax >= ag else ag
            rem_i = rem[i]
            lim = rem_i * speed > adapt
            sub = adapt / speed if lim else rem_i
            rem[i] = rem_i - sub if lim else 0.0
            c[i] = ci + 2.0 * d_rate * si * (chi_inf - ci) / c0 * sub  # Eq 29 source
            s[i] = si + sub * (gi - relax)
            limited[i] = lim

    @njit(cache=True, nogil=True, error_model="numpy")
    def _plastic_round_implicit(work, xs, es, kbuf, limited, n, mu, eps0s, c0, chi_inf, adapt, adapt_chi):
        """One linearly implicit (Rosenbrock-Euler) sub-step of d|S|/dgamma = g - R, R = 2 mu D
        (physics.integrate_plastic_step_implicit) for the ``n`` active cells in ``work`` (rows |S|,
        chi, remaining strain, load g, accumulated plastic drop): |S| += h (g - R) / (1 + h R'),
        chi explicit; h keeps the net change of |S| <= ``adapt`` and |dchi| <= adapt_chi chi^2."""
        s = work[0]
        c = work[1]
        rem = work[2]
        load = work[3]
        plastic = work[4]
        _round_exponentials(work, xs, es, kbuf, n)
        for i in range(n):
            si = s[i]
            ci = c[i]
            gi = load[i]
            sc = max(si, 1.0)
            relax, stiff = _relax_and_stiffness(sc, es[i], 2.0 * mu * eps0s * es[n + i])  # R, R' (Eq 32-33)
            relax = relax if si >= 1.0 else 0.0
            stiff = stiff if si >= 1.0 else 0.0
            rem_i = rem[i]
            # |ds| <= ds_max: adapt, or where looser the |S| change that moves R (Eq 32-33) by adapt_chi relative
            # (R / R' depends on |S| only: an overloaded cell of low chi needs no fine sub-steps)
            ds_max = max(adapt, adapt_chi * relax / stiff) if stiff > 0.0 else adapt
            excess = abs(gi - relax) - ds_max * stiff  # |ds| <= ds_max  <=>  h excess <= ds_max
            h = min(rem_i, ds_max / excess) if excess > 0.0 else rem_i
            chi_rate = relax / mu * si * (chi_inf - ci) / c0  # Eq 29 source, 2 D |S| (chi_inf - chi) / c0
            cap = adapt_chi * ci * ci
            a_rate = abs(chi_rate)
            h = cap / max(a_rate, 1e-300) if a_rate * h > cap else h
            lim = h < rem_i
            rem[i] = rem_i - h if lim else 0.0
            ds = h * (gi - relax) / (1.0 + h * stiff)  # Rosenbrock-Euler, d|S|/dgamma = g - 2 mu D
            plastic[i] = plastic[i] + (h * gi - ds)
            # Eq 29 chi source at the sub-step's midpoint in |S| (physics.integrate_plastic_step_implicit)
            c[i] = ci + (relax + 0.5 * stiff * ds) / mu * (si + 0.5 * ds) * (chi_inf - ci) / c0 * h
            s[i] = si + ds
            limited[i] = lim

    @njit(cache=True, nogil=True, error_model="numpy")
    def _plastic_round_any(work, xs, es, kbuf, limited, n, mu, eps0s, c0, chi_inf, adapt, adapt_chi, implicit):
        if implicit:
            _plastic_round_implicit(work, xs, es, kbuf, limited, n, mu, eps0s, c0, chi_inf, adapt, adapt_chi)
        else:  # the C++ split runs with its load row at zero
            _plastic_round_loaded(work, xs, es, kbuf, limited, n, mu, eps0s, c0, chi_inf, adapt)

    @njit(cache=True, inline="always", error_model="numpy")
    def _move_cell(work, src, dst):
        """Copy the sub-step state of compacted cell ``src`` in ``work`` to slot ``dst``."""
        for row in range(5):  # |S|, chi, remaining strain, load, accumulated drop
            work[row, dst] = work[row, src]

    @njit(cache=True, nogil=True, error_model="numpy")
    def plastic_stage(sig, chi, load, loaded, implicit, g, dt, mu, eps0s, c0, chi_inf, l_chi, paper_form, adapt,
                      adapt_chi, max_sub, ratio, chi_pl, kap, sbar_rel, sbar_grid, have_sbar, work, xs, es, kbuf,
                      idx, limited):
        """Step 1: plastic relaxation per cell (Eq 29, 32-33) and the chi diffusivity (Eq 34).

        ``sig`` is one member's sheared-frame Sigma ``(4, ny, nx)`` at strain ``g``; ``load`` its
        non-plastic d|S|/dgamma of the previous step, used when ``loaded`` (the default split):
        the cell is then integrated with d|S|/dgamma = load - 2 mu D, by linearly implicit
        sub-steps if ``implicit`` (else forward Euler), and only the plastic drop is applied;
        not ``loaded`` is the C++ split (load ignored). ``sbar_grid`` ``(ny, nx)``: |S| of ``sig``
        at ``g``, computed here unless ``have_sbar`` (then the previous step's
        :func:`box_finish_stage` / :func:`finish_stage` wrote it). Writes the relaxation ratio drop/|S|,
        chi after the source, the diffusivity K (A^2 per unit strain) and, when ``loaded``,
        |S| after the plastic scaling (``sbar_rel``, for the load rate in :func:`_elastic_row`); returns
        (max K, stuck). The first sub-step runs on the whole grid; the cells with strain left
        are gathered into a compact list and sub-stepped together, one vectorised round per
        sub-step, until each has used its whole step (or ``max_sub`` sub-steps in all: stuck).
        The scratch arrays come from :func:`plastic_scratch`.
        """
        _, ny, nx = sig.shape
        n_cells = ny * nx
        if paper_form:
            kfac = l_chi * l_chi * math.sqrt(2.0) / c0 / (2.0 * mu * dt)
        else:
            kfac = l_chi * l_chi / (2.0 * mu * dt)
        sxx = sig[0].reshape(n_cells)
        syy = sig[1].reshape(n_cells)
        sxy = sig[2].reshape(n_cells)
        szz = sig[3].reshape(n_cells)
        chi_f = chi.reshape(n_cells)
        load_f = load.reshape(n_cells)
        ratio_f = ratio.reshape(n_cells)
        chi_pl_f = chi_pl.reshape(n_cells)
        kap_f = kap.reshape(n_cells)
        sbar_rel_f = sbar_rel.reshape(n_cells)
        sbar = sbar_grid.reshape(n_cells)
        if not have_sbar:
            for m in range(n_cells):
                sbar[m] = _physical_and_sbar(sxx[m], syy[m], sxy[m], szz[m], g)[2]
        # ``out`` holds |S| at the end of the step (explicit) or the accumulated plastic drop
        # (implicit) until the ratio is formed
        out = ratio_f
        out_row = 4 if implicit else 0
        # first sub-step on the whole grid (below yield the rate is zero: nothing changes there;
        # loaded: a cell the load does not bring to yield within the step gets load 0 here, so it
        # stays untouched as in the reference), then only the cells with strain left, compacted
        # into the front of ``work``
        n_active = 0
        for m in range(n_cells):
            sb = sbar[m]
            lm = load_f[m] if loaded else 0.0
            active = sb >= 1.0 or sb + lm * dt >= 1.0
            work[0, m] = sb
            work[1, m] = chi_f[m]
            work[2, m] = dt
            work[3, m] = lm if active else 0.0
            work[4, m] = 0.0
            n_active += active
        if n_active == 0:  # the whole grid stays elastic in this step (the first frames): no drop
            for m in range(n_cells):
                ratio_f[m] = 0.0
                chi_pl_f[m] = chi_f[m]
                kap_f[m] = 0.0
                sbar_rel_f[m] = sbar[m]
            return 0.0, False
        _plastic_round_any(work, xs, es, kbuf, limited, n_cells, mu, eps0s, c0, chi_inf, adapt, adapt_chi,
                           implicit)
        n_limited = 0
        for m in range(n_cells):
            out[m] = work[out_row, m]
            chi_pl_f[m] = work[1, m]
            n_limited += limited[m]
        n = 0
        if n_limited > 0:  # usually none at the refined steps of hot frames: skip the pass
            for m in range(n_cells):  # branch-free compaction (the branch would be mispredicted)
                idx[n] = m
                _move_cell(work, m, n)
                n += limited[m]
        for _ in range(max_sub - 1):
            if n == 0:
                break
            _plastic_round_any(work, xs, es, kbuf, limited, n, mu, eps0s, c0, chi_inf, adapt, adapt_chi, implicit)
            kept = 0
            for i in range(n):  # write every active cell back, keep the limited ones (branch-free)
                m = idx[i]
                out[m] = work[out_row, i]
                chi_pl_f[m] = work[1, i]
                idx[kept] = m
                _move_cell(work, i, kept)
                kept += limited[i]
            n = kept
        kmax = 0.0
        for m in range(n_cells):
            sb = sbar[m]
            if implicit:
                drop = out[m]
            elif loaded:  # plastic drop = |S| decrease + load over the step (load 0 where untouched)
                lm = load_f[m]
                lm = lm if (sb >= 1.0 or sb + lm * dt >= 1.0) else 0.0
                drop = sb - out[m] + lm * dt
            else:
                drop = sb - out[m]
            drop = max(min(drop, sb), 0.0)  # 0 <= drop <= |S| (physics.integrate_plastic_step)
            if loaded:
                sbar_rel_f[m] = sb - drop
            ratio_f[m] = drop / sb if sb > 1e-12 else 0.0
            k = kfac * drop  # K = l_chi^2 D (code) or l_chi^2 sqrt(2) D / c0 (paper), D = drop/(2 mu dt)
            kap_f[m] = k
            kmax = max(kmax, k)
        return kmax, n > 0

    @njit(cache=True, nogil=True, error_model="numpy")
    def _pad1(f, p):
        """Copy a periodic ``(ny, nx)`` field into ``p`` ``(ny + 2, nx + 2)`` with one ghost layer."""
        ny, nx = f.shape
        for j in range(ny):
            src = f[j]
            row = p[j + 1]
            for i in range(nx):
                row[i + 1] = src[i]
            row[0] = src[nx - 1]
            row[nx + 1] = src[0]
        for i in range(nx + 2):
            p[0, i] = p[ny, i]
            p[ny + 1, i] = p[1, i]

    @njit(cache=True, inline="always", error_model="numpy")
    def _diffusion_substep(cpad, kpad, gamma, h1, h2, sub_dt, q1, q2, chi_d):
        """chi_d += sub_dt div_x(K grad_x chi) in xi coordinates (operators.diffusion_divergence);
        ``cpad``, ``kpad``: chi_d and K with one periodic ghost layer (:func:`_pad1`)."""
        ny, nx = chi_d.shape
        g2 = 1.0 + gamma * gamma
        for j in range(ny):
            cm = cpad[j]
            c0 = cpad[j + 1]
            cp = cpad[j + 2]
            k0 = kpad[j + 1]
            kn = kpad[j + 2]
            f1 = q1[j]
            f2 = q2[j]
            for i in range(nx):
                ii = i + 1
                dy_c = (cp[ii] - cm[ii]) / (2.0 * h2)
                dy_e = (cp[ii + 1] - cm[ii + 1]) / (2.0 * h2)
                k_e = 0.5 * (k0[ii] + k0[ii + 1])
                f1[i] = k_e * (g2 * ((c0[ii + 1] - c0[ii]) / h1) - gamma * (0.5 * (dy_c + dy_e)))
                dx_c = (c0[ii + 1] - c0[ii - 1]) / (2.0 * h1)
                dx_n = (cp[ii + 1] - cp[ii - 1]) / (2.0 * h1)
                k_n = 0.5 * (k0[ii] + kn[ii])
                f2[i] = k_n * ((cp[ii] - c0[ii]) / h2 - gamma * (0.5 * (dx_c + dx_n)))
        for j in range(ny):
            f1 = q1[j]
            f2 = q2[j]
            f2m = q2[j - 1 if j > 0 else ny - 1]
            out = chi_d[j]
            out[0] = out[0] + sub_dt * ((f1[0] - f1[nx - 1]) / h1 + (f2[0] - f2m[0]) / h2)
            for i in range(1, nx):
                out[i] = out[i] + sub_dt * ((f1[i] - f1[i - 1]) / h1 + (f2[i] - f2m[i]) / h2)

    @njit(cache=True, nogil=True, error_model="numpy")
    def diffusion_stage(chi, kap, kmax, g, dt, h1, h2, chi_d, cpad, kpad, q1, q2):
        """Step 2: chi diffusion (Eq 29, 34), explicit, sub-cycled for stability; writes ``chi_d``.

        ``cpad``, ``kpad``: ``(ny + 2, nx + 2)`` scratch; ``q1``, ``q2``: ``(ny, nx)`` face fluxes.
        """
        ny, nx = chi.shape
        for j in range(ny):
            for i in range(nx):
                chi_d[j, i] = chi[j, i]
        if kmax <= 0.0:
            return
        stiff = kmax * dt * ((1.0 + g * g) / (h1 * h1) + 1.0 / (h2 * h2) + abs(g) / (h1 * h2))
        n_sub = max(1, int(math.ceil(stiff / 0.4)))  # operators.diffusion_substeps
        sub_dt = dt / n_sub
        _pad1(kap, kpad)
        for _ in range(n_sub):
            _pad1(chi_d, cpad)
            _diffusion_substep(cpad, kpad, g, h1, h2, sub_dt, q1, q2, chi_d)

    @njit(cache=True, nogil=True, error_model="numpy")
    def _pad2(f, p):
        """Copy a periodic ``(ny, nx)`` field into ``p`` ``(ny + 4, nx + 4)`` with two ghost layers."""
        ny, nx = f.shape
        for j in range(ny):
            row = p[j + 2]
            for i in range(nx):
                row[i + 2] = f[j, i]
            row[0] = f[j, nx - 2]
            row[1] = f[j, nx - 1]
            row[nx + 2] = f[j, 0]
            row[nx + 3] = f[j, 1]
        for i in range(nx + 4):
            p[0, i] = p[ny, i]
            p[1, i] = p[ny + 1, i]
            p[ny + 2, i] = p[2, i]
            p[ny + 3, i] = p[3, i]

    @njit(cache=True, inline="always", error_model="numpy")
    def _eno2(v, m2, m1, p1, p2, positive):
        """ENO2 one-sided derivative times h (operators._eno2_upwind); both upwind candidates are
        computed and selected without data-dependent branches (faster on random signs)."""
        central = 0.5 * (p1 - m1)
        curv_c = abs(p1 - 2.0 * v + m1)
        up_m = 0.5 * (3.0 * v - 4.0 * m1 + m2)
        up_p = -0.5 * (3.0 * v - 4.0 * p1 + p2)
        curv_m = abs(v - 2.0 * m1 + m2)
        curv_p = abs(v - 2.0 * p1 + p2)
        upwind = up_m if positive else up_p
        curv_up = curv_m if positive else curv_p
        return upwind if curv_c > curv_up else central

    @njit(cache=True, nogil=True, error_model="numpy")
    def _advect(pad, c1, c2, out):
        """out = c1 ENO2_x + c2 ENO2_y of one ghost-padded field, c = -dt V / h (upwind: V > 0 <=> c < 0).

        operators.advection_increment for one field; row views keep the stencil reads
        contiguous and the loop free of index arithmetic, so it vectorises.
        """
        ny, nx = out.shape
        for j in range(ny):
            r = pad[j + 2]
            rm2 = pad[j]
            rm1 = pad[j + 1]
            rp1 = pad[j + 3]
            rp2 = pad[j + 4]
            a = c1[j]
            b = c2[j]
            o = out[j]
            for i in range(nx):
                ii = i + 2
                v = r[ii]
                o[i] = (a[i] * _eno2(v, r[ii - 2], r[ii - 1], r[ii + 1], r[ii + 2], a[i] < 0.0)
                        + b[i] * _eno2(v, rm2[ii], rm1[ii], rp1[ii], rp2[ii], b[i] < 0.0))

    @njit(cache=True, inline="always", error_model="numpy")
    def _truesdell_row(a_xx, a_yy, a_xy, a_zz, l_xx, l_xy, l_yx, l_yy, ratio, d_xx, d_yy, d_xy, d_zz, g, gn, dt,
                       o_xx, o_yy, o_xy, o_zz, ps_xx, ps_yy, ps_xy):
        """One grid row of sigma* = Sigma + advection + Truesdell terms - plastic relaxation (Eq 30),
        and its physical xx, yy, xy components at ``gn`` (Eq 35) for the projection's force."""
        for i in range(a_xx.size):
            pxx = a_xx[i] + 2.0 * g * a_xy[i] + g * g * a_yy[i]  # sigma = T Sigma T^T (Eq 35)
            pyy = a_yy[i]
            pxy = a_xy[i] + g * a_yy[i]
            pzz = a_zz[i]
            mean = (pxx + pyy + pzz) / 3.0
            lxx = l_xx[i]
            lxy = l_xy[i]
            lyx = l_yx[i]
            lyy = l_yy[i]
            tr = lxx + lyy
            r = ratio[i]
            # Eq 30 Truesdell terms minus the plastic relaxation, physical components
            exx = dt * (2.0 * (lxx * pxx + lxy * pxy) - tr * pxx) - r * (pxx - mean)
            eyy = dt * (2.0 * (lyx * pxy + lyy * pyy) - tr * pyy) - r * (pyy - mean)
            exy = dt * (lxx * pxy + lxy * pyy + pxx * lyx + pxy * lyy - tr * pxy) - r * pxy
            ezz = dt * (-tr * pzz) - r * (pzz - mean)
            # to the sheared frame, Sigma = T^-1 sigma T^-T (Eq 35)
            s_xx = a_xx[i] + d_xx[i] + (exx - 2.0 * g * exy + g * g * eyy)
            s_yy = a_yy[i] + d_yy[i] + eyy
            s_xy = a_xy[i] + d_xy[i] + (exy - g * eyy)
            o_xx[i] = s_xx
            o_yy[i] = s_yy
            o_xy[i] = s_xy
            o_zz[i] = a_zz[i] + d_zz[i] + ezz
            ps_xx[i] = s_xx + 2.0 * gn * s_xy + gn * gn * s_yy
            ps_yy[i] = s_yy
            ps_xy[i] = s_xy + gn * s_yy

    @njit(cache=True, nogil=True, error_model="numpy")
    def transport_stage(sig, chi, refmap, vel, grad, ratio, chi_pl, chi_d, g, gn, dt, dt_adv, h1, h2, pad, c1,
                        c2, adv, sig_out, chi_out, ref_out, phys_star, jump_limit):
        """Step 3: advection by V = T^-1 u, Truesdell and plastic terms (Eq 30) for one member.

        The seven carried fields (Sigma, chi, reference map) are copied into the ghost-padded
        buffer ``pad`` ``(ny + 4, nx + 4)`` one at a time and advected into rows 0-6 of ``adv``
        ``(8, ny, nx)``, whose row 7 must hold zeros (``c1``, ``c2``: ``(ny, nx)`` scratch for
        -dt_adv V / h; with ``dt_adv`` = 0 nothing is advected and the zero row stands for every
        increment, see solver.advect_every); one fused pass then
        adds the Truesdell and plastic terms. Writes sigma* (sheared frame) to ``sig_out``,
        chi and the reference map after the step (``chi_out``, ``ref_out``; they may be ``chi``,
        ``refmap`` themselves: those updates are point-wise and come after the advection), and
        the physical sigma*_xx, _yy, _xy at ``gn`` (the strain after the step, g + dt up to
        round-off) to ``phys_star`` ``(3, ny, nx)``.
        Returns the number of cells whose 1/chi fell by more than ``jump_limit`` in the step
        (0 if ``jump_limit`` <= 0; the avalanche test of :func:`run_steps`, without a division:
        chi_after - chi_before > limit chi_before chi_after).
        """
        _, ny, nx = sig.shape
        nc = ny * nx
        # point-wise passes run over the flattened grid: rows of 32 are shorter than LLVM's
        # vector loop (width x interleave), which would leave them scalar
        u1 = vel[0].reshape(nc)
        u2 = vel[1].reshape(nc)
        c1f = c1.reshape(nc)
        c2f = c2.reshape(nc)
        on = dt_adv > 0.0
        if on:
            for m in range(nc):
                c1f[m] = -dt_adv * (u1[m] - g * u2[m]) / h1  # V = T^-1 u (Eq 35)
                c2f[m] = -dt_adv * u2[m] / h2
            for k in range(4):
                _pad2(sig[k], pad)
                _advect(pad, c1, c2, adv[k])
            _pad2(chi, pad)
            _advect(pad, c1, c2, adv[4])
            for k in range(2):
                _pad2(refmap[k], pad)
                _advect(pad, c1, c2, adv[5 + k])
        # a step without advection (between two of a refined frame) reads the zero row instead
        zr = adv[adv.shape[0] - 1]
        d_xx = adv[0] if on else zr
        d_yy = adv[1] if on else zr
        d_xy = adv[2] if on else zr
        d_zz = adv[3] if on else zr
        d_chi = adv[4] if on else zr
        d_r0 = adv[5] if on else zr
        d_r1 = adv[6] if on else zr
        _truesdell_row(sig[0].reshape(nc), sig[1].reshape(nc), sig[2].reshape(nc), sig[3].reshape(nc),
                       grad[0].reshape(nc), grad[1].reshape(nc), grad[2].reshape(nc), grad[3].reshape(nc),
                       ratio.reshape(nc), d_xx.reshape(nc), d_yy.reshape(nc), d_xy.reshape(nc),
                       d_zz.reshape(nc), g, gn, dt, sig_out[0].reshape(nc), sig_out[1].reshape(nc),
                       sig_out[2].reshape(nc), sig_out[3].reshape(nc), phys_star[0].reshape(nc),
                       phys_star[1].reshape(nc), phys_star[2].reshape(nc))
        c_o = chi_out.reshape(nc)
        c_p = chi_pl.reshape(nc)
        c_a = d_chi.reshape(nc)
        c_d = chi_d.reshape(nc)
        c_c = chi.reshape(nc)
        n_jumps = 0
        if jump_limit > 0.0:
            for m in range(nc):
                before = c_c[m]
                after = c_p[m] + c_a[m] + (c_d[m] - before)
                c_o[m] = after
                n_jumps += 1 if after - before > jump_limit * before * after else 0
        else:
            for m in range(nc):
                c_o[m] = c_p[m] + c_a[m] + (c_d[m] - c_c[m])
        r0 = refmap[0].reshape(nc)
        r1 = refmap[1].reshape(nc)
        a5 = d_r0.reshape(nc)
        a6 = d_r1.reshape(nc)
        o0 = ref_out[0].reshape(nc)
        o1 = ref_out[1].reshape(nc)
        for m in range(nc):
            o0[m] = r0[m] + a5[m] + dt * (u1[m] - g * u2[m])
            o1[m] = r1[m] + a6[m] + dt * u2[m]
        return n_jumps

    @njit(cache=True, nogil=True, error_model="numpy")
    def corner_force_stage(phys_star, gn, h1, h2, z):
        """Force div sigma* on the cell corners (box scheme), packed as ``z = F1 + i F2``.

        Corner (j, i) sits at (x_i - h1/2, y_j - h2/2). The compact differences
        d1 = [(s_{j,i} + s_{j-1,i}) - (s_{j,i-1} + s_{j-1,i-1})] / (2 h1) and
        d2 = [(s_{j,i} + s_{j,i-1}) - (s_{j-1,i} + s_{j-1,i-1})] / (2 h2) have the symbols
        e^{-i phi} i kappa_a of operators.wavenumbers; physical d/dy = d2 - gamma d1 (Eq 35),
        so F_i = d_j sigma*_ij is the reference projection's force times e^{-i phi} (Eq 31).
        """
        _, ny, nx = phys_star.shape
        for j in range(ny):
            jm = j - 1 if j > 0 else ny - 1
            xx0 = phys_star[0, j]
            xxm = phys_star[0, jm]
            yy0 = phys_star[1, j]
            yym = phys_star[1, jm]
            xy0 = phys_star[2, j]
            xym = phys_star[2, jm]
            zrow = z[j]
            zrow[0] = _corner_force(xx0[0], xxm[0], xx0[nx - 1], xxm[nx - 1], yy0[0], yym[0], yy0[nx - 1],
                                    yym[nx - 1], xy0[0], xym[0], xy0[nx - 1], xym[nx - 1], gn, h1, h2)
            for i in range(1, nx):
                zrow[i] = _corner_force(xx0[i], xxm[i], xx0[i - 1], xxm[i - 1], yy0[i], yym[i], yy0[i - 1],
                                        yym[i - 1], xy0[i], xym[i], xy0[i - 1], xym[i - 1], gn, h1, h2)

    @njit(cache=True, inline="always", error_model="numpy")
    def _corner_force(xx, xx_s, xx_w, xx_sw, yy, yy_s, yy_w, yy_sw, xy, xy_s, xy_w, xy_sw, gn, h1, h2):
        """F1 + i F2 at one corner from the four surrounding centres (s: south j-1, w: west i-1)."""
        a = xx - xx_sw
        b = xx_s - xx_w
        dxx1 = (a + b) / (2.0 * h1)
        a = xy - xy_sw
        b = xy_s - xy_w
        dxy1 = (a + b) / (2.0 * h1)
        dxy2 = (a - b) / (2.0 * h2)
        a = yy - yy_sw
        b = yy_s - yy_w
        dyy1 = (a + b) / (2.0 * h1)
        dyy2 = (a - b) / (2.0 * h2)
        f1 = dxx1 + (dxy2 - gn * dxy1)
        f2 = dxy1 + (dyy2 - gn * dyy1)
        return complex(f1, f2)

    @njit(cache=True, nogil=True, error_model="numpy")
    def box_solve_stage(zhat, kappa1, kappa2, gn, dt, lam, mu, uhat, rows):
        """Invert M = mu |k|^2 I + (lambda + mu) k k^T per wavevector (operators.project_velocity).

        ``zhat`` is fft2(F1 + i F2) on the full ``(ny, nx)`` grid; the two real forces are
        unpacked by Hermitian symmetry, F1^(k) = (z(k) + conj z(-k)) / 2,
        F2^(k) = (z(k) - conj z(-k)) / (2 i). M is real and even in k, so
        ``uhat = U1^ + i U2^`` inverse-transforms to the two real corner velocities.
        ``kappa1``, ``kappa2``: box symbols on the full fftfreq grid. ``rows``: ``(8, nx)``
        scratch; each row is split into real arrays (z(k) and z(-k) re/im) so that the
        arithmetic, in real form, vectorises.
        """
        ny, nx = zhat.shape
        coef = (lam + mu) / (lam + 2.0 * mu)
        scale0 = 1.0 / (mu * dt)
        zr = rows[0]
        zi = rows[1]
        cr = rows[2]
        ci = rows[3]
        for j in range(ny):
            jn = ny - j if j > 0 else 0
            zrow = zhat[j]
            nrow = zhat[jn]
            for i in range(nx):
                zr[i] = zrow[i].real
                zi[i] = zrow[i].imag
            cr[0] = nrow[0].real  # conj z(-k): column -i is nx - i (0 for i = 0)
            ci[0] = -nrow[0].imag
            for i in range(1, nx):
                cr[i] = nrow[nx - i].real
                ci[i] = -nrow[nx - i].imag
            _box_solve_row(zr, zi, cr, ci, kappa1[j], kappa2[j], gn, coef, scale0, rows[4], rows[5], rows[6],
                           rows[7])
            urow = uhat[j]
            for i in range(nx):
                urow[i] = complex(rows[4, i], rows[5, i])

    @njit(cache=True, inline="always", error_model="numpy")
    def _box_solve_row(zr, zi, cr, ci, k1, k2, gn, coef, scale0, ur, ui, spare0, spare1):
        """One row of box_solve_stage in real arithmetic: uhat = U1 + i U2 with U = M^-1 F."""
        for i in range(zr.size):
            f1r = 0.5 * (zr[i] + cr[i])
            f1i = 0.5 * (zi[i] + ci[i])
            f2r = 0.5 * (zi[i] - ci[i])  # (z - zc) / (2 i)
            f2i = -0.5 * (zr[i] - cr[i])
            kx = k1[i]
            ky = k2[i] - gn * k1[i]
            ksq = kx * kx + ky * ky
            inv = 1.0 / ksq if ksq > 1e-30 else 0.0
            kfr = (kx * f1r + ky * f2r) * inv
            kfi = (kx * f1i + ky * f2i) * inv
            scale = inv * scale0
            u1r = (f1r - coef * kx * kfr) * scale
            u1i = (f1i - coef * kx * kfi) * scale
            u2r = (f2r - coef * ky * kfr) * scale
            u2i = (f2i - coef * ky * kfi) * scale
            ur[i] = u1r - u2i  # u1 + i u2
            ui[i] = u1i + u2r

    @njit(cache=True, nogil=True, error_model="numpy")
    def box_finish_stage(w, sig_star, gn, dt, lam, mu, h1, h2, wpad, sig_out, vel_out, grad_out, sbar_next,
                         sbar_rel, load, loaded):
        """Corner velocity ``w`` (complex u1 + i u2) -> centre velocity and L; add dt C:D (Eq 30).

        Centre (j, i) is surrounded by the corners (j, i), (j, i+1), (j+1, i), (j+1, i+1); their
        average and compact differences have the symbols e^{+i phi} (cos cos, i kappa_a), which
        undo the corner phase: the result equals the reference ``project_velocity``.
        ``wpad`` ``(2, ny + 1, nx + 1)`` scratch: real corner velocities with one periodic ghost
        row and column, so the inner loop has no index wrapping. ``sbar_next``, ``load``: see
        :func:`_elastic_row` (the load rate is formed in the same pass as the update).
        """
        _, ny, nx = sig_star.shape
        for j in range(ny + 1):
            js = j if j < ny else 0
            wrow = w[js]
            p0 = wpad[0, j]
            p1 = wpad[1, j]
            for i in range(nx):
                p0[i] = wrow[i].real
                p1[i] = wrow[i].imag
            p0[nx] = p0[0]
            p1[nx] = p1[0]
        for j in range(ny):
            _corner_to_centre_row(wpad[0, j], wpad[0, j + 1], wpad[1, j], wpad[1, j + 1], gn, h1, h2,
                                  vel_out[0, j], vel_out[1, j], grad_out[0, j], grad_out[1, j], grad_out[2, j],
                                  grad_out[3, j])
        _elastic_flat(sig_star, grad_out, gn, dt, lam, mu, sig_out, sbar_next, sbar_rel, load, loaded)

    @njit(cache=True, inline="always", error_model="numpy")
    def _corner_to_centre_row(w0, w0n, w1, w1n, gn, h1, h2, v0, v1, g_xx, g_xy, g_yx, g_yy):
        """One row of centre velocity and L = grad u from the four surrounding corners."""
        for i in range(v0.size):
            a1 = w0n[i + 1] - w0[i]
            b1 = w0[i + 1] - w0n[i]
            a2 = w1n[i + 1] - w1[i]
            b2 = w1[i + 1] - w1n[i]
            v0[i] = 0.25 * ((w0[i] + w0n[i + 1]) + (w0[i + 1] + w0n[i]))
            v1[i] = 0.25 * ((w1[i] + w1n[i + 1]) + (w1[i + 1] + w1n[i]))
            d1u1 = (a1 + b1) / (2.0 * h1)
            d2u1 = (a1 - b1) / (2.0 * h2)
            d1u2 = (a2 + b2) / (2.0 * h1)
            d2u2 = (a2 - b2) / (2.0 * h2)
            g_xx[i] = d1u1  # physical d/dx = d1, d/dy = d2 - gamma d1 (Eq 35)
            g_xy[i] = d2u1 - gn * d1u1
            g_yx[i] = d1u2
            g_yy[i] = d2u2 - gn * d1u2

    @njit(cache=True, inline="always", error_model="numpy")
    def _elastic_row(s_xx, s_yy, s_xy, s_zz, l_xx, l_xy, l_yx, l_yy, gn, dt, lam, mu, o_xx, o_yy, o_xy, o_zz,
                     sbar_next, sbar_rel, load, loaded):
        """One row of Eq 30: o = sigma* + dt C : D, D = sym(L), L the total (affine + periodic)
        velocity gradient per unit strain, L_affine = [[0, 1], [0, 0]] (Eq 35); written in the
        sheared frame Sigma = T^-1 sigma T^-T (T with gamma = gn), plane strain (zz carries
        lam tr D). Units of s_y. In the same pass: |S| of o at gn into ``sbar_next`` (the next
        step's plastic stage starts from it) and, when ``loaded``, the step's non-plastic
        d|S|/dgamma (|S| - |S| after the plastic scaling) / dt into ``load``."""
        for i in range(s_xx.size):
            lxx = l_xx[i]
            lxy = l_xy[i] + 1.0
            lyx = l_yx[i]
            lyy = l_yy[i]
            tr = lxx + lyy
            exx = dt * (lam * tr + 2.0 * mu * lxx)
            eyy = dt * (lam * tr + 2.0 * mu * lyy)
            exy = dt * (mu * (lxy + lyx))
            ezz = dt * (lam * tr)
            a_xx = s_xx[i] + (exx - 2.0 * gn * exy + gn * gn * eyy)
            a_yy = s_yy[i] + eyy
            a_xy = s_xy[i] + (exy - gn * eyy)
            a_zz = s_zz[i] + ezz
            o_xx[i] = a_xx
            o_yy[i] = a_yy
            o_xy[i] = a_xy
            o_zz[i] = a_zz
            sb = _physical_and_sbar(a_xx, a_yy, a_xy, a_zz, gn)[2]
            sbar_next[i] = sb
            if loaded:
                load[i] = (sb - sbar_rel[i]) / dt

    @njit(cache=True, inline="always", error_model="numpy")
    def _elastic_flat(sig_star, grad, gn, dt, lam, mu, sig_out, sbar_next, sbar_rel, load, loaded):
        """:func:`_elastic_row` over the whole (flattened) grid."""
        _, ny, nx = sig_star.shape
        nc = ny * nx
        _elastic_row(sig_star[0].reshape(nc), sig_star[1].reshape(nc), sig_star[2].reshape(nc),
                     sig_star[3].reshape(nc), grad[0].reshape(nc), grad[1].reshape(nc), grad[2].reshape(nc),
                     grad[3].reshape(nc), gn, dt, lam, mu, sig_out[0].reshape(nc), sig_out[1].reshape(nc),
                     sig_out[2].reshape(nc), sig_out[3].reshape(nc), sbar_next.reshape(nc), sbar_rel.reshape(nc),
                     load.reshape(nc), loaded)

    @njit(cache=True, nogil=True, error_model="numpy")
    def spectral_stage(spec, kappa1, kappa2, average, gamma_new, dt, lam, mu, out):
        """Closed-form 2 x 2 solve per wavevector on the rfft grid (operators.project_velocity)."""
        _, ny, nk = spec.shape
        coef = (lam + mu) / (lam + 2.0 * mu)
        for j in range(ny):
            for i in range(nk):
                kx = kappa1[j, i]
                ky = kappa2[j, i] - gamma_new * kappa1[j, i]
                ksq = kx * kx + ky * ky
                if ksq > 1e-30:
                    inv = 1.0 / ksq
                else:
                    inv = 0.0
                f1 = 1j * (kx * spec[0, j, i] + ky * spec[2, j, i])
                f2 = 1j * (kx * spec[2, j, i] + ky * spec[1, j, i])
                kf = (kx * f1 + ky * f2) * inv
                scale = inv / (mu * dt)
                u1 = (f1 - coef * kx * kf) * scale
                u2 = (f2 - coef * ky * kf) * scale
                out[0, j, i] = average[j, i] * u1
                out[1, j, i] = average[j, i] * u2
                out[2, j, i] = 1j * kx * u1
                out[3, j, i] = 1j * ky * u1
                out[4, j, i] = 1j * kx * u2
                out[5, j, i] = 1j * ky * u2

    @njit(cache=True, nogil=True, error_model="numpy")
    def finish_stage(sig_star, real, gn, dt, lam, mu, sig_out, vel_out, grad_out, sbar_next, sbar_rel, load,
                     loaded):
        """Add dt C:(D_affine + sym grad u) in the sheared frame (Eq 30); store velocity and L.

        ``real`` ``(6, ny, nx)``: centre velocity (2) and L = (xx, xy, yx, yy) per unit strain;
        ``sbar_next``, ``load`` as in :func:`box_finish_stage`.
        """
        _, ny, nx = sig_star.shape
        for j in range(ny):
            for i in range(nx):
                vel_out[0, j, i] = real[0, j, i]
                vel_out[1, j, i] = real[1, j, i]
                grad_out[0, j, i] = real[2, j, i]
                grad_out[1, j, i] = real[3, j, i]
                grad_out[2, j, i] = real[4, j, i]
                grad_out[3, j, i] = real[5, j, i]
        _elastic_flat(sig_star, grad_out, gn, dt, lam, mu, sig_out, sbar_next, sbar_rel, load, loaded)

    @njit(cache=True, inline="always", error_model="numpy")
    def _copy_state(src, dst):
        """dst[k][:] = src[k] for a member's (Sigma, chi, reference map, velocity, L, load rate)."""
        dst[0][:] = src[0]
        dst[1][:] = src[1]
        dst[2][:] = src[2]
        dst[3][:] = src[3]
        dst[4][:] = src[4]
        dst[5][:] = src[5]

    @njit(cache=True, inline="always", error_model="numpy")
    def _diffuse_in_step(chi, kap, kmax, kap_sum, step, n_steps, every, g, dt, h1, h2, chi_d, cpad, kpad, q1, q2):
        """Chi after this step's diffusion (Eq 29, 34): ``chi_d``, diffused every step when ``every``
        is 1, else once per group of ``every`` steps over the group's strain with its mean
        diffusivity (accumulated in ``kap_sum``; solver.diffuse_every); ``chi`` itself on the
        other steps of a group (no diffusion increment)."""
        if every == 1:
            diffusion_stage(chi, kap, kmax, g, dt, h1, h2, chi_d, cpad, kpad, q1, q2)
            return chi_d
        n_group = step % every + 1
        closes = n_group == every or step == n_steps - 1
        kmax_group = _accumulate_diffusivity(kap_sum, kap, n_group, closes)
        if not closes:
            return chi
        diffusion_stage(chi, kap_sum, kmax_group, g, dt * n_group, h1, h2, chi_d, cpad, kpad, q1, q2)
        kap_sum[:] = 0.0
        return chi_d

    @njit(cache=True, inline="always", error_model="numpy")
    def _accumulate_diffusivity(kap_sum, kap, n_group, closes):
        """kap_sum += kap (chi diffusivity K, A^2 per unit strain, Eq 34); if ``closes``,
        kap_sum /= n_group (the group's mean K) and return its max."""
        n = kap.size
        kf = kap_sum.reshape(n)
        kp = kap.reshape(n)
        for m in range(n):
            kf[m] += kp[m]
        kmax = 0.0
        if closes:
            for m in range(n):
                kf[m] = kf[m] / n_group
                kmax = max(kmax, kf[m])
        return kmax

    @njit(cache=True, nogil=True, error_model="numpy")
    def run_steps(sig, chi, refmap, vel, grad, load, loaded, implicit, gamma0, n_steps, dt, mu, lam, eps0s, c0,
                  chi_inf, l_chi, paper_form, adapt, adapt_chi, max_sub, h1, h2, box, kappa1, kappa2, average,
                  stuck, advect_every, diffuse_every, jump_limit, redo_steps, redo_growth, frame_strain, steps_used):
        """Advance every member by ``n_steps`` steps from strain ``gamma0``, in place.

        ``load`` ``(B, ny, nx)``: non-plastic d|S|/dgamma of the previous step, used and updated
        in place when ``loaded`` (the default split), untouched for the C++ split. ``implicit``:
        linearly implicit plastic sub-steps (with ``loaded``), else the C++'s forward Euler.

        ``box``: True for the box derivative, then ``kappa1``, ``kappa2`` are the symbols on the
        FULL ``(ny, nx)`` fftfreq grid (operators.box_symbols_full) and ``average`` is unused;
        False for spectral, with the rfft-grid :class:`operators.Wavenumbers` arrays.
        Each member runs on its own, so its arithmetic does not depend on the batch. A member
        whose plastic sub-steps hit the cap is flagged in ``stuck`` and left as it was at the
        start of the failing step. ``advect_every`` m: advection on steps 0, m, 2m, ... by m dt
        (solver.advect_every; 1 = every step; the frame's last group by its own steps).
        ``diffuse_every`` m: chi diffusion on steps m - 1, 2m - 1, ... over m dt with the mean
        diffusivity of the m steps (solver.diffuse_every).

        Avalanche rejection (``jump_limit`` > 0; solver._advance_frame is the reference): the
        ``n_steps`` steps span one frame. When a step lowers 1/chi of some cell by more than
        ``jump_limit`` in a frame of fewer than ``redo_steps`` steps, the member's frame is
        abandoned, its state restored from a copy taken at the frame's start, and the frame redone
        with ``redo_growth`` times the steps (at most ``redo_steps``; dt = ``frame_strain`` / steps),
        advecting and diffusing every step; ``steps_used[b]`` is the count its frame ended with.
        """
        nb, _, ny, nx = sig.shape
        nk = nx // 2 + 1
        ratio = np.empty((ny, nx))
        work, xs, es, kbuf, idx, limited = plastic_scratch(ny * nx)
        sbar_rel = np.empty((ny, nx))
        sbar_grid = np.empty((ny, nx))
        chi_pl = np.empty((ny, nx))
        kap = np.empty((ny, nx))
        kap_sum = np.zeros((ny, nx))
        chi_d = np.empty((ny, nx))
        cpad = np.empty((ny + 2, nx + 2))
        kpad = np.empty((ny + 2, nx + 2))
        q1 = np.empty((ny, nx))
        q2 = np.empty((ny, nx))
        pad = np.empty((ny + 4, nx + 4))
        c1 = np.empty((ny, nx))
        c2 = np.empty((ny, nx))
        adv = np.zeros((8, ny, nx))  # row 7 stays zero (transport_stage)
        wpad = np.empty((2, ny + 1, nx + 1))
        s_star = np.empty((4, ny, nx))
        phys_star = np.empty((3, ny, nx))
        z = np.empty((ny, nx), dtype=np.complex128)
        uhat = np.empty((ny, nx), dtype=np.complex128)
        zhat = np.empty((ny, nx), dtype=np.complex128)
        w = np.empty((ny, nx), dtype=np.complex128)
        fft_axes = np.array([0, 1])
        inv_cells = 1.0 / (ny * nx)
        solve_rows = np.empty((8, nx))
        spec = np.empty((3, ny, nk), dtype=np.complex128)
        spec_out = np.empty((6, ny, nk), dtype=np.complex128)
        real = np.empty((6, ny, nx))
        rejecting = jump_limit > 0.0
        saved = (np.empty((4, ny, nx)), np.empty((ny, nx)), np.empty((2, ny, nx)), np.empty((2, ny, nx)),
                 np.empty((4, ny, nx)), np.empty((ny, nx)))
        for b in range(nb):
            s_cur = sig[b]
            c_cur = chi[b]
            r_cur = refmap[b]
            v_cur = vel[b]
            g_cur = grad[b]
            l_cur = load[b]
            if rejecting:
                _copy_state((s_cur, c_cur, r_cur, v_cur, g_cur, l_cur), saved)
            n_run, dt_run, adv_every, diff_every = n_steps, dt, advect_every, diffuse_every
            while True:
                watch = rejecting and n_run < redo_steps
                fired = False
                kap_sum[:] = 0.0
                for step in range(n_run):
                    # g and gn by one formula, so that this step's gn is the next step's g to the bit
                    # and the |S| the finish stage computes at gn serves the next plastic stage
                    g = gamma0 + step * dt_run
                    gn = gamma0 + (step + 1) * dt_run
                    kmax, flag = plastic_stage(s_cur, c_cur, l_cur, loaded, implicit, g, dt_run, mu[b], eps0s[b],
                                               c0[b], chi_inf[b], l_chi[b], paper_form, adapt, adapt_chi, max_sub,
                                               ratio, chi_pl, kap, sbar_rel, sbar_grid, step > 0, work, xs, es, kbuf,
                                               idx, limited)
                    if flag:
                        stuck[b] = True
                        break
                    c_diff = _diffuse_in_step(c_cur, kap, kmax, kap_sum, step, n_run, diff_every, g, dt_run, h1,
                                              h2, chi_d, cpad, kpad, q1, q2)
                    # solver.advected_strain_steps: the last group of a frame may be shorter
                    dt_adv = dt_run * min(adv_every, n_run - step) if step % adv_every == 0 else 0.0
                    n_jumps = transport_stage(s_cur, c_cur, r_cur, v_cur, g_cur, ratio, chi_pl, c_diff, g, gn, dt_run,
                                              dt_adv, h1, h2, pad, c1, c2, adv, s_star, c_cur, r_cur, phys_star,
                                              jump_limit if watch else 0.0)  # chi, map in place
                    if n_jumps > 0:
                        fired = True
                        break
                    if box:
                        corner_force_stage(phys_star, gn, h1, h2, z)
                        c2c(z, zhat, fft_axes, True, 1.0, 1)  # = np.fft.fft2(z), bit for bit
                        box_solve_stage(zhat, kappa1, kappa2, gn, dt_run, lam[b], mu[b], uhat, solve_rows)
                        c2c(uhat, w, fft_axes, False, inv_cells, 1)  # = np.fft.ifft2(uhat)
                        box_finish_stage(w, s_star, gn, dt_run, lam[b], mu[b], h1, h2, wpad, s_cur, v_cur, g_cur,
                                         sbar_grid, sbar_rel, l_cur, loaded)
                    else:
                        for k in range(3):
                            spec[k] = np.fft.rfft2(phys_star[k])
                        spectral_stage(spec, kappa1, kappa2, average, gn, dt_run, lam[b], mu[b], spec_out)
                        for k in range(6):
                            real[k] = np.fft.irfft2(spec_out[k], s=(ny, nx))
                        finish_stage(s_star, real, gn, dt_run, lam[b], mu[b], s_cur, v_cur, g_cur, sbar_grid,
                                     sbar_rel, l_cur, loaded)
                if not fired:
                    break
                # reject the frame: back to its start, redo with finer steps (solver._advance_frame)
                _copy_state(saved, (s_cur, c_cur, r_cur, v_cur, g_cur, l_cur))
                n_run = min(n_run * redo_growth, redo_steps)
                dt_run = frame_strain / n_run
                adv_every, diff_every = 1, 1
            steps_used[b] = n_run

    @njit(cache=True, nogil=True, error_model="numpy")
    def frame_plan(k_stiff, gamma, first_refined, base, stiff_limit, max_steps, dgamma, window, late_cap,
                   base_adv, diffuse_at_base):
        """Steps of one member's next frame and its advection and diffusion strides, as
        solver.doubled_steps, solver.windowed_steps, solver.advect_every and solver.diffuse_every
        (the reference). ``k_stiff``: the member's stiff_quantile; ``first_refined``: the strain at
        the start of its first refined frame (inf until then); ``stiff_limit`` <= 0 or ``window`` <= 0
        switch the rule or the window off. Returns (steps, first_refined, advect_every, diffuse_every)."""
        steps = base
        if stiff_limit > 0.0:
            while k_stiff * dgamma / steps > stiff_limit and steps < max_steps:
                steps *= 2
            steps = min(steps, max_steps)
        if window > 0.0:
            if steps > base and math.isinf(first_refined):
                first_refined = gamma
            if gamma - first_refined >= window - 1e-12:  # frame strains carry round-off
                steps = min(steps, max(late_cap, base))
        m = steps // base if steps > base and steps % base == 0 else 1  # solver._refinement
        every = base_adv * m if base_adv > 0 else 1
        return steps, first_refined, every, m if diffuse_at_base else 1

    @njit(cache=True, nogil=True, error_model="numpy")
    def run_frames(sig, chi, refmap, vel, grad, load, status, fail_frame, first_refined, frames, gamma_frames,
                   plan, loaded, implicit, mu, lam, eps0s, c0, chi_inf, l_chi, s_y_gpa, paper_form, adapt, adapt_chi,
                   max_sub, h1, h2, box, kappa1, kappa2, average, jump_limit, redo_steps, redo_growth, rows, fields,
                   means, stress, store_stress, steps_out):
        """Output frames ``frames`` (consecutive indices k >= 1) of every member still running, in place:
        the compiled form of solver._run_members' frame loop for one member after the other.

        Per frame k and member b: the steps from the frame-start stiffness (:func:`stiff_quantile`,
        :func:`frame_plan`; ``plan`` = (steps_per_frame, stiff_step_limit, max_steps_per_frame,
        gamma_final, n_frames, stiff_window_strain, late_max_steps_per_frame, base_steps_per_advection,
        diffuse_at_base_step, stiffness rank) as floats, 0 for a rule that is off), the frame by :func:`run_steps` (avalanche
        redo included), then the checks and :func:`record_frame`. ``status[b]``: 0 running, 1 plastic
        sub-step cap hit (solver._STUCK), 2 non-finite or non-positive state (solver._NON_FINITE);
        ``fail_frame[b]``: the frame it failed in. A failed member is skipped from then on and its
        later frames stay as they were (NaN). ``steps_out[b, k]``: the steps frame k took.
        """
        base, limit, max_steps = int(plan[0]), plan[1], int(plan[2])
        gamma_final, n_frames, window, late_cap = plan[3], plan[4], plan[5], int(plan[6])
        base_adv, diffuse_at_base, rank = int(plan[7]), plan[8] > 0.0, int(plan[9])
        dgamma = gamma_final / n_frames
        k_stiff = np.zeros(1)
        stuck = np.zeros(1, dtype=np.bool_)
        used = np.zeros(1, dtype=np.int64)
        ok = np.ones(1, dtype=np.bool_)
        for b in range(sig.shape[0]):
            s, c, r, v, g, ld = sig[b:b + 1], chi[b:b + 1], refmap[b:b + 1], vel[b:b + 1], grad[b:b + 1], load[b:b + 1]
            for k in frames:
                if status[b] != 0:
                    break
                gamma = gamma_frames[k - 1]
                if limit > 0.0:
                    stiff_quantile(s, c, ld, gamma, dgamma, eps0s[b:b + 1], mu[b:b + 1], rank, k_stiff)
                n_steps, first_refined[b], every, m_diff = frame_plan(
                    k_stiff[0], gamma, first_refined[b], base, limit, max_steps, dgamma, window, late_cap, base_adv,
                    diffuse_at_base)
                dt = gamma_final / (n_frames * n_steps)  # as solver._advance_frame, to the bit
                stuck[0] = False
                used[0] = n_steps
                run_steps(s, c, r, v, g, ld, loaded, implicit, gamma, n_steps, dt, mu[b:b + 1], lam[b:b + 1],
                          eps0s[b:b + 1], c0[b:b + 1], chi_inf[b:b + 1], l_chi[b:b + 1], paper_form, adapt, adapt_chi,
                          max_sub, h1, h2, box, kappa1, kappa2, average, stuck, every, m_diff, jump_limit, redo_steps,
                          redo_growth, dgamma, used)
                steps_out[rows[b], k] = used[0]
                if stuck[0]:
                    status[b], fail_frame[b] = 1, k
                    break
                finite_members(s, c, r, v, ok)
                if not ok[0]:
                    status[b], fail_frame[b] = 2, k
                    break
                record_frame(s, c, r, gamma_frames[k], h1, h2, s_y_gpa[b:b + 1], rows[b:b + 1], k, fields, means,
                             stress, store_stress)

    @njit(cache=True, nogil=True, error_model="numpy")
    def record_frame(sig, chi, refmap, gamma, h1, h2, s_y_gpa, rows, k, fields, means, stress, store_stress):
        """Frame ``k`` of every member into the output buffers (solver._record, compiled).

        ``fields`` ``(4, B_all, frames, ny, nx)``: 2 E_xy, E_xx, E_yy (Green-Lagrange from the
        reference map, E = (F^T F - I)/2 with F = T G^-1, G = I - grad_xi w, centred differences)
        and chi; ``means`` ``(9, B_all, frames)`` in the order of solver._MEAN_NAMES; ``stress``
        ``(4, B_all, frames, ny, nx)`` physical stress in GPa (written if ``store_stress``).
        ``rows[b]`` is member b's row in the buffers. Means are plain sums / n_cells.
        """
        nb, _, ny, nx = sig.shape
        n_cells = ny * nx
        for b in range(nb):
            r = rows[b]
            sy = s_y_gpa[b]
            t_pxy = t_sxy = t_pxx = t_pyy = t_pzz = t_p = t_dev = t_exy = t_chi = 0.0
            for j in range(ny):
                jp = j + 1 if j + 1 < ny else 0
                jm = j - 1 if j > 0 else ny - 1
                for i in range(nx):
                    ip = i + 1 if i + 1 < nx else 0
                    im = i - 1 if i > 0 else nx - 1
                    w1x = (refmap[b, 0, j, ip] - refmap[b, 0, j, im]) / (2.0 * h1)
                    w1y = (refmap[b, 0, jp, i] - refmap[b, 0, jm, i]) / (2.0 * h2)
                    w2x = (refmap[b, 1, j, ip] - refmap[b, 1, j, im]) / (2.0 * h1)
                    w2y = (refmap[b, 1, jp, i] - refmap[b, 1, jm, i]) / (2.0 * h2)
                    g11 = 1.0 - w1x
                    g12 = -w1y
                    g21 = -w2x
                    g22 = 1.0 - w2y
                    inv_det = 1.0 / (g11 * g22 - g12 * g21)
                    a11 = g22 * inv_det  # G^-1
                    a12 = -g12 * inv_det
                    a21 = -g21 * inv_det
                    a22 = g11 * inv_det
                    f11 = a11 + gamma * a21  # F = T G^-1
                    f12 = a12 + gamma * a22
                    f21 = a21
                    f22 = a22
                    exx = 0.5 * (f11 * f11 + f21 * f21 - 1.0)
                    eyy = 0.5 * (f12 * f12 + f22 * f22 - 1.0)
                    exy = 0.5 * (f11 * f12 + f21 * f22)
                    c = chi[b, j, i]
                    fields[0, r, k, j, i] = 2.0 * exy
                    fields[1, r, k, j, i] = exx
                    fields[2, r, k, j, i] = eyy
                    fields[3, r, k, j, i] = c
                    a_xx = sig[b, 0, j, i]
                    a_yy = sig[b, 1, j, i]
                    a_xy = sig[b, 2, j, i]
                    a_zz = sig[b, 3, j, i]
                    pxx, pxy, sbar = _physical_and_sbar(a_xx, a_yy, a_xy, a_zz, gamma)  # Eq 35
                    pyy = a_yy
                    pzz = a_zz
                    t_dev += sbar
                    t_pxy += pxy
                    t_sxy += a_xy
                    t_pxx += pxx
                    t_pyy += pyy
                    t_pzz += pzz
                    t_p += pxx + pyy + pzz
                    t_exy += exy
                    t_chi += c
                    if store_stress:
                        stress[0, r, k, j, i] = sy * pxx
                        stress[1, r, k, j, i] = sy * pyy
                        stress[2, r, k, j, i] = sy * pxy
                        stress[3, r, k, j, i] = sy * pzz
            means[0, r, k] = sy * (t_pxy / n_cells)
            means[1, r, k] = sy * (t_sxy / n_cells)
            means[2, r, k] = sy * (t_pxx / n_cells)
            means[3, r, k] = sy * (t_pyy / n_cells)
            means[4, r, k] = sy * (t_pzz / n_cells)
            means[5, r, k] = -sy * (t_p / n_cells) / 3.0
            means[6, r, k] = t_dev / n_cells
            means[7, r, k] = 2.0 * (t_exy / n_cells)
            means[8, r, k] = t_chi / n_cells

    @njit(cache=True, nogil=True, error_model="numpy")
    def finite_members(sig, chi, refmap, vel, ok):
        """``ok[b]``: member b's state is finite everywhere and its chi positive (solver._finite_members)."""
        nb = chi.shape[0]
        for b in range(nb):
            good = True
            for v in sig[b].ravel():
                good = good and math.isfinite(v)
            for v in refmap[b].ravel():
                good = good and math.isfinite(v)
            for v in vel[b].ravel():
                good = good and math.isfinite(v)
            for v in chi[b].ravel():
                good = good and math.isfinite(v) and v > 0.0
            ok[b] = good

    @njit(cache=True, nogil=True, error_model="numpy")
    def stiff_quantile(sig, chi, load_rate, gamma, dgamma, eps0_per_strain, mu, rank, out):
        """``out[b]``: the ``rank``-th smallest (0-based) over cells of the plastic stiffness
        d(2 mu D)/d|S| of member b, counting cells that reach yield within ``dgamma`` at their
        load rate at |S| = max(|S|, 1) (solver.frame_steps; physics.stz_rate_and_stiffness)."""
        nb, ny, nx = chi.shape
        n = ny * nx
        buf = np.empty(n)
        for b in range(nb):
            sxx, syy, sxy, szz = sig[b, 0].ravel(), sig[b, 1].ravel(), sig[b, 2].ravel(), sig[b, 3].ravel()
            c, g = chi[b].ravel(), load_rate[b].ravel()
            m = 0
            for i in range(n):
                sbar = _physical_and_sbar(sxx[i], syy[i], sxy[i], szz[i], gamma)[2]
                if sbar + max(g[i], 0.0) * dgamma >= 1.0:
                    s = max(sbar, 1.0)
                    amp = 2.0 * mu[b] * eps0_per_strain[b] * math.exp(-1.0 / c[i])
                    buf[m] = _relax_and_stiffness(s, math.exp(-s), amp)[1]
                    m += 1
            zeros = n - m  # cells that stay below yield: stiffness 0
            if rank < zeros:
                out[b] = 0.0
            else:
                out[b] = np.partition(buf[:m], rank - zeros)[rank - zeros]  # selection, O(m)


else:  # pragma: no cover
    exp_array = plastic_scratch = plastic_stage = diffusion_stage = transport_stage = corner_force_stage = None
    box_solve_stage = box_finish_stage = spectral_stage = finish_stage = run_steps = None
    record_frame = finite_members = stiff_quantile = frame_plan = run_frames = None
