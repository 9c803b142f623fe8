"""The workflow commands end to end: calibrate, validate, evaluate, report (tiny grid and budgets)."""

import json

import numpy as np
import pytest

from gego.cli import main

TINY = ["--grid", "8", "--steps-per-frame", "1", "--set", "solver.n_frames=50"]


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    """One tiny calibration shared by the report tests: 8 runs, then extended to 10 (resume)."""
    folder = tmp_path_factory.mktemp("cal")
    study = folder / "cal.db"
    argv = ["calibrate", *TINY, "--budget", 8, "--n-init", 6, "--workers", 1, "--study", study, "--quiet"]
    assert main([str(a) for a in argv + ["--json", folder / "a.json"]]) == 0
    assert main([str(a) for a in argv[:-1] + ["--budget", 10, "--json", folder / "b.json"]]) == 0
    return folder, study


@pytest.mark.parametrize("command", ["calibrate", "validate", "evaluate", "report"])
def test_help_teaches(command, capsys):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    assert "examples:" in text
    if command != "report":
        assert "c0 [1], s_y [GPa], beta [1/eV], E0 [eV]" in text
        assert "--json" in text and "--set" in text


def test_calibrate_summary_and_resume(calibrated):
    folder, study = calibrated
    first = json.loads((folder / "a.json").read_text())
    second = json.loads((folder / "b.json").read_text())
    for key in ("best", "objective", "components", "n_runs", "wall_time_s", "seeds", "spread", "paper_optimum", "config"):
        assert key in second, key
    assert set(second["best"]) == {"c0", "s_y", "beta", "E0"}
    assert first["n_runs"] == 8 and second["n_runs"] == 10  # the second call resumed and extended
    assert second["objective"] <= first["objective"]
    assert set(second["components"]) == {"grassmann_strain_xy_eng", "curve_stress_xy_gpa"}
    assert second["paper_optimum"]["objective"] > 0
    # the resumed study kept the first 8 runs unchanged
    from gego.optimize import load_study

    data = load_study(study)
    assert data.objective.size == 10
    assert data.config["workflow_config"]["solver"]["n"] == 8


def test_calibrate_prints_best_parameters(tmp_path, capsys):
    code, out, err = run(["calibrate", *TINY, "--budget", 6, "--n-init", 6, "--workers", 1, "--study",
                          tmp_path / "s.db", "--fix", "beta=8.27674103", "--fix", "E0=-3.36821766"], capsys)
    assert code == 0
    assert "c0      =" in out and "s_y     =" in out and "beta" not in out.split("objective")[0]
    assert "objective" in out and "d_strain (Eq 39)" in out and "continuum runs: 6" in out
    assert "seed 0" in err  # progress bar on stderr


def test_interrupted_calibration_resumes(tmp_path, capsys, monkeypatch):
    from gego.workflows.problem import CalibrationProblem

    original = CalibrationProblem.batch
    calls = {"n": 0}

    def interrupt_on_third_batch(self, X):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return original(self, X)

    monkeypatch.setattr(CalibrationProblem, "batch", interrupt_on_third_batch)
    argv = ["calibrate", *TINY, "--budget", 9, "--n-init", 5, "--batch-size", 2, "--workers", 1,
            "--study", tmp_path / "s.db", "--quiet", "--json", tmp_path / "s.json"]
    code, out, err = run(argv, capsys)
    assert code == 130
    assert "run the same command again to resume" in err
    from gego.optimize import load_study

    kept = load_study(tmp_path / "s.db")
    done = int(np.sum(kept.status == "complete") + np.sum(kept.status == "failed"))
    assert done == 7  # the design (5) and the first EGO batch (2) were committed
    monkeypatch.setattr(CalibrationProblem, "batch", original)
    code, out, err = run(argv, capsys)
    assert code == 0
    assert json.loads((tmp_path / "s.json").read_text())["n_runs"] == 9
    again = load_study(tmp_path / "s.db")
    np.testing.assert_array_equal(again.x[:7], kept.x[:7])


def test_validate_repeats_in_parallel(tmp_path, capsys):
    code, out, err = run(["validate", *TINY, "--budget", 6, "--n-init", 6, "--repeats", 2, "--workers", 2,
                          "--study", tmp_path / "v.db", "--json", tmp_path / "v.json", "--quiet"], capsys)
    assert code == 0
    summary = json.loads((tmp_path / "v.json").read_text())
    assert summary["seeds"] == [0, 1] and summary["n_runs"] == 12
    assert (tmp_path / "v-seed0.db").is_file() and (tmp_path / "v-seed1.db").is_file()
    assert (tmp_path / "v.reference.nc").is_file()
    assert summary["objective_at_target"] == pytest.approx(0.0, abs=1e-12)
    assert set(summary["errors"]) == {"c0", "s_y", "beta", "E0"}
    assert "median error" in out


def test_evaluate_scores_the_papers_optimum(tmp_path, capsys):
    code, out, err = run(["evaluate", *TINY, "--preset", "paper-optimum", "--json", tmp_path / "e.json"], capsys)
    assert code == 0
    result = json.loads((tmp_path / "e.json").read_text())
    assert result["params"]["c0"] == 0.164 and result["params"]["E0"] == -3.369
    assert result["objective"] == pytest.approx(0.25 * result["components"]["grassmann_strain_xy_eng"]
                                                + 0.75 * result["components"]["curve_stress_xy_gpa"])  # Eq 41
    assert result["n_runs"] == 1
    code, out2, _ = run(["evaluate", *TINY, "--param", "c0=0.164", "--param", "s_y=0.906", "--param", "beta=6.882",
                         "--param", "E0=-3.369"], capsys)
    assert code == 0 and out2.splitlines()[-2] == out.splitlines()[-2]  # same objective line


def test_report_writes_figures_csv_and_html(calibrated, tmp_path, capsys):
    folder, study = calibrated
    code, out, err = run(["report", study, "--out", tmp_path / "r", "--quiet", "--json", tmp_path / "r.json"], capsys)
    assert code == 0
    names = {p.name for p in (tmp_path / "r").iterdir()}
    for stem in ("objective", "convergence", "strain_fields", "temperature_fields", "stress_strain", "identifiability",
                 "fig3"):
        assert f"{stem}.png" in names and f"{stem}.csv" in names, stem
    html = (tmp_path / "r" / "index.html").read_text()
    assert "paper&#x27;s X+" in html or "paper's X+" in html
    assert "identifiability" in html and "<img" in html
    summary = json.loads((tmp_path / "r.json").read_text())
    assert summary["costs"]["n_runs"] == 10
    assert set(summary["identifiability"]["sobol_total"]) == {"c0", "s_y", "beta", "E0"}
    # the stress CSV holds the numbers of the figure: one row per reference frame
    rows = (tmp_path / "r" / "stress_strain.csv").read_text().splitlines()
    assert rows[0].startswith("gamma,reference_stress_gpa,optimised_stress_gpa") and len(rows) == 102


BAD = [
    ("[optimizer]\nbudgte = 5\n", "unknown key 'optimizer.budgte'"),
    ("[parameters]\nc0 = [1.0, 0.05]\n", "parameters.c0: lower bound 1 must be below upper bound 0.05"),
]


@pytest.mark.parametrize("command", ["calibrate", "validate", "evaluate"])
@pytest.mark.parametrize("text, fragment", BAD)
def test_bad_config_one_line_error(command, text, fragment, tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    code, out, err = run([command, path], capsys)
    assert code == 2
    assert err.count("\n") == 1 and fragment in err and err.startswith(f"gego {command}: error:")


@pytest.mark.parametrize("argv, fragment", [
    (["calibrate", "missing.toml"], "missing.toml: config file not found"),
    (["evaluate", "--param", "c0=0.1"], "--param s_y=VALUE missing"),
    (["evaluate", "--param", "zz=1"], "unknown parameter 'zz'"),
    (["calibrate", "--bound", "c0=0.9:0.1"], "parameters.c0: lower bound 0.9 must be below"),
    (["calibrate", "--bound", "c0=0.9"], "expected NAME=LOWER:UPPER"),
    (["calibrate", "--reference", "nope.nc"], "reference.path: file not found"),
    (["report", "nope.db"], "nope.db: no such study file"),
])
def test_bad_command_lines_one_line_error(argv, fragment, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(argv, capsys)
    assert code == 2
    assert err.count("\n") == 1 and fragment in err


def test_print_config_round_trips(tmp_path, capsys):
    code, out, _ = run(["validate", "--budget", 77, "--fix", "c0=0.54989662", "--print-config"], capsys)
    assert code == 0
    path = tmp_path / "eff.toml"
    path.write_text(out)
    from gego.workflows.config import load_config

    config = load_config(path, workflow="validate")
    assert config.budget == 77 and "c0" not in config.names and config.fixed["c0"] == 0.54989662
