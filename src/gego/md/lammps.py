"""Readers for LAMMPS output: text dumps (streamed frame by frame) and log/thermo tables.

Dumps
-----
:func:`iter_dump` yields one :class:`DumpFrame` at a time, so a 300,000-atom, 100-frame dump
never sits in memory at once. Accepted: any column order; wrapped (``x y z``), scaled
(``xs ys zs``), unwrapped (``xu yu zu``) or scaled-unwrapped (``xsu ysu zsu``) coordinates;
optional image flags ``ix iy iz``; a per-atom energy column found by its name (``c_pe``, ``pe``,
``c_peatom``, ``c_pe_atom``, ``v_pe``, ``epot`` ...) or named explicitly; orthogonal and
triclinic (restricted, ``xy xz yz``) boxes; gzip files (``.gz``). Atoms are sorted by ``id``
so that row k is the same atom in every frame.

Logs
----
:func:`read_thermo` returns every thermo table of a LAMMPS log (one per ``run``), or the one
table of a plain whitespace-separated file such as the bundled ``stress_rand2_matlab.txt``.

Shear-stress sign and units
---------------------------
LAMMPS reports the pressure tensor P; the stress is ``sigma = -P``, so the shear stress is
``-pxy``: a cell sheared with positive xy tilt rate has ``pxy < 0`` and a positive shear stress.
:func:`shear_stress_gpa` converts ``pxy`` to GPa for ``units metal`` (bar, 1 GPa = 1e4 bar),
``units real`` (atm, 1 atm = 101325 Pa), ``units si`` (Pa) and ``units cgs`` (dyne/cm^2); for
``units lj`` pxy is in epsilon/sigma^3 (epsilon/sigma^2 in a 2-D run, where LAMMPS divides by
the area) and is returned unchanged (times -1) unless ``lj_stress_unit_gpa`` (the value of that
unit in GPa) is given.
"""

from __future__ import annotations

import gzip
import io
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gego.errors import ConfigError, DataFormatError

__all__ = [
    "Box",
    "DumpFrame",
    "ThermoTable",
    "iter_dump",
    "read_dump",
    "find_energy_column",
    "read_thermo",
    "shear_stress_gpa",
    "PRESSURE_UNIT_GPA",
]

# Names (lower case, after removing a c_/v_/f_/d_ prefix and underscores) that mean
# "per-atom potential energy": `compute pe/atom` is usually called pe, peatom, pe_atom or epot.
_ENERGY_NAME = re.compile(r"^(pe|peatom|peperatom|pea|epot|epotatom|poteng|potentialenergy|eatom)(\d*)$")

# Pressure unit of each LAMMPS unit style, in GPa (LAMMPS `units` documentation).
PRESSURE_UNIT_GPA = {
    "metal": 1e-4,  # bar
    "real": 101325.0e-9,  # atm
    "si": 1e-9,  # Pa
    "cgs": 1e-10,  # dyne/cm^2
    "electron": 1e-9,  # Pa
    "bar": 1e-4,
    "atm": 101325.0e-9,
    "pa": 1e-9,
    "gpa": 1.0,
}


@dataclass(frozen=True)
class Box:
    """A LAMMPS simulation cell (restricted triclinic; orthogonal when all tilts are 0).

    Edge vectors are ``a = (lx, 0, 0)``, ``b = (xy, ly, 0)``, ``c = (xz, yz, lz)``; lengths in
    the dump's length unit (A for ``units metal``, sigma for ``units lj``).
    """

    origin: tuple[float, float, float]
    lengths: tuple[float, float, float]
    tilt: tuple[float, float, float] = (0.0, 0.0, 0.0)  # xy, xz, yz
    periodic: tuple[bool, bool, bool] = (True, True, True)

    @property
    def lx(self) -> float:
        return self.lengths[0]

    @property
    def ly(self) -> float:
        return self.lengths[1]

    @property
    def lz(self) -> float:
        return self.lengths[2]

    @property
    def xy(self) -> float:
        return self.tilt[0]

    def matrix(self) -> np.ndarray:
        """Cell matrix H (3 x 3) with the edge vectors a, b, c as columns: ``r = origin + H s``."""
        lx, ly, lz = self.lengths
        xy, xz, yz = self.tilt
        return np.array([[lx, xy, xz], [0.0, ly, yz], [0.0, 0.0, lz]])

    @property
    def volume(self) -> float:
        return float(np.prod(self.lengths))


@dataclass
class DumpFrame:
    """One frame of a dump, atoms sorted by id.

    Attributes
    ----------
    timestep : int
    box : Box
    ids : (n,) int64 atom ids, increasing
    types : (n,) int64 atom types, or None if the dump has no ``type`` column
    positions : (n, 3) Cartesian positions (length unit of the run); wrapped into the cell unless
        the dump held unwrapped coordinates (see ``unwrapped``)
    unwrapped : bool, True if ``positions`` are already unwrapped (xu/xsu columns)
    image : (n, 3) int64 image flags, or None
    energy : (n,) per-atom potential energy (energy unit of the run, eV for metal), or None
    columns : every column of the dump by its name, float64, in id order
    """

    timestep: int
    box: Box
    ids: np.ndarray
    types: np.ndarray | None
    positions: np.ndarray
    unwrapped: bool
    image: np.ndarray | None
    energy: np.ndarray | None
    columns: dict[str, np.ndarray] = field(repr=False)

    @property
    def n_atoms(self) -> int:
        return int(self.ids.size)

    def unwrapped_positions(self) -> np.ndarray:
        """Positions continued across periodic boundaries, (n, 3).

        Under Lees-Edwards (a tilted cell) an atom that crossed the y boundary iy times has been
        shifted by iy times the edge vector b = (xy, ly, 0), so
        ``xu = x + ix lx + iy xy + iz xz``, ``yu = y + iy ly + iz yz``, ``zu = z + iz lz``.
        """
        if self.unwrapped:
            return self.positions
        if self.image is None:
            raise DataFormatError(
                f"frame at timestep {self.timestep}: unwrapping needs image flags 'ix iy iz' or unwrapped "
                "coordinates 'xu yu zu' in the dump"
            )
        return self.positions + self.image.astype(float) @ self.box.matrix().T


@dataclass
class ThermoTable:
    """One thermo table: column name -> values (float64)."""

    columns: dict[str, np.ndarray]
    source: str = ""

    def __getitem__(self, name: str) -> np.ndarray:
        key = _find_column(self.columns, name)
        if key is None:
            raise DataFormatError(f"{self.source}: thermo table has no column '{name}' (columns: {', '.join(self.columns)})")
        return self.columns[key]

    def __contains__(self, name: str) -> bool:
        return _find_column(self.columns, name) is not None

    @property
    def n_rows(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0


def _find_column(columns: dict[str, np.ndarray], name: str) -> str | None:
    if name in columns:
        return name
    lowered = {k.lower(): k for k in columns}
    return lowered.get(name.lower())


# --------------------------------------------------------------------------------------------
# dumps
# --------------------------------------------------------------------------------------------


def _open_text(path: Path) -> io.TextIOBase:
    """Open a plain or gzip text file (gzip recognised by its magic bytes, not the suffix)."""
    if not path.is_file():
        raise DataFormatError(f"{path}: file not found")
    with open(path, "rb") as fh:
        magic = fh.read(2)
    if magic == b"\x1f\x8b":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", errors="replace")
    return open(path, encoding="utf-8", errors="replace")


def find_energy_column(names: list[str], requested: str | None = None, source: str = "dump") -> str | None:
    """The per-atom potential energy column among ``names``.

    ``requested`` (e.g. from ``--energy-column``) must be present; otherwise a unique name that
    looks like a potential energy (``c_pe``, ``pe``, ``c_peatom``, ``c_pe_atom``, ``epot`` ...)
    is returned, None if there is none; several candidates raise :class:`DataFormatError`.
    """
    if requested is not None:
        key = _find_column(dict.fromkeys(names), requested)
        if key is None:
            raise DataFormatError(f"{source}: energy column '{requested}' not found (columns: {' '.join(names)})")
        return key
    candidates = [n for n in names if _ENERGY_NAME.match(re.sub(r"^[cvfd]_", "", n.lower()).replace("_", ""))]
    if len(candidates) > 1:
        raise DataFormatError(f"{source}: several energy-like columns {candidates}; choose one with --energy-column")
    return candidates[0] if candidates else None


_POSITION_KINDS = (  # (column names, scaled, unwrapped), in order of preference
    (("xu", "yu", "zu"), False, True),
    (("xsu", "ysu", "zsu"), True, True),
    (("x", "y", "z"), False, False),
    (("xs", "ys", "zs"), True, False),
)


def _position_columns(names: list[str], requested: str | None, source: str) -> tuple[tuple[str, ...], bool, bool]:
    kinds = _POSITION_KINDS
    if requested is not None:
        kinds = [k for k in _POSITION_KINDS if k[0][0] == requested]
        if not kinds:
            raise ConfigError(f"position kind '{requested}' must be one of x, xs, xu, xsu")
    # prefer wrapped x + image flags over xu only if both exist? no: unwrapped columns are exact
    for cols, scaled, unwrapped in kinds:
        present = [c for c in cols if c in names]
        if len(present) >= 2:
            return tuple(present), scaled, unwrapped
    raise DataFormatError(f"{source}: no position columns (x y [z], xs ys, xu yu or xsu ysu) among: {' '.join(names)}")


def _parse_box(header: str, lines: list[str], source: str, frame: int, line_no: int) -> Box:
    words = header.split()[3:]  # after "ITEM: BOX BOUNDS"
    if words and words[0] == "abc":
        raise DataFormatError(f"{source}:{line_no}: frame {frame}: general triclinic boxes ('abc origin') are not supported")
    triclinic = len(words) >= 3 and words[:3] == ["xy", "xz", "yz"]
    flags = words[3:] if triclinic else words
    periodic = tuple((f[:1] == "p") for f in flags[:3]) if len(flags) >= 3 else (True, True, True)
    try:
        values = [[float(v) for v in ln.split()] for ln in lines]
    except ValueError:
        raise DataFormatError(f"{source}:{line_no + 1}: frame {frame}: non-numeric box bounds") from None
    width = 3 if triclinic else 2
    if len(values) != 3 or any(len(v) != width for v in values):
        raise DataFormatError(f"{source}:{line_no + 1}: frame {frame}: expected 3 box-bound lines with {width} numbers")
    if triclinic:
        (xlo_b, xhi_b, xy), (ylo_b, yhi_b, xz), (zlo, zhi, yz) = values
        # LAMMPS writes the bounding box of the tilted cell; recover the cell (dump doc, Howto triclinic)
        xlo = xlo_b - min(0.0, xy, xz, xy + xz)
        xhi = xhi_b - max(0.0, xy, xz, xy + xz)
        ylo = ylo_b - min(0.0, yz)
        yhi = yhi_b - max(0.0, yz)
        tilt = (xy, xz, yz)
    else:
        (xlo, xhi), (ylo, yhi), (zlo, zhi) = values
        tilt = (0.0, 0.0, 0.0)
    lengths = (xhi - xlo, yhi - ylo, zhi - zlo)
    if min(lengths[:2]) <= 0 or lengths[2] < 0:
        raise DataFormatError(f"{source}:{line_no + 1}: frame {frame}: box has non-positive length {lengths}")
    return Box(origin=(xlo, ylo, zlo), lengths=lengths, tilt=tilt, periodic=periodic)  # type: ignore[arg-type]


def _diagnose_atom_block(lines: list[str], n_cols: int, source: str, frame: int, first_line: int) -> DataFormatError:
    """Locate the first bad row of an atom block after the fast parser failed."""
    for k, line in enumerate(lines):
        parts = line.split()
        if len(parts) != n_cols:
            return DataFormatError(
                f"{source}:{first_line + k}: frame {frame}: expected {n_cols} columns, found {len(parts)}"
            )
        for p in parts:
            try:
                float(p)
            except ValueError:
                return DataFormatError(f"{source}:{first_line + k}: frame {frame}: non-numeric field {p[:30]!r}")
    return DataFormatError(f"{source}:{first_line}: frame {frame}: unreadable atom block")


def _parse_atoms(lines: list[str], n_cols: int, source: str, frame: int, first_line: int) -> np.ndarray:
    if not lines:
        return np.empty((0, n_cols))
    try:
        data = np.loadtxt(lines, dtype=np.float64, ndmin=2, comments=None)
    except ValueError:
        raise _diagnose_atom_block(lines, n_cols, source, frame, first_line) from None
    if data.shape[1] != n_cols:
        raise _diagnose_atom_block(lines, n_cols, source, frame, first_line)
    if not np.all(np.isfinite(data)):
        bad = int(np.argwhere(~np.isfinite(data))[0, 0])
        raise DataFormatError(f"{source}:{first_line + bad}: frame {frame}: NaN or infinite value")
    return data


def iter_dump(
    path: str | Path,
    energy_column: str | None = None,
    position_kind: str | None = None,
    require_energy: bool = False,
) -> Iterator[DumpFrame]:
    """Stream the frames of a LAMMPS text dump (plain or gzip), one :class:`DumpFrame` at a time.

    Parameters
    ----------
    path : dump file written by ``dump ... custom`` or ``dump ... atom``
    energy_column : name of the per-atom energy column; found by itself when None
    position_kind : ``"x"``, ``"xs"``, ``"xu"`` or ``"xsu"`` to force a coordinate kind; by
        default unwrapped columns are preferred, then wrapped, then scaled
    require_energy : raise :class:`DataFormatError` if no energy column is found

    Raises
    ------
    DataFormatError
        one line naming file, line and frame: truncated frame, wrong column count, non-numeric
        field, missing energy column, missing ``id`` column.
    """
    path = Path(path)
    source = str(path)
    with _open_text(path) as fh:
        line_no = 0
        frame = 0

        def next_line(what: str) -> str:
            nonlocal line_no
            line = fh.readline()
            if not line:
                raise DataFormatError(f"{source}:{line_no}: frame {frame}: file ends inside the frame, expected {what}")
            line_no += 1
            return line

        while True:
            line = fh.readline()
            if not line:
                return
            line_no += 1
            if not line.strip():
                continue
            if not line.startswith("ITEM: TIMESTEP"):
                raise DataFormatError(f"{source}:{line_no}: frame {frame}: expected 'ITEM: TIMESTEP', got {line.strip()[:40]!r}")
            try:
                timestep = int(next_line("the timestep").split()[0])
            except (ValueError, IndexError):
                raise DataFormatError(f"{source}:{line_no}: frame {frame}: timestep is not an integer") from None
            item = next_line("'ITEM: NUMBER OF ATOMS'")
            if not item.startswith("ITEM: NUMBER OF ATOMS"):
                raise DataFormatError(f"{source}:{line_no}: frame {frame}: expected 'ITEM: NUMBER OF ATOMS'")
            try:
                n_atoms = int(next_line("the number of atoms").split()[0])
            except (ValueError, IndexError):
                raise DataFormatError(f"{source}:{line_no}: frame {frame}: number of atoms is not an integer") from None
            if n_atoms < 1:  # nothing to coarse-grain (and no atom lines to check the frame's end by)
                raise DataFormatError(f"{source}:{line_no}: frame {frame}: number of atoms must be positive, got {n_atoms}")
            box_header = next_line("'ITEM: BOX BOUNDS'")
            if not box_header.startswith("ITEM: BOX BOUNDS"):
                raise DataFormatError(f"{source}:{line_no}: frame {frame}: expected 'ITEM: BOX BOUNDS'")
            box_line = line_no
            box = _parse_box(box_header, [next_line("box bounds") for _ in range(3)], source, frame, box_line)
            atoms_header = next_line("'ITEM: ATOMS'")
            if not atoms_header.startswith("ITEM: ATOMS"):
                raise DataFormatError(f"{source}:{line_no}: frame {frame}: expected 'ITEM: ATOMS ...'")
            names = atoms_header.split()[2:]
            if len(set(names)) != len(names):
                raise DataFormatError(f"{source}:{line_no}: frame {frame}: repeated column name in {' '.join(names)}")
            if "id" not in names:
                raise DataFormatError(f"{source}:{line_no}: frame {frame}: dump has no 'id' column")
            first = line_no + 1
            block = list(itertools.islice(fh, n_atoms))  # C-speed line reading
            cut = len(block)
            if cut < n_atoms or block[-1].startswith("ITEM:"):
                cut = next((k for k, text in enumerate(block) if text.startswith("ITEM:")), cut)
                raise DataFormatError(f"{source}:{first + cut}: frame {frame}: truncated frame, {cut} of {n_atoms} atom lines")
            line_no += n_atoms
            try:
                data = _parse_atoms(block, len(names), source, frame, first)
            except DataFormatError:
                cut = next((k for k, text in enumerate(block) if text.startswith("ITEM:")), None)
                if cut is not None:  # the next frame started early: this one is truncated
                    raise DataFormatError(
                        f"{source}:{first + cut}: frame {frame}: truncated frame, {cut} of {n_atoms} atom lines"
                    ) from None
                raise
            yield _make_frame(data, names, timestep, box, energy_column, position_kind, require_energy, source, frame, first)
            frame += 1


def _make_frame(data, names, timestep, box, energy_column, position_kind, require_energy, source, frame, first_line) -> DumpFrame:
    where = f"{source}:{first_line - 1}: frame {frame}"
    order = np.argsort(data[:, names.index("id")], kind="stable")
    data = data[order]
    columns = {name: data[:, k] for k, name in enumerate(names)}
    ids = columns["id"].astype(np.int64)
    if ids.size > 1 and np.any(np.diff(ids) == 0):
        raise DataFormatError(f"{where}: repeated atom id {int(ids[np.argmax(np.diff(ids) == 0)])}")
    cols, scaled, unwrapped = _position_columns(names, position_kind, where)
    n = ids.size
    frac_or_pos = np.zeros((n, 3))
    for k, c in enumerate(cols):
        frac_or_pos[:, k] = columns[c]
    if scaled:
        positions = np.asarray(box.origin) + frac_or_pos @ box.matrix().T
        if len(cols) == 2:
            positions[:, 2] = 0.0
    else:
        positions = frac_or_pos
    image = None
    if all(c in columns for c in ("ix", "iy")):
        image = np.zeros((n, 3), dtype=np.int64)
        image[:, 0] = columns["ix"]
        image[:, 1] = columns["iy"]
        if "iz" in columns:
            image[:, 2] = columns["iz"]
    energy_name = find_energy_column(names, energy_column, where)
    if energy_name is None and require_energy:
        raise DataFormatError(
            f"{where}: no per-atom energy column (compute pe/atom, e.g. c_pe); columns: {' '.join(names)}; "
            "name it with --energy-column"
        )
    return DumpFrame(
        timestep=timestep,
        box=box,
        ids=ids,
        types=columns["type"].astype(np.int64) if "type" in columns else None,
        positions=positions,
        unwrapped=unwrapped,
        image=image,
        energy=None if energy_name is None else columns[energy_name],
        columns=columns,
    )


def read_dump(path: str | Path, **kwargs) -> list[DumpFrame]:
    """All frames of a dump as a list (small files only; use :func:`iter_dump` to stream)."""
    return list(iter_dump(path, **kwargs))


# --------------------------------------------------------------------------------------------
# logs and thermo tables
# --------------------------------------------------------------------------------------------


def _is_number(word: str) -> bool:
    try:
        float(word)
    except ValueError:
        return False
    return True


def read_thermo(path: str | Path, names: list[str] | None = None) -> list[ThermoTable]:
    """Thermo tables of a LAMMPS log, or the single table of a plain numeric text file.

    In a log, a table starts at a header line whose first word is ``Step`` (``thermo_style
    custom`` or ``multi``-free one-line styles) and ends at ``Loop time``, at the end of the file
    or at a line that is neither numeric nor a ``WARNING``. A file without any ``Step`` header
    is read as one headerless table whose columns are named ``names`` (default ``col0``,
    ``col1``, ...), as for the bundled ``stress_rand2_matlab.txt``.

    Raises :class:`DataFormatError` (file and line) for rows of the wrong width or non-numeric
    fields inside a table, and when no table is found.
    """
    path = Path(path)
    source = str(path)
    with _open_text(path) as fh:
        lines = fh.read().splitlines()
    tables: list[ThermoTable] = []
    has_header = any(ln.split()[:1] == ["Step"] for ln in lines)
    if not has_header:
        return [_headerless_table(lines, names, source)]
    k = 0
    while k < len(lines):
        words = lines[k].split()
        if words[:1] != ["Step"]:
            k += 1
            continue
        header = words
        rows: list[list[float]] = []
        k += 1
        while k < len(lines):
            parts = lines[k].split()
            if not parts or parts[0].startswith("WARNING"):
                k += 1
                continue
            if not _is_number(parts[0]):
                break  # "Loop time ...", "ERROR ...", next command echo
            if len(parts) != len(header):
                if k == len(lines) - 1:
                    break  # a log cut off mid-row while LAMMPS was still running
                raise DataFormatError(f"{source}:{k + 1}: thermo row has {len(parts)} values, header has {len(header)}")
            try:
                rows.append([float(p) for p in parts])
            except ValueError:
                bad = next(p for p in parts if not _is_number(p))
                raise DataFormatError(f"{source}:{k + 1}: non-numeric thermo value {bad!r}") from None
            if not all(np.isfinite(rows[-1])):  # a run that blew up prints nan / inf
                raise DataFormatError(f"{source}:{k + 1}: NaN or infinite thermo value")
            k += 1
        if rows:
            values = np.asarray(rows)
            tables.append(ThermoTable({name: values[:, j] for j, name in enumerate(header)}, source))
    if not tables:
        raise DataFormatError(f"{source}: no thermo table (a 'Step ...' header followed by numeric rows)")
    return tables


def _headerless_table(lines: list[str], names: list[str] | None, source: str) -> ThermoTable:
    rows = []
    width = None
    for k, line in enumerate(lines):
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        if width is None:
            width = len(parts)
        elif len(parts) != width:
            raise DataFormatError(f"{source}:{k + 1}: expected {width} columns, found {len(parts)}")
        try:
            rows.append([float(p) for p in parts])
        except ValueError:
            bad = next(p for p in parts if not _is_number(p))
            raise DataFormatError(f"{source}:{k + 1}: non-numeric value {bad!r} (no 'Step' header found)") from None
        if not all(np.isfinite(rows[-1])):
            raise DataFormatError(f"{source}:{k + 1}: NaN or infinite value")
    if not rows:
        raise DataFormatError(f"{source}: no data rows")
    values = np.asarray(rows)
    if names is None:
        names = [f"col{j}" for j in range(values.shape[1])]
    if len(names) != values.shape[1]:
        raise ConfigError(f"{source}: {len(names)} column names given for {values.shape[1]} columns")
    return ThermoTable({name: values[:, j] for j, name in enumerate(names)}, source)


def shear_stress_gpa(pxy: np.ndarray, units: str = "metal", lj_stress_unit_gpa: float | None = None) -> np.ndarray:
    """Shear stress sigma_xy = -pxy, converted to GPa from the LAMMPS pressure unit.

    Parameters
    ----------
    pxy : xy component of the LAMMPS pressure tensor (thermo keyword ``pxy``)
    units : LAMMPS unit style (``metal`` -> bar, ``real`` -> atm, ``si``/``electron`` -> Pa,
        ``cgs`` -> dyne/cm^2, ``lj`` -> epsilon/sigma^3) or a pressure unit (bar, atm, Pa, GPa)
    lj_stress_unit_gpa : for ``lj``: epsilon/sigma^3 in GPa; if None the LJ stress is returned
        in epsilon/sigma^3 (still with the sign flipped)
    """
    pxy = np.asarray(pxy, dtype=float)
    key = units.lower()
    if key == "lj":
        return -pxy * (1.0 if lj_stress_unit_gpa is None else float(lj_stress_unit_gpa))
    if key not in PRESSURE_UNIT_GPA:
        raise ConfigError(f"stress units '{units}' unknown; expected one of lj, {', '.join(PRESSURE_UNIT_GPA)}")
    return -pxy * PRESSURE_UNIT_GPA[key]  # sigma = -P (LAMMPS reports the pressure tensor)
