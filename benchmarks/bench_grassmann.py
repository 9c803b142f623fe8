"""Timing of Grassmann distances for many pairs of 32 x 32 snapshots; prints JSON to stdout.

Target (issue "Grassmann geometry"): distances of 10,000 pairs of 32 x 32 snapshots in < 1 s.

Figures (medians of ``--repeats`` runs, seconds, scaled to 10,000 pairs when ``--quick`` uses
fewer):

* ``distance_only``: :func:`gego.grassmann.grassmann_distance` on precomputed projections, the
  objective's situation (the reference is projected once), for fixed ranks 1 ... 32;
* ``per_distance``: every registered distance at rank 4;
* ``projection``: :func:`gego.grassmann.project` of 2 x 10,000 snapshots (thin SVD);
* ``md_like``: band-plus-noise fields like the CuZr MD snapshots, default truncation
  (rtol = 1e-2), projection and distances.

Usage: ``python benchmarks/bench_grassmann.py [--quick] [--pairs N] [--repeats R]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import numpy as np

from gego import grassmann
from gego.objective import DEFAULT_RTOL

GRID = (32, 32)
TARGET_PAIRS = 10_000
TARGET_SECONDS = 1.0


def timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def with_rank(p: grassmann.Projection, rank: int) -> grassmann.Projection:
    return grassmann.Projection(p.left, p.right, p.singular_values, np.minimum(rank, p.numerical_rank), p.numerical_rank)


def md_like_fields(rng, n_pairs: int) -> np.ndarray:
    """Horizontal bands at random rows on a constant background plus 0.5 % noise, like MD frames."""
    ny, nx = GRID
    y = np.arange(ny)[None, :, None]
    centre = rng.uniform(4, ny - 4, size=(n_pairs, 1, 1))
    background = rng.uniform(0.02, 0.2, size=(n_pairs, 1, 1))
    band = background + rng.uniform(0.1, 1.5, size=(n_pairs, 1, 1)) * np.exp(-0.5 * ((y - centre) / 3.0) ** 2)
    return band * np.ones((1, 1, nx)) + 0.005 * rng.standard_normal((n_pairs, ny, nx))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 pairs and 2 repeats (figures scaled to 10,000 pairs)")
    parser.add_argument("--pairs", type=int, default=None, help="number of pairs (default 10,000; 1,000 with --quick)")
    parser.add_argument("--repeats", type=int, default=None, help="repeats per figure (default 3; 2 with --quick)")
    parser.add_argument("--seed", type=int, default=2021, help="seed of the random snapshots")
    args = parser.parse_args(argv)
    n_pairs = args.pairs or (1_000 if args.quick else TARGET_PAIRS)
    repeats = args.repeats or (2 if args.quick else 3)
    scale = TARGET_PAIRS / n_pairs
    rng = np.random.default_rng(args.seed)

    fields_a = rng.standard_normal((n_pairs,) + GRID)
    fields_b = rng.standard_normal((n_pairs,) + GRID)
    projection_seconds = timed(lambda: (grassmann.project(fields_a), grassmann.project(fields_b)), repeats)
    pa, pb = grassmann.project(fields_a), grassmann.project(fields_b)

    distance_only = {}
    for rank in (1, 2, 4, 8, 16, 32):
        a, b = with_rank(pa, rank), with_rank(pb, rank)
        distance_only[str(rank)] = scale * timed(lambda: grassmann.grassmann_distance(a, b), repeats)

    a4, b4 = with_rank(pa, 4), with_rank(pb, 4)
    per_distance = {
        name: scale * timed(lambda fn=name: grassmann.grassmann_distance(a4, b4, metric=fn), repeats)
        for name in grassmann.DISTANCES
        if name != "chordal"
    }
    per_distance["geodesic_both_bases"] = scale * timed(lambda: grassmann.grassmann_distance(a4, b4, basis="both"), repeats)

    md_a, md_b = md_like_fields(rng, n_pairs), md_like_fields(rng, n_pairs)
    md_pa, md_pb = grassmann.project(md_a, rtol=DEFAULT_RTOL), grassmann.project(md_b, rtol=DEFAULT_RTOL)
    md_distance = scale * timed(lambda: grassmann.grassmann_distance(md_pa, md_pb), repeats)
    md_end_to_end = scale * timed(
        lambda: grassmann.grassmann_distance(grassmann.project(md_a, rtol=DEFAULT_RTOL), grassmann.project(md_b, rtol=DEFAULT_RTOL)),
        repeats,
    )

    report = {
        "benchmark": "grassmann",
        "grid": list(GRID),
        "pairs_measured": n_pairs,
        "figures_scaled_to_pairs": TARGET_PAIRS,
        "repeats": repeats,
        "statistic": "median seconds",
        "target": {"pairs": TARGET_PAIRS, "seconds": TARGET_SECONDS, "what": "distances from precomputed projections"},
        "distance_only_by_rank": distance_only,
        "per_distance_rank4": per_distance,
        "projection_2x_pairs_snapshots": scale * projection_seconds,
        "md_like": {
            "rtol": DEFAULT_RTOL,
            "median_rank": float(np.median(np.concatenate([md_pa.rank, md_pb.rank]))),
            "max_rank": int(max(md_pa.rank.max(), md_pb.rank.max())),
            "distance_only": md_distance,
            "projection_and_distance": md_end_to_end,
        },
        "target_met": {
            "md_like_distance_only": md_distance < TARGET_SECONDS,
            **{f"rank_{r}_distance_only": t < TARGET_SECONDS for r, t in distance_only.items()},
        },
        "machine": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "cpus": os.cpu_count(),
            "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        },
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
