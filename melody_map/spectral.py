"""Spectral node vectors: a low-pass start for the GCN.

The leading singular vectors of the degree-normalised user-item matrix
``R~ = D_u^-1/2 R D_i^-1/2`` are the smoothest signals on the user-item graph (the
"ideal low-pass filter" of GF-CF, Shen et al. 2021). Ranking items by them alone already
recommends well, so the GCN starts from a good ranking instead of from noise.
``docs/design.md`` says what this start bought and what training adds to it.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from .graph import Graph
from .sparse import torch_csr


def spectral_embedding(graph: Graph, user: np.ndarray, item: np.ndarray, weight: np.ndarray, dim: int,
                       seed: int, niter: int = 4, rms: float = 0.1) -> Tensor:
    """(N, dim) node vectors from the truncated SVD of the normalised training matrix.

    Users get ``U sqrt(S)`` and items ``D_i^1/2 V sqrt(S)``, so a user's dot product with an
    item is GF-CF's ideal low-pass score (the normalisation's ``D_i^-1/2`` undone on the
    output side, which keeps popular items' weight). Artists, playlists and albums get the
    degree-weighted mean of their items' vectors over the graph's edges. The whole is
    scaled to root-mean-square ``rms``.

    Args:
        graph: the training graph (block layout and normalised adjacency).
        user, item, weight: the training pairs and their weights.
        dim: vector size; the number of singular vectors kept.
        seed: seeds the randomised SVD.
        niter: power iterations of the randomised SVD.
        rms: root-mean-square of the returned entries (the random start uses std 0.1).
    """
    u_n, i_n = graph.num_users, graph.num_items
    value = np.log1p(weight).astype(np.float64)
    du = np.bincount(user, weights=value, minlength=u_n)
    di = np.bincount(item, weights=value, minlength=i_n)
    value = value / np.sqrt(du[user] * di[item])
    with warnings.catch_warnings():  # torch flags sparse CSR as "beta"
        warnings.simplefilter("ignore", UserWarning)
        r = torch.sparse_coo_tensor(torch.from_numpy(np.stack([user, item])),
                                    torch.from_numpy(value.astype(np.float32)), (u_n, i_n)).coalesce()
        r = r.to_sparse_csr()
    with torch.random.fork_rng(devices=[]):  # seeded without touching the caller's generator
        torch.manual_seed(seed)
        u, s, v = torch.svd_lowrank(r, q=min(dim, u_n, i_n), niter=niter)
    root = s.sqrt()
    x = torch.zeros(graph.num_nodes, dim)
    x[:u_n, : len(s)] = u * root
    item_weight = torch.from_numpy(np.sqrt(di)).float()[:, None]
    x[graph.item_offset: graph.item_offset + i_n, : len(s)] = v * root * item_weight

    rest = slice(graph.artist_offset, graph.word_offset)  # artists, playlists and albums
    played = torch.zeros(graph.num_nodes, dtype=torch.bool)
    played[graph.item_offset: graph.item_offset + i_n] = torch.from_numpy(di > 0)
    x[rest] = neighbour_means(graph, x, played)[rest]
    if graph.new_items is not None:
        # A --catalogue track, which no playlist holds, starts at its artist's and album's mean. A
        # track held out by the split keeps its zero start: that it exists at all says it is an answer.
        new = torch.zeros(graph.num_nodes, dtype=torch.bool)
        new[graph.item_offset: graph.item_offset + i_n] = torch.from_numpy(graph.new_items & (di == 0))
        x[new] = neighbour_means(graph, x, rest)[new]
    if graph.num_words:  # a word: the mean of the playlists named with it
        words = slice(graph.word_offset, graph.num_nodes)
        x[words] = neighbour_means(graph, x, slice(0, graph.word_offset))[words]
        # A user with no training item (a playlist given by its name alone) starts at its words' mean.
        bare = torch.from_numpy(np.bincount(user, minlength=u_n) == 0)
        x[:u_n][bare] = neighbour_means(graph, x, words)[:u_n][bare]
    return x * (rms / x.pow(2).mean().sqrt().clamp_min(1e-12))


def item_means(graph: Graph, x: Tensor) -> Tensor:
    """(N, d): each node's weighted mean of the item rows of ``x`` over its graph edges."""
    return neighbour_means(graph, x, slice(graph.item_offset, graph.item_offset + graph.num_items))


def neighbour_means(graph: Graph, x: Tensor, source: slice | Tensor) -> Tensor:
    """(N, d): each node's weighted mean of the rows of ``x`` in ``source`` (a block of node ids,
    or an (N,) bool mask) over its edges.

    Rows of nodes with no neighbour in the source are zero; ``(N, N) @ (N, d)``, with x's
    other rows masked out.
    """
    inside = torch.zeros(graph.num_nodes, 1)
    inside[source] = 1
    total = torch.sparse.mm(graph.adj, x * inside)
    mass = torch.sparse.mm(graph.adj, inside)
    return total / mass.clamp_min(1e-12)


def tag_embedding(graph: Graph, tags: sp.csr_matrix, dim: int, seed: int, niter: int = 4) -> Tensor:
    """(N, dim) node vectors from item tags: a content start beside the spectral one.

    Each item's tag counts are weighted ``log1p(count) * idf`` and scaled to unit length; the
    leading ``dim`` singular directions of that items x tags matrix give the items' vectors.
    Every other node (users, artists, playlists) gets the weighted mean of its items', so a
    user's dot product with an item measures how well the item's tags match the user's
    tracks. Untagged items are zero. The whole is scaled to unit root-mean-square.

    Args:
        graph: the training graph.
        tags: (items, tags) counts, e.g. from :func:`melody_map.tables.read_item_tags`.
        dim: vector size (at most the number of tags).
        seed: seeds the randomised SVD.
        niter: power iterations of the randomised SVD.
    """
    tags = sp.csr_matrix(tags, dtype=np.float64)
    tagged = np.diff(tags.indptr) > 0
    idf = np.log(max(int(tagged.sum()), 1) / np.maximum(np.bincount(tags.indices, minlength=tags.shape[1]), 1))
    weighted = tags.copy()
    weighted.data = np.log1p(weighted.data) * idf[weighted.indices]
    norm = np.sqrt(np.asarray(weighted.multiply(weighted).sum(axis=1)).ravel())
    t = torch_csr(sp.csr_matrix(sp.diags(1 / np.where(norm > 0, norm, 1)) @ weighted).sorted_indices())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        u, s, _ = torch.svd_lowrank(t, q=min(dim, *tags.shape), niter=niter)
    x = torch.zeros(graph.num_nodes, dim)
    x[graph.item_offset: graph.item_offset + graph.num_items, : len(s)] = u * s
    is_item = torch.zeros(graph.num_nodes, dtype=torch.bool)
    is_item[graph.item_offset: graph.item_offset + graph.num_items] = True
    x[~is_item] = item_means(graph, x)[~is_item]
    return x / x.pow(2).mean().sqrt().clamp_min(1e-12)

