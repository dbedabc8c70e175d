"""Stage 3: one homogeneous graph of users, tracks, artists and playlists.

Node ids share one space, in blocks (U users, T tracks, A artists, P playlists):

    [0, U)                 users
    [U, U + T)             tracks
    [U + T, U + T + A)     artists
    [U + T + A, N)         playlists

Undirected edges, stored in both directions:
    user - track       weight = how many of the user's playlists hold the track (training pairs only)
    track - artist     weight 1
    track - playlist   weight 1 (rows of held-out pairs removed, see split.py)

The adjacency is normalised once, as GCN does (self-loops added,
D^-1/2 (A + I) D^-1/2), and kept as a sparse CSR tensor: GCNConv over a plain
edge_index materialises one message per edge and runs out of memory at full scale.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import torch
from torch_geometric.nn.conv.gcn_conv import gcn_norm
from torch_geometric.utils import to_torch_csr_tensor

from .data import Playlists
from .split import TRAIN, Pairs


@dataclass
class Graph:
    num_users: int
    num_tracks: int
    num_artists: int
    num_playlists: int
    adj: torch.Tensor  # (N, N) sparse CSR, symmetric, GCN-normalised with self-loops
    edge_counts: dict[str, int] = field(default_factory=dict)  # undirected edges by type

    @property
    def track_offset(self) -> int:
        return self.num_users

    @property
    def artist_offset(self) -> int:
        return self.num_users + self.num_tracks

    @property
    def playlist_offset(self) -> int:
        return self.num_users + self.num_tracks + self.num_artists

    @property
    def num_nodes(self) -> int:
        return self.playlist_offset + self.num_playlists

    def row_block(self, rows: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
        """The adjacency's rows at ``rows``, with only the columns they touch.

        Args:
            rows: (R,) node ids.

        Returns:
            block (R, C) sparse CSR and cols (C,) sorted node ids: ``block[i, j] == adj[rows[i], cols[j]]``.
            ``block.transposed`` holds its (C, R) transpose, also CSR, for the backward pass:
            torch would otherwise sort the block to transpose it on every step (~2 us a non-zero).
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
        with warnings.catch_warnings():  # torch flags sparse CSR as "beta"
            warnings.simplefilter("ignore", UserWarning)
            values = self.adj.values()[torch.from_numpy(pos)]
            block = torch.sparse_csr_tensor(torch.from_numpy(indptr), torch.from_numpy(local[col]), values,
                                            (len(rows), len(cols)))
            # scipy's CSR -> CSC conversion is a linear-time counting pass: CSC of the block is CSR of its transpose.
            csc = sp.csr_matrix((np.arange(len(col)), local[col], indptr), shape=(len(rows), len(cols))).tocsc()
            block.transposed = torch.sparse_csr_tensor(torch.from_numpy(csc.indptr.astype(np.int64)),
                                                       torch.from_numpy(csc.indices.astype(np.int64)),
                                                       values[torch.from_numpy(csc.data)], (len(cols), len(rows)))
        return block, cols

    def summary(self) -> str:
        edges = ", ".join(f"{k} {v:,}" for k, v in self.edge_counts.items())
        return (
            f"graph: {self.num_nodes:,} nodes ({self.num_users:,} users, {self.num_tracks:,} tracks, "
            f"{self.num_artists:,} artists, {self.num_playlists:,} playlists); "
            f"undirected edges: {edges}"
        )


def build_graph(playlists: Playlists, pairs: Pairs) -> Graph:
    """Build the normalised adjacency from the training pairs and the rows behind them.

    Args:
        playlists: the coded rows.
        pairs: (user, track) pairs with their split; only TRAIN pairs and their rows enter.
    """
    g = Graph(playlists.num_users, playlists.num_tracks, playlists.num_artists,
              playlists.num_playlists, adj=torch.empty(0))
    train = pairs.part == TRAIN
    train_rows = train[pairs.row_pair]
    # Each block: (source ids, target ids, weights) of one undirected edge type.
    t = np.arange(g.num_tracks, dtype=np.int64)
    user_track_pl = pairs.user[train], g.track_offset + pairs.track[train], pairs.weight[train]
    track_artist = g.track_offset + t, g.artist_offset + playlists.track_artist.astype(np.int64), None
    track_playlist = (g.track_offset + playlists.track[train_rows].astype(np.int64),
                      g.playlist_offset + playlists.playlist[train_rows].astype(np.int64), None)
    blocks = {"user-track": user_track_pl, "track-artist": track_artist, "track-playlist": track_playlist}
    g.edge_counts = {name: len(src) for name, (src, _, _) in blocks.items()}
    g.adj = normalized_adjacency(
        np.concatenate([b[0] for b in blocks.values()]),
        np.concatenate([b[1] for b in blocks.values()]),
        np.concatenate([np.ones(len(b[0]), np.float32) if b[2] is None else b[2] for b in blocks.values()]),
        g.num_nodes,
    )
    return g


def interaction_graph(pairs: Pairs, num_users: int, num_items: int) -> Graph:
    """The graph of a plain interaction table: users and items (in the tracks' place) only,
    an edge of weight 1 per training pair.

    Args:
        pairs: (user, item) pairs with their split; only TRAIN pairs enter.
        num_users, num_items: U and I.
    """
    train = pairs.part == TRAIN
    g = Graph(num_users, num_items, 0, 0, adj=torch.empty(0), edge_counts={"user-item": int(train.sum())})
    g.adj = normalized_adjacency(pairs.user[train], g.track_offset + pairs.track[train],
                                 np.ones(int(train.sum()), np.float32), g.num_nodes)
    return g


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
