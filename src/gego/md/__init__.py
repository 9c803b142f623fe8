"""The lower-scale side: LAMMPS readers, coarse-graining C, local strain, transformation T.

From a user's own LAMMPS shear run to a reference dataset the calibration reads
(paper Sec 3.1, Eq 36-38)::

    from gego.md import build_reference
    ds = build_reference("dump.shear", "log.lammps", grid=32, length=50.0)
    ds.to_netcdf("ref.nc")

or ``gego coarse-grain dump.shear --log log.lammps --grid 32 --length 50 --out ref.nc``.
With ``keep_atoms=`` (``--keep-atoms``) the per-atom frames are kept next to the dataset, and
the calibration can take the coarse-graining length c as a parameter (:mod:`gego.md.recoarse`).
"""

from gego.md.coarse_grain import CoarseGrained, Grid, coarse_grain, coarse_grain_brute_force, gaussian_window, grid_for_box
from gego.md.lammps import Box, DumpFrame, ThermoTable, iter_dump, read_dump, read_thermo, shear_stress_gpa
from gego.md.local_strain import LocalStrain, NeighbourPairs, local_strain, neighbour_pairs
from gego.md.recoarse import ReCoarseGraining
from gego.md.reference import (AtomFrame, AtomFrameStore, AtomFrameWriter, atom_frames, build_reference, coarse_grain_frames,
                               load_atom_frames, reference_from_atom_frames, save_atom_frames)
from gego.md.transform import TRANSFORMS, chi_from_energy, chi_inf_from_energy, linear_chi

__all__ = [
    "AtomFrame",
    "AtomFrameStore",
    "AtomFrameWriter",
    "Box",
    "CoarseGrained",
    "DumpFrame",
    "Grid",
    "LocalStrain",
    "NeighbourPairs",
    "ReCoarseGraining",
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
    "reference_from_atom_frames",
    "save_atom_frames",
    "shear_stress_gpa",
]
