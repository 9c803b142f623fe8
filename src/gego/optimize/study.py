"""Durable study store: one SQLite file per optimisation study.

Every evaluation of the objective is a row that is committed before the loop moves on, so a
calibration of thousands of expensive runs survives a crash (even ``kill -9``) and resumes where
it stopped. The design follows the usual trial-store pattern: each row has a small state machine

    pending -> running -> complete | failed

and finished rows never change. Rows found ``running`` when a study is re-opened were in flight
at the crash and are put back to ``pending`` so they are re-run.

Tables
------
``meta``        key -> JSON value: the study configuration (bounds, names, seed, EGO options,
                a user config such as the calibration's TOML) and the gego version.
``evaluations`` one row per evaluation: id, iteration (0 = initial design), params (JSON list of
                floats in the user's units; ``repr`` round-trips floats exactly), objective,
                components (JSON), status, error, started / finished (UTC unix seconds),
                duration_s, worker, attempts.
``surrogate_fits`` hyperparameters of each GP refit, keyed by iteration, so a resumed study
                replays the surrogate without refitting (exact same proposals).

The loop is the only writer (workers return results to it), so plain sqlite3 with WAL and
``synchronous=FULL`` is enough: a committed row survives a power cut, not only a process kill.
That a study has one writer at a time is enforced by :class:`WriterLock` (a POSIX record lock on
``<study>.lock``, held by :func:`gego.optimize.minimize` for the whole session): a second process
resuming the same study fails at once with one line naming the owner, instead of proposing and
running the same points twice. The kernel drops the lock when its owner dies (even by
``kill -9``), so a crashed study can be resumed immediately; readers take no lock.
"""

from __future__ import annotations

import csv
import errno
import fcntl
import json
import math
import os
import socket
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gego.errors import GegoError

STATUSES = ("pending", "running", "complete", "failed")
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS evaluations (
    id         INTEGER PRIMARY KEY,
    iteration  INTEGER NOT NULL,
    params     TEXT    NOT NULL,
    objective  REAL,
    components TEXT,
    status     TEXT    NOT NULL CHECK (status IN ('pending', 'running', 'complete', 'failed')),
    error      TEXT,
    started    REAL,
    finished   REAL,
    duration_s REAL,
    worker     TEXT,
    attempts   INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS evaluations_by_iteration ON evaluations (iteration);
CREATE TABLE IF NOT EXISTS surrogate_fits (
    iteration       INTEGER PRIMARY KEY,
    n_train         INTEGER NOT NULL,
    hyperparameters TEXT    NOT NULL
);
"""


class StudyError(GegoError):
    """A study file is missing, is not a gego study, or does not match the requested run."""


class StudyLockedError(StudyError):
    """Another process (or another session of this one) is writing the study."""


# Lock files held by this process: POSIX record locks never conflict within one process (and
# closing any descriptor of the file would drop them), so same-process writers are refused here.
_HELD_LOCKS: dict[str, "WriterLock"] = {}
_HELD_LOCKS_GUARD = threading.Lock()


def lock_path_of(path) -> Path:
    """The lock file of a study file: ``<study>.lock`` beside it."""
    path = Path(path)
    return path.with_name(path.name + ".lock")


class WriterLock:
    """Exclusive writer lock of one study file (``fcntl.lockf`` on ``<study>.lock``).

    Acquire with :meth:`acquire`; it never waits. The lock file holds the owner's
    ``host:pid`` and start time for the error message of a refused writer. The lock is a POSIX
    record lock: the kernel releases it when the owning process exits, however it exits, and
    forked children (process-pool workers) do not inherit it, so a lock can only be stale if its
    owner's host crashed while the study sits on a network file system; then delete the lock
    file (only once that host is known to be down).
    """

    def __init__(self, study_path: Path, lock_file: Path, fd: int):
        self.study_path, self.lock_file, self._fd = study_path, lock_file, fd

    @classmethod
    def acquire(cls, study_path) -> "WriterLock":
        """Take the writer lock of `study_path` or raise StudyLockedError (one line)."""
        study_path = Path(study_path)
        lock_file = lock_path_of(study_path)
        key = str(lock_file.resolve())
        with _HELD_LOCKS_GUARD:
            held = _HELD_LOCKS.get(key)
            if held is not None:
                raise StudyLockedError(f"{study_path}: study is already being written by this process "
                                       f"({_owner_text()}); two writers would run the same points twice")
            lock_file.parent.mkdir(parents=True, exist_ok=True)
            while True:
                fd = os.open(lock_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
                try:
                    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError as exc:
                    owner = _read_owner(fd)
                    os.close(fd)
                    if exc.errno not in (errno.EACCES, errno.EAGAIN):
                        raise StudyError(f"{lock_file}: cannot lock the study ({exc.strerror})") from None
                    raise StudyLockedError(
                        f"{study_path}: study is being written by {owner or 'another process'}; wait for it "
                        f"to finish or stop it (the lock {lock_file.name} is released when it exits)"
                    ) from None
                # A releasing owner unlinks the file: if ours was unlinked meanwhile, retry.
                try:
                    same = os.path.samestat(os.fstat(fd), os.stat(lock_file))
                except FileNotFoundError:
                    same = False
                if same:
                    break
                os.close(fd)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{_owner_text()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode(), 0)
            lock = cls(study_path, lock_file, fd)
            _HELD_LOCKS[key] = lock
        return lock

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Drop the lock and remove the lock file (idempotent)."""
        with _HELD_LOCKS_GUARD:
            if self._fd is None:
                return
            _HELD_LOCKS.pop(str(self.lock_file.resolve()), None)
            try:
                self.lock_file.unlink(missing_ok=True)  # while still locked: see acquire's retry
            finally:
                os.close(self._fd)  # closing drops the record lock
                self._fd = None

    def __enter__(self) -> "WriterLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _owner_text() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _read_owner(fd: int) -> str:
    try:
        return os.pread(fd, 200, 0).decode(errors="replace").strip()
    except OSError:
        return ""


@dataclass(frozen=True)
class EvaluationRecord:
    """One evaluation of the objective, as stored.

    Attributes
    ----------
    id : int
        Row id; rows are proposed, evaluated and used by the surrogate in id order.
    iteration : int
        0 for the initial design, t >= 1 for the t-th EGO iteration (Alg 1 step 7-15).
    x : ndarray, shape (d,)
        Parameters in the user's units.
    objective : float or None
        The objective value; None unless status is "complete".
    components : dict
        Named parts of the objective (e.g. the distances d_i of Eq 24); empty if not given.
    status : str
        "pending", "running", "complete" or "failed".
    error : str or None
        Why the evaluation failed (exception text, "objective is NaN", "worker lost").
    started, finished : float or None
        UTC unix time stamps (s).
    duration_s : float or None
        Wall time of the evaluation in the worker (s).
    worker : str or None
        "host:pid" (or the Dask worker address) that ran it.
    attempts : int
        How many times it was started (re-runs after a crash or a lost worker count).
    """

    id: int
    iteration: int
    x: np.ndarray
    objective: float | None
    components: dict = field(default_factory=dict)
    status: str = "pending"
    error: str | None = None
    started: float | None = None
    finished: float | None = None
    duration_s: float | None = None
    worker: str | None = None
    attempts: int = 0


@dataclass(frozen=True)
class Outcome:
    """What one evaluation produced; written into its row by :meth:`Study.record_outcome`."""

    objective: float | None
    components: dict
    status: str
    error: str | None
    started: float
    finished: float
    duration_s: float
    worker: str


def _dumps(value) -> str:
    """JSON with exact float round-trip (json uses repr) and no NaN tokens."""
    return json.dumps(value, sort_keys=True, allow_nan=False)


def _json_ready(value):
    """Convert numpy scalars/arrays and tuples into plain JSON data."""
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, np.ndarray):
        return _json_ready(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)  # "nan"/"inf" as text: JSON has no token for them
    return value


_FINISHED = ("complete", "failed")


def _record_of(row) -> EvaluationRecord:
    """An EvaluationRecord from one row of the SELECT in :meth:`Study.records`."""
    x = np.array(json.loads(row[2]), dtype=float)
    x.flags.writeable = False  # records are shared (the finished prefix): immutable like the row
    return EvaluationRecord(
        id=row[0],
        iteration=row[1],
        x=x,
        objective=row[3],
        components=json.loads(row[4]) if row[4] else {},
        status=row[5],
        error=row[6],
        started=row[7],
        finished=row[8],
        duration_s=row[9],
        worker=row[10],
        attempts=row[11],
    )


def _connect(path: Path) -> sqlite3.Connection:
    # isolation_level=None: we issue BEGIN/COMMIT ourselves so every write is one explicit
    # transaction that is durable when the call returns.
    conn = sqlite3.connect(str(path), isolation_level=None, timeout=30.0)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


class Study:
    """An optimisation study stored in one SQLite file.

    Create with :meth:`create`, re-open with :meth:`open`. The loop in :mod:`gego.optimize.loop`
    is the only writer; any number of readers (plots, ``load_study``) may open the file at the
    same time thanks to WAL.
    """

    def __init__(self, path: Path, conn: sqlite3.Connection):
        self.path = Path(path)
        self._conn = conn
        # Leading run (in id order) of finished rows already decoded: a finished row never
        # changes (record_outcome refuses a second outcome, nothing deletes rows) and new rows
        # get larger ids, so records() only reads and JSON-decodes the rows after it (O(new)
        # per loop iteration instead of O(N): 0.09 s per call at N = 8,000).
        self._finished_prefix: list[EvaluationRecord] = []

    # ------------------------------------------------------------------ life cycle
    @classmethod
    def create(cls, path, *, config: dict) -> "Study":
        """Create a new study file holding `config` (plain JSON data).

        Raises
        ------
        StudyError
            If the file already exists (re-open it with :meth:`open` instead).
        """
        path = Path(path)
        in_memory = str(path) == ":memory:"
        if not in_memory and path.exists():
            raise StudyError(f"{path}: study file already exists (open it to resume)")
        rows = {"schema_version": SCHEMA_VERSION, "created": time.time()}
        rows.update(_json_ready(config))
        # Build the file under a temporary name and rename it into place, so that a crash during
        # creation never leaves a half-made study at `path` (a rename is atomic on POSIX).
        draft = path if in_memory else path.with_name(f".{path.name}.{os.getpid()}.creating")
        if not in_memory:
            path.parent.mkdir(parents=True, exist_ok=True)
            draft.unlink(missing_ok=True)
        conn = _connect(draft)
        conn.executescript(_SCHEMA)
        with _Transaction(conn):
            conn.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?)", [(k, _dumps(v)) for k, v in rows.items()]
            )
        if in_memory:
            return cls(path, conn)
        conn.close()  # the last connection checkpoints the WAL into the file
        os.replace(draft, path)
        return cls(path, _connect(path))

    @classmethod
    def open(cls, path) -> "Study":
        """Open an existing study file.

        Raises
        ------
        StudyError
            If the file does not exist or is not a gego study.
        """
        path = Path(path)
        if not path.is_file():
            raise StudyError(f"{path}: no such study file")
        try:
            conn = _connect(path)
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        except sqlite3.DatabaseError as exc:
            raise StudyError(f"{path}: not a gego study file ({exc})") from None
        if not {"meta", "evaluations", "surrogate_fits"} <= tables:
            conn.close()
            raise StudyError(f"{path}: not a gego study file (tables meta/evaluations missing)")
        return cls(path, conn)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> "Study":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _transaction(self):
        return _Transaction(self._conn)

    # ------------------------------------------------------------------ configuration
    @property
    def config(self) -> dict:
        """The stored configuration as plain data (key -> JSON value)."""
        return {k: json.loads(v) for k, v in self._conn.execute("SELECT key, value FROM meta")}

    def check_config(self, expected: dict, keys, legacy_defaults: dict | None = None) -> None:
        """Refuse to continue a study whose stored configuration differs from `expected`.

        `legacy_defaults` gives, for keys added after a study may have been stored, the value a
        study without that key was made with (so older studies still resume).

        Raises
        ------
        StudyError
            One line naming the first differing key and both values.
        """
        stored = self.config
        for key in keys:
            want = json.loads(_dumps(_json_ready(expected.get(key))))
            have = stored.get(key, (legacy_defaults or {}).get(key))
            if want != have:
                raise StudyError(
                    f"{self.path}: cannot resume, configuration key '{key}' differs "
                    f"(study has {have!r}, this run asks for {want!r})"
                )

    def set_meta(self, key: str, value) -> None:
        """Store or replace one configuration entry (e.g. the latest budget)."""
        with self._transaction():
            self._conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, _dumps(_json_ready(value)))
            )

    # ------------------------------------------------------------------ evaluations
    def add_pending(self, iteration: int, points) -> list[int]:
        """Insert the rows of a batch (or the initial design) as pending, in one transaction.

        Returns the new row ids, in the order of `points`.
        """
        points = np.atleast_2d(np.asarray(points, dtype=float))
        with self._transaction():
            ids = []
            for x in points:
                cur = self._conn.execute(
                    "INSERT INTO evaluations (iteration, params, status) VALUES (?, ?, 'pending')",
                    (int(iteration), _dumps([float(v) for v in x])),
                )
                ids.append(int(cur.lastrowid))
        return ids

    def mark_running(self, row_id: int, started: float | None = None) -> None:
        """Mark a pending row as running and count the attempt."""
        with self._transaction():
            cur = self._conn.execute(
                "UPDATE evaluations SET status='running', attempts=attempts+1, started=? "
                "WHERE id=? AND status IN ('pending', 'running')",
                (time.time() if started is None else started, int(row_id)),
            )
            if cur.rowcount != 1:
                raise StudyError(f"{self.path}: evaluation {row_id} is not pending (already finished?)")

    def record_outcome(self, row_id: int, outcome: Outcome) -> None:
        """Write the result of an evaluation into its row (committed before returning).

        Finished rows are immutable: recording twice raises.
        """
        if outcome.status not in ("complete", "failed"):
            raise ValueError(f"outcome status must be 'complete' or 'failed', got {outcome.status!r}")
        with self._transaction():
            cur = self._conn.execute(
                "UPDATE evaluations SET status=?, objective=?, components=?, error=?, started=?, "
                "finished=?, duration_s=?, worker=? WHERE id=? AND status IN ('pending', 'running')",
                (
                    outcome.status,
                    outcome.objective if outcome.status == "complete" else None,
                    _dumps(_json_ready(outcome.components or {})),
                    outcome.error,
                    outcome.started,
                    outcome.finished,
                    outcome.duration_s,
                    outcome.worker,
                    int(row_id),
                ),
            )
            if cur.rowcount != 1:
                raise StudyError(f"{self.path}: evaluation {row_id} is already finished; records are immutable")

    def requeue_running(self) -> int:
        """Put rows left 'running' by a crash back to 'pending'; returns how many."""
        with self._transaction():
            cur = self._conn.execute("UPDATE evaluations SET status='pending' WHERE status='running'")
        return cur.rowcount

    def records(self, status: str | None = None) -> list[EvaluationRecord]:
        """All evaluation records in id order, optionally only those with one status."""
        if status is not None and status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
        prefix = self._finished_prefix
        after = prefix[-1].id if prefix else -1
        query = (
            "SELECT id, iteration, params, objective, components, status, error, started, finished, "
            "duration_s, worker, attempts FROM evaluations WHERE id > ?"
        )
        args: tuple = (after,)
        if status is not None:
            query += " AND status=?"
            args = (after, status)
        rows = self._conn.execute(query + " ORDER BY id", args).fetchall()
        recent = [_record_of(r) for r in rows]
        if status is None:
            grown = 0
            while grown < len(recent) and recent[grown].status in _FINISHED:
                grown += 1
            prefix.extend(recent[:grown])
            return prefix + recent[grown:]
        if status in _FINISHED:
            return [r for r in prefix if r.status == status] + recent
        return recent  # a pending or running row is never in the finished prefix

    def best(self) -> EvaluationRecord | None:
        """The complete record with the smallest objective (earliest id on ties), or None."""
        row = self._conn.execute(
            "SELECT id FROM evaluations WHERE status='complete' ORDER BY objective, id LIMIT 1"
        ).fetchone()
        if row is None:
            return None
        return next(r for r in self.records("complete") if r.id == row[0])

    # ------------------------------------------------------------------ surrogate replay
    def save_fit(self, iteration: int, n_train: int, hyperparameters: dict) -> None:
        """Store the GP hyperparameters fitted at `iteration` (used to replay on resume)."""
        with self._transaction():
            self._conn.execute(
                "INSERT OR REPLACE INTO surrogate_fits (iteration, n_train, hyperparameters) VALUES (?, ?, ?)",
                (int(iteration), int(n_train), _dumps(_json_ready(hyperparameters))),
            )

    def fits(self) -> dict[int, dict]:
        """Stored hyperparameters by iteration: {iteration: {"n_train": n, "hyperparameters": hp}}."""
        rows = self._conn.execute("SELECT iteration, n_train, hyperparameters FROM surrogate_fits")
        return {it: {"n_train": n, "hyperparameters": json.loads(hp)} for it, n, hp in rows}

    # ------------------------------------------------------------------ export
    def to_csv(self, path) -> Path:
        """Write one line per evaluation: id, iteration, status, one column per parameter,
        objective, one column per objective component, error, timings, worker."""
        records = self.records()
        names = self.config.get("names") or [f"x{i}" for i in range(records[0].x.size if records else 0)]
        component_keys = sorted({k for r in records for k in r.components})
        path = Path(path)
        with path.open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(
                ["id", "iteration", "status", *names, "objective", *component_keys, "error",
                 "started", "finished", "duration_s", "worker", "attempts"]
            )
            for r in records:
                writer.writerow(
                    [r.id, r.iteration, r.status, *(repr(float(v)) for v in r.x),
                     "" if r.objective is None else repr(r.objective),
                     *(r.components.get(k, "") for k in component_keys),
                     r.error or "", r.started or "", r.finished or "", r.duration_s or "",
                     r.worker or "", r.attempts]
                )
        return path

    def to_json(self, path) -> Path:
        """Write {"config": ..., "evaluations": [...]} as JSON (parameters as name -> value)."""
        config = self.config
        names = config.get("names")
        evaluations = []
        for r in self.records():
            keys = names if names else [f"x{i}" for i in range(r.x.size)]
            evaluations.append(
                {"id": r.id, "iteration": r.iteration, "status": r.status,
                 "params": dict(zip(keys, (float(v) for v in r.x))), "objective": r.objective,
                 "components": r.components, "error": r.error, "started": r.started,
                 "finished": r.finished, "duration_s": r.duration_s, "worker": r.worker,
                 "attempts": r.attempts}
            )
        path = Path(path)
        path.write_text(json.dumps({"config": config, "evaluations": evaluations}, indent=1))
        return path


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error): one durable write."""

    def __init__(self, conn: sqlite3.Connection):
        self._conn = conn

    def __enter__(self):
        self._conn.execute("BEGIN IMMEDIATE")
        return self._conn

    def __exit__(self, exc_type, exc, tb):
        self._conn.execute("ROLLBACK" if exc_type else "COMMIT")
        return False


@dataclass(frozen=True)
class StudyData:
    """A study loaded as plain arrays for analysis and plotting.

    Attributes
    ----------
    names : tuple of str
        Parameter names.
    bounds : ndarray, shape (d, 2)
        Lower and upper bound of each parameter.
    x : ndarray, shape (n, d)
        Parameters of every evaluation, in id order.
    objective : ndarray, shape (n,)
        Objective values; NaN where the evaluation did not complete.
    status : ndarray of str, shape (n,)
    iteration : ndarray of int, shape (n,)
    components : dict of str -> ndarray, shape (n,)
        Each objective component (NaN where missing).
    best_so_far : ndarray, shape (n,)
        Running minimum of the objective over completed evaluations (inf before the first).
    records : list of EvaluationRecord
    config : dict
    """

    names: tuple
    bounds: np.ndarray
    x: np.ndarray
    objective: np.ndarray
    status: np.ndarray
    iteration: np.ndarray
    components: dict
    best_so_far: np.ndarray
    records: list
    config: dict


def _as_float(value) -> float:
    """A component value as a float; NaN when missing or not a number."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def load_study(path) -> StudyData:
    """Load a study file as plain numpy arrays (see :class:`StudyData`)."""
    with Study.open(path) as study:
        records = study.records()
        config = study.config
    names = tuple(config.get("names") or ())
    dim = len(names) if names else (records[0].x.size if records else 0)
    x = np.array([r.x for r in records], dtype=float).reshape(len(records), dim)
    objective = np.array(
        [r.objective if r.status == "complete" else np.nan for r in records], dtype=float
    )
    keys = sorted({k for r in records for k in r.components})
    components = {k: np.array([_as_float(r.components.get(k)) for r in records]) for k in keys}
    best_so_far = np.minimum.accumulate(np.where(np.isnan(objective), np.inf, objective)) if records else objective
    return StudyData(
        names=names,
        bounds=np.array(config.get("bounds", np.zeros((0, 2))), dtype=float).reshape(-1, 2),
        x=x,
        objective=objective,
        status=np.array([r.status for r in records], dtype=str),
        iteration=np.array([r.iteration for r in records], dtype=int),
        components=components,
        best_so_far=best_so_far,
        records=records,
        config=config,
    )
