"""Local GPs on the nearest training points, for large N (the paper's Sec 6).

The paper's conclusion notes that a sample added by EGO changes the surrogate only in a region
around it, so local GPs "trained on small sets of nearest neighboring samples" cut the cost.
This module does that with fixed global hyperparameters:

- Anchors: a space-filling subset of the training points (greedy farthest-point sampling in the
  ARD-scaled space ``x / l``, started at the best point), about ``4 N / n_neighbours`` of them,
  so each training point belongs to a few neighbourhoods.
- Each anchor owns an exact GP (gego.surrogate.gp.Factor) on its `n_neighbours` nearest training
  points in the same scaled space; it is built lazily and cached.
- A test point is predicted by the local GP of its nearest anchor (Eq 14-15 restricted to that
  neighbourhood).
- Appending a point invalidates only the cached local GPs whose neighbourhood it falls into;
  they are rebuilt, O(n_neighbours^3) each, when next needed.

Costs: prediction is O(n_star n_neighbours^2) and memory O(N d + anchors n_neighbours^2),
independent of N^2, so 8,000 evaluations stay fast and small.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from gego.surrogate import gp as _gp

_NEIGHBOURHOODS_PER_POINT = 4


@dataclass(frozen=True)
class LocalModel:
    """One anchor's exact GP and the squared scaled radius of its neighbourhood."""

    factor: "_gp.Factor"
    radius2: float


def farthest_point_anchors(Z: np.ndarray, n_anchors: int, first: int) -> np.ndarray:
    """Indices of `n_anchors` rows of Z chosen greedily, each farthest from those chosen so far.

    Deterministic: starts at row `first`, ties go to the lowest index.
    """
    n = Z.shape[0]
    n_anchors = min(n_anchors, n)
    chosen = np.empty(n_anchors, dtype=np.intp)
    chosen[0] = first
    dist2 = np.sum((Z - Z[first]) ** 2, axis=1)
    for k in range(1, n_anchors):
        chosen[k] = int(np.argmax(dist2))
        np.minimum(dist2, np.sum((Z - Z[chosen[k]]) ** 2, axis=1), out=dist2)
    return chosen


@dataclass
class LocalGP:
    """Local exact GPs around anchors; all in standardised output units.

    Attributes
    ----------
    X : ndarray, shape (n, d)
        All training inputs (unit cube).
    y : ndarray, shape (n,)
        Standardised training outputs.
    hp : Hyperparameters
        Global hyperparameters shared by every local GP.
    anchors : ndarray, shape (n_anchors, d)
        Anchor locations, unit cube.
    n_neighbours : int
        Training points per local GP.
    cache : dict
        anchor index -> LocalModel, filled lazily; never mutated in place once shared (extended
        returns a new LocalGP with a new dict).
    """

    X: np.ndarray
    y: np.ndarray
    hp: "_gp.Hyperparameters"
    anchors: np.ndarray
    n_neighbours: int
    cache: dict = field(default_factory=dict)

    @classmethod
    def build(cls, X: np.ndarray, y: np.ndarray, hp, *, n_neighbours: int, seed: int) -> "LocalGP":
        """Choose anchors (seed kept for API symmetry: the choice is deterministic)."""
        del seed  # farthest-point sampling from the best point needs no random draw
        n = X.shape[0]
        n_anchors = max(1, int(np.ceil(_NEIGHBOURHOODS_PER_POINT * n / n_neighbours)))
        Z = X / hp.length_scales
        idx = farthest_point_anchors(Z, n_anchors, first=int(np.argmin(y)))
        return cls(X=X, y=y, hp=hp, anchors=X[idx].copy(), n_neighbours=int(n_neighbours))

    # --- neighbourhoods --------------------------------------------------------------------

    def _scaled(self, X: np.ndarray) -> np.ndarray:
        return X / self.hp.length_scales

    def nearest_anchor(self, X: np.ndarray) -> np.ndarray:
        """Index of the nearest anchor (ARD-scaled distance) for each row of X."""
        r2 = _gp.scaled_sq_dist(X, self.anchors, self.hp.length_scales)
        return np.argmin(r2, axis=1)

    def local_model(self, anchor: int) -> LocalModel:
        """The exact GP on the n_neighbours points nearest to an anchor (cached)."""
        model = self.cache.get(anchor)
        if model is None:
            r2 = _gp.scaled_sq_dist(self.anchors[anchor : anchor + 1], self.X, self.hp.length_scales)[0]
            m = min(self.n_neighbours, r2.size)
            nearest = np.argpartition(r2, m - 1)[:m] if m < r2.size else np.arange(r2.size)
            nearest = np.sort(nearest)  # a canonical order keeps results bit-reproducible
            factor = _gp.factorise(self.X[nearest], self.y[nearest], self.hp)
            model = LocalModel(factor=factor, radius2=float(np.max(r2[nearest])))
            self.cache[anchor] = model
        return model

    def extended(self, X_new: np.ndarray, y_new: np.ndarray) -> "LocalGP":
        """A new LocalGP with points appended; cached models they fall into are dropped."""
        r2 = _gp.scaled_sq_dist(self.anchors, X_new, self.hp.length_scales).min(axis=1)
        cache = {a: model for a, model in self.cache.items() if r2[a] > model.radius2}
        return LocalGP(
            X=np.vstack([self.X, X_new]),
            y=np.concatenate([self.y, y_new]),
            hp=self.hp,
            anchors=self.anchors,
            n_neighbours=self.n_neighbours,
            cache=cache,
        )

    # --- prediction ------------------------------------------------------------------------

    def predict(self, X: np.ndarray, return_std: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """Standardised mean and latent std, each point from its nearest anchor's local GP."""
        owner = self.nearest_anchor(X)
        mean = np.empty(X.shape[0])
        std = np.empty(X.shape[0]) if return_std else None
        for anchor in np.unique(owner):
            rows = np.flatnonzero(owner == anchor)
            m, s = _gp.predict_standardised(self.local_model(int(anchor)).factor, self.hp, X[rows], return_std)
            mean[rows] = m
            if return_std:
                std[rows] = s
        return mean, std

    def predict_with_gradient(self, X: np.ndarray):
        """Standardised mean, std and gradients (piecewise: gradients of the owning local GP)."""
        owner = self.nearest_anchor(X)
        n, d = X.shape
        mean, std = np.empty(n), np.empty(n)
        dmean, dstd = np.empty((n, d)), np.empty((n, d))
        for anchor in np.unique(owner):
            rows = np.flatnonzero(owner == anchor)
            out = _gp.predict_gradient_standardised(self.local_model(int(anchor)).factor, self.hp, X[rows])
            mean[rows], std[rows], dmean[rows], dstd[rows] = out
        return mean, std, dmean, dstd
