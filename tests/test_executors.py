"""Executors: serial, process pool (surviving lost workers) and Dask, driven by the loop."""

import functools
import os
from concurrent.futures import BrokenExecutor

import numpy as np
import pytest

from gego.optimize import DaskExecutor, ProcessExecutor, SerialExecutor, minimize

FAST = dict(surrogate_options={"n_restarts": 1}, n_candidates=256, acquisition_options={"n_polish": 1})
BOX = [(-1.0, 2.0), (0.0, 3.0)]


def bowl(x):
    return float((x[0] - 0.5) ** 2 + 2.0 * (x[1] - 1.2) ** 2)


def pid_of(_):
    return os.getpid()


def die():
    os._exit(3)  # what an out-of-memory kill or a segfault in a solver looks like to the pool


def bowl_dying_once(x, *, marker, doomed_x):
    """Kill the worker process the first time it evaluates `doomed_x`."""
    if np.array_equal(x, doomed_x) and not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(3)
    return bowl(x)


def always_dying(x):
    os._exit(3)


def test_serial_executor_runs_in_process_and_carries_exceptions():
    executor = SerialExecutor()
    assert executor.submit(pid_of, 0).result() == os.getpid()
    future = executor.submit(lambda: 1 / 0)
    assert isinstance(future.exception(), ZeroDivisionError)
    assert executor.map(pow, [2, 3], [3, 2]) == [8, 9]


def test_process_pool_runs_elsewhere_and_replaces_a_broken_pool():
    with ProcessExecutor(max_workers=2) as executor:
        assert executor.max_workers == 2
        assert os.getpid() not in executor.map(pid_of, range(4))
        with pytest.raises(BrokenExecutor):
            executor.submit(die).result()
        # The next submit starts a fresh pool instead of failing forever.
        assert executor.submit(pow, 2, 10).result() == 1024
        assert executor.restarts == 1


def test_a_worker_lost_mid_evaluation_is_retried_not_lost(tmp_path):
    serial = minimize(bowl, BOX, n_init=4, budget=8, seed=0, batch_size=2, executor="serial", **FAST)
    doomed = 5  # the second point of the first EGO batch (0-based row)
    objective = functools.partial(bowl_dying_once, marker=str(tmp_path / "killed"), doomed_x=serial.history[doomed].x)
    with ProcessExecutor(max_workers=2) as executor:
        result = minimize(objective, BOX, n_init=4, budget=8, seed=0, batch_size=2, executor=executor,
                          study=tmp_path / "s.sqlite", **FAST)
    assert (tmp_path / "killed").exists() and executor.restarts >= 1
    assert result.nfev == 8 and result.n_failed == 0
    # The killed evaluation ran twice; its batch mate may have been lost with the pool too.
    attempts = [r.attempts for r in result.history]
    assert attempts[doomed] == 2 and attempts[:4] == [1] * 4 and attempts[6:] == [1, 1]
    assert all(r.worker and r.worker.split(":")[1] != str(os.getpid()) for r in result.history)
    # The retried point is the one an undisturbed serial run proposes: the loss changed nothing.
    np.testing.assert_array_equal([r.x for r in result.history], [r.x for r in serial.history])


def test_retries_are_bounded_and_the_study_survives():
    with ProcessExecutor(max_workers=1) as executor:
        result = minimize(always_dying, BOX, n_init=2, budget=3, seed=0, executor=executor, max_retries=1, **FAST)
    assert result.n_failed == 3 and result.nfev == 3
    assert all("worker lost after 2 attempts" in r.error for r in result.history)


def test_dask_local_cluster_gives_the_same_study_as_serial():
    pytest.importorskip("distributed")
    with DaskExecutor(n_workers=1, threads_per_worker=2, processes=False) as executor:
        assert executor.max_workers == 2
        assert executor.submit(pow, 3, 3).result() == 27
        assert isinstance(executor.submit(lambda: 1 / 0).exception(), ZeroDivisionError)
        on_dask = minimize(bowl, BOX, n_init=4, budget=8, seed=1, batch_size=2, executor=executor, **FAST)
    serial = minimize(bowl, BOX, n_init=4, budget=8, seed=1, batch_size=2, executor="serial", **FAST)
    np.testing.assert_array_equal([r.x for r in on_dask.history], [r.x for r in serial.history])
    assert [r.objective for r in on_dask.history] == [r.objective for r in serial.history]
