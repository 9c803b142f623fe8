"""``gego evaluate``: the objective and its components at one parameter point."""

from __future__ import annotations

import argparse
import textwrap

from gego.cli.calibrate import (EXAMPLES, PARAMETER_HELP, add_config_arguments, config_from_args,
                                format_components, print_config, write_json)


def add_parser(subparsers, name: str, help_text: str) -> argparse.ArgumentParser:
    from gego.workflows.evaluate import PRESET_POINTS

    p = subparsers.add_parser(
        name,
        help=help_text,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=textwrap.dedent(f"""\
            Run the STZ model once at the given parameters and print the objective of Eq 41 and its
            components (the strain-field Grassmann distance of Eq 39 and the stress distance of
            Eq 40, GPa) against the reference of the configuration. Parameters not given keep the
            configuration's fixed values; every calibrated parameter needs a value (--param or
            --preset). Presets: {', '.join(f'{k} {v}' for k, v in PRESET_POINTS.items())}.

            {PARAMETER_HELP}."""),
        epilog=EXAMPLES["evaluate"],
    )
    add_config_arguments(p, "evaluate", study=False, runs=False)
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="parameter value, paper name and units (repeatable), e.g. --param c0=0.164")
    p.add_argument("--preset", choices=sorted(PRESET_POINTS), help="start from a named point; --param overrides it")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from gego.workflows.config import PARAMETERS, parse_param_values
    from gego.workflows.evaluate import PRESET_POINTS, evaluate

    config = config_from_args(args, "calibrate")
    if args.print_config:
        print_config(config)
        return 0
    values = dict(PRESET_POINTS[args.preset]) if args.preset else {}
    values.update(parse_param_values(args.param))
    result = evaluate(config, values)
    for name, value in result["params"].items():
        unit = PARAMETERS[name].unit
        shown = value if isinstance(value, str) else f"{value:.6g}"
        print(f"  {name:<7s} = {shown}{'' if unit == '1' else ' ' + unit}")
    if result["objective"] is None:
        print(f"run failed: {result['error']}")
    else:
        print(f"objective {result['objective']:.6g}  ({format_components(result['components'])})")
    print(f"1 continuum run, {result['solver_time_s']:.1f} s")
    write_json(args.json, result)
    return 0 if result["objective"] is not None else 1
