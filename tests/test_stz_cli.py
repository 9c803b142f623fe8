"""``gego simulate`` writes the documented NetCDF layout and reports bad input in one line."""

from __future__ import annotations

import numpy as np
import xarray as xr

from gego.cli import main


def test_simulate_writes_netcdf(tmp_path, capsys):
    out = tmp_path / "run.nc"
    code = main(["simulate", "--beta", "8.27674103", "--e0", "-3.36821766", "--c0", "0.55", "--s-y", "1.0",
                 "--l-chi", "41.8", "--eps0", "7.13", "--grid", "16", "--frames", "5", "--steps-per-frame", "4",
                 "--gamma-final", "0.05", "--out", str(out)])
    assert code == 0
    with xr.open_dataset(out) as ds:
        assert dict(ds.sizes) == {"frame": 6, "y": 16, "x": 16}
        for name in ("gamma", "strain_xy_eng", "chi", "stress_xy_gpa", "stress_xy_sheared_gpa", "temperature_k"):
            assert name in ds.variables
        assert np.isclose(ds.attrs["param_s_y_gpa"], 1.0) and ds.attrs["wall_time_s"] > 0
        from gego.datasets import load_cuzr

        e_final = load_cuzr()["energy"].values[-1]
        assert np.isclose(ds.attrs["param_chi_inf"], 8.27674103 * (e_final.max() + 3.36821766))
        assert np.allclose(ds["gamma"].values, np.linspace(0, 0.05, 6))
    assert "status=ok" in capsys.readouterr().out


def test_simulate_text_energy_and_bad_input(tmp_path, capsys):
    energy = np.full((8, 8), -3.36)
    energy[3] += 0.002
    path = tmp_path / "pe.txt"
    np.savetxt(path, energy)
    out = tmp_path / "r.nc"
    assert main(["simulate", "--beta", "8", "--e0", "-3.37", "--chi-inf", "0.13", "--energy", str(path),
                 "--grid", "8", "--frames", "2", "--steps-per-frame", "2", "--gamma-final", "0.01",
                 "--out", str(out)]) == 0
    assert out.is_file()
    assert main(["simulate", "--e0", "-3.30", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "e0_ev" in err and err.count("\n") == 1
    assert main(["simulate", "--energy", str(tmp_path / "missing.txt"), "--out", str(out)]) == 2


def test_cli_default_steps_match_solver_default():
    from gego.cli.simulate import DEFAULT_STEPS_PER_FRAME, DEFAULT_STIFF_STEP_LIMIT
    from gego.stz import SolverSettings

    assert DEFAULT_STEPS_PER_FRAME == SolverSettings().steps_per_frame
    assert DEFAULT_STIFF_STEP_LIMIT == SolverSettings().stiff_step_limit


def test_cli_stiff_step_limit_zero_means_fixed_steps(tmp_path):
    """--stiff-step-limit 0 runs every frame at --steps-per-frame (recorded in the file)."""
    import xarray as xr

    from gego.cli import main

    out = tmp_path / "run.nc"
    assert main(["simulate", "--frames", "4", "--gamma-final", "0.04", "--stiff-step-limit", "0",
                 "--out", str(out)]) == 0
    with xr.open_dataset(out) as ds:
        assert ds.attrs["setting_stiff_step_limit"] == 0
        assert ds["steps_per_frame_used"].values.tolist() == [0, 15, 15, 15, 15]
