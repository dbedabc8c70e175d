"""Exact top-k over every item with excluded items masked: a dense scan of score rows, and a
norm-ordered scan of embeddings that stops early. Training, evaluation and serving rank with these."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import Tensor

from .types import UserItems

SCORE_BLOCK_FLOATS = 1 << 27  # top_k's block of the score matrix (users x all items): 512 MB of floats
RANK_BATCH = 2048  # NormOrderedTopK's users per batch
RANK_CHUNK = 1 << 15  # NormOrderedTopK's items per step of the scan

ScoreFn = Callable[[np.ndarray], Tensor]  # user indices (B,) -> scores (B, num_items)


def embedding_scores(scorer, z_users: Tensor, z_items: Tensor) -> ScoreFn:
    """Scores of every item for a batch of users from final embeddings, written into one
    reused buffer (callers consume each batch before asking for the next).

    Args:
        scorer: anything with ``score_all(z_user, z_items, out=None)`` (a PairScorer).
        z_users: (U, dim) user embeddings.
        z_items: (I, dim) item embeddings.
    """
    buffer: list[Tensor] = []

    @torch.no_grad()
    def scores(users: np.ndarray) -> Tensor:
        z = z_users[torch.from_numpy(users).to(z_users.device)]
        if z_items.device.type != "cpu":
            return scorer.score_all(z, z_items).cpu()
        if not buffer or buffer[0].shape[0] < len(users):
            buffer[:] = [torch.empty(len(users), z_items.shape[0], dtype=z_items.dtype)]
        return scorer.score_all(z, z_items, out=buffer[0][: len(users)])

    return scores


def top_k(score_fn: ScoreFn, users: np.ndarray, k: int, exclude: UserItems | None,
          batch_size: int | None = None, max_scores: int = SCORE_BLOCK_FLOATS) -> tuple[np.ndarray, np.ndarray]:
    """The k best items of each user, excluded items never returned.

    Args:
        score_fn: scores of every item for a batch of users.
        users: (n,) user indices.
        k: how many items (clipped to the number of items).
        exclude: items to leave out per user (e.g. those already known), or None.
        batch_size: users scored at once; by default as many as keep a batch's score matrix
            under ``max_scores`` floats (512 MB), found from the first batch's width.

    Returns:
        items (n, k) int64 and scores (n, k) float32, best first. Where a user has fewer
        than k items left, the tail holds -inf scores.
    """
    out_items, out_scores = [], []
    mask: Tensor | None = None  # reused candidate mask: fresh 100 MB tensors cost page faults
    with torch.no_grad():
        s = 0
        while s < len(users):
            batch = users[s:s + (batch_size or 1)]
            scores = score_fn(batch).float()
            if batch_size is None:  # (1, num_items) told us the width: size the rest by memory
                batch_size = max(1, min(4096, max_scores // scores.shape[1]))
            s += len(batch)
            kk = min(k, scores.shape[1])
            if exclude is not None:
                rows, cols = exclude.batch(batch)
                scores[torch.from_numpy(rows), torch.from_numpy(cols)] = float("-inf")
            if scores.device.type == "cpu" and (mask is None or mask.shape[0] < scores.shape[0]):
                mask = torch.empty(scores.shape, dtype=torch.bool)
            values, idx = topk_rows(scores, kk, mask_out=None if mask is None else mask[: scores.shape[0]])
            out_items.append(idx.cpu().numpy())
            out_scores.append(values.cpu().numpy())
    if not out_items:
        return np.zeros((0, k), np.int64), np.zeros((0, k), np.float32)
    return np.concatenate(out_items), np.concatenate(out_scores)


class NormOrderedTopK:
    """Exact top-k of ``q_u . t + b`` over every item, scanning items in decreasing norm.

    An item's score is at most ``|q_u| |t| + b``; once that bound at the next (smaller-norm)
    item falls below a user's k-th best so far, no item left can enter their list, so the
    user stops there. With the skewed norms of trained embeddings (popular items are long),
    most users stop within the first chunk. The result equals ``top_k`` over the full score
    matrix, up to the order of exactly tied scores.

    Args:
        q_users: (U, d) user vectors, already multiplied by the scorer's weights.
        items: (I, d) item vectors.
        bias: the scorer's bias.
        chunk: items scored per step of the scan.
    """

    def __init__(self, q_users: Tensor, items: Tensor, bias: float, chunk: int = RANK_CHUNK):
        norms = items.norm(dim=1)
        self.order = torch.argsort(norms, descending=True)  # the scan: item ids, longest first
        self.items = items  # (I, d), not copied: a chunk of the scan is gathered through the order
        self.norms = norms[self.order]
        self.position = torch.empty_like(self.order)
        self.position[self.order] = torch.arange(len(self.order))  # item -> its place in the scan
        self.q_users, self.bias, self.chunk = q_users, float(bias), chunk

    @torch.no_grad()
    def __call__(self, users: np.ndarray, k: int, exclude: UserItems | None,
                 batch_size: int = RANK_BATCH) -> tuple[np.ndarray, np.ndarray]:
        """items (n, k) int64 and scores (n, k) float32 of ``users``, best first; -inf pads a short list."""
        k = min(k, len(self.order))
        out_items = np.zeros((len(users), k), np.int64)
        out_scores = np.full((len(users), k), -np.inf, np.float32)
        for s in range(0, len(users), batch_size):
            batch = users[s:s + batch_size]
            rows, cols = exclude.batch(batch) if exclude is not None else (None, None)
            items, scores = self.rank(self.q_users[torch.from_numpy(batch)], k, rows, cols)
            out_items[s:s + len(batch)], out_scores[s:s + len(batch)] = items.numpy(), scores.numpy()
        return out_items, out_scores

    @torch.no_grad()
    def rank(self, q: Tensor, k: int, rows: np.ndarray | None = None, cols: np.ndarray | None = None,
             chunk: int | None = None) -> tuple[Tensor, Tensor]:
        """Top-k items (B, k) and scores (B, k) of B query vectors, best first; -inf pads a short list.

        Args:
            q: (B, d) user vectors, already multiplied by the scorer's weights.
            k: list length, at most the number of items.
            rows, cols: (row in q, item) of each item to leave out, or None.
            chunk: items scored per step of the scan (default: the ranker's).
        """
        n_items, chunk = len(self.order), chunk or self.chunk
        q_norm = q.norm(dim=1)
        best = torch.full((len(q), k), float("-inf"))
        best_at = torch.zeros((len(q), k), dtype=torch.int64)  # places in the scan
        hidden = None
        if rows is not None and len(rows):  # (row, place) of each excluded item, sorted by place
            places = self.position[torch.from_numpy(np.asarray(cols, np.int64))]
            by_place = torch.argsort(places)
            hidden = (torch.from_numpy(np.asarray(rows, np.int64))[by_place], places[by_place])
        active = torch.arange(len(q))
        for start in range(0, n_items, chunk):
            if start:  # users whose k-th best beats every item left are done
                bound = q_norm[active] * float(self.norms[start]) + self.bias
                active = active[bound >= best[active, -1]]
                if not len(active):
                    break
            stop = min(start + chunk, n_items)
            scores = q[active] @ self.items[self.order[start:stop]].T + self.bias  # (A, C)
            if hidden is not None:
                lo, hi = torch.searchsorted(hidden[1], torch.tensor([start, stop]))
                r, p = hidden[0][lo:hi], hidden[1][lo:hi] - start
                keep = torch.isin(r, active)
                slot = torch.searchsorted(active, r[keep])
                scores[slot, p[keep]] = float("-inf")
            chunk_top, chunk_pick = torch.topk(scores, min(k, stop - start), dim=1)
            merged = torch.cat([best[active], chunk_top], dim=1)
            places = torch.cat([best_at[active], chunk_pick + start], dim=1)
            top, pick = torch.topk(merged, k, dim=1)
            best[active], best_at[active] = top, torch.gather(places, 1, pick)
        return self.order[best_at], best


def topk_rows(scores: Tensor, k: int, stride: int = 64,
              mask_out: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Exactly ``torch.topk(scores, k, dim=1)`` (up to the order of tied items), faster on wide rows.

    The k-th best of every ``stride``-th column is a lower bound on the row's true k-th best,
    so the entries at or above it hold the whole top k: a compare and a gather over the row,
    then a sort of ~k * stride candidates, instead of a selection over millions of columns.
    Where ties at the bound leave many more candidates than that (sparse scores, mostly 0),
    it is ``torch.topk`` itself.

    Args:
        scores: (B, n) scores; -inf marks excluded entries.
        k: how many per row, at most n.
        stride: subsampling step for the bound.
        mask_out: optional bool buffer of scores' shape, reused between calls.

    Returns:
        values (B, k) and indices (B, k), best first.
    """
    n = scores.shape[1]
    if n < 64 * stride or k * stride * 4 > n:
        return torch.topk(scores, k, dim=1)
    bound = torch.topk(scores[:, ::stride], k, dim=1).values[:, -1:]  # (B, 1)
    if torch.isinf(bound).any():  # a row with fewer than k finite entries in the sample
        return torch.topk(scores, k, dim=1)
    mask = torch.ge(scores, bound, out=mask_out)
    if int(mask.sum()) > 4 * k * stride * scores.shape[0]:  # ties at the bound (e.g. many zeros): no gain
        return torch.topk(scores, k, dim=1)
    rows, cols = torch.nonzero(mask, as_tuple=True)
    vals = scores[rows, cols]
    # Candidates best first within each row: sort by value, then (stably) by row.
    order = torch.argsort(vals, descending=True, stable=True)
    order = order[torch.argsort(rows[order], stable=True)]
    rows, cols, vals = rows[order], cols[order], vals[order]
    counts = torch.bincount(rows, minlength=scores.shape[0])
    rank = torch.arange(len(rows)) - (torch.cumsum(counts, 0) - counts)[rows]
    keep = rank < k
    values = torch.empty(scores.shape[0], k, dtype=scores.dtype)
    indices = torch.empty(scores.shape[0], k, dtype=torch.int64)
    values[rows[keep], rank[keep]] = vals[keep]
    indices[rows[keep], rank[keep]] = cols[keep]
    return values, indices


TopKFn = Callable[[np.ndarray, int, "UserItems | None"], tuple[np.ndarray, np.ndarray]]
