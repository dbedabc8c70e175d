"""Training-free graph filters for recommendation: GF-CF (Shen et al., CIKM 2021).

A user's row of the interaction matrix is a signal on the item-item graph; smoothing it
with a low-pass filter of that graph ranks the items the user's neighbourhood favours.
GF-CF adds two filters of the degree-normalised matrix ``R~ = D_U^-1/2 R D_I^-1/2``:

    linear filter      P~ = R~^T R~                      (item-item co-occurrence, normalised)
    ideal low-pass     D_I^-1/2 V_k V_k^T D_I^1/2       (V_k: the k leading right singular vectors of R~)

and scores ``s_u = r_u (P~ + alpha * ideal)``. No weights are learned; the only choices are
``k`` and ``alpha``, picked on validation like any hyper-parameter. LightGCN's propagation
is the same kind of low-pass filter, reached by gradient descent (Shen et al., Sec. 3).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from .baselines import Recommender, _torch_csr


class GFCF(Recommender):
    """GF-CF's linear plus ideal low-pass filter over the item-item graph.

    Args:
        k: singular vectors in the ideal low-pass filter (clipped to the item count).
        alpha: weight of the ideal low-pass filter against the linear one.
        max_items: refuse larger catalogues, whose dense items x items filter would not fit.
        seed: seeds the randomised SVD.
    """

    def __init__(self, k: int = 256, alpha: float = 0.3, max_items: int = 30_000, seed: int = 0):
        self.k, self.alpha, self.max_items, self.seed = k, alpha, max_items, seed
        self.matrix: sp.csr_matrix | None = None
        self.filter: Tensor | None = None

    def _params(self) -> dict[str, Any]:
        return {"k": self.k, "alpha": self.alpha}

    def fit(self, matrix: sp.csr_matrix) -> "GFCF":
        """Args:
            matrix: users x items interactions; treated as binary.
        """
        num_items = matrix.shape[1]
        if num_items > self.max_items:
            raise ValueError(f"GF-CF needs a dense {num_items} x {num_items} filter: {num_items} items "
                             f"exceed max_items={self.max_items}")
        binary = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
        binary.data[:] = 1.0
        self.matrix = binary
        du = np.asarray(binary.sum(1)).ravel()
        di = np.asarray(binary.sum(0)).ravel()
        inv_u = np.where(du > 0, du, 1) ** -0.5
        inv_i = np.where(di > 0, di, 1) ** -0.5
        norm = sp.diags(inv_u.astype(np.float32)) @ binary @ sp.diags(inv_i.astype(np.float32))
        linear = torch.from_numpy((norm.T @ norm).toarray().astype(np.float32))  # (I, I)
        k = min(self.k, min(norm.shape) - 1)
        state = torch.random.get_rng_state()
        torch.manual_seed(self.seed)
        try:
            _, _, v = torch.svd_lowrank(_torch_csr(sp.csr_matrix(norm)), q=k, niter=4)
        finally:
            torch.random.set_rng_state(state)
        # (I, k) -> D_I^-1/2 V V^T D_I^1/2, (I, I)
        ideal = (torch.from_numpy(inv_i.astype(np.float32))[:, None] * v) @ (v.T / torch.from_numpy(
            inv_i.astype(np.float32))[None, :])
        self.filter = linear + self.alpha * ideal
        return self

    def scores(self, users: np.ndarray) -> Tensor:
        # (B, I) sparse rows @ (I, I) dense filter -> (B, I)
        return torch.sparse.mm(_torch_csr(self.matrix[users]), self.filter)
