"""Search box validation, unit-cube maps and the initial design (Alg 1 step 2)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import Bounds

from gego.errors import ConfigError
from gego.optimize.design import from_unit, initial_design, make_box, to_unit


@pytest.mark.parametrize(
    ("bounds", "names", "message"),
    [
        ([(0, 1), (2, 1)], ["a", "b"], "parameter 'b': expected lower < upper"),
        ([(0, np.inf)], None, "parameter 'x0': expected finite"),
        ([0, 1, 2], None, r"expected shape \(d, 2\)"),
        ([(0, 1)], ["a", "b"], "expected 1 parameter names"),
        ([(0, 1), (0, 1)], ["a", "a"], "must be unique"),
        ("abc", None, "bounds"),
    ],
)
def test_bad_bounds_give_one_line_errors(bounds, names, message):
    with pytest.raises(ConfigError, match=message):
        make_box(bounds, names)


def test_scipy_bounds_are_accepted():
    box = make_box(Bounds([0.0, -1.0], [1.0, 1.0]), ["tau", "c0"])
    assert box.bounds == [(0.0, 1.0), (-1.0, 1.0)] and box.names == ("tau", "c0")


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.tuples(st.floats(-1e6, 1e6), st.floats(1e-3, 1e6)), min_size=1, max_size=6),
    st.integers(0, 2**31),
)
def test_unit_maps_round_trip_and_stay_in_the_box(lower_width, seed):
    bounds = [(lo, lo + w) for lo, w in lower_width]
    box = make_box(bounds)
    u = np.random.default_rng(seed).random((20, box.dim))
    x = from_unit(u, box)
    assert np.all(x >= box.lower) and np.all(x <= box.upper)
    # Round-off of x is ~eps * |x|; in unit coordinates that is eps * |x| / width.
    tolerance = 4 * np.finfo(float).eps * np.maximum(np.abs(box.lower), np.abs(box.upper)) / (box.upper - box.lower)
    assert np.all(np.abs(to_unit(x, box) - u) <= tolerance + 1e-15)
    np.testing.assert_array_equal(from_unit([np.zeros(box.dim), np.ones(box.dim)], box), [box.lower, box.upper])


@pytest.mark.parametrize("n_points", [1, 7, 64])
def test_latin_hypercube_has_one_point_per_stratum_in_every_coordinate(n_points):
    design = initial_design(n_points, 5, method="lhs", seed=3)
    assert design.shape == (n_points, 5)
    for column in design.T:
        np.testing.assert_array_equal(np.sort(np.floor(column * n_points)), np.arange(n_points))


def test_sobol_design_is_in_the_cube_and_well_spread():
    design = initial_design(64, 3, method="sobol", seed=3)
    assert design.shape == (64, 3) and np.all((design >= 0) & (design < 1))
    # A scrambled Sobol net in base 2: each half of every coordinate holds exactly half the points.
    for column in design.T:
        assert np.sum(column < 0.5) == 32
    # Odd sizes work too (no warning escapes, still a valid design).
    assert initial_design(10, 2, method="sobol", seed=1).shape == (10, 2)


def test_design_is_reproducible_from_its_seed():
    np.testing.assert_array_equal(initial_design(9, 4, seed=[5, 0]), initial_design(9, 4, seed=[5, 0]))
    assert not np.array_equal(initial_design(9, 4, seed=5), initial_design(9, 4, seed=6))


def test_bad_design_requests():
    with pytest.raises(ConfigError, match="design: expected one of"):
        initial_design(5, 2, method="grid", seed=0)
    with pytest.raises(ConfigError, match="n_init"):
        initial_design(0, 2, seed=0)
