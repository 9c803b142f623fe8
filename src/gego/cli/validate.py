"""``gego validate``: recover known parameters from a synthetic continuum reference (paper Sec 5.3)."""

from __future__ import annotations

import argparse
import textwrap

from gego.cli.calibrate import EXAMPLES, PARAMETER_HELP, add_config_arguments, run_workflow


def add_parser(subparsers, name: str, help_text: str) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        name,
        help=help_text,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=textwrap.dedent(f"""\
            Validate the calibration (paper Sec 5.3): run the STZ model once at the Table 2 target
            parameters on the MD energy fields, take that run as the reference, and recover the
            targets with the same objective, box and solver settings as `gego calibrate`. The
            targets are an exact zero of the objective, so the error of the recovered parameters
            measures the optimiser and how well the objective determines each parameter. Prints
            each recovered parameter with its error (median over seeds; tolerance 2 %, E0
            0.002 eV). The synthetic reference is written next to the study (<study>.reference.nc).

            {PARAMETER_HELP}."""),
        epilog=EXAMPLES["validate"],
    )
    add_config_arguments(p, "validate")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    return run_workflow(args, "validate")
