"""Listeners the model never saw, scored from their items alone: no retraining, no graph.

A fitted GCN scores ``s(u, t) = z_u . q_t + b``, with ``q_t = w * z_t`` (the linear scorer's
weights folded into the item embeddings). A new listener given only a set of items T gets
the vector z that minimises iALS's weighted squared loss over the whole catalogue (Hu,
Koren & Volinsky, ICDM 2008; ``implicit``'s ``recalculate_user``):

    sum_{t in T} (1 + alpha) (1 - b - z . q_t)^2  +  sum_{t not in T} (-b - z . q_t)^2  +  reg |z|^2

Its normal equations are ``M z = c sum_{t in T} q_t - b s`` with

    M = G + alpha Q_T^T Q_T + reg I,   G = Q^T Q,   s = sum_t q_t,   c = (1 + alpha)(1 - b) + b,

so each listener costs one (d, d) solve; G and s are computed once over the catalogue.

The same closed form makes a folded-in score additive over the listener's own items, as
``implicit``'s ``explain`` does for ALS: ``s(t) = b - b q_t M^-1 s + sum_{j in T} c q_j M^-1 q_t``.
The term of item j is how much j pulls t up (``contributions``).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from .evaluate import evaluate
from .ranking import NormOrderedTopK
from .types import UserItems

ALPHAS = (1.0, 3.0, 10.0, 30.0, 100.0)  # the confidence of a listener's own items, chosen on validation


class FoldIn:
    """Folds item sets into a fitted embedding space.

    Args:
        item_embeddings: (I, d) the items' final embeddings.
        weight: (d,) the linear scorer's weights on the element-wise product.
        bias: the scorer's bias.
        alpha: the confidence of the listener's own items (see the module's docstring).
    """

    def __init__(self, item_embeddings: Tensor, weight: Tensor, bias: float, alpha: float):
        self.items = item_embeddings * weight  # (I, d) the q_t, float32; sums and solves take float64
        self.bias = float(bias)
        self.alpha = float(alpha)
        q = self.items.double()  # (I, d), only while the catalogue-wide sums are taken
        self.gram = q.T @ q  # (d, d)
        self.total = q.sum(0)  # (d,)
        del q
        d = self.items.shape[1]
        # A little ridge keeps M invertible when the catalogue has fewer items than dimensions.
        self.reg = 1e-6 * float(self.gram.diagonal().mean()) + 1e-12
        self.eye = torch.eye(d, dtype=torch.float64)

    def with_alpha(self, alpha: float) -> FoldIn:
        other = FoldIn.__new__(FoldIn)
        other.__dict__.update(self.__dict__)
        other.alpha = float(alpha)
        return other

    def _rows(self, items: np.ndarray) -> Tensor:
        """(len(items), d) float64 q_t of the given items."""
        return self.items[torch.tensor(np.asarray(items, np.int64))].double()

    def _system(self, items: np.ndarray, weights: np.ndarray | None = None) -> tuple[Tensor, Tensor]:
        """(M, right-hand side) of one listener's normal equations; ``weights`` (|T|,) scale each own
        item's confidence ``alpha`` (all 1 when None)."""
        q_t = self._rows(items)  # (|T|, d)
        w = torch.ones(len(items), dtype=torch.float64) if weights is None else torch.as_tensor(
            np.asarray(weights, np.float64))
        m = self.gram + self.alpha * (q_t.T * w) @ q_t + self.reg * self.eye
        c = (1 + self.alpha * w) * (1 - self.bias) + self.bias  # (|T|,)
        return m, c @ q_t - self.bias * self.total

    def vectors(self, histories: Sequence[np.ndarray], priors: Sequence[Tensor | None] | None = None,
                weights: Sequence[np.ndarray | None] | None = None) -> Tensor:
        """(B, d) folded-in vectors of B listeners, each given by an array of item indices.

        ``priors`` (a (d,) vector or None per listener) adds ``lam |z - prior|^2`` to a
        listener's loss, ``lam = (1 + alpha) mean_t |q_t|^2 / d``: the prior weighs, over all d
        directions, what one own item weighs along its own. A listener with a prior and no
        item gets the prior itself. ``weights`` (an array beside each history, or None) scale
        each own item's confidence, e.g. ``position_weights`` of a playlist in order.
        """
        if not len(histories):
            return torch.zeros(0, self.items.shape[1])
        d = self.items.shape[1]
        lam = (1 + self.alpha) * float(self.gram.diagonal().sum()) / max(len(self.items), 1) / d
        weights = weights or [None] * len(histories)
        systems = [self._system(items, w) for items, w in zip(histories, weights)]
        m = torch.stack([s[0] for s in systems])
        rhs = torch.stack([s[1] for s in systems])
        for b, prior in enumerate(priors or []):
            if prior is not None:
                m[b] += lam * self.eye
                rhs[b] += lam * prior.double()
        out = spd_solve(m, rhs[..., None])[..., 0].float()
        for b, prior in enumerate(priors or []):
            if prior is not None and not len(histories[b]):
                out[b] = prior.float()
        return out

    def scores(self, histories: Sequence[np.ndarray]) -> Tensor:
        """(B, I) scores of every item for B listeners given by their items."""
        return self.vectors(histories) @ self.items.T + self.bias

    def contributions(self, items: np.ndarray, targets: np.ndarray) -> tuple[Tensor, Tensor]:
        """How much each of a listener's items adds to the score of each target item.

        Args:
            items: (T,) the listener's items.
            targets: (R,) items to explain.

        Returns:
            (R, T) contributions, and (R,) the rest of each score (bias and the catalogue-wide
            term): each row's sum plus its rest is the folded-in score of that target.
        """
        m, _ = self._system(items)
        q_t = self._rows(items)  # (T, d)
        q_r = self._rows(targets)  # (R, d)
        solved = spd_solve(m, q_r.T)  # (d, R): M^-1 q_r
        c = (1 + self.alpha) * (1 - self.bias) + self.bias
        parts = c * (q_t @ solved).T  # (R, T)
        rest = self.bias - self.bias * (self.total @ solved)  # (R,)
        return parts.float(), rest.float()


def spd_solve(m: Tensor, rhs: Tensor) -> Tensor:
    """``M^-1 rhs`` for symmetric positive definite M (batched), by Cholesky.

    M is G + alpha Q_T^T W Q_T + reg I with positive weights: positive definite. Cholesky also
    sidesteps ``torch.linalg.solve``'s batched LU, whose MKL threads nest inside torch's and
    stall for minutes on CPU at d = 256 with 2 threads (torch 2.13).
    """
    return torch.cholesky_solve(rhs, torch.linalg.cholesky(m))


def distinct_items(histories, weights=None) -> tuple[list[np.ndarray], list[np.ndarray | None]]:
    """Each history's distinct items (sorted), each with its first weight where weights are given."""
    weights = list(weights) if weights is not None else [None] * len(histories)
    out_h, out_w = [], []
    for h, w in zip(histories, weights):
        items, first = np.unique(np.asarray(h, np.int64), return_index=True)
        out_h.append(items)
        out_w.append(None if w is None else np.asarray(w, np.float64)[first])
    return out_h, out_w


def history_rows(histories, weights, num_items: int) -> sp.csr_matrix:
    """(B, num_items) CSR rows of B histories of item indices: 1 at each distinct item, or the
    item's first weight where ``weights`` (an array beside each history, or None) are given."""
    rows, weights = distinct_items(histories, weights)
    values = [np.ones(len(h), np.float32) if w is None else w.astype(np.float32) for h, w in zip(rows, weights)]
    indptr = np.concatenate([[0], np.cumsum([len(h) for h in rows])]).astype(np.int64)
    matrix = UserItems(indptr, np.concatenate(rows) if rows else np.zeros(0, np.int64)).matrix(num_items)
    matrix.data = np.concatenate(values) if values else matrix.data
    return matrix


def position_weights(count: int, recency: float) -> np.ndarray:
    """(count,) confidence weights of a playlist's tracks in order, mean 1: the last weighs
    ``1 + recency`` times the first, linearly between (``recency`` 0: all alike)."""
    w = 1.0 + recency * np.arange(count) / max(count - 1, 1)
    return w / w.mean() if count else w


def histories_of(items: UserItems, users: np.ndarray) -> list[np.ndarray]:
    """The item arrays of ``users`` (indices into ``items``)."""
    return [items.of(int(u)) for u in users]


def choose_alpha(fold: FoldIn, fit: UserItems, valid: UserItems, num_items: int, k: int = 20) -> float:
    """The alpha (of ``ALPHAS``) whose fold-in of each validation user's training items best
    recalls their validation items (training items left out of the ranking)."""
    users = np.flatnonzero(valid.heldout_counts() > 0)
    histories = histories_of(fit, users)
    # One scan order serves every alpha: the folded-in vectors change, the items do not.
    ranker = NormOrderedTopK(torch.zeros(fit.num_users, fold.items.shape[1]), fold.items, fold.bias)
    best, best_recall = ALPHAS[0], -1.0
    for alpha in ALPHAS:
        ranker.q_users[torch.from_numpy(users)] = fold.with_alpha(alpha).vectors(histories)
        recall = evaluate(None, valid, fit, num_items, k, top_k_fn=ranker)[f"recall@{k}"]
        if recall > best_recall:
            best, best_recall = alpha, recall
    return best
