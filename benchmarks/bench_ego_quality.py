"""EGO quality benchmark: gego against SMT's EGO, egobox's Egor and BoTorch (LogEI).

For each test function (Branin, Hartmann-3, Hartmann-6) and each seed, every optimiser starts
from the same Latin hypercube design (scipy LHS drawn from the seed) and spends the same budget
of evaluations one at a time (q = 1). We report, per optimiser, the median over seeds of the best
value after 25, 40, 50 and 100 evaluations, the number of seeds that reached the global minimum
(within 1e-3 relative, absolute for a minimum of 0), and the median optimiser overhead per run in seconds (wall and CPU time
minus objective time; the objectives are microseconds; every library is limited to one thread).
With gego among the optimisers, `paired_vs_gego` counts per checkpoint the seeds on which gego's
best is lower than each peer's, higher, or the same (same start, so a paired comparison).

Peers are optional (``pip install 'gego[bench]'``); a missing one is reported as skipped.

Usage::

    python benchmarks/bench_ego_quality.py            # quick: 2 seeds, 40 evaluations, gego only
    python benchmarks/bench_ego_quality.py --seeds 10 --budget 100 --peers gego,gego-tr,gego-tr-global,egobox,botorch,smt

Prints one JSON document on stdout.
"""

from __future__ import annotations

import os

# One BLAS/OpenMP thread for every optimiser: fair on a shared machine, reproducible. egobox
# parallelises with Rust's rayon, which reads RAYON_NUM_THREADS (else all cores: measured on 2
# cores, Branin 0.58 s wall / 1.02 s CPU per run with 2 threads, 1.30 s / 1.29 s with one).
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "RAYON_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402

# --------------------------------------------------------------------------- test functions
# Written from their standard definitions (Dixon & Szego 1978; Jones et al. 1998).


def branin(x):
    """Branin-Hoo on [-5, 10] x [0, 15]; global minimum 0.397887 at three points."""
    x1, x2 = x[0], x[1]
    b, c, r, s, t = 5.1 / (4 * np.pi**2), 5 / np.pi, 6.0, 10.0, 1 / (8 * np.pi)
    return float((x2 - b * x1**2 + c * x1 - r) ** 2 + s * (1 - t) * np.cos(x1) + s)


_H_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])
_H3_A = np.array([[3.0, 10, 30], [0.1, 10, 35], [3.0, 10, 30], [0.1, 10, 35]])
_H3_P = 1e-4 * np.array([[3689, 1170, 2673], [4699, 4387, 7470], [1091, 8732, 5547], [381, 5743, 8828]])
_H6_A = np.array([[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14],
                  [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]])
_H6_P = 1e-4 * np.array([[1312, 1696, 5569, 124, 8283, 5886], [2329, 4135, 8307, 3736, 1004, 9991],
                         [2348, 1451, 3522, 2883, 3047, 6650], [4047, 8828, 8732, 5743, 1091, 381]])


def hartmann3(x):
    """Hartmann-3 on [0, 1]^3; global minimum -3.86278."""
    return float(-np.sum(_H_ALPHA * np.exp(-np.sum(_H3_A * (np.asarray(x) - _H3_P) ** 2, axis=1))))


def hartmann6(x):
    """Hartmann-6 on [0, 1]^6; global minimum -3.32237."""
    return float(-np.sum(_H_ALPHA * np.exp(-np.sum(_H6_A * (np.asarray(x) - _H6_P) ** 2, axis=1))))


def rosenbrock4(x):
    """Rosenbrock on [-2, 2]^4: a curved narrow valley, exactly 0 at (1, 1, 1, 1) (a stand-in for
    the STZ validation, where EGO approaches an exact-zero target along a ridge and stalls)."""
    x = np.asarray(x, dtype=float)
    return float(np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2))


FUNCTIONS = {
    # name: (function, bounds, global minimum, initial design size)
    "branin": (branin, [(-5.0, 10.0), (0.0, 15.0)], 0.397887, 10),
    "hartmann3": (hartmann3, [(0.0, 1.0)] * 3, -3.86278, 15),
    "hartmann6": (hartmann6, [(0.0, 1.0)] * 6, -3.32237, 20),
    "rosenbrock4": (rosenbrock4, [(-2.0, 2.0)] * 4, 0.0, 20),
}
DEFAULT_FUNCTIONS = ("branin", "hartmann3", "hartmann6")  # the issue's three; rosenbrock4 on request
# Peers measured on this machine class (issue 4): 5 seeds, LHS start of 10 (Branin) or 20
# (Hartmann-6), q = 1; median best value, and optimiser overhead per Hartmann-6 run.
ISSUE_REFERENCE = {
    "branin_after_40": {"egobox": 0.39789, "botorch": 0.40039, "smt": 0.4058},
    "hartmann6_after_100": {"egobox": -3.2032, "botorch": -3.1918, "smt": -3.155},
    "hartmann6_overhead_s_per_run": {"egobox": 8.0, "botorch": 53.0, "smt": 316.0},
}
CHECKPOINTS = (25, 40, 50, 100)  # 40: the evaluation count of the issue's reference figures


def lhs_design(n, bounds, seed):
    """The shared initial design: gego's LHS for this seed, in the box."""
    from gego.optimize.design import from_unit, initial_design, make_box

    box = make_box(bounds)
    return from_unit(initial_design(n, box.dim, method="lhs", seed=[seed, 0]), box)


class Counted:
    """Wrap an objective: record every value in call order and the time spent inside it."""

    def __init__(self, fun):
        self.fun, self.values, self.time_s = fun, [], 0.0

    def __call__(self, x):
        t0 = time.perf_counter()
        value = self.fun(x)
        self.time_s += time.perf_counter() - t0
        self.values.append(value)
        return value

    def batch(self, X):
        return np.array([[self(x)] for x in np.atleast_2d(X)])


# --------------------------------------------------------------------------- optimisers
GEGO_OPTIONS: dict = {}  # extra keyword arguments of gego.minimize (--gego-options)


def _run_minimize(fun, bounds, n_init, budget, seed, **options):
    from gego.optimize import minimize

    counted = Counted(fun)
    minimize(counted, bounds, n_init=n_init, budget=budget, seed=seed, executor="serial",
             **{**options, **GEGO_OPTIONS})
    return counted


def run_gego(fun, bounds, n_init, budget, seed):
    return _run_minimize(fun, bounds, n_init, budget, seed)


def run_gego_trust_region(fun, bounds, n_init, budget, seed):
    """gego with its optional trust-region phase (local EI steps, on a local GP, when global EI stalls)."""
    return _run_minimize(fun, bounds, n_init, budget, seed, trust_region=True)


def run_gego_trust_region_global(fun, bounds, n_init, budget, seed):
    """gego-tr with its local steps on the loop's global GP (trust_region_model="global", gego <= 0.10)."""
    return _run_minimize(fun, bounds, n_init, budget, seed, trust_region=True, trust_region_model="global")


def run_egobox(fun, bounds, n_init, budget, seed):
    import egobox as egx

    counted = Counted(fun)
    x_doe = lhs_design(n_init, bounds, seed)
    egor = egx.Egor(np.array(bounds), x_doe=x_doe, seed=seed)
    egor.minimize(counted.batch, max_iters=budget - n_init)
    return counted


def run_smt(fun, bounds, n_init, budget, seed):
    from smt.applications import EGO
    from smt.design_space import DesignSpace
    from smt.surrogate_models import KRG

    counted = Counted(fun)
    x_doe = lhs_design(n_init, bounds, seed)
    surrogate = KRG(design_space=DesignSpace(np.array(bounds)), print_global=False)
    ego = EGO(n_iter=budget - n_init, criterion="EI", xdoe=x_doe, surrogate=surrogate, seed=seed)
    ego.optimize(fun=counted.batch)
    return counted


def run_botorch(fun, bounds, n_init, budget, seed):
    import torch
    from botorch.acquisition import LogExpectedImprovement
    from botorch.fit import fit_gpytorch_mll
    from botorch.models import SingleTaskGP
    from botorch.models.transforms import Normalize, Standardize
    from botorch.optim import optimize_acqf
    from gpytorch.mlls import ExactMarginalLogLikelihood

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    counted = Counted(fun)
    box = torch.tensor(np.array(bounds).T, dtype=torch.double)
    X = torch.tensor(lhs_design(n_init, bounds, seed), dtype=torch.double)
    # BoTorch maximises: model -f.
    Y = torch.tensor([[-counted(x)] for x in X.numpy()], dtype=torch.double)
    while len(counted.values) < budget:
        model = SingleTaskGP(X, Y, input_transform=Normalize(d=X.shape[1]), outcome_transform=Standardize(m=1))
        fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
        acquisition = LogExpectedImprovement(model, best_f=Y.max())
        candidate, _ = optimize_acqf(acquisition, bounds=box, q=1, num_restarts=10, raw_samples=512)
        y_new = -counted(candidate[0].numpy())
        X = torch.cat([X, candidate])
        Y = torch.cat([Y, torch.tensor([[y_new]], dtype=torch.double)])
    return counted


OPTIMISERS = {"gego": run_gego, "gego-tr": run_gego_trust_region, "gego-tr-global": run_gego_trust_region_global,
              "egobox": run_egobox, "botorch": run_botorch, "smt": run_smt}
# Imported before timing, so that import time is not counted as optimiser overhead.
REQUIRES = {"gego": ["gego.optimize", "gego.optimize.acquisition", "gego.surrogate"],
            "gego-tr": ["gego.optimize", "gego.optimize.acquisition", "gego.surrogate"],
            "gego-tr-global": ["gego.optimize", "gego.optimize.acquisition", "gego.surrogate"], "egobox": ["egobox"],
            "botorch": ["botorch", "gpytorch"], "smt": ["smt.applications", "smt.surrogate_models"]}


def _available(name):
    try:
        for module in REQUIRES[name]:
            __import__(module)
    except ImportError:
        return False
    return True


def best_after(values, counts):
    running = np.minimum.accumulate(np.asarray(values, dtype=float))
    return {str(n): float(running[min(n, running.size) - 1]) for n in counts}


def run(functions, optimisers, seeds, budget):
    """Every optimiser on every function and seed; per seed the optimisers run one after the other
    (interleaved), so that a slow spell of the shared machine falls on all of them alike."""
    checkpoints = [n for n in CHECKPOINTS if n <= budget] or [budget]
    results = {}
    for fname in functions:
        fun, bounds, f_star, n_init = FUNCTIONS[fname]
        results[fname] = {"global_minimum": f_star, "n_init": n_init}
        present = [o for o in optimisers if _available(o)]
        for oname in optimisers:
            if oname not in present:
                results[fname][oname] = "skipped: not installed"
        runs = {o: {"bests": [], "wall": [], "cpu": [], "found": 0} for o in present}
        for seed in seeds:
            for oname in present:
                t0, cpu0 = time.perf_counter(), time.process_time()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    counted = OPTIMISERS[oname](fun, bounds, n_init, budget, seed)
                wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
                values = counted.values[:budget]  # some peers evaluate one extra point
                r = runs[oname]
                r["bests"].append(best_after(values, checkpoints))
                r["wall"].append(wall - counted.time_s)
                r["cpu"].append(cpu - counted.time_s)
                r["found"] += bool(min(values) - f_star <= (1e-3 * abs(f_star) if f_star else 1e-3))
                print(f"# {fname} {oname} seed {seed}: best {min(values):.6g} in {wall:.1f} s", file=sys.stderr)
        for oname, r in runs.items():
            results[fname][oname] = {
                "median_best_after": {n: float(np.median([b[n] for b in r["bests"]])) for n in r["bests"][0]},
                "seeds_at_global_minimum": f"{r['found']}/{len(seeds)}",
                "median_overhead_s_per_run": float(np.median(r["wall"])),
                # CPU time of this process: less sensitive to other jobs on a shared machine.
                "median_overhead_cpu_s_per_run": float(np.median(r["cpu"])),
                "best_after_per_seed": r["bests"],
            }
        if "gego" in runs:
            results[fname]["paired_vs_gego"] = {
                o: paired_counts(runs["gego"]["bests"], r["bests"]) for o, r in runs.items() if o != "gego"}
    return results


def paired_counts(gego_bests, peer_bests):
    """Per checkpoint, on how many seeds gego's best is lower than the peer's, higher, or the same
    (1e-9 relative). Both start from the same design on each seed, so the comparison is paired:
    it separates a real difference from the spread over designs that dominates the medians."""
    counts = {}
    for n in gego_bests[0]:
        diffs = [g[n] - p[n] for g, p in zip(gego_bests, peer_bests)]
        tie = [abs(d) <= 1e-9 * max(1.0, abs(g[n])) for d, g in zip(diffs, gego_bests)]
        counts[n] = {"gego_lower": sum(d < 0 and not t for d, t in zip(diffs, tie)),
                     "peer_lower": sum(d > 0 and not t for d, t in zip(diffs, tie)),
                     "same": sum(tie)}
    return counts


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 seeds, 40 evaluations, gego only (default)")
    parser.add_argument("--seeds", type=int, default=None, help="number of seeds (0, 1, ...)")
    parser.add_argument("--budget", type=int, default=None, help="evaluations per run")
    parser.add_argument("--functions", default=",".join(DEFAULT_FUNCTIONS),
                        help="comma-separated test functions: " + ",".join(FUNCTIONS))
    parser.add_argument("--peers", default=None, help="comma-separated optimisers: " + ",".join(OPTIMISERS))
    parser.add_argument("--gego-options", default="{}",
                        help='JSON of extra gego.minimize keywords, e.g. \'{"surrogate_options": {"n_restarts": 2}}\'')
    parser.add_argument("--seed-start", type=int, default=0, help="first seed")
    args = parser.parse_args(argv)
    GEGO_OPTIONS.update(json.loads(args.gego_options))
    full = not args.quick and (args.seeds or args.budget or args.peers)
    n_seeds = args.seeds or (10 if full else 2)
    budget = args.budget or (100 if full else 40)
    optimisers = (args.peers or ("gego,gego-tr,egobox,botorch,smt" if full else "gego")).split(",")
    functions = args.functions.split(",")
    for name in functions:
        if name not in FUNCTIONS:
            parser.error(f"--functions: unknown test function {name!r} (expected {', '.join(FUNCTIONS)})")
    for name in optimisers:
        if name not in OPTIMISERS:
            parser.error(f"--peers: unknown optimiser {name!r} (expected {', '.join(OPTIMISERS)})")
    seeds = list(range(args.seed_start, args.seed_start + n_seeds))
    results = run(functions, optimisers, seeds, budget)
    print(json.dumps({"benchmark": "ego_quality", "seeds": seeds, "budget": budget, "q": 1,
                      "gego_options": GEGO_OPTIONS,
                      "machine": platform.machine(), "cpu_count": os.cpu_count(), "results": results,
                      "issue_reference": ISSUE_REFERENCE},
                     indent=1))


if __name__ == "__main__":
    main()
