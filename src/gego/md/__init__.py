"""The lower-scale side: LAMMPS readers, coarse-graining C, local strain, transformation T.

From a user's own LAMMPS shear run to a reference dataset the calibration reads
(paper Sec 3.1, Eq 36-38)::

    from gego.md import build_reference
    ds = build_reference("dump.shear", "log.lammps", grid=32, length=50.0)
    ds.to_netcdf("ref.nc")

or ``gego coarse-grain dump.shear --log log.lammps --grid 32 --length 50 --out ref.nc``.
"""

from gego.md.coarse_grain import CoarseGrained, Grid, coarse_grain, coarse_grain_brute_force, gaussian_window, grid_for_box
from gego.md.lammps import Box, DumpFrame, ThermoTable, iter_dump, read_dump, read_thermo, shear_stress_gpa
from gego.md.local_strain import LocalStrain, NeighbourPairs, local_strain, neighbour_pairs
from gego.md.reference import AtomFrame, atom_frames, build_reference, coarse_grain_frames, load_atom_frames, save_atom_frames
from gego.md.transform import TRANSFORMS, chi_from_energy, chi_inf_from_energy, linear_chi

__all__ = [
    "AtomFrame",
    "Box",
    "CoarseGrained",
    "DumpFrame",
    "Grid",
    "LocalStrain",
    "NeighbourPairs",
    "TRANSFORMS",
    "ThermoTable",
    "atom_frames",
    "build_reference",
    "chi_from_energy",
    "chi_inf_from_energy",
    "coarse_grain",
    "coarse_grain_brute_force",
    "coarse_grain_frames",
    "gaussian_window",
    "grid_for_box",
    "iter_dump",
    "linear_chi",
    "load_atom_frames",
    "local_strain",
    "neighbour_pairs",
    "read_dump",
    "read_thermo",
    "save_atom_frames",
    "shear_stress_gpa",
]
