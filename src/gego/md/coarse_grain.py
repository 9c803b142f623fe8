"""The coarse-graining operator C: Gaussian-window averages of per-atom values on a grid.

Eq 36-37 of the paper: the value at grid point alpha is

    E_alpha = sum_n g_n E_n / sum_n g_n,     g_n = 2 / sqrt(2 pi c) exp(-r_n^2 / (2 c^2)),

over every atom n (and every periodic image of it) within ``r_n <= r_cut`` of alpha. The
prefactor of Eq 37 cancels in the ratio; it is kept so that the weight sums returned are the
paper's.

Grid. ``n x n`` points at the centres of the cells of a regular grid over the rectangle
``[xlo, xlo + lx) x [ylo, ylo + ly)`` (rows along y, indexed ``[y, x]``). Under Lees-Edwards
boundary conditions (a cell tilted by ``xy``) this rectangle is still a periodic unit of the
lattice spanned by ``a = (lx, 0)`` and ``b = (xy, ly)``, so it is the natural Eulerian grid of a
continuum solver with the same boundary conditions.

Algorithm. Atoms are wrapped into the rectangle, copied to the lattice images that fall within
``r_cut`` of it, and binned on the grid's own cells (a cell list: the spatial index). An atom in
cell ``(a, b)`` is then at offset ``(a - i, b - j)`` cells from grid point ``(i, j)``, so for each
cell offset within reach of the cutoff the contributions of all atoms to all grid points are one
vectorised array operation; no Python loop runs over atoms. The cost is
``O(n_atoms * (r_cut / h)^2)`` for grid spacing ``h`` (see ``benchmarks/bench_md.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from gego.errors import ConfigError
from gego.md.lammps import Box

__all__ = [
    "Grid",
    "CoarseGrained",
    "grid_for_box",
    "gaussian_window",
    "wrap_into_rectangle",
    "periodic_images",
    "coarse_grain",
    "coarse_grain_brute_force",
    "DEFAULT_CUTOFF_FACTOR",
]

DEFAULT_CUTOFF_FACTOR = 3.0  # r_cut = 3 c when not given: the Gaussian has fallen to exp(-4.5) ~ 1 %

_FAR = 1e100  # padding coordinate: its squared distance exceeds any cutoff, its weight is 0


@dataclass(frozen=True)
class Grid:
    """Cell-centred grid over the rectangle ``[xlo, xlo + lx) x [ylo, ylo + ly)`` (length unit)."""

    nx: int
    ny: int
    xlo: float
    ylo: float
    lx: float
    ly: float

    @property
    def spacing(self) -> tuple[float, float]:
        return self.lx / self.nx, self.ly / self.ny

    @property
    def x(self) -> np.ndarray:
        """x of the grid columns, (nx,)."""
        return self.xlo + (np.arange(self.nx) + 0.5) * self.lx / self.nx

    @property
    def y(self) -> np.ndarray:
        """y of the grid rows, (ny,)."""
        return self.ylo + (np.arange(self.ny) + 0.5) * self.ly / self.ny

    def points(self) -> np.ndarray:
        """All grid points, (ny, nx, 2), ``[j, i] = (x_i, y_j)``."""
        gx, gy = np.meshgrid(self.x, self.y)
        return np.stack([gx, gy], axis=-1)


@dataclass(frozen=True)
class CoarseGrained:
    """Result of :func:`coarse_grain`.

    values : (k, ny, nx) Eq 36 averages of the k per-atom quantities
    weight_sum : (ny, nx) sum of the Eq 37 weights g_n at each grid point (1/length^(1/2) units)
    """

    values: np.ndarray
    weight_sum: np.ndarray


def grid_for_box(box: Box, n: int | tuple[int, int]) -> Grid:
    """The ``n x n`` (or ``(nx, ny)``) cell-centred grid spanning ``box`` in x and y."""
    nx, ny = (n, n) if np.isscalar(n) else n
    if int(nx) < 1 or int(ny) < 1:
        raise ConfigError(f"grid size must be a positive integer, got {n}")
    return Grid(int(nx), int(ny), box.origin[0], box.origin[1], box.lx, box.ly)


def gaussian_window(r: np.ndarray, length: float) -> np.ndarray:
    """Eq 37: g = 2 / sqrt(2 pi c) exp(-r^2 / (2 c^2)), for distances r and length c."""
    r = np.asarray(r, dtype=float)
    return 2.0 / math.sqrt(2.0 * math.pi * length) * np.exp(-(r**2) / (2.0 * length**2))  # Eq 37


def wrap_into_rectangle(xy: np.ndarray, box: Box) -> np.ndarray:
    """Map (n, 2) positions into ``[xlo, xlo + lx) x [ylo, ylo + ly)`` by lattice translations.

    A y-crossing moves a point by the whole edge vector b = (xy, ly) (Lees-Edwards), then x is
    wrapped by lx.
    """
    xlo, ylo = box.origin[0], box.origin[1]
    out = np.array(xy, dtype=float, copy=True)
    ky = np.floor((out[:, 1] - ylo) / box.ly)
    out[:, 1] -= ky * box.ly
    out[:, 0] -= ky * box.xy
    out[:, 0] = xlo + np.mod(out[:, 0] - xlo, box.lx)
    out[:, 1] = ylo + np.mod(out[:, 1] - ylo, box.ly)  # guards round-off at the upper edge
    # np.mod can return exactly lx for tiny negative arguments; fold it back
    out[out[:, 0] >= xlo + box.lx, 0] = xlo
    out[out[:, 1] >= ylo + box.ly, 1] = ylo
    return out


def periodic_images(xy: np.ndarray, box: Box, pad_x: float, pad_y: float) -> tuple[np.ndarray, np.ndarray]:
    """Points and their periodic images inside the padded rectangle.

    Returns ``(points (m, 2), source (m,))`` with every lattice image ``r + ka a + kb b`` of the
    wrapped points that lies in ``[xlo - pad_x, xhi + pad_x) x [ylo - pad_y, yhi + pad_y)``;
    ``source`` gives the index of the original point. The original points come first.
    """
    base = wrap_into_rectangle(xy, box)
    xlo, ylo = box.origin[0], box.origin[1]
    xhi, yhi = xlo + box.lx, ylo + box.ly
    lx, ly, tilt = box.lx, box.ly, box.xy
    n = base.shape[0]
    points = [base]
    sources = [np.arange(n)]
    kb_max = int(math.ceil(pad_y / ly))
    for kb in range(-kb_max, kb_max + 1):
        y = base[:, 1] + kb * ly
        in_y = (y >= ylo - pad_y) & (y < yhi + pad_y)
        if not in_y.any():
            continue
        shift = kb * tilt
        ka_lo = int(math.floor((-pad_x - shift) / lx)) - 1
        ka_hi = int(math.ceil((pad_x - shift) / lx)) + 1
        for ka in range(ka_lo, ka_hi + 1):
            if ka == 0 and kb == 0:
                continue
            x = base[:, 0] + ka * lx + shift
            keep = in_y & (x >= xlo - pad_x) & (x < xhi + pad_x)
            if keep.any():
                points.append(np.column_stack([x[keep], y[keep]]))
                sources.append(np.flatnonzero(keep))
    return np.concatenate(points), np.concatenate(sources)


def _check_length(length: float, cutoff: float | None) -> float:
    if not (np.isfinite(length) and length > 0):
        raise ConfigError(f"coarse-graining length c must be positive, got {length}")
    cutoff = DEFAULT_CUTOFF_FACTOR * length if cutoff is None else float(cutoff)
    if not (np.isfinite(cutoff) and cutoff > 0):
        raise ConfigError(f"coarse-graining cutoff r_cut must be positive, got {cutoff}")
    return cutoff


def coarse_grain(
    positions: np.ndarray,
    values: np.ndarray,
    box: Box,
    grid: Grid | int,
    length: float,
    cutoff: float | None = None,
) -> CoarseGrained:
    """Eq 36-37: Gaussian-window averages of per-atom ``values`` on the grid, periodic images included.

    Parameters
    ----------
    positions : (n, 2) or (n, 3) atom positions (only x, y are used), any image
    values : (n,) or (n, k) per-atom quantities (e.g. potential energy in eV, strain)
    box : the cell of this frame (its tilt xy sets the Lees-Edwards images)
    grid : a :class:`Grid` or the number of points per side
    length : c of Eq 37, in the positions' length unit (A for metal units)
    cutoff : r_cut; atoms farther than this from a grid point are left out (default 3 c)

    Returns
    -------
    CoarseGrained with ``values`` (k, ny, nx) and ``weight_sum`` (ny, nx); grid points with no
    atom within the cutoff get NaN.
    """
    cutoff = _check_length(length, cutoff)
    grid = grid if isinstance(grid, Grid) else grid_for_box(box, grid)
    xy = np.asarray(positions, dtype=float)[:, :2]
    vals = np.asarray(values, dtype=float)
    vals = vals[:, None] if vals.ndim == 1 else vals
    if vals.shape[0] != xy.shape[0]:
        raise ConfigError(f"coarse_grain: {vals.shape[0]} values for {xy.shape[0]} atoms")
    hx, hy = grid.spacing
    # cells farther than this many cells from a grid point hold no atom within the cutoff
    kx = int(math.ceil(cutoff / hx + 0.5))
    ky = int(math.ceil(cutoff / hy + 0.5))
    pad_x, pad_y = kx * hx, ky * hy
    points, source = periodic_images(xy, box, pad_x, pad_y)
    # bin every atom and image on the extended cell grid (cell list); u, v: offsets from cell centre
    ncx, ncy = grid.nx + 2 * kx, grid.ny + 2 * ky
    fx = (points[:, 0] - (grid.xlo - pad_x)) / hx
    fy = (points[:, 1] - (grid.ylo - pad_y)) / hy
    cx = np.clip(np.floor(fx).astype(np.int64), 0, ncx - 1)
    cy = np.clip(np.floor(fy).astype(np.int64), 0, ncy - 1)
    u = (fx - cx - 0.5) * hx
    v = (fy - cy - 0.5) * hy
    cell = cy * ncx + cx
    order = np.argsort(cell, kind="stable")
    cell_sorted = cell[order]
    counts = np.bincount(cell_sorted, minlength=ncx * ncy)
    depth = max(int(counts.max()), 1)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    slot = np.arange(order.size) - starts[cell_sorted]
    k = vals.shape[1]
    u_pad = np.full((ncy, ncx, depth), _FAR)
    v_pad = np.full((ncy, ncx, depth), _FAR)
    # a last column of ones makes the same matrix product give the weight sum of Eq 36
    val_pad = np.zeros((ncy, ncx, depth, k + 1))
    u_pad.reshape(-1, depth)[cell_sorted, slot] = u[order]
    v_pad.reshape(-1, depth)[cell_sorted, slot] = v[order]
    val_pad.reshape(-1, depth, k + 1)[cell_sorted, slot, :k] = vals[source[order]]
    val_pad.reshape(-1, depth, k + 1)[cell_sorted, slot, k] = 1.0

    sums = np.zeros((grid.ny, grid.nx, k + 1))
    inv_two_c2 = 1.0 / (2.0 * length**2)
    prefactor = 2.0 / math.sqrt(2.0 * math.pi * length)  # Eq 37
    cutoff2 = cutoff**2
    # exp(-r^2/2c^2) = exp(-dx^2/2c^2) exp(-dy^2/2c^2): tabulate the x factor of every atom for
    # every column offset once (the exponential dominates the cost), the y factor per row offset
    # (only the nx cell columns that reach the grid at that offset are needed)
    x_factor = []
    for di in range(-kx, kx + 1):
        factor = u_pad[:, kx + di : kx + di + grid.nx] + di * hx
        np.square(factor, out=factor)
        factor *= -inv_two_c2
        x_factor.append(np.exp(factor, out=factor))
    for dj in range(-ky, ky + 1):
        near_y = max(abs(dj) - 0.5, 0.0) * hy
        far_y = (abs(dj) + 0.5) * hy
        rows = slice(ky + dj, ky + dj + grid.ny)
        dy2 = (v_pad[rows] + dj * hy) ** 2  # (ny, ncx, depth)
        y_factor = np.exp(-dy2 * inv_two_c2)
        for di in range(-kx, kx + 1):
            near_x = max(abs(di) - 0.5, 0.0) * hx
            if near_x**2 + near_y**2 > cutoff2:
                continue  # no atom of these cells can be within r_cut
            far_x = (abs(di) + 0.5) * hx
            cols = slice(kx + di, kx + di + grid.nx)
            weights = x_factor[di + kx][rows] * y_factor[:, cols]  # Eq 37 without its prefactor
            if far_x**2 + far_y**2 > cutoff2:  # cells straddle the cutoff circle: keep r_n <= r_cut
                r2 = (u_pad[rows, cols] + di * hx) ** 2 + dy2[:, cols]
                weights[r2 > cutoff2] = 0.0
            sums += np.matmul(weights[:, :, None, :], val_pad[rows, cols])[:, :, 0, :]
    numerator, weight_sum = sums[..., :k], sums[..., k]
    weight_sum *= prefactor
    numerator *= prefactor
    with np.errstate(invalid="ignore", divide="ignore"):
        averages = np.where(weight_sum[..., None] > 0, numerator / weight_sum[..., None], np.nan)  # Eq 36
    return CoarseGrained(values=np.moveaxis(averages, -1, 0), weight_sum=weight_sum)


def coarse_grain_brute_force(
    positions: np.ndarray,
    values: np.ndarray,
    box: Box,
    grid: Grid | int,
    length: float,
    cutoff: float | None = None,
) -> CoarseGrained:
    """Reference implementation of Eq 36-37: every grid point, atom and lattice image, no index.

    O(n_grid * n_atoms * n_images); for tests on small cells only.
    """
    cutoff = _check_length(length, cutoff)
    grid = grid if isinstance(grid, Grid) else grid_for_box(box, grid)
    xy = np.asarray(positions, dtype=float)[:, :2]
    vals = np.asarray(values, dtype=float)
    vals = vals[:, None] if vals.ndim == 1 else vals
    # bring atoms into the parallelogram cell via fractional coordinates, independently of
    # wrap_into_rectangle, so that a finite set of images suffices
    h2 = np.array([[box.lx, box.xy], [0.0, box.ly]])
    frac = np.linalg.solve(h2, (xy - np.asarray(box.origin[:2])).T).T
    xy = np.asarray(box.origin[:2]) + (frac - np.floor(frac)) @ h2.T
    a = np.array([box.lx, 0.0])
    b = np.array([box.xy, box.ly])
    reach = int(math.ceil((cutoff + box.lx + box.ly + abs(box.xy)) / min(box.lx, box.ly))) + 1
    pts = grid.points().reshape(-1, 2)
    numerator = np.zeros((pts.shape[0], vals.shape[1]))
    weight_sum = np.zeros(pts.shape[0])
    for ka in range(-reach, reach + 1):
        for kb in range(-reach, reach + 1):
            image = xy + ka * a + kb * b
            r = np.linalg.norm(pts[:, None, :] - image[None, :, :], axis=-1)
            g = np.where(r <= cutoff, gaussian_window(r, length), 0.0)  # Eq 37, r_n <= r_cut
            weight_sum += g.sum(axis=1)
            numerator += g @ vals
    with np.errstate(invalid="ignore", divide="ignore"):
        averages = np.where(weight_sum[:, None] > 0, numerator / weight_sum[:, None], np.nan)  # Eq 36
    return CoarseGrained(
        values=np.moveaxis(averages.reshape(grid.ny, grid.nx, -1), -1, 0),
        weight_sum=weight_sum.reshape(grid.ny, grid.nx),
    )
