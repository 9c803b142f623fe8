"""Operators C (Eq 36-37), local strain / D2min (Falk & Langer 1998) and T (Eq 38)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gego.errors import ConfigError
from gego.md.coarse_grain import (
    coarse_grain,
    coarse_grain_brute_force,
    gaussian_window,
    grid_for_box,
    periodic_images,
    wrap_into_rectangle,
)
from gego.md.lammps import Box
from gego.md.local_strain import local_strain, local_strain_reference, neighbour_pairs
from gego.md.reference import unflip_tilts
from gego.md.transform import TRANSFORMS, chi_from_energy, chi_inf_from_energy, linear_chi, quadratic_chi


def box2d(lx, ly, xy=0.0, origin=(0.0, 0.0)):
    return Box((origin[0], origin[1], -0.5), (lx, ly, 1.0), (xy, 0.0, 0.0))


def random_atoms(rng, box, n):
    frac = rng.uniform(0, 1, (n, 2))
    return np.asarray(box.origin[:2]) + frac @ box.matrix()[:2, :2].T


# ------------------------------------------------------------------------------ C: Eq 36-37


def test_gaussian_window_is_eq37():
    c = 2.5
    r = np.array([0.0, 1.0, 3.0])
    expected = [2.0 / math.sqrt(2 * math.pi * c) * math.exp(-(x**2) / (2 * c**2)) for x in r]
    np.testing.assert_allclose(gaussian_window(r, c), expected, rtol=1e-15)


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    n=st.integers(1, 40),
    lx=st.floats(3.0, 12.0),
    ly=st.floats(3.0, 12.0),
    tilt=st.floats(-0.6, 0.6),
    length=st.floats(0.5, 4.0),
    cutoff_factor=st.floats(0.8, 4.0),
    nx=st.integers(1, 6),
    ny=st.integers(1, 6),
)
def test_coarse_grain_matches_brute_force_over_all_images(seed, n, lx, ly, tilt, length, cutoff_factor, nx, ny):
    rng = np.random.default_rng(seed)
    box = box2d(lx, ly, tilt * lx, origin=(rng.uniform(-5, 5), rng.uniform(-5, 5)))
    atoms = random_atoms(rng, box, n) + rng.integers(-2, 3, (n, 1)) * np.array([lx, 0.0])  # any image
    values = rng.normal(size=(n, 2))
    cutoff = cutoff_factor * length
    fast = coarse_grain(atoms, values, box, (nx, ny), length, cutoff)
    slow = coarse_grain_brute_force(atoms, values, box, (nx, ny), length, cutoff)
    np.testing.assert_allclose(fast.weight_sum, slow.weight_sum, rtol=1e-10, atol=1e-14)
    np.testing.assert_array_equal(np.isnan(fast.values), np.isnan(slow.values))
    np.testing.assert_allclose(fast.values, slow.values, rtol=1e-9, atol=1e-11)


def test_coarse_grain_of_a_constant_is_that_constant(rng):
    box = box2d(20.0, 16.0, 7.0)
    atoms = random_atoms(rng, box, 500)
    result = coarse_grain(atoms, np.full(500, -3.25), box, 8, length=2.0)
    np.testing.assert_allclose(result.values[0], -3.25, rtol=1e-14)


def test_coarse_grain_of_a_linear_field_in_a_dense_lattice():
    """On a fine square lattice the Gaussian average of x - <x> about a point is ~0 (symmetry)."""
    box = box2d(40.0, 40.0)
    g = (np.arange(400) + 0.5) * 0.1
    xx, yy = np.meshgrid(g, g)
    atoms = np.column_stack([xx.ravel(), yy.ravel()])
    result = coarse_grain(atoms, np.ones(atoms.shape[0]), box, 4, length=1.5)
    # density 100 per unit area: sum of g_n ~ density * integral of Eq 37 over r <= 3c
    integral = 2.0 / math.sqrt(2 * math.pi * 1.5) * 2 * math.pi * 1.5**2 * (1 - math.exp(-4.5))
    np.testing.assert_allclose(result.weight_sum, 100 * integral, rtol=1e-3)


def test_periodic_images_cover_the_padded_rectangle(rng):
    box = box2d(5.0, 4.0, 1.7)
    atoms = random_atoms(rng, box, 30)
    points, source = periodic_images(atoms, box, 3.0, 2.5)
    wrapped = wrap_into_rectangle(atoms, box)
    # every point is a lattice image of its source atom
    delta = points - wrapped[source]
    kb = np.round(delta[:, 1] / 4.0)
    ka = (delta[:, 0] - kb * 1.7) / 5.0
    np.testing.assert_allclose(ka, np.round(ka), atol=1e-9)
    # brute force: all images inside the padded rectangle are present
    count = 0
    for a in range(-4, 5):
        for b in range(-4, 5):
            image = wrapped + a * np.array([5.0, 0]) + b * np.array([1.7, 4.0])
            inside = (image[:, 0] >= -3.0) & (image[:, 0] < 8.0) & (image[:, 1] >= -2.5) & (image[:, 1] < 6.5)
            count += int(inside.sum())
    assert points.shape[0] == count


def test_grid_points_are_cell_centres():
    grid = grid_for_box(box2d(8.0, 4.0, 3.0, origin=(1.0, -2.0)), 4)
    np.testing.assert_allclose(grid.x, [2.0, 4.0, 6.0, 8.0])
    np.testing.assert_allclose(grid.y, [-1.5, -0.5, 0.5, 1.5])


def test_coarse_grain_errors_and_empty_points(rng):
    box = box2d(10.0, 10.0)
    with pytest.raises(ConfigError, match="length c must be positive"):
        coarse_grain(np.zeros((1, 2)), [1.0], box, 2, length=0.0)
    with pytest.raises(ConfigError, match="cutoff"):
        coarse_grain(np.zeros((1, 2)), [1.0], box, 2, length=1.0, cutoff=-1.0)
    with pytest.raises(ConfigError, match="values for"):
        coarse_grain(np.zeros((2, 2)), [1.0], box, 2, length=1.0)
    # one atom at the origin, tiny cutoff: only the grid point near it sees it
    result = coarse_grain(np.array([[2.4, 2.6]]), [5.0], box, 2, length=1.0, cutoff=1.0)
    assert result.values[0, 0, 0] == 5.0 and np.isnan(result.values[0, 1, 1])


# ------------------------------------------------------------------------------ local strain


@pytest.mark.parametrize("gamma", [0.0, 0.05, 0.37, 0.5, 1.3])
def test_affine_simple_shear_gives_the_applied_strain_and_zero_d2min(rng, gamma):
    ref_box = box2d(12.0, 10.0)
    cur_box = box2d(12.0, 10.0, gamma * 10.0)
    ref = random_atoms(rng, ref_box, 300)
    cur = ref @ np.array([[1.0, gamma], [0.0, 1.0]]).T
    result = local_strain(ref, cur, ref_box, cur_box, cutoff=1.5)
    ok = np.isfinite(result.shear_strain_eng)
    assert ok.mean() > 0.95
    np.testing.assert_allclose(result.shear_strain_eng[ok], gamma, atol=1e-12)
    np.testing.assert_allclose(result.d2min[ok], 0.0, atol=1e-11)  # round-off of sum |d|^2 ~ 10
    np.testing.assert_allclose(result.deformation[ok], np.broadcast_to([[1.0, gamma], [0.0, 1.0]], result.deformation[ok].shape), atol=1e-12)


def test_general_affine_map_in_3d(rng):
    ref_box = Box((0.0, 0.0, 0.0), (8.0, 7.0, 6.0))
    jac = np.array([[1.02, 0.3, 0.0], [0.01, 0.99, 0.0], [0.0, 0.0, 1.0]])
    # a cell deformed by jac is still a LAMMPS (upper-triangular) cell only if jac is; use shear + dilation
    jac = np.array([[1.02, 0.3, 0.0], [0.0, 0.97, 0.0], [0.0, 0.0, 1.01]])
    cur_box = Box((0.0, 0.0, 0.0), (8.0 * 1.02, 7.0 * 0.97, 6.0 * 1.01), (0.3 * 7.0, 0.0, 0.0))
    ref = rng.uniform(0, 1, (400, 3)) * [8.0, 7.0, 6.0]
    cur = ref @ jac.T
    result = local_strain(ref, cur, ref_box, cur_box, cutoff=1.8, dims=3)
    ok = np.isfinite(result.d2min)
    np.testing.assert_allclose(result.deformation[ok], np.broadcast_to(jac, result.deformation[ok].shape), atol=1e-11)
    # 2 E_xy = (J^T J)_xy
    np.testing.assert_allclose(result.shear_strain_eng[ok], (jac.T @ jac)[0, 1], atol=1e-11)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31), gamma=st.floats(-0.6, 0.6), noise=st.floats(0.0, 0.2), cutoff=st.floats(1.0, 2.5))
def test_local_strain_matches_independent_least_squares(seed, gamma, noise, cutoff):
    rng = np.random.default_rng(seed)
    ref_box = box2d(6.0, 5.0)
    cur_box = box2d(6.0, 5.0, gamma * 5.0)
    ref = random_atoms(rng, ref_box, 40)
    cur = ref @ np.array([[1.0, gamma], [0.0, 1.0]]).T + rng.normal(scale=noise, size=ref.shape)
    fast = local_strain(ref, cur, ref_box, cur_box, cutoff=cutoff)
    slow = local_strain_reference(ref, cur, ref_box, cur_box, cutoff=cutoff)
    np.testing.assert_array_equal(fast.n_neighbours, slow.n_neighbours)
    np.testing.assert_array_equal(np.isnan(fast.d2min), np.isnan(slow.d2min))
    np.testing.assert_allclose(fast.deformation, slow.deformation, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(fast.d2min, slow.d2min, rtol=1e-7, atol=1e-10)


def test_neighbour_pairs_list_each_bond_once_with_self_images():
    # a 2 x 2 cell with one atom and a cutoff that reaches its own images at distance 2
    box = box2d(2.0, 2.0)
    pairs = neighbour_pairs(np.array([[0.5, 0.5]]), box, cutoff=2.1)
    assert pairs.first.size == 2  # images (1, 0) and (0, 1); their negatives are the same bonds
    assert {tuple(m) for m in pairs.image.tolist()} == {(1, 0), (0, 1)}


def test_lees_edwards_unwrap_before_displacements(rng):
    """Wrapped positions + image flags must be unwrapped with the tilt (xu = x + ix lx + iy xy)."""
    ly, lx, gamma = 10.0, 12.0, 0.4
    ref_box = box2d(lx, ly)
    cur_box = box2d(lx, ly, gamma * ly)
    ref = random_atoms(rng, ref_box, 300)
    moved = ref @ np.array([[1.0, gamma], [0.0, 1.0]]).T + np.array([3.0, 6.5])  # shear + drift across y
    # wrap into the tilted cell the way LAMMPS does, recording image flags
    h = cur_box.matrix()[:2, :2]
    frac = np.linalg.solve(h, moved.T).T
    image = np.floor(frac)
    wrapped = (frac - image) @ h.T
    assert np.any(image[:, 1] != 0)
    right = wrapped + image @ h.T  # ix lx + iy xy, iy ly
    wrong = wrapped + image * np.array([lx, ly])  # forgets the tilt term iy xy
    good = local_strain(ref, right, ref_box, cur_box, cutoff=1.5)
    bad = local_strain(ref, wrong, ref_box, cur_box, cutoff=1.5)
    ok = np.isfinite(good.d2min)
    np.testing.assert_allclose(good.shear_strain_eng[ok], gamma, atol=1e-12)
    assert np.nanmax(bad.d2min) > 1.0  # atoms that crossed y would look torn apart


def test_unflip_tilts_restores_continuity():
    lx = 10.0
    true = np.linspace(0.0, 12.0, 25)  # tilt grows past lx / 2 and lx
    flipped = true - lx * np.round(true / lx)  # LAMMPS keeps |xy| <= lx / 2
    boxes = [box2d(lx, 10.0, xy) for xy in flipped]
    np.testing.assert_allclose(unflip_tilts(boxes), true, atol=1e-12)


# ------------------------------------------------------------------------------ T: Eq 38


def test_linear_transform_is_eq38_and_quadratic_reduces_to_it(rng):
    energy = rng.normal(-3.0, 0.05, (4, 4))
    np.testing.assert_allclose(linear_chi(energy, beta=2.0, e0=-3.2), 2.0 * (energy + 3.2))
    np.testing.assert_allclose(quadratic_chi(energy, 2.0, -3.2, curvature=0.0), linear_chi(energy, 2.0, -3.2))
    np.testing.assert_allclose(chi_from_energy(energy, "quadratic", beta=2.0, e0=-3.2, curvature=1.0), 2.0 * (energy + 3.2) + (energy + 3.2) ** 2)
    assert set(TRANSFORMS) >= {"linear", "quadratic"}
    with pytest.raises(ConfigError, match="unknown"):
        chi_from_energy(energy, "cubic", beta=1.0, e0=0.0)
    with pytest.raises(ConfigError, match="hypothesis 'linear'"):
        chi_from_energy(energy, "linear", beta=1.0)


def test_chi_inf_from_final_energy_field():
    final = np.array([[-3.3, -3.2], [-3.1, np.nan]])
    assert chi_inf_from_energy(final, beta=2.0, e0=-3.4) == pytest.approx(2.0 * (-3.1 + 3.4))
    assert chi_inf_from_energy(final, beta=2.0, e0=-3.4, quantile=0.0) == pytest.approx(2.0 * (-3.3 + 3.4))
    with pytest.raises(ConfigError, match="quantile"):
        chi_inf_from_energy(final, 1.0, 0.0, quantile=1.5)
