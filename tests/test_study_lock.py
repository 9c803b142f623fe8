"""One writer per study: a second process is refused with one line, a killed writer's lock is gone.

Real subprocesses: POSIX record locks never conflict inside one process, so only separate
processes show that the lock works (the same-process case has its own guard, tested here too).
"""

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest

from gego.optimize import StudyLockedError, WriterLock, load_study, minimize
from gego.optimize.study import lock_path_of

SCRIPT = textwrap.dedent(
    """
    import os
    import sys
    import time

    import numpy as np

    from gego.optimize import minimize


    def objective(x):
        time.sleep(float(sys.argv[3]))
        while len(sys.argv) > 4 and os.path.exists(sys.argv[4]):  # held until the test lets go
            time.sleep(0.02)
        return float(np.sum((x - 0.3) ** 2))


    minimize(objective, [(0.0, 1.0), (0.0, 1.0)], n_init=4, budget=int(sys.argv[2]), seed=3, study=sys.argv[1],
             executor="serial", surrogate_options={"n_restarts": 0}, n_candidates=64,
             acquisition_options={"n_polish": 0})
    """
)


def _start(script, path, budget, sleep_s, hold=None):
    args = [sys.executable, str(script), str(path), str(budget), str(sleep_s)] + ([str(hold)] if hold else [])
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _n_rows(path) -> int:
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as conn:
            return conn.execute("SELECT COUNT(*) FROM evaluations").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def _wait_for_rows(path, proc, n_rows, timeout_s=120.0):
    deadline = time.monotonic() + timeout_s
    while _n_rows(path) < n_rows:
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        assert time.monotonic() < deadline, "the first writer made no progress"
        time.sleep(0.05)


@pytest.fixture
def script(tmp_path):
    path = tmp_path / "writer.py"
    path.write_text(SCRIPT)
    return path


def test_second_writer_is_refused_with_one_line_and_the_study_is_intact(tmp_path, script):
    path, hold = tmp_path / "s.sqlite", tmp_path / "hold"
    hold.touch()  # the first writer's objective blocks while this file exists
    first = _start(script, path, 10, 0.0, hold)
    try:
        _wait_for_rows(path, first, 4)
        second = _start(script, path, 10, 0.0)
        _, err = second.communicate(timeout=120)
        assert second.returncode != 0
        last = err.strip().splitlines()[-1]
        assert "StudyLockedError" in last and str(path) in last and f":{first.pid}" in last, err
        assert first.poll() is None, "the refused writer must not disturb the running one"
        assert _n_rows(path) == 4  # and it wrote nothing
    finally:
        hold.unlink()
        _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err[-2000:]
    data = load_study(path)
    assert data.x.shape[0] == 10 and set(data.status) == {"complete"}
    assert not lock_path_of(path).exists()  # a clean exit removes the lock file


def test_a_killed_writer_leaves_no_stale_lock_and_resume_takes_over(tmp_path, script):
    path = tmp_path / "s.sqlite"
    first = _start(script, path, 40, 0.2)
    _wait_for_rows(path, first, 6)
    os.kill(first.pid, signal.SIGKILL)
    first.communicate(timeout=60)
    assert lock_path_of(path).exists()  # the file stays, but the kernel has dropped the lock
    second = _start(script, path, 12, 0.0)
    _, err = second.communicate(timeout=300)
    assert second.returncode == 0, err[-2000:]
    data = load_study(path)
    assert data.x.shape[0] == 12 and set(data.status) == {"complete"}


def test_two_writers_starting_a_new_study_at_once_do_not_both_create_it(tmp_path, script):
    path = tmp_path / "new.sqlite"
    procs = [_start(script, path, 8, 0.1) for _ in range(3)]
    results = [p.communicate(timeout=300) for p in procs]
    codes = [p.returncode for p in procs]
    assert codes.count(0) >= 1
    for code, (_, err) in zip(codes, results):
        assert code == 0 or "StudyLockedError" in err.strip().splitlines()[-1], err[-2000:]
    data = load_study(path)
    assert data.x.shape[0] == 8 and set(data.status) == {"complete"}


def test_same_process_second_writer_is_refused_and_the_lock_is_reusable(tmp_path):
    path = tmp_path / "s.sqlite"
    with WriterLock.acquire(path) as lock:
        assert lock.held and lock_path_of(path).read_text().startswith(f"{os.uname().nodename}:{os.getpid()}")
        with pytest.raises(StudyLockedError, match="already being written by this process"):
            minimize(lambda x: float(x[0]), [(0.0, 1.0)], n_init=2, budget=2, seed=0, study=path)
    assert not lock.held
    result = minimize(lambda x: float(x[0]), [(0.0, 1.0)], n_init=2, budget=3, seed=0, study=path,
                      executor="serial")
    assert result.nfev == 3 and not lock_path_of(path).exists()
