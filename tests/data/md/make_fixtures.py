"""Write the small LAMMPS fixtures of tests/test_md_*.py (run once; the outputs are committed).

Everything is seeded, so re-running reproduces the files byte for byte.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent


def frame_text(timestep, ids, types, columns, names, bounds_header, bounds):
    lines = ["ITEM: TIMESTEP", str(timestep), "ITEM: NUMBER OF ATOMS", str(len(ids)), bounds_header, *bounds]
    lines.append("ITEM: ATOMS " + " ".join(names))
    for k in range(len(ids)):
        row = []
        for name in names:
            value = columns[name][k]
            row.append(str(int(value)) if name in ("id", "type", "ix", "iy", "iz") else f"{value:.10g}")
        lines.append(" ".join(row))
    return "\n".join(lines) + "\n"


def main() -> None:
    rng = np.random.default_rng(7)
    n = 12
    ids = rng.permutation(np.arange(1, n + 1))  # unsorted on purpose
    types = rng.integers(1, 3, n)
    # orthogonal, two frames, columns in an unusual order, energy column c_pe
    lx, ly, lz = 6.0, 5.0, 1.0
    text = ""
    for step in (0, 100):
        x = rng.uniform(0, lx, n)
        y = rng.uniform(0, ly, n)
        cols = {"id": ids, "type": types, "x": x, "y": y, "z": np.zeros(n), "c_pe": rng.normal(-3.0, 0.1, n)}
        text += frame_text(step, ids, types, cols, ["c_pe", "y", "id", "x", "type", "z"], "ITEM: BOX BOUNDS pp pp pp",
                           [f"0 {lx}", f"0 {ly}", f"-0.5 0.5"])
    (HERE / "ortho_two_frames.dump").write_text(text)
    # triclinic (sheared, xy = 1.5), scaled coordinates, energy named v_epot, gzip
    xy = 1.5
    xs, ys = rng.uniform(0, 1, n), rng.uniform(0, 1, n)
    cols = {"id": ids, "type": types, "xs": xs, "ys": ys, "zs": np.full(n, 0.5), "v_epot": rng.normal(-2.0, 0.1, n)}
    bounds = [f"{min(0, xy)} {lx + max(0, xy)} {xy}", f"0 {ly} 0", "-0.5 0.5 0"]
    text = frame_text(40, ids, types, cols, ["id", "type", "xs", "ys", "zs", "v_epot"], "ITEM: BOX BOUNDS xy xz yz pp pp pp", bounds)
    (HERE / "triclinic_scaled.dump.gz").write_bytes(gzip.compress(text.encode(), mtime=0))
    # wrapped positions with image flags in a tilted cell (for the unwrap rule)
    x = rng.uniform(0, lx, n)
    y = rng.uniform(0, ly, n)
    image = rng.integers(-2, 3, (n, 3))
    image[:, 2] = 0
    cols = {"id": ids, "type": types, "x": x + xy * y / ly, "y": y, "z": np.zeros(n), "ix": image[:, 0], "iy": image[:, 1],
            "iz": image[:, 2], "c_peatom": rng.normal(-3.0, 0.1, n)}
    text = frame_text(7, ids, types, cols, ["id", "type", "x", "y", "z", "ix", "iy", "iz", "c_peatom"],
                      "ITEM: BOX BOUNDS xy xz yz pp pp pp", bounds)
    (HERE / "tilted_images.dump").write_text(text)
    # LAMMPS log with two runs, a warning inside the second table, and an unfinished last row
    log = """LAMMPS (22 Jul 2025 - Update 4)
units metal
Step Temp PotEng Pxy
       0   300.0   -100.0   10.0
      10   299.0   -100.5   12.0
Loop time of 0.1 on 2 procs for 10 steps with 100 atoms

run 20
   Step          Temp          PotEng          Pxy     Press
        10   299.0   -100.5   -5.0   1.0
        20   298.0   -101.0   -15.0   2.0
WARNING: Dump sort ... (src/dump.cpp:100)
        30   297.0   -101.5   -25.0   3.0
Loop time of 0.2 on 2 procs for 20 steps with 100 atoms
"""
    (HERE / "two_runs.log").write_text(log)
    # the first rows of the bundled CuZr stress table (tab separated, no header)
    rows = (Path(__file__).parents[4] / "shared/data/cuzr_md/stress_rand2_matlab.txt")
    if rows.is_file():
        (HERE / "stress_table_head.txt").write_text("\n".join(rows.read_text().splitlines()[:6]) + "\n")


if __name__ == "__main__":
    main()
