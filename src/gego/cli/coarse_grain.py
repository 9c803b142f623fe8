"""``gego coarse-grain``: a LAMMPS dump (+ log) -> reference dataset (NetCDF) for calibration."""

from __future__ import annotations

import argparse
from pathlib import Path

from gego.errors import ConfigError

DESCRIPTION = """\
Coarse-grain a LAMMPS shear run onto an N x N grid (paper Eq 36-37) and write a reference
dataset with gamma, energy (frame, y, x; per atom), strain_xy_eng (frame, y, x; the local
engineering shear strain 2 E_xy from a best-fit affine deformation relative to the first frame,
Falk & Langer 1998), d2min and stress_xy_gpa (frame; -pxy from the log, converted from the
--units pressure unit). The first dump frame must be the unsheared reference. Lengths (--length,
--cutoff, --neighbour-cutoff) are in the dump's length unit (A for metal units, sigma for lj).
The result drops in wherever the bundled CuZr data is used: gego calibrate --reference OUT.
With --keep-atoms the per-atom frames are also written (OUT_STEM.atoms.npz next to OUT), so that
`gego calibrate` can take the coarse-graining length c as a parameter ([parameters] c = [lo, hi],
in the reference's length unit: A, or sigma x --lj-sigma-angstrom for a mapped LJ run).
"""


def add_parser(subparsers, name: str, help_text: str) -> argparse.ArgumentParser:
    p = subparsers.add_parser(name, help=help_text, description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dump", type=Path, help="LAMMPS text dump (id, x y z + ix iy iz or xu yu zu, per-atom energy); .gz accepted")
    p.add_argument("--log", type=Path, default=None, help="LAMMPS log or plain thermo table with Step and Pxy (required)")
    p.add_argument("--out", type=Path, required=True, help="output NetCDF file")
    p.add_argument("--grid", type=int, default=32, help="grid points per side (default 32)")
    p.add_argument("--length", type=float, default=50.0, help="coarse-graining length c of Eq 37 (default 50)")
    p.add_argument("--cutoff", type=float, default=None, help="cutoff r_cut of Eq 36 (default 3 x length)")
    p.add_argument("--neighbour-cutoff", type=float, default=None, help="D2min neighbour distance (default 2 x mean atomic spacing)")
    p.add_argument("--energy-column", default=None, help="per-atom energy column (default: found by name, e.g. c_pe)")
    p.add_argument("--positions", choices=("x", "xs", "xu", "xsu"), default=None,
                   help="coordinate columns (default: xu/xsu if present, else x/xs with image flags ix iy iz)")
    p.add_argument("--units", default="metal", help="LAMMPS units of the run: metal (bar), real (atm), lj, si, cgs (default metal)")
    p.add_argument("--lj-epsilon-ev", type=float, default=None, help="for lj units: epsilon in eV (with --lj-sigma-angstrom: write eV, A, GPa)")
    p.add_argument("--lj-sigma-angstrom", type=float, default=None, help="for lj units: sigma in A")
    p.add_argument("--pxy-column", default="Pxy", help="thermo column of pxy (default Pxy; col6 for a headerless table)")
    p.add_argument("--step-column", default="Step", help="thermo column of the timestep (default Step; col0 for a headerless table)")
    p.add_argument("--dims", type=int, choices=(2, 3), default=None, help="local-strain fit in 2-D or 3-D (default: detected)")
    p.add_argument("--keep-atoms", action="store_true",
                   help="also write the per-atom frames to OUT_STEM.atoms.npz (needed to calibrate c)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from gego.md.reference import build_reference

    if args.out.suffix not in (".nc", ".nc4", ".netcdf"):
        raise ConfigError(f"--out {args.out}: expected a NetCDF file name ending in .nc")
    keep = args.out.with_name(f"{args.out.stem}.atoms.npz") if args.keep_atoms else None
    ds = build_reference(
        args.dump,
        args.log,
        grid=args.grid,
        length=args.length,
        cutoff=args.cutoff,
        neighbour_cutoff=args.neighbour_cutoff,
        energy_column=args.energy_column,
        units=args.units,
        pxy_column=args.pxy_column,
        step_column=args.step_column,
        lj_epsilon_ev=args.lj_epsilon_ev,
        lj_sigma_angstrom=args.lj_sigma_angstrom,
        dims=args.dims,
        position_kind=args.positions,
        progress=not args.quiet,
        keep_atoms=keep,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    ds.to_netcdf(args.out)
    print(
        f"wrote {args.out}: {ds.sizes['frame']} frames, grid {ds.attrs['grid']}, "
        f"gamma {float(ds.gamma[0]):.4g}..{float(ds.gamma[-1]):.4g}, "
        f"stress {float(ds.stress_xy_gpa.min()):.4g}..{float(ds.stress_xy_gpa.max()):.4g} {ds.stress_xy_gpa.attrs['units']}"
        + (f"; atom frames {keep}" if keep is not None else "")
    )
    return 0
