"""The ``gego`` command line: one sub-command per module in this package.

Each sub-command module defines ``add_parser(subparsers)`` which registers its parser and sets
``func`` (a callable taking the parsed namespace and returning an exit code). Errors derived
from :class:`gego.errors.GegoError` are printed as one line, exit code 2; Ctrl-C exits 130.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from gego import __version__
from gego.errors import GegoError

# (module, help) in the order shown by `gego --help`; modules are imported lazily so that
# `gego --help` stays fast and a broken optional dependency only affects its own command.
SUBCOMMANDS = [
    ("calibrate", "calibrate the STZ model against a reference (paper Sec 5.4)"),
    ("validate", "recover known parameters from a synthetic continuum reference (Sec 5.3)"),
    ("evaluate", "the objective and its components at one parameter point"),
    ("report", "figures, CSV and an HTML summary of one or more studies"),
    ("simulate", "run the STZ continuum solver once and write NetCDF"),
    ("coarse_grain", "turn a LAMMPS dump (+ log) into a reference dataset"),
    ("figure", "draw illustrative figures (e.g. the paper's Fig 3)"),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gego",
        description="Grassmannian EGO: calibrate continuum models against coarse-grained atomistic data.",
    )
    parser.add_argument("--version", action="version", version=f"gego {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, help_text in SUBCOMMANDS:
        try:
            module = importlib.import_module(f"gego.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"gego.cli.{name}":
                raise
            continue  # not built yet
        module.add_parser(sub, name.replace("_", "-"), help_text)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except GegoError as exc:
        print(f"gego {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"gego {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
