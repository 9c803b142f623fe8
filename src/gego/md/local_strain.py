"""Local strain from atom positions: best-fit affine deformation and D2min (Falk & Langer 1998).

For atom i with neighbours j (within ``cutoff`` in the reference configuration, periodic images
included), with reference bond vectors ``d0_ij`` and current bond vectors ``d_ij``, the best-fit
local deformation gradient minimises the non-affine residual

    D2min_i = min_J sum_j |d_ij - J d0_ij|^2,

solved by ``J = X Y^-1`` with ``X = sum_j d_ij d0_ij^T`` and ``Y = sum_j d0_ij d0_ij^T``
(Falk & Langer, Phys. Rev. E 57, 7192 (1998), Eq 2.11-2.12 there). The engineering shear strain
compared with the continuum model (the MD counterpart of ``2 E_xy``) is the xy entry of twice
the Green-Lagrange strain, ``2 E_xy = (J^T J)_xy``: for simple shear ``J = [[1, g], [0, 1]]``
it is exactly ``g``.

Positions must be unwrapped (continuous in time) - see
:meth:`gego.md.lammps.DumpFrame.unwrapped_positions`, which under Lees-Edwards adds
``ix lx + iy xy``. A neighbour that is the periodic image ``m`` of atom j has bond vector
``r_j + H m - r_i`` with the cell matrix H of the *same* frame, so a cell that tilts with the
flow carries its images along.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from gego.errors import ConfigError
from gego.md.lammps import Box

__all__ = ["NeighbourPairs", "LocalStrain", "neighbour_pairs", "local_strain", "local_strain_reference"]


@dataclass(frozen=True)
class NeighbourPairs:
    """Neighbour pairs of the reference configuration, each bond listed once.

    first, second : (p,) atom indices
    image : (p, dims) integer lattice image m so that the bond is ``r[second] + H m - r[first]``
    """

    first: np.ndarray
    second: np.ndarray
    image: np.ndarray


@dataclass(frozen=True)
class LocalStrain:
    """Per-atom result of :func:`local_strain`.

    deformation : (n, dims, dims) best-fit deformation gradient J
    d2min : (n,) non-affine residual, length unit squared (A^2)
    shear_strain_eng : (n,) engineering shear strain 2 E_xy = (J^T J)_xy
    n_neighbours : (n,) number of neighbours in the fit; atoms with fewer than ``dims``
        non-collinear neighbours get NaN
    """

    deformation: np.ndarray
    d2min: np.ndarray
    shear_strain_eng: np.ndarray
    n_neighbours: np.ndarray


def _cell(box: Box, dims: int) -> np.ndarray:
    return box.matrix()[:dims, :dims]


def _bonds(positions: np.ndarray, first: np.ndarray, second: np.ndarray, image: np.ndarray, cell: np.ndarray) -> np.ndarray:
    """Bond vectors r[second] + H m - r[first], (p, dims); the lattice term only where m != 0."""
    bonds = positions[second] - positions[first]
    crossing = np.flatnonzero(np.any(image != 0, axis=1))
    if crossing.size:
        # (few, dims) @ (dims, dims) written out: numpy's matmul is slow for tall thin arrays
        shift = np.zeros((crossing.size, cell.shape[0]))
        for k in range(cell.shape[1]):
            shift += image[crossing, k, None].astype(float) * cell[:, k]
        bonds[crossing] += shift
    return bonds


def neighbour_pairs(reference_positions: np.ndarray, box: Box, cutoff: float, dims: int = 2) -> NeighbourPairs:
    """All pairs closer than ``cutoff`` in the reference configuration, periodic images included.

    Parameters
    ----------
    reference_positions : (n, >= dims) positions, any image (unwrapped is fine)
    box : the reference cell (periodic in every one of the first ``dims`` directions)
    cutoff : neighbour distance, length unit (e.g. 2.5 sigma, or about 4 A for CuZr)
    dims : 2 (x, y; a 2-D film) or 3
    """
    if dims not in (2, 3):
        raise ConfigError(f"dims must be 2 or 3, got {dims}")
    if not (np.isfinite(cutoff) and cutoff > 0):
        raise ConfigError(f"neighbour cutoff must be positive, got {cutoff}")
    cell = _cell(box, dims)
    origin = np.asarray(box.origin[:dims])
    pos = np.asarray(reference_positions, dtype=float)[:, :dims]
    frac = np.linalg.solve(cell, (pos - origin).T).T
    wrap = np.floor(frac)
    frac -= wrap
    wrapped = origin + frac @ cell.T
    # an image within `cutoff` of the cell lies within cutoff / width of [0, 1) in every fractional
    # direction, width = distance between opposite faces = 1 / |row k of H^-1|
    widths = 1.0 / np.linalg.norm(np.linalg.inv(cell), axis=1)
    pad = cutoff / widths
    reach = [int(math.ceil(p)) for p in pad]
    points, sources, images = [wrapped], [np.arange(pos.shape[0])], [np.zeros((pos.shape[0], dims), dtype=np.int64)]
    for m in itertools.product(*[range(-r, r + 1) for r in reach]):
        if not any(m):
            continue
        shifted = frac + np.asarray(m)
        keep = np.all((shifted >= -pad) & (shifted < 1.0 + pad), axis=1)
        if keep.any():
            points.append(wrapped[keep] + cell @ np.asarray(m, dtype=float))
            sources.append(np.flatnonzero(keep))
            images.append(np.tile(np.asarray(m, dtype=np.int64), (int(keep.sum()), 1)))
    all_points = np.concatenate(points)
    all_sources = np.concatenate(sources)
    all_images = np.concatenate(images)
    n = pos.shape[0]
    # unordered pairs a < b over atoms (indices < n) and images (indices >= n)
    found = cKDTree(all_points).query_pairs(cutoff, output_type="ndarray")
    a, b = found[:, 0].astype(np.int64), found[:, 1].astype(np.int64)
    real_real = b < n
    # atom-image pair (a; j, k) and (j; a, -k) are the same bond: keep the orientation with a < j,
    # or for an atom and its own image (a = j) the one with k lexicographically positive
    ai, bi = a[(a < n) & ~real_real], b[(a < n) & ~real_real]
    src, k = all_sources[bi], all_images[bi]
    base = 2 * int(np.abs(k).max(initial=0)) + 1
    lex = k @ (base ** np.arange(dims - 1, -1, -1))
    keep = (ai < src) | ((ai == src) & (lex > 0))
    first = np.concatenate([a[real_real], ai[keep]])
    second = np.concatenate([b[real_real], src[keep]])
    lattice = np.concatenate([np.zeros((int(real_real.sum()), dims), dtype=np.int64), k[keep]])
    # bond in wrapped coordinates: wrapped_j + H k - wrapped_i, and wrapped = r - H wrap, so the
    # image relative to the given (unwrapped) positions is m = k - wrap_j + wrap_i
    wrap = wrap.astype(np.int64)
    image = lattice - wrap[second] + wrap[first]
    return NeighbourPairs(first=first, second=second, image=image)


def local_strain(
    reference_positions: np.ndarray,
    current_positions: np.ndarray,
    reference_box: Box,
    current_box: Box,
    cutoff: float | None = None,
    dims: int = 2,
    pairs: NeighbourPairs | None = None,
) -> LocalStrain:
    """Per-atom best-fit deformation J, D2min and engineering shear strain (Falk & Langer 1998).

    Parameters
    ----------
    reference_positions, current_positions : (n, >= dims) unwrapped positions of the same atoms
        in the same order (sorted by id), length unit of the run
    reference_box, current_box : the cells of the two frames (their tilts differ under shear)
    cutoff : neighbour distance in the reference frame; needed unless ``pairs`` is given
    dims : 2 or 3
    pairs : neighbour pairs from :func:`neighbour_pairs` (reuse them for every frame)
    """
    ref = np.asarray(reference_positions, dtype=float)[:, :dims]
    cur = np.asarray(current_positions, dtype=float)[:, :dims]
    if ref.shape != cur.shape:
        raise ConfigError(f"local_strain: reference has {ref.shape[0]} atoms, current frame {cur.shape[0]}")
    if pairs is None:
        if cutoff is None:
            raise ConfigError("local_strain: give a neighbour cutoff or precomputed pairs")
        pairs = neighbour_pairs(ref, reference_box, cutoff, dims)
    n = ref.shape[0]
    i, j = pairs.first, pairs.second
    bond_ref = _bonds(ref, i, j, pairs.image, _cell(reference_box, dims))
    bond_cur = _bonds(cur, i, j, pairs.image, _cell(current_box, dims))
    # X = sum_j d d0^T, Y = sum_j d0 d0^T (Falk & Langer 1998), summed per atom with bincount;
    # a bond counts for both of its atoms (reversing it flips d and d0, not the products)
    def per_atom(weights: np.ndarray) -> np.ndarray:
        return np.bincount(i, weights=weights, minlength=n) + np.bincount(j, weights=weights, minlength=n)

    x_mat = np.empty((n, dims, dims))
    y_mat = np.empty((n, dims, dims))
    for a in range(dims):
        for b in range(dims):
            x_mat[:, a, b] = per_atom(bond_cur[:, a] * bond_ref[:, b])
            if b >= a:
                y_mat[:, a, b] = y_mat[:, b, a] = per_atom(bond_ref[:, a] * bond_ref[:, b])
    n_neighbours = np.bincount(i, minlength=n) + np.bincount(j, minlength=n)
    # J = X Y^-1; atoms whose neighbours do not span the space get NaN
    det = np.linalg.det(y_mat)
    scale = np.einsum("nii->n", y_mat) ** dims
    ok = (n_neighbours >= dims) & (np.abs(det) > 1e-10 * np.maximum(scale, 1e-300))
    deformation = np.full((n, dims, dims), np.nan)
    if ok.any():
        # J Y = X  <=>  Y J^T = X^T (Y is symmetric)
        deformation[ok] = np.swapaxes(np.linalg.solve(y_mat[ok], np.swapaxes(x_mat[ok], 1, 2)), 1, 2)
    # D2min = sum_j |d - J d0|^2 (Falk & Langer 1998). With J = X Y^-1 this equals
    # sum_j |d|^2 - tr(J X^T): per-atom sums only, no second pass over the bonds. The difference
    # is exact up to round-off of sum_j |d|^2 (relative 1e-16); clip that round-off at 0.
    squared_lengths = per_atom(np.einsum("pa,pa->p", bond_cur, bond_cur))
    d2min = np.maximum(squared_lengths - np.einsum("nab,nab->n", deformation, x_mat), 0.0)
    d2min[~ok] = np.nan
    # 2 E_xy = (J^T J)_xy, Green-Lagrange strain E = (J^T J - I) / 2
    shear = np.einsum("na,na->n", deformation[:, :, 0], deformation[:, :, 1])
    return LocalStrain(deformation=deformation, d2min=d2min, shear_strain_eng=shear, n_neighbours=n_neighbours)


def local_strain_reference(
    reference_positions: np.ndarray,
    current_positions: np.ndarray,
    reference_box: Box,
    current_box: Box,
    cutoff: float,
    dims: int = 2,
) -> LocalStrain:
    """Slow, independent implementation of :func:`local_strain` for tests (small systems only).

    Neighbours are found by brute force over every atom and every lattice image in a range of
    cells; each atom's fit is an ordinary least-squares problem solved with ``numpy.linalg.lstsq``.
    """
    ref = np.asarray(reference_positions, dtype=float)[:, :dims]
    cur = np.asarray(current_positions, dtype=float)[:, :dims]
    h_ref, h_cur = _cell(reference_box, dims), _cell(current_box, dims)
    n = ref.shape[0]
    span = np.ptp(ref, axis=0).max() + cutoff
    reach = int(math.ceil(span / min(np.abs(np.diag(h_ref))))) + 1
    images = np.array(list(itertools.product(range(-reach, reach + 1), repeat=dims)), dtype=float)
    deformation = np.full((n, dims, dims), np.nan)
    d2min = np.full(n, np.nan)
    counts = np.zeros(n, dtype=np.int64)
    for a in range(n):
        d0 = ref[None, :, :] + (images @ h_ref.T)[:, None, :] - ref[a]
        d1 = cur[None, :, :] + (images @ h_cur.T)[:, None, :] - cur[a]
        d0, d1 = d0.reshape(-1, dims), d1.reshape(-1, dims)
        r = np.linalg.norm(d0, axis=1)
        near = (r <= cutoff) & (r > 0)
        counts[a] = int(near.sum())
        if counts[a] < dims:
            continue
        # minimise sum |d1 - J d0|^2 : rows d0^T J^T = d1^T
        jt, *_ = np.linalg.lstsq(d0[near], d1[near], rcond=None)
        deformation[a] = jt.T
        d2min[a] = float(np.sum((d1[near] - d0[near] @ jt) ** 2))
    shear = np.einsum("na,na->n", deformation[:, :, 0], deformation[:, :, 1])
    return LocalStrain(deformation=deformation, d2min=d2min, shear_strain_eng=shear, n_neighbours=counts)
