"""Reference datasets: the bundled CuZr MD reference and readers for its text files.

A *reference dataset* is an :class:`xarray.Dataset` with

==================  ====================  ==============================================
variable            dims                  meaning
==================  ====================  ==============================================
``gamma``           (frame,)              global engineering shear strain of each frame
``strain_xy_eng``   (frame, y, x)         engineering shear strain field (2 E_xy)
``energy``          (frame, y, x)         coarse-grained potential energy, eV/atom
``stress_xy_gpa``   (frame,)              mean shear stress, GPa
==================  ====================  ==============================================

and optionally the finely sampled stress-strain curve ``stress_curve_xy_gpa`` on its own
dimension ``step`` with coordinate ``stress_curve_gamma``. Fields are indexed ``[frame, y, x]``:
rows run along y, the shear-gradient direction. Every calibration reads this layout, whether it
comes from :func:`load_cuzr`, from ``gego coarse-grain`` or from :func:`load_reference`.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import xarray as xr

from gego.errors import DataFormatError

__all__ = [
    "DataFormatError",
    "load_cuzr",
    "load_reference",
    "read_field_text",
    "read_stress_table",
    "read_cuzr_text",
    "validate_reference",
]

_BUNDLE = "cuzr_md.nc"
REQUIRED_VARIABLES = {
    "gamma": ("frame",),
    "strain_xy_eng": ("frame", "y", "x"),
    "stress_xy_gpa": ("frame",),
}


def load_cuzr() -> xr.Dataset:
    """The bundled Cu50Zr50 MD reference of the paper (Sec 5.1.1), in the reference layout.

    101 frames at gamma = 0.005 k (k = 0..100) on a 32 x 32 grid over 400 A x 400 A:
    ``strain_xy_eng`` (engineering shear strain), ``energy`` (eV/atom), ``stress_xy_gpa``
    (GPa, the LAMMPS ``-pxy`` at each frame's strain) and the full 501-point stress curve.
    See ``gego/data/PROVENANCE.md`` and ``gego/data/LICENSE-cuzr-md`` (MIT, K. Kontolati).
    """
    with resources.as_file(resources.files("gego.data") / _BUNDLE) as path:
        with xr.open_dataset(path) as ds:
            return ds.load()


def load_reference(path: str | Path | None = None) -> xr.Dataset:
    """Load a reference dataset from NetCDF (``None`` gives the bundled CuZr data).

    Raises :class:`DataFormatError` with a one-line message if the file is missing or lacks a
    required variable.
    """
    if path is None:
        return load_cuzr()
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path}: reference file not found")
    try:
        with xr.open_dataset(path) as ds:
            ds = ds.load()
    except Exception as exc:  # netCDF/HDF errors are long; keep the message to one line
        raise DataFormatError(f"{path}: not a readable NetCDF reference dataset ({type(exc).__name__})") from None
    validate_reference(ds, source=str(path))
    return ds


def validate_reference(ds: xr.Dataset, source: str = "reference") -> None:
    """Check that ``ds`` has the reference layout; raise :class:`DataFormatError` if not."""
    for name, dims in REQUIRED_VARIABLES.items():
        if name not in ds:
            raise DataFormatError(f"{source}: missing variable '{name}' with dims {dims}")
        if tuple(ds[name].dims) != dims:
            raise DataFormatError(f"{source}: variable '{name}' has dims {tuple(ds[name].dims)}, expected {dims}")
    gamma = np.asarray(ds["gamma"])
    if gamma.size > 1 and np.any(np.diff(gamma) <= 0):
        raise DataFormatError(f"{source}: 'gamma' must increase strictly from frame to frame")


# --------------------------------------------------------------------------------------------
# Original text formats (../shared/data/cuzr_md): what the authors published.
# --------------------------------------------------------------------------------------------


def read_field_text(path: str | Path) -> np.ndarray:
    """Read one field file (``Exy.MD.k`` or ``pe.MD.k``): header ``ny nx a b``, then ny rows.

    LF or CRLF line ends are accepted. The two trailing header numbers (min and range for
    strain files, ``0 1`` for energy files) are informative only. Returns a float64 array
    ``[y, x]``. A malformed file raises :class:`DataFormatError` naming the file and line.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataFormatError(f"{path}: cannot read field file ({exc.__class__.__name__})") from None
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise DataFormatError(f"{path}: empty field file, expected a header 'ny nx min range'")
    header = lines[0].split()
    try:
        ny, nx = int(header[0]), int(header[1])
    except (IndexError, ValueError):
        raise DataFormatError(f"{path}:1: header must start with two integers 'ny nx', got {lines[0][:60]!r}") from None
    if ny <= 0 or nx <= 0:
        raise DataFormatError(f"{path}:1: grid size must be positive, got {ny} x {nx}")
    if len(lines) - 1 != ny:
        raise DataFormatError(f"{path}: expected {ny} data rows after the header, found {len(lines) - 1}")
    out = np.empty((ny, nx))
    for i, line in enumerate(lines[1:]):
        parts = line.split()
        if len(parts) != nx:
            raise DataFormatError(f"{path}:{i + 2}: expected {nx} numbers, found {len(parts)}")
        try:
            out[i] = [float(p) for p in parts]
        except ValueError:
            raise DataFormatError(f"{path}:{i + 2}: non-numeric value in row {i}") from None
    if not np.all(np.isfinite(out)):
        raise DataFormatError(f"{path}: field contains NaN or infinity")
    return out


def read_stress_table(path: str | Path, column: int = 6, n_rows_expected: int | None = None) -> np.ndarray:
    """Read a whitespace/tab separated thermo table (``stress_rand2_matlab.txt``).

    Returns the shear stress in GPa, ``-pxy[bar] / 1e4`` (LAMMPS reports the pressure tensor,
    whose xy component is minus the shear stress; 1 GPa = 1e4 bar), from ``column``.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataFormatError(f"{path}: cannot read stress table ({exc.__class__.__name__})") from None
    rows = []
    width = None
    for i, line in enumerate(text.splitlines()):
        parts = line.split()
        if not parts:
            continue
        if width is None:
            width = len(parts)
            if column >= width:
                raise DataFormatError(f"{path}:{i + 1}: stress column {column} requested, row has {width} columns")
        elif len(parts) != width:
            raise DataFormatError(f"{path}:{i + 1}: expected {width} columns, found {len(parts)}")
        try:
            rows.append(float(parts[column]))
        except ValueError:
            raise DataFormatError(f"{path}:{i + 1}: non-numeric value in column {column}: {parts[column]!r}") from None
    if not rows:
        raise DataFormatError(f"{path}: no data rows")
    if n_rows_expected is not None and len(rows) != n_rows_expected:
        raise DataFormatError(f"{path}: expected {n_rows_expected} rows, found {len(rows)}")
    pxy_bar = np.asarray(rows)
    return -pxy_bar / 1e4  # GPa; sign: shear stress = -pxy


def read_cuzr_text(folder: str | Path, n_frames: int = 101, gamma_max: float = 0.5) -> xr.Dataset:
    """Build the reference dataset from the authors' original text files in ``folder``.

    Expects ``Exy.MD.k`` and ``pe.MD.k`` for k = 0..n_frames-1 and ``stress_rand2_matlab.txt``
    (whose row i is at strain ``gamma_max * i / (rows - 1)``). Frame k is at strain
    ``gamma_max * k / (n_frames - 1)``; the frame stress is interpolated on the fine curve
    (for the CuZr files every 5th row falls exactly on a frame).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataFormatError(f"{folder}: not a folder with Exy.MD.k / pe.MD.k files")
    strain = np.stack([read_field_text(folder / f"Exy.MD.{k}") for k in range(n_frames)])
    energy = np.stack([read_field_text(folder / f"pe.MD.{k}") for k in range(n_frames)])
    if strain.shape != energy.shape:
        raise DataFormatError(f"{folder}: strain fields {strain.shape[1:]} and energy fields {energy.shape[1:]} differ")
    curve = read_stress_table(folder / "stress_rand2_matlab.txt")
    curve_gamma = gamma_max * np.arange(curve.size) / (curve.size - 1)
    gamma = gamma_max * np.arange(n_frames) / (n_frames - 1)
    ny, nx = strain.shape[1:]
    ds = xr.Dataset(
        {
            "strain_xy_eng": (("frame", "y", "x"), strain, {"long_name": "engineering shear strain 2 E_xy", "units": "1"}),
            "energy": (("frame", "y", "x"), energy, {"long_name": "coarse-grained potential energy per atom", "units": "eV"}),
            "stress_xy_gpa": (("frame",), np.interp(gamma, curve_gamma, curve), {"long_name": "mean shear stress -pxy", "units": "GPa"}),
            "stress_curve_xy_gpa": (("step",), curve, {"long_name": "shear stress -pxy (thermo output)", "units": "GPa"}),
        },
        coords={
            "gamma": (("frame",), gamma, {"long_name": "global engineering shear strain", "units": "1"}),
            "stress_curve_gamma": (("step",), curve_gamma, {"units": "1"}),
            "frame": np.arange(n_frames),
        },
        attrs={
            "title": "Cu50Zr50 metallic glass, NEMD simple shear, coarse-grained (Kontolati et al.)",
            "cell_length_x_angstrom": 400.0,
            "cell_length_y_angstrom": 400.0,
            "grid": f"{ny} x {nx}",
            "source": str(folder),
        },
    )
    return ds
