"""Exact top-k of GCN+ChebyCF over a large catalogue without scoring every track for every listener.

Where the filter goes through the users' side (``ChebyCF.users_side``), a listener's filter
score of a track i they do not hold is

    f_i = d_i^(b - 1/2) * sum over the users v holding i of t_v,    t = users_side(r) / sqrt(d_v),

a sum of at most d_i terms, and the GCN part's output at i is its empty-row value g0_i unless
i is within two hops of the listener's tracks (``RowGCN.change``). The model's score is

    s_i = A f_i + B g_i + C g_i log(1 + pop_i) + const

with A, B, C and const the listener's scorer weights over the spreads and means of the three
parts (``hybrid.stat_columns``: a fixed sample of the catalogue, so these need no full pass).

Tracks are split once: the head, the ``HEAD_ITEMS`` most played (more than D training pairs),
scored densely for every listener, and the tail (at most D pairs each). The GCN part's terms
at a tail track are at most a background: their largest over the empty row's outputs, except
within the listener's neighbourhood, where a track they lift above it is scored exactly. Any
other tail track i, of d_i pairs, none held by a user with ``t_v >= theta / d_i^(b + 1/2)``,
scores below

    A theta + background + const,

so with the k-th best score among the head and the lifted tracks, theta follows, and only the
tail tracks of the users above it (per class of degree: 1, 2, 3-4, 5-8, ...) are scored. A
listener for whom no positive theta exists (a short list, a bound too loose) gets every track
scored. The result equals ranking every track, up to the order of exactly tied scores and
float rounding.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from .sparse import torch_csr
from .types import UserItems

if TYPE_CHECKING:
    from .filters import ChebyCF
    from .hybrid import GCNChebyCF

HEAD_ITEMS = 1 << 16  # the most played tracks, scored densely for every listener
BLOCK_USERS = 64  # listeners ranked at once
WORKERS = 4  # at most this many blocks ranked at once, a thread each (numpy, scipy and torch release the GIL)


def lookup(items: np.ndarray, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each wanted item's place in sorted ``items``, and whether it is there."""
    where = np.searchsorted(items, wanted).clip(max=max(len(items) - 1, 0))
    return where, (items[where] == wanted) if len(items) else np.zeros(len(wanted), bool)


def best_of(owner: np.ndarray, items: np.ndarray, scores: np.ndarray, n: int, k: int
            ) -> tuple[np.ndarray, np.ndarray]:
    """Each of n listeners' best k (items, scores) of (owner, item, score) candidates: (n, k) each,
    best first, -inf padding a listener with fewer."""
    order = np.lexsort((-scores, owner))
    owner, items, scores = owner[order], items[order], scores[order]
    rank = np.arange(len(owner)) - np.searchsorted(owner, owner)
    keep = rank < k
    out_items, out_scores = np.zeros((n, k), np.int64), np.full((n, k), -np.inf, np.float32)
    out_items[owner[keep], rank[keep]], out_scores[owner[keep], rank[keep]] = items[keep], scores[keep]
    return out_items, out_scores


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

        self.model, self.filter, self.fixed = model, filter or model.filter, weights
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
        self.tail_items = np.flatnonzero(self.head_position < 0)
        self.scaled_tail: Tensor | None = None
        self.scaled = f.by_degree(f.beta)  # (I, U) D^b R~^T
        self.lengths = np.diff(self.scaled.indptr)
        self.scaled_head = torch_csr(self.scaled[self.head])
        columns = stat_columns(self.num_items)
        self.columns = np.arange(self.num_items) if columns is None else columns.numpy()
        self.scaled_columns = torch_csr(self.scaled[self.columns])
        self.column_position = np.full(self.num_items, -1)
        self.column_position[self.columns] = np.arange(len(self.columns))
        self.fallbacks = 0  # listeners ranked over every track, the bound being of no use
        self.gathered = 0  # tail tracks scored because a user above the bound holds them
        # Each user's tail tracks, by degree class (1, 2, 3-4, 5-8, ...): a tail track of degree d
        # scores at most d^(b + 1/2) times the largest t among its users, so each class has its own threshold.
        power = f.beta + 0.5
        edges = sorted({0, self.tail_degree, *(1 << p for p in range(max(self.tail_degree - 1, 0).bit_length()))})
        self.tail_classes = []  # (the class's largest d^(b + 1/2), (U, I) its users' tracks, their counts)
        owner = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
        held = degree[matrix.indices]
        for low, high in zip(edges, edges[1:]):
            keep = (held > low) & (held <= high)
            indptr = np.concatenate([[0], np.cumsum(np.bincount(owner[keep], minlength=matrix.shape[0]))])
            part = sp.csr_matrix((np.ones(int(keep.sum()), np.float32), matrix.indices[keep], indptr),
                                 shape=matrix.shape)
            self.tail_classes.append((max(float(low + 1) ** power, float(high) ** power), part, np.diff(part.indptr)))
        self.most = max([factor for factor, _, _ in self.tail_classes], default=1.0)
        self.reach = torch.from_numpy((degree.astype(np.float64) ** power).astype(np.float32))  # d^(b + 1/2)
        self.user_scale = torch.from_numpy((1 / np.sqrt(np.maximum(np.diff(matrix.indptr), 1))).astype(np.float32))
        self.b0 = float(f._polynomial()[0])
        self.log_pop = model.side.log_pop
        self.tail = degree <= self.tail_degree
        self.refresh()

    @torch.no_grad()
    def refresh(self) -> None:
        """Take the model's current weights (its scorer's, unless fixed, and its GCN part's)."""
        self.weights = (self.model.weight if self.fixed is None else self.fixed).detach().float()
        if not self.weights[0] > 0:
            raise ValueError("the bound needs the filter's weight positive")
        self.gcn = bool(self.weights[1:].any())
        if self.gcn:
            self.empty = self.model.empty_row()
            self.g0, tail = self.empty[1], self.tail
            self.head_log_pop = self.log_pop[torch.from_numpy(self.head)]
            self.head_g0 = torch.stack([self.g0[torch.from_numpy(self.head)],
                                        self.g0[torch.from_numpy(self.head)] * self.head_log_pop])  # (2, head)
            g0_cols = self.g0[torch.from_numpy(self.columns)].double()
            gl0_cols = g0_cols * self.log_pop[torch.from_numpy(self.columns)]
            self.col_sums = [(float(x.sum()), float((x * x).sum())) for x in (g0_cols, gl0_cols)]
            g0_tail, gl0_tail = self.g0[torch.from_numpy(tail)], (self.g0 * self.log_pop)[torch.from_numpy(tail)]
            self.extremes = ((float(g0_tail.min()), float(g0_tail.max()), float(gl0_tail.min()), float(gl0_tail.max()))
                             if tail.any() else (0.0, 0.0, 0.0, 0.0))

    def _scaled_tail(self) -> Tensor:
        """(tail tracks, U) their rows of D^b R~^T, built on first use (a listener without a useful bound)."""
        if self.scaled_tail is None:
            self.scaled_tail = torch_csr(self.scaled[self.tail_items])
        return self.scaled_tail

    def _gcn_stats(self, owner: np.ndarray, item: np.ndarray, change: Tensor, n: int
                   ) -> list[tuple[Tensor, Tensor]]:
        """Each listener's mean and spread (``std``'s) over the z-scores' sample of the GCN part's
        output g and of g log(1 + pop), g = g0 plus the change stored at (owner, item): from sums
        in float64, never a (listeners, sample) tensor."""
        where = self.column_position[item]
        hit = where >= 0
        owner_t, at = torch.from_numpy(owner[hit]), torch.from_numpy(self.columns[where[hit]])
        change = change[torch.from_numpy(hit)].double()
        g0, log_pop, m = self.g0[at].double(), self.log_pop[at].double(), len(self.columns)
        out = []
        for (total, squares), scale in zip(self.col_sums, (torch.ones_like(log_pop), log_pop)):
            d, base = change * scale, g0 * scale
            s = torch.zeros(n, dtype=torch.float64).index_add_(0, owner_t, d) + total
            q = torch.zeros(n, dtype=torch.float64).index_add_(0, owner_t, d * (2 * base + d)) + squares
            mean = s / m
            out.append((mean.float(), ((q - s * mean) / max(m - 1, 1)).clamp_min(0).sqrt().float()))
        return out

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
        """items (n, k) int64 and scores (n, k) float32 of ``users``, best first; -inf pads a short list.
        Blocks of ``batch_size`` listeners are ranked on up to ``WORKERS`` threads at once, no more
        than torch's thread count."""
        k = min(k, self.num_items)
        starts = range(0, len(users), batch_size)
        blocks = [np.asarray(users[s:s + batch_size], np.int64) for s in starts]
        out_items = np.zeros((len(users), k), np.int64)
        out_scores = np.full((len(users), k), -np.inf, np.float32)

        def rank(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray, int, int]:
            with torch.no_grad():  # a thread of its own: autograd's switch is per thread
                return self._block(batch, k, exclude)

        workers = min(WORKERS, torch.get_num_threads(), len(blocks))
        if workers > 1:
            with ThreadPoolExecutor(workers) as pool:
                results = list(pool.map(rank, blocks))
        else:
            results = [self._block(batch, k, exclude) for batch in blocks]
        for s, (items, scores, fallbacks, gathered) in zip(starts, results):
            out_items[s:s + len(items)], out_scores[s:s + len(items)] = items, scores
            self.fallbacks += fallbacks
            self.gathered += gathered
        return out_items, out_scores

    def _block(self, batch: np.ndarray, k: int, exclude: UserItems | None
               ) -> tuple[np.ndarray, np.ndarray, int, int]:
        """``__call__``'s items and scores of one block of listeners, and its fallbacks and tracks gathered."""
        model, n, num_items = self.model, len(batch), self.num_items
        fallbacks = gathered = 0
        rows = self.filter.matrix[batch]
        y = self.filter.users_side(rows)  # (U, B)
        t = y * self.user_scale[:, None]
        known = sp.coo_matrix(rows)
        ex_rows, ex_cols = exclude.batch(batch) if exclude is not None else (np.zeros(0, np.int64),) * 2
        ex_rows, ex_cols = np.asarray(ex_rows, np.int64), np.asarray(ex_cols, np.int64)

        def filtered(block: Tensor, items: np.ndarray) -> Tensor:
            return self._filtered(block, items, y, known)

        # The GCN part's change from its empty-row value, stored within each listener's two hops.
        moved = (model.net.change(model.side, rows, self.empty) if self.gcn
                 else sp.csr_matrix((n, num_items), dtype=np.float32))
        moved_rows = np.repeat(np.arange(n), np.diff(moved.indptr))
        moved_cols = moved.indices.astype(np.int64)
        moved_values = torch.from_numpy(moved.data)
        moved_head = self.head_position[moved_cols]  # each stored change's place in the head, or -1

        # The listeners' scorer: weights over the spreads, and the means, of the three parts.
        w = self.weights
        f_cols = filtered(self.scaled_columns, self.columns)
        a = w[0] / f_cols.std(1).clamp_min(1e-9)
        const = -a * f_cols.mean(1)
        b = c = torch.zeros(n)
        if self.gcn:
            (g_mean, g_spread), (gl_mean, gl_spread) = self._gcn_stats(moved_rows, moved_cols, moved_values, n)
            b, c = w[1] / g_spread.clamp_min(1e-9), w[2] / gl_spread.clamp_min(1e-9)
            const = const - b * g_mean - c * gl_mean

        # Exact scores at the head, for every listener; left-out tracks masked; each listener's best k.
        head = filtered(self.scaled_head, self.head).mul_(a[:, None]).add_(const[:, None])
        if self.gcn:  # b g0 + c g0 log(1 + pop) is of rank two; the change is added where stored
            head.addmm_(torch.stack([b, c], 1), self.head_g0)
            hit = moved_head >= 0
            r, at = torch.from_numpy(moved_rows[hit]), torch.from_numpy(moved_head[hit])
            head.index_put_((r, at), moved_values[torch.from_numpy(hit)] * (b[r] + c[r] * self.head_log_pop[at]),
                            accumulate=True)
        where = self.head_position[ex_cols]
        hit = where >= 0
        head[torch.from_numpy(ex_rows[hit]), torch.from_numpy(where[hit])] = float("-inf")
        top = torch.topk(head, min(k, len(self.head)), dim=1)
        # The bound's background: the most the GCN part's terms add at a tail track outside the
        # neighbourhood; within it, where they add more ("lifted"), the track is scored exactly.
        background = torch.zeros(n)
        if self.gcn:
            g_min, g_max, gl_min, gl_max = self.extremes
            background = torch.where(b >= 0, b * g_max, b * g_min) + torch.where(c >= 0, c * gl_max, c * gl_min)
        tail = moved_head < 0
        owner, item = moved_rows[tail], moved_cols[tail]  # listener-sorted
        owner_t, item_t = torch.from_numpy(owner), torch.from_numpy(item)
        g_near = self.g0[item_t] + moved_values[torch.from_numpy(tail)] if self.gcn else torch.zeros(0)
        near_at = np.searchsorted(owner, np.arange(n + 1))  # listener j's pairs: near_at[j]:near_at[j + 1]
        mine, seen = np.zeros(len(item), bool), np.zeros(num_items, bool)  # the pairs of a listener's own tracks
        for j in range(n):
            own = rows.indices[rows.indptr[j]:rows.indptr[j + 1]]
            seen[own] = True
            mine[near_at[j]:near_at[j + 1]] = seen[item[near_at[j]:near_at[j + 1]]]
            seen[own] = False
        lifted = np.zeros(len(item), bool)
        if self.gcn:
            lift = b[owner_t] * g_near + c[owner_t] * g_near * self.log_pop[item_t]
            lifted = (lift > background[owner_t]).numpy()
            # A track the listener does not hold scores at most a d^(b + 1/2) max(t) + const + lift, max(t)
            # over the other users: below the head's k-th best it cannot rank (the bound below gathers it
            # if its users are above the threshold).
            others = t.clone()
            others[torch.from_numpy(batch), torch.arange(n)] = float("-inf")
            kth_head = top.values[:, -1] if top.values.shape[1] == k else torch.full((n,), float("-inf"))
            ceiling = (a * others.max(0).values)[owner_t] * self.reach[item_t] + const[owner_t] + lift
            lifted &= (ceiling >= kth_head[owner_t]).numpy() | mine
            keys = owner[lifted] * num_items + item[lifted]
            lifted[lifted] = ~np.isin(keys, ex_rows * num_items + ex_cols)  # left-out ones stay unscored
        up = torch.from_numpy(lifted)
        near = self._pairs(owner[lifted], item[lifted], y)
        if self.b0:
            near[torch.from_numpy(mine[lifted])] += self.b0
        near = a[owner_t[up]] * near + const[owner_t[up]] + lift[up] if self.gcn else near
        best_items, best_scores = best_of(
            np.concatenate([np.repeat(np.arange(n), top.indices.shape[1]), owner[lifted]]),
            np.concatenate([self.head[top.indices.numpy()].ravel(), item[lifted]]),
            np.concatenate([top.values.numpy().ravel(), near.numpy()]), n, k)

        # The bound: every other tail track scores below A theta + background + const.
        kth = torch.from_numpy(best_scores[:, -1])  # -inf where fewer than k were scored
        slack = a * max(self.b0, 0.0) if exclude is None else 0.0  # a held track's own b_0, where it may rank
        theta = ((kth - const - background - slack) / a).numpy()  # over each class's d^(b + 1/2)
        items_out = np.zeros((n, k), np.int64)
        scores_out = np.full((n, k), -np.inf, np.float32)
        flag = np.zeros(self.num_items, bool)  # per listener, scratch over the tracks: scored already,
        held = np.zeros(self.num_items, bool)  # held,
        changed = np.full(self.num_items, np.nan, np.float32)  # and the GCN part's output where it changed
        g_near_np = g_near.numpy()

        def tail_scores(j: int, extra: np.ndarray, f_e: Tensor) -> Tensor:
            """Listener j's scores at tail tracks ``extra`` from their filter values ``f_e`` (b_0 not added)."""
            if self.b0:
                held[rows[j].indices] = True
                f_e[torch.from_numpy(held[extra])] += self.b0
                held[rows[j].indices] = False
            s_e = a[j] * f_e + const[j]
            if self.gcn:  # the GCN part's output: g0, or g0 plus its change where stored
                near_j = slice(near_at[j], near_at[j + 1])
                changed[item[near_j]] = g_near_np[near_j]
                g_e = torch.from_numpy(changed[extra])
                g_e = torch.where(g_e.isnan(), self.g0[torch.from_numpy(extra)], g_e)
                changed[item[near_j]] = np.nan
                s_e += b[j] * g_e + c[j] * g_e * self.log_pop[torch.from_numpy(extra)]
            return s_e

        for j in range(n):
            mine = ex_cols[ex_rows == j]
            if not np.isfinite(theta[j]) or theta[j] <= 0:  # no useful bound: every track scored
                fallbacks += 1
                row = torch.empty(num_items)
                row[torch.from_numpy(self.head)] = head[j]
                row[torch.from_numpy(self.tail_items)] = tail_scores(j, self.tail_items, torch.sparse.mm(
                    self._scaled_tail(), y[:, j:j + 1].contiguous())[:, 0])
                row[torch.from_numpy(mine)] = float("-inf")
                top = torch.topk(row, k)
                items_out[j], scores_out[j] = top.indices.numpy(), top.values.numpy()
                continue
            t_j = t[:, j].numpy()
            some = np.flatnonzero(t_j >= theta[j] / self.most)  # the users above the loosest class's threshold
            extra = np.unique(np.concatenate([np.zeros(0, np.int64)] + [
                part.indices[ranges(part.indptr[above], lengths[above])]
                for factor, part, lengths in self.tail_classes
                for above in [some[t_j[some] >= theta[j] / factor]]]))
            mine_near = slice(near_at[j], near_at[j + 1])
            scored = np.concatenate([mine, item[mine_near][lifted[mine_near]]])
            flag[scored] = True  # the lifted ones of the neighbourhood, and the left-out ones
            extra = extra[~flag[extra]]
            flag[scored] = False
            gathered += len(extra)
            item_j, score_j = best_items[j], best_scores[j]
            if len(extra):
                item_j = np.concatenate([item_j, extra])
                score_j = np.concatenate([score_j, tail_scores(j, extra, self._pairs(np.full(len(extra), j), extra,
                                                                                   y)).numpy()])
            top = np.argsort(-score_j, kind="stable")[:k]
            items_out[j, :len(top)], scores_out[j, :len(top)] = item_j[top], score_j[top]
        return items_out, scores_out, fallbacks, gathered
