"""The design-card network: two GCNConv layers over the whole graph and a linear pair scorer."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.nn import GATConv, GCNConv

from .config import COMBINE, CONVS
from .scorer import PairScorer
from .sparse import BlockSpMM, SymmetricSpMM


class SymmetricGCNConv(GCNConv):
    """PyG's ``GCNConv`` (same parameters, same forward) for a pre-normalised *symmetric*
    sparse adjacency: only its sparse product is swapped for one with a cheap backward, and a
    block of the adjacency's rows (a training step's nodes) brings its transpose along."""

    def message_and_aggregate(self, adj_t: Tensor, x: Tensor) -> Tensor:
        transposed = getattr(adj_t, "transposed", None)  # a row block of a training step
        if transposed is not None and x.requires_grad:
            return BlockSpMM.apply(adj_t, transposed, x)
        square = adj_t.shape[0] == adj_t.shape[1]
        if square and adj_t.layout in (torch.sparse_csr, torch.sparse_coo) and x.requires_grad:
            return SymmetricSpMM.apply(adj_t, x)
        return super().message_and_aggregate(adj_t, x)


class GCNNetwork(nn.Module):
    """Node vectors -> GCNConv -> ReLU -> dropout -> GCNConv -> ReLU -> dropout -> scorer.

    The scorer (``PairScorer``) is a linear layer over the element-wise product of the
    user's and the track's embeddings: the second layer's output (``combine="last"``) or
    the node vectors beside it (``"concat"``, a layer combination
    as in NGCF/LightGCN). With ``"concat"`` the scorer holds the start's own dot product
    ``x_u . x_t`` as one of its terms, and its weights on the GCN's half start at zero: the
    untrained network ranks exactly as its start, and training adds to that ranking instead
    of having to rebuild it through two ReLUs.

    Args:
        num_nodes: N, all users, tracks, artists and playlists.
        dim: size of the node vectors and of both layers.
        dropout: dropout probability after each layer.
        fixed_features: keep the node vectors frozen (then training caches the first
            layer's sparse product and steps over row blocks, see train.py).
        combine: "last" or "concat", what the scorer reads (its width: dim or 2 * dim).
        conv: "gcn" (``GCNConv``) or "gat" (PyG's ``GATConv``, one head, over
            the same edges; a training step then embeds the whole graph).
    """

    def __init__(self, num_nodes: int, dim: int = 32, dropout: float = 0.1, fixed_features: bool = False,
                 combine: str = "concat", conv: str = "gcn"):
        super().__init__()
        if combine not in COMBINE:
            raise ValueError(f"combine must be one of {COMBINE}, got {combine!r}")
        if conv not in CONVS:
            raise ValueError(f"conv must be one of {CONVS}, got {conv!r}")
        self.combine, self.conv = combine, conv
        self._edges: tuple[Tensor, Tensor] | None = None  # (adj, its edge_index), for GATConv
        self.embedding = nn.Embedding(num_nodes, dim)
        nn.init.normal_(self.embedding.weight, std=0.1)
        self.embedding.weight.requires_grad_(not fixed_features)
        if conv == "gat":  # attention over the same edges (their self-loops included), one head
            self.conv1 = GATConv(dim, dim, heads=1, add_self_loops=False)
            self.conv2 = GATConv(dim, dim, heads=1, add_self_loops=False)
        else:  # the adjacency arrives normalised once (graph.py), so the layers must not redo it
            self.conv1 = SymmetricGCNConv(dim, dim, normalize=False)
            self.conv2 = SymmetricGCNConv(dim, dim, normalize=False)
        self.dropout = nn.Dropout(dropout)
        self.scorer = PairScorer(dim * (2 if combine == "concat" else 1))
        if combine == "concat":  # start as the node vectors' own dot product, the GCN's half at zero:
            with torch.no_grad():  # an untrained network ranks exactly as its start does
                self.scorer.weight[0, :dim] = 1.0
                self.scorer.weight[0, dim:] = 0.0

    def forward(self, adj: Tensor, cached: Tensor | None = None) -> Tensor:
        """Embed every node.

        Args:
            adj: (N, N) normalised sparse adjacency.
            cached: ``first_layer_input(adj)``, to skip the first sparse product (frozen vectors only).

        Returns:
            (N, dim) node embeddings, (N, 2 * dim) with ``combine="concat"``.
        """
        if self.conv == "gat":
            edges = self._edge_index(adj)
            h = self.dropout(torch.relu(self.conv1(self.embedding.weight, edges)))
            return self._combined(self.dropout(torch.relu(self.conv2(h, edges))))
        if cached is None:
            h = self.conv1(self.embedding.weight, adj)
        else:  # GCNConv computes A (E W) + b, which is (A E) W + b
            h = self.conv1.lin(cached) + self.conv1.bias
        h = self.dropout(torch.relu(h))
        return self._combined(self.dropout(torch.relu(self.conv2(h, adj))))

    @property
    def caches_first_layer(self) -> bool:
        """Whether training may compute the first sparse product once: frozen node vectors under
        GCNConv (GATConv's attention weights change as it trains)."""
        return self.conv == "gcn" and not self.embedding.weight.requires_grad

    def _edge_index(self, adj: Tensor) -> Tensor:
        """(2, E) edge_index of the sparse CSR adjacency's non-zeros, kept for the same adjacency."""
        if self._edges is None or self._edges[0] is not adj:
            crow = adj.crow_indices()
            rows = torch.repeat_interleave(torch.arange(len(crow) - 1, device=adj.device), crow.diff())
            self._edges = (adj, torch.stack([adj.col_indices(), rows]))  # messages flow column -> row
        return self._edges[1]

    def _combined(self, z: Tensor, rows: Tensor | None = None) -> Tensor:
        """What the scorer reads at z's nodes (all, or ``rows``): z, or the node vectors beside it."""
        if self.combine == "last":
            return z
        x = self.embedding.weight if rows is None else self.embedding.weight[rows]
        return torch.cat([x, z], dim=1)

    def first_layer_input(self, adj: Tensor) -> Tensor:
        """(N, dim) ``A E``: the first layer's sparse product, fixed while the node vectors are frozen."""
        with torch.no_grad():
            return torch.sparse.mm(adj, self.embedding.weight)

    def forward_rows(self, cached_cols: Tensor, block: Tensor, rows: Tensor) -> Tensor:
        """Embeddings of a few nodes only, for a training step with frozen node vectors.

        The second layer at R nodes reads the first layer at their neighbours only, so a step
        costs the edges of its batch instead of the whole graph's.

        Args:
            cached_cols: (C, dim) rows of ``first_layer_input(adj)`` at the block's columns.
            block: (R, C) sparse CSR: the adjacency's rows at the R nodes, its columns kept
                where non-zero (``graph.row_block``).
            rows: (R,) the R nodes' ids.

        Returns:
            (R, dim or 2 * dim) embeddings of the R nodes, equal to ``forward``'s rows there.
        """
        h = self.dropout(torch.relu(self.conv1.lin(cached_cols) + self.conv1.bias))
        return self._combined(self.dropout(torch.relu(self.conv2(h, block))), rows)

    def score(self, z_user: Tensor, z_item: Tensor) -> Tensor:
        """Scores of aligned pairs: (B, dim), (B, dim) -> (B,)."""
        return self.scorer.score(z_user, z_item)

    def __repr__(self) -> str:
        n, d = self.embedding.weight.shape
        frozen = "" if self.embedding.weight.requires_grad else ", fixed_features=True"
        conv = "" if self.conv == "gcn" else f", conv={self.conv!r}"
        return (f"{type(self).__name__}(num_nodes={n:,}, dim={d}, dropout={self.dropout.p}{frozen}, "
                f"combine={self.combine!r}{conv})")
