"""The coarse-graining length c as a parameter: C (Eq 36-37) re-applied to kept atom frames.

The paper fixes c (Eq 37) by hand and notes that it could be learned with the model parameters.
What depends on c in a reference is everything coarse-grained from atoms: the energy field (the
initial chi of Eq 38 and chi_inf) and the local strain field the objective compares (Eq 39);
the global strain and the stress curve do not. A reference made with
``gego coarse-grain --keep-atoms`` (``build_reference(..., keep_atoms=...)``) names its per-atom
frames in the attribute ``atom_frames``; :class:`ReCoarseGraining` applies C to those frames at
any c, on the reference's own grid and in its units.

Only the frames the calibration reads are coarse-grained (the first and last for the energy,
those at the objective's snapshot strains for the strain), so one c costs a few frames of C, not
the whole run. Results are cached per c in memory (per process) and on disk next to the atom
frames (``<atoms>.c-cache/``, written atomically), so a batch, a worker process or a resumed
study that meets a c again reads the fields instead of recomputing them.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from gego.errors import ConfigError, DataFormatError
from gego.md.reference import AtomFrameStore, coarse_grain_frames

__all__ = ["ReCoarseGraining", "frames_for_strains", "atom_frames_file", "MEMORY_CACHE_SIZE"]

#: Entries (one per c value) kept in each process's memory cache.
MEMORY_CACHE_SIZE = 64
_MEMORY: OrderedDict[str, dict[str, np.ndarray]] = OrderedDict()


def frames_for_strains(gamma: np.ndarray, strains, match: str = "nearest") -> list[int]:
    """Frame indices the objective's snapshot rule reads at `strains`: the nearest frame
    (``match="nearest"``, the default of :class:`gego.objective.GrassmannTerm`) or, for
    ``"interp"``, the nearest and its neighbours on both sides (a superset of the brackets)."""
    if match not in ("nearest", "interp"):
        raise ConfigError(f"match: expected 'nearest' or 'interp', got {match!r}")
    gamma = np.asarray(gamma, dtype=float)
    reach = (0,) if match == "nearest" else (-1, 0, 1)
    out: set[int] = set()
    for s in np.atleast_1d(np.asarray(strains, dtype=float)):
        k = int(np.argmin(np.abs(gamma - s)))
        out.update(k + d for d in reach if 0 <= k + d < gamma.size)
    return sorted(out)


def atom_frames_file(reference: xr.Dataset, reference_path: str | Path | None) -> Path:
    """The atom-frames file of a reference (attribute ``atom_frames``, relative to the reference
    file's folder).

    Raises
    ------
    ConfigError
        The reference has no atom frames (e.g. the bundled pre-binned CuZr data), or the file is
        missing.
    """
    where = "the bundled CuZr reference" if reference_path is None else str(reference_path)
    name = reference.attrs.get("atom_frames")
    if not name:
        raise ConfigError(f"{where} has no atom frames (attribute 'atom_frames'): calibrating c needs a reference made "
                          "with `gego coarse-grain DUMP --keep-atoms ...` (pre-binned fields cannot be re-coarse-grained)")
    path = Path(str(name))
    if not path.is_absolute() and reference_path is not None:
        path = Path(reference_path).parent / path
    if not path.is_file():
        raise ConfigError(f"{where}: its atom frames {path} are missing (keep the .atoms.npz next to the reference file)")
    return path


@dataclass(frozen=True)
class ReCoarseGraining:
    """C (Eq 36-37) at another length c, applied to the atom frames kept with a reference.

    Attributes
    ----------
    atoms_path : the atom-frames file (:class:`gego.md.reference.AtomFrameStore`).
    frames : atom-frame indices coarse-grained (the frames the calibration reads).
    n_frames : frames of the reference (the dataset built by :meth:`reference_at` has all of
        them; frames not in ``frames`` are NaN in the c-dependent fields).
    grid_ny, grid_nx : the reference grid.
    length_scale : reference length unit per atom-frame length unit (sigma in A for a mapped LJ
        run, else 1); c is given in the reference's unit.
    energy_scale : reference energy unit per atom-frame energy unit (epsilon in eV, else 1).
    cutoff_factor : r_cut / c, kept from the reference (3 by default).
    cache_dir : disk cache folder ("" = memory cache only).

    Plain data only: it pickles to worker processes and Dask workers.
    """

    atoms_path: str
    frames: tuple[int, ...]
    n_frames: int
    grid_ny: int
    grid_nx: int
    length_scale: float = 1.0
    energy_scale: float = 1.0
    cutoff_factor: float = 3.0
    cache_dir: str = ""

    @classmethod
    def of_reference(cls, reference: xr.Dataset, reference_path: str | Path | None, strains=(),
                     cache: bool = True, match: str = "nearest") -> "ReCoarseGraining":
        """The re-coarse-graining of a reference for an objective with snapshot `strains` picked
        by the rule `match` (see :func:`frames_for_strains`).

        Raises
        ------
        ConfigError
            No atom frames (see :func:`atom_frames_file`), or they do not match the reference.
        """
        path = atom_frames_file(reference, reference_path)
        store = AtomFrameStore(path)
        try:
            n = int(reference.sizes["frame"])
            if len(store) != n:
                raise ConfigError(f"{reference_path}: its atom frames {path} hold {len(store)} frames, the reference {n}")
            if "timestep" in reference.coords and not np.array_equal(np.asarray(reference["timestep"]), store.timesteps):
                raise ConfigError(f"{reference_path}: the timesteps of its atom frames {path} differ from the reference's")
        finally:
            store.close()
        attrs = reference.attrs
        length_c = float(attrs.get("coarse_graining_length_c", np.nan))
        cutoff = float(attrs.get("coarse_graining_cutoff", np.nan))
        factor = cutoff / length_c if np.isfinite(cutoff / length_c) and length_c > 0 else 3.0
        gamma = np.asarray(reference["gamma"], dtype=float)
        frames = sorted({0, n - 1, *frames_for_strains(gamma, strains, match)})
        return cls(
            atoms_path=str(path),
            frames=tuple(frames),
            n_frames=n,
            grid_ny=int(reference.sizes["y"]),
            grid_nx=int(reference.sizes["x"]),
            length_scale=float(attrs.get("atom_length_scale", 1.0)),
            energy_scale=float(attrs.get("atom_energy_scale", 1.0)),
            cutoff_factor=float(factor),
            cache_dir=str(path.with_suffix(".c-cache")) if cache else "",
        )

    def _key(self, c: float) -> str:
        stat = os.stat(self.atoms_path)
        text = repr((os.path.abspath(self.atoms_path), stat.st_size, stat.st_mtime_ns, self.frames, self.grid_ny,
                     self.grid_nx, float(self.length_scale).hex(), float(self.energy_scale).hex(),
                     float(self.cutoff_factor).hex(), float(c).hex()))
        return hashlib.sha1(text.encode()).hexdigest()[:20]

    def fields(self, c: float) -> dict[str, np.ndarray]:
        """``{"energy", "strain_xy_eng"}`` at :attr:`frames`, shape (len(frames), ny, nx), coarse-
        grained with length `c` (reference length unit), energy in the reference's unit.

        Raises
        ------
        ConfigError
            c not positive, or so small that a grid point has no atom within its cutoff.
        """
        c = float(c)
        if not (np.isfinite(c) and c > 0):
            raise ConfigError(f"coarse-graining length c must be positive, got {c:g}")
        key = self._key(c)
        if key in _MEMORY:
            _MEMORY.move_to_end(key)
            return _MEMORY[key]
        result = self._read_disk(key)
        if result is None:
            result = self._compute(c)
            self._write_disk(key, result)
        _MEMORY[key] = result
        while len(_MEMORY) > MEMORY_CACHE_SIZE:
            _MEMORY.popitem(last=False)
        return result

    def _compute(self, c: float) -> dict[str, np.ndarray]:
        store = AtomFrameStore(self.atoms_path)
        length = c / self.length_scale  # in the atom frames' unit
        try:
            out = coarse_grain_frames((store[k] for k in self.frames), (self.grid_nx, self.grid_ny), length,
                                      self.cutoff_factor * length)
        finally:
            store.close()
        return {"energy": out["energy"] * self.energy_scale, "strain_xy_eng": out["strain_xy_eng"]}

    def _read_disk(self, key: str) -> dict[str, np.ndarray] | None:
        if not self.cache_dir:
            return None
        path = Path(self.cache_dir) / f"{key}.npz"
        try:
            with np.load(path, allow_pickle=False) as data:
                return {"energy": data["energy"], "strain_xy_eng": data["strain_xy_eng"]}
        except (OSError, ValueError, KeyError):
            return None  # absent or half-written by another process: recompute

    def _write_disk(self, key: str, result: dict[str, np.ndarray]) -> None:
        if not self.cache_dir:
            return
        try:
            folder = Path(self.cache_dir)
            folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=folder, suffix=".part")
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, **result)
            os.replace(tmp, folder / f"{key}.npz")
        except OSError:
            pass  # a read-only data folder: the memory cache still works

    def reference_at(self, reference: xr.Dataset, c: float, fields=("energy", "strain_xy_eng")) -> xr.Dataset:
        """`reference` with its `fields` (energy and/or strain) coarse-grained at length `c`.

        Frames outside :attr:`frames` get NaN in those fields (nothing the calibration reads);
        ``d2min`` is dropped (it would still be at the old c). The attribute
        ``coarse_graining_length_c`` says which c the fields have (``..._strain`` the strain's,
        when only the energy is re-coarse-grained).
        """
        unknown = set(fields) - {"energy", "strain_xy_eng"}
        if unknown or not fields:
            raise ConfigError(f"fields: expected 'energy' and/or 'strain_xy_eng', got {list(fields)}")
        if int(reference.sizes["frame"]) != self.n_frames:
            raise DataFormatError(f"reference has {reference.sizes['frame']} frames, its atom frames {self.n_frames}")
        computed = self.fields(c)
        index = list(self.frames)
        out = reference.drop_vars([v for v in ("d2min",) if v in reference])
        for name in fields:
            values = np.full((self.n_frames, self.grid_ny, self.grid_nx), np.nan)
            values[index] = computed[name]
            attrs = dict(reference[name].attrs) if name in reference else {}
            out[name] = (("frame", "y", "x"), values, attrs)
        attrs = {**reference.attrs, "coarse_graining_length_c": float(c), "coarse_graining_cutoff": float(self.cutoff_factor * c)}
        if "strain_xy_eng" not in fields:
            attrs["coarse_graining_length_c_strain"] = float(reference.attrs.get("coarse_graining_length_c", np.nan))
        out.attrs = attrs
        return out
