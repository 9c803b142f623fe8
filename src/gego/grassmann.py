"""Grassmann projection of matrix snapshots and distances between them (paper Sec 2.1, Eq 1-8).

A snapshot ``X`` (a field on an ``n x m`` grid, indexed ``[y, x]``) is projected onto the
Grassmann manifold by a thin SVD ``X = U S V^T`` (Eq 2): the first ``p`` left singular vectors
span a point of G(p, n) (the column space, Eq 1), the first ``p`` right singular vectors a point
of G(p, m) (the row space). Two points are compared through their principal angles (Eq 3) and a
distance built from them, by default the geodesic distance (Eq 4) with the unequal-rank
extension of Eq 8.

Conventions (all stated here once, used everywhere below)
---------------------------------------------------------
* **Truncation** (Eq 6). :func:`project` keeps, for every snapshot, the singular vectors whose
  singular values pass *all* the criteria given: ``rank`` (at most this many), ``atol``
  (``s_i > atol``), ``rtol`` (``s_i > rtol * s_1``), ``energy`` (the fewest leading ``s_i``
  whose ``s_i^2`` add up to at least this fraction of ``sum s^2``). Whatever is asked, a rank
  never exceeds the *numerical rank* ``#{s_i > s_1 max(n, m) eps}`` (numpy's ``matrix_rank``
  default): the singular vectors beyond it are an arbitrary basis of a null space and carry no
  information about the field. Some truncation is essential: two full-rank square snapshots
  (e.g. noisy 32 x 32 fields) both span all of R^n and are at distance 0.
* **Rank rule** (Sec 3.3). With ``rank_rule="max"`` (the paper's rule) both snapshots of a pair
  are represented with ``p_hat = max(p, p*)`` singular vectors, where ``p`` and ``p*`` are their
  truncated ranks, so that "no essential structural information is lost"; each is capped at its
  numerical rank. With ``rank_rule="own"`` each keeps its own truncated rank.
* **Unequal ranks** (Eq 7-8). When the two subspaces still differ in dimension (``r_A != r_B``),
  the ``|r_A - r_B|`` directions of the larger one that have no partner are taken to be
  orthogonal to the smaller one, i.e. principal angles of pi/2. For the geodesic this is exactly
  Eq 8. The other distances follow UQpy where UQpy has an unequal-rank term (projection:
  ``+|r_A - r_B|`` under the root; Procrustes: ``2 sqrt(|r_A - r_B| + sum sin^2(theta/2))``,
  which counts a missing direction as 1, not the 1/2 that sin^2(pi/4) would give); for the
  distances where UQpy has none (Asimov, Binet-Cauchy, Fubini-Study, Martin, spectral; UQpy
  silently drops the extra directions there) the missing angles are pi/2 as above.
* **Degenerate snapshots**. An all-zero field (MD frame 0 at gamma = 0) has rank 0: it is the
  zero subspace, the single point of G(0, n). By the Eq 8 convention its distance to a rank-r
  snapshot is that of r missing directions, ``sqrt(r) pi/2`` for the geodesic (with the rank
  rule "max" the zero field cannot supply singular vectors, so nothing changes), and its
  distance to another all-zero field is 0. Scaling does not change a subspace (Eq 5), so a
  nonzero field of any magnitude is still at that same distance from the zero field.

Principal angles are computed from both the cosines (singular values of ``U_A^T U_B``) and the
sines (singular values of ``(I - U_A U_A^T) U_B``) and combined with ``arctan2``: small angles
are then accurate to ~1e-16 absolute, where ``arccos`` of a cosine near 1 loses half the digits
(Bjorck & Golub 1973; Knyazev & Argentati 2002).

Everything is batched over leading axes (numpy's stacked SVD): pairs are grouped by their two
ranks and each group is one stacked SVD call, so there is no Python loop over pairs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from gego.errors import ConfigError, GegoError

__all__ = [
    "BASES",
    "DISTANCES",
    "RANK_RULES",
    "Projection",
    "asimov",
    "binet_cauchy",
    "distance_from_angles",
    "fubini_study",
    "geodesic",
    "grassmann_distance",
    "martin",
    "numerical_rank",
    "pairwise_distances",
    "principal_angles",
    "procrustes",
    "project",
    "projection",
    "snapshot_distance",
    "spectral",
    "subspace_angles",
    "truncation_rank",
]

BASES = ("left", "right", "both")
RANK_RULES = ("max", "own")
_HALF_PI = 0.5 * np.pi
# Smallest positive normal double: UQpy's floor for cos^2 in the Martin distance, which keeps
# orthogonal (or missing) directions finite instead of infinite.
_TINY = np.finfo(float).tiny


# --------------------------------------------------------------------------------------------
# Projection (Eq 2, 6)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Projection:
    """Thin SVDs of a batch of snapshots, with a truncated rank per snapshot (Eq 2, 6).

    All ``k = min(n, m)`` singular triplets are kept so that a pair rule (Sec 3.3) can later use
    more vectors than a snapshot's own truncated rank; ``rank`` says how many the truncation
    criteria keep and ``numerical_rank`` how many are meaningful at all.

    Attributes
    ----------
    left : ndarray, shape (..., n, k)
        Left singular vectors (column space, along y for a ``[y, x]`` field), ordered by
        decreasing singular value.
    right : ndarray, shape (..., m, k)
        Right singular vectors (row space, along x).
    singular_values : ndarray, shape (..., k)
        Decreasing singular values, in the units of the field.
    rank : ndarray of int, shape (...)
        Truncated rank of each snapshot (Eq 6); ``0`` for an all-zero field.
    numerical_rank : ndarray of int, shape (...)
        Number of singular values above ``s_1 max(n, m) eps``; ``rank <= numerical_rank``.
    """

    left: np.ndarray
    right: np.ndarray
    singular_values: np.ndarray
    rank: np.ndarray
    numerical_rank: np.ndarray

    @property
    def batch_shape(self) -> tuple[int, ...]:
        return self.rank.shape

    @property
    def shape(self) -> tuple[int, int]:
        """Grid shape ``(n, m)`` of the projected snapshots."""
        return self.left.shape[-2], self.right.shape[-2]

    def __getitem__(self, index) -> Projection:
        """Index the leading (batch) axes, e.g. ``proj[3]`` or ``proj[:, None]``."""
        if not self.batch_shape:
            raise GegoError("Projection of a single snapshot has no batch axis to index")
        index = index if isinstance(index, tuple) else (index,)
        return Projection(
            left=self.left[index + (Ellipsis, slice(None), slice(None))],
            right=self.right[index + (Ellipsis, slice(None), slice(None))],
            singular_values=self.singular_values[index + (Ellipsis, slice(None))],
            rank=self.rank[index],
            numerical_rank=self.numerical_rank[index],
        )

    def basis(self, side: str = "left", rank=None) -> np.ndarray:
        """Orthonormal basis of each snapshot's subspace, zero-padded to ``k`` columns.

        Parameters
        ----------
        side : {"left", "right"}
            Column space (G(p, n)) or row space (G(p, m)).
        rank : int or array of int, optional
            Number of columns to keep (default: the truncated ``rank``); capped at the
            numerical rank. Columns beyond it are set to zero. Each snapshot's first ``rank``
            columns span its point of G(rank, n) (Eq 1).
        """
        vectors = _side_vectors(self, side)
        use = self.rank if rank is None else np.minimum(np.asarray(rank), self.numerical_rank)
        return _mask_columns(vectors, use)


def numerical_rank(singular_values: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Count of singular values above ``s_1 max(n, m) eps`` (numpy's ``matrix_rank`` default).

    ``singular_values`` has shape ``(..., k)`` in decreasing order; an all-zero field gives 0.
    """
    s = np.asarray(singular_values, dtype=float)
    if s.shape[-1] == 0:
        return np.zeros(s.shape[:-1], dtype=int)
    tol = s[..., :1] * max(shape) * np.finfo(float).eps
    return np.sum(s > tol, axis=-1)


def truncation_rank(
    singular_values: np.ndarray,
    shape: tuple[int, int],
    *,
    rank=None,
    atol: float | None = None,
    rtol: float | None = None,
    energy: float | None = None,
) -> np.ndarray:
    """Truncated rank of each snapshot from its decreasing singular values (Eq 6).

    Every criterion given applies and the smallest resulting rank wins; none given keeps the
    numerical rank. See the module docstring for the definitions.

    Parameters
    ----------
    singular_values : ndarray, shape (..., k)
        Decreasing singular values of each snapshot.
    shape : (n, m)
        Grid shape, for the numerical-rank tolerance.
    rank : int or array of int broadcastable to the batch shape, optional
        Fixed rank (capped at the numerical rank).
    atol, rtol : float, optional
        Keep ``s_i > atol`` and ``s_i > rtol * s_1``.
    energy : float in (0, 1], optional
        Keep the fewest leading ``s_i`` with ``sum s_i^2 >= energy * sum s^2``.

    Returns
    -------
    ndarray of int, shape (...)
    """
    s = np.asarray(singular_values, dtype=float)
    # Eq (6): U -> U_hat, the leading singular vectors that survive the cut
    out = numerical_rank(s, shape)
    if rank is not None:
        rank_arr = np.asarray(rank)
        if not np.issubdtype(rank_arr.dtype, np.integer) or np.any(rank_arr < 0):
            raise ConfigError(f"rank: expected a non-negative integer (or one per snapshot), got {rank!r}")
        out = np.minimum(out, rank_arr)
    if atol is not None:
        if not (np.isfinite(atol) and atol >= 0):
            raise ConfigError(f"atol: expected a non-negative singular-value tolerance, got {atol!r}")
        out = np.minimum(out, np.sum(s > atol, axis=-1))
    if rtol is not None:
        if not (np.isfinite(rtol) and 0 <= rtol < 1):
            raise ConfigError(f"rtol: expected a relative singular-value tolerance in [0, 1), got {rtol!r}")
        out = np.minimum(out, np.sum(s > rtol * s[..., :1], axis=-1))
    if energy is not None:
        if not (0 < energy <= 1):
            raise ConfigError(f"energy: expected a retained energy fraction in (0, 1], got {energy!r}")
        power = s**2
        total = np.sum(power, axis=-1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            fraction = np.cumsum(power, axis=-1) / total
        # fewest leading values reaching the fraction; the 1e-12 slack absorbs the rounding of
        # the cumulative sum so that energy=1 keeps every nonzero value, not one too few.
        reached = fraction >= energy - 1e-12
        k_energy = np.where(np.any(reached, axis=-1), np.argmax(reached, axis=-1) + 1, 0)
        out = np.minimum(out, k_energy)
    return out.astype(int)


def project(
    fields,
    *,
    rank=None,
    atol: float | None = None,
    rtol: float | None = None,
    energy: float | None = None,
) -> Projection:
    """Project snapshots onto the Grassmann manifold by thin SVD (Eq 2) with truncation (Eq 6).

    Parameters
    ----------
    fields : array_like, shape (..., n, m)
        One snapshot or a batch (leading axes); float, finite.
    rank, atol, rtol, energy
        Truncation criteria, see :func:`truncation_rank`; ``rank`` may be one integer per
        snapshot (shape of the leading axes).

    Returns
    -------
    Projection

    Raises
    ------
    GegoError
        If ``fields`` is not at least 2-D or contains NaN/infinity.
    """
    x = np.asarray(fields, dtype=float)
    if x.ndim < 2 or 0 in x.shape[-2:]:
        raise GegoError(f"fields: expected snapshots of shape (..., n, m) with n, m >= 1, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise GegoError("fields: snapshot contains NaN or infinity (did the simulation diverge?)")
    # Eq (2): X = U S V^T, thin (k = min(n, m) columns).
    u, s, vt = np.linalg.svd(x, full_matrices=False)
    shape = x.shape[-2:]
    return Projection(
        left=u,
        right=np.swapaxes(vt, -1, -2),
        singular_values=s,
        rank=truncation_rank(s, shape, rank=rank, atol=atol, rtol=rtol, energy=energy),
        numerical_rank=numerical_rank(s, shape),
    )


# --------------------------------------------------------------------------------------------
# Principal angles (Eq 3)
# --------------------------------------------------------------------------------------------


def _side_vectors(proj: Projection, side: str) -> np.ndarray:
    if side == "left":
        return proj.left
    if side == "right":
        return proj.right
    raise ConfigError(f"basis: expected 'left' or 'right' here, got {side!r}")


def _mask_columns(basis: np.ndarray, rank: np.ndarray) -> np.ndarray:
    keep = np.arange(basis.shape[-1]) < np.asarray(rank)[..., None]
    return basis * keep[..., None, :]


def _exact_angles(ua: np.ndarray, ub: np.ndarray) -> np.ndarray:
    """Principal angles (ascending) between full-rank orthonormal bases (..., n, p), (..., n, q)."""
    if ub.shape[-1] > ua.shape[-1]:
        # the angles are symmetric; the narrower basis second keeps the sine SVD small and makes
        # every one of its sines a genuine one
        ua, ub = ub, ua
    if ua.shape[-1] == ua.shape[-2]:
        # A spans the whole space R^n and contains B: every principal angle is exactly 0
        return np.zeros(np.broadcast_shapes(ua.shape[:-2], ub.shape[:-2]) + ub.shape[-1:])
    # Eq (3): the singular values of C = U_A^T U_B are the cosines, in decreasing order.
    c = np.swapaxes(ua, -1, -2) @ ub
    # The sines are the singular values of (I - U_A U_A^T) U_B = U_B - U_A C, computed without
    # forming 1 - cos^2, so that small angles keep full absolute accuracy (Bjorck & Golub).
    s = ub - ua @ c
    if ub.shape[-1] == 1:
        # one column: its singular value is its norm (much cheaper than a batched SVD)
        cosines = np.linalg.norm(c, axis=-2)
        sines = np.linalg.norm(s, axis=-2)
    else:
        cosines = np.linalg.svd(c, compute_uv=False)
        sines = np.linalg.svd(s, compute_uv=False)[..., ::-1]  # increasing, pairs with decreasing cosines
    # arctan2 uses whichever of sin / cos is the better conditioned for each angle
    return np.arctan2(sines, cosines)


def _shared_angles(basis_a: np.ndarray, rank_a, basis_b: np.ndarray, rank_b) -> np.ndarray:
    """Principal angles between the first ``rank_a`` / ``rank_b`` columns of two bases.

    ``basis_a`` (..., n, Ka), ``basis_b`` (..., n, Kb) with orthonormal leading columns; leading
    axes and the ranks broadcast. Returns (..., min(max rank_a, max rank_b)): per pair the
    ``min(rank_a, rank_b)`` shared angles in increasing order, then NaN.

    Pairs are grouped by their (rank_a, rank_b) so that each group's SVDs have exactly its own
    size: a batch with a few high-rank pairs does not make every pair pay for them.
    """
    rank_a = np.asarray(rank_a, dtype=int)
    rank_b = np.asarray(rank_b, dtype=int)
    batch = np.broadcast_shapes(basis_a.shape[:-2], basis_b.shape[:-2], rank_a.shape, rank_b.shape)
    k = min(int(rank_a.max(initial=0)), int(rank_b.max(initial=0)))
    if k == 0:
        return np.full(batch + (0,), np.nan)
    n = basis_a.shape[-2]
    ra = np.broadcast_to(rank_a, batch).reshape(-1)
    rb = np.broadcast_to(rank_b, batch).reshape(-1)
    pairs = np.unique(np.stack([ra, rb], axis=1), axis=0)
    if len(pairs) == 1:
        r1, r2 = (int(v) for v in pairs[0])
        angles = _exact_angles(basis_a[..., :r1], basis_b[..., :r2]) if min(r1, r2) else np.empty(batch + (0,))
        out = np.full(batch + (k,), np.nan)
        out[..., : angles.shape[-1]] = np.broadcast_to(angles, batch + angles.shape[-1:])
        return out
    ua = np.broadcast_to(basis_a, batch + basis_a.shape[-2:]).reshape(-1, n, basis_a.shape[-1])
    ub = np.broadcast_to(basis_b, batch + basis_b.shape[-2:]).reshape(-1, n, basis_b.shape[-1])
    out = np.full((ra.size, k), np.nan)
    for r1, r2 in pairs:
        if min(r1, r2) == 0:
            continue  # no shared angle: the zero subspace
        rows = np.flatnonzero((ra == r1) & (rb == r2))
        out[rows, : min(r1, r2)] = _exact_angles(ua[rows, :, :r1], ub[rows, :, :r2])
    return out.reshape(batch + (k,))


def principal_angles(basis_a, basis_b) -> np.ndarray:
    """Principal angles (radians, increasing) between the spans of two orthonormal bases (Eq 3).

    Parameters
    ----------
    basis_a : array_like, shape (..., n, p)
    basis_b : array_like, shape (..., n, q)
        Orthonormal columns (``U^T U = I``); leading axes broadcast.

    Returns
    -------
    ndarray, shape (..., min(p, q))
        ``theta_1 <= ... <= theta_min(p,q)`` in [0, pi/2], from ``arctan2(sin, cos)`` so that
        angles near 0 and near pi/2 are both accurate to ~1e-16.
    """
    ua = np.asarray(basis_a, dtype=float)
    ub = np.asarray(basis_b, dtype=float)
    if ua.ndim < 2 or ub.ndim < 2 or ua.shape[-2] != ub.shape[-2]:
        raise GegoError(f"bases must be (..., n, p) and (..., n, q) with the same n, got {ua.shape} and {ub.shape}")
    return _shared_angles(ua, ua.shape[-1], ub, ub.shape[-1])


def subspace_angles(field_a, field_b, *, side: str = "left", **truncation) -> np.ndarray:
    """Principal angles between the truncated subspaces of two fields (convenience wrapper).

    Equivalent to projecting each field (Eq 2, 6; ``truncation`` as in :func:`project`) and
    calling :func:`principal_angles` on the truncated bases. Returns ``min(r_A, r_B)`` angles.
    """
    pa = project(field_a, **truncation)
    pb = project(field_b, **truncation)
    return _shared_angles(pa.basis(side), pa.rank, pb.basis(side), pb.rank)


# --------------------------------------------------------------------------------------------
# Distances from principal angles (Eq 4, 8 and the usual family)
# --------------------------------------------------------------------------------------------
# Each distance is fn(angles, n_missing) -> array: `angles` (..., k) holds the shared angles
# (NaN where absent), `n_missing` (...) = |r_A - r_B| the directions without a partner, which
# count as angles of pi/2 (Eq 8) unless UQpy defines another term (see module docstring).


def _present(angles) -> np.ndarray:
    a = np.asarray(angles, dtype=float)
    # theta = 0 is neutral for every formula below (adds 0, multiplies cos by 1, max of >= 0)
    return np.where(np.isnan(a), 0.0, a)


def geodesic(angles, n_missing=0) -> np.ndarray:
    """Geodesic (arc-length) distance, Eq (4); with ``n_missing > 0`` Eq (8).

    ``sqrt(sum theta_i^2 + |r_A - r_B| pi^2 / 4)``.
    """
    theta = _present(angles)
    # Eq (8) (Eq (4) when n_missing = 0)
    return np.sqrt(np.sum(theta**2, axis=-1) + np.asarray(n_missing) * _HALF_PI**2)


def projection(angles, n_missing=0) -> np.ndarray:
    """Projection (chordal) distance ``sqrt(sum sin^2 theta_i + |r_A - r_B|)`` (UQpy's convention)."""
    theta = _present(angles)
    return np.sqrt(np.sum(np.sin(theta) ** 2, axis=-1) + np.asarray(n_missing))


def procrustes(angles, n_missing=0) -> np.ndarray:
    """Procrustes distance ``2 sqrt(sum sin^2(theta_i / 2) + |r_A - r_B|)`` (UQpy's convention)."""
    theta = _present(angles)
    return 2.0 * np.sqrt(np.sum(np.sin(0.5 * theta) ** 2, axis=-1) + np.asarray(n_missing))


def _log_cos_squared(theta: np.ndarray) -> np.ndarray:
    """``log cos^2 theta`` accurate for small theta, floored at log(tiny) for theta = pi/2."""
    small = theta < 0.25 * np.pi
    with np.errstate(divide="ignore"):
        via_sin = np.log1p(-np.sin(np.where(small, theta, 0.0)) ** 2)
        via_cos = np.log(np.maximum(np.cos(np.where(small, 0.0, theta)) ** 2, _TINY))
    return np.where(small, via_sin, via_cos)


def _one_minus_prod_cos_squared(theta: np.ndarray, n_missing) -> tuple[np.ndarray, np.ndarray]:
    """``(1 - prod cos^2, prod cos)`` over shared angles and pi/2 for every missing direction."""
    log_c2 = np.sum(_log_cos_squared(theta), axis=-1)
    missing = np.asarray(n_missing) > 0
    one_minus = np.where(missing, 1.0, -np.expm1(log_c2))
    prod_cos = np.where(missing, 0.0, np.exp(0.5 * log_c2))
    return one_minus, prod_cos


def binet_cauchy(angles, n_missing=0) -> np.ndarray:
    """Binet-Cauchy distance ``sqrt(1 - prod cos^2 theta_i)``; 1 when the ranks differ."""
    one_minus, _ = _one_minus_prod_cos_squared(_present(angles), n_missing)
    return np.sqrt(np.maximum(one_minus, 0.0))


def fubini_study(angles, n_missing=0) -> np.ndarray:
    """Fubini-Study distance ``arccos(prod cos theta_i)``; pi/2 when the ranks differ.

    Evaluated as ``arctan2(sqrt(1 - P^2), P)`` with ``1 - P^2`` from ``expm1`` so that it stays
    accurate when the angles are small (``arccos`` of a number near 1 does not).
    """
    one_minus, prod_cos = _one_minus_prod_cos_squared(_present(angles), n_missing)
    return np.arctan2(np.sqrt(np.maximum(one_minus, 0.0)), prod_cos)


def martin(angles, n_missing=0) -> np.ndarray:
    """Martin distance ``sqrt(-sum log cos^2 theta_i)``.

    Orthogonal (and missing) directions would make it infinite; as UQpy does, ``cos^2`` is
    floored at the smallest normal double, so each such direction adds ``-log(tiny) = 708.4``.
    Near orthogonality the value depends on cosines at rounding level (``cos = 1e-16`` adds 73):
    it is ill-conditioned there, unlike the other distances.
    """
    theta = _present(angles)
    total = -np.sum(_log_cos_squared(theta), axis=-1) - np.asarray(n_missing) * np.log(_TINY)
    return np.sqrt(np.maximum(total, 0.0))


def asimov(angles, n_missing=0) -> np.ndarray:
    """Asimov distance ``max theta_i``; pi/2 when the ranks differ."""
    theta = _present(angles)
    largest = np.max(theta, axis=-1, initial=0.0)
    return np.where(np.asarray(n_missing) > 0, _HALF_PI, largest)


def spectral(angles, n_missing=0) -> np.ndarray:
    """Spectral distance ``2 sin(max theta_i / 2)`` (UQpy's form); sqrt(2) when the ranks differ."""
    return 2.0 * np.sin(0.5 * asimov(angles, n_missing))


DISTANCES: dict[str, Callable[..., np.ndarray]] = {
    "geodesic": geodesic,
    "projection": projection,
    "chordal": projection,
    "procrustes": procrustes,
    "binet_cauchy": binet_cauchy,
    "fubini_study": fubini_study,
    "martin": martin,
    "asimov": asimov,
    "spectral": spectral,
}


def _distance_fn(metric: str) -> Callable[..., np.ndarray]:
    try:
        return DISTANCES[metric]
    except (KeyError, TypeError):
        raise ConfigError(f"distance: unknown Grassmann distance {metric!r}; expected one of {sorted(DISTANCES)}") from None


def distance_from_angles(angles, n_missing=0, metric: str = "geodesic") -> np.ndarray:
    """Apply the distance named ``metric`` (a key of :data:`DISTANCES`) to principal angles."""
    return _distance_fn(metric)(angles, n_missing)


def _pair_ranks(a: Projection, b: Projection, rank_rule: str) -> tuple[np.ndarray, np.ndarray]:
    """Ranks actually used for each pair: Sec 3.3's p_hat = max(p, p*) or each its own."""
    if rank_rule == "max":
        p_hat = np.maximum(a.rank, b.rank)  # Sec 3.3: p_hat = max(p, p*)
        # a snapshot cannot supply more meaningful vectors than its numerical rank; the rest
        # count as missing directions (Eq 8)
        return np.minimum(p_hat, a.numerical_rank), np.minimum(p_hat, b.numerical_rank)
    if rank_rule == "own":
        return np.broadcast_arrays(a.rank, b.rank)
    raise ConfigError(f"rank_rule: expected one of {RANK_RULES}, got {rank_rule!r}")


def grassmann_distance(
    a: Projection,
    b: Projection,
    *,
    metric: str = "geodesic",
    basis: str = "left",
    rank_rule: str = "max",
) -> np.ndarray | float:
    """Grassmann distance between projected snapshots, pair by pair (leading axes broadcast).

    Parameters
    ----------
    a, b : Projection
        From :func:`project`; their grids must match.
    metric : str
        A key of :data:`DISTANCES` (default the geodesic, Eq 4 / Eq 8).
    basis : {"left", "right", "both"}
        Column space (G(p, n), Eq 4 as in the paper), row space (G(p, m)), or the composite of
        Sec 2.1: the distance on the product manifold G(p, n) x G(p, m),
        ``sqrt(d_left^2 + d_right^2)``.
    rank_rule : {"max", "own"}
        Sec 3.3's ``p_hat = max(p, p*)`` or each snapshot's own truncated rank.

    Returns
    -------
    float or ndarray
        One distance per pair (a float when both are single snapshots).
    """
    if a.shape != b.shape:
        raise GegoError(f"snapshots on different grids cannot be compared: {a.shape} vs {b.shape}")
    if basis not in BASES:
        raise ConfigError(f"basis: expected one of {BASES}, got {basis!r}")
    fn = _distance_fn(metric)
    rank_a, rank_b = _pair_ranks(a, b, rank_rule)
    n_missing = np.abs(rank_a - rank_b)
    sides = ("left", "right") if basis == "both" else (basis,)
    parts = []
    for side in sides:
        angles = _shared_angles(_side_vectors(a, side), rank_a, _side_vectors(b, side), rank_b)
        parts.append(fn(angles, n_missing))
    out = parts[0] if len(parts) == 1 else np.sqrt(parts[0] ** 2 + parts[1] ** 2)
    return float(out) if np.ndim(out) == 0 else out


def snapshot_distance(
    field_a,
    field_b,
    *,
    metric: str = "geodesic",
    basis: str = "left",
    rank_rule: str = "max",
    rank=None,
    atol: float | None = None,
    rtol: float | None = None,
    energy: float | None = None,
) -> np.ndarray | float:
    """Project two fields (or batches) and return their Grassmann distance.

    Shorthand for ``grassmann_distance(project(field_a, ...), project(field_b, ...), ...)``
    with the same truncation for both; see :func:`project` and :func:`grassmann_distance`.
    """
    truncation = dict(rank=rank, atol=atol, rtol=rtol, energy=energy)
    return grassmann_distance(
        project(field_a, **truncation), project(field_b, **truncation), metric=metric, basis=basis, rank_rule=rank_rule
    )


def pairwise_distances(a: Projection, b: Projection | None = None, **options) -> np.ndarray:
    """All-pairs distance matrix between two 1-D batches of projections (``b`` defaults to ``a``).

    Returns shape ``(len(a), len(b))``; ``options`` as in :func:`grassmann_distance`.
    """
    b = a if b is None else b
    if len(a.batch_shape) != 1 or len(b.batch_shape) != 1:
        raise GegoError(f"pairwise_distances expects 1-D batches, got batch shapes {a.batch_shape} and {b.batch_shape}")
    return np.asarray(grassmann_distance(a[:, None], b[None, :], **options))
