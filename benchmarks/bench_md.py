"""Benchmarks of the lower-scale side (gego.md): reading, coarse-graining, local strain.

    python benchmarks/bench_md.py [--quick]

Prints JSON: medians of several repeats (seconds) with the targets of issue 5 and the scaling with
the number of atoms and the grid. The system mimics the paper's CuZr cell: a 400 A x 400 A x
30 A slab with up to 300,000 atoms (random positions at the CuZr number density, a sheared cell
with tilt xy = 0.1 ly), c = 50 A, r_cut = 3 c, D2min neighbours within 2 x the mean spacing.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from gego.md.coarse_grain import coarse_grain
from gego.md.lammps import Box, iter_dump
from gego.md.local_strain import local_strain, neighbour_pairs

L, LZ = 400.0, 30.0
TARGETS_S = {"read_frame_300k": 1.0, "coarse_grain_300k_32x32_c50": 2.0, "d2min_strain_field_300k": 10.0}


def median_time(fn, repeats: int) -> dict:
    """``{"wall_s", "cpu_s"}``: median wall time and median CPU time of this process.

    On a shared machine the wall time includes waiting for a core; the process CPU time does not
    (every step here is single-threaded), so both are reported.
    """
    times, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return {"wall_s": statistics.median(times), "cpu_s": statistics.median(cpu)}


def atoms(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 1, (n, 3)) * [L, L, LZ]


def write_dump(path: Path, n: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    pos = atoms(n, seed)
    table = np.column_stack([np.arange(1, n + 1), rng.integers(1, 3, n), pos, rng.integers(-1, 2, (n, 3)), rng.normal(-3.4, 0.05, n)])
    header = "\n".join(["ITEM: TIMESTEP", "0", "ITEM: NUMBER OF ATOMS", str(n), "ITEM: BOX BOUNDS xy xz yz pp pp pp",
                        f"0 {L + 0.1 * L} {0.1 * L}", f"0 {L} 0", f"0 {LZ} 0", "ITEM: ATOMS id type x y z ix iy iz c_pe"])
    np.savetxt(path, table, fmt=["%d", "%d", "%.6f", "%.6f", "%.6f", "%d", "%d", "%d", "%.6f"], header=header, comments="")


def bench_read(sizes, repeats) -> dict:
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            path = Path(tmp) / f"d{n}"
            write_dump(path, n)
            out[str(n)] = median_time(lambda: next(iter_dump(path)), repeats)
    return out


def bench_coarse_grain(sizes, grids, repeats) -> dict:
    box = Box((0.0, 0.0, 0.0), (L, L, LZ), (0.1 * L, 0.0, 0.0))
    by_atoms, by_grid = {}, {}
    for n in sizes:
        pos, energy = atoms(n), np.random.default_rng(1).normal(-3.4, 0.05, n)
        by_atoms[str(n)] = median_time(lambda: coarse_grain(pos, energy, box, 32, 50.0), repeats)
    pos, energy = atoms(sizes[-1]), np.random.default_rng(1).normal(-3.4, 0.05, sizes[-1])
    for g in grids:
        by_grid[str(g)] = median_time(lambda: coarse_grain(pos, energy, box, g, 50.0), repeats)
    # two fields at once (energy and strain share the weights)
    both = median_time(lambda: coarse_grain(pos, np.column_stack([energy, energy]), box, 32, 50.0), repeats)
    return {"by_atoms_grid32": by_atoms, f"by_grid_{sizes[-1]}_atoms": by_grid, "two_fields_32": both}


def bench_d2min(sizes, repeats) -> dict:
    ref_box = Box((0.0, 0.0, 0.0), (L, L, LZ))
    cur_box = Box((0.0, 0.0, 0.0), (L, L, LZ), (0.1 * L, 0.0, 0.0))
    out = {}
    for n in sizes:
        ref = atoms(n)
        cur = ref @ np.array([[1, 0.1, 0], [0, 1, 0], [0, 0, 1.0]]).T + np.random.default_rng(2).normal(scale=0.1, size=ref.shape)
        cutoff = 2.0 * (L * L * LZ / n) ** (1 / 3)

        def run():
            pairs = neighbour_pairs(ref, ref_box, cutoff, dims=3)
            strain = local_strain(ref, cur, ref_box, cur_box, dims=3, pairs=pairs)
            coarse_grain(cur, strain.shear_strain_eng, cur_box, 32, 50.0)
            return pairs

        pairs = run()
        reuse = median_time(lambda: local_strain(ref, cur, ref_box, cur_box, dims=3, pairs=pairs), repeats)
        out[str(n)] = {
            "total_pairs_strain_field": median_time(run, repeats),
            "strain_only_with_cached_pairs": reuse,
            "bonds_per_atom": pairs.first.size * 2 / n,
            "neighbour_cutoff_angstrom": cutoff,
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer sizes and repeats")
    args = parser.parse_args()
    repeats = 1 if args.quick else 3
    sizes = [30_000, 300_000] if args.quick else [30_000, 100_000, 300_000]
    grids = [32] if args.quick else [16, 32, 64]
    read = bench_read(sizes, repeats)
    cg = bench_coarse_grain(sizes, grids, repeats)
    d2 = bench_d2min(sizes, repeats)
    results = {
        "machine": {"python": platform.python_version(), "processor": platform.processor() or platform.machine(),
                    "note": "shared 2-core machine; medians of repeats"},
        "targets_s": TARGETS_S,
        "measured_s": {
            "read_frame_300k": read[str(sizes[-1])],
            "coarse_grain_300k_32x32_c50": cg["by_atoms_grid32"][str(sizes[-1])],
            "d2min_strain_field_300k": d2["300000"]["total_pairs_strain_field"],
        },
        "read_frame_by_atoms": read,
        "coarse_grain": cg,
        "d2min_strain_field": d2,
        "repeats": repeats,
    }
    results["meets_targets_wall"] = {k: results["measured_s"][k]["wall_s"] <= v for k, v in TARGETS_S.items()}
    results["meets_targets_cpu"] = {k: results["measured_s"][k]["cpu_s"] <= v for k, v in TARGETS_S.items()}
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
