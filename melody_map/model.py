"""The design-card network: two GCNConv layers over the whole graph and a linear pair scorer."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.nn import GCNConv

from .config import COMBINE
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


class GCNRecommender(nn.Module):
    """Node vectors -> GCNConv -> ReLU -> dropout -> GCNConv -> ReLU -> dropout -> scorer.

    The scorer (``PairScorer``) is a linear layer over the element-wise product of the
    user's and the track's embeddings: the second layer's output (``combine="last"``, the
    card as first written) or the node vectors beside it (``"concat"``, a layer combination
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
    """

    def __init__(self, num_nodes: int, dim: int = 32, dropout: float = 0.1, fixed_features: bool = False,
                 combine: str = "concat"):
        super().__init__()
        if combine not in COMBINE:
            raise ValueError(f"combine must be one of {COMBINE}, got {combine!r}")
        self.combine = combine
        self.embedding = nn.Embedding(num_nodes, dim)
        nn.init.normal_(self.embedding.weight, std=0.1)
        self.embedding.weight.requires_grad_(not fixed_features)
        # The adjacency arrives normalised once (graph.py), so the layers must not redo it.
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
        if cached is None:
            h = self.conv1(self.embedding.weight, adj)
        else:  # GCNConv computes A (E W) + b, which is (A E) W + b
            h = self.conv1.lin(cached) + self.conv1.bias
        h = self.dropout(torch.relu(h))
        return self._combined(self.dropout(torch.relu(self.conv2(h, adj))))

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
        return (f"{type(self).__name__}(num_nodes={n:,}, dim={d}, dropout={self.dropout.p}{frozen}, "
                f"combine={self.combine!r})")
