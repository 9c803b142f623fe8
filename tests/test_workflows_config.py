"""Workflow configuration: the paper's defaults, TOML layering, overrides and one-line errors."""

import dataclasses
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gego.errors import ConfigError
from gego.objective import PAPER_SNAPSHOT_STRAINS, PAPER_WEIGHTS
from gego.stz import PAPER_OPTIMUM, VALIDATION_TARGET, STZParams
from gego.workflows.config import (PARAMETERS, WorkflowConfig, auto_n_init, load_config, parse_assignment,
                                   parse_param_values, stz_params_from_values)


def write(tmp_path, text, name="c.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


# ------------------------------------------------------------------------- defaults = the paper
def test_calibrate_defaults_are_the_papers_application():
    config = load_config()
    assert config.names == ("c0", "s_y", "beta", "E0")
    # Table 2 distributions
    assert config.bounds == [(0.05, 1.0), (0.8, 1.15), (2.0, 15.0), (-3.390, -3.355)]
    # Table 1 values of the parameters Sec 5.2.1 fixes, chi_inf derived from the final frame
    assert config.fixed["l_chi"] == 25.59 and config.fixed["eps0"] == 44.53
    assert config.fixed["chi_inf"] == "derived"
    # Sec 5.2.2: the snapshots and weights the objective module defines for Eq 39-41
    assert config.snapshots == tuple(PAPER_SNAPSHOT_STRAINS)
    assert (config.strain_weight, config.stress_weight) == tuple(PAPER_WEIGHTS)
    assert config.reference_path is None  # bundled CuZr


def test_validate_targets_map_onto_the_solver_preset():
    config = load_config(workflow="validate")
    params = stz_params_from_values({**config.fixed, **config.target})
    for field in ("c0", "s_y_gpa", "beta_per_ev", "e0_ev", "l_chi_angstrom", "eps0", "mu_gpa", "bulk_gpa", "tau0_s"):
        assert getattr(params, field) == pytest.approx(getattr(VALIDATION_TARGET, field), rel=1e-12), field
    assert params.chi_inf is None  # derived, as the solver preset


def test_paper_optimum_maps_onto_the_solver_preset():
    from gego.workflows.calibrate import PAPER_OPTIMUM_VALUES

    params = stz_params_from_values({**load_config().fixed, **PAPER_OPTIMUM_VALUES})
    assert dataclasses.asdict(params) == pytest.approx(dataclasses.asdict(PAPER_OPTIMUM))


def test_parameter_table_names_real_solver_fields():
    fields = {f.name for f in dataclasses.fields(STZParams)}
    # every model parameter names a solver field; c (Eq 37) is the reference's (empty field)
    assert {info.field for info in PARAMETERS.values() if info.name != "c"} <= fields
    assert PARAMETERS["c"].field == ""
    # units: tau0 is given in ps (Table 1), stored in s
    assert stz_params_from_values({"tau0": 0.1}).tau0_s == pytest.approx(1e-13)


# ------------------------------------------------------------------------- layering
def test_user_file_overrides_defaults_key_by_key(tmp_path):
    path = write(tmp_path, "[parameters]\nc0 = [0.1, 0.9]\n[optimizer]\nbudget = 50\nseed = 3\n")
    config = load_config(path)
    assert config.bounds[0] == (0.1, 0.9)
    assert config.bounds[1:] == load_config().bounds[1:]  # untouched parameters keep the defaults
    assert (config.budget, config.seed) == (50, 3)
    assert config.source == str(path)


def test_fixing_a_parameter_removes_it_from_the_calibrated_set(tmp_path):
    config = load_config(overrides=["fixed.beta=7.0"])
    assert config.names == ("c0", "s_y", "E0") and config.fixed["beta"] == 7.0
    config = load_config(overrides=["parameters.l_chi=[10.0, 50.0]"])
    assert "l_chi" in config.names and "l_chi" not in config.fixed


def test_command_line_overrides_the_file(tmp_path):
    path = write(tmp_path, "[optimizer]\nbudget = 50\n")
    assert load_config(path, overrides=["optimizer.budget=70"]).budget == 70


def test_relative_reference_path_is_relative_to_the_config_file(tmp_path):
    (tmp_path / "ref.nc").write_bytes(b"")
    path = write(tmp_path, '[reference]\npath = "ref.nc"\n')
    assert load_config(path).reference_path == tmp_path / "ref.nc"


def test_auto_n_init():
    assert auto_n_init(4, 300) == 40  # 10 per parameter
    assert auto_n_init(4, 60) == 20  # at most a third of the budget
    assert auto_n_init(4, 6) == 5  # but at least d + 1
    assert load_config(overrides=["optimizer.budget=60"]).n_init == 20


def test_identity_leaves_out_what_may_change_on_resume():
    a = load_config()
    b = load_config(overrides=["optimizer.budget=500", "execution.workers=1", "optimizer.repeats=3"])
    assert a.identity() == b.identity()
    assert a.identity() != load_config(overrides=["optimizer.batch_size=4"]).identity()


def test_surrogate_options_enter_the_identity_only_when_set():
    """objective_power and trust_region change the proposals, so they are part of a study's
    identity; at their defaults they are left out, so studies made before they existed resume."""
    plain = load_config(overrides=["optimizer.objective_power=1", "optimizer.trust_region=false"])
    assert "objective_power" not in plain.to_dict()["optimizer"]
    assert "trust_region" not in plain.to_dict()["optimizer"]
    squared = load_config()  # the shipped defaults: Delta**2 and the trust region
    assert squared.objective_power == 2.0 and squared.trust_region is True
    assert squared.identity() != plain.identity()
    again = type(squared).from_dict(squared.to_dict(), names=squared.names)
    assert again.identity() == squared.identity()


@settings(max_examples=25, deadline=None)
@given(lo=st.floats(0.01, 0.5), width=st.floats(0.01, 0.5), budget=st.integers(20, 400), seed=st.integers(0, 99))
def test_to_dict_from_dict_round_trip(lo, width, budget, seed):
    config = load_config(overrides=[f"parameters.c0=[{lo!r}, {lo + width!r}]", f"optimizer.budget={budget}",
                                    f"optimizer.seed={seed}"])
    again = WorkflowConfig.from_dict(config.to_dict(), source=config.source)
    assert again == config


def test_from_dict_restores_parameter_order_from_the_study():
    data = load_config().to_dict()
    data["parameters"] = dict(sorted(data["parameters"].items()))  # as a JSON store with sort_keys
    assert WorkflowConfig.from_dict(data, names=("c0", "s_y", "beta", "E0")).names == ("c0", "s_y", "beta", "E0")


# ------------------------------------------------------------------------- overrides syntax
@settings(max_examples=50, deadline=None)
@given(value=st.one_of(st.integers(-10**6, 10**6), st.floats(allow_nan=False, allow_infinity=False),
                       st.lists(st.floats(-1e3, 1e3), max_size=3)))
def test_parse_assignment_reads_toml_values(value):
    import json

    key, parsed = parse_assignment(f"optimizer.x={json.dumps(value)}")
    assert key == "optimizer.x"
    assert parsed == value


def test_parse_assignment_bare_words_are_strings():
    assert parse_assignment("reference.path=data/my ref.nc") == ("reference.path", "data/my ref.nc")
    assert parse_assignment("fixed.chi_inf=derived") == ("fixed.chi_inf", "derived")


def test_parse_param_values():
    assert parse_param_values(["c0=0.164", "E0 = -3.369"]) == {"c0": 0.164, "E0": -3.369}
    for bad, fragment in [("c0", "NAME=VALUE"), ("c0=abc", "c0"), ("nope=1", "unknown parameter 'nope'"),
                          ("c0=nan", "finite")]:
        with pytest.raises(ConfigError, match=fragment):
            parse_param_values([bad])


# ------------------------------------------------------------------------- one-line errors
BAD_CONFIGS = [
    ("[optimizer]\nbudgte = 5\n", "optimizer.budgte"),
    ("[optimiser]\nbudget = 5\n", "'optimiser'"),
    ("[parameters]\nfoo = [1, 2]\n", "unknown parameter 'foo'"),
    ("[parameters]\nc = [10, 80]\n", "coarse-graining length"),
    ("[solver]\ngridsize = 8\n", "solver.gridsize"),
    ("[parameters]\nc0 = [1.0, 0.05]\n", "parameters.c0: lower bound 1 must be below upper bound 0.05"),
    ("[parameters]\nc0 = [0.5]\n", "parameters.c0: expected [lower, upper]"),
    ("[parameters]\nbeta = [2, 15]\n[fixed]\nbeta = 7\n", "'beta' is both calibrated"),
    ("[optimizer]\nbudget = 10\nn_init = 20\n", "n_init = 20 exceeds optimizer.budget = 10"),
    ("[optimizer]\nbudget = true\n", "optimizer.budget"),
    ("[objective]\nstrain_weight = -1.0\n", "weights must be >= 0"),
    ("[objective]\nsnapshots = []\n", "objective.snapshots"),
    ("[target]\nc0 = 0.5\n", "only used by `gego validate`"),
    ('[reference]\npath = "no/such/file.nc"\n', "reference.path: file not found"),
    ("[optimizer\nbudget = 5\n", "not valid TOML"),
    ("[optimizer]\nlog_floor = -1\n", "optimizer.log_floor"),
    ("[optimizer]\nobjective_power = 0\n", "optimizer.objective_power: expected a power in (0, 4]"),
    ("[optimizer]\nobjective_power = 2\nlog_floor = 0.001\n", "set one of them"),
    ("[optimizer]\ntrust_region = 1\n", "optimizer.trust_region: expected true or false"),
]


@pytest.mark.parametrize("text, fragment", BAD_CONFIGS)
def test_bad_config_gives_one_line_error_naming_the_key(tmp_path, text, fragment):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert fragment in message
    assert "\n" not in message
    assert str(path) in message or "TOML" in message


def test_validate_errors(tmp_path):
    with pytest.raises(ConfigError, match="target.c0 = 2 lies outside its bounds"):
        load_config(workflow="validate", overrides=["target.c0=2.0"])
    with pytest.raises(ConfigError, match="target.l_chi missing"):
        load_config(workflow="validate", overrides=["parameters.l_chi=[10.0, 50.0]"])


def test_missing_file_and_unfixed_parameter(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "absent.toml")
    path = write(tmp_path, "[parameters]\nc0 = [0.1, 0.9]\n")
    # removing beta from both tables leaves the model undefined
    config = load_config(path)
    assert "beta" in config.names
    with pytest.raises(ConfigError, match="neither calibrated"):
        from gego.workflows.config import _build

        data = config.to_dict()
        del data["parameters"]["beta"]
        data.pop("workflow")
        _build(data, "calibrate", "test")


def test_chi_inf_derived_or_number():
    assert stz_params_from_values({"chi_inf": "derived"}).chi_inf is None
    assert stz_params_from_values({"chi_inf": 0.13}).chi_inf == 0.13
    assert math.isclose(load_config(overrides=["fixed.chi_inf=0.13"]).fixed["chi_inf"], 0.13)


def test_solver_stiff_step_limit_zero_means_fixed_steps():
    """TOML has no null: [solver] stiff_step_limit = 0 turns the stiff-frame refinement off."""
    from gego.stz import SolverSettings
    from gego.workflows.problem import solver_settings

    assert solver_settings(load_config()).stiff_step_limit == SolverSettings().stiff_step_limit
    assert solver_settings(load_config(overrides=["solver.stiff_step_limit=0"])).stiff_step_limit == 0
    assert solver_settings(load_config(overrides=["solver.stiff_step_limit=8"])).stiff_step_limit == 8.0
    with pytest.raises(ConfigError, match="stiff_step_limit"):
        solver_settings(load_config(overrides=["solver.stiff_step_limit=-1"]))
