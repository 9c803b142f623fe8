"""The calibration objective: weighted distance terms between a reference and a model run.

Paper Sec 3.3-3.4 and 5.2.2. The objective is a weighted sum of distances (Eq 24)

    Delta = sum_i w_i d_i,

and the paper's application uses two terms (Eq 41, ``(w1, w2) = (0.25, 0.75)``):

* ``d_Gamma`` (Eq 39): the mean Grassmann distance (Eq 4; Eq 21-23 for the projections, Sec 3.3
  for the rank rule) between reference and model strain fields at 9 snapshot strains,
  :data:`PAPER_SNAPSHOT_STRAINS`;
* ``d_tau`` (Eq 40): the mean absolute difference of the mean shear stress over the frames.

Terms are small frozen dataclasses (configuration) that *bind* to a reference once; the bound
term keeps the reference's projections, so evaluating a model costs only the model's SVDs.
Any field and any number of terms may be combined (Sec 3.4): e.g. a :class:`GrassmannTerm` on an
effective-temperature field next to the strain term.

A *model* (and the reference) is any mapping from variable name to array in the reference layout
of :mod:`gego.datasets`: ``gamma`` (frame,), fields ``(frame, y, x)``, curves ``(frame,)`` -- an
:class:`xarray.Dataset` or a plain ``dict`` of numpy arrays.

Matching frames by strain
-------------------------
Snapshots are picked by global strain, not by frame index. ``match="nearest"`` (default) takes
the frame whose ``gamma`` is closest to the requested strain, which must be within ``strain_tol``
(default 2.5e-3, half the 0.005 frame spacing of the MD and STZ data); ``match="interp"`` interpolates the field linearly between the two frames that
bracket the strain (exact on a frame). A requested strain outside the frames' strain range is a
:class:`~gego.errors.GegoError`. The same rule picks the reference snapshot; for the bundled MD
data (frames at gamma = 0.005 k) every paper strain is a frame. The stress term compares at the
reference frames' strains, interpolating the model's curve linearly when its frames differ.

Degenerate snapshots
--------------------
Frame 0 (gamma = 0) of the MD data is all zeros: rank 0, the zero subspace. It is not a default
snapshot. If chosen, its Grassmann distance to a rank-r model field is ``sqrt(r) pi/2`` (Eq 8
with ``r_A = 0``: every direction of the model counts as orthogonal) and 0 to an all-zero model
field; see :mod:`gego.grassmann`.

The authors' scripts
--------------------
The published calibration script differs from the paper's text; :meth:`Objective.authors`
reproduces it: snapshot strains :data:`AUTHORS_SNAPSHOT_STRAINS` with fixed ranks
:data:`AUTHORS_SNAPSHOT_RANKS` (same rank for reference and model), the stress difference
weighted by 5 over the overshoot frames 15-27 (gamma 0.075-0.135) and divided by the number of
nonzero differences, and the model stress taken in the sheared frame
(``stress_xy_sheared_gpa``). Their rounding of the cosines to 6 decimals is not reproduced
(it only perturbs angles below ~1e-3 rad).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import numpy as np

from gego import grassmann
from gego.errors import ConfigError, GegoError

__all__ = [
    "AUTHORS_OVERSHOOT_WEIGHT",
    "AUTHORS_OVERSHOOT_WINDOW",
    "AUTHORS_SNAPSHOT_RANKS",
    "AUTHORS_SNAPSHOT_STRAINS",
    "DEFAULT_RTOL",
    "DEFAULT_STRAIN_TOL",
    "MATCH_RULES",
    "PAPER_SNAPSHOT_STRAINS",
    "PAPER_WEIGHTS",
    "GrassmannTerm",
    "Objective",
    "ObjectiveValue",
    "StressCurveTerm",
    "select_snapshots",
]

#: Global strains of the strain-field snapshots, paper Sec 5.2.2 (n_gamma = 9).
PAPER_SNAPSHOT_STRAINS = (0.02, 0.04, 0.06, 0.08, 0.09, 0.1, 0.2, 0.35, 0.5)
#: (w1, w2) of Eq 41: strain-field term, stress term.
PAPER_WEIGHTS = (0.25, 0.75)
#: Snapshot strains and fixed ranks of the authors' calibration.py (distanceMetric 4).
AUTHORS_SNAPSHOT_STRAINS = (0.05, 0.06, 0.08, 0.09, 0.10, 0.11, 0.12, 0.35, 0.5)
AUTHORS_SNAPSHOT_RANKS = (2, 4, 5, 5, 10, 10, 14, 15, 16)
#: The authors weight |stress difference| by 5 on frames 15..27 (gamma = 0.075..0.135).
AUTHORS_OVERSHOOT_WINDOW = (0.075, 0.135)
AUTHORS_OVERSHOOT_WEIGHT = 5.0
#: Relative singular-value tolerance used when a Grassmann term names no truncation criterion.
#: The paper names a threshold sigma_cut but not its value. The MD strain fields are nearly
#: rank 1 (s_2 / s_1 is 0.3-0.7 %), so 1e-2 keeps the band profile and drops the noise.
DEFAULT_RTOL = 1e-2
#: Largest |gamma_frame - strain| accepted by match="nearest" in a GrassmannTerm: half the frame
#: spacing (0.005) of the bundled MD data and of the STZ output, so a coarser model output is an
#: error (use match="interp") rather than a silent comparison at another strain.
DEFAULT_STRAIN_TOL = 2.5e-3
MATCH_RULES = ("nearest", "interp")
FRAME_RULES = ("all", "strained")
NORMALIZATIONS = ("mean", "nonzero")


# --------------------------------------------------------------------------------------------
# Reading models and references
# --------------------------------------------------------------------------------------------


def _variable(data: Mapping, name: str, source: str, ndim: int) -> np.ndarray:
    try:
        values = data[name]
    except (KeyError, TypeError):
        dims = "(frame,)" if ndim == 1 else "(frame, y, x)"
        raise GegoError(f"{source}: missing variable '{name}' with dims {dims}") from None
    array = np.asarray(values, dtype=float)
    if array.ndim != ndim:
        raise GegoError(f"{source}: variable '{name}' has {array.ndim} dimensions, expected {ndim}")
    return array


def _gamma(data: Mapping, source: str) -> np.ndarray:
    gamma = _variable(data, "gamma", source, 1)
    if gamma.size == 0 or not np.all(np.isfinite(gamma)):
        raise GegoError(f"{source}: 'gamma' must be a non-empty array of finite strains")
    if gamma.size > 1 and np.any(np.diff(gamma) <= 0):
        raise GegoError(f"{source}: 'gamma' must increase strictly from frame to frame")
    return gamma


def _per_frame(data: Mapping, name: str, source: str, ndim: int, n_frames: int) -> np.ndarray:
    array = _variable(data, name, source, ndim)
    if array.shape[0] != n_frames:
        raise GegoError(f"{source}: variable '{name}' has {array.shape[0]} frames but 'gamma' has {n_frames}")
    return array


def select_snapshots(
    gamma: np.ndarray,
    frames: np.ndarray,
    strains: Sequence[float],
    *,
    match: str = "nearest",
    strain_tol: float | None = None,
    source: str = "model",
) -> np.ndarray:
    """The snapshots (or curve values) at the requested global strains.

    Parameters
    ----------
    gamma : ndarray, shape (frame,)
        Strictly increasing global strain of each frame.
    frames : ndarray, shape (frame, ...)
        Per-frame values (fields ``(frame, y, x)`` or a curve ``(frame,)``).
    strains : sequence of float
        Requested strains.
    match : {"nearest", "interp"}
        Nearest frame, or linear interpolation between the bracketing frames.
    strain_tol : float, optional
        With ``"nearest"``: the largest allowed ``|gamma_frame - strain|``.
    source : str
        Named in error messages.

    Returns
    -------
    ndarray, shape (len(strains), ...)

    Raises
    ------
    GegoError
        A strain outside ``[gamma[0], gamma[-1]]`` or no frame within ``strain_tol``.
    """
    strains = np.asarray(strains, dtype=float)
    slack = 1e-9 * max(1.0, abs(gamma[-1]))
    outside = (strains < gamma[0] - slack) | (strains > gamma[-1] + slack)
    if np.any(outside):
        bad = strains[outside][0]
        raise GegoError(f"{source}: snapshot strain {bad:g} is outside its strain range [{gamma[0]:g}, {gamma[-1]:g}]")
    if match == "nearest":
        index = np.argmin(np.abs(gamma[None, :] - strains[:, None]), axis=1)
        miss = np.abs(gamma[index] - strains)
        if strain_tol is not None and np.any(miss > strain_tol + slack):
            i = int(np.argmax(miss))
            raise GegoError(
                f"{source}: no frame within strain_tol={strain_tol:g} of strain {strains[i]:g} "
                f"(nearest frame is at {gamma[index[i]]:g}); use match='interp' or a larger strain_tol"
            )
        return frames[index]
    if match == "interp":
        clipped = np.clip(strains, gamma[0], gamma[-1])
        upper = np.clip(np.searchsorted(gamma, clipped, side="right"), 1, max(gamma.size - 1, 1))
        lower = upper - 1
        if gamma.size == 1:
            return frames[np.zeros(strains.size, dtype=int)]
        weight = (clipped - gamma[lower]) / (gamma[upper] - gamma[lower])
        weight = weight.reshape((-1,) + (1,) * (frames.ndim - 1))
        return (1.0 - weight) * frames[lower] + weight * frames[upper]
    raise ConfigError(f"match: expected one of {MATCH_RULES}, got {match!r}")


# --------------------------------------------------------------------------------------------
# Terms
# --------------------------------------------------------------------------------------------


def _as_tuple(value):
    if isinstance(value, (list, tuple, np.ndarray)):
        return tuple(v.item() if isinstance(v, np.generic) else v for v in value)
    return value


@dataclass(frozen=True)
class GrassmannTerm:
    """Mean Grassmann distance between reference and model fields at snapshot strains (Eq 39).

    Each snapshot pair is projected by thin SVD (Eq 21-23), truncated, represented with the rank
    rule of Sec 3.3 and compared with a distance of :data:`gego.grassmann.DISTANCES` (default the
    geodesic, Eq 4, with Eq 8 when the ranks still differ); the term is their mean (Eq 39).

    Parameters
    ----------
    field : str
        Model variable ``(frame, y, x)``, default the engineering shear strain.
    strains : tuple of float
        Snapshot strains, default :data:`PAPER_SNAPSHOT_STRAINS`.
    distance : str
        Name in :data:`gego.grassmann.DISTANCES`.
    basis : {"left", "right", "both"}
        Column space (as the paper), row space, or the composite of Sec 2.1.
    rank : int or tuple of int, optional
        Fixed rank, or one per snapshot (the authors' scripts).
    rtol, atol, energy : float, optional
        Truncation criteria of :func:`gego.grassmann.project`. If none of ``rank``/``rtol``/
        ``atol``/``energy`` is given, ``rtol = DEFAULT_RTOL``.
    rank_rule : {"max", "own"}
        Sec 3.3's ``p_hat = max(p, p*)`` (default) or each snapshot's own rank (Eq 8 penalty).
    match : {"nearest", "interp"}, strain_tol : float or None
        How snapshots are picked by strain (module docstring); with "nearest" the frame must be
        within ``strain_tol`` (default :data:`DEFAULT_STRAIN_TOL`; None: any frame in range).
    reference_field : str, optional
        Reference variable if it is named differently from ``field``.
    name : str, optional
        Key of this term in :attr:`ObjectiveValue.components` (default ``grassmann_<field>``).
    """

    kind: ClassVar[str] = "grassmann"

    field: str = "strain_xy_eng"
    strains: tuple[float, ...] = PAPER_SNAPSHOT_STRAINS
    distance: str = "geodesic"
    basis: str = "left"
    rank: int | tuple[int, ...] | None = None
    rtol: float | None = None
    atol: float | None = None
    energy: float | None = None
    rank_rule: str = "max"
    match: str = "nearest"
    strain_tol: float | None = DEFAULT_STRAIN_TOL
    reference_field: str | None = None
    name: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "strains", _as_tuple(self.strains))
        object.__setattr__(self, "rank", _as_tuple(self.rank))
        where = f"objective term '{self.label}'"
        if not isinstance(self.strains, tuple) or not self.strains:
            raise ConfigError(f"{where}: strains: expected a non-empty list of global strains, got {self.strains!r}")
        if not all(isinstance(s, (int, float)) and np.isfinite(s) and s >= 0 for s in self.strains):
            raise ConfigError(f"{where}: strains: expected finite strains >= 0, got {list(self.strains)}")
        if self.distance not in grassmann.DISTANCES:
            raise ConfigError(f"{where}: distance: expected one of {sorted(grassmann.DISTANCES)}, got {self.distance!r}")
        if self.basis not in grassmann.BASES:
            raise ConfigError(f"{where}: basis: expected one of {grassmann.BASES}, got {self.basis!r}")
        if self.rank_rule not in grassmann.RANK_RULES:
            raise ConfigError(f"{where}: rank_rule: expected one of {grassmann.RANK_RULES}, got {self.rank_rule!r}")
        if self.match not in MATCH_RULES:
            raise ConfigError(f"{where}: match: expected one of {MATCH_RULES}, got {self.match!r}")
        if isinstance(self.rank, tuple):
            if len(self.rank) != len(self.strains):
                raise ConfigError(f"{where}: rank: {len(self.rank)} ranks given for {len(self.strains)} snapshot strains")
            bad = [r for r in self.rank if not isinstance(r, int) or r < 1]
        else:
            bad = [] if self.rank is None or (isinstance(self.rank, int) and self.rank >= 1) else [self.rank]
        if bad:
            raise ConfigError(f"{where}: rank: expected positive integers, got {bad[0]!r}")
        if self.strain_tol is not None and not self.strain_tol >= 0:
            raise ConfigError(f"{where}: strain_tol: expected a strain >= 0, got {self.strain_tol!r}")
        # validate tolerances now (one-line errors at construction, not at the first evaluation)
        grassmann.truncation_rank(np.ones(1), (1, 1), **self.truncation())

    @property
    def label(self) -> str:
        return self.name or f"grassmann_{self.field}"

    def truncation(self) -> dict[str, Any]:
        """The truncation criteria passed to :func:`gego.grassmann.project` (one set for all snapshots)."""
        criteria = dict(rank=self.rank, rtol=self.rtol, atol=self.atol, energy=self.energy)
        if all(v is None for v in criteria.values()):
            criteria["rtol"] = DEFAULT_RTOL
        if isinstance(criteria["rank"], tuple):
            criteria["rank"] = np.asarray(criteria["rank"], dtype=int)
        return criteria

    def to_dict(self) -> dict[str, Any]:
        return _term_dict(self)

    def bind(self, reference: Mapping) -> _BoundGrassmann:
        """Project the reference snapshots once (Eq 21) and return the evaluating callable."""
        gamma = _gamma(reference, "reference")
        ref_name = self.reference_field or self.field
        ref_fields = _per_frame(reference, ref_name, "reference", 3, gamma.size)
        snapshots = select_snapshots(gamma, ref_fields, self.strains, match=self.match, strain_tol=self.strain_tol, source="reference")
        try:
            projected = grassmann.project(snapshots, **self.truncation())
        except GegoError as exc:
            raise GegoError(f"reference '{ref_name}': {exc}") from None
        return _BoundGrassmann(self, projected)


@dataclass(frozen=True)
class _BoundGrassmann:
    term: GrassmannTerm
    reference: grassmann.Projection

    def __call__(self, model: Mapping) -> tuple[float, dict[str, Any]]:
        t = self.term
        gamma = _gamma(model, "model")
        fields_ = _per_frame(model, t.field, "model", 3, gamma.size)
        if fields_.shape[1:] != self.reference.shape:
            raise GegoError(f"model: '{t.field}' grid {fields_.shape[1:]} differs from the reference grid {self.reference.shape}")
        snapshots = select_snapshots(gamma, fields_, t.strains, match=t.match, strain_tol=t.strain_tol, source="model")
        try:
            projected = grassmann.project(snapshots, **t.truncation())  # Eq (21)-(23)
        except GegoError as exc:
            raise GegoError(f"model '{t.field}': {exc}") from None
        per_snapshot = np.asarray(
            grassmann.grassmann_distance(self.reference, projected, metric=t.distance, basis=t.basis, rank_rule=t.rank_rule)
        )
        details = {
            "strains": np.asarray(t.strains),
            "distances": per_snapshot,
            "reference_rank": self.reference.rank.copy(),
            "model_rank": projected.rank.copy(),
        }
        return float(np.mean(per_snapshot)), details  # Eq (39)


@dataclass(frozen=True)
class StressCurveTerm:
    """Mean absolute difference of a per-frame curve, e.g. the mean shear stress (Eq 40).

    ``d = (1/n_f) sum_j w_j |tau_ref(gamma_j) - tau_model(gamma_j)|`` over the reference frames
    ``j`` selected by ``frames``, the model curve interpolated linearly at the reference strains;
    ``w_j = window_weight`` inside ``window`` and 1 elsewhere (1 everywhere by default, Eq 40).

    Parameters
    ----------
    field : str
        Model variable ``(frame,)``, default ``stress_xy_gpa`` (GPa). The authors compared the
        stress in the sheared frame: ``field="stress_xy_sheared_gpa"``.
    frames : "all", "strained" or tuple of int
        Reference frames compared: every frame (default), those with ``gamma > 0`` (the paper's
        n_f = 100 of the 101 CuZr frames; frame 0 has zero stress in both), or explicit indices.
    window : (float, float), optional
        Strain interval (inclusive) weighted by ``window_weight`` (the authors: the overshoot,
        :data:`AUTHORS_OVERSHOOT_WINDOW` with weight 5).
    normalize : {"mean", "nonzero"}
        Divide by the number of compared frames (Eq 40) or, as the authors' script does, by
        the number of nonzero weighted differences.
    reference_field : str, optional
        Reference variable if named differently (default: same as ``field``).
    name : str, optional
        Key in :attr:`ObjectiveValue.components` (default ``curve_<field>``).
    """

    kind: ClassVar[str] = "stress_curve"

    field: str = "stress_xy_gpa"
    frames: str | tuple[int, ...] = "all"
    window: tuple[float, float] | None = None
    window_weight: float = 1.0
    normalize: str = "mean"
    reference_field: str | None = None
    name: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "frames", _as_tuple(self.frames))
        object.__setattr__(self, "window", _as_tuple(self.window))
        where = f"objective term '{self.label}'"
        if isinstance(self.frames, str):
            if self.frames not in FRAME_RULES:
                raise ConfigError(f"{where}: frames: expected one of {FRAME_RULES} or a list of frame indices, got {self.frames!r}")
        elif not self.frames or not all(isinstance(i, int) and i >= 0 for i in self.frames):
            raise ConfigError(f"{where}: frames: expected non-negative frame indices, got {self.frames!r}")
        if self.window is not None:
            if len(self.window) != 2 or not self.window[0] <= self.window[1]:
                raise ConfigError(f"{where}: window: expected (gamma_low, gamma_high) with low <= high, got {self.window!r}")
        if not (np.isfinite(self.window_weight) and self.window_weight >= 0):
            raise ConfigError(f"{where}: window_weight: expected a finite weight >= 0, got {self.window_weight!r}")
        if self.normalize not in NORMALIZATIONS:
            raise ConfigError(f"{where}: normalize: expected one of {NORMALIZATIONS}, got {self.normalize!r}")

    @property
    def label(self) -> str:
        return self.name or f"curve_{self.field}"

    def to_dict(self) -> dict[str, Any]:
        return _term_dict(self)

    def bind(self, reference: Mapping) -> _BoundCurve:
        gamma = _gamma(reference, "reference")
        ref_name = self.reference_field or self.field
        curve = _per_frame(reference, ref_name, "reference", 1, gamma.size)
        if isinstance(self.frames, tuple):
            if max(self.frames) >= gamma.size:
                raise ConfigError(f"objective term '{self.label}': frames: index {max(self.frames)} >= {gamma.size} reference frames")
            index = np.asarray(self.frames)
        elif self.frames == "strained":
            index = np.flatnonzero(gamma > 0)
        else:
            index = np.arange(gamma.size)
        weights = np.ones(index.size)
        if self.window is not None:
            slack = 1e-9 * max(1.0, abs(gamma[-1]))
            inside = (gamma[index] >= self.window[0] - slack) & (gamma[index] <= self.window[1] + slack)
            weights[inside] = self.window_weight
        if not np.all(np.isfinite(curve[index])):
            raise GegoError(f"reference: '{ref_name}' contains NaN or infinity")
        return _BoundCurve(self, gamma[index], curve[index], weights)


@dataclass(frozen=True)
class _BoundCurve:
    term: StressCurveTerm
    gamma: np.ndarray
    reference: np.ndarray
    weights: np.ndarray

    def __call__(self, model: Mapping) -> tuple[float, dict[str, Any]]:
        t = self.term
        gamma = _gamma(model, "model")
        curve = _per_frame(model, t.field, "model", 1, gamma.size)
        if not np.all(np.isfinite(curve)):
            raise GegoError(f"model: '{t.field}' contains NaN or infinity (did the simulation diverge?)")
        slack = 1e-9 * max(1.0, abs(gamma[-1]))
        if self.gamma[0] < gamma[0] - slack or self.gamma[-1] > gamma[-1] + slack:
            raise GegoError(
                f"model: '{t.field}' covers strains [{gamma[0]:g}, {gamma[-1]:g}] but the reference frames span "
                f"[{self.gamma[0]:g}, {self.gamma[-1]:g}]"
            )
        # the model curve at the reference frames' strains (identity when the frames coincide)
        model_at_ref = np.interp(self.gamma, gamma, curve)
        weighted = self.weights * np.abs(self.reference - model_at_ref)  # Eq (40) summand
        if t.normalize == "mean":
            value = float(np.mean(weighted))  # Eq (40)
        else:
            nonzero = np.count_nonzero(weighted)
            value = float(np.sum(weighted) / nonzero) if nonzero else 0.0
        return value, {"gamma": self.gamma.copy(), "abs_difference": np.abs(self.reference - model_at_ref)}


TERM_KINDS = {cls.kind: cls for cls in (GrassmannTerm, StressCurveTerm)}


def _term_dict(term) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": term.kind}
    for f in fields(term):
        value = getattr(term, f.name)
        if value is None:
            continue  # TOML has no null: absent means default
        out[f.name] = list(value) if isinstance(value, tuple) else value
    return out


def _term_from_dict(data: Mapping, where: str):
    if not isinstance(data, Mapping) or "kind" not in data:
        raise ConfigError(f"{where}: expected a table with a 'kind' key ({sorted(TERM_KINDS)})")
    kind = data["kind"]
    if kind not in TERM_KINDS:
        raise ConfigError(f"{where}: kind: expected one of {sorted(TERM_KINDS)}, got {kind!r}")
    cls = TERM_KINDS[kind]
    allowed = {f.name for f in fields(cls)}
    options = {k: v for k, v in data.items() if k != "kind"}
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown option {unknown[0]!r} for a {kind} term; expected some of {sorted(allowed)}")
    return cls(**options)


# --------------------------------------------------------------------------------------------
# Objective (Eq 24, 41)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ObjectiveValue:
    """One evaluation: ``total = sum_i weights[i] * components[i]`` (Eq 24).

    ``components`` are the unweighted distances by term label; ``details`` holds per-term
    arrays (per-snapshot distances and ranks, per-frame stress differences in GPa).
    """

    total: float
    components: dict[str, float]
    weights: dict[str, float]
    details: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """``{"objective": total, "components": {...}}``, the form the EGO loop records."""
        return {"objective": self.total, "components": dict(self.components)}


class Objective:
    """Weighted sum of distance terms against a fixed reference (Eq 24).

    Parameters
    ----------
    reference : mapping
        Reference dataset (``gamma`` and the variables the terms use); the terms are bound to
        it at construction (the reference snapshots are projected once).
    terms : sequence of GrassmannTerm / StressCurveTerm
    weights : sequence of float
        ``w_i >= 0``, one per term, not all zero.
    name : str
        Stored with :meth:`to_dict`.

    Examples
    --------
    >>> objective = Objective.paper(load_cuzr())          # doctest: +SKIP
    >>> objective.evaluate(model_dataset).total           # doctest: +SKIP
    """

    def __init__(self, reference: Mapping, terms: Sequence, weights: Sequence[float], name: str = "custom"):
        terms = tuple(terms)
        weights = tuple(float(w) for w in weights)
        if not terms:
            raise ConfigError("objective: expected at least one distance term")
        if len(weights) != len(terms):
            raise ConfigError(f"objective: {len(weights)} weights given for {len(terms)} terms")
        if not all(np.isfinite(w) and w >= 0 for w in weights) or not any(w > 0 for w in weights):
            raise ConfigError(f"objective: weights must be finite, >= 0 and not all zero, got {list(weights)}")
        labels = [t.label for t in terms]
        if len(set(labels)) != len(labels):
            raise ConfigError(f"objective: term names must be unique, got {labels}; set name= on the terms")
        self.name = name
        self.terms = terms
        self.weights = weights
        self._bound = tuple(t.bind(reference) for t in terms)

    @classmethod
    def paper(
        cls,
        reference: Mapping,
        *,
        strains: Sequence[float] = PAPER_SNAPSHOT_STRAINS,
        weights: Sequence[float] = PAPER_WEIGHTS,
        **grassmann_options,
    ) -> Objective:
        """The objective of the paper's text, Eq 41: ``0.25 d_Gamma (Eq 39) + 0.75 d_tau (Eq 40)``.

        ``grassmann_options`` go to :class:`GrassmannTerm` (e.g. ``rtol``, ``distance``).
        """
        # Eq (41): d = w1 d_Gamma (Eq 39) + w2 d_tau (Eq 40), (w1, w2) = (0.25, 0.75)
        terms = (GrassmannTerm(strains=tuple(strains), **grassmann_options), StressCurveTerm())
        return cls(reference, terms, weights, name="paper")

    @classmethod
    def authors(cls, reference: Mapping, *, stress_field: str = "stress_xy_sheared_gpa") -> Objective:
        """The objective of the authors' calibration.py (module docstring), to reproduce their numbers."""
        terms = (
            GrassmannTerm(strains=AUTHORS_SNAPSHOT_STRAINS, rank=AUTHORS_SNAPSHOT_RANKS),
            StressCurveTerm(
                field=stress_field,
                reference_field="stress_xy_gpa",
                window=AUTHORS_OVERSHOOT_WINDOW,
                window_weight=AUTHORS_OVERSHOOT_WEIGHT,
                normalize="nonzero",
            ),
        )
        return cls(reference, terms, PAPER_WEIGHTS, name="authors")

    def evaluate(self, model: Mapping) -> ObjectiveValue:
        """Distances of ``model`` to the reference and their weighted sum (Eq 24 / Eq 41)."""
        components: dict[str, float] = {}
        details: dict[str, dict[str, Any]] = {}
        for term, bound in zip(self.terms, self._bound):
            components[term.label], details[term.label] = bound(model)
        weights = {t.label: w for t, w in zip(self.terms, self.weights)}
        total = float(sum(weights[k] * components[k] for k in components))  # Eq (24)
        return ObjectiveValue(total=total, components=components, weights=weights, details=details)

    def __call__(self, model: Mapping) -> float:
        return self.evaluate(model).total

    def to_dict(self) -> dict[str, Any]:
        """Plain data (TOML/JSON-safe) describing the objective; the reference is not included."""
        return {"name": self.name, "terms": [t.to_dict() for t in self.terms], "weights": list(self.weights)}

    @classmethod
    def from_dict(cls, data: Mapping, reference: Mapping) -> Objective:
        """Rebuild an objective from :meth:`to_dict` output and a reference dataset."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"objective: expected a table with 'terms' and 'weights', got {type(data).__name__}")
        unknown = sorted(set(data) - {"name", "terms", "weights"})
        if unknown:
            raise ConfigError(f"objective: unknown key {unknown[0]!r}; expected 'name', 'terms', 'weights'")
        raw_terms = data.get("terms")
        if not isinstance(raw_terms, (list, tuple)) or not raw_terms:
            raise ConfigError("objective: terms: expected a non-empty list of term tables")
        terms = [_term_from_dict(t, f"objective.terms[{i}]") for i, t in enumerate(raw_terms)]
        weights = data.get("weights")
        if not isinstance(weights, (list, tuple)):
            raise ConfigError("objective: weights: expected a list of numbers, one per term")
        return cls(reference, terms, weights, name=str(data.get("name", "custom")))

    def __repr__(self) -> str:
        parts = " + ".join(f"{w:g} * {t.label}" for t, w in zip(self.terms, self.weights))
        return f"Objective({self.name!r}: {parts})"
