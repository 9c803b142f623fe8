"""The objective (Eq 24, 39-41): terms, weights, snapshot matching, serialisation, errors."""

import json

import numpy as np
import pytest
import xarray as xr

from gego import grassmann
from gego.datasets import load_cuzr
from gego.errors import ConfigError, GegoError
from gego.objective import (
    AUTHORS_SNAPSHOT_RANKS,
    PAPER_SNAPSHOT_STRAINS,
    GrassmannTerm,
    Objective,
    StressCurveTerm,
    select_snapshots,
)

HALF_PI = np.pi / 2


@pytest.fixture(scope="module")
def cuzr():
    return load_cuzr()


def band_field(ny, nx, centre, width=2.0, amplitude=1.0, background=0.1, modulation=0.3):
    """A horizontal band with some structure along x (rank 2)."""
    y = np.arange(ny)[:, None]
    x = np.arange(nx)[None, :]
    profile = np.exp(-0.5 * ((y - centre) / width) ** 2)
    return background + amplitude * profile * (1 + modulation * np.cos(2 * np.pi * x / nx))


def synthetic(n_frames=11, ny=12, nx=10, centre=5.0, stress_scale=1.0):
    """A small dataset in the reference layout: gamma = 0.05 k, a band whose amplitude grows."""
    gamma = 0.05 * np.arange(n_frames)
    fields = np.stack([g * band_field(ny, nx, centre) for g in gamma])
    stress = stress_scale * np.tanh(10 * gamma)
    return {"gamma": gamma, "strain_xy_eng": fields, "stress_xy_gpa": stress}


def test_reference_against_itself_is_zero(cuzr):
    objective = Objective.paper(cuzr)
    value = objective.evaluate(cuzr)
    assert value.total == pytest.approx(0.0, abs=1e-12)
    assert set(value.components) == {"grassmann_strain_xy_eng", "curve_stress_xy_gpa"}
    assert value.weights == {"grassmann_strain_xy_eng": 0.25, "curve_stress_xy_gpa": 0.75}
    # the paper's 9 strains, all frames of the bundled data
    np.testing.assert_array_equal(value.details["grassmann_strain_xy_eng"]["strains"], PAPER_SNAPSHOT_STRAINS)


def test_plain_dict_model_equals_dataset_model(cuzr):
    objective = Objective.paper(cuzr)
    model = {k: np.asarray(cuzr[k]) for k in ("gamma", "strain_xy_eng", "stress_xy_gpa")}
    rng = np.random.default_rng(5)
    model["strain_xy_eng"] = model["strain_xy_eng"] + 1e-3 * rng.standard_normal(model["strain_xy_eng"].shape)
    as_dataset = xr.Dataset(
        {"strain_xy_eng": (("frame", "y", "x"), model["strain_xy_eng"]), "stress_xy_gpa": (("frame",), model["stress_xy_gpa"])},
        coords={"gamma": (("frame",), model["gamma"])},
    )
    assert objective.evaluate(model).total == pytest.approx(objective.evaluate(as_dataset).total, rel=1e-14)
    assert objective.evaluate(model).total > 0


def test_known_value_for_hand_made_model():
    reference = synthetic()
    model = synthetic(centre=8.0, stress_scale=1.2)
    strains = (0.1, 0.25, 0.5)
    objective = Objective(
        reference,
        [GrassmannTerm(strains=strains, rank=2), StressCurveTerm()],
        weights=(0.4, 0.6),
    )
    value = objective.evaluate(model)
    # Grassmann term by hand: scaling (Eq 5) makes every snapshot the same pair of subspaces,
    # span{1, band(y - 5)} vs span{1, band(y - 8)}: one shared direction and one angle
    ones = np.ones(12)
    y = np.arange(12)
    p5 = np.exp(-0.5 * ((y - 5.0) / 2) ** 2)
    p8 = np.exp(-0.5 * ((y - 8.0) / 2) ** 2)

    def unit_orth(v):
        v = v - ones * (ones @ v) / 12
        return v / np.linalg.norm(v)

    angle = np.arccos(abs(unit_orth(p5) @ unit_orth(p8)))
    assert value.components["grassmann_strain_xy_eng"] == pytest.approx(angle, rel=1e-10)
    # Eq 40 by hand: mean over the 11 frames of |tanh - 1.2 tanh|
    gamma = 0.05 * np.arange(11)
    expected_stress = np.mean(0.2 * np.tanh(10 * gamma))
    assert value.components["curve_stress_xy_gpa"] == pytest.approx(expected_stress, rel=1e-14)
    # Eq 24
    assert value.total == pytest.approx(0.4 * angle + 0.6 * expected_stress, rel=1e-10)
    assert value.to_dict() == {"objective": value.total, "components": value.components}


def test_weights_scale_linearly():
    reference, model = synthetic(), synthetic(centre=7.0, stress_scale=0.8)
    terms = [GrassmannTerm(strains=(0.2, 0.4)), StressCurveTerm()]
    a = Objective(reference, terms, (1.0, 0.0)).evaluate(model)
    b = Objective(reference, terms, (0.0, 1.0)).evaluate(model)
    c = Objective(reference, terms, (0.3, 2.0)).evaluate(model)
    assert c.total == pytest.approx(0.3 * a.total + 2.0 * b.total, rel=1e-12)


def test_snapshot_matching_nearest_and_interp():
    gamma = np.array([0.0, 0.1, 0.2, 0.4])
    frames = np.array([0.0, 1.0, 2.0, 4.0])
    np.testing.assert_array_equal(select_snapshots(gamma, frames, [0.1, 0.16, 0.31]), [1.0, 2.0, 4.0])
    np.testing.assert_allclose(select_snapshots(gamma, frames, [0.1, 0.15, 0.3], match="interp"), [1.0, 1.5, 3.0])
    # exact strains give the frame itself under either rule
    np.testing.assert_array_equal(select_snapshots(gamma, frames, [0.4], match="interp"), [4.0])
    with pytest.raises(GegoError, match="strain_tol"):
        select_snapshots(gamma, frames, [0.15], strain_tol=0.01)
    with pytest.raises(GegoError, match="outside"):
        select_snapshots(gamma, frames, [0.5])
    with pytest.raises(ConfigError, match="match"):
        select_snapshots(gamma, frames, [0.1], match="cubic")


def test_coarse_model_frames_need_interp():
    reference = synthetic()
    coarse = synthetic(n_frames=3)
    coarse["gamma"] = np.array([0.0, 0.25, 0.5])
    coarse["strain_xy_eng"] = np.stack([g * band_field(12, 10, 5.0) for g in coarse["gamma"]])
    nearest = GrassmannTerm(strains=(0.1, 0.5), rank=2).bind(reference)
    with pytest.raises(GegoError, match="no frame within strain_tol"):
        nearest(coarse)
    # linear interpolation between frames 0 and 0.25 gives 0.4 x the band: same subspace
    value, _ = GrassmannTerm(strains=(0.1, 0.5), rank=2, match="interp").bind(reference)(coarse)
    assert value == pytest.approx(0.0, abs=1e-7)
    # without a tolerance the nearest frame is used whatever its strain: 0.1 -> the all-zero
    # frame at gamma = 0 (Eq 8: sqrt(2) pi/2 from the rank-2 reference), 0.5 -> exact (0)
    value, details = GrassmannTerm(strains=(0.1, 0.5), rank=2, strain_tol=None).bind(reference)(coarse)
    np.testing.assert_allclose(details["distances"], [np.sqrt(2) * HALF_PI, 0.0], atol=1e-7)
    assert value == pytest.approx(np.sqrt(2) * HALF_PI / 2, abs=1e-7)


def test_model_on_different_frames_is_matched_by_strain():
    reference = synthetic()
    # the model has twice as many frames (gamma = 0.025 k): matching by strain finds the same fields
    fine = synthetic(n_frames=21)
    fine["gamma"] = 0.025 * np.arange(21)
    fine["strain_xy_eng"] = np.stack([g * band_field(12, 10, 5.0) for g in fine["gamma"]])
    fine["stress_xy_gpa"] = np.tanh(10 * fine["gamma"])
    objective = Objective(reference, [GrassmannTerm(strains=(0.1, 0.3, 0.5), rank=2), StressCurveTerm()], (0.5, 0.5))
    value = objective.evaluate(fine)
    assert value.components["grassmann_strain_xy_eng"] == pytest.approx(0.0, abs=1e-7)
    assert value.components["curve_stress_xy_gpa"] == pytest.approx(0.0, abs=1e-15)


def test_stress_term_interpolates_model_curve():
    reference = synthetic()
    coarse = {"gamma": np.array([0.0, 0.5]), "stress_xy_gpa": np.array([0.0, 1.0])}
    # a straight model line: d = mean |tanh(10 g) - 2 g| over the reference frames
    term = StressCurveTerm().bind(reference)
    value, _ = term(coarse)
    gamma = 0.05 * np.arange(11)
    assert value == pytest.approx(np.mean(np.abs(np.tanh(10 * gamma) - 2 * gamma)), rel=1e-14)


def test_stress_variants_window_frames_and_nonzero():
    reference = synthetic()
    model = dict(reference, stress_xy_gpa=reference["stress_xy_gpa"] + 0.1)
    gamma = reference["gamma"]
    plain, _ = StressCurveTerm().bind(reference)(model)
    assert plain == pytest.approx(0.1)
    strained, _ = StressCurveTerm(frames="strained").bind(reference)(model)
    assert strained == pytest.approx(0.1)
    windowed, _ = StressCurveTerm(window=(0.1, 0.2), window_weight=5.0).bind(reference)(model)
    inside = np.sum((gamma >= 0.1 - 1e-12) & (gamma <= 0.2 + 1e-12))
    assert inside == 3
    assert windowed == pytest.approx(0.1 * (11 - 3 + 5 * 3) / 11)
    # the authors' normalisation ignores zero differences
    model_zero_start = dict(model)
    model_zero_start["stress_xy_gpa"] = model["stress_xy_gpa"].copy()
    model_zero_start["stress_xy_gpa"][0] = reference["stress_xy_gpa"][0]
    nonzero, _ = StressCurveTerm(normalize="nonzero").bind(reference)(model_zero_start)
    mean, _ = StressCurveTerm().bind(reference)(model_zero_start)
    assert nonzero == pytest.approx(0.1) and mean == pytest.approx(0.1 * 10 / 11)


def test_fixed_per_snapshot_ranks_are_used(cuzr):
    objective = Objective.authors(cuzr)
    model = {k: np.asarray(cuzr[k]) for k in ("gamma", "strain_xy_eng", "stress_xy_gpa")}
    model["stress_xy_sheared_gpa"] = model["stress_xy_gpa"]
    value = objective.evaluate(model)
    details = value.details["grassmann_strain_xy_eng"]
    np.testing.assert_array_equal(details["reference_rank"], AUTHORS_SNAPSHOT_RANKS)
    np.testing.assert_array_equal(details["model_rank"], AUTHORS_SNAPSHOT_RANKS)
    assert value.total == pytest.approx(0.0, abs=1e-12)


def test_zero_field_snapshot_distance_is_documented():
    reference = synthetic()
    model = dict(reference, strain_xy_eng=reference["strain_xy_eng"].copy())
    # the gamma = 0 frame is all zero in both: rank 0 vs rank 0 -> distance 0
    term = GrassmannTerm(strains=(0.0,), rank=2).bind(reference)
    value, details = term(model)
    assert value == 0.0 and details["reference_rank"][0] == 0
    # a nonzero model field at gamma = 0 against the zero reference: Eq 8, sqrt(r) pi/2
    model["strain_xy_eng"][0] = band_field(12, 10, 5.0)
    value, _ = term(model)
    assert value == pytest.approx(np.sqrt(2) * HALF_PI)


def test_generic_fields_and_many_terms():
    reference = synthetic()
    reference["chi"] = reference["strain_xy_eng"] + 1.0
    model = synthetic(centre=7.0)
    model["chi"] = model["strain_xy_eng"] + 1.0
    terms = [
        GrassmannTerm(strains=(0.25, 0.5)),
        GrassmannTerm(field="chi", strains=(0.25,), distance="projection", basis="both"),
        GrassmannTerm(strains=(0.5,), distance="asimov", name="asimov_strain"),
        StressCurveTerm(),
    ]
    value = Objective(reference, terms, (1, 1, 1, 1)).evaluate(model)
    assert list(value.components) == ["grassmann_strain_xy_eng", "grassmann_chi", "asimov_strain", "curve_stress_xy_gpa"]
    assert all(v >= 0 for v in value.components.values())
    assert value.total == pytest.approx(sum(value.components.values()))
    direct = grassmann.snapshot_distance(
        reference["chi"][5], model["chi"][5], metric="projection", basis="both", rtol=1e-2
    )
    assert value.components["grassmann_chi"] == pytest.approx(direct, rel=1e-12)


def test_round_trip_through_json(cuzr):
    objective = Objective.authors(cuzr)
    data = json.loads(json.dumps(objective.to_dict()))
    rebuilt = Objective.from_dict(data, cuzr)
    assert rebuilt.terms == objective.terms and rebuilt.weights == objective.weights and rebuilt.name == "authors"
    paper = Objective.paper(cuzr, rtol=0.05, distance="procrustes")
    assert Objective.from_dict(paper.to_dict(), cuzr).terms == paper.terms


def test_reference_projected_once(cuzr, monkeypatch):
    objective = Objective.paper(cuzr)
    calls = []
    original = grassmann.project
    monkeypatch.setattr(grassmann, "project", lambda x, **kw: calls.append(np.shape(x)) or original(x, **kw))
    objective.evaluate(cuzr)
    objective.evaluate(cuzr)
    # only the model's 9 snapshots are projected per evaluation
    assert calls == [(9, 32, 32), (9, 32, 32)]


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: GrassmannTerm(strains=()), "strains"),
        (lambda: GrassmannTerm(distance="euclid"), "distance"),
        (lambda: GrassmannTerm(basis="diag"), "basis"),
        (lambda: GrassmannTerm(rank=(1, 2)), "9 snapshot strains"),
        (lambda: GrassmannTerm(rtol=2.0), "rtol"),
        (lambda: GrassmannTerm(match="cubic"), "match"),
        (lambda: StressCurveTerm(frames="some"), "frames"),
        (lambda: StressCurveTerm(window=(0.2, 0.1)), "window"),
        (lambda: StressCurveTerm(normalize="max"), "normalize"),
    ],
)
def test_bad_term_configuration(make, message):
    with pytest.raises(ConfigError, match=message):
        make()


def test_bad_objective_configuration():
    reference = synthetic()
    with pytest.raises(ConfigError, match="weights"):
        Objective(reference, [StressCurveTerm()], (1.0, 2.0))
    with pytest.raises(ConfigError, match="not all zero"):
        Objective(reference, [StressCurveTerm()], (0.0,))
    with pytest.raises(ConfigError, match="unique"):
        Objective(reference, [StressCurveTerm(), StressCurveTerm()], (1.0, 1.0))
    with pytest.raises(ConfigError, match="unknown option 'rtoll'"):
        Objective.from_dict({"terms": [{"kind": "grassmann", "rtoll": 0.1}], "weights": [1]}, reference)
    with pytest.raises(ConfigError, match="kind"):
        Objective.from_dict({"terms": [{"kind": "euclid"}], "weights": [1]}, reference)


def test_bad_models_give_one_line_errors():
    reference = synthetic()
    objective = Objective(reference, [GrassmannTerm(strains=(0.2, 0.5)), StressCurveTerm()], (1, 1))
    short = synthetic(n_frames=5)  # strains up to 0.2 only
    with pytest.raises(GegoError, match=r"snapshot strain 0.5 is outside"):
        objective.evaluate(short)
    missing = {k: v for k, v in synthetic().items() if k != "stress_xy_gpa"}
    with pytest.raises(GegoError, match="missing variable 'stress_xy_gpa'"):
        objective.evaluate(missing)
    wrong_grid = synthetic(ny=8)
    with pytest.raises(GegoError, match="grid"):
        objective.evaluate(wrong_grid)
    diverged = synthetic()
    diverged["strain_xy_eng"][10, 0, 0] = np.nan
    with pytest.raises(GegoError, match="NaN"):
        objective.evaluate(diverged)
    with pytest.raises(GegoError) as info:
        objective.evaluate(short)
    assert "\n" not in str(info.value)  # one line, as the CLI prints it
