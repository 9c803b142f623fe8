"""``gego simulate``: run the STZ continuum solver once and write a NetCDF file.

Units on the command line: beta 1/eV, E0 eV, s_y GPa, l_chi A, chi_inf dimensionless
(T_inf = 21000 chi_inf K). Without ``--energy`` the bundled CuZr ``pe.MD.0`` is the initial
energy field and chi_inf is derived from the bundled final frame (paper Sec 5.1.4).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from gego.errors import ConfigError, DataFormatError


def add_parser(subparsers, name: str, help_text: str):
    p = subparsers.add_parser(
        name, help=help_text,
        description="Run the STZ continuum solver (paper Sec 5.1.2-5.1.4) once and write a NetCDF file with"
                    " dims (frame, y, x). Units: beta 1/eV, E0 eV, s_y GPa, l_chi A, chi_inf dimensionless"
                    " (T_inf = 21000 chi_inf K). Options not given take the --preset values; chi_inf is derived"
                    " from the final energy frame unless --chi-inf is given.")
    p.add_argument("--preset", default="validation_target",
                   choices=["table1", "reference_code", "validation_target", "paper_optimum"],
                   help="parameter preset the options below override (default: validation_target)")
    p.add_argument("--beta", type=float, help="coarse-graining scale beta, 1/eV (Eq 38)")
    p.add_argument("--e0", type=float, help="reference energy E0, eV (Eq 38)")
    p.add_argument("--c0", type=float, help="plastic work fraction c0 (Eq 29)")
    p.add_argument("--s-y", type=float, help="yield stress s_y, GPa")
    p.add_argument("--l-chi", type=float, help="chi diffusion length l_chi, A (Eq 34)")
    p.add_argument("--eps0", type=float, help="STZ size eps0 (Eq 32)")
    p.add_argument("--chi-inf", type=float,
                   help="steady-state chi_inf, dimensionless (T_inf = 21000 chi_inf K); default: derived"
                        " from the final energy frame as beta (max E_final - E0)")
    p.add_argument("--mu", type=float, help="shear modulus, GPa")
    p.add_argument("--bulk", type=float, help="bulk modulus K, GPa")
    p.add_argument("--tau0", type=float, help="vibration time tau0, s")
    p.add_argument("--rate", type=float, help="shear rate, 1/s")
    p.add_argument("--grid", type=int, default=32, help="grid cells per side (default 32)")
    p.add_argument("--frames", type=int, default=100, help="output frames after the initial one (default 100)")
    p.add_argument("--steps-per-frame", type=int, default=DEFAULT_STEPS_PER_FRAME,
                   help=f"quasi-static steps per frame (default {DEFAULT_STEPS_PER_FRAME})")
    p.add_argument("--gamma-final", type=float, default=0.5, help="final shear strain (default 0.5)")
    p.add_argument("--diffusion", choices=["code", "paper"], default="code",
                   help="chi diffusion form: as the C++ code (default) or as Eq 29/34")
    p.add_argument("--energy", type=Path,
                   help="initial energy field, eV/atom: NetCDF with variable 'energy' (frame, y, x) or"
                        " (y, x), or a whitespace text table of ny rows; default: bundled CuZr pe.MD.0")
    p.add_argument("--energy-final", type=Path,
                   help="final energy field for deriving chi_inf (same formats); default: last frame of"
                        " --energy if it has frames, else bundled CuZr pe.MD.100")
    p.add_argument("--stress-fields", action="store_true", help="also store the physical stress fields")
    p.add_argument("--stiff-step-limit", type=float, default=DEFAULT_STIFF_STEP_LIMIT, metavar="KDT",
                   help="frames where a tenth of the cells flow stiffly take more steps until k dt <= KDT"
                        f" (default {DEFAULT_STIFF_STEP_LIMIT:g}; 0 = always --steps-per-frame, as the C++)")
    p.add_argument("--backend", choices=["auto", "numpy", "numba"], default="auto",
                   help="numba kernels (default when installed) or the readable numpy reference step")
    p.add_argument("--out", type=Path, required=True, help="output NetCDF file")
    p.set_defaults(func=run)
    return p


# = SolverSettings().steps_per_frame, written out so that `gego --help` does not import the
# solver (and numba); tests/test_stz_cli.py checks the two agree.
DEFAULT_STEPS_PER_FRAME = 15
DEFAULT_STIFF_STEP_LIMIT = 3.0  # = SolverSettings().stiff_step_limit


def _read_energy(path: Path) -> np.ndarray:
    """Energy field(s) from NetCDF ('energy' variable) or a text table; returns (frames?, ny, nx)."""
    if not path.is_file():
        raise DataFormatError(f"{path}: energy file not found")
    if path.suffix in (".nc", ".nc4", ".cdf"):
        import xarray as xr

        try:
            with xr.open_dataset(path) as ds:
                if "energy" not in ds:
                    raise DataFormatError(f"{path}: no variable 'energy' (expected dims (frame, y, x) or (y, x))")
                return np.asarray(ds["energy"].values, dtype=float)
        except DataFormatError:
            raise
        except Exception as exc:
            raise DataFormatError(f"{path}: not a readable NetCDF file ({type(exc).__name__})") from None
    try:
        arr = np.loadtxt(path, ndmin=2)
    except ValueError as exc:
        raise DataFormatError(f"{path}: expected a whitespace table of numbers ({exc})") from None
    return arr


def run(args) -> int:
    import time

    from gego.datasets import load_cuzr
    from gego.stz import PRESETS, SolverSettings, simulate

    params = PRESETS[args.preset]
    overrides = {"beta_per_ev": args.beta, "e0_ev": args.e0, "c0": args.c0, "s_y_gpa": args.s_y,
                 "l_chi_angstrom": args.l_chi, "eps0": args.eps0, "mu_gpa": args.mu,
                 "bulk_gpa": args.bulk, "tau0_s": args.tau0, "rate_per_s": args.rate}
    params = dataclasses.replace(params, **{k: v for k, v in overrides.items() if v is not None})
    params = dataclasses.replace(params, chi_inf=args.chi_inf)  # None = derive from final energy
    settings = SolverSettings(n=args.grid, n_frames=args.frames, steps_per_frame=args.steps_per_frame,
                              stiff_step_limit=args.stiff_step_limit,
                              gamma_final=args.gamma_final, diffusion=args.diffusion,
                              store_stress_fields=args.stress_fields, backend=args.backend).validate()
    bundled = None
    if args.energy is not None:
        energy = _read_energy(args.energy)
        initial = energy[0] if energy.ndim == 3 else energy
        final = energy[-1] if energy.ndim == 3 else None
    else:
        bundled = load_cuzr()["energy"].values
        initial, final = bundled[0], bundled[-1]
    if args.energy_final is not None:
        final_arr = _read_energy(args.energy_final)
        final = final_arr[-1] if final_arr.ndim == 3 else final_arr
    if final is None and args.chi_inf is None:
        if bundled is None:
            bundled = load_cuzr()["energy"].values
        final = bundled[-1]
    if initial.ndim != 2:
        raise DataFormatError(f"{args.energy}: energy field must be 2-D (y, x), got shape {initial.shape}")
    t0 = time.perf_counter()
    result = simulate(params, initial, energy_final_ev=final, settings=settings)
    ds = result.to_dataset()
    ds.attrs["command_wall_time_s"] = time.perf_counter() - t0
    ds.attrs["energy_source"] = str(args.energy) if args.energy else "bundled CuZr pe.MD.0"
    try:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        ds.to_netcdf(args.out)
    except OSError as exc:
        raise ConfigError(f"--out {args.out}: cannot write ({exc.strerror or exc})") from None
    peak = np.nanmax(result.stress_xy_gpa)
    print(f"{args.out}: status={result.status}{' (' + result.reason + ')' if result.reason else ''}"
          f" frames={result.gamma.size} peak stress={peak:.3f} GPa final stress={result.stress_xy_gpa[-1]:.3f} GPa"
          f" max 2Exy={np.nanmax(result.strain_xy_eng[-1]):.3f} wall={result.wall_time_s:.2f} s")
    return 0 if result.ok else 1
