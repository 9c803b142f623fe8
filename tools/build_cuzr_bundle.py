"""Rebuild src/gego/data/cuzr_md.nc from the authors' original text files.

Usage: python tools/build_cuzr_bundle.py ../shared/data/cuzr_md
The text files are parsed with gego.datasets.read_cuzr_text and stored losslessly (float64,
zlib-compressed NetCDF4).
"""

import sys
from pathlib import Path

from gego.datasets import read_cuzr_text

src = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/cuzr_md")
out = Path(__file__).resolve().parents[1] / "src" / "gego" / "data" / "cuzr_md.nc"
ds = read_cuzr_text(src)
ds.attrs["source"] = "github.com/katiana22/GrassmannianEGO (MD data folder), MIT licence"
enc = {v: {"zlib": True, "complevel": 9} for v in ds.data_vars}
ds.to_netcdf(out, encoding=enc, format="NETCDF4")
print(out, out.stat().st_size, "bytes")
