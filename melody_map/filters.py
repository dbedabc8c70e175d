"""Training-free graph filters for recommendation: GF-CF (Shen et al., CIKM 2021).

A user's row of the interaction matrix is a signal on the item-item graph; smoothing it
with a low-pass filter of that graph ranks the items the user's neighbourhood favours.
GF-CF adds two filters of the degree-normalised matrix ``R~ = D_U^-1/2 R D_I^-1/2``:

    linear filter      P~ = R~^T R~                      (item-item co-occurrence, normalised)
    ideal low-pass     D_I^-1/2 V_k V_k^T D_I^1/2       (V_k: the k leading right singular vectors of R~)

and scores ``s_u = r_u (P~ + alpha * ideal)``. No weights are learned; the only choices are
``k`` and ``alpha``, picked on validation like any hyper-parameter. LightGCN's propagation
is the same kind of low-pass filter, reached by gradient descent (Shen et al., Sec. 3).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from .evaluate import ScoreFn, UserItems, evaluate
from .recommender import Log, Recommender
from .sparse import csr_from_state, csr_state, torch_csr
from .split import TRAIN

MAX_ITEMS = 30_000  # the dense items x items filter: 3.6 GB of float32 at this size


class GFCF(Recommender):
    """GF-CF's linear plus ideal low-pass filter over the item-item graph.

    Args:
        k: singular vectors in the ideal low-pass filter (clipped to the item count).
        alpha: weight of the ideal low-pass filter against the linear one.
        max_items: refuse larger catalogues, whose dense items x items filter would not fit.
        seed: seeds the randomised SVD.
    """

    name = "gf-cf"
    label = "GF-CF"

    def __init__(self, k: int = 256, alpha: float = 0.3, max_items: int = MAX_ITEMS, seed: int = 0):
        self.k, self.alpha, self.max_items, self.seed = k, alpha, max_items, seed
        self.matrix: sp.csr_matrix | None = None
        self.filter: Tensor | None = None

    def params(self) -> dict[str, Any]:
        return {"k": self.k, "alpha": self.alpha}

    def fit(self, data, *, log: Log | None = None, progress: bool = False) -> GFCF:
        return self.fit_matrix(data.matrix(TRAIN))

    def fit_matrix(self, matrix: sp.csr_matrix) -> GFCF:
        """Build the filter from a users x items interaction matrix (treated as binary)."""
        num_items = matrix.shape[1]
        if num_items > self.max_items:
            raise ValueError(f"GF-CF needs a dense {num_items:,} x {num_items:,} filter: {num_items:,} items are "
                             f"more than {self.max_items:,}")
        binary = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
        binary.data[:] = 1.0
        self.matrix = binary
        du = np.asarray(binary.sum(1)).ravel()
        di = np.asarray(binary.sum(0)).ravel()
        inv_u = np.where(du > 0, du, 1) ** -0.5
        inv_i = np.where(di > 0, di, 1) ** -0.5
        norm = sp.diags(inv_u.astype(np.float32)) @ binary @ sp.diags(inv_i.astype(np.float32))
        linear = torch.from_numpy((norm.T @ norm).toarray().astype(np.float32))  # (I, I)
        k = min(self.k, min(norm.shape) - 1)
        with torch.random.fork_rng(devices=[]):  # seeded without touching the caller's generator
            torch.manual_seed(self.seed)
            _, _, v = torch.svd_lowrank(torch_csr(sp.csr_matrix(norm)), q=k, niter=4)
        # (I, k) -> D_I^-1/2 V V^T D_I^1/2, (I, I)
        ideal = (torch.from_numpy(inv_i.astype(np.float32))[:, None] * v) @ (v.T / torch.from_numpy(
            inv_i.astype(np.float32))[None, :])
        self.filter = linear + self.alpha * ideal
        return self

    def scores(self, users: np.ndarray) -> Tensor:
        # (B, I) sparse rows @ (I, I) dense filter -> (B, I)
        return torch.sparse.mm(torch_csr(self.matrix[users]), self.filter)

    def state(self) -> dict[str, Any]:
        """The fitted matrix; ``from_state`` rebuilds the (seeded, deterministic) filter from it."""
        return csr_state(self.matrix)

    @classmethod
    def from_state(cls, params: dict[str, Any], state: dict[str, Any]) -> GFCF:
        return cls(**params).fit_matrix(csr_from_state(state))


def standardised(score_fn: ScoreFn) -> ScoreFn:
    """Per-user z-scores of a ScoreFn's rows, so that two models' scores can be added."""
    def scores(users: np.ndarray) -> Tensor:
        x = score_fn(users).clone()
        return (x - x.mean(1, keepdim=True)) / x.std(1, keepdim=True).clamp_min(1e-9)
    return scores


def blended(filter_fn: ScoreFn, gcn_fn: ScoreFn, weight: float) -> ScoreFn:
    """``z(filter) + weight * z(gcn)``: the GCN+GF-CF model's scores."""
    f, g = standardised(filter_fn), standardised(gcn_fn)
    return lambda users: f(users) + weight * g(users)


GF_CF_GRID = {"k": [64, 256], "alpha": [0.0, 0.3, 1.0]}  # searched on validation
BLEND_WEIGHTS = (0.0, 0.25, 0.5, 1.0, 2.0)  # the GCN's weight in GCN+GF-CF, searched on validation


def choose_blend(fit: UserItems, valid: UserItems, gcn_fn: ScoreFn, num_items: int, k: int = 20,
                 log: Log | None = None) -> tuple[dict[str, float], GFCF]:
    """GF-CF's ``k`` and ``alpha``, then the GCN's weight beside it, by validation Recall@k.

    Args:
        fit: the training items the filter is built from (and that validation excludes).
        valid: each user's validation items.
        gcn_fn: the trained GCN's scores.
        num_items: I.
        k: cut-off.
        log: called with a line per candidate, or None.

    Returns:
        {"gf_k", "gf_alpha", "weight"}, and the chosen filter, built from ``fit``.
    """
    matrix = fit.matrix(num_items)
    best, best_recall, best_model = {}, -1.0, None
    for gk in GF_CF_GRID["k"]:
        for alpha in GF_CF_GRID["alpha"]:
            model = GFCF(k=gk, alpha=alpha).fit_matrix(matrix)
            recall = evaluate(model.scores, valid, fit, num_items, k)[f"recall@{k}"]
            if log:
                log(f"{model!r}: validation recall@{k} {recall:.4f}")
            if recall > best_recall:
                best, best_recall, best_model = {"gf_k": gk, "gf_alpha": alpha}, recall, model
    best_recall = -1.0
    for weight in BLEND_WEIGHTS:
        recall = evaluate(blended(best_model.scores, gcn_fn, weight), valid, fit, num_items, k)[f"recall@{k}"]
        if log:
            log(f"GF-CF + {weight} x GCN: validation recall@{k} {recall:.4f}")
        if recall > best_recall:
            best_recall, best["weight"] = recall, weight
    return best, best_model
