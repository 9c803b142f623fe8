"""Benchmark of the workflows: cost of one objective evaluation and of a small calibration.

Prints JSON to stdout: medians over repeats of

* ``eval_s``: one point (solver + objective of Eq 41) on the grid given, single call;
* ``eval_batch_s_per_point``: the same through the batched solver, batch of 4, per point;
* ``calibrate_s``, ``calibrate_overhead_s_per_iteration``: a tiny serial calibration (budget
  runs) and its time beyond the solver (GP fits and EI maximisation per EGO iteration).

    python benchmarks/bench_workflows.py           # the paper's 32 x 32 grid, 60 steps per frame
    python benchmarks/bench_workflows.py --quick   # 8 x 8 grid, 1 step per frame
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny grid and budget")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from gego.workflows.calibrate import calibrate
    from gego.workflows.config import load_config
    from gego.workflows.problem import build_problem, load_workflow_reference

    grid = ["solver.n=8", "solver.steps_per_frame=1", "solver.n_frames=50"] if args.quick else []
    budget = 16 if args.quick else 24
    config = load_config(overrides=grid + ["execution.workers=1", f"optimizer.budget={budget}", "optimizer.n_init=8",
                                           "optimizer.batch_size=1"])
    problem = build_problem(config, load_workflow_reference(config))
    point = np.array([0.164, 0.906, 6.882, -3.369])
    problem(point)  # compile / warm the solver once

    def timed(fn):
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0

    single = [timed(lambda: problem(point)) for _ in range(args.repeats)]
    batch = [timed(lambda: problem.batch(np.tile(point, (4, 1)))) / 4 for _ in range(args.repeats)]
    runs = []
    for r in range(max(1, args.repeats // 2)):
        with tempfile.TemporaryDirectory() as folder:
            t = timed(lambda: calibrate(config, Path(folder) / "b.db", quiet=True, compare_paper=False))
        runs.append(t)
    iterations = budget - config.n_init  # batch size 1: one point per EGO iteration
    eval_s = statistics.median(single)
    calib_s = statistics.median(runs)
    print(json.dumps({
        "grid": f"{problem.settings.n_y} x {problem.settings.nx}",
        "steps_per_frame": problem.settings.steps_per_frame,
        "eval_s": eval_s,
        "eval_batch_s_per_point": statistics.median(batch),
        "calibrate_budget": budget,
        "calibrate_s": calib_s,
        "calibrate_overhead_s_per_iteration": max(0.0, calib_s - budget * statistics.median(batch)) / iterations,
    }, indent=1))


if __name__ == "__main__":
    main()
