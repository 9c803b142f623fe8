from pathlib import Path

import numpy as np
import pytest

from gego.datasets import (
    DataFormatError,
    load_cuzr,
    load_reference,
    read_cuzr_text,
    read_field_text,
    read_stress_table,
)

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "cuzr_md"


def test_bundled_cuzr_layout():
    ds = load_cuzr()
    assert ds["strain_xy_eng"].shape == (101, 32, 32)
    assert ds["energy"].shape == (101, 32, 32)
    assert ds["stress_xy_gpa"].shape == (101,)
    np.testing.assert_allclose(ds["gamma"].values, 0.005 * np.arange(101))
    # the README's facts: each strain field's mean is its global strain; frame 0 is zero
    np.testing.assert_allclose(ds["strain_xy_eng"].mean(axis=(1, 2)), ds["gamma"], atol=2e-4)
    assert np.all(ds["strain_xy_eng"][0].values == 0)
    # energy range and stress peak ~1.54 GPa near 9 % strain, flow stress ~0.95 GPa
    assert -3.37 < ds["energy"].min() < ds["energy"].max() < -3.34
    k = int(np.argmax(ds["stress_curve_xy_gpa"].values))
    assert 1.5 < float(ds["stress_curve_xy_gpa"][k]) < 1.6
    assert 0.07 < float(ds["stress_curve_gamma"][k]) < 0.11
    assert 0.85 < float(ds["stress_xy_gpa"][-1]) < 1.05


@pytest.mark.skipif(not SHARED.is_dir(), reason="original text files not present")
def test_bundle_equals_original_text():
    a = read_cuzr_text(SHARED)
    b = load_cuzr()
    for v in ("strain_xy_eng", "energy", "stress_xy_gpa", "stress_curve_xy_gpa"):
        np.testing.assert_array_equal(a[v].values, b[v].values)


def _write(tmp_path, text, name="f.txt", newline="\n"):
    p = tmp_path / name
    p.write_bytes(text.replace("\n", newline).encode())
    return p


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_read_field_text_line_ends(tmp_path, newline):
    p = _write(tmp_path, "2 3 0 1\n1 2 3\n4 5 6\n", newline=newline)
    np.testing.assert_array_equal(read_field_text(p), [[1, 2, 3], [4, 5, 6]])


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("", "empty"),
        ("a b\n1\n", "header"),
        ("2 2 0 1\n1 2\n", "expected 2 data rows"),
        ("2 2 0 1\n1 2\n3\n", ":3: expected 2 numbers"),
        ("2 2 0 1\n1 2\n3 x\n", ":3: non-numeric"),
        ("1 2 0 1\n1 nan\n", "NaN"),
    ],
)
def test_read_field_text_errors(tmp_path, text, fragment):
    p = _write(tmp_path, text)
    with pytest.raises(DataFormatError, match=fragment) as info:
        read_field_text(p)
    msg = str(info.value)
    assert str(p) in msg and "\n" not in msg


def test_read_stress_table(tmp_path):
    p = _write(tmp_path, "0\t100\t0\t-1e4\t5\t0\t-1e4\n1\t100\t0\t-2e4\t5\t0\t-2e4\n")
    np.testing.assert_allclose(read_stress_table(p), [1.0, 2.0])
    bad = _write(tmp_path, "0 1 2\n0 1\n", name="bad.txt")
    with pytest.raises(DataFormatError, match="bad.txt:2: expected 3 columns"):
        read_stress_table(bad, column=2)


def test_load_reference_errors(tmp_path):
    with pytest.raises(DataFormatError, match="not found"):
        load_reference(tmp_path / "missing.nc")
    ds = load_cuzr().drop_vars("stress_xy_gpa")
    p = tmp_path / "ref.nc"
    ds.to_netcdf(p)
    with pytest.raises(DataFormatError, match="missing variable 'stress_xy_gpa'"):
        load_reference(p)
    load_reference(None)  # the bundled data
