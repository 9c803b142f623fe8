"""Where evaluations run: serial, a local process pool, or a Dask cluster.

All executors follow the concurrent.futures interface (``submit(fn, *args) -> Future``, ``map``,
``shutdown``, context manager) and return standard :class:`concurrent.futures.Future` objects, so
the loop waits on any of them the same way. They also say how many tasks they run at once
(``max_workers``): the loop keeps that many evaluations in flight and commits each result as it
arrives.

Infrastructure failures (a pool process killed, a Dask worker lost) surface as an exception from
the future that is *not* raised by the user's function: the loop wraps the user's function so its
own exceptions come back as data (a failed record), and anything the future raises is a lost
worker, which the loop retries a bounded number of times.
"""

from __future__ import annotations

import os
import pickle
import threading
from concurrent.futures import BrokenExecutor, Future
from concurrent.futures import ProcessPoolExecutor as _StdProcessPool

from gego.errors import ConfigError


class SerialExecutor:
    """Run each task in the calling process when it is submitted (no parallelism, no pickling)."""

    max_workers = 1

    def submit(self, fn, /, *args, **kwargs) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - the future carries it, like concurrent.futures
            future.set_exception(exc)
        return future

    def map(self, fn, *iterables):
        return [self.submit(fn, *args).result() for args in zip(*iterables)]

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.shutdown()


class ProcessExecutor:
    """A local process pool (one worker per core by default) that survives lost workers.

    If a worker process dies (killed, out of memory, a segfault in a solver), the standard pool is
    "broken": its pending futures fail with BrokenProcessPool. This wrapper then starts a fresh
    pool on the next ``submit``, so the loop can retry the lost evaluations.

    Parameters
    ----------
    max_workers : int, optional
        Number of worker processes; default ``os.cpu_count()``.
    mp_context : multiprocessing context, optional
        Passed to :class:`concurrent.futures.ProcessPoolExecutor`.
    """

    def __init__(self, max_workers: int | None = None, mp_context=None):
        if max_workers is not None and int(max_workers) < 1:
            raise ConfigError(f"max_workers: expected a positive number of processes, got {max_workers}")
        self.max_workers = int(max_workers or os.cpu_count() or 1)
        self._mp_context = mp_context
        self._pool: _StdProcessPool | None = None
        self._lock = threading.Lock()
        self.restarts = 0

    def _fresh_pool(self) -> _StdProcessPool:
        return _StdProcessPool(max_workers=self.max_workers, mp_context=self._mp_context)

    def submit(self, fn, /, *args, **kwargs) -> Future:
        with self._lock:
            if self._pool is None:
                self._pool = self._fresh_pool()
            try:
                return self._pool.submit(fn, *args, **kwargs)
            except BrokenExecutor:
                # A worker died since the last submit: replace the pool and carry on.
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = self._fresh_pool()
                self.restarts += 1
                return self._pool.submit(fn, *args, **kwargs)

    def map(self, fn, *iterables):
        futures = [self.submit(fn, *args) for args in zip(*iterables)]
        return [f.result() for f in futures]

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=wait, cancel_futures=cancel_futures)
                self._pool = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.shutdown()


class DaskExecutor:
    """Run tasks on a Dask distributed cluster (optional extra ``gego[dask]``).

    Parameters
    ----------
    address : str, optional
        Scheduler address of a running cluster (e.g. one started with dask-jobqueue on a batch
        system). If omitted, a LocalCluster is started and closed with the executor.
    client : distributed.Client, optional
        Use an existing client instead (not closed by :meth:`shutdown`).
    n_workers, threads_per_worker, processes :
        LocalCluster options when neither `address` nor `client` is given.
    retries : int
        Dask-level retries of a task whose worker was lost (on top of the loop's own retries).

    Dask reschedules the tasks of a lost worker by itself; after too many losses it raises
    KilledWorker from the future, which the loop treats as a lost worker and retries.
    """

    def __init__(self, address: str | None = None, *, client=None, n_workers: int = 1,
                 threads_per_worker: int = 1, processes: bool = True, retries: int = 1):
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise ConfigError(
                "executor 'dask': the distributed package is not installed (pip install 'gego[dask]')"
            ) from None
        self._cluster = None
        self._owns_client = client is None
        if client is not None:
            self._client = client
        elif address is not None:
            self._client = Client(address)
        else:
            self._cluster = LocalCluster(n_workers=n_workers, threads_per_worker=threads_per_worker,
                                         processes=processes, dashboard_address=None)
            self._client = Client(self._cluster)
        self._retries = int(retries)

    @property
    def client(self):
        return self._client

    @property
    def max_workers(self) -> int:
        """Threads across the cluster's current workers (at least 1)."""
        threads = self._client.nthreads()
        return max(1, sum(threads.values()))

    def submit(self, fn, /, *args, **kwargs) -> Future:
        dask_future = self._client.submit(fn, *args, pure=False, retries=self._retries, **kwargs)
        future: Future = Future()
        future.dask_future = dask_future  # keep it referenced: Dask forgets unreferenced tasks

        def _transfer(done):
            try:
                future.set_result(done.result())
            except BaseException as exc:  # noqa: BLE001 - carried by the future
                future.set_exception(exc)

        dask_future.add_done_callback(_transfer)
        return future

    def map(self, fn, *iterables):
        futures = [self.submit(fn, *args) for args in zip(*iterables)]
        return [f.result() for f in futures]

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        if self._owns_client and self._client is not None:
            self._client.close()
            self._client = None
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.shutdown()


def make_executor(spec, fun, *, batch_size: int = 1, vectorized: bool = False):
    """Turn the `executor` argument of :func:`gego.optimize.minimize` into an executor.

    Parameters
    ----------
    spec : None, "serial", "process", "dask", or an object with ``submit``
        None picks a process pool with ``min(cpu_count, batch_size)`` workers when a batch of
        several points is evaluated one point per task and `fun` can be pickled, and serial
        otherwise (one point at a time gains nothing from a pool, and a vectorized objective is
        one task per batch).
    fun : callable
        The objective; a process pool needs to pickle it.

    Returns
    -------
    (executor, owned) : the executor and whether the caller must shut it down.

    Raises
    ------
    ConfigError
        Unknown `spec`, or a process pool asked for with an objective that cannot be pickled.
    """
    if spec is None:
        if batch_size > 1 and not vectorized and _picklable(fun):
            return ProcessExecutor(max_workers=min(os.cpu_count() or 1, batch_size)), True
        return SerialExecutor(), True
    if isinstance(spec, str):
        if spec == "serial":
            return SerialExecutor(), True
        if spec == "process":
            executor = ProcessExecutor()
        elif spec == "dask":
            return DaskExecutor(), True
        else:
            raise ConfigError(f"executor: expected 'serial', 'process', 'dask' or an executor object, got {spec!r}")
    elif hasattr(spec, "submit"):
        executor = spec
    else:
        raise ConfigError(f"executor: expected an object with a submit(fn, *args) method, got {type(spec).__name__}")
    if isinstance(executor, ProcessExecutor) and not _picklable(fun):
        raise ConfigError(
            "fun: cannot be sent to worker processes (not picklable: a lambda or a closure?); define it at "
            "module level, or pass executor='serial'"
        )
    return executor, executor is not spec


def _picklable(fun) -> bool:
    # Dask serialises with cloudpickle (closures are fine); the process pool uses plain pickle.
    try:
        pickle.dumps(fun)
    except Exception:  # noqa: BLE001 - any pickling failure means "not picklable"
        return False
    return True
