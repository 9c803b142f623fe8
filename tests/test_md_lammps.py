"""LAMMPS dump and log/thermo readers (gego.md.lammps): fixtures, unwrap rule, errors, fuzzing."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gego.errors import ConfigError, DataFormatError
from gego.md.lammps import Box, find_energy_column, iter_dump, read_dump, read_thermo, shear_stress_gpa

DATA = Path(__file__).parent / "data" / "md"


def write_frames(path: Path, frames: list[dict], names: list[str], triclinic: bool = False) -> None:
    """Write a dump from {"step", "lengths", "xy", "columns"} dicts (our own writer, for round trips)."""
    out = []
    for f in frames:
        lx, ly, lz = f["lengths"]
        xy = f.get("xy", 0.0)
        n = len(f["columns"]["id"])
        out += ["ITEM: TIMESTEP", str(f["step"]), "ITEM: NUMBER OF ATOMS", str(n)]
        if triclinic:
            out += ["ITEM: BOX BOUNDS xy xz yz pp pp pp", f"{_fmt(min(0.0, xy))} {_fmt(lx + max(0.0, xy))} {_fmt(xy)}", f"0 {_fmt(ly)} 0", f"0 {_fmt(lz)} 0"]
        else:
            out += ["ITEM: BOX BOUNDS pp pp pp", f"0 {_fmt(lx)}", f"0 {_fmt(ly)}", f"0 {_fmt(lz)}"]
        out.append("ITEM: ATOMS " + " ".join(names))
        for k in range(n):
            out.append(" ".join(_fmt(f["columns"][c][k]) for c in names))
    path.write_text("\n".join(out) + "\n")


def _fmt(value) -> str:
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return repr(float(value))  # shortest string that reads back to the same double


# ------------------------------------------------------------------------------ fixtures


def test_orthogonal_dump_any_column_order_sorted_by_id():
    frames = read_dump(DATA / "ortho_two_frames.dump")
    assert [f.timestep for f in frames] == [0, 100]
    raw = (DATA / "ortho_two_frames.dump").read_text().splitlines()
    # first atom line of frame 0: "c_pe y id x type z"
    first = raw[9].split()
    atom_id = int(first[2])
    f0 = frames[0]
    assert np.all(np.diff(f0.ids) > 0)
    row = int(np.flatnonzero(f0.ids == atom_id)[0])
    assert f0.positions[row, 0] == pytest.approx(float(first[3]))
    assert f0.positions[row, 1] == pytest.approx(float(first[1]))
    assert f0.energy[row] == pytest.approx(float(first[0]))
    assert f0.box.lengths == (6.0, 5.0, 1.0) and f0.box.tilt == (0.0, 0.0, 0.0)
    assert f0.image is None and not f0.unwrapped


def test_triclinic_scaled_gzip_dump():
    (frame,) = read_dump(DATA / "triclinic_scaled.dump.gz")
    assert frame.box.xy == 1.5 and frame.box.lx == pytest.approx(6.0) and frame.box.ly == pytest.approx(5.0)
    xs, ys = frame.columns["xs"], frame.columns["ys"]
    # scaled -> Cartesian: x = xlo + xs lx + ys xy, y = ylo + ys ly
    np.testing.assert_allclose(frame.positions[:, 0], xs * 6.0 + ys * 1.5, rtol=0, atol=1e-12)
    np.testing.assert_allclose(frame.positions[:, 1], ys * 5.0, rtol=0, atol=1e-12)
    assert frame.energy is frame.columns["v_epot"]


def test_unwrap_with_image_flags_uses_the_tilt():
    (frame,) = read_dump(DATA / "tilted_images.dump")
    x, y = frame.columns["x"], frame.columns["y"]
    ix, iy = frame.columns["ix"], frame.columns["iy"]
    unwrapped = frame.unwrapped_positions()
    # Lees-Edwards: xu = x + ix lx + iy xy, yu = y + iy ly
    np.testing.assert_allclose(unwrapped[:, 0], x + ix * 6.0 + iy * 1.5, atol=1e-12)
    np.testing.assert_allclose(unwrapped[:, 1], y + iy * 5.0, atol=1e-12)
    assert np.any(iy != 0)  # the fixture exercises the tilt term
    assert frame.energy is frame.columns["c_peatom"]


def test_unwrap_without_image_flags_is_an_error():
    (frame,) = read_dump(DATA / "triclinic_scaled.dump.gz")
    with pytest.raises(DataFormatError, match="image flags"):
        frame.unwrapped_positions()


def test_unwrapped_columns_are_preferred(tmp_path):
    cols = {"id": [1, 2], "x": [0.5, 1.5], "y": [0.5, 0.5], "z": [0.0, 0.0], "xu": [10.5, -3.5], "yu": [0.5, 0.5], "zu": [0.0, 0.0]}
    write_frames(tmp_path / "d", [{"step": 0, "lengths": (2.0, 2.0, 1.0), "columns": cols}], ["id", "x", "y", "z", "xu", "yu", "zu"])
    (frame,) = read_dump(tmp_path / "d")
    assert frame.unwrapped and frame.unwrapped_positions()[0, 0] == 10.5
    (frame,) = read_dump(tmp_path / "d", position_kind="x")
    assert not frame.unwrapped and frame.positions[0, 0] == 0.5


@pytest.mark.parametrize("name", ["c_pe", "pe", "c_peatom", "c_pe_atom", "v_pe", "c_epot", "PE", "c_pe1"])
def test_energy_column_found_by_name(name):
    assert find_energy_column(["id", "type", "x", "y", name, "c_ke"]) == name


def test_energy_column_ambiguous_missing_and_named():
    with pytest.raises(DataFormatError, match="--energy-column"):
        find_energy_column(["id", "c_pe", "v_epot"])
    assert find_energy_column(["id", "x", "c_ke"]) is None
    assert find_energy_column(["id", "c_pe", "v_epot"], requested="v_epot") == "v_epot"
    with pytest.raises(DataFormatError, match="c_missing"):
        find_energy_column(["id", "c_pe"], requested="c_missing")


def test_missing_energy_column_is_one_line_error():
    with pytest.raises(DataFormatError) as info:
        read_dump(DATA / "ortho_two_frames.dump", energy_column="c_other", require_energy=True)
    message = str(info.value)
    assert "\n" not in message and "ortho_two_frames.dump" in message and "frame 0" in message


def test_streaming_reads_one_frame_at_a_time(tmp_path):
    """A corrupt second frame is only reported after the first frame has been yielded."""
    text = (DATA / "ortho_two_frames.dump").read_text().splitlines()
    text[-1] = text[-1].replace(text[-1].split()[1], "abc")  # last atom line of frame 1
    (tmp_path / "d").write_text("\n".join(text) + "\n")
    frames = iter_dump(tmp_path / "d")
    assert next(frames).timestep == 0
    with pytest.raises(DataFormatError, match=r"d:\d+: frame 1: non-numeric field 'abc'"):
        next(frames)


# ------------------------------------------------------------------------------ malformed input


def _lines():
    return (DATA / "ortho_two_frames.dump").read_text().splitlines()


@pytest.mark.parametrize(
    "mutate, pattern",
    [
        (lambda ls: ls[:15], r":16: frame 0: truncated frame, 6 of 12 atom lines"),
        (lambda ls: ls[:9] + [ls[9] + " 7"] + ls[10:], r":10: frame 0: expected 6 columns, found 7"),
        (lambda ls: ls[:10] + [ls[10].replace(ls[10].split()[0], "x1y")] + ls[11:], r":11: frame 0: non-numeric field 'x1y'"),
        (lambda ls: ls[:1] + ["zero"] + ls[2:], r":2: frame 0: timestep is not an integer"),
        (lambda ls: ls[:4], r"frame 0: file ends inside the frame"),
        (lambda ls: ["garbage"] + ls, r":1: frame 0: expected 'ITEM: TIMESTEP'"),
        (lambda ls: ls[:8] + [ls[8].replace(" id", " ident")] + ls[9:], r"no 'id' column"),
        (lambda ls: ls[:9] + [ls[9].replace(ls[9].split()[0], "nan")] + ls[10:], r":10: frame 0: NaN"),
        (lambda ls: ls[:3] + ["0"] + ls[4:], r":4: frame 0: number of atoms must be positive, got 0"),  # found by the fuzz test
    ],
)
def test_malformed_dump_one_line_error(tmp_path, mutate, pattern):
    path = tmp_path / "bad.dump"
    path.write_text("\n".join(mutate(_lines())) + "\n")
    with pytest.raises(DataFormatError, match=pattern) as info:
        read_dump(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_missing_file():
    with pytest.raises(DataFormatError, match="not found"):
        read_dump(DATA / "nope.dump")


# ------------------------------------------------------------------------------ property tests


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    n=st.integers(1, 20),
    n_frames=st.integers(1, 3),
    kind=st.sampled_from(["x", "xs", "xu"]),
    triclinic=st.booleans(),
    order_seed=st.integers(0, 10_000),
    compress=st.booleans(),
)
def test_round_trip_property(tmp_path, n, n_frames, kind, triclinic, order_seed, compress):
    rng = np.random.default_rng(order_seed)
    names = ["id", "type", kind, {"x": "y", "xs": "ys", "xu": "yu"}[kind], {"x": "z", "xs": "zs", "xu": "zu"}[kind], "c_pe"]
    if kind == "x":
        names += ["ix", "iy", "iz"]
    names = list(rng.permutation(names))
    frames, expected = [], []
    for step in range(n_frames):
        lengths = tuple(float(v) for v in rng.uniform(1, 10, 3))
        xy = float(rng.uniform(-0.4, 0.4) * lengths[0]) if triclinic else 0.0
        ids = rng.permutation(np.arange(1, n + 1) * 3)
        frac = rng.uniform(0, 1, (n, 3))
        box = Box((0.0, 0.0, 0.0), lengths, (xy, 0.0, 0.0))
        cart = frac @ box.matrix().T
        cols = {"id": ids, "type": rng.integers(1, 4, n), "c_pe": rng.normal(size=n)}
        coords = frac if kind == "xs" else cart
        for k, c in enumerate(names_for(kind)):
            cols[c] = coords[:, k]
        if kind == "x":
            for k, c in enumerate(("ix", "iy", "iz")):
                cols[c] = rng.integers(-3, 4, n)
        frames.append({"step": step * 10, "lengths": lengths, "xy": xy, "columns": cols})
        expected.append((ids, cart, cols, box))
    path = tmp_path / ("f.dump.gz" if compress else "f.dump")
    write_frames(path.with_suffix(".tmp"), frames, names, triclinic)
    raw = path.with_suffix(".tmp").read_bytes()
    path.write_bytes(gzip.compress(raw) if compress else raw)
    got = read_dump(path)
    assert len(got) == n_frames
    for frame, (ids, cart, cols, box) in zip(got, expected):
        order = np.argsort(ids)
        np.testing.assert_array_equal(frame.ids, ids[order])
        np.testing.assert_allclose(frame.positions, cart[order], rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(frame.energy, np.asarray(cols["c_pe"])[order])
        if kind == "x":
            image = np.column_stack([cols["ix"], cols["iy"], cols["iz"]])[order]
            np.testing.assert_allclose(frame.unwrapped_positions(), cart[order] + image @ box.matrix().T, atol=1e-9)


def names_for(kind: str) -> tuple[str, str, str]:
    return {"x": ("x", "y", "z"), "xs": ("xs", "ys", "zs"), "xu": ("xu", "yu", "zu")}[kind]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzz_corrupted_dump_raises_only_data_format_error(tmp_path, data):
    text = (DATA / "ortho_two_frames.dump").read_text()
    lines = text.splitlines()
    action = data.draw(st.sampled_from(["drop", "duplicate", "replace", "truncate"]))
    k = data.draw(st.integers(0, len(lines) - 1))
    if action == "drop":
        lines = lines[:k] + lines[k + 1 :]
    elif action == "duplicate":
        lines = lines[: k + 1] + lines[k:]
    elif action == "replace":
        lines[k] = data.draw(st.text(alphabet="0123456789 .-eabcITEM:", max_size=40))
    else:
        cut = data.draw(st.integers(0, len(text)))
        lines = text[:cut].splitlines()
    path = tmp_path / "fuzz.dump"
    path.write_text("\n".join(lines) + "\n")
    try:
        frames = read_dump(path)
    except DataFormatError as exc:
        assert "\n" not in str(exc)
        return
    for f in frames:  # accepted input must be self-consistent
        assert f.positions.shape == (f.n_atoms, 3) and np.all(np.isfinite(f.positions))


# ------------------------------------------------------------------------------ logs


def test_log_with_two_runs_and_warning():
    tables = read_thermo(DATA / "two_runs.log")
    assert len(tables) == 2
    np.testing.assert_array_equal(tables[0]["Step"], [0, 10])
    np.testing.assert_array_equal(tables[1]["step"], [10, 20, 30])  # names are case-insensitive
    np.testing.assert_array_equal(tables[1]["Pxy"], [-5.0, -15.0, -25.0])
    assert "Press" in tables[1] and "Press" not in tables[0]
    with pytest.raises(DataFormatError, match="no column 'pzz'"):
        tables[0]["pzz"]


def test_headerless_table_matches_bundled_reader():
    from gego.datasets import read_stress_table

    (table,) = read_thermo(DATA / "stress_table_head.txt")
    assert table.n_rows == 6
    np.testing.assert_allclose(shear_stress_gpa(table["col6"], "metal"), read_stress_table(DATA / "stress_table_head.txt"), rtol=1e-14)


def test_malformed_logs(tmp_path):
    bad = tmp_path / "bad.log"
    bad.write_text("Step Temp Pxy\n 0 1.0 2.0\n 10 1.0 abc\n 20 1.0 2.0\n")
    with pytest.raises(DataFormatError, match=r"bad.log:3: non-numeric thermo value 'abc'"):
        read_thermo(bad)
    bad.write_text("Step Temp Pxy\n 0 1.0 2.0\n 10 1.0\n 20 1.0 2.0\n")
    with pytest.raises(DataFormatError, match=r"bad.log:3: thermo row has 2 values, header has 3"):
        read_thermo(bad)
    bad.write_text("1 2 3\n4 5\n")
    with pytest.raises(DataFormatError, match=r"bad.log:2: expected 3 columns, found 2"):
        read_thermo(bad)
    bad.write_text("hello world\n")
    with pytest.raises(DataFormatError, match="non-numeric"):
        read_thermo(bad)
    bad.write_text("Step Temp Pxy\n 0 1.0 2.0\n 10 nan 2.0\n")
    with pytest.raises(DataFormatError, match=r"bad.log:3: NaN or infinite thermo value"):
        read_thermo(bad)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=3, max_size=3), min_size=1, max_size=20))
def test_thermo_round_trip_property(tmp_path, values):
    path = tmp_path / "log"
    body = "\n".join(" ".join(repr(v) for v in row) for row in values)
    path.write_text(f"some preamble\nStep Temp Pxy\n{body}\nLoop time of 1\n")
    (table,) = read_thermo(path)
    np.testing.assert_array_equal(np.column_stack([table["Step"], table["Temp"], table["Pxy"]]), np.asarray(values))


def test_shear_stress_sign_and_units():
    pxy = np.array([-1e4, 2e4])
    np.testing.assert_allclose(shear_stress_gpa(pxy, "metal"), [1.0, -2.0])  # bar: 1 GPa = 1e4 bar
    np.testing.assert_allclose(shear_stress_gpa([-1.0], "real"), [101325e-9])  # atm
    np.testing.assert_allclose(shear_stress_gpa([-1e9], "si"), [1.0])
    np.testing.assert_allclose(shear_stress_gpa([-0.5], "lj"), [0.5])  # stays epsilon/sigma^3
    np.testing.assert_allclose(shear_stress_gpa([-0.5], "lj", lj_stress_unit_gpa=4.0), [2.0])
    with pytest.raises(ConfigError, match="unknown"):
        shear_stress_gpa([1.0], "furlongs")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzz_corrupted_log_raises_only_data_format_error(tmp_path, data):
    lines = (DATA / "two_runs.log").read_text().splitlines()
    k = data.draw(st.integers(0, len(lines) - 1))
    action = data.draw(st.sampled_from(["drop", "duplicate", "replace"]))
    if action == "drop":
        lines = lines[:k] + lines[k + 1 :]
    elif action == "duplicate":
        lines = lines[: k + 1] + lines[k:]
    else:
        lines[k] = data.draw(st.text(alphabet="0123456789 .-eStepLoWARNING", max_size=40))
    path = tmp_path / "fuzz.log"
    path.write_text("\n".join(lines) + "\n")
    try:
        tables = read_thermo(path)
    except DataFormatError as exc:
        assert "\n" not in str(exc)
        return
    for table in tables:  # accepted input: rectangular numeric tables
        assert len({v.size for v in table.columns.values()}) == 1
        assert all(np.all(np.isfinite(v)) for v in table.columns.values())
