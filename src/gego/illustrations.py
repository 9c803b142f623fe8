"""Why project onto the Grassmannian: the three fields of the paper's Fig 3 (Sec 4).

A strain field with a horizontal shear band, the same band shifted along y, and a homogeneous
field with the same mean. The Grassmann (geodesic) distance finds the shifted band closer to the
original than the homogeneous field -- the two banded fields share their structure -- while the
Euclidean (Frobenius) distance finds the homogeneous field closer.

What the argument needs
-----------------------
The band here varies in intensity along its length (``modulation``), as the MD bands do, so the
field has rank 2: its column space holds the constant profile *and* the band profile. The
homogeneous field (rank 1) lacks the band direction, which costs pi/2 by Eq 8, while the shifted
band keeps a partner for it at an angle below pi/2. A perfectly uniform band (``modulation=0``)
is rank 1 and its column space is just its y-profile; the constant profile is then closer to it
than a shifted profile (the constant vector is proportional to the average of all cyclic shifts
of the profile), so the geodesic distance ranks the fields like the Euclidean one.
``tests/test_illustrations.py`` checks both statements.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gego import grassmann
from gego.errors import ConfigError
from gego.objective import DEFAULT_RTOL

__all__ = ["Fig3Fields", "fig3_distances", "fig3_fields", "plot_fig3"]


@dataclass(frozen=True)
class Fig3Fields:
    """Engineering shear strain fields (dimensionless), indexed ``[y, x]``."""

    band: np.ndarray
    shifted: np.ndarray
    homogeneous: np.ndarray


def fig3_fields(
    shape: tuple[int, int] = (32, 32),
    *,
    centre: float = 12.0,
    shift: float = 10.0,
    width: float = 2.5,
    amplitude: float = 1.0,
    background: float = 0.05,
    modulation: float = 0.3,
) -> Fig3Fields:
    """The three fields of Fig 3.

    Parameters
    ----------
    shape : (ny, nx)
        Grid (rows along y, the shear-gradient direction).
    centre, shift, width : float
        Band centre row, shift of the second band along y, Gaussian half-width (grid cells).
    amplitude, background : float
        Band peak strain above the background strain.
    modulation : float in [0, 1)
        Relative variation of the band intensity along x, ``1 + modulation cos(2 pi x / nx)``.

    Returns
    -------
    Fig3Fields
        ``band``, ``shifted`` (same band moved by ``shift`` rows) and ``homogeneous`` (constant,
        equal to the mean of ``band``).
    """
    ny, nx = shape
    if ny < 2 or nx < 2:
        raise ConfigError(f"shape: expected a grid of at least 2 x 2, got {shape}")
    if not 0 <= modulation < 1:
        raise ConfigError(f"modulation: expected a value in [0, 1), got {modulation}")
    if width <= 0:
        raise ConfigError(f"width: expected a positive band half-width in cells, got {width}")
    y = np.arange(ny)[:, None]
    along = 1.0 + modulation * np.cos(2.0 * np.pi * np.arange(nx)[None, :] / nx)

    def banded(c: float) -> np.ndarray:
        return background + amplitude * np.exp(-0.5 * ((y - c) / width) ** 2) * along

    band = banded(centre)
    return Fig3Fields(band=band, shifted=banded(centre + shift), homogeneous=np.full(shape, band.mean()))


def fig3_distances(fields: Fig3Fields | None = None, *, rtol: float = DEFAULT_RTOL, metric: str = "geodesic") -> dict[str, dict[str, float]]:
    """Grassmann and Euclidean distances of the shifted and homogeneous fields to the band.

    Grassmann: column spaces (Eq 4/8, truncated at ``rtol``, rank rule of Sec 3.3).
    Euclidean: Frobenius norm of the difference (strain units).

    Returns
    -------
    dict
        ``{"grassmann": {"shifted": d, "homogeneous": d}, "euclidean": {...}}``
    """
    f = fields or fig3_fields()
    out: dict[str, dict[str, float]] = {"grassmann": {}, "euclidean": {}}
    for key in ("shifted", "homogeneous"):
        other = getattr(f, key)
        out["grassmann"][key] = float(grassmann.snapshot_distance(f.band, other, metric=metric, rtol=rtol))
        out["euclidean"][key] = float(np.linalg.norm(f.band - other))
    return out


def plot_fig3(path: str | Path, fields: Fig3Fields | None = None, *, rtol: float = DEFAULT_RTOL, dpi: int = 150) -> Path:
    """Draw Fig 3: the band against the shifted band and against the homogeneous field.

    Uses matplotlib's Agg canvas directly (no global backend switch, no display needed).
    Returns the path written (format from its suffix, e.g. ``.png``, ``.pdf``).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    f = fields or fig3_fields()
    d = fig3_distances(f, rtol=rtol)
    vmin = min(a.min() for a in (f.band, f.shifted, f.homogeneous))
    vmax = max(a.max() for a in (f.band, f.shifted, f.homogeneous))
    fig = Figure(figsize=(9.0, 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    panels = fig.subfigures(1, 2)
    titles = {"shifted": "shear bands in different locations", "homogeneous": "shear band vs homogeneous strain"}
    for panel, key in zip(panels, ("shifted", "homogeneous")):
        axes = panel.subplots(1, 2)
        for ax, data, label in zip(axes, (f.band, getattr(f, key)), ("original", key)):
            image = ax.imshow(data, origin="lower", cmap="viridis", vmin=vmin, vmax=vmax)
            ax.set_title(label, fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
        panel.suptitle(
            f"{titles[key]}\nGrassmann $d_G$ = {d['grassmann'][key]:.3f}    Euclidean $d_E$ = {d['euclidean'][key]:.2f}",
            fontsize=10,
        )
        # one colour scale for all four images, drawn under each pair so both pairs match
        panel.colorbar(image, ax=list(axes), location="bottom", shrink=0.6, label=r"shear strain $\Gamma_{xy}$")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path
