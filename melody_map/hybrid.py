"""GCN+ChebyCF: the ChebyCF filter (with EASE beside it in a small catalogue), and two GCNConv
layers over the item side of the graph that read each listener's own row, joined by a linear
scorer trained with MSE and Adam.

A filter of the user-item matrix cannot see that two tracks share an artist; the item side of
the graph can. Its nodes are the tracks and their artists, albums, playlists (a playlists CSV's,
through its training rows) and tags (``SideGraph``: whatever the data has; a plain table's
training users). For a listener u with row r_u (1 at their tracks), every node gets two input
channels, r_u and its standardised log-degree, and

    h = ReLU(GCNConv_1(x_u)),   g_u = GCNConv_2(h) at the tracks

so that a track's g reads the listener's tracks by its artist, on its album, in the same
playlists, with its tags (track -> artist -> track), or, in a plain table, through the listeners
who share them (track -> listener -> track, the ReLU keeping those who share enough). The first
hidden unit starts as the row itself, so g starts as the row carried two hops; the other units
start small. The scorer is linear over per-listener z-scores,

    s_u = w_0 f_u + w_1 z(g_u) + w_2 z(g_u log(1 + pop)) + b,   f_u = z(z(ChebyCF(r_u)) + v z(EASE(r_u)))

(z: a listener's scores less their mean, over their spread, both taken over every item, or over
a fixed sample of ``STAT_ITEMS`` of them in a larger catalogue) and starts at w = (1, 0, 0): the
filter part f alone, which is the untrained start. EASE's lambda and weight v come from
``EASE_GRID`` by validation Recall@k (v = 0 among them), below ``BOUND_ITEMS`` items and where
its inverse fits (``ease.EASE``); past that f is ChebyCF's alone.

Training takes the validation pairs as targets and the training rows as input, so a target is
never in the row that scores it; a third of the validation listeners (at most ``STOP_USERS``)
choose which epoch to keep, the others learn. Epoch 1 sets (w_1, w_2) to the point of
``SCORER_GRID`` with the best Recall@k over as many learners; the next epochs are Adam's (MSE of
sigmoid(s) against 1 for a held-out pair and 0 for sampled items). ``refit`` keeps the trained
weights and rebuilds the filter part and the side graph from the new pairs. Past ``BOUND_ITEMS``
items a training step runs the GCN part at its pairs' items alone, and ranking skips most items
by a bound (``bounded.py``).

Only nodes within two hops of a listener's tracks see its row. Every other node holds the
value of an empty row, computed once per forward pass, so a batch costs its neighbourhood,
not the graph (``RowGCN``).
"""

from __future__ import annotations

import time
from functools import cache
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor, nn
from .bounded import BoundedTopK
from .ease import EASE
from .evaluate import evaluate, only_users, subsample_users
from .filters import ChebyCF, NameFilter, choose_name_weight, with_names, zscores
from .foldin import history_rows
from .recommender import FitReport, Log, Recommender
from .sparse import csr_from_state, csr_state, torch_csr
from .types import TRAIN, VALID, UserItems

if TYPE_CHECKING:
    from .dataset import Dataset

FILTER_GRID = {"flatness": [1.5], "alpha": [0.0, 0.2], "beta": [0.2, 0.4]}  # the filter part, chosen on validation
ETA = 256  # the filter's ideal pass: its singular vectors
STOP_USERS = 500  # most validation listeners that choose when to stop
STOP_FLOATS = 1 << 27  # below BOUND_ITEMS, the stopping listeners' filter scores are kept within this many floats
START = (1.0, 0.0, 0.0)  # the scorer's start: the filter part alone
NEIGHBOURHOOD_FLOATS = 1 << 24  # most (nodes, rows, hidden) floats one pass of the GCN part holds
SCORE_FLOATS = 1 << 25  # most (rows, items) floats of each tensor a block of scores is built from
HARD_NEGATIVES = 200  # a training step's negatives come from each listener's best this many by the filter
STAT_ITEMS = 1 << 16  # the z-scores' mean and spread come from at most this many items (a fixed sample)
BOUND_ITEMS = 1 << 17  # from this many items, ranking skips most of them by a bound (``bounded.py``)
STEP_STAT_ITEMS = 1 << 12  # from BOUND_ITEMS items, a training step's z-scores come from this many drawn
# a playlists CSV's playlists join the side graph up to this many training rows: past it (the 100 %
# file's 10M) two hops through popular playlists reach most tracks, and ranking by the bound slows
PLAYLIST_LINKS = 1 << 22
SMALL_START = 0.1  # the GCN part's random weights start this much smaller than PyG's, beside its propagating unit
# the scorer's GCN weights (w_1, w_2) tried on the learners before Adam
SCORER_GRID = [(w1, w2) for w1 in (0.0, 0.2) for w2 in (0.1, 0.2, 0.4, 0.8)] + [(0.2, 0.0), (0.4, 0.0)]
# EASE's part of the filter below BOUND_ITEMS items, chosen on validation: its lambda and weight
EASE_GRID = {"lam": [50.0, 200.0], "weight": [0.25, 0.5, 1.0, 2.0]}


def stat_columns(num_items: int) -> Tensor | None:
    """The items the z-scores' mean and spread come from: every item (None) up to ``STAT_ITEMS``,
    else a fixed seeded sample of that many, so a listener's statistics never need every item's score."""
    return None if num_items <= STAT_ITEMS else _sample(num_items, STAT_ITEMS)


@cache
def _sample(num_items: int, size: int) -> Tensor:
    return torch.from_numpy(np.sort(np.random.default_rng(0).choice(num_items, size, replace=False)))


def zscores_over(x: Tensor, columns: Tensor | None) -> Tensor:
    """Each row less its mean, over its spread, both over ``columns`` (every column with None)."""
    if columns is None:
        return zscores(x)
    sample = x[:, columns]
    return (x - sample.mean(1, keepdim=True)) / sample.std(1, keepdim=True).clamp_min(1e-9)


class SideGraph:
    """The item side of the graph: items, then their artists, albums, playlists and tags, GCN-normalised.

    Args:
        adjacency: (N, N) symmetric scipy CSR, ``D^-1/2 (A + I) D^-1/2``; items are nodes [0, I).
        feature: (N,) the nodes' standardised log(1 + degree).
        pop: (I,) the items' training pairs.
    """

    def __init__(self, adjacency: sp.csr_matrix, feature: Tensor, pop: Tensor):
        self.adjacency, self.feature, self.pop = adjacency, feature, pop
        self.num_items = len(pop)
        self.adj = torch_csr(adjacency)
        self.log_pop = torch.log1p(pop)
        self._to_items: sp.csr_matrix | None = None

    def to_items(self) -> sp.csr_matrix:
        """(N, I) the adjacency's columns at the items, as scipy CSR, built on first use."""
        if self._to_items is None:
            self._to_items = sp.csr_matrix(self.adjacency[:, :self.num_items])
        return self._to_items

    @classmethod
    def of(cls, data: Dataset, matrix: sp.csr_matrix) -> SideGraph:
        """The side graph of ``data``'s catalogue over the training ``matrix``: an item links to its
        artist, album and tags only where it has a training pair or comes from ``--catalogue``, and
        to a playlists CSV's playlists through the training rows alone (a held-out pair's rows never:
        the listener's own playlist would lead to the answer), up to ``PLAYLIST_LINKS`` of them.
        A catalogue with none of these (a plain table) links each item to its training users."""
        cat, num_items = data.catalogue, data.num_items
        pop = np.asarray(matrix.sum(0)).ravel()
        linked = pop > 0
        if cat.new_items is not None:
            linked = linked | cat.new_items
        blocks, offset = [], num_items
        for codes in (cat.item_artist, cat.item_album):
            if codes is not None:
                known = np.flatnonzero(linked & (codes >= 0))
                blocks.append((known, offset + codes[known].astype(np.int64)))
                offset += int(codes.max(initial=-1)) + 1
        kept = None if data.rows.playlist is None else (data.pairs.part == TRAIN)[data.pairs.row_pair]
        if kept is not None and kept.sum() <= PLAYLIST_LINKS:  # a playlist links the tracks of its training rows
            blocks.append((data.rows.item[kept].astype(np.int64), offset + data.rows.playlist[kept].astype(np.int64)))
            offset += cat.num_playlists
        if data.item_tags is not None:
            tags = sp.coo_matrix(data.item_tags)
            keep = linked[tags.row]
            blocks.append((tags.row[keep].astype(np.int64), offset + tags.col[keep].astype(np.int64)))
            offset += data.item_tags.shape[1]
        if not blocks:  # a plain table: an item's other side is its training users
            users, items = matrix.nonzero()
            blocks.append((items.astype(np.int64), offset + users.astype(np.int64)))
            offset += matrix.shape[0]
        src = np.concatenate([b[0] for b in blocks] or [np.zeros(0, np.int64)])
        dst = np.concatenate([b[1] for b in blocks] or [np.zeros(0, np.int64)])
        adjacency = normalised_adjacency(src, dst, offset)
        degree = np.concatenate([pop, np.bincount(dst - num_items, minlength=offset - num_items)]).astype(np.float32)
        return cls(adjacency, standardised_log(degree), torch.from_numpy(pop.astype(np.float32)))

    def reach(self, nodes: np.ndarray) -> np.ndarray:
        """The sorted nodes one hop from ``nodes``, themselves included (every node has a self-loop)."""
        seen = np.zeros(self.adjacency.shape[0], bool)
        seen[self.adjacency[nodes].indices] = True
        return np.flatnonzero(seen)

    def block(self, rows: np.ndarray, cols: np.ndarray) -> Tensor:
        """The adjacency's (rows, cols) block as a torch CSR tensor."""
        return torch_csr(sp.csr_matrix(self.adjacency[rows][:, cols]))

    def state(self) -> dict[str, Any]:
        a = self.adjacency
        return {"indptr": torch.from_numpy(a.indptr.astype(np.int64)), "indices": torch.from_numpy(
                a.indices.astype(np.int64)), "values": torch.from_numpy(a.data.astype(np.float32)),
                "feature": self.feature, "pop": self.pop}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> SideGraph:
        n = len(state["indptr"]) - 1
        adjacency = sp.csr_matrix((state["values"].numpy(), state["indices"].numpy(), state["indptr"].numpy()),
                                  shape=(n, n))
        if len(state["feature"]) != n or len(state["pop"]) > n:
            raise ValueError("the side graph's feature or popularity does not match its nodes")
        return cls(adjacency, state["feature"], state["pop"])


def normalised_adjacency(src: np.ndarray, dst: np.ndarray, num_nodes: int) -> sp.csr_matrix:
    """``D^-1/2 (A + I) D^-1/2`` of the undirected edges (src, dst), weight 1, as scipy CSR (PyG's ``gcn_norm``)."""
    from torch_geometric.nn.conv.gcn_conv import gcn_norm

    src_t, dst_t = torch.from_numpy(src), torch.from_numpy(dst)
    edge_index = torch.stack([torch.cat([src_t, dst_t]), torch.cat([dst_t, src_t])])
    edge_index, w = gcn_norm(edge_index, torch.ones(edge_index.shape[1]), num_nodes, add_self_loops=True)
    return sp.csr_matrix((w.numpy(), (edge_index[0].numpy(), edge_index[1].numpy())), shape=(num_nodes, num_nodes))


def standardised_log(degree: np.ndarray) -> Tensor:
    x = np.log1p(degree)
    return torch.from_numpy(((x - x.mean()) / max(float(x.std()), 1e-9)).astype(np.float32))


@cache
def row_conv() -> type:
    """``RowConv``: PyG's ``GCNConv`` over many listeners' signals at once, features (nodes,
    listeners, channels), the adjacency given normalised (it may be a block of its rows and
    columns). Made on first use: loading other models never imports ``torch_geometric``."""
    from torch_geometric.nn import GCNConv
    from torch_geometric.utils import spmm

    class RowConv(GCNConv):
        def __init__(self, in_channels: int, out_channels: int):
            super().__init__(in_channels, out_channels, normalize=False, node_dim=0)

        def message_and_aggregate(self, adj_t: Tensor, x: Tensor) -> Tensor:
            return spmm(adj_t, x.reshape(x.size(0), -1), reduce=self.aggr).view(adj_t.size(0), *x.shape[1:])

    return RowConv


class RowGCN(nn.Module):
    """Two ``RowConv`` layers (``row_conv``, 2 -> hidden -> 1) over the side graph, applied to listeners' rows.

    ``forward`` equals ``full`` (both layers over every node) at the items, computed over the
    rows' two-hop neighbourhood: the rest of the graph holds the empty row's values.
    """

    def __init__(self, hidden: int = 8):
        super().__init__()
        conv = row_conv()
        self.conv1, self.conv2 = conv(2, hidden), conv(hidden, 1)
        with torch.no_grad():  # the first unit carries the row two hops; the others start small
            for p in self.parameters():
                p.mul_(SMALL_START)
            self.conv1.lin.weight[0] = torch.tensor([1.0, 0.0])
            self.conv2.lin.weight[0, 0] = 1.0

    def inputs(self, graph: SideGraph, rows: sp.csr_matrix, nodes: np.ndarray) -> Tensor:
        """(len(nodes), B, 2): the rows' values at ``nodes`` (zero off the items) and the nodes' feature."""
        x = torch.zeros(len(nodes), rows.shape[0], 2)
        x[:, :, 1] = graph.feature[torch.from_numpy(nodes)][:, None]
        items = nodes[nodes < graph.num_items]
        dense = torch.from_numpy(rows[:, items].toarray().T)  # (items among nodes, B)
        x[: len(items), :, 0] = dense  # the items come first: nodes are sorted
        return x

    def full(self, graph: SideGraph, rows: sp.csr_matrix) -> Tensor:
        """(B, I) both layers over the whole graph (the reference ``forward`` equals)."""
        nodes = np.arange(graph.adjacency.shape[0])
        h = torch.relu(self.conv1(self.inputs(graph, rows, nodes), graph.adj))
        return self.conv2(h, graph.adj)[: graph.num_items, :, 0].T

    def forward(self, graph: SideGraph, rows: sp.csr_matrix, empty: tuple[Tensor, Tensor] | None = None) -> Tensor:
        """(B, I) the GCN part's output at every item for B rows of items (1 per item, or its weight).

        ``empty`` is ``empty_row``'s pass where the caller keeps it (the weights fixed). With
        autograd, rows go through ``local``'s groups; without, through ``change``."""
        z0, g0 = empty or self.empty_row(graph)
        out = g0.expand(rows.shape[0], -1).clone()
        if not torch.is_grad_enabled():
            moved = self.change(graph, rows, (z0, g0)).tocoo()
            out[torch.from_numpy(moved.row.astype(np.int64)), torch.from_numpy(moved.col.astype(np.int64))] += \
                torch.from_numpy(moved.data)
            return out
        for group, items, values in self.local(graph, rows, (z0, g0)):
            out[group, torch.from_numpy(items)] = values
        return out

    def empty_row(self, graph: SideGraph) -> tuple[Tensor, Tensor]:
        """Both layers over the whole graph for a listener without tracks: the first layer's
        output before its ReLU (N, 1, hidden), and the second's at the items (I,)."""
        empty = sp.csr_matrix((1, graph.num_items), dtype=np.float32)
        z0 = self.conv1(self.inputs(graph, empty, np.arange(graph.adjacency.shape[0])), graph.adj)
        return z0, self.conv2(torch.relu(z0), graph.adj)[: graph.num_items, 0, 0]

    @torch.no_grad()
    def change(self, graph: SideGraph, rows: sp.csr_matrix, empty: tuple[Tensor, Tensor]) -> sp.csr_matrix:
        """(B, I) scipy CSR: each row's output minus the empty row's, stored only where it may differ
        (two hops from the row's own tracks), by two sparse products for all rows at once.

        The first layer's input differs from the empty row's at the row's tracks alone, so its
        output differs at most one hop from them, by ``conv1.lin`` of the aggregated row; the second
        layer is linear, so its change is the adjacency times ``conv2.lin`` of the first's change."""
        z0 = empty[0][:, 0]
        rows = sp.csr_matrix(rows, dtype=np.float32)
        shape = (rows.shape[0], graph.adjacency.shape[0])
        moved = sp.csr_matrix(sp.csr_matrix((rows.data, rows.indices, rows.indptr), shape=shape) @ graph.adjacency)
        node = torch.from_numpy(moved.indices.astype(np.int64))
        before = z0[node]  # (nnz, hidden)
        step = self.conv1.lin(torch.stack([torch.from_numpy(moved.data), torch.zeros(len(node))], 1))
        moved.data = self.conv2.lin(torch.relu(before + step) - torch.relu(before))[:, 0].numpy()
        moved.eliminate_zeros()  # nodes whose hidden units stay off
        return sp.csr_matrix(moved @ graph.to_items())

    def at(self, graph: SideGraph, rows: sp.csr_matrix, items: np.ndarray) -> Tensor:
        """(B, len(items)) the output at sorted ``items`` alone, from their two-hop neighbourhood:
        what training needs at its targets, with autograd, never a (B, I) tensor."""
        hop1 = graph.reach(items)
        hop2 = graph.reach(hop1)
        h1 = torch.relu(self.conv1(self.inputs(graph, rows, hop2), graph.block(hop1, hop2)))  # (|hop1|, B, H)
        return self.conv2(h1, graph.block(items, hop1))[:, :, 0].T

    def local(self, graph: SideGraph, rows: sp.csr_matrix, empty: tuple[Tensor, Tensor], offset: int = 0
              ) -> list[tuple[slice, np.ndarray, Tensor]]:
        """Where B rows' output can differ from the empty row's: for each group of the rows, its
        slice, the items two hops from the group's tracks (n,) and the output there (group, n).
        Groups are as large as keep their features within ``NEIGHBOURHOOD_FLOATS``."""
        (z0, g0), seeds = empty, np.unique(rows.indices)
        h0 = torch.relu(z0)
        if not len(seeds):
            return []
        hop1 = graph.reach(seeds)
        hop2 = graph.reach(hop1)
        groups = -(-len(hop2) * rows.shape[0] * h0.shape[2] // NEIGHBOURHOOD_FLOATS)
        if rows.shape[0] > 1 and groups > 1:  # each group's neighbourhood is at most the whole one's
            size = -(-rows.shape[0] // min(groups, rows.shape[0]))
            return [part for s in range(0, rows.shape[0], size)
                    for part in self.local(graph, rows[s:s + size], empty, offset + s)]
        h1 = torch.relu(self.conv1(self.inputs(graph, rows, hop2), graph.block(hop1, hop2)))  # (|hop1|, B, H)
        # The second layer is linear in its input: the empty row's output, plus the change that
        # the first layer's change (on hop1 alone) brings to hop2.
        items = hop2[hop2 < graph.num_items]
        change = self.conv2(h1 - h0[torch.from_numpy(hop1)], graph.block(items, hop1))[:, :, 0] - self.conv2.bias
        return [(slice(offset, offset + rows.shape[0]), items, (g0[torch.from_numpy(items)][:, None] + change).T)]


class GCNChebyCF(Recommender):
    """ChebyCF (and EASE) plus an item-side GCN part read by a trained linear scorer (see the module's text).

    The training options' defaults are ``TrainConfig``'s, so ``train_gnn.py --model gcn+chebycf``
    builds this model as ``GCNChebyCF()`` does (a test checks it).

    Args:
        flatness, alpha, beta: the filter's (``filters.ChebyCF``); None: chosen on validation
            over ``FILTER_GRID``.
        order, eta: the filter's polynomial degree and ideal pass's singular vectors.
        hidden: the first GCNConv's width.
        lr: Adam's learning rate.
        epochs: most epochs of ``steps_per_epoch`` steps (0: the filter part alone, untrained).
        steps_per_epoch, batch_users, negatives: each step's listeners and sampled items per target.
        eval_every, patience: epochs between stopping checks; checks without a better Recall@k before stopping.
        valid_users: most validation listeners that choose the filter.
        k: the cut-off of the Recall@k that chooses.
        seed: seeds the split of validation listeners, the sampling and the initial weights.
        name_weight: the playlist names' weight (MPD), None: chosen on validation.
        ease_lam, ease_weight: EASE's lambda and weight in the filter part (weight 0: none); with
            ``ease_weight`` None both are chosen on validation over ``EASE_GRID`` where EASE applies.
    """

    name = "gcn+chebycf"
    label = "GCN+ChebyCF"

    def __init__(self, flatness: float | None = None, alpha: float | None = None, beta: float | None = None,
                 order: int = 8, eta: int = ETA, hidden: int = 8, lr: float = 0.01, epochs: int = 300,
                 steps_per_epoch: int = 16, batch_users: int = 16, negatives: int = 4, eval_every: int = 2,
                 patience: int = 5, valid_users: int = 2000, k: int = 20, seed: int = 0,
                 name_weight: float | None = None, ease_lam: float | None = None, ease_weight: float | None = None):
        self.choice = {"flatness": flatness, "alpha": alpha, "beta": beta}
        self.ease_choice = {"ease_lam": ease_lam, "ease_weight": ease_weight}
        self.options = {"order": order, "eta": eta, "hidden": hidden, "lr": lr, "epochs": epochs,
                        "steps_per_epoch": steps_per_epoch, "batch_users": batch_users, "negatives": negatives,
                        "eval_every": eval_every, "patience": patience, "valid_users": valid_users, "k": k,
                        "seed": seed}
        self.name_weight = name_weight
        self.report = FitReport()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.net = RowGCN(hidden)
        self.weight = torch.tensor(START)  # the scorer: w over (z(filter), z(g), z(g log pop))
        self.bias = torch.tensor(float(np.log(1 / max(negatives, 1))))  # sigmoid(bias): the share of targets
        self.scale = torch.tensor(1.0)  # the loss's temperature: training reads sigmoid(scale * s + bias)
        self.filter: ChebyCF | None = None
        self.ease: EASE | None = None  # EASE's part of the filter, where it has one
        self.side: SideGraph | None = None
        self.names: NameFilter | None = None
        self._score_fn: Callable[[np.ndarray], Tensor] | None = None
        self._empty: tuple[Tensor, Tensor] | None = None  # the GCN part's pass of an empty row, while weights stay
        self._bounded: BoundedTopK | None = None  # the bounded ranker, while weights stay
        self._alone: BoundedTopK | None = None  # the filter alone's, for training's hard negatives

    # fitting

    def fit(self, data: Dataset, *, log: Log | None = None, progress: bool = False,
            stop: Callable[[], bool] | None = None, resume: dict | None = None) -> GCNChebyCF:
        """Choose the filter part, train the GCN part and the scorer on the validation pairs, add the names.

        ``stop`` (Ctrl-C) ends training at the next step, keeping the best weights so far.
        """
        opts = self.options
        train, rng = data.items(TRAIN), np.random.default_rng(opts["seed"])
        valid = subsample_users(data.items(VALID), opts["valid_users"], np.random.default_rng(opts["seed"] + 2))
        self.side, self._empty = SideGraph.of(data, data.matrix(TRAIN)), None
        if log:
            log(f"{self.label}: the side graph has {self.side.adjacency.shape[0]:,} nodes, "
                f"{self.side.adjacency.nnz - self.side.adjacency.shape[0]:,} links")
        self.filter = self._choose_filter(data, valid, log)
        self.ease = self._choose_ease(data, valid, log)
        self.report = FitReport()
        if opts["epochs"] > 0 and data.items(VALID).counts().any():
            self._train(data.items(VALID), train, data.num_items, rng, log, progress, stop)
        self._add_names(data, valid, log)
        return self

    def _filter_of(self, matrix: sp.csr_matrix, choice: dict[str, float],
                   leading: dict[str, Tensor] | None = None) -> ChebyCF:
        """ChebyCF fitted on ``matrix`` with this model's order, eta and seed, and ``choice`` (else its
        defaults); ``leading``: its saved eigenpairs (``ChebyCF.leading_state``), or None."""
        return ChebyCF(order=self.options["order"], eta=self.options["eta"], seed=self.options["seed"],
                       **choice).fit_matrix(matrix, leading)

    def _choose_filter(self, data: Dataset, valid: UserItems, log: Log | None) -> ChebyCF:
        fixed = None not in self.choice.values()
        full = self._filter_of(data.matrix(TRAIN), self.choice if fixed else {})
        if fixed or not valid.counts().any():
            self.choice = {"flatness": full.flatness, "alpha": full.alpha, "beta": full.beta}
            return full
        best, best_recall = None, -1.0
        k = self.options["k"]
        for flatness in FILTER_GRID["flatness"]:
            for alpha in FILTER_GRID["alpha"]:
                for beta in FILTER_GRID["beta"]:
                    candidate = full.with_choice(flatness, alpha, beta)
                    ranker = BoundedTopK(self, filter=candidate, weights=torch.tensor(START)) \
                        if self._bounds(candidate) else None
                    recall = evaluate(candidate.scores, valid, data.items(TRAIN), data.num_items, k,
                                      top_k_fn=ranker)[f"recall@{k}"]
                    if recall > best_recall:
                        best, best_recall = candidate, recall
        self.choice = {"flatness": best.flatness, "alpha": best.alpha, "beta": best.beta}
        if log:
            log(f"{self.label}'s filter, chosen on validation: ChebyCF flatness {best.flatness}, alpha "
                f"{best.alpha}, beta {best.beta} (recall@{k} {best_recall:.4f})")
        return best

    def _ease_of(self, matrix: sp.csr_matrix) -> EASE | None:
        """EASE fitted on ``matrix`` with the chosen lambda, where the choice gives it a weight."""
        weight = self.ease_choice["ease_weight"]
        return EASE(self.ease_choice["ease_lam"]).fit_matrix(matrix) if weight else None

    def _choose_ease(self, data: Dataset, valid: UserItems, log: Log | None) -> EASE | None:
        """EASE's lambda and weight in the filter part, over ``EASE_GRID`` by validation Recall@k
        (weight 0: ChebyCF alone); none from ``BOUND_ITEMS`` items, or where EASE's inverse is too large.
        EASE fits the filter's training matrix."""
        matrix = self.filter.matrix
        if data.num_items >= BOUND_ITEMS or not EASE().fits(matrix.shape):
            self.ease_choice = {"ease_lam": None, "ease_weight": 0.0}
        if self.ease_choice["ease_weight"] is not None or not valid.counts().any():
            weight = self.ease_choice["ease_weight"] or 0.0
            self.ease_choice = {"ease_lam": self.ease_choice["ease_lam"] or EASE_GRID["lam"][0] if weight else None,
                                "ease_weight": weight}
            return self._ease_of(matrix)
        # The listeners who choose: their ChebyCF and EASE z-scores held, within STOP_FLOATS floats together.
        k, train = self.options["k"], data.items(TRAIN)
        few = subsample_users(valid, max(1, STOP_FLOATS // (2 * data.num_items)),
                              np.random.default_rng(self.options["seed"] + 6))
        users = np.flatnonzero(few.counts() > 0)
        where = np.full(matrix.shape[0], -1)
        where[users] = np.arange(len(users))
        rows = matrix[users]
        cheby = self._z(self.filter._filter(rows))

        def recall(weight: float, other: Tensor | None) -> float:  # the blend's z-scores rank as the blend does
            def scores(some: np.ndarray) -> Tensor:
                at = torch.from_numpy(where[some])
                return cheby[at] if other is None else cheby[at] + weight * other[at]
            return evaluate(scores, few, train, data.num_items, k)[f"recall@{k}"]

        fitted, tried = {}, {(None, 0.0): recall(0.0, None)}
        for lam in EASE_GRID["lam"]:
            fitted[lam] = EASE(lam).fit_matrix(matrix)
            other = self._z(fitted[lam].score_rows(rows))
            for weight in EASE_GRID["weight"]:
                tried[lam, weight] = recall(weight, other)
        (lam, weight), best = max(tried.items(), key=lambda kv: kv[1])
        self.ease_choice = {"ease_lam": lam, "ease_weight": weight}
        if log:
            log(f"{self.label}'s filter, chosen on validation: "
                + (f"EASE lambda {lam:g} at weight {weight:g} beside ChebyCF" if weight else "ChebyCF without EASE")
                + f" (recall@{k} {best:.4f}; ChebyCF alone {tried[None, 0.0]:.4f})")
        return fitted.get(lam)

    def _train(self, valid: UserItems, train: UserItems, num_items: int, rng: np.random.Generator, log: Log | None,
               progress: bool, stop: Callable[[], bool] | None) -> None:
        """Epoch 1 the scorer's grid, then Adam on MSE, against the validation pairs of two thirds
        of their listeners; the best Recall@k of the other third (at most ``STOP_USERS``) decides
        the epoch kept (0: the filter part alone)."""
        opts, k = self.options, self.options["k"]
        listeners = np.flatnonzero((valid.counts() > 0) & (train.counts() > 0))
        rng.shuffle(listeners)
        bounded = self._bounds()  # the stopping listeners ranked by the bound, else their filter scores held
        cap = STOP_USERS if bounded else min(STOP_USERS, STOP_FLOATS // max(num_items, 1))
        n_stop = max(1, min(len(listeners) // 3, cap))
        stoppers, learners = np.sort(listeners[:n_stop]), listeners[n_stop:]
        if not len(learners):
            return
        matrix = train.matrix(num_items)
        played = np.flatnonzero(self.side.pop.numpy() > 0)  # the easy negatives' pool

        def panel(users: np.ndarray) -> Callable[[], dict[str, float]]:
            """Recall@k and NDCG@k of ``users``' validation pairs under the weights at each call."""
            items = only_users(valid, users)
            ranker = BoundedTopK(self) if bounded else None
            filtered = None if bounded else self._filter_part(matrix[users])  # fixed while the GCN part trains
            where = np.full(valid.num_users, -1)
            where[users] = np.arange(len(users))

            def scores(some: np.ndarray) -> Tensor:
                return self._score_rows(matrix[some], filtered[torch.from_numpy(where[some])])

            def measure() -> dict[str, float]:
                if ranker is not None:
                    ranker.refresh()  # the weights moved
                metrics = evaluate(scores, items, train, num_items, k, top_k_fn=ranker)
                return {f"valid_{name}@{k}": metrics[f"{name}@{k}"] for name in ("recall", "ndcg")}
            return measure

        check = panel(stoppers)

        params = [*self.net.parameters(), self.weight.requires_grad_(), self.bias.requires_grad_(),
                  self.scale.requires_grad_()]
        self.weight.register_hook(lambda grad: grad * torch.tensor([0.0, 1.0, 1.0]))  # the filter part's weight stays 1
        optimiser = torch.optim.Adam(params, lr=opts["lr"])
        start = check()
        def rank(metrics: dict[str, float]) -> tuple[float, float]:  # Recall@k, then NDCG@k where it ties
            return metrics[f"valid_recall@{k}"], metrics[f"valid_ndcg@{k}"]

        best = {"epoch": 0, "rank": rank(start), "state": self._weights()}
        self.report.history.append({"epoch": 0, **start})
        if log:
            log(f"{self.label}: training the GCN part on {len(learners):,} listeners' validation pairs; "
                f"{len(stoppers):,} others choose when to stop "
                f"(the filter part alone: recall@{k} {best['rank'][0]:.4f})")
        # Epoch 1: the scorer's GCN weights from SCORER_GRID, by the Recall@k (then NDCG@k) of as many learners.
        began, fit = time.perf_counter(), panel(np.sort(learners[:n_stop]))
        tried = {START[1:]: rank(fit())}
        for w in SCORER_GRID:
            self._set_scorer((1.0, *w))
            tried[w] = rank(fit())
        self._set_scorer((1.0, *max(tried, key=tried.get)))
        waited = 0
        for epoch in _epochs(opts["epochs"], progress):
            losses, stopped = [], False
            if epoch == 1:
                record = {"epoch": 1, "grid": {f"{w[0]:g},{w[1]:g}": round(r[0], 4) for w, r in tried.items()}}
            else:
                record, began = {}, time.perf_counter()
            for _ in range(opts["steps_per_epoch"] if epoch > 1 else 0):
                if stop is not None and stop():
                    stopped = True
                    break
                users = rng.choice(learners, min(opts["batch_users"], len(learners)), replace=False)
                losses.append(self._step(optimiser, users, matrix, valid, played, rng))
            record.update({"epoch": epoch, "loss": float(np.mean(losses)) if losses else float("nan"),
                           "seconds": time.perf_counter() - began,
                           "weights": [round(w, 4) for w in self.weight.detach().tolist()],
                           "scale": round(float(self.scale.detach()), 4)})
            if epoch % opts["eval_every"] == 0 or epoch == 1 or stopped:
                record.update(check())
                if rank(record) > best["rank"]:
                    best, waited = {"epoch": epoch, "rank": rank(record), "state": self._weights()}, 0
                else:
                    waited += 1
            self.report.history.append(record)
            if waited >= opts["patience"] or stopped:
                break
        for p in (self.weight, self.bias, self.scale):
            p.requires_grad_(False)
        self._set_weights(best["state"])
        self.report.best_epoch, self.report.best_valid = best["epoch"], {f"recall@{k}": best["rank"][0]}
        if log:
            log(f"{self.label}: kept epoch {best['epoch']} (stopping listeners' recall@{k} {best['rank'][0]:.4f}); "
                f"scorer weights {', '.join(f'{w:.3f}' for w in self.weight.tolist())}")

    def _step(self, optimiser: torch.optim.Optimizer, users: np.ndarray, matrix: sp.csr_matrix, valid: UserItems,
              played: np.ndarray, rng: np.random.Generator) -> float:
        """One Adam step: each listener's validation items (target 1) and ``negatives`` sampled items
        each (0), half from the filter's best guesses, half from ``played`` (the items with training pairs)."""
        rows, num_items = matrix[users], matrix.shape[1]
        owner = np.repeat(np.arange(len(users)), valid.counts()[users])
        positives = np.concatenate([valid.of(u) for u in users]).astype(np.int64)
        # A target no training pair holds has no column in the filter and no link in the side
        # graph: no model can rank it, and as a target it would teach that unplayed means wanted.
        known = (self.side.pop[torch.from_numpy(positives)] > 0).numpy()
        owner, positives = owner[known], positives[known]
        # The negatives are the filter's own best guesses that are wrong: the ranking's hard cases.
        alone = self._filter_alone()
        if alone is None:
            with torch.no_grad():
                filtered = self._filter_part(rows)
                masked = filtered.clone()
                masked[torch.from_numpy(np.repeat(np.arange(len(users)), np.diff(rows.indptr))),
                       torch.from_numpy(rows.indices.astype(np.int64))] = float("-inf")
                masked[torch.from_numpy(owner), torch.from_numpy(positives)] = float("-inf")
                candidates = torch.topk(masked, min(HARD_NEGATIVES, num_items), dim=1).indices.numpy()
        else:  # past BOUND_ITEMS: the filter's best by its bound, its values at the pairs alone
            held = UserItems.from_pairs(np.concatenate([users[np.repeat(np.arange(len(users)), np.diff(rows.indptr))],
                                                        users[owner]]),
                                        np.concatenate([rows.indices.astype(np.int64), positives]), matrix.shape[0])
            candidates = alone(users, min(HARD_NEGATIVES, num_items), held)[0]
        n_neg = len(positives) * self.options["negatives"]
        negative_owner = rng.integers(0, len(users), n_neg)
        # Half of the negatives are hard, half any track with a training pair (the ranking sees them all).
        negatives = candidates[negative_owner, rng.integers(0, candidates.shape[1], n_neg)]
        easy = rng.random(n_neg) < 0.5
        negatives[easy] = played[rng.integers(0, len(played), int(easy.sum()))]
        owner = np.concatenate([owner, negative_owner])
        item = np.concatenate([positives, negatives])
        target = torch.cat([torch.ones(len(positives)), torch.zeros(n_neg)])
        b, j = torch.from_numpy(owner), torch.from_numpy(item)
        first = filtered[b, j] if alone is None else alone.filter_z(users, owner, item)
        features = torch.stack([first, *self._gcn_pairs(rows, b, item, rng)], 1)
        loss = torch.mean((torch.sigmoid(self.scale * (features @ self.weight) + self.bias) - target) ** 2)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        self._empty = self._bounded = None  # the weights moved
        return float(loss.detach())

    def _filter_alone(self) -> BoundedTopK | None:
        """Past ``BOUND_ITEMS`` (the filter through the users' side), the filter alone's bounded
        ranker, kept while the filter stays; else None."""
        if self.side.num_items < BOUND_ITEMS or self.filter._v is not None:
            return None
        if self._alone is None or self._alone.filter is not self.filter:
            self._alone = BoundedTopK(self, weights=torch.tensor(START))
        return self._alone

    def _gcn_pairs(self, rows: sp.csr_matrix, owner: Tensor, item: np.ndarray, rng: np.random.Generator
                   ) -> tuple[Tensor, Tensor]:
        """The GCN part's two z-scored features at (listener, item) pairs, with autograd.

        Below ``BOUND_ITEMS`` items the part runs over the whole graph and is standardised as
        ``scores`` does; above, it runs at the pairs' items and at ``STEP_STAT_ITEMS`` items drawn
        from the z-scores' sample, whose mean and spread stand in for the sample's (never a
        (B, I) tensor with autograd)."""
        if self.side.num_items < BOUND_ITEMS:
            return tuple(x[owner, torch.from_numpy(item)] for x in self._gcn_features(self.net(self.side, rows)))
        columns = stat_columns(self.side.num_items)
        pool = np.arange(self.side.num_items) if columns is None else columns.numpy()
        drawn = rng.choice(pool, min(STEP_STAT_ITEMS, len(pool)), replace=False)
        at, where = np.unique(np.concatenate([item, drawn]), return_inverse=True)
        where = torch.from_numpy(where.reshape(-1))
        g = self.net.at(self.side, rows, at)  # (B, len(at))
        sample = g[:, where[len(item):]]
        log_pop = self.side.log_pop[torch.from_numpy(at)]
        out = []
        for x, s in ((g, sample), (g * log_pop, sample * self.side.log_pop[torch.from_numpy(drawn)])):
            mean, spread = s.mean(1), s.std(1).clamp_min(1e-9)
            out.append((x[owner, where[:len(item)]] - mean[owner]) / spread[owner])
        return tuple(out)

    def _add_names(self, data: Dataset, valid: UserItems, log: Log | None) -> None:
        names = data.catalogue.user_names
        self.names = NameFilter.of(names, self.filter.matrix) if names is not None and data.words else None
        self._set_score_fn()
        if self.names is not None and self.name_weight is None:
            few = subsample_users(valid, STOP_USERS, np.random.default_rng(self.options["seed"] + 4))
            self.name_weight = choose_name_weight(data.items(TRAIN), few, self._base_scores, self.names,
                                                  data.num_items, self.options["k"])
            if log:
                log(f"{self.label}, chosen on validation: names' weight {self.name_weight}")
            self._set_score_fn()

    def refit(self, data: Dataset, *, log: Log | None = None, progress: bool = False, **fit_options: Any
              ) -> GCNChebyCF:
        """The same choices and trained weights, the filter part, side graph and names rebuilt from ``data``'s pairs."""
        model = type(self)(**self.params())
        model._set_weights(self._weights())
        model.report = self.report
        model.side = SideGraph.of(data, data.matrix(TRAIN))
        model.filter = model._filter_of(data.matrix(TRAIN), model.choice)
        model.ease = model._ease_of(model.filter.matrix)
        model._add_names(data, data.items(VALID), log)
        return model

    # scoring

    @torch.no_grad()
    def empty_row(self) -> tuple[Tensor, Tensor]:
        """The GCN part's pass of an empty row (``RowGCN.empty_row``), kept while the weights stay."""
        if self._empty is None:
            self._empty = self.net.empty_row(self.side)
        return self._empty

    def _gcn_part(self, rows: sp.csr_matrix) -> tuple[Tensor, Tensor]:
        """The GCN part's two features for B rows, weights fixed (the empty row's pass kept)."""
        with torch.no_grad():
            return self._gcn_features(self.net(self.side, rows, self.empty_row()))

    def _z(self, x: Tensor) -> Tensor:
        return zscores_over(x, stat_columns(self.side.num_items))

    def _filter_part(self, rows: sp.csr_matrix) -> Tensor:
        """(B, I) the filter part f of B rows: z(ChebyCF), or z(z(ChebyCF) + v z(EASE)) where EASE has weight v."""
        part = self._z(self.filter._filter(rows))
        if self.ease is None:
            return part
        return self._z(part + self.ease_choice["ease_weight"] * self._z(self.ease.score_rows(rows)))

    def _gcn_features(self, g: Tensor) -> tuple[Tensor, Tensor]:
        return self._z(g), self._z(g * self.side.log_pop)

    @torch.no_grad()
    def _score_rows(self, rows: sp.csr_matrix, filtered: Tensor | None = None) -> Tensor:
        """(B, I) scores of B rows of items (weighted or not); ``filtered``: the rows' filter
        z-scores where the caller has them. Built in groups of rows whose (rows, items) tensors
        stay within ``SCORE_FLOATS`` each, as the filter part, the GCN part and their z-scores
        are held at once."""
        rows = sp.csr_matrix(rows, dtype=np.float32)
        out = torch.empty(rows.shape)
        step = max(1, SCORE_FLOATS // max(rows.shape[1], 1))
        w = self.weight.detach()
        for s in range(0, rows.shape[0], step):
            block = rows[s:s + step]
            part = self._filter_part(block) if filtered is None else filtered[s:s + step]
            out[s:s + step] = part * w[0]
            if w[1:].any():  # else the untrained start: the filter part alone
                for weight, feature in zip(w[1:], self._gcn_part(block)):
                    out[s:s + step] += weight * feature
        return out

    def _base_scores(self, users: np.ndarray) -> Tensor:
        return self._score_rows(self.filter.matrix[np.asarray(users, np.int64)])

    def _set_score_fn(self) -> None:
        self._score_fn = self._base_scores
        if self.names is not None:
            bare = np.diff(self.filter.matrix.indptr) == 0
            self._score_fn = with_names(self._base_scores, self.names.scores, float(self.name_weight or 0.0), bare)

    def scores(self, users: np.ndarray) -> Tensor:
        return self._score_fn(users)

    def _bounds(self, filter: ChebyCF | None = None) -> bool:
        """Whether ranking goes by ``bounded.BoundedTopK``: a large catalogue, the filter through the
        users' side, no names part."""
        return (self.side.num_items >= BOUND_ITEMS and (filter or self.filter)._v is None
                and self.names is None and self.ease is None)

    def top_k(self, users: np.ndarray, k: int, exclude: UserItems | None) -> tuple[np.ndarray, np.ndarray]:
        """``scores``' exact ranking; over a large catalogue by a bound that skips most tracks."""
        if not self._bounds():
            return super().top_k(users, k, exclude)
        if self._bounded is None:
            self._bounded = BoundedTopK(self)
        return self._bounded(users, k, exclude)

    def recommend(self, user: int, k: int, exclude: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One listener's ``k`` best outside ``exclude``; over a large catalogue by ``top_k``'s bound."""
        if not self._bounds():
            return super().recommend(user, k, exclude)
        exclude = np.unique(np.asarray(exclude, np.int64))
        indptr = np.zeros(self.filter.matrix.shape[0] + 1, np.int64)
        indptr[user + 1:] = len(exclude)
        items, scores = self.top_k(np.array([user]), min(int(k), self.side.num_items), UserItems(indptr, exclude))
        keep = np.isfinite(scores[0])
        return items[0][keep], scores[0][keep]

    def fold_in(self, histories: Sequence[np.ndarray], names: Sequence[str] | None = None,
                weights: Sequence[np.ndarray | None] | None = None) -> Tensor:
        """A new listener's row is scored as a fitted one's (both parts read the row alone);
        ``weights`` are the row's values, and a name (MPD) adds the names' part as ``scores`` does."""
        matrix = history_rows(histories, weights, self.side.num_items)
        out = self._score_rows(matrix)
        if self.names is not None and names is not None:
            bare = np.diff(matrix.indptr) == 0
            out = with_names(lambda r: out[torch.from_numpy(r)], lambda r: self.names.scores_of_names(
                [names[i] for i in r]), float(self.name_weight or 0.0), bare)(np.arange(matrix.shape[0]))
        return out

    def reads_names(self) -> bool:
        return self.names is not None

    def word_vocabulary(self) -> dict[str, int]:
        return self.names.index if self.names is not None else {}

    def item_vectors(self) -> Tensor:
        """The filter's view of the items (``ChebyCF.item_vectors``), for similar items."""
        return self.filter.item_vectors()

    def contributions(self, history: np.ndarray, targets: np.ndarray) -> tuple[Tensor, Tensor]:
        """The filter part's terms (ChebyCF's and EASE's), one per own item, scaled as their z-scores
        scale them; the GCN part and the z-scores' shifts are the rest."""
        history = np.unique(np.asarray(history, np.int64))
        row = sp.csr_matrix((np.ones(len(history), np.float32), (np.zeros(len(history), np.int64), history)),
                            shape=(1, self.side.num_items))
        columns = stat_columns(self.side.num_items)

        def spread(x: Tensor) -> Tensor:
            return (x if columns is None else x[columns]).std().clamp_min(1e-9)

        pieces = [(self.filter, 1.0, self.filter._filter(row)[0])]
        if self.ease is not None:
            pieces.append((self.ease, self.ease_choice["ease_weight"], self.ease.score_rows(row)[0]))
        scales = [weight / spread(scores) for _, weight, scores in pieces]
        # f is z(sum of the weighted z-scores), or the one z-score: its spread scales every piece
        outer = spread(sum(scale * scores for scale, (_, _, scores) in zip(scales, pieces))) if len(pieces) > 1 else 1
        parts = sum(model.contributions(history, targets)[0] * (self.weight[0] * scale / outer)
                    for scale, (model, _, _) in zip(scales, pieces))
        total = self.fold_in([history])[0][torch.from_numpy(np.array(targets, np.int64))]
        return parts, total - parts.sum(1)

    def diagram_score(self) -> tuple[Tensor, dict[str, Tensor]]:
        """The first listener's score of the first item with autograd on, and the parameters by
        name: what ``train_gnn.py --diagram`` draws (the filter part is a constant input)."""
        rows = self.filter.matrix[:1]
        weight = self.weight.detach().clone().requires_grad_()
        with torch.enable_grad():
            for p in self.net.parameters():
                p.requires_grad_(True)
            gcn = self._gcn_features(self.net(self.side, rows))
            features = torch.stack([self._filter_part(rows)[0, :1], gcn[0][0, :1], gcn[1][0, :1]], 1)
            params = {f"gcn.{n}": p for n, p in self.net.named_parameters()}
            return features @ weight, {**params, "scorer.weight": weight}

    # saving

    def _weights(self) -> dict[str, Tensor]:
        return {**{f"net.{n}": p.detach().clone() for n, p in self.net.state_dict().items()},
                "weight": self.weight.detach().clone(), "bias": self.bias.detach().clone(),
                "scale": self.scale.detach().clone()}

    def _set_scorer(self, weight: tuple[float, float, float]) -> None:
        """The scorer's weights in place (Adam holds the tensor)."""
        with torch.no_grad():
            self.weight.copy_(torch.tensor(weight))
        self._bounded = None

    def _set_weights(self, weights: dict[str, Tensor]) -> None:
        self._empty = self._bounded = None
        self.net.load_state_dict({n.removeprefix("net."): p for n, p in weights.items() if n.startswith("net.")})
        self.weight = weights["weight"].detach().clone().float()
        self.bias = weights["bias"].detach().clone().float()
        self.scale = weights["scale"].detach().clone().float()

    def params(self) -> dict[str, Any]:
        fitted = bool(self.report.history)
        return {**self.choice, **self.options, "epochs": self.report.best_epoch if fitted else self.options["epochs"],
                "name_weight": self.name_weight, **self.ease_choice}

    def state(self) -> dict[str, Any]:
        state = {"weights": self._weights(), "matrix": csr_state(self.filter.matrix), "side": self.side.state()}
        leading = self.filter.leading_state()
        if leading is not None:  # loading skips the Gram matrix and its eigenpairs
            state["filter_leading"] = leading
        if self.names is not None:
            state["names"] = self.names.state()
        if self.ease is not None:  # its training matrix is the filter's
            state["ease"] = self.ease.fitted_state()
        return state

    @classmethod
    def from_state(cls, params: dict[str, Any], state: dict[str, Any]) -> GCNChebyCF:
        model = cls(**params)
        model._set_weights(state["weights"])
        model.side = SideGraph.from_state(state["side"])
        model.filter = model._filter_of(csr_from_state(state["matrix"]), model.choice, state.get("filter_leading"))
        if "ease" in state:
            model.ease = EASE.from_state({"lam": model.ease_choice["ease_lam"]}, {**state["matrix"], **state["ease"]})
        model.names = NameFilter.from_state(state["names"], model.filter.matrix) if "names" in state else None
        model._set_score_fn()
        return model


def _epochs(epochs: int, progress: bool):
    if progress:
        from tqdm import tqdm

        return tqdm(range(1, epochs + 1), desc="GCN part", unit="epoch", leave=False)
    return range(1, epochs + 1)
