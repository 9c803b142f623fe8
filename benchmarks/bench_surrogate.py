"""Optimiser overhead of the surrogate + acquisition: seconds per EGO iteration, peak memory.

What one iteration costs the optimiser (the objective itself excluded): append the new
observation to the GP (Cholesky update, or local-GP invalidation above max_points_exact) and
propose the next point (propose_batch, q = 1, default settings: 2048 scrambled-Sobol
candidates, log EI, L-BFGS-B polish). The hyperparameter refit is timed separately, cold
(seeded multistart) and warm (from the previous optimum), and also reported amortised over the
loop's automatic refit interval (every 5 % growth above 150 points,
gego.optimize.loop.refit_interval) with one cold refit in COLD_REFIT_EVERY.

Each (N, d) configuration runs in a fresh subprocess, so its peak resident memory
(resource.getrusage) is its own; tracemalloc's peak (numpy buffers included) is reported too.

Usage::

    python benchmarks/bench_surrogate.py            # N = 500, 2000, 8000; d = 4, 8; 5 iterations
    python benchmarks/bench_surrogate.py --quick    # N = 500, 2000; d = 4; 2 iterations

Prints one JSON document on stdout. Targets (issue 4): <= 0.5 s per iteration at N = 2000,
d = 4; peak memory <= 2 GB at N = 8000.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import tracemalloc

import numpy as np

TARGET_ITERATION_S = 0.5  # at N = 2000, d = 4
TARGET_PEAK_MIB = 2048.0  # at N = 8000


def objective(X: np.ndarray) -> np.ndarray:
    """A smooth multimodal test function on the unit cube (any d)."""
    return np.sum(np.sin(5.0 * X) + (X - 0.5) ** 2, axis=1)


def amortised_refit_interval(n_points: int) -> int:
    """The loop's automatic refit interval (gego.optimize.loop.refit_interval)."""
    from gego.optimize.loop import refit_interval

    return refit_interval(n_points, None)


def run_one(n_points: int, n_dim: int, n_iterations: int, seed: int) -> dict:
    """Time fit, then n_iterations of (propose, append), in this process."""
    from gego.optimize.acquisition import propose_batch
    from gego.optimize.loop import DEFAULT_SURROGATE_OPTIONS
    from gego.surrogate import GaussianProcess

    rng = np.random.default_rng([seed, n_points, n_dim])
    # Start n_iterations below N so that every timed iteration has <= N points (N = 2000 stays
    # on the exact GP, whose limit max_points_exact is 2000).
    X = rng.random((n_points - n_iterations, n_dim))
    y = objective(X)

    tracemalloc.start()
    c0, t0 = time.process_time(), time.perf_counter()
    gp = GaussianProcess(seed=seed, **DEFAULT_SURROGATE_OPTIONS).fit(X, y)  # as the EGO loop builds it
    fit_s, fit_cpu_s = time.perf_counter() - t0, time.process_time() - c0

    propose_s, append_s, iteration_cpu_s = [], [], []
    for _ in range(n_iterations):
        c0, t0 = time.process_time(), time.perf_counter()
        x_next = propose_batch(gp, float(gp.y_train.min()), 1, rng=rng)
        c1, t1 = time.process_time(), time.perf_counter()
        propose_s.append(t1 - t0)
        y_next = objective(x_next)  # excluded from the timing
        c2, t2 = time.process_time(), time.perf_counter()
        gp.append(x_next, y_next)
        append_s.append(time.perf_counter() - t2)
        iteration_cpu_s.append((c1 - c0) + (time.process_time() - c2))
    # The loop's refits between cold ones start from the previous optimum (warm_start).
    c0, t0 = time.process_time(), time.perf_counter()
    GaussianProcess(seed=seed + 1, **DEFAULT_SURROGATE_OPTIONS).fit(gp.X_train, gp.y_train, warm_start=gp.hyperparameters)
    warm_fit_s, warm_fit_cpu_s = time.perf_counter() - t0, time.process_time() - c0
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    from gego.optimize.loop import COLD_REFIT_EVERY

    iteration_s = [p + a for p, a in zip(propose_s, append_s)]
    interval = amortised_refit_interval(n_points)
    mean_fit_s = (fit_s + (COLD_REFIT_EVERY - 1) * warm_fit_s) / COLD_REFIT_EVERY
    mean_fit_cpu_s = (fit_cpu_s + (COLD_REFIT_EVERY - 1) * warm_fit_cpu_s) / COLD_REFIT_EVERY
    return {
        "n_points": n_points,
        "n_dim": n_dim,
        "mode": "local" if gp.uses_local else "exact",
        "n_points_fit": n_points - n_iterations,
        "fit_s": fit_s,
        "propose_s_median": float(np.median(propose_s)),
        "append_s_median": float(np.median(append_s)),
        "iteration_s_median": float(np.median(iteration_s)),
        "iteration_s_all": iteration_s,
        # CPU seconds of this process: BLAS runs single-threaded in the GP, so on an idle machine
        # wall time ~= CPU time; on a shared one the CPU time is the load-independent figure.
        "fit_cpu_s": fit_cpu_s,
        "iteration_cpu_s_median": float(np.median(iteration_cpu_s)),
        "warm_fit_s": warm_fit_s,
        "warm_fit_cpu_s": warm_fit_cpu_s,
        "refit_interval": interval,
        "cold_refit_every": COLD_REFIT_EVERY,
        # One cold and COLD_REFIT_EVERY - 1 warm refits per COLD_REFIT_EVERY refit intervals.
        "iteration_with_amortised_refit_s": float(np.median(iteration_s)) + mean_fit_s / interval,
        "iteration_cpu_with_amortised_refit_s": float(np.median(iteration_cpu_s)) + mean_fit_cpu_s / interval,
        "peak_traced_mib": traced_peak / 2**20,
        "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N = 500, 2000; d = 4; 2 iterations")
    parser.add_argument("--iterations", type=int, default=None, help="iterations per configuration")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--one", nargs=2, type=int, metavar=("N", "D"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    n_iterations = args.iterations or (2 if args.quick else 5)

    if args.one:  # child process: one configuration
        print(json.dumps(run_one(args.one[0], args.one[1], n_iterations, args.seed)))
        return 0

    sizes = (500, 2000) if args.quick else (500, 2000, 8000)
    dims = (4,) if args.quick else (4, 8)
    load_before = os.getloadavg()
    results = []
    for n_dim in dims:
        for n_points in sizes:
            child = subprocess.run(
                [sys.executable, __file__, "--one", str(n_points), str(n_dim),
                 "--iterations", str(n_iterations), "--seed", str(args.seed)],
                check=True, capture_output=True, text=True,
            )
            results.append(json.loads(child.stdout.strip().splitlines()[-1]))
            print(f"done N={n_points} d={n_dim}", file=sys.stderr)

    def find(n, d):
        return next((r for r in results if r["n_points"] == n and r["n_dim"] == d), None)

    at_2000 = find(2000, 4)
    at_8000 = [r for r in results if r["n_points"] == 8000]
    report = {
        "benchmark": "surrogate+acquisition optimiser overhead per iteration (objective excluded)",
        "machine": {"cpus": os.cpu_count(), "loadavg_before": load_before, "loadavg_after": os.getloadavg()},
        "iterations_per_config": n_iterations,
        "results": results,
        "targets": {
            "iteration_s_at_N2000_d4": {
                "target": TARGET_ITERATION_S,
                "measured_wall": at_2000 and at_2000["iteration_s_median"],
                "measured_cpu": at_2000 and at_2000["iteration_cpu_s_median"],
                "met_wall": bool(at_2000 and at_2000["iteration_s_median"] <= TARGET_ITERATION_S),
                "met_cpu": bool(at_2000 and at_2000["iteration_cpu_s_median"] <= TARGET_ITERATION_S),
            },
            "peak_mib_at_N8000": {
                "target": TARGET_PEAK_MIB,
                "measured": max((r["max_rss_mib"] for r in at_8000), default=None),
                "met": (all(r["max_rss_mib"] <= TARGET_PEAK_MIB for r in at_8000) if at_8000 else None),
            },
        },
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
