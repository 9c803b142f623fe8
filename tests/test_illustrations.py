"""The Fig 3 argument (Sec 4): Grassmann ranks the shifted band closer, Euclidean the homogeneous field."""

import numpy as np
import pytest

from gego import grassmann
from gego.cli import main
from gego.illustrations import fig3_distances, fig3_fields, plot_fig3


def test_fields_are_what_fig3_describes():
    f = fig3_fields()
    assert f.band.shape == f.shifted.shape == f.homogeneous.shape == (32, 32)
    # the homogeneous field is constant with the band's mean; the shifted band is the same band moved
    assert np.ptp(f.homogeneous) == 0 and f.homogeneous[0, 0] == pytest.approx(f.band.mean())
    np.testing.assert_allclose(f.shifted[10:], f.band[:-10], atol=1e-12)
    assert np.argmax(f.band[:, 0]) == 12 and np.argmax(f.shifted[:, 0]) == 22


def test_grassmann_ranks_shifted_band_closer_euclidean_the_opposite():
    d = fig3_distances()
    assert d["grassmann"]["shifted"] < d["grassmann"]["homogeneous"]
    assert d["euclidean"]["shifted"] > d["euclidean"]["homogeneous"]
    # the homogeneous field lacks the band direction altogether: Eq 8's pi/2
    assert d["grassmann"]["homogeneous"] == pytest.approx(np.pi / 2, abs=1e-12)


@pytest.mark.parametrize("shift", [4.0, 6.0, 10.0, -8.0])
@pytest.mark.parametrize("modulation", [0.2, 0.5])
def test_ranking_holds_across_shifts_and_modulations(shift, modulation):
    d = fig3_distances(fig3_fields(shift=shift, modulation=modulation))
    assert d["grassmann"]["shifted"] < d["grassmann"]["homogeneous"]
    assert d["euclidean"]["shifted"] > d["euclidean"]["homogeneous"]


def test_ranking_holds_under_small_noise():
    rng = np.random.default_rng(7)
    f = fig3_fields()
    for _ in range(5):
        noisy = type(f)(*(a + 1e-3 * rng.standard_normal(a.shape) for a in (f.band, f.shifted, f.homogeneous)))
        d = fig3_distances(noisy)
        assert d["grassmann"]["shifted"] < d["grassmann"]["homogeneous"]


def test_uniform_band_does_not_support_the_argument():
    # documented limitation: a band constant along x is rank 1 and its column space is just its
    # y-profile; the constant profile is then closer to it than the shifted profile
    f = fig3_fields(modulation=0.0)
    assert grassmann.project(f.band).rank == 1
    d = fig3_distances(f)
    assert d["grassmann"]["shifted"] > d["grassmann"]["homogeneous"]
    # closed form for rank 1: angle between the profile and the constant vector
    profile = f.band[:, 0]
    expected = np.arccos(profile.sum() / (np.sqrt(profile.size) * np.linalg.norm(profile)))
    assert d["grassmann"]["homogeneous"] == pytest.approx(expected, abs=1e-12)


def test_plot_fig3_writes_png(tmp_path):
    path = plot_fig3(tmp_path / "sub" / "fig3.png", dpi=40)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_figure(tmp_path, capsys):
    out = tmp_path / "fig3.png"
    assert main(["figure", "fig3", "--out", str(out), "--dpi", "40"]) == 0
    assert out.stat().st_size > 0
    printed = capsys.readouterr().out
    assert "grassmann" in printed and "euclidean" in printed
    assert main(["figure", "fig3", "--out", str(tmp_path / "fig3.txt")]) == 2
    assert "unsupported figure format" in capsys.readouterr().err
