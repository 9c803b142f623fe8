"""``gego report``: figures (PNG + CSV) and a one-page HTML summary of one or more studies."""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path


def add_parser(subparsers, name: str, help_text: str) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        name,
        help=help_text,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=textwrap.dedent("""\
            Draw the figures of a calibrate or validate run from its study files (one per seed):
            objective per run and best so far; best-so-far parameters per seed (Figs 8, 12);
            reference vs optimised effective temperature (Figs 5, 9) and strain fields (Figs 6,
            10) and stress-strain curves (Figs 7, 11) from one re-run at the best point (and the
            paper's X+ for a calibration); the near-optimal set of the GP surrogate with Sobol
            indices (which parameters the objective determines, which trade off); the paper's
            Fig 3. Each PNG has a CSV of its numbers; index.html shows them with the best
            parameters, their spread over seeds and the run costs."""),
        epilog=textwrap.dedent("""\
            examples:
              gego report cuzr.db --out report/
              gego report val-seed*.db --out val-report/       # all seeds of a validation
              gego report runs/ --out report/ --no-simulate    # a folder of studies, no re-run"""),
    )
    p.add_argument("studies", nargs="+", type=Path, help="study files (or folders of *.db / *.sqlite files)")
    p.add_argument("--out", type=Path, default=Path("report"), help="output folder (default: report/)")
    p.add_argument("--no-simulate", action="store_true",
                   help="do not re-run the model at the best point (skips the field and stress figures)")
    p.add_argument("--seed", type=int, default=0, help="seed of the surrogate analysis (default 0)")
    p.add_argument("--json", type=Path, metavar="PATH", help="also write the summary JSON here")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress output")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from gego.cli.calibrate import write_json
    from gego.workflows.report import make_report

    summary = make_report(args.studies, args.out, quiet=args.quiet, simulate=not args.no_simulate, seed=args.seed)
    best = ", ".join(f"{k}={v:.6g}" for k, v in summary["best"].items())
    objective = summary["objective"]
    print(f"best ({len(summary['per_seed'])} studies): {best}; objective "
          f"{'-' if objective is None else f'{objective:.6g}'}")
    ident = summary.get("identifiability", {})
    if "determined" in ident:
        print("identifiability: well determined " + (", ".join(n for n, ok in ident["determined"].items() if ok) or "none")
              + "; trade-offs " + ("; ".join(f"{a}-{b} r={t['correlation']:.2f}" for t in ident["trade_offs"]
                                             for a, b in [t["pair"]]) or "none"))
    print(f"wrote {len(summary['files'])} files; open {Path(args.out) / 'index.html'}")
    write_json(args.json, summary)
    return 0
