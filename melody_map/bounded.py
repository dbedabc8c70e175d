"""Exact top-k of GCN+ChebyCF over a large catalogue without scoring every track for every listener.

Where the filter goes through the users' side (``ChebyCF.users_side``), a listener's filter
score of a track i they do not hold is

    f_i = d_i^(b - 1/2) * sum over the users v holding i of t_v,    t = users_side(r) / sqrt(d_v),

a sum of at most d_i terms, and the GCN part's output at i is its empty-row value g0_i unless
i is within two hops of the listener's tracks (``RowGCN.local``). The model's score is

    s_i = A f_i + B g_i + C g_i log(1 + pop_i) + const

with A, B, C and const the listener's scorer weights over the spreads and means of the three
parts (``hybrid.stat_columns``: a fixed sample of the catalogue, so these need no full pass).

Tracks are split once: the head, the ``HEAD_ITEMS`` most played (more than D training pairs),
scored densely for every listener, and the tail (at most D pairs each). A tail track that is
outside the listener's neighbourhood and held by no user with ``t_v >= theta`` scores below

    A D^(b + 1/2) theta + max over tail tracks of (B g0 + C g0 log(1 + pop)) + const,

so with the k-th best score among the head and the neighbourhood, theta follows, and only the
tail tracks of the users above it are scored. A listener for whom no positive theta exists
(a short list, a bound too loose) gets every track scored. The result equals ranking every
track, up to the order of exactly tied scores and float rounding.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from .sparse import scipy_csr, torch_csr
from .types import UserItems

if TYPE_CHECKING:
    from .filters import ChebyCF
    from .hybrid import GCNChebyCF

HEAD_ITEMS = 1 << 16  # the most played tracks, scored densely for every listener
BLOCK_USERS = 64  # listeners ranked at once


def lookup(items: np.ndarray, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each wanted item's place in sorted ``items``, and whether it is there."""
    where = np.searchsorted(items, wanted).clip(max=max(len(items) - 1, 0))
    return where, (items[where] == wanted) if len(items) else np.zeros(len(wanted), bool)


def ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The concatenated ``arange(start, start + length)`` of each pair."""
    ends = np.cumsum(lengths)
    return np.arange(int(ends[-1]) if len(ends) else 0) - np.repeat(ends - lengths - starts, lengths)


class BoundedTopK:
    """The exact top-k of a fitted GCN+ChebyCF (``scores``' ranking, every track), by the bound above.

    Args:
        model: a fitted ``GCNChebyCF`` whose filter goes through the users' side; its weights stay fixed.
        head_items: how many of the most played tracks are scored densely.
        filter: another fitted ChebyCF to rank by in the model's place (its filter grid), or None.
        weights: the scorer's weights in the model's place (``(1, 0, 0)``: the filter alone), or None.
    """

    def __init__(self, model: GCNChebyCF, head_items: int = HEAD_ITEMS, filter: ChebyCF | None = None,
                 weights: Tensor | None = None):
        from .hybrid import stat_columns

        self.model, self.filter = model, filter or model.filter
        self.weights = (model.weight if weights is None else weights).detach().float()
        if not self.weights[0] > 0:
            raise ValueError("the bound needs the filter's weight positive")
        f = self.filter
        matrix = f.matrix  # (U, I) binary training matrix
        self.num_items = matrix.shape[1]
        degree = np.diff(sp.csc_matrix(matrix).indptr)
        order = np.argsort(-degree, kind="stable")
        # The tail: tracks with at most as many pairs as the first track past the head's budget.
        self.tail_degree = int(degree[order[head_items]]) if head_items < len(order) else 0
        self.head = np.sort(np.flatnonzero(degree > self.tail_degree))
        self.head_position = np.full(self.num_items, -1)
        self.head_position[self.head] = np.arange(len(self.head))
        self.scaled = scipy_csr(f._scaled_norm_t())  # (I, U) D^b R~^T
        self.lengths = np.diff(self.scaled.indptr)
        self.scaled_head = torch_csr(self.scaled[self.head])
        columns = stat_columns(self.num_items)
        self.columns = np.arange(self.num_items) if columns is None else columns.numpy()
        self.scaled_columns = torch_csr(self.scaled[self.columns])
        self.fallbacks = 0  # listeners ranked over every track, the bound being of no use
        self.gathered = 0  # tail tracks scored because a user above the bound holds them
        tail = degree <= self.tail_degree
        self.user_tail = sp.csr_matrix(matrix @ sp.diags(tail.astype(np.float32)))  # each user's tail tracks
        self.user_tail.eliminate_zeros()
        self.user_scale = torch.from_numpy((1 / np.sqrt(np.maximum(np.diff(matrix.indptr), 1))).astype(np.float32))
        self.b0 = float(f._polynomial()[0])
        self.factor = float(max(self.tail_degree, 1)) ** (f.beta + 0.5)
        side = model.side
        self.log_pop = side.log_pop
        self.gcn = bool(self.weights[1:].any())
        if self.gcn:
            with torch.no_grad():
                self.h0, self.g0 = model.net.empty_row(side)
            g0_tail, gl0_tail = self.g0[torch.from_numpy(tail)], (self.g0 * self.log_pop)[torch.from_numpy(tail)]
            self.extremes = (float(g0_tail.min()), float(g0_tail.max()), float(gl0_tail.min()), float(gl0_tail.max()))

    def _every_track(self, row: sp.csr_matrix) -> Tensor:
        """(I,) one listener's score of every track, as ``scores`` gives it."""
        if self.filter is self.model.filter and torch.equal(self.weights, self.model.weight.detach().float()):
            return self.model._score_rows(row)[0]
        from .hybrid import zscores_over, stat_columns

        return zscores_over(self.filter._filter(row), stat_columns(self.num_items))[0]  # the filter alone

    def _filtered(self, block: Tensor, items: np.ndarray, y: Tensor, known: sp.coo_matrix) -> Tensor:
        """(B, len(items)) f at sorted ``items`` from their rows of D^b R~^T, b_0 added at held tracks."""
        out = torch.sparse.mm(block, y).T.contiguous()
        if self.b0:
            where, hit = lookup(items, known.col)
            out[torch.from_numpy(known.row[hit].astype(np.int64)), torch.from_numpy(where[hit])] += self.b0
        return out

    @torch.no_grad()
    def filter_z(self, batch: np.ndarray, owner: np.ndarray, item: np.ndarray) -> Tensor:
        """The filter's z-scores (as ``scores`` takes them) at (listener, item) pairs, ``owner``
        indexing ``batch``: the pairs' items and the z-scores' sample alone, never every item."""
        rows = self.filter.matrix[batch]
        y, known = self.filter.users_side(rows), sp.coo_matrix(rows)
        sample = self._filtered(self.scaled_columns, self.columns, y, known)
        at, where = np.unique(item, return_inverse=True)
        values = self._filtered(torch_csr(self.scaled[at]), at, y, known)
        owner_t = torch.from_numpy(np.asarray(owner, np.int64))
        return ((values[owner_t, torch.from_numpy(where.reshape(-1))] - sample.mean(1)[owner_t])
                / sample.std(1).clamp_min(1e-9)[owner_t])

    def _pairs(self, owner: np.ndarray, items: np.ndarray, y: Tensor) -> Tensor:
        """f at (listener, track) pairs of tracks they do not hold: the few users holding each, gathered."""
        starts, lengths = self.scaled.indptr[items], self.lengths[items]
        flat = ranges(starts, lengths)
        which = np.repeat(np.arange(len(items)), lengths)
        terms = torch.from_numpy(self.scaled.data[flat]) * y[torch.from_numpy(self.scaled.indices[flat].astype(
            np.int64)), torch.from_numpy(owner[which])]
        return torch.zeros(len(items)).index_add_(0, torch.from_numpy(which), terms)

    @torch.no_grad()
    def __call__(self, users: np.ndarray, k: int, exclude: UserItems | None,
                 batch_size: int = BLOCK_USERS) -> tuple[np.ndarray, np.ndarray]:
        """items (n, k) int64 and scores (n, k) float32 of ``users``, best first; -inf pads a short list."""
        k = min(k, self.num_items)
        out_items = np.zeros((len(users), k), np.int64)
        out_scores = np.full((len(users), k), -np.inf, np.float32)
        for s in range(0, len(users), batch_size):
            batch = np.asarray(users[s:s + batch_size], np.int64)
            items, scores = self._block(batch, k, exclude)
            out_items[s:s + len(batch)], out_scores[s:s + len(batch)] = items, scores
        return out_items, out_scores

    def _block(self, batch: np.ndarray, k: int, exclude: UserItems | None) -> tuple[np.ndarray, np.ndarray]:
        model, n = self.model, len(batch)
        rows = self.filter.matrix[batch]
        y = self.filter.users_side(rows)  # (U, B)
        t = y * self.user_scale[:, None]
        known = sp.coo_matrix(rows)
        ex_rows, ex_cols = exclude.batch(batch) if exclude is not None else (np.zeros(0, np.int64),) * 2
        ex_rows, ex_cols = np.asarray(ex_rows, np.int64), np.asarray(ex_cols, np.int64)

        def filtered(block: Tensor, items: np.ndarray) -> Tensor:
            return self._filtered(block, items, y, known)

        # The GCN part where it moves off its empty-row value, per group of listeners.
        local = model.net.local(model.side, rows, (self.h0, self.g0)) if self.gcn else []

        def gcn_at(items: np.ndarray) -> Tensor:
            """(B, len(items)) the GCN part's output at sorted ``items``."""
            out = self.g0[torch.from_numpy(items)].expand(n, -1).clone()
            for group, at, values in local:
                where, hit = lookup(items, at)
                out[group, torch.from_numpy(where[hit])] = values[:, torch.from_numpy(hit)]
            return out

        # The listeners' scorer: weights over the spreads, and the means, of the three parts.
        w = self.weights
        f_cols = filtered(self.scaled_columns, self.columns)
        a = w[0] / f_cols.std(1).clamp_min(1e-9)
        const = -a * f_cols.mean(1)
        b = c = torch.zeros(n)
        if self.gcn:
            g_cols = gcn_at(self.columns)
            gl_cols = g_cols * self.log_pop[torch.from_numpy(self.columns)]
            b, c = w[1] / g_cols.std(1).clamp_min(1e-9), w[2] / gl_cols.std(1).clamp_min(1e-9)
            const = const - b * g_cols.mean(1) - c * gl_cols.mean(1)

        def score(f: Tensor, items: np.ndarray) -> Tensor:
            out = a[:, None] * f + const[:, None]
            if self.gcn:
                g = gcn_at(items)
                out += b[:, None] * g + c[:, None] * g * self.log_pop[torch.from_numpy(items)]
            return out

        # Exact scores at the head for every listener, and at the tail tracks of each group's
        # neighbourhood for its own listeners; each listener's best k of them.
        def best(s: Tensor, items: np.ndarray, rows_at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            """Each of ``rows_at``'s (consecutive listeners') best k of sorted ``items``, left-out ones masked."""
            mask = (ex_rows >= rows_at[0]) & (ex_rows <= rows_at[-1])
            where, hit = lookup(items, ex_cols[mask])
            s[torch.from_numpy(ex_rows[mask][hit] - rows_at[0]), torch.from_numpy(where[hit])] = float("-inf")
            top = torch.topk(s, min(k, len(items)), dim=1)
            return items[top.indices.numpy()], top.values.numpy()

        head_items, head_scores = best(score(filtered(self.scaled_head, self.head), self.head), self.head,
                                       np.arange(n))
        lists = [(head_items[r], head_scores[r]) for r in range(n)]
        nearby = [np.zeros(self.num_items, bool)] * n  # per listener: the tracks of its group's neighbourhood
        for group, at, values in local:
            keep = self.head_position[at] < 0
            near = at[keep]
            if not len(near):
                continue
            members = np.arange(n)[group]
            f = torch.sparse.mm(torch_csr(self.scaled[near]), y[:, group]).T
            if self.b0:
                where, hit = lookup(near, known.col)
                hit &= (known.row >= members[0]) & (known.row <= members[-1])
                f[torch.from_numpy(known.row[hit] - members[0]), torch.from_numpy(where[hit])] += self.b0
            g = values[:, torch.from_numpy(keep)]
            s_near = (a[group, None] * f + const[group, None] + b[group, None] * g
                      + c[group, None] * g * self.log_pop[torch.from_numpy(near)])
            near_items, near_scores = best(s_near, near, members)
            in_group = np.zeros(self.num_items, bool)
            in_group[near] = True
            for r, member in enumerate(members):
                lists[member] = (np.concatenate([lists[member][0], near_items[r]]),
                                 np.concatenate([lists[member][1], near_scores[r]]))
                nearby[member] = in_group
        best_items = np.zeros((n, k), np.int64)
        best_scores = np.full((n, k), -np.inf, np.float32)
        for r, (items_r, scores_r) in enumerate(lists):
            top = np.argsort(-scores_r, kind="stable")[:k]
            best_items[r, :len(top)], best_scores[r, :len(top)] = items_r[top], scores_r[top]

        # The bound: every other tail track scores below A D^(b+1/2) theta + background + const.
        background = torch.zeros(n)
        if self.gcn:
            g_min, g_max, gl_min, gl_max = self.extremes
            background = torch.where(b >= 0, b * g_max, b * g_min) + torch.where(c >= 0, c * gl_max, c * gl_min)
        kth = torch.from_numpy(best_scores[:, -1])  # -inf where fewer than k were scored
        slack = a * max(self.b0, 0.0) if exclude is None else 0.0  # a held track's own b_0, where it may rank
        theta = ((kth - const - background - slack) / (a * self.factor)).numpy()
        items_out = np.zeros((n, k), np.int64)
        scores_out = np.full((n, k), -np.inf, np.float32)
        flag = np.zeros(self.num_items, bool)
        for j in range(n):
            mine = ex_cols[ex_rows == j]
            if not np.isfinite(theta[j]) or theta[j] <= 0:  # no useful bound: every track scored
                self.fallbacks += 1
                row = self._every_track(rows[j])
                row[torch.from_numpy(mine)] = float("-inf")
                top = torch.topk(row, k)
                items_out[j], scores_out[j] = top.indices.numpy(), top.values.numpy()
                continue
            above = np.flatnonzero(t[:, j].numpy() >= theta[j])
            extra = np.unique(self.user_tail[above].indices) if len(above) else np.zeros(0, np.int64)
            flag[mine] = True
            # not scored yet (head, neighbourhood), not left out
            extra = extra[(self.head_position[extra] < 0) & ~nearby[j][extra] & ~flag[extra]]
            flag[mine] = False
            item_j, score_j = best_items[j], best_scores[j]
            self.gathered += len(extra)
            if len(extra):
                f_e = self._pairs(np.full(len(extra), j), extra, y)
                if self.b0:
                    f_e[torch.from_numpy(np.isin(extra, rows[j].indices))] += self.b0
                s_e = a[j] * f_e + const[j]
                if self.gcn:
                    g_e = self.g0[torch.from_numpy(extra)]
                    s_e += b[j] * g_e + c[j] * g_e * self.log_pop[torch.from_numpy(extra)]
                item_j = np.concatenate([item_j, extra])
                score_j = np.concatenate([score_j, s_e.numpy()])
            top = np.argsort(-score_j, kind="stable")[:k]
            items_out[j, :len(top)], scores_out[j, :len(top)] = item_j[top], score_j[top]
        return items_out, scores_out
