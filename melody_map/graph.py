"""One homogeneous graph of users, items, artists, playlists, albums and name words.

Node ids share one space, in blocks (U users, I items, A artists, P playlists, B albums, W words):

    [0, U)                         users (MPD: playlists, each its own listener)
    [U, U + I)                     items (tracks)
    [U + I, U + I + A)             artists
    [U + I + A, U + I + A + P)     playlists (a playlists CSV's)
    [U + I + A + P, .. + B)        albums (MPD's full schema)
    [.. + B, N)                    words of the playlist names (``names.words``) that two or more names share

Undirected edges, stored in both directions:
    user - item        weight = the rows behind the training pair (the user's playlists holding the track)
    item - artist      weight 1 (playlists CSV and MPD)     } only items with a training pair or from
    item - album       weight 1 (MPD's full schema)         } --catalogue: an item only held-out pairs
                                                              hold is an answer, linked to nothing
    item - playlist    weight 1, rows of held-out pairs removed (playlists CSV only)
    word - named node  weight 1: MPD's playlist (a user node), or a playlists CSV's playlist node,
                       for each word of its name; a playlist given by its name alone is reached
                       through them (``words=False`` leaves names out)

A plain interaction table has no artists, playlists or albums: its graph is users and items.
The adjacency is normalised once, as GCN does (self-loops added,
D^-1/2 (A + I) D^-1/2), and kept as a sparse CSR tensor: GCNConv over a plain
edge_index materialises one message per edge, which does not fit at full scale.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from torch_geometric.nn.conv.gcn_conv import gcn_norm
from torch_geometric.utils import to_torch_csr_tensor

from .names import words as name_words
from .sparse import csr_tensor
from .split import Pairs
from .types import TRAIN, Interactions


@dataclass
class Graph:
    num_users: int
    num_items: int
    num_artists: int
    num_playlists: int
    adj: torch.Tensor  # (N, N) sparse CSR, symmetric, GCN-normalised with self-loops
    num_albums: int = 0  # MPD's full schema: albums, after the playlists
    word_names: list[str] = field(default_factory=list)  # the name words with a node, after the albums
    new_items: np.ndarray | None = None  # (I,) bool: tracks from --catalogue, started from their artist and album
    edge_counts: dict[str, int] = field(default_factory=dict)  # undirected edges by type
    noun: str = "track"  # what the items are called: "track" or "item"

    @property
    def item_offset(self) -> int:
        return self.num_users

    @property
    def artist_offset(self) -> int:
        return self.num_users + self.num_items

    @property
    def playlist_offset(self) -> int:
        return self.num_users + self.num_items + self.num_artists

    @property
    def album_offset(self) -> int:
        return self.playlist_offset + self.num_playlists

    @property
    def word_offset(self) -> int:
        return self.album_offset + self.num_albums

    @property
    def num_words(self) -> int:
        return len(self.word_names)

    @property
    def num_nodes(self) -> int:
        return self.word_offset + self.num_words

    def row_block(self, rows: np.ndarray, drop: np.ndarray | None = None) -> tuple[torch.Tensor, np.ndarray]:
        """The adjacency's rows at ``rows``, with only the columns they touch.

        Args:
            rows: (R,) node ids.
            drop: sorted ``row * num_nodes + col`` keys of edges to leave out of the block
                (their weights set to 0), e.g. the pairs a training step is scored on.

        Returns:
            block (R, C) sparse CSR and cols (C,) sorted node ids: ``block[i, j] == adj[rows[i], cols[j]]``.
            ``block.transposed`` holds its (C, R) transpose, also CSR, for the backward pass:
            torch would otherwise sort the block to transpose it on every step.
        """
        crow = self.adj.crow_indices().numpy()
        start, length = crow[rows], crow[rows + 1] - crow[rows]
        indptr = np.concatenate(([0], np.cumsum(length)))
        # Position of each kept non-zero: its row's start plus its offset within the row.
        pos = np.arange(indptr[-1]) - np.repeat(indptr[:-1] - start, length)
        col = self.adj.col_indices().numpy()[pos]
        used = np.zeros(self.num_nodes, dtype=bool)
        used[col] = True
        cols = np.flatnonzero(used)
        local = np.empty(self.num_nodes, dtype=np.int64)
        local[cols] = np.arange(len(cols))
        values = self.adj.values()[torch.from_numpy(pos)]
        if drop is not None and len(drop):
            keys = np.repeat(rows.astype(np.int64), length) * self.num_nodes + col
            values[torch.from_numpy(np.isin(keys, drop, assume_unique=False))] = 0.0
        block = csr_tensor(indptr, local[col], values, (len(rows), len(cols)))
        # scipy's CSR -> CSC conversion is a linear-time counting pass: CSC of the block is CSR of its transpose.
        csc = sp.csr_matrix((np.arange(len(col)), local[col], indptr), shape=(len(rows), len(cols))).tocsc()
        block.transposed = csr_tensor(csc.indptr, csc.indices, values[torch.from_numpy(csc.data)],
                                      (len(cols), len(rows)))
        return block, cols

    def degrees(self) -> np.ndarray:
        """(N,) each node's number of neighbours in the graph, itself not counted."""
        return np.diff(self.adj.crow_indices().numpy()) - 1

    def summary(self) -> str:
        nodes = [(self.num_users, "users"), (self.num_items, f"{self.noun}s"), (self.num_artists, "artists"),
                 (self.num_playlists, "playlists"), (self.num_albums, "albums"), (self.num_words, "name words")]
        parts = ", ".join(f"{n:,} {what}" for n, what in nodes[:2] + [x for x in nodes[2:] if x[0]])
        edges = ", ".join(f"{k} {v:,}" for k, v in self.edge_counts.items())
        return f"graph: {self.num_nodes:,} nodes ({parts}); undirected edges: {edges}"


def build_graph(rows: Interactions, pairs: Pairs, words: bool = True) -> Graph:
    """Build the normalised adjacency from the training pairs and the rows behind them.

    Args:
        rows: the coded input rows; their artists and playlists (where the format has them)
            become nodes.
        pairs: (user, item) pairs with their split; only TRAIN pairs and their rows enter.
        words: give the words of the playlist names nodes (where the format has names).
    """
    cat = rows.catalogue
    named, owner_offset = ((cat.user_names, 0) if cat.user_names is not None
                           else (cat.playlist_names, None) if cat.playlist_names is not None else (None, 0))
    vocab, owners, word_codes = name_word_edges(named) if words and named is not None else ([], None, None)
    g = Graph(cat.num_users, cat.num_items, cat.num_artists, cat.num_playlists, adj=torch.empty(0),
              num_albums=cat.num_albums, word_names=vocab, new_items=cat.new_items, noun=cat.noun)
    train = pairs.part == TRAIN
    # Each block: (source ids, target ids, weights) of one undirected edge type. A user-item
    # edge weighs the rows behind its pair: the playlists that hold the track, 1 for a table's pair.
    blocks = {f"user-{g.noun}": (pairs.user[train], g.item_offset + pairs.item[train],
                                 pairs.rows_per_pair()[train].astype(np.float32))}
    # A track links to its artist and album only where it has a training pair or comes from
    # --catalogue: a track only held-out pairs hold exists in the catalogue as an answer, and
    # an edge to its artist would score it by the listener's taste for that artist.
    linked = np.bincount(pairs.item[train], minlength=g.num_items) > 0
    if cat.new_items is not None:
        linked |= cat.new_items
    if cat.item_artist is not None:
        known = np.flatnonzero(linked)
        blocks[f"{g.noun}-artist"] = (g.item_offset + known, g.artist_offset + cat.item_artist[known].astype(np.int64),
                                      None)
    if cat.item_album is not None:  # tracks whose album is known
        known = np.flatnonzero(linked & (cat.item_album >= 0))
        blocks[f"{g.noun}-album"] = (g.item_offset + known, g.album_offset + cat.item_album[known].astype(np.int64),
                                     None)
    if rows.playlist is not None:
        train_rows = train[pairs.row_pair]
        blocks[f"{g.noun}-playlist"] = (g.item_offset + rows.item[train_rows].astype(np.int64),
                                        g.playlist_offset + rows.playlist[train_rows].astype(np.int64), None)
    if vocab:
        owner_offset = g.playlist_offset if owner_offset is None else owner_offset
        blocks["name-word"] = (owner_offset + owners, g.word_offset + word_codes, None)
    g.edge_counts = {name: len(src) for name, (src, _, _) in blocks.items()}
    g.adj = normalized_adjacency(
        np.concatenate([b[0] for b in blocks.values()]),
        np.concatenate([b[1] for b in blocks.values()]),
        np.concatenate([np.ones(len(b[0]), np.float32) if b[2] is None else b[2] for b in blocks.values()]),
        g.num_nodes,
    )
    return g


def name_word_edges(names, min_names: int = 2) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The words that at least ``min_names`` of the names share, and each name's edges to them.

    Args:
        names: (P,) names (a pyarrow or Python sequence of strings).
        min_names: a word in fewer names links nothing and gets no node.

    Returns:
        (vocabulary in order of first appearance, (E,) int64 name index, (E,) int64 word code).
    """
    owner, token = [], []
    for i, name in enumerate(names.to_pylist() if hasattr(names, "to_pylist") else names):
        for w in name_words(name or ""):
            owner.append(i)
            token.append(w)
    if not token:
        return [], np.zeros(0, np.int64), np.zeros(0, np.int64)
    codes, uniques = pd.factorize(np.asarray(token, dtype=object))
    kept = np.bincount(codes, minlength=len(uniques)) >= min_names
    new_code = np.cumsum(kept) - 1
    keep = kept[codes]
    return ([str(w) for w in uniques[kept]], np.asarray(owner, np.int64)[keep], new_code[codes[keep]].astype(np.int64))


def normalized_adjacency(src: np.ndarray, dst: np.ndarray, weight: np.ndarray, num_nodes: int) -> torch.Tensor:
    """Symmetric GCN normalisation of an undirected weighted graph, as sparse CSR.

    Args:
        src, dst: (E,) one direction of each undirected edge; no self-loops, no repeats.
        weight: (E,) edge weights.
        num_nodes: N.

    Returns:
        (N, N) sparse CSR tensor D^-1/2 (A + I) D^-1/2 with D = diag(rowsum(A + I)).
    """
    src_t, dst_t = torch.from_numpy(src), torch.from_numpy(dst)
    edge_index = torch.stack([torch.cat([src_t, dst_t]), torch.cat([dst_t, src_t])])
    w = torch.from_numpy(weight).float()
    edge_index, w = gcn_norm(edge_index, torch.cat([w, w]), num_nodes, add_self_loops=True)
    with warnings.catch_warnings():  # torch flags sparse CSR as "beta"; it is what makes this scale
        warnings.simplefilter("ignore", UserWarning)
        return to_torch_csr_tensor(edge_index, w, size=(num_nodes, num_nodes))
