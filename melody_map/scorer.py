"""The GCN's linear pair scorer, on its own so that ranking needs no graph library."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class PairScorer(nn.Linear):
    """``w . (z_u * z_t) + b``: a linear layer over the element-wise product of a user's and a
    track's embeddings (a weighted dot product).

    A linear layer over their *concatenation* would score ``w1 . z_u + w2 . z_t + b``: every
    user would get the same ranking of tracks, so nothing personal could be learned.
    """

    def __init__(self, dim: int):
        super().__init__(dim, 1)

    def score(self, z_user: Tensor, z_item: Tensor) -> Tensor:
        """Scores of aligned pairs: (B, dim), (B, dim) -> (B,)."""
        return self(z_user * z_item).squeeze(-1)

    def score_all(self, z_user: Tensor, z_items: Tensor, out: Tensor | None = None) -> Tensor:
        """Scores of every item for a batch of users, as one matrix product.

        (B, dim) * w -> (B, dim) @ (dim, I) + b -> (B, I), equal to ``score`` on every pair.
        ``out`` (B, I), when given, receives them: a reused buffer spares a large catalogue
        the page faults of a fresh output.
        """
        return torch.addmm(self.bias, z_user * self.weight[0], z_items.T, out=out)
