"""Time stepping of the STZ continuum model and the public ``simulate`` functions.

One quasi-static step (strain as time, dt = gamma_final / (n_frames steps_per_frame)), in the
order of the authors' C++ (advection_step, then projection_step):

1. plastic relaxation and chi source per cell, adaptive sub-steps (Eq 29, 32-33), with the
   cell's |S| driven during the step by its non-plastic rate of the previous step
   (``plastic_split="loaded"``, default) or frozen apart from plasticity (``"cpp"``, the C++);
2. chi diffusion with the step-averaged plastic rate (Eq 29, 34), sub-cycled when stiff;
3. ENO2 advection of the sheared-frame stress Sigma, chi and the reference map by the
   periodic velocity of the previous projection, and the Truesdell terms L sigma + sigma L^T
   - tr(L) sigma of that velocity (Eq 30; the affine shear is absorbed by Sigma = T^-1 sigma T^-T);
4. projection: gamma advances, the periodic velocity that restores div sigma = 0 (Eq 31) is
   solved by FFT and dt C : D (affine + periodic) is added (Eq 30); the non-plastic rate of |S|
   over the step (steps 3-4) is kept for step 1 of the next step.

Why the load in step 1 departs from the C++: the C++ relaxes each cell with its total strain
frozen for the step, so a cell of plastic stiffness k = d(2 mu D)/d|S| relaxes at the rate
(1 - e^{-k dt})/dt instead of k: its plastic rate is capped near 1/dt once k dt >~ 1, and the
projection spreads the missing strain elastically. The hottest (band) cells have the largest k,
so the band is under-strained, first order in dt and amplified by the chi feedback (band peak
2E_xy -1.6 % on the validation target and -5 % on the paper's optimum at the C++'s 60
steps/frame). Integrating the cell with d|S|/dgamma = g - 2 mu D, g its non-plastic |S| rate of
the previous step, lets it creep at the stress its surroundings hold it at (steady state
2 mu D(|S|) = g exact for any k dt); what remains is the O(dt) lag of g (band peak within 0.5 %
of the refined limit at 15 steps/frame on those cases). The C++'s forward-Euler sub-steps do
not bound h k either (an O(adapt_dev) overstress error in stiff cells at any dt), hence the
linearly implicit sub-steps by default. ``plastic_split="cpp", plastic_substeps="explicit"``
is the authors' scheme as coded in their C++ (bit for bit this solver before the change).

Steps per frame: ``settings.steps_per_frame`` (15) unless a tenth of the cells flow stiffly at
yield in the frame (:func:`frame_steps`: plastic stiffness k with k dt > ``stiff_step_limit``,
counting the cells that reach yield within the frame); those frames take 2^j times the steps
(at most ``max_steps_per_frame``, 180, in the first ``stiff_window_strain``, 0.1, of strain from
a member's first refined frame, where the band is seeded and grown; at most
``late_max_steps_per_frame``, 30, after it: :func:`windowed_steps`).
At high chi the whole sample yields at once and the band grows by an instability; each cell
relaxes on a strain scale 1/k but feels its neighbours only through the lagged projection, so a
coarse step slows the instability (band peak 20-40 % low at 15 fixed steps on the hottest
Table-2 points). Each member chooses its own counts, so batch results equal single runs. A
refined frame keeps transport and diffusion at the base step: the refinement is for the
plastic coupling, transport is not stiff (:func:`advect_every`, :func:`diffuse_every`).
A brittle (low-chi) sample loads elastically far above yield and then avalanches inside one
frame whose frame-start stiffness is tiny: such a frame is rejected and redone from its start
with finer steps when some cell's 1/chi falls by more than ``chi_jump_limit`` in one step
(:func:`_advance_frame`; in compiled code inside :func:`gego.stz.fast.run_steps`).

The state is batched: every array carries a leading axis over parameter sets, so one call
advances a whole batch; parameters enter as ``(B, 1, 1)`` arrays. :func:`_step` is the
readable numpy reference of one step and :func:`_run_members` of the frame loop; with numba (and
rocket-fft) installed, whole frames run in the compiled :func:`gego.stz.fast.run_steps`, which
performs the same arithmetic (its box projection uses two complex FFTs of real-space corner forces
instead of nine real ones; equal to round-off, ``tests/test_stz_fast.py``), and the frame loop in
:func:`gego.stz.fast.run_frames` (:func:`_run_members_compiled`).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from gego.errors import ConfigError
from gego.stz import fast, operators, physics
from gego.stz.params import STZParams, SolverSettings

__all__ = ["STZResult", "simulate", "simulate_batch", "resample_field", "prepare_chi"]

_FIELD_NAMES = ("strain_xy_eng", "strain_xx", "strain_yy", "chi")
_STRESS_FIELD_NAMES = ("stress_field_xx_gpa", "stress_field_yy_gpa", "stress_field_xy_gpa",
                       "stress_field_zz_gpa")
_MEAN_NAMES = ("stress_xy_gpa", "stress_xy_sheared_gpa", "stress_xx_gpa", "stress_yy_gpa",
               "stress_zz_gpa", "pressure_gpa", "deviator_mean", "strain_xy_eng_mean",
               "chi_mean")


@dataclass
class STZResult:
    """Output of one STZ run.

    Attributes
    ----------
    status : ``"ok"`` or ``"failed"``.
    reason : why a run failed ("" if ok).
    params : the :class:`STZParams` of the run (``chi_inf`` filled in when derived).
    settings : the :class:`SolverSettings`.
    gamma : ``(frames,)`` applied engineering shear strain.
    strain_xy_eng : ``(frames, ny, nx)`` engineering shear strain 2 E_xy (Green-Lagrange).
    strain_xx, strain_yy : ``(frames, ny, nx)`` Green-Lagrange E_xx, E_yy.
    chi : ``(frames, ny, nx)`` effective temperature (T = e_z/k_B chi, K).
    stress_xy_gpa : ``(frames,)`` mean PHYSICAL shear stress s_y <sigma_xy>, GPa.
    stress_xy_sheared_gpa : ``(frames,)`` mean sheared-frame component s_y <Sigma_xy>, GPa
        (the C++ ``tau``, which the authors' scripts compared with MD).
    stress_xx_gpa, stress_yy_gpa, stress_zz_gpa, pressure_gpa : ``(frames,)`` means, GPa.
    deviator_mean : ``(frames,)`` mean |S| in units of s_y.
    strain_xy_eng_mean, chi_mean : ``(frames,)`` cell means.
    stress_fields : dict of ``(frames, ny, nx)`` physical stress fields in GPa, only when
        ``settings.store_stress_fields``.
    wall_time_s : wall time of the run (of the batch call divided by its size for batches), s.
    steps_per_frame_used : ``(frames,)`` quasi-static steps taken to reach each frame (0 for the
        initial one; more than ``settings.steps_per_frame`` where ``stiff_step_limit`` refined or
        ``chi_jump_limit`` redid an avalanche frame).

    A failed run keeps the frames computed before the failure; later frames are NaN.
    """

    status: str
    reason: str
    params: STZParams
    settings: SolverSettings
    gamma: np.ndarray
    strain_xy_eng: np.ndarray
    strain_xx: np.ndarray
    strain_yy: np.ndarray
    chi: np.ndarray
    stress_xy_gpa: np.ndarray
    stress_xy_sheared_gpa: np.ndarray
    stress_xx_gpa: np.ndarray
    stress_yy_gpa: np.ndarray
    stress_zz_gpa: np.ndarray
    pressure_gpa: np.ndarray
    deviator_mean: np.ndarray
    strain_xy_eng_mean: np.ndarray
    chi_mean: np.ndarray
    wall_time_s: float
    stress_fields: dict[str, np.ndarray] = field(default_factory=dict)
    steps_per_frame_used: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def temperature_k(self) -> np.ndarray:
        """Effective temperature field T = (e_z / k_B) chi, K."""
        return self.params.ez_over_kb_k * self.chi

    def __getitem__(self, name: str) -> np.ndarray:
        """The array called ``name`` (as a Dataset variable would be), e.g. ``result["gamma"]``."""
        if name == "temperature_k":
            return self.temperature_k
        if name in self.stress_fields:
            return self.stress_fields[name]
        if name in _FIELD_NAMES or name in _MEAN_NAMES or name == "gamma":
            return getattr(self, name)
        raise KeyError(name)

    def to_dataset(self):
        """The run as an :class:`xarray.Dataset` with dims (frame, y, x) and attributes."""
        import xarray as xr

        fields = {name: (("frame", "y", "x"), getattr(self, name)) for name in _FIELD_NAMES}
        fields["temperature_k"] = (("frame", "y", "x"), self.temperature_k)
        for name, arr in self.stress_fields.items():
            fields[name] = (("frame", "y", "x"), arr)
        means = {name: (("frame",), getattr(self, name)) for name in _MEAN_NAMES}
        if self.steps_per_frame_used.size == self.gamma.size:
            means["steps_per_frame_used"] = (("frame",), self.steps_per_frame_used)
        attrs = {"status": self.status, "reason": self.reason, "wall_time_s": float(self.wall_time_s),
                 "stress_units": "GPa", "strain_xy_eng": "2 E_xy (Green-Lagrange)",
                 "grid": f"{self.settings.n_y} x {self.settings.nx}"}
        for key, value in self.params.as_dict().items():
            attrs[f"param_{key}"] = np.nan if value is None else float(value)
        for key, value in dataclasses.asdict(self.settings).items():
            attrs[f"setting_{key}"] = "none" if value is None else (value if not isinstance(value, bool) else int(value))
        ds = xr.Dataset({**fields, **means}, coords={"gamma": (("frame",), self.gamma),
                                                   "frame": np.arange(self.gamma.size)}, attrs=attrs)
        ds["stress_xy_gpa"].attrs["long_name"] = "mean physical shear stress sigma_xy"
        ds["stress_xy_sheared_gpa"].attrs["long_name"] = "mean sheared-frame Sigma_xy (C++ tau)"
        return ds


def resample_field(field_in: np.ndarray, ny: int, nx: int) -> np.ndarray:
    """Periodic cubic resampling of a cell-centred field onto an ``ny x nx`` grid (identity if same shape)."""
    field_in = np.asarray(field_in, dtype=float)
    if field_in.shape == (ny, nx):
        return field_in.copy()
    from scipy.ndimage import map_coordinates

    my, mx = field_in.shape
    yy = (np.arange(ny) + 0.5) * my / ny - 0.5
    xx = (np.arange(nx) + 0.5) * mx / nx - 0.5
    grid_y, grid_x = np.meshgrid(yy, xx, indexing="ij")
    return map_coordinates(field_in, [grid_y, grid_x], order=3, mode="grid-wrap")


def prepare_chi(params: STZParams, energy_initial_ev: np.ndarray, energy_final_ev, settings: SolverSettings):
    """Validate inputs and return (params with chi_inf filled in, initial chi on the solver grid)."""
    params.validate()
    energy = np.asarray(energy_initial_ev, dtype=float)
    if energy.ndim != 2 or min(energy.shape) < 2:
        raise ConfigError(f"energy_initial_ev must be a 2-D (ny, nx) field, got shape {energy.shape}")
    if not np.all(np.isfinite(energy)):
        raise ConfigError("energy_initial_ev contains non-finite values")
    chi0 = physics.initial_chi(resample_field(energy, settings.n_y, settings.nx), params.beta_per_ev,
                               params.e0_ev)  # Eq 38
    if np.min(chi0) <= 0:
        raise ConfigError(f"initial chi = beta (E - E0) is non-positive somewhere (min {np.min(chi0):.4g}):"
                          f" e0_ev={params.e0_ev} must lie below the energy field (min {energy.min():.6g} eV)")
    if params.chi_inf is None:
        if energy_final_ev is None:
            raise ConfigError("chi_inf is None: give chi_inf or energy_final_ev to derive it")
        derived = physics.chi_inf_from_energy(np.asarray(energy_final_ev, dtype=float), params.beta_per_ev,
                                              params.e0_ev)
        if not (np.isfinite(derived) and derived > 0):
            raise ConfigError(f"chi_inf derived as beta (max E_final - E0) = {derived:.4g} is not positive:"
                              " check e0_ev and energy_final_ev")
        params = dataclasses.replace(params, chi_inf=derived)
    return params, chi0


@dataclass
class _Material:
    """Per-member material constants as ``(B, 1, 1)`` arrays, stresses in units of s_y."""

    mu: np.ndarray
    lame_lambda: np.ndarray
    eps0_per_strain: np.ndarray
    c0: np.ndarray
    chi_inf: np.ndarray
    l_chi: np.ndarray
    s_y_gpa: np.ndarray

    @classmethod
    def from_params(cls, params: Sequence[STZParams]) -> "_Material":
        def col(values):
            return np.asarray(values, dtype=float)[:, None, None]

        mu = col([p.mu_gpa / p.s_y_gpa for p in params])
        bulk = col([p.bulk_gpa / p.s_y_gpa for p in params])
        return cls(mu=mu, lame_lambda=bulk - 2.0 * mu / 3.0,
                   eps0_per_strain=col([p.eps0 / (p.tau0_s * p.rate_per_s) for p in params]),
                   c0=col([p.c0 for p in params]), chi_inf=col([p.chi_inf for p in params]),
                   l_chi=col([p.l_chi_angstrom for p in params]), s_y_gpa=col([p.s_y_gpa for p in params]))

    def take(self, keep: np.ndarray) -> "_Material":
        return _Material(**{f.name: getattr(self, f.name)[keep] for f in dataclasses.fields(self)})


@dataclass
class _State:
    """Batched solver state; the leading axis runs over active batch members."""

    sigma: np.ndarray     # (B, 4, ny, nx) sheared-frame Sigma: xx, yy, xy, zz (units s_y)
    chi: np.ndarray       # (B, ny, nx)
    refmap: np.ndarray    # (B, 2, ny, nx) w with reference map xi0 = xi - w (A)
    velocity: np.ndarray  # (B, 2, ny, nx) periodic physical velocity at centres (A per unit strain)
    grad: np.ndarray      # (B, 4, ny, nx) L = grad u: xx, xy, yx, yy (per unit strain)
    load_rate: np.ndarray  # (B, ny, nx) non-plastic d|S|/dgamma of the previous step (units s_y)

    def take(self, keep: np.ndarray) -> "_State":
        return _State(*(getattr(self, f.name)[keep] for f in dataclasses.fields(self)))


def _step(state: _State, gamma: float, dt: float, mat: _Material, settings: SolverSettings,
          wn: operators.Wavenumbers, h1: float, h2: float, dt_adv: float | None = None,
          gamma_new: float | None = None, diffusivity_sum: np.ndarray | None = None,
          diffuse_steps: int = 1) -> tuple[_State, np.ndarray]:
    """Advance the batch by one quasi-static step from strain ``gamma``; returns (state, stuck per member).

    ``dt_adv``: strain increment of this step's advection (default ``dt``; 0 = none, see :func:`advect_every`).
    ``gamma_new``: the strain after the step (default ``gamma + dt``; the frame loop passes
    gamma0 + (j + 1) dt, the formula of the next step's ``gamma``, as the compiled path does).
    ``diffusivity_sum``, ``diffuse_steps``: chi diffusion once per group of steps (see
    :func:`diffuse_every`): the diffusivity of this step is added to ``diffusivity_sum`` (in
    place); when ``diffuse_steps`` n > 0 chi diffuses over n dt with the group's mean
    diffusivity and the sum is reset, when 0 it does not diffuse on this step. None: every step.
    """
    dt_adv = dt if dt_adv is None else dt_adv
    sig = state.sigma
    phys = physics.sheared_to_physical(gamma, sig[:, 0], sig[:, 1], sig[:, 2], sig[:, 3])
    dev = physics.deviator(*phys)
    sbar = physics.deviator_magnitude(*phys)

    # 1. Plastic relaxation and chi source, adaptive sub-steps (Eq 29, 32-33)
    loaded = settings.plastic_split == "loaded"
    if loaded and settings.plastic_substeps == "implicit":
        drop, chi_plastic, stuck = physics.integrate_plastic_step_implicit(
            sbar, state.chi, dt, state.load_rate, mu=mat.mu, eps0_per_strain=mat.eps0_per_strain, c0=mat.c0,
            chi_inf=mat.chi_inf, adapt_dev=settings.adapt_dev, adapt_chi=settings.adapt_chi,
            max_substeps=settings.max_substeps)
    else:
        drop, chi_plastic, stuck = physics.integrate_plastic_step(
            sbar, state.chi, dt, mu=mat.mu, eps0_per_strain=mat.eps0_per_strain, c0=mat.c0,
            chi_inf=mat.chi_inf, adapt_dev=settings.adapt_dev, max_substeps=settings.max_substeps,
            load_rate=state.load_rate if loaded else None)
    relax_ratio = np.divide(drop, sbar, out=np.zeros_like(drop), where=sbar > 1e-12)

    # 2. chi diffusion with the step-averaged plastic rate D = drop / (2 mu dt) (Eq 29, 34)
    d_avg = drop / (2.0 * mat.mu * dt)
    diffusivity = physics.chi_diffusivity(d_avg, mat.l_chi, mat.c0, settings.diffusion)
    dt_diff = dt
    if diffusivity_sum is not None:
        diffusivity_sum += diffusivity
        if diffuse_steps:  # the group closes: its mean diffusivity over its strain
            diffusivity, dt_diff = diffusivity_sum / diffuse_steps, diffuse_steps * dt
            diffusivity_sum[...] = 0.0
        else:
            diffusivity = np.zeros_like(diffusivity)
    chi_diffused = state.chi
    if np.any(diffusivity > 0):
        n_sub = operators.diffusion_substeps(diffusivity.max(axis=(1, 2)), dt_diff, gamma, h1, h2)
        sub_dt = (dt_diff / n_sub)[:, None, None]
        for i in range(int(n_sub.max())):
            active = (i < n_sub)[:, None, None]
            increment = sub_dt * operators.diffusion_divergence(chi_diffused, diffusivity, gamma, h1, h2)
            chi_diffused = chi_diffused + np.where(active, increment, 0.0)
    chi_diffusion_change = chi_diffused - state.chi

    # 3. Advection by V = T^-1 u and Truesdell terms of the previous velocity (Eq 30)
    u1, u2 = state.velocity[:, 0], state.velocity[:, 1]
    v1 = u1 - gamma * u2
    v2 = u2
    carried = np.concatenate([sig, state.chi[:, None], state.refmap], axis=1)
    advected = operators.advection_increment(carried, v1, v2, dt_adv, h1, h2) if dt_adv > 0 else np.zeros_like(carried)
    g = state.grad
    true_terms = physics.truesdell_terms(*phys, g[:, 0], g[:, 1], g[:, 2], g[:, 3])
    explicit_phys = [dt * t - relax_ratio * s for t, s in zip(true_terms, dev)]
    explicit_sheared = physics.physical_to_sheared(gamma, *explicit_phys)
    sigma_star = sig + advected[:, :4] + np.stack(explicit_sheared, axis=1)
    chi_new = chi_plastic + advected[:, 4] + chi_diffusion_change
    refmap_new = state.refmap + advected[:, 5:] + dt * np.stack([v1, v2], axis=1)

    # 4. Projection at the new strain: dt C:(D_affine + sym grad u) restores div sigma = 0 (Eq 30-31)
    gamma_new = gamma + dt if gamma_new is None else gamma_new
    phys_star = physics.sheared_to_physical(gamma_new, *(sigma_star[:, k] for k in range(4)))
    velocity, grad = operators.project_velocity(np.stack(phys_star[:3], axis=1), gamma_new, dt,
                                                mat.lame_lambda, mat.mu, wn)
    # L_affine = [[0, 1], [0, 0]] per unit strain (Eq 35); C:D below uses the total L.
    elastic = physics.elastic_stress_rate(grad[:, 0], grad[:, 1] + 1.0, grad[:, 2], grad[:, 3],
                                          mat.lame_lambda, mat.mu)
    elastic_sheared = physics.physical_to_sheared(gamma_new, *(dt * e for e in elastic))
    sigma_new = sigma_star + np.stack(elastic_sheared, axis=1)
    load_rate = state.load_rate
    if loaded:  # |S| after the plastic scaling is exactly sbar - drop
        sbar_new = physics.deviator_magnitude(*physics.sheared_to_physical(
            gamma_new, *(sigma_new[:, k] for k in range(4))))
        load_rate = (sbar_new - (sbar - drop)) / dt
    member_stuck = stuck.reshape(stuck.shape[0], -1).any(axis=1)
    return _State(sigma_new, chi_new, refmap_new, velocity, grad, load_rate), member_stuck


def _run_compiled_steps(state: _State, gamma0: float, n_steps: int, dt: float, mat: _Material,
                        settings: SolverSettings, every: int = 1, diffuse: int = 1,
                        frame: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Advance ``state`` in place by ``n_steps`` compiled steps from strain ``gamma0``; returns (stuck,
    steps used) per member.

    ``every``, ``diffuse``: steps per advection and per chi diffusion (:func:`advect_every`, :func:`diffuse_every`).
    ``frame``: the steps are one output frame, redone with finer steps where it avalanches
    (``settings.chi_jump_limit``, see :func:`_advance_frame`); else plain steps.
    """
    ny, nx = state.chi.shape[1:]
    h1, h2 = settings.cell_length_angstrom / nx, settings.length_y_angstrom / ny
    kappa1, kappa2, average = _compiled_symbols(nx, ny, settings.cell_length_angstrom, settings.length_y_angstrom,
                                                settings.derivative)
    stuck = np.zeros(state.chi.shape[0], dtype=np.bool_)
    steps_used = np.full(state.chi.shape[0], n_steps, dtype=np.int64)
    loaded = settings.plastic_split == "loaded"
    jump_limit = float(settings.chi_jump_limit or 0.0) if frame else 0.0
    fast.run_steps(state.sigma, state.chi, state.refmap, state.velocity, state.grad, state.load_rate, loaded,
                   loaded and settings.plastic_substeps == "implicit", gamma0, n_steps, dt,
                   mat.mu.ravel(), mat.lame_lambda.ravel(), mat.eps0_per_strain.ravel(), mat.c0.ravel(),
                   mat.chi_inf.ravel(), mat.l_chi.ravel(), settings.diffusion == "paper", settings.adapt_dev,
                   settings.adapt_chi, settings.max_substeps, h1, h2, settings.derivative == "box", kappa1, kappa2,
                   average, stuck, int(every), int(diffuse), jump_limit, int(settings.avalanche_steps_per_frame),
                   int(settings.avalanche_growth), settings.gamma_final / settings.n_frames, steps_used)
    return stuck, steps_used


@functools.lru_cache(maxsize=16)
def _compiled_symbols(nx: int, ny: int, length_x: float, length_y: float, kind: str):
    """Symbols for :func:`fast.run_steps`: box -> full-grid kappas; spectral -> the rfft-grid Wavenumbers.

    Cached: the operators are constant over a run (the strain enters per step). Callers must not
    modify them (they stay writeable so numba compiles a single signature).
    """
    wn = operators.wavenumbers(nx, ny, length_x, length_y, kind)
    if kind == "box":
        kappa1, kappa2 = operators.box_symbols_full(nx, ny, length_x, length_y)
    else:
        kappa1, kappa2 = np.ascontiguousarray(wn.kappa1), np.ascontiguousarray(wn.kappa2)
    return kappa1, kappa2, np.ascontiguousarray(wn.average)


def _green_lagrange(refmap: np.ndarray, gamma: float, h1: float, h2: float):
    """E = (F^T F - I)/2 with F = T G^-1 and G = grad_xi xi0 = I - grad_xi w (C++ compute_strain)."""
    w1x, w1y = operators.centered_gradient(refmap[:, 0], h1, h2)
    w2x, w2y = operators.centered_gradient(refmap[:, 1], h1, h2)
    g11, g12, g21, g22 = 1.0 - w1x, -w1y, -w2x, 1.0 - w2y
    inv_det = 1.0 / (g11 * g22 - g12 * g21)
    a11, a12, a21, a22 = g22 * inv_det, -g12 * inv_det, -g21 * inv_det, g11 * inv_det  # G^-1
    f11, f12, f21, f22 = a11 + gamma * a21, a12 + gamma * a22, a21, a22  # F = T G^-1
    exx = 0.5 * (f11 * f11 + f21 * f21 - 1.0)
    eyy = 0.5 * (f12 * f12 + f22 * f22 - 1.0)
    exy = 0.5 * (f11 * f12 + f21 * f22)
    return exx, eyy, exy


@dataclass
class _Buffers:
    """Output of a batch call: ``fields`` ``(4, B, frames, ny, nx)`` (_FIELD_NAMES), ``means``
    ``(9, B, frames)`` (_MEAN_NAMES), ``stress`` ``(4, B, frames, ny, nx)`` (_STRESS_FIELD_NAMES,
    only with store_stress_fields, else empty); ``named`` maps each name to its view."""

    fields: np.ndarray
    means: np.ndarray
    stress: np.ndarray
    steps: np.ndarray  # (B, frames) steps taken to reach each frame (0 for frame 0)
    named: dict

    @classmethod
    def allocate(cls, n_batch, n_out, ny, nx, store_stress) -> "_Buffers":
        fields = np.full((len(_FIELD_NAMES), n_batch, n_out, ny, nx), np.nan)
        means = np.full((len(_MEAN_NAMES), n_batch, n_out), np.nan)
        stress = np.full((len(_STRESS_FIELD_NAMES) if store_stress else 0, n_batch, n_out, ny, nx), np.nan)
        named = {**dict(zip(_FIELD_NAMES, fields)), **dict(zip(_MEAN_NAMES, means)),
                 **dict(zip(_STRESS_FIELD_NAMES, stress))}
        return cls(fields, means, stress, np.zeros((n_batch, n_out), dtype=np.int64), named)


def _record(buffers: _Buffers, k, members, state: _State, gamma, mat: _Material, h1, h2, store_stress):
    """Write frame ``k`` of the active members into the output buffers (numpy reference path)."""
    buffers = buffers.named
    sig = state.sigma
    phys = physics.sheared_to_physical(gamma, sig[:, 0], sig[:, 1], sig[:, 2], sig[:, 3])
    sbar = physics.deviator_magnitude(*phys)
    exx, eyy, exy = _green_lagrange(state.refmap, gamma, h1, h2)
    s_y = mat.s_y_gpa[:, 0, 0]
    axes = (1, 2)
    buffers["strain_xy_eng"][members, k] = 2.0 * exy
    buffers["strain_xx"][members, k] = exx
    buffers["strain_yy"][members, k] = eyy
    buffers["chi"][members, k] = state.chi
    buffers["stress_xy_gpa"][members, k] = s_y * phys[2].mean(axis=axes)
    buffers["stress_xy_sheared_gpa"][members, k] = s_y * sig[:, 2].mean(axis=axes)
    buffers["stress_xx_gpa"][members, k] = s_y * phys[0].mean(axis=axes)
    buffers["stress_yy_gpa"][members, k] = s_y * phys[1].mean(axis=axes)
    buffers["stress_zz_gpa"][members, k] = s_y * phys[3].mean(axis=axes)
    buffers["pressure_gpa"][members, k] = -s_y * (phys[0] + phys[1] + phys[3]).mean(axis=axes) / 3.0
    buffers["deviator_mean"][members, k] = sbar.mean(axis=axes)
    buffers["strain_xy_eng_mean"][members, k] = 2.0 * exy.mean(axis=axes)
    buffers["chi_mean"][members, k] = state.chi.mean(axis=axes)
    if store_stress:
        for name, comp in zip(_STRESS_FIELD_NAMES, phys):
            buffers[name][members, k] = mat.s_y_gpa[:, :, :] * comp


def _record_compiled(buffers: _Buffers, k, members, state: _State, gamma, mat: _Material, h1, h2, store_stress):
    """:func:`_record` in compiled code (:func:`fast.record_frame`; means as plain sums, equal to round-off)."""
    fast.record_frame(state.sigma, state.chi, state.refmap, gamma, h1, h2, mat.s_y_gpa.ravel(), members, k,
                      buffers.fields, buffers.means, buffers.stress, store_stress)


def _finite_members(state: _State) -> np.ndarray:
    ok = np.ones(state.chi.shape[0], dtype=bool)
    for arr in (state.sigma, state.chi, state.refmap, state.velocity):
        ok &= np.isfinite(arr.reshape(arr.shape[0], -1)).all(axis=1)
    ok &= (state.chi.reshape(state.chi.shape[0], -1) > 0).all(axis=1)
    return ok


# Failure reasons of a member whose step was too coarse for it (re-run with finer steps, simulate_batch)
_STUCK = "stiffness cap"
_NON_FINITE = "non-finite"

_STIFF_QUANTILE = 90.0  # percent: the k that a tenth of the cells exceed


def _stiff_rank(n_cells: int) -> int:
    """0-based rank over cells of the _STIFF_QUANTILE-th percentile stiffness (lower rank)."""
    return int(_STIFF_QUANTILE / 100.0 * (n_cells - 1))


def _stuck_reason(settings: SolverSettings, gamma: float) -> str:
    return f"{_STUCK}: more than {settings.max_substeps} plastic sub-steps in one step before gamma={gamma:.4g}"


def _non_finite_reason(k: int, gamma: float) -> str:
    return f"{_NON_FINITE} or non-positive state before frame {k} (gamma={gamma:.4g})"


def _wall_reason(settings: SolverSettings, k: int) -> str:
    return f"wall-time cap {settings.max_wall_s:g} s reached at frame {k}"


def _initial_state(chi0: np.ndarray) -> _State:
    """The unloaded state at gamma = 0 of members with initial chi ``chi0`` ``(B, ny, nx)``."""
    n, ny, nx = chi0.shape
    return _State(sigma=np.zeros((n, 4, ny, nx)), chi=chi0.copy(), refmap=np.zeros((n, 2, ny, nx)),
                  velocity=np.zeros((n, 2, ny, nx)), grad=np.zeros((n, 4, ny, nx)), load_rate=np.zeros((n, ny, nx)))


def frame_steps(state: _State, gamma: float, mat: _Material, settings: SolverSettings) -> np.ndarray:
    """Steps of the next frame per member: ``steps_per_frame`` doubled until k dt <= ``stiff_step_limit``.

    k is the 90th percentile over cells (the value a tenth of the cells exceed; lower rank) of
    the plastic stiffness d(2 mu D)/d|S| (Eq 32-33) of the state at the frame's start: where a
    band or the whole sample flows at yield with a high chi, its cells relax on a strain scale
    1/k and are coupled only through the lagged projection, which slows the instability that
    grows the band unless k dt is O(1). A cell that its non-plastic load rate takes to yield
    within the frame counts at |S| = 1 (the first yield, the whole sample at once where chi is
    high, seeds the band). Cells that stay below yield have k = 0, so elastic frames keep the
    base step; at moderate chi (the presets) even the band's cells have k dt < 1.5 at 15 steps.
    Not the median: once a band carries the flow, most cells unload while the band (a few rows)
    still needs the finer step. Compiled twin: :func:`fast.stiff_quantile` + :func:`fast.frame_plan`.
    """
    n_members = state.chi.shape[0]
    if not settings.stiff_step_limit:  # None or 0: fixed steps
        return np.full(n_members, settings.steps_per_frame)
    dgamma = settings.gamma_final / settings.n_frames
    rank = _stiff_rank(state.chi[0].size)
    sig = state.sigma
    sbar = physics.deviator_magnitude(*physics.sheared_to_physical(gamma, sig[:, 0], sig[:, 1], sig[:, 2], sig[:, 3]))
    reaches_yield = sbar + np.maximum(state.load_rate, 0.0) * dgamma >= 1.0
    _, stiffness = physics.stz_rate_and_stiffness(np.where(reaches_yield, np.maximum(sbar, 1.0), sbar),
                                                  state.chi, mat.eps0_per_strain, mat.mu)
    k_stiff = np.partition(stiffness.reshape(n_members, -1), rank, axis=1)[:, rank]
    return doubled_steps(k_stiff, settings)


def doubled_steps(k_stiff: np.ndarray, settings: SolverSettings) -> np.ndarray:
    """Per member: ``steps_per_frame`` doubled until k dt <= ``stiff_step_limit`` (k = ``k_stiff``,
    the frame-start stiffness of :func:`frame_steps`, per unit strain), at most ``max_steps_per_frame``;
    ``steps_per_frame`` when the rule is off."""
    steps = np.full(k_stiff.shape, settings.steps_per_frame)
    if not settings.stiff_step_limit:
        return steps
    dgamma = settings.gamma_final / settings.n_frames
    while (coarse := (k_stiff * dgamma / steps > settings.stiff_step_limit)
           & (steps < settings.max_steps_per_frame)).any():
        steps[coarse] *= 2
    return np.minimum(steps, settings.max_steps_per_frame)


def windowed_steps(planned: np.ndarray, first_refined_gamma: np.ndarray, gamma: float,
                   settings: SolverSettings) -> tuple[np.ndarray, np.ndarray]:
    """Cap the planned steps of frames past each member's stiff window (SolverSettings.stiff_window_strain).

    ``first_refined_gamma`` (per member, inf until then): the engineering shear strain at the
    start of the member's first frame that :func:`frame_steps` refined. Returns (steps,
    first_refined_gamma updated with the members refined for the first time in this frame,
    which starts at ``gamma``). Frames that start ``stiff_window_strain`` or more after a
    member's first refined frame get at most ``late_max_steps_per_frame`` steps (never fewer
    than ``steps_per_frame``): the band is seeded and grown in the window; after it the band
    carries the flow and the coarser step keeps its peak.
    """
    if not settings.stiff_window_strain:
        return planned, first_refined_gamma
    first = np.where((planned > settings.steps_per_frame) & np.isinf(first_refined_gamma), gamma,
                     first_refined_gamma)
    # frame strains are gamma_final k / n_frames: allow their round-off at the window's end
    late = gamma - first >= settings.stiff_window_strain - 1e-12
    cap = max(settings.late_max_steps_per_frame, settings.steps_per_frame)
    return np.where(late, np.minimum(planned, cap), planned), first


def advect_every(n_steps: int, settings: SolverSettings) -> int:
    """Steps between advections in a frame of ``n_steps`` steps: k m, with k =
    ``base_steps_per_advection`` and m = n_steps / steps_per_frame the refinement factor of a
    frame refined for stiffness (:func:`frame_steps`; 1 otherwise); 1 when k = 0. Advection
    then runs on steps 0, k m, 2 k m, ... of the frame, each by the strain up to the next one
    (the last group may be shorter), with the velocity at its start (first order, as every
    step of an unrefined frame)."""
    k = settings.base_steps_per_advection
    return k * _refinement(n_steps, settings) if k else 1


def advected_strain_steps(step: int, n_steps: int, every: int) -> int:
    """Steps of strain that step ``step`` of a frame advects by (0: no advection on this step)."""
    return min(every, n_steps - step) if step % every == 0 else 0


def diffuse_every(n_steps: int, settings: SolverSettings) -> int:
    """Steps per chi diffusion in a frame of ``n_steps`` steps: the refinement factor m when
    ``diffuse_at_base_step`` (diffusion on steps m - 1, 2m - 1, ... over m dt with the mean
    diffusivity of those m steps), else 1."""
    return _refinement(n_steps, settings) if settings.diffuse_at_base_step else 1


def _refinement(n_steps: int, settings: SolverSettings) -> int:
    """m = n_steps / steps_per_frame for a frame refined by :func:`frame_steps`, else 1."""
    base = settings.steps_per_frame
    if n_steps <= base or n_steps % base:
        return 1
    return n_steps // base


def _avalanche(chi_before: np.ndarray, chi_after: np.ndarray, limit: float) -> np.ndarray:
    """Per member: some cell's 1/chi fell by more than ``limit`` in one step, i.e. its rate factor
    exp(-1/chi) (Eq 32) grew by more than e^limit between two projections (written without a
    division, as in :func:`fast.transport_stage`)."""
    fast_rise = chi_after - chi_before > limit * chi_before * chi_after
    return fast_rise.reshape(fast_rise.shape[0], -1).any(axis=1)


def _advance_frame(state: _State, mat: _Material, gamma0: float, n_steps: int, settings: SolverSettings,
                   wn, h1: float, h2: float) -> tuple[_State, np.ndarray, np.ndarray]:
    """Advance every member of ``state`` by one frame of ``n_steps`` steps; returns (state, stuck per
    member, steps used per member).

    Avalanche rejection (``settings.chi_jump_limit``), as an adaptive ODE solver rejects a step: a
    member in whose frame some cell's 1/chi falls by more than the limit in one step
    (:func:`_avalanche`) has its frame redone from its start with ``avalanche_growth`` times the
    steps (at most ``avalanche_steps_per_frame``; advection and diffusion every step). A brittle,
    low-chi sample loads elastically far above yield; once exp(-1/chi) runs away in a few cells the
    stored stress is released inside one frame, and the timing and size of that release, which seed
    the band, depend on the step, while the frame-start stiffness (:func:`frame_steps`) is still low.
    The compiled path does the same inside :func:`fast.run_steps`.
    """
    dt = settings.gamma_final / (settings.n_frames * n_steps)
    every = advect_every(n_steps, settings)
    m_diff = diffuse_every(n_steps, settings)
    n_members = state.chi.shape[0]
    steps_used = np.full(n_members, n_steps)
    stuck_any = np.zeros(n_members, dtype=bool)
    start = state
    state = _State(*(getattr(state, f.name).copy() for f in dataclasses.fields(state)))
    todo, n_run = np.arange(n_members), n_steps  # members still to run, with n_run steps
    while todo.size:
        part, part_mat = start.take(todo), mat.take(todo)
        watch = bool(settings.chi_jump_limit) and n_run < settings.avalanche_steps_per_frame
        halted = np.zeros(todo.size, dtype=bool)  # stuck (retired after the frame) or rejected
        stuck_part = np.zeros(todo.size, dtype=bool)
        fired = np.zeros(todo.size, dtype=bool)
        k_sum = np.zeros_like(part.chi) if m_diff > 1 else None
        for j in range(n_run):
            group_end = j % m_diff == m_diff - 1 or j == n_run - 1  # diffusion closes each group of steps
            new, stuck = _step(part, gamma0 + j * dt, dt, part_mat, settings, wn, h1, h2,
                               dt_adv=advected_strain_steps(j, n_run, every) * dt, gamma_new=gamma0 + (j + 1) * dt,
                               diffusivity_sum=k_sum, diffuse_steps=j % m_diff + 1 if group_end else 0)
            # a stuck member keeps its state from the start of the failing step; a rejected one stops
            fired |= ~halted & ~stuck & (_avalanche(part.chi, new.chi, settings.chi_jump_limit) if watch else False)
            stuck_part |= ~halted & stuck
            keep = ~(halted | stuck_part | fired)
            if keep.all():
                part = new
            else:
                for f in dataclasses.fields(part):
                    getattr(part, f.name)[keep] = getattr(new, f.name)[keep]
            halted = stuck_part | fired
            if halted.all():
                break
        done = ~fired
        _put(state, todo[done], part.take(done))
        stuck_any[todo[done]] = stuck_part[done]
        steps_used[todo] = n_run
        todo = todo[fired]
        n_run = min(n_run * settings.avalanche_growth, settings.avalanche_steps_per_frame)
        dt = (settings.gamma_final / settings.n_frames) / n_run  # as fast.run_steps
        every, m_diff = 1, 1
    return state, stuck_any, steps_used


def _put(state: _State, idx: np.ndarray, part: _State) -> None:
    for f in dataclasses.fields(state):
        getattr(state, f.name)[idx] = getattr(part, f.name)


def _run_members(members: np.ndarray, params: list[STZParams], chi0: np.ndarray, settings: SolverSettings,
                 use_fast: bool, t_start: float, buffers: _Buffers, reasons: list[str]) -> None:
    """Integrate the batch members ``members`` (indices into ``params``), writing their rows of ``buffers``.

    This is the readable frame loop (numpy backend); ``use_fast`` hands the members to its compiled
    twin, :func:`_run_members_compiled`.
    """
    if use_fast:
        _run_members_compiled(members, params, chi0, settings, t_start, buffers, reasons)
        return
    ny, nx = settings.n_y, settings.nx
    h1, h2 = settings.cell_length_angstrom / nx, settings.length_y_angstrom / ny
    wn = operators.wavenumbers(nx, ny, settings.cell_length_angstrom, settings.length_y_angstrom,
                               settings.derivative)
    mat = _Material.from_params([params[m] for m in members])
    n_out = settings.n_frames + 1
    gamma_frames = settings.gamma_final * np.arange(n_out) / settings.n_frames
    state = _initial_state(chi0[members])
    _record(buffers, 0, members, state, 0.0, mat, h1, h2, settings.store_stress_fields)
    first_refined_gamma = np.full(len(params), np.inf)  # per batch member (windowed_steps)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        for k in range(1, n_out):
            planned = frame_steps(state, gamma_frames[k - 1], mat, settings)
            planned, first_refined_gamma[members] = windowed_steps(planned, first_refined_gamma[members],
                                                                   gamma_frames[k - 1], settings)
            # Members are independent: each group of equal step count advances on its own, so a
            # member's numbers do not depend on the rest of the batch.
            stuck = np.zeros(members.size, dtype=bool)
            steps = planned.copy()  # as used: more where an avalanche frame was redone
            for n_steps in np.unique(planned):
                group = np.flatnonzero(planned == n_steps)
                if group.size == members.size:
                    state, stuck, steps = _advance_frame(state, mat, gamma_frames[k - 1], int(n_steps), settings,
                                                         wn, h1, h2)
                else:
                    part, part_stuck, part_steps = _advance_frame(state.take(group), mat.take(group),
                                                                  gamma_frames[k - 1], int(n_steps), settings,
                                                                  wn, h1, h2)
                    _put(state, group, part)
                    stuck[group] = part_stuck
                    steps[group] = part_steps
            buffers.steps[members, k] = steps
            if stuck.any():
                members, state, mat = _retire(members, state, mat, ~stuck, reasons,
                                              _stuck_reason(settings, gamma_frames[k]))
                if members.size == 0:
                    return
            finite = _finite_members(state)
            if not finite.all():
                members, state, mat = _retire(members, state, mat, finite, reasons,
                                              _non_finite_reason(k, gamma_frames[k]))
                if members.size == 0:
                    return
            _record(buffers, k, members, state, gamma_frames[k], mat, h1, h2, settings.store_stress_fields)
            if time.perf_counter() - t_start > settings.max_wall_s and k < n_out - 1:
                for m in members:
                    reasons[m] = _wall_reason(settings, k)
                return


# Compiled frames between two wall-time checks (fast.run_frames): a tenth of a default run.
_FRAMES_PER_CALL = 10


def _run_members_compiled(members: np.ndarray, params: list[STZParams], chi0: np.ndarray,
                          settings: SolverSettings, t_start: float, buffers: _Buffers, reasons: list[str]) -> None:
    """:func:`_run_members` with the frame loop in compiled code (:func:`fast.run_frames`), the same
    numbers to the bit: Python only checks the wall time after frame 1 and then every
    ``_FRAMES_PER_CALL`` frames, and turns the members' failure codes into reasons."""
    ny, nx = settings.n_y, settings.nx
    h1, h2 = settings.cell_length_angstrom / nx, settings.length_y_angstrom / ny
    kappa1, kappa2, average = _compiled_symbols(nx, ny, settings.cell_length_angstrom, settings.length_y_angstrom,
                                                settings.derivative)
    mat = _Material.from_params([params[m] for m in members])
    n, n_out = members.size, settings.n_frames + 1
    gamma_frames = settings.gamma_final * np.arange(n_out) / settings.n_frames
    state = _initial_state(chi0[members])
    _record_compiled(buffers, 0, members, state, 0.0, mat, h1, h2, settings.store_stress_fields)
    loaded = settings.plastic_split == "loaded"
    plan = np.array([settings.steps_per_frame, settings.stiff_step_limit or 0.0, settings.max_steps_per_frame,
                     settings.gamma_final, settings.n_frames, settings.stiff_window_strain or 0.0,
                     settings.late_max_steps_per_frame, settings.base_steps_per_advection,
                     float(settings.diffuse_at_base_step), _stiff_rank(ny * nx)], dtype=float)
    status, fail_frame = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
    first_refined_gamma = np.full(n, np.inf)
    # the first call is one frame, so that a short run still meets a wall-time check before its end
    for start in [1, *range(2, n_out, _FRAMES_PER_CALL)]:
        frames = np.arange(start, min(start + (1 if start == 1 else _FRAMES_PER_CALL), n_out))
        fast.run_frames(state.sigma, state.chi, state.refmap, state.velocity, state.grad, state.load_rate, status,
                        fail_frame, first_refined_gamma, frames, gamma_frames, plan, loaded,
                        loaded and settings.plastic_substeps == "implicit", mat.mu.ravel(), mat.lame_lambda.ravel(),
                        mat.eps0_per_strain.ravel(), mat.c0.ravel(), mat.chi_inf.ravel(), mat.l_chi.ravel(),
                        mat.s_y_gpa.ravel(), settings.diffusion == "paper", settings.adapt_dev, settings.adapt_chi,
                        settings.max_substeps, h1, h2, settings.derivative == "box", kappa1, kappa2, average,
                        float(settings.chi_jump_limit or 0.0), int(settings.avalanche_steps_per_frame),
                        int(settings.avalanche_growth), members, buffers.fields, buffers.means, buffers.stress,
                        settings.store_stress_fields, buffers.steps)
        k = int(frames[-1])
        if time.perf_counter() - t_start > settings.max_wall_s and k < n_out - 1:
            for b in np.flatnonzero(status == 0):
                reasons[members[b]] = _wall_reason(settings, k)
            break
    for b in np.flatnonzero(status == 1):
        reasons[members[b]] = _stuck_reason(settings, gamma_frames[fail_frame[b]])
    for b in np.flatnonzero(status == 2):
        reasons[members[b]] = _non_finite_reason(int(fail_frame[b]), gamma_frames[fail_frame[b]])


def _retire(members, state, mat, keep, reasons, reason):
    """Record `reason` for the members not in `keep` and drop them from the batch."""
    for m in members[~keep]:
        reasons[m] = reason
    return members[keep], state.take(keep), mat.take(keep)


def batch_chunks(chi0: np.ndarray, threads: int) -> list[np.ndarray]:
    """Members (indices) per task of a batch run on ``threads`` threads, in the order the tasks start.

    One task on one thread. Otherwise the members are taken hottest first (mean initial chi: a
    hot member refines its stiff frames and can cost 30x a cold one, see frame_steps) in tasks
    of about a quarter of an equal share each, which idle threads pick up in turn (longest
    first), so one thread does not finish its static half long after the other.
    """
    n_batch = chi0.shape[0]
    if threads <= 1 or n_batch == 1:
        return [np.arange(n_batch)]
    order = np.argsort(-chi0.reshape(n_batch, -1).mean(axis=1), kind="stable")
    size = max(1, math.ceil(n_batch / (4 * min(threads, n_batch))))
    return [order[i:i + size] for i in range(0, n_batch, size)]


def simulate_batch(params: Sequence[STZParams], energy_initial_ev: np.ndarray, *, energy_final_ev=None,
                   settings: SolverSettings = SolverSettings()) -> list[STZResult]:
    """Run the STZ model for several parameter sets sharing grid, frames and initial energy.

    The batch is a leading array axis: one numpy call advances every member, and each
    member's numbers equal those of a single :func:`simulate` call (to round-off).

    Parameters
    ----------
    params : sequence of :class:`STZParams`.
    energy_initial_ev : ``(ny, nx)`` coarse-grained potential energy at gamma = 0, eV/atom;
        resampled (periodic cubic) to the solver grid if its shape differs.
    energy_final_ev : ``(ny, nx)`` final energy frame, eV/atom; needed when a member has
        ``chi_inf=None`` (then chi_inf = beta (max E_final - E0)).
    settings : :class:`SolverSettings`.

    Returns
    -------
    list of :class:`STZResult`, one per parameter set, in order. Numerical failures
    (non-finite state, sub-step cap, wall-time cap) give ``status="failed"`` with a reason.
        A member that turns non-finite or hits the sub-step cap (both: a step too coarse for an
        avalanche) is first re-run with twice the steps per frame (at most
        ``settings.refine_on_failure`` times; the result's ``settings`` show the count used).

    Raises
    ------
    ConfigError
        Invalid parameters or settings, or a non-positive initial chi.
    """
    t_start = time.perf_counter()
    settings.validate()
    params = list(params)
    if not params:
        return []
    prepared = [prepare_chi(p, energy_initial_ev, energy_final_ev, settings) for p in params]
    params = [p for p, _ in prepared]
    n_batch, ny, nx = len(params), settings.n_y, settings.nx
    n_out = settings.n_frames + 1
    buffers = _Buffers.allocate(n_batch, n_out, ny, nx, settings.store_stress_fields)
    reasons = [""] * n_batch
    gamma_frames = settings.gamma_final * np.arange(n_out) / settings.n_frames
    use_fast = settings.backend == "numba" or (settings.backend == "auto" and fast.AVAILABLE)
    if use_fast and not fast.AVAILABLE:
        raise ConfigError("solver setting backend='numba' needs the numba package (pip install numba)")
    chi0 = np.stack([c for _, c in prepared])
    chunks = batch_chunks(chi0, settings.threads)
    if len(chunks) == 1:
        _run_members(chunks[0], params, chi0, settings, use_fast, t_start, buffers, reasons)
    else:  # members are independent: threads over chunks (the numba kernels and FFTs release the GIL)
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(min(settings.threads, len(chunks))) as pool:
            futures = [pool.submit(_run_members, c, params, chi0, settings, use_fast, t_start, buffers, reasons)
                       for c in chunks]
            for f in futures:
                f.result()

    wall = (time.perf_counter() - t_start) / n_batch
    results = []
    for b, p in enumerate(params):
        stress_fields = {name: buffers.named[name][b] for name in _STRESS_FIELD_NAMES if name in buffers.named}
        results.append(STZResult(
            status="failed" if reasons[b] else "ok", reason=reasons[b], params=p, settings=settings,
            gamma=gamma_frames.copy(), wall_time_s=wall, stress_fields=stress_fields,
            steps_per_frame_used=buffers.steps[b].copy(),
            **{name: buffers.named[name][b] for name in list(_FIELD_NAMES) + list(_MEAN_NAMES)}))
    # A member that went non-finite or hit the sub-step cap (a brittle avalanche outrunning the step)
    # is re-run on its own with twice the steps per frame; the others keep their results.
    retry = [b for b, reason in enumerate(reasons) if reason.startswith((_NON_FINITE, _STUCK))]
    if retry and settings.refine_on_failure > 0:
        finer = dataclasses.replace(settings, steps_per_frame=2 * settings.steps_per_frame,
                                    refine_on_failure=settings.refine_on_failure - 1)
        redone = simulate_batch([params[b] for b in retry], energy_initial_ev, energy_final_ev=energy_final_ev,
                                settings=finer)
        for b, result in zip(retry, redone):
            results[b] = result
    return results


def simulate(params: STZParams, energy_initial_ev: np.ndarray, *, energy_final_ev=None,
             settings: SolverSettings = SolverSettings()) -> STZResult:
    """Run the STZ model once; see :func:`simulate_batch` for the arguments."""
    return simulate_batch([params], energy_initial_ev, energy_final_ev=energy_final_ev, settings=settings)[0]
