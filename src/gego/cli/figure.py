"""``gego figure``: illustrative figures, e.g. the paper's Fig 3 (Grassmann vs Euclidean distance)."""

from __future__ import annotations

import argparse
from pathlib import Path

from gego.errors import ConfigError

FIGURES = {"fig3": "a shear band, the band shifted and a homogeneous field: Grassmann vs Euclidean distance (Sec 4)"}
_FORMATS = {".png", ".pdf", ".svg", ".jpg", ".jpeg"}


def add_parser(subparsers, name: str, help_text: str) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        name,
        help=help_text,
        description="Draw an illustrative figure. " + " ".join(f"{k}: {v}." for k, v in FIGURES.items()),
    )
    p.add_argument("which", choices=sorted(FIGURES), help="which figure to draw")
    p.add_argument("--out", type=Path, default=None, help="output file (.png, .pdf, .svg; default <which>.png)")
    p.add_argument("--dpi", type=int, default=150, help="resolution of raster output (default 150)")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from gego.illustrations import fig3_distances, fig3_fields, plot_fig3

    out = args.out if args.out is not None else Path(f"{args.which}.png")
    if out.suffix.lower() not in _FORMATS:
        raise ConfigError(f"--out {out}: unsupported figure format {out.suffix!r}; use one of {sorted(_FORMATS)}")
    if args.dpi <= 0:
        raise ConfigError(f"--dpi: expected a positive resolution, got {args.dpi}")
    fields = fig3_fields()
    try:
        path = plot_fig3(out, fields, dpi=args.dpi)
    except OSError as exc:
        raise ConfigError(f"--out {out}: cannot write the figure ({exc.strerror or type(exc).__name__})") from None
    d = fig3_distances(fields)
    for kind in ("grassmann", "euclidean"):
        print(f"{kind:9s}  band-shifted {d[kind]['shifted']:.4f}   band-homogeneous {d[kind]['homogeneous']:.4f}")
    print(f"wrote {path}")
    return 0
