"""From a LAMMPS dump (+ log) to a reference dataset in the layout of :mod:`gego.datasets`.

Pipeline (paper Sec 3.1 and 5.1.4):

1. :func:`atom_frames` streams the dump; for every frame it unwraps positions (image flags and
   tilt), fits the per-atom affine deformation relative to the first (unsheared) frame and its
   D2min (:mod:`gego.md.local_strain`), and keeps per-atom energy, strain and D2min together with
   the current positions as an :class:`AtomFrame`.
2. :func:`coarse_grain_frames` applies C (Eq 36-37, :mod:`gego.md.coarse_grain`) to each frame
   on the N x N grid. It is separate so that the coarse-graining length c can be a calibration
   parameter: ``build_reference(..., keep_atoms="ref.atoms.npz")`` keeps the atom frames (written
   frame by frame as they stream past, read back one frame at a time by :class:`AtomFrameStore`)
   and names the file in the dataset's ``atom_frames`` attribute; :mod:`gego.md.recoarse`
   re-applies C at another c, and :func:`reference_from_atom_frames` rebuilds a whole dataset.
3. :func:`build_reference` adds the global strain ``gamma`` (tilt / ly relative to frame 0,
   corrected for LAMMPS box flips) and the shear stress from the log (``-pxy`` converted to GPa,
   see :func:`gego.md.lammps.shear_stress_gpa`).

The variables are ``gamma`` (frame), ``strain_xy_eng`` (frame, y, x), ``energy``
(frame, y, x; energy unit per atom: eV for ``units metal``, epsilon for ``units lj``),
``stress_xy_gpa`` (frame; for ``units lj`` without a conversion factor this is the LJ stress in
epsilon/sigma^3 - the attribute ``units`` says which), plus ``d2min`` (frame, y, x) and the
full stress curve ``stress_curve_xy_gpa`` (step) with ``stress_curve_gamma``.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from gego.datasets import validate_reference
from gego.errors import ConfigError, DataFormatError
from gego.md.coarse_grain import DEFAULT_CUTOFF_FACTOR, Grid, coarse_grain, grid_for_box
from gego.md.lammps import Box, DumpFrame, iter_dump, read_thermo, shear_stress_gpa
from gego.md.local_strain import local_strain, neighbour_pairs

__all__ = [
    "AtomFrame",
    "AtomFrameStore",
    "AtomFrameWriter",
    "atom_frames",
    "reference_from_atom_frames",
    "coarse_grain_frames",
    "build_reference",
    "stress_at_timesteps",
    "save_atom_frames",
    "load_atom_frames",
    "unflip_tilts",
    "NEIGHBOUR_CUTOFF_FACTOR",
]

NEIGHBOUR_CUTOFF_FACTOR = 2.0  # default D2min neighbour cutoff: 2 x the mean interatomic spacing


@dataclass(frozen=True)
class AtomFrame:
    """Per-atom data of one frame, ready for coarse-graining.

    timestep : LAMMPS timestep
    box : the cell of this frame
    positions : (n, 2) current x, y (length unit of the run)
    energy : (n,) per-atom potential energy (eV for metal units)
    strain_xy_eng : (n,) engineering shear strain 2 E_xy relative to frame 0
    d2min : (n,) non-affine residual relative to frame 0 (length unit squared)
    dims : 2 or 3, the dimensionality of the local-strain fit (2 for a 2-D run)
    """

    timestep: int
    box: Box
    positions: np.ndarray
    energy: np.ndarray
    strain_xy_eng: np.ndarray
    d2min: np.ndarray
    dims: int = 2


def _dimensionality(frame: DumpFrame) -> int:
    z = frame.positions[:, 2]
    return 2 if np.ptp(z) <= 1e-9 * max(1.0, frame.box.lz) else 3


def atom_frames(
    dump_path: str | Path,
    energy_column: str | None = None,
    neighbour_cutoff: float | None = None,
    dims: int | None = None,
    position_kind: str | None = None,
) -> Iterator[AtomFrame]:
    """Stream :class:`AtomFrame` s from a dump; frame 0 is the reference (unsheared) configuration.

    Parameters
    ----------
    dump_path : LAMMPS text dump with ids, positions (with image flags if wrapped) and a per-atom
        energy column
    energy_column : name of the energy column (found by itself when None)
    neighbour_cutoff : D2min neighbour distance; default 2 x (volume per atom)^(1/dims)
    dims : 2 (a 2-D run, z constant) or 3 (e.g. a thin periodic slab); detected when None
    position_kind : force the coordinate columns (``x``, ``xs``, ``xu``, ``xsu``); by default
        unwrapped columns are preferred, then wrapped (with image flags), then scaled
    """
    reference = None
    pairs = None
    for frame in iter_dump(dump_path, energy_column=energy_column, position_kind=position_kind, require_energy=True):
        unwrapped = frame.unwrapped_positions()
        if reference is None:
            dims = _dimensionality(frame) if dims is None else dims
            volume = frame.box.lx * frame.box.ly * (frame.box.lz if dims == 3 else 1.0)
            spacing = (volume / frame.n_atoms) ** (1.0 / dims)
            cutoff = NEIGHBOUR_CUTOFF_FACTOR * spacing if neighbour_cutoff is None else neighbour_cutoff
            reference = (frame.ids, unwrapped, frame.box)
            pairs = neighbour_pairs(unwrapped, frame.box, cutoff, dims)
        ref_ids, ref_pos, ref_box = reference
        if frame.ids.size != ref_ids.size or np.any(frame.ids != ref_ids):
            raise DataFormatError(f"{dump_path}: timestep {frame.timestep}: atom ids differ from the first frame")
        strain = local_strain(ref_pos, unwrapped, ref_box, frame.box, dims=dims, pairs=pairs)
        yield AtomFrame(
            timestep=frame.timestep,
            box=frame.box,
            positions=frame.positions[:, :2].copy(),
            energy=frame.energy.copy(),
            strain_xy_eng=strain.shear_strain_eng,
            d2min=strain.d2min,
            dims=dims,
        )


def coarse_grain_frames(
    frames: Iterable[AtomFrame],
    grid: int = 32,
    length: float = 50.0,
    cutoff: float | None = None,
) -> dict[str, np.ndarray]:
    """Apply C (Eq 36-37) to every frame: ``{"energy", "strain_xy_eng", "d2min"}`` (frame, y, x).

    Atoms whose local strain is undefined (fewer neighbours than dimensions) are left out of the
    strain and D2min averages only. Also returns ``timestep`` (frame,) and ``box`` (list).
    """
    out: dict[str, list] = {"energy": [], "strain_xy_eng": [], "d2min": [], "timestep": [], "box": [], "dims": []}
    for frame in frames:
        field_grid: Grid = grid_for_box(frame.box, grid)
        finite = np.isfinite(frame.strain_xy_eng) & np.isfinite(frame.d2min)
        if finite.all():
            values = np.column_stack([frame.energy, frame.strain_xy_eng, frame.d2min])
            averaged = coarse_grain(frame.positions, values, frame.box, field_grid, length, cutoff).values
        else:
            energy = coarse_grain(frame.positions, frame.energy, frame.box, field_grid, length, cutoff).values
            rest = coarse_grain(
                frame.positions[finite],
                np.column_stack([frame.strain_xy_eng[finite], frame.d2min[finite]]),
                frame.box,
                field_grid,
                length,
                cutoff,
            ).values
            averaged = np.concatenate([energy, rest])
        if not np.all(np.isfinite(averaged)):
            raise ConfigError(
                f"timestep {frame.timestep}: a grid point has no atom within the cutoff; "
                f"increase --cutoff (now {cutoff}) or --length, or use a coarser --grid"
            )
        out["energy"].append(averaged[0])
        out["strain_xy_eng"].append(averaged[1])
        out["d2min"].append(averaged[2])
        out["timestep"].append(frame.timestep)
        out["box"].append(frame.box)
        out["dims"].append(frame.dims)
    if not out["timestep"]:
        raise DataFormatError("no frames to coarse-grain")
    result = {k: np.stack(out[k]) for k in ("energy", "strain_xy_eng", "d2min")}
    result["timestep"] = np.asarray(out["timestep"], dtype=np.int64)
    result["box"] = out["box"]  # type: ignore[assignment]
    result["dims"] = np.asarray(out["dims"])
    return result


def unflip_tilts(boxes: list[Box]) -> np.ndarray:
    """Continuous xy tilt of each frame: LAMMPS flips xy by +-lx when it exceeds lx / 2.

    Assumes the tilt changes by less than lx / 2 between frames.
    """
    tilts = np.empty(len(boxes))
    offset = 0.0
    for k, box in enumerate(boxes):
        value = box.xy + offset
        if k > 0:
            jumps = np.round((tilts[k - 1] - value) / box.lx)
            offset += jumps * box.lx
            value += jumps * box.lx
        tilts[k] = value
    return tilts


def stress_at_timesteps(
    log_path: str | Path,
    timesteps: np.ndarray,
    units: str = "metal",
    pxy_column: str = "Pxy",
    step_column: str = "Step",
    lj_stress_unit_gpa: float | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shear stress at the dump's timesteps from a LAMMPS log or a plain thermo table.

    Uses the last thermo table with ``pxy_column`` and ``step_column`` whose steps cover the
    timesteps; values are linearly interpolated in the step. Returns
    ``(stress at timesteps, curve steps, curve stress)`` where the curve is every row of that table
    between the first and the last timestep.
    """
    tables = read_thermo(log_path)
    timesteps = np.asarray(timesteps, dtype=float)
    for table in reversed(tables):
        if pxy_column not in table or step_column not in table:
            continue
        steps = table[step_column]
        if steps.min() <= timesteps.min() and steps.max() >= timesteps.max():
            order = np.argsort(steps, kind="stable")
            steps, pxy = steps[order], table[pxy_column][order]
            stress = shear_stress_gpa(pxy, units, lj_stress_unit_gpa)
            window = (steps >= timesteps.min()) & (steps <= timesteps.max())
            return np.interp(timesteps, steps, stress), steps[window], stress[window]
    raise DataFormatError(
        f"{log_path}: no thermo table with columns '{step_column}' and '{pxy_column}' covering timesteps "
        f"{int(timesteps.min())}..{int(timesteps.max())}"
    )


def build_reference(
    dump_path: str | Path,
    log_path: str | Path | None,
    grid: int = 32,
    length: float = 50.0,
    cutoff: float | None = None,
    neighbour_cutoff: float | None = None,
    energy_column: str | None = None,
    units: str = "metal",
    pxy_column: str = "Pxy",
    step_column: str = "Step",
    lj_epsilon_ev: float | None = None,
    lj_sigma_angstrom: float | None = None,
    dims: int | None = None,
    position_kind: str | None = None,
    progress: bool = False,
    keep_atoms: str | Path | None = None,
) -> xr.Dataset:
    """Coarse-grain a LAMMPS shear run into a reference dataset (layout of :mod:`gego.datasets`).

    Parameters
    ----------
    dump_path : dump with ``id``, positions (+ image flags ``ix iy iz`` if wrapped), per-atom energy
    log_path : LAMMPS log (or plain thermo table) with ``Step`` and ``Pxy`` columns; required
    grid : points per side of the N x N cell-centred grid
    length : c of Eq 37 (length unit of the run: A for metal, sigma for lj)
    cutoff : r_cut of Eq 36 (default 3 c)
    neighbour_cutoff : D2min neighbour distance (default 2 x mean interatomic spacing)
    energy_column : per-atom energy column name (found by itself when None)
    units : LAMMPS unit style of the run (metal, real, lj, si, cgs) for the stress conversion
    pxy_column, step_column : thermo column names (``col6``/``col0`` for a headerless table)
    lj_epsilon_ev, lj_sigma_angstrom : for ``units lj``, the physical epsilon (eV) and sigma (A)
        of the A-A interaction. With both, the dataset is in the units the calibration expects:
        energy in eV/atom, lengths in A, stress in GPa (epsilon/sigma^3; a 2-D run's stress,
        epsilon/sigma^2, is divided by a film thickness of one sigma). Without them the dataset
        stays in LJ units (the attributes say so) and the STZ parameters must be given in LJ units.
    dims : 2 or 3 for the local-strain fit (detected when None)
    position_kind : coordinate columns to use (x, xs, xu, xsu; chosen by itself when None)
    progress : show a tqdm progress bar over frames
    keep_atoms : also write the per-atom frames (positions, energy, local strain, D2min) to this
        ``.npz`` while they stream past, so that C can be re-applied at another c without
        re-reading the dump (the calibration does this when c is a parameter). The dataset's
        ``atom_frames`` attribute holds the file's *name*: keep it next to the NetCDF file.
    """
    _check_reference_options(log_path, grid, units, lj_epsilon_ev, lj_sigma_angstrom)
    frames: Iterable[AtomFrame] = atom_frames(dump_path, energy_column, neighbour_cutoff, dims, position_kind)
    if keep_atoms is None:
        return _reference_from_frames(frames, str(dump_path), log_path, grid, length, cutoff, units, pxy_column,
                                      step_column, lj_epsilon_ev, lj_sigma_angstrom, progress)
    keep_atoms = Path(keep_atoms)
    with AtomFrameWriter(keep_atoms) as writer:
        ds = _reference_from_frames(writer.passing(frames), str(dump_path), log_path, grid, length, cutoff, units,
                                    pxy_column, step_column, lj_epsilon_ev, lj_sigma_angstrom, progress)
    ds.attrs["atom_frames"] = keep_atoms.name
    return ds


def reference_from_atom_frames(
    atoms_path: str | Path,
    log_path: str | Path | None,
    grid: int = 32,
    length: float = 50.0,
    cutoff: float | None = None,
    units: str = "metal",
    pxy_column: str = "Pxy",
    step_column: str = "Step",
    lj_epsilon_ev: float | None = None,
    lj_sigma_angstrom: float | None = None,
    progress: bool = False,
) -> xr.Dataset:
    """:func:`build_reference` from kept atom frames (``keep_atoms``) instead of the dump: the same
    dataset for another grid or coarse-graining length, without the local-strain fit.

    ``length`` and ``cutoff`` are in the atom frames' length unit (the dump's). The dataset's
    ``atom_frames`` attribute names ``atoms_path``.
    """
    _check_reference_options(log_path, grid, units, lj_epsilon_ev, lj_sigma_angstrom)
    store = AtomFrameStore(atoms_path)
    ds = _reference_from_frames(iter(store), str(atoms_path), log_path, grid, length, cutoff, units, pxy_column,
                                step_column, lj_epsilon_ev, lj_sigma_angstrom, progress)
    ds.attrs["atom_frames"] = Path(atoms_path).name
    return ds


def _check_reference_options(log_path, grid, units, lj_epsilon_ev, lj_sigma_angstrom) -> None:
    if log_path is None:
        raise ConfigError("a LAMMPS log (--log) with Step and Pxy is needed for the stress 'stress_xy_gpa'")
    if int(grid) < 1:
        raise ConfigError(f"--grid must be a positive integer, got {grid}")
    if units == "lj" and (lj_epsilon_ev is None) != (lj_sigma_angstrom is None):
        raise ConfigError("give both --lj-epsilon-ev and --lj-sigma-angstrom (or neither)")
    if units == "lj" and lj_epsilon_ev is not None and not (lj_epsilon_ev > 0 and lj_sigma_angstrom > 0):
        raise ConfigError("--lj-epsilon-ev and --lj-sigma-angstrom must be positive")


def _reference_from_frames(
    frames: Iterable[AtomFrame],
    source: str,
    log_path,
    grid: int,
    length: float,
    cutoff: float | None,
    units: str,
    pxy_column: str,
    step_column: str,
    lj_epsilon_ev: float | None,
    lj_sigma_angstrom: float | None,
    progress: bool,
) -> xr.Dataset:
    """The dataset of :func:`build_reference` from a stream of atom frames (options checked)."""
    dump_path = source
    lj_mapped = units == "lj" and lj_epsilon_ev is not None and lj_sigma_angstrom is not None
    if progress:
        from tqdm import tqdm

        frames = tqdm(frames, desc="coarse-graining", unit="frame")
    fields = coarse_grain_frames(frames, grid, length, cutoff)
    boxes: list[Box] = fields["box"]  # type: ignore[assignment]
    timesteps = fields["timestep"]
    tilts = unflip_tilts(boxes)
    gamma = (tilts - tilts[0]) / np.array([b.ly for b in boxes])
    run_dims = int(fields["dims"][0])
    # epsilon/sigma^3 in GPa (1 eV/A^3 = 160.2176634 GPa); a 2-D stress epsilon/sigma^2 is spread
    # over a film one sigma thick
    lj_stress_unit_gpa = lj_epsilon_ev * 160.2176634 / lj_sigma_angstrom**3 if lj_mapped else None
    stress, curve_steps, curve_stress = stress_at_timesteps(
        log_path, timesteps, units, pxy_column, step_column, lj_stress_unit_gpa
    )
    if timesteps.size > 1:
        curve_gamma = np.interp(curve_steps, timesteps.astype(float), gamma)
    else:
        curve_gamma = np.zeros(curve_steps.size)
    energy_unit = {"metal": "eV", "real": "kcal/mol", "lj": "epsilon", "si": "J", "cgs": "erg"}.get(units, units)
    stress_unit = "GPa" if units != "lj" or lj_mapped else f"epsilon/sigma^{run_dims}"
    length_unit = {"metal": "A", "real": "A", "lj": "sigma", "si": "m", "cgs": "cm"}.get(units, units)
    energy_scale = length_scale = 1.0
    if lj_mapped:
        energy_unit, length_unit = "eV", "A"
        energy_scale, length_scale = float(lj_epsilon_ev), float(lj_sigma_angstrom)
    fields["energy"] = fields["energy"] * energy_scale
    fields["d2min"] = fields["d2min"] * length_scale**2
    box0 = boxes[0]
    ny = nx = int(grid)
    ds = xr.Dataset(
        {
            "strain_xy_eng": (("frame", "y", "x"), fields["strain_xy_eng"], {"long_name": "engineering shear strain 2 E_xy", "units": "1"}),
            "energy": (("frame", "y", "x"), fields["energy"], {"long_name": "coarse-grained potential energy per atom", "units": energy_unit}),
            "d2min": (("frame", "y", "x"), fields["d2min"], {"long_name": "coarse-grained non-affine residual D2min", "units": f"{length_unit}^2"}),
            "stress_xy_gpa": (("frame",), stress, {"long_name": "mean shear stress -pxy", "units": stress_unit}),
            "stress_curve_xy_gpa": (("step",), curve_stress, {"long_name": "shear stress -pxy (thermo output)", "units": stress_unit}),
        },
        coords={
            "gamma": (("frame",), gamma, {"long_name": "global engineering shear strain", "units": "1"}),
            "stress_curve_gamma": (("step",), curve_gamma, {"units": "1"}),
            "frame": np.arange(timesteps.size),
            "timestep": (("frame",), timesteps),
            "x": (("x",), grid_for_box(box0, grid).x * length_scale, {"units": length_unit}),
            "y": (("y",), grid_for_box(box0, grid).y * length_scale, {"units": length_unit}),
        },
        attrs={
            "title": "coarse-grained LAMMPS shear run (gego coarse-grain)",
            "source": str(dump_path),
            "log": str(log_path),
            "cell_length_x": box0.lx * length_scale,
            "cell_length_y": box0.ly * length_scale,
            "length_unit": length_unit,
            "energy_unit": energy_unit,
            "stress_unit": stress_unit,
            "lammps_units": units,
            "dimension": run_dims,
            "grid": f"{ny} x {nx}",
            "coarse_graining_length_c": float(length) * length_scale,
            "coarse_graining_cutoff": float(DEFAULT_CUTOFF_FACTOR * length if cutoff is None else cutoff) * length_scale,
            # atom frames -> dataset units (gego.md.recoarse re-applies C with these)
            "atom_length_scale": float(length_scale),
            "atom_energy_scale": float(energy_scale),
        },
    )
    if length_unit == "A":  # the calibration reads the cell size from these (gego.workflows.problem)
        ds.attrs["cell_length_x_angstrom"] = box0.lx * length_scale
        ds.attrs["cell_length_y_angstrom"] = box0.ly * length_scale
    if lj_mapped:
        ds.attrs["lj_epsilon_ev"] = float(lj_epsilon_ev)
        ds.attrs["lj_sigma_angstrom"] = float(lj_sigma_angstrom)
    validate_reference(ds, source=str(dump_path))
    return ds


ATOM_FRAMES_FORMAT = "gego-atom-frames-1"
_FRAME_FIELDS = ("positions", "energy", "strain_xy_eng", "d2min")


class AtomFrameWriter:
    """Write :class:`AtomFrame` s to a ``.npz`` one frame at a time (nothing is held in memory).

    Each frame is its own set of zip members (``f<k>_positions`` ...), so that
    :class:`AtomFrameStore` can read any frame alone. The file appears (atomically renamed from a
    temporary file in the same folder) only when the writer closes without an error.

    Examples
    --------
    >>> with AtomFrameWriter(path) as writer:          # doctest: +SKIP
    ...     for frame in atom_frames("dump.shear"):
    ...         writer.write(frame)
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if self.path.suffix != ".npz":
            raise ConfigError(f"{self.path}: atom frames are written as a .npz file")
        self._meta: dict[str, list] = {"timestep": [], "box": [], "dims": []}
        self._zip: zipfile.ZipFile | None = None
        self._tmp: str | None = None

    def __enter__(self) -> "AtomFrameWriter":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, self._tmp = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.name, suffix=".part")
        os.close(fd)
        self._zip = zipfile.ZipFile(self._tmp, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True)
        return self

    def _put(self, name: str, array: np.ndarray) -> None:
        with self._zip.open(f"{name}.npy", "w", force_zip64=True) as fh:
            np.lib.format.write_array(fh, np.asarray(array), allow_pickle=False)

    def write(self, frame: AtomFrame) -> None:
        k = len(self._meta["timestep"])
        for name in _FRAME_FIELDS:
            self._put(f"f{k}_{name}", getattr(frame, name))
        self._meta["timestep"].append(frame.timestep)
        self._meta["box"].append([*frame.box.origin, *frame.box.lengths, *frame.box.tilt])
        self._meta["dims"].append(frame.dims)

    def passing(self, frames: Iterable[AtomFrame]) -> Iterator[AtomFrame]:
        """Yield `frames` unchanged, writing each as it passes."""
        for frame in frames:
            self.write(frame)
            yield frame

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self._put("format", np.array(ATOM_FRAMES_FORMAT))
                self._put("timestep", np.array(self._meta["timestep"], dtype=np.int64))
                self._put("box", np.array(self._meta["box"], dtype=float).reshape(-1, 9))
                self._put("dims", np.array(self._meta["dims"], dtype=np.int64))
            self._zip.close()
            if exc_type is None:
                if not self._meta["timestep"]:
                    raise DataFormatError(f"{self.path}: no atom frames to write")
                os.replace(self._tmp, self.path)
        finally:
            if self._tmp is not None and os.path.exists(self._tmp):
                os.remove(self._tmp)


class AtomFrameStore:
    """Read access to an atom-frames file of :class:`AtomFrameWriter`: ``len``, ``store[k]``,
    iteration; frames are read (decompressed) one at a time.

    Pickles as its path (the open file is not carried), so calibration problems holding one
    travel to worker processes.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._data = None
        data = self._open()
        if "format" not in data.files or str(data["format"]) != ATOM_FRAMES_FORMAT:
            raise DataFormatError(f"{self.path}: not a gego atom-frames file (no '{ATOM_FRAMES_FORMAT}' header)")
        self.timesteps = data["timestep"]
        self.boxes = [Box(tuple(b[0:3]), tuple(b[3:6]), tuple(b[6:9])) for b in data["box"]]
        self._dims = data["dims"]

    def _open(self):
        if self._data is None:
            if not self.path.is_file():
                raise DataFormatError(f"{self.path}: atom-frames file not found")
            try:
                self._data = np.load(self.path, allow_pickle=False)
            except (OSError, ValueError, zipfile.BadZipFile) as exc:
                raise DataFormatError(f"{self.path}: not an atom-frames .npz file ({type(exc).__name__})") from None
        return self._data

    def __len__(self) -> int:
        return len(self.boxes)

    def __getitem__(self, k: int) -> AtomFrame:
        n = len(self)
        if not -n <= k < n:
            raise IndexError(f"{self.path}: frame {k} out of range ({n} frames)")
        k %= n
        data = self._open()
        try:
            arrays = {name: data[f"f{k}_{name}"] for name in _FRAME_FIELDS}
        except (KeyError, ValueError, zipfile.BadZipFile) as exc:
            raise DataFormatError(f"{self.path}: frame {k} unreadable ({type(exc).__name__})") from None
        return AtomFrame(timestep=int(self.timesteps[k]), box=self.boxes[k], dims=int(self._dims[k]), **arrays)

    def __iter__(self) -> Iterator[AtomFrame]:
        return (self[k] for k in range(len(self)))

    def close(self) -> None:
        if self._data is not None:
            self._data.close()
            self._data = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_data": None}


def save_atom_frames(path: str | Path, frames: Iterable[AtomFrame]) -> None:
    """Write atom frames to a compressed ``.npz`` (to re-run C for other lengths c)."""
    with AtomFrameWriter(path) as writer:
        for frame in frames:
            writer.write(frame)


def load_atom_frames(path: str | Path) -> list[AtomFrame]:
    """Read every atom frame written by :func:`save_atom_frames` (see :class:`AtomFrameStore`
    for one frame at a time)."""
    store = AtomFrameStore(path)
    try:
        return list(store)
    finally:
        store.close()
