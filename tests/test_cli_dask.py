"""`gego calibrate --dask ADDRESS` against a real Dask scheduler and worker (separate processes on
loopback), as a user would start them on a cluster (``dask scheduler`` / ``dask worker``)."""

import os
import shutil
import socket
import subprocess
import sys
import time

import pytest

from gego.cli import main

pytest.importorskip("distributed")

TINY = ["--grid", "8", "--steps-per-frame", "1", "--set", "solver.n_frames=50"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"no scheduler on 127.0.0.1:{port} after {timeout_s} s")


@pytest.fixture
def dask_cluster(tmp_path):
    """A scheduler and one single-threaded worker, each its own process; yields the address."""
    dask_cli = shutil.which("dask", path=os.path.dirname(sys.executable)) or shutil.which("dask")
    if dask_cli is None:
        pytest.skip("the dask command (gego[dask]) is not installed")
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    log = open(tmp_path / "dask.log", "w")
    procs = [subprocess.Popen([dask_cli, "scheduler", "--host", "127.0.0.1", "--port", str(port),
                               "--no-dashboard"], stdout=log, stderr=log)]
    try:
        _wait_for_port(port, 60)
        procs.append(subprocess.Popen([dask_cli, "worker", address, "--nthreads", "1", "--nworkers", "1",
                                       "--no-dashboard", "--name", "gego-test-worker"], stdout=log, stderr=log))
        from distributed import Client

        with Client(address, timeout=60) as client:
            client.wait_for_workers(1, timeout=60)
        yield address
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in reversed(procs):
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        log.close()


def test_calibrate_runs_its_evaluations_on_a_dask_scheduler(dask_cluster, tmp_path, capsys):
    study = tmp_path / "dask.db"
    code = main(["calibrate", *TINY, "--budget", "6", "--n-init", "4", "--batch-size", "2", "--dask", dask_cluster,
                 "--study", str(study), "--quiet", "--json", str(tmp_path / "s.json")])
    assert code == 0, capsys.readouterr().err
    from gego.optimize import Study

    with Study.open(study) as s:
        records = s.records()
        stored = s.config
    assert len(records) == 6 and all(r.status == "complete" for r in records)
    # every evaluation ran on the Dask worker process, not in this process
    assert all(r.worker and not r.worker.endswith(f":{os.getpid()}") for r in records), [r.worker for r in records]
    assert stored["workflow_config"]["execution"]["dask_address"] == dask_cluster
