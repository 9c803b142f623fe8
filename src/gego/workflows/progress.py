"""Progress bars for the long steps of a workflow (tqdm, on stderr), and quiet mode.

The EGO loop commits every evaluation to its study file before moving on, so the bars read the
study file itself (a reader thread, polling): they show the same progress whether evaluations
run in this process, in a process pool, or in seed-parallel worker processes, and they need no
hook inside the loop. A bar shows evaluations finished out of the budget, the phase (the
Latin-hypercube design, then EGO iteration t), the best objective so far, and tqdm's ETA.
"""

from __future__ import annotations

import math
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class StudySnapshot:
    """What a progress bar shows about one study at one moment.

    Attributes
    ----------
    finished : evaluations finished (complete or failed).
    failed : evaluations that failed.
    best : best objective so far (inf before the first complete evaluation).
    iteration : the latest iteration with rows (0 = initial design).
    design_done : whether every row of the initial design has finished.
    """

    finished: int
    failed: int
    best: float
    iteration: int
    design_done: bool


def snapshot_of(records) -> StudySnapshot:
    """Summarise study records (:class:`gego.optimize.EvaluationRecord`) for a progress bar."""
    finished = [r for r in records if r.status in ("complete", "failed")]
    objectives = [r.objective for r in finished if r.status == "complete"]
    design = [r for r in records if r.iteration == 0]
    return StudySnapshot(
        finished=len(finished),
        failed=sum(r.status == "failed" for r in finished),
        best=min(objectives, default=math.inf),
        iteration=max((r.iteration for r in records), default=0),
        design_done=bool(design) and all(r.status in ("complete", "failed") for r in design),
    )


def describe(snap: StudySnapshot) -> tuple[str, str]:
    """(phase, postfix) texts of a bar: ``"LHS"`` or ``"EGO it 12"``, and ``"best=0.1234"``."""
    # Once the design is done, the iteration being worked on is at least the first EGO one.
    phase = "LHS" if not snap.design_done else f"EGO it {max(snap.iteration, 1)}"
    postfix = "best=-" if math.isinf(snap.best) else f"best={snap.best:.4g}"
    if snap.failed:
        postfix += f" failed={snap.failed}"
    return phase, postfix


def read_snapshot(path: Path) -> StudySnapshot | None:
    """Read a study file's progress; None if it does not exist yet or cannot be read right now."""
    from gego.optimize import Study, StudyError

    if not Path(path).is_file():
        return None
    try:
        with Study.open(path) as study:
            return snapshot_of(study.records())
    except (StudyError, OSError, Exception):  # noqa: BLE001 - a bar must never break a run
        return None


class StudyProgress:
    """A tqdm bar following a study file from a background thread.

    Parameters
    ----------
    path : study file to follow (it may not exist yet).
    total : the budget (evaluations).
    label : prefix of the bar, e.g. ``"seed 3"``.
    quiet : no bar at all (log mode); the object still works as a context manager.
    position : tqdm line (for several bars at once).
    interval_s : polling period, s.
    """

    def __init__(self, path, total: int, label: str = "", *, quiet: bool = False, position: int | None = None,
                 interval_s: float = 0.5):
        self.path = Path(path)
        self.total = int(total)
        self.label = label
        self.quiet = quiet
        self.position = position
        self.interval_s = float(interval_s)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._bar = None

    def __enter__(self) -> "StudyProgress":
        if self.quiet:
            return self
        from tqdm.auto import tqdm

        self._bar = tqdm(total=self.total, desc=self.label or "EGO", unit="run", position=self.position,
                         leave=True, dynamic_ncols=True, file=sys.stderr)
        self._thread = threading.Thread(target=self._follow, name=f"progress {self.path.name}", daemon=True)
        self._thread.start()
        return self

    def _follow(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.refresh()

    def refresh(self) -> None:
        """Read the study once and update the bar."""
        snap = read_snapshot(self.path)
        if snap is None or self._bar is None:
            return
        phase, postfix = describe(snap)
        label = f"{self.label} {phase}".strip()
        if self._bar.desc != label:
            self._bar.set_description_str(label, refresh=False)
        self._bar.set_postfix_str(postfix, refresh=False)
        self._bar.update(max(0, min(snap.finished, self.total) - self._bar.n))

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        if self._bar is not None:
            self.refresh()
            self._bar.close()


@contextmanager
def step(label: str, *, quiet: bool = False, total: int | None = None):
    """A bar (or spinner when `total` is None) for a step that is not an EGO study, e.g. the
    reference run of validate or the figures of report. Yields a function ``advance(n=1)``."""
    if quiet:
        yield lambda n=1: None
        return
    from tqdm.auto import tqdm

    started = time.perf_counter()
    bar = tqdm(total=total, desc=label, unit="step", leave=False, dynamic_ncols=True, file=sys.stderr)
    try:
        yield bar.update
    finally:
        bar.close()
        print(f"{label}: done in {time.perf_counter() - started:.1f} s", file=sys.stderr)


def log(message: str, *, quiet: bool = False) -> None:
    """One status line on stderr (suppressed in quiet mode: stdout carries only the results)."""
    if not quiet:
        print(message, file=sys.stderr)
