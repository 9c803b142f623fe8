"""``gego calibrate``: calibrate the STZ model against a reference (paper Sec 5.4).

Also home of the options shared by ``gego validate`` and ``gego evaluate`` (configuration file,
overrides, JSON summary) and of the text summary they print.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path

from gego.errors import ConfigError
from gego.workflows.config import PARAMETERS

PARAMETER_HELP = "parameters (paper names, Table 1-2 units): " + ", ".join(
    f"{name} [{info.unit}]" for name, info in PARAMETERS.items()
)

EXAMPLES = {
    "calibrate": """\
examples:
  gego calibrate --budget 120 --study cuzr.db          # the README run: bundled CuZr data, a few minutes
  gego calibrate --repeats 8 --budget 300 --study cuzr.db   # the paper's 8 seeds (cuzr-seed0.db ...)
  gego calibrate my.toml --reference sample.nc         # your own settings and a `gego coarse-grain` reference
  gego calibrate --bound c0=0.1:0.5 --fix beta=7 --set objective.stress_weight=0.5
  gego calibrate --print-config > my.toml              # start your own configuration from the defaults
  gego report cuzr.db --out report/                    # figures and an HTML summary

Ctrl-C keeps every finished run in the study; the same command resumes (and --budget extends).""",
    "validate": """\
examples:
  gego validate --budget 300 --study val.db            # one seed
  gego validate --repeats 9 --study val.db --json val.json   # the paper's Fig 8 (val-seed0.db ...)
  gego validate --grid 16 --steps-per-frame 10 --budget 100  # a quick, coarse check
  gego report val-seed*.db --out report/""",
    "evaluate": """\
examples:
  gego evaluate --param c0=0.164 --param s_y=0.906 --param beta=6.882 --param E0=-3.369
  gego evaluate --preset paper-optimum --json xplus.json      # the paper's X+ with gego's objective
  gego evaluate --preset paper-optimum --param E0=-3.37       # a hypothesis next to X+""",
}


def add_config_arguments(p: argparse.ArgumentParser, workflow: str, *, study: bool = True, runs: bool = True) -> None:
    """Options shared by calibrate, validate and evaluate."""
    p.add_argument("config", nargs="?", type=Path,
                   help=f"TOML configuration (default: the paper's settings, see --print-config); keys missing "
                        f"from it keep their default")
    p.add_argument("--reference", metavar="PATH",
                   help="reference NetCDF (e.g. from `gego coarse-grain`); default: the bundled CuZr MD data"
                        + (" (validate: it supplies the energy fields)" if workflow == "validate" else ""))
    if study:
        p.add_argument("--study", metavar="PATH",
                       help=f"study file (SQLite; resumed if it exists; default gego-{workflow}.db); with "
                            "--repeats R the seeds go to PATH-seed<S>.db")
    if runs:
        p.add_argument("--budget", type=int, metavar="N", help="continuum runs per seed, initial design included")
        p.add_argument("--seed", type=int, metavar="S", help="first seed (repeat r uses S + r)")
        p.add_argument("--repeats", type=int, metavar="R", help="independent seeds")
        p.add_argument("--n-init", type=int, metavar="N", help="Latin-hypercube design size (default: 10 per parameter, "
                                                               "at most budget / 3)")
        p.add_argument("--batch-size", type=int, metavar="Q", help="points per EGO iteration")
        p.add_argument("--workers", type=int, metavar="W", help="parallel processes (over seeds when --repeats > 1)")
        p.add_argument("--dask", metavar="ADDRESS", help="Dask scheduler address to run the continuum runs on")
        p.add_argument("--bound", action="append", default=[], metavar="NAME=LO:HI",
                       help="calibrate NAME within [LO, HI] (repeatable)")
    p.add_argument("--fix", action="append", default=[], metavar="NAME=VALUE",
                   help="fix NAME at VALUE instead of calibrating it (repeatable; chi_inf=derived allowed)")
    p.add_argument("--grid", type=int, metavar="N", help="solver grid N x N (default: the reference's grid)")
    p.add_argument("--steps-per-frame", type=int, metavar="K", help="solver steps per output frame (default 15)")
    p.add_argument("--set", action="append", default=[], metavar="TABLE.KEY=VALUE",
                   help="override any configuration key, value in TOML syntax (repeatable), "
                        "e.g. --set objective.stress_weight=0.5")
    p.add_argument("--json", type=Path, metavar="PATH", help="write a JSON summary here")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars or status lines (for logs)")
    p.add_argument("--print-config", action="store_true", help="print the effective configuration as TOML and exit")


def overrides_from_args(args: argparse.Namespace) -> list[str]:
    """The command-line options as ``table.key=value`` overrides (applied after the TOML file)."""
    out: list[str] = []

    def put(key: str, value) -> None:
        if value is not None:
            out.append(f"{key}={json.dumps(value)}")

    put("reference.path", getattr(args, "reference", None))
    for option, key in (("budget", "optimizer.budget"), ("seed", "optimizer.seed"), ("repeats", "optimizer.repeats"),
                        ("n_init", "optimizer.n_init"), ("batch_size", "optimizer.batch_size"),
                        ("workers", "execution.workers"), ("dask", "execution.dask_address"),
                        ("grid", "solver.n"), ("steps_per_frame", "solver.steps_per_frame")):
        put(key, getattr(args, option, None))
    for item in getattr(args, "bound", []) or []:
        name, sep, interval = item.partition("=")
        lo, sep2, hi = interval.partition(":")
        try:
            pair = [float(lo), float(hi)]
        except ValueError:
            raise ConfigError(f"--bound {item!r}: expected NAME=LOWER:UPPER, e.g. c0=0.05:1.0") from None
        if not (sep and sep2):
            raise ConfigError(f"--bound {item!r}: expected NAME=LOWER:UPPER, e.g. c0=0.05:1.0")
        out.append(f"parameters.{name.strip()}={json.dumps(pair)}")
    for item in getattr(args, "fix", []) or []:
        name, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--fix {item!r}: expected NAME=VALUE, e.g. l_chi=25.59")
        out.append(f"fixed.{name.strip()}={value.strip()}")
    out.extend(args.set or [])
    return out


def config_from_args(args: argparse.Namespace, workflow: str):
    from gego.workflows.config import load_config

    return load_config(args.config, workflow=workflow, overrides=overrides_from_args(args))


def print_config(config) -> None:
    """Write the effective configuration as TOML (loadable by ``gego <workflow> FILE``)."""
    data = config.to_dict()
    data.pop("workflow")
    if config.workflow != "validate":
        data.pop("target")
    lines = [f"# effective gego {config.workflow} configuration", f"study = {_toml(data.pop('study'))}", ""]
    for table, values in data.items():
        lines.append(f"[{table}]")
        lines.extend(f"{key} = {_toml(value)}" for key, value in values.items())
        lines.append("")
    print("\n".join(lines).rstrip())


def _toml(value) -> str:
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return repr(value)


def write_json(path: Path | None, summary: dict) -> None:
    from gego.workflows.calibrate import json_safe

    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(json_safe(summary), indent=1))
    except OSError as exc:
        raise ConfigError(f"--json {path}: cannot write ({exc.strerror or type(exc).__name__})") from None


# ------------------------------------------------------------------------- text output
COMPONENT_LABELS = {"grassmann_strain_xy_eng": "d_strain (Eq 39)", "curve_stress_xy_gpa": "d_stress GPa (Eq 40)"}


def format_components(components: dict) -> str:
    return ", ".join(f"{COMPONENT_LABELS.get(k, k)} {v:.4g}" for k, v in components.items())


def format_summary(summary: dict) -> str:
    """The lines printed at the end of calibrate / validate."""
    lines = []
    seeds = summary["seeds"]
    spread = summary.get("spread", {})
    head = f"best of {len(seeds)} seeds (seed {summary['best_seed']})" if len(seeds) > 1 else f"best (seed {seeds[0]})"
    lines.append(f"{head}:")
    for name, value in summary["best"].items():
        unit = PARAMETERS[name].unit
        unit = "" if unit == "1" else f" {unit}"
        line = f"  {name:<7s} = {value:.6g}{unit}"
        if len(seeds) > 1 and name in spread:
            s = spread[name]
            line += f"    median {s['median']:.6g}, range [{s['min']:.6g}, {s['max']:.6g}] over seeds"
        if "errors" in summary and name in summary["errors"]:
            e = summary["errors"][name]
            err = f"{100 * e['rel_error']:.2f} %" if e["kind"] == "rel" else f"{e['abs_error']:.4f}{unit}"
            line += f"    target {e['target']:.6g}, median error {err} ({'ok' if e['ok'] else 'NOT within tolerance'})"
        lines.append(line)
    objective = summary["objective"]
    lines.append(f"objective {objective:.6g}  ({format_components(summary['components'])})"
                 if objective is not None else "objective: no run completed")
    paper = summary.get("paper_optimum")
    if paper:
        if paper.get("objective") is not None:
            verdict = "gego <= paper" if objective is not None and objective <= paper["objective"] else "paper better"
            lines.append(f"paper's X+ {paper['params']}: objective {paper['objective']:.6g}  "
                         f"({format_components(paper['components'])})  [{verdict}]")
        else:
            lines.append(f"paper's X+: run failed ({paper.get('error')})")
    if "recovered" in summary:
        lines.append(f"validation: median of {len(seeds)} seeds {'within' if summary['recovered'] else 'NOT within'} "
                     f"tolerance (2 %, E0 0.002 eV); objective at the targets {summary['objective_at_target']:.3g}")
    lines.append(f"continuum runs: {summary['n_runs']} ({summary['n_failed']} failed), "
                 f"wall time {summary['wall_time_s']:.1f} s")
    lines.append("studies: " + ", ".join(s["study"] for s in summary["per_seed"]))
    return "\n".join(lines)


def run_workflow(args: argparse.Namespace, workflow: str) -> int:
    """Shared body of calibrate and validate: config, run, print, JSON."""
    from gego.workflows.calibrate import calibrate, require_runs, study_paths
    from gego.workflows.validate import validate

    config = config_from_args(args, workflow)
    if args.print_config:
        print_config(config)
        return 0
    study = args.study
    try:
        result = (validate if workflow == "validate" else calibrate)(config, study, quiet=args.quiet)
    except KeyboardInterrupt:
        paths = ", ".join(str(p) for p in study_paths(config, study))
        print(f"\ninterrupted: finished runs are kept in {paths}; run the same command again to resume",
              file=sys.stderr)
        raise
    require_runs(result)
    summary = result.summary()
    print(format_summary(summary))
    write_json(args.json, summary)
    return 0


def add_parser(subparsers, name: str, help_text: str) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        name,
        help=help_text,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=textwrap.dedent(f"""\
            Calibrate the STZ continuum model against a coarse-grained MD reference by Grassmannian
            EGO (paper Sec 5.4): a Latin-hypercube design, then expected-improvement iterations to
            the budget, minimising Eq 41 = 0.25 x mean Grassmann distance of the strain fields at
            9 strains + 0.75 x mean |stress difference| (GPa). Defaults: the paper's settings --
            (c0, s_y; beta, E0) in the Table 2 box, l_chi and eps0 at Table 1 values, chi_inf
            derived from the final energy frame. Prints the best parameters, the objective and
            its components, and the objective at the paper's optimum X+ for comparison.

            {PARAMETER_HELP}."""),
        epilog=EXAMPLES["calibrate"],
    )
    add_config_arguments(p, "calibrate")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    return run_workflow(args, "calibrate")
