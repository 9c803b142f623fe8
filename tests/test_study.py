"""Study store: durable rows, state machine, exact round-trip, resume checks, exports."""

import csv
import dataclasses
import json
import sqlite3

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gego.errors import GegoError
from gego.optimize.study import Outcome, Study, StudyError, load_study

CONFIG = {"bounds": [[0.0, 1.0], [-2.0, 3.0]], "names": ["a", "b"], "seed": 7, "settings": {"n_init": 4}}


def _outcome(value, status="complete", error=None, worker="host:1"):
    return Outcome(value, {"d_strain": 0.5, "d_stress": 1.5} if value is not None else {}, status, error,
                   100.0, 101.5, 1.5, worker)


@pytest.fixture
def study(tmp_path):
    with Study.create(tmp_path / "s.sqlite", config=CONFIG) as s:
        yield s


def test_create_stores_config_and_refuses_to_overwrite(tmp_path, study):
    assert study.config["bounds"] == CONFIG["bounds"]
    assert study.config["names"] == ["a", "b"]
    assert study.config["schema_version"] == 1
    with pytest.raises(StudyError, match="already exists"):
        Study.create(tmp_path / "s.sqlite", config=CONFIG)


def test_open_errors_are_one_line_gego_errors(tmp_path):
    with pytest.raises(StudyError, match="no such study file"):
        Study.open(tmp_path / "missing.sqlite")
    bogus = tmp_path / "bogus.sqlite"
    bogus.write_text("this is not a database, just text " * 100)
    with pytest.raises(GegoError, match="not a gego study"):
        Study.open(bogus)
    other = tmp_path / "other.sqlite"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.commit()
    with pytest.raises(StudyError, match="not a gego study"):
        Study.open(other)


def test_row_state_machine_and_immutability(study):
    ids = study.add_pending(0, [[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]])
    assert ids == sorted(ids) and len(ids) == 3
    assert [r.status for r in study.records()] == ["pending"] * 3
    study.mark_running(ids[0])
    study.record_outcome(ids[0], _outcome(2.5))
    study.mark_running(ids[1])
    study.record_outcome(ids[1], _outcome(None, "failed", "RuntimeError: solver diverged"))
    study.mark_running(ids[2])
    by_id = {r.id: r for r in study.records()}
    assert by_id[ids[0]].status == "complete" and by_id[ids[0]].objective == 2.5
    assert by_id[ids[0]].components == {"d_strain": 0.5, "d_stress": 1.5}
    assert by_id[ids[0]].worker == "host:1" and by_id[ids[0]].duration_s == 1.5
    assert by_id[ids[1]].status == "failed" and by_id[ids[1]].objective is None
    assert "diverged" in by_id[ids[1]].error
    assert by_id[ids[2]].status == "running" and by_id[ids[2]].attempts == 1
    # Finished rows never change.
    with pytest.raises(StudyError, match="immutable"):
        study.record_outcome(ids[0], _outcome(-1.0))
    with pytest.raises(StudyError, match="not pending"):
        study.mark_running(ids[1])
    # A crash leaves ids[2] running: re-opening puts it back to pending; attempts keep counting.
    assert study.requeue_running() == 1
    study.mark_running(ids[2])
    assert study.records("running")[0].attempts == 2
    assert [r.id for r in study.records("complete")] == [ids[0]]


def test_committed_rows_are_visible_to_another_connection_at_once(tmp_path, study):
    (row_id,) = study.add_pending(0, [[0.5, 0.5]])
    study.mark_running(row_id)
    study.record_outcome(row_id, _outcome(1.25))
    # A separate reader (another process would see the same): the commit is already durable.
    reader = sqlite3.connect(tmp_path / "s.sqlite")
    status, objective = reader.execute("SELECT status, objective FROM evaluations WHERE id=?", (row_id,)).fetchone()
    assert (status, objective) == ("complete", 1.25)
    assert reader.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def _plain(records):
    return [dataclasses.replace(r, x=r.x.tolist()) for r in records]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["add", "run", "complete", "fail", "requeue", "read"]),
                          st.integers(0, 7)), max_size=40))
def test_cached_records_equal_a_fresh_read_after_any_sequence(tmp_path_factory, ops):
    # records() decodes only the rows after its cached finished prefix; whatever the order of
    # writes and reads, it must return what a new connection reads from the file.
    path = tmp_path_factory.mktemp("cache") / "s.sqlite"
    with Study.create(path, config={}) as s:
        for op, k in ops:
            rows = {r.id: r.status for r in s.records()}
            ids = sorted(rows)
            pick = ids[k % len(ids)] if ids else None
            if op == "add":
                s.add_pending(k, [[0.1 * k, -0.2 * k]] * (1 + k % 3))
            elif op == "run" and pick is not None and rows[pick] == "pending":
                s.mark_running(pick)
            elif op in ("complete", "fail") and pick is not None and rows[pick] == "running":
                s.record_outcome(pick, _outcome(float(k)) if op == "complete" else _outcome(None, "failed", "x"))
            elif op == "requeue":
                s.requeue_running()
            for status in (None, "pending", "running", "complete", "failed"):
                with Study.open(path) as fresh:
                    assert _plain(s.records(status)) == _plain(fresh.records(status))
        cached = s.records()
        if cached:
            with pytest.raises(ValueError):
                cached[0].x[0] = 9.0  # shared records are read-only


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(allow_nan=False, allow_infinity=False, width=64), min_size=1, max_size=5))
def test_parameters_and_objectives_round_trip_exactly(tmp_path_factory, values):
    # Exact resume needs stored floats to come back bit for bit.
    path = tmp_path_factory.mktemp("rt") / "s.sqlite"
    with Study.create(path, config={}) as s:
        (row_id,) = s.add_pending(3, [values])
        s.mark_running(row_id)
        s.record_outcome(row_id, _outcome(values[0]))
    with Study.open(path) as s:
        (rec,) = s.records()
    assert rec.x.tolist() == values and rec.objective == values[0] and rec.iteration == 3


def test_check_config_names_the_differing_key(study):
    study.check_config(CONFIG, ["bounds", "names", "seed"])
    with pytest.raises(StudyError, match="'seed' differs"):
        study.check_config({**CONFIG, "seed": 8}, ["bounds", "seed"])
    with pytest.raises(StudyError, match="'bounds' differs"):
        study.check_config({**CONFIG, "bounds": [[0.0, 2.0], [-2.0, 3.0]]}, ["bounds"])


def test_best_fits_and_exports(tmp_path, study):
    ids = study.add_pending(0, [[0.1, 0.2], [0.3, 0.4], [0.5, 0.6], [0.7, 0.8]])
    for row_id, value in zip(ids, [3.0, 1.0, None, 1.0]):
        study.mark_running(row_id)
        study.record_outcome(row_id, _outcome(value) if value is not None else _outcome(None, "failed", "boom"))
    best = study.best()
    assert best.id == ids[1] and best.objective == 1.0  # earliest id wins a tie
    study.save_fit(1, 3, {"length_scales": [0.1, 0.2], "signal_var": 1.0})
    assert study.fits() == {1: {"n_train": 3, "hyperparameters": {"length_scales": [0.1, 0.2], "signal_var": 1.0}}}

    rows = list(csv.DictReader(open(study.to_csv(tmp_path / "s.csv"))))
    assert [r["status"] for r in rows] == ["complete", "complete", "failed", "complete"]
    assert float(rows[0]["a"]) == 0.1 and float(rows[0]["b"]) == 0.2 and float(rows[1]["objective"]) == 1.0
    assert float(rows[0]["d_stress"]) == 1.5 and rows[2]["error"] == "boom"

    data = json.loads(study.to_json(tmp_path / "s.json").read_text())
    assert data["config"]["names"] == ["a", "b"]
    assert data["evaluations"][3]["params"] == {"a": 0.7, "b": 0.8}

    loaded = load_study(tmp_path / "s.sqlite")
    assert loaded.names == ("a", "b") and loaded.x.shape == (4, 2)
    np.testing.assert_array_equal(loaded.objective, [3.0, 1.0, np.nan, 1.0])
    np.testing.assert_array_equal(loaded.best_so_far, [3.0, 1.0, 1.0, 1.0])
    np.testing.assert_array_equal(loaded.bounds, CONFIG["bounds"])
    assert loaded.status.tolist() == ["complete", "complete", "failed", "complete"]
    np.testing.assert_array_equal(loaded.components["d_strain"], [0.5, 0.5, np.nan, 0.5])
