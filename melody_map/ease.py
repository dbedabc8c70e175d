"""EASE (Steck, WWW 2019): the item-item weights B minimising |X - XB|^2 + lambda |B|^2 with
diag(B) = 0, so B = I - P / diag(P), P = (X^T X + lambda I)^-1, and a row x scores x B.

A dense items x items inverse, or, with fewer users than items, a users x users one (Woodbury),
hence ``max_items`` and ``max_users``. A benchmark baseline, and a part of ``GCN+ChebyCF``'s
filter where the catalogue is small enough (``hybrid.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from .foldin import history_rows
from .recommender import Log, Recommender
from .sparse import csr_from_state, csr_state, torch_csr
from .types import TRAIN

if TYPE_CHECKING:
    from .dataset import Dataset

BLOCK_FLOATS = 1 << 25  # most dense floats of a block of X^T X, or of X^T K, held at once


def gram_blocks(matrix: sp.csr_matrix, max_block_floats: int):
    """Yield (start, stop, dense rows start:stop of X^T X) over item blocks, so no more than
    ``max_block_floats`` dense floats (and no items x items sparse product) exist at once."""
    num_items = matrix.shape[1]
    by_item = matrix.T.tocsr()  # items x users
    block = max(1, min(num_items, max_block_floats // max(num_items, 1)))
    for start in range(0, num_items, block):
        stop = min(num_items, start + block)
        yield start, stop, (by_item[start:stop] @ matrix).toarray()


class EASE(Recommender):
    """Steck's EASE: closed-form item-item weights, B = I - P / diag(P), P = (X^T X + lam I)^-1.

    With fewer users than items (at most ``max_users``), B is never formed: by Woodbury
    ``P = (I - X^T K X) / lam`` with ``K = (lam I + X X^T)^-1`` (users x users), so

        x B = x - (x - (x X^T) K X) / (1 - diag(X^T K X))

    (the same scores; a test checks both ways against each other). Else B is computed over
    items in float32 with a Cholesky inverse: peak memory about 3 dense items x items float32
    matrices (~4.8 GB at 20k items).

    Args:
        lam: L2 regularisation (Steck's lambda; 500 is a common start, larger for denser data).
        max_items: the largest catalogue inverted over items.
        max_users: the most users inverted over users, where they are fewer than the items.
    """

    name, label = "ease", "EASE"

    def __init__(self, lam: float = 500.0, max_items: int = 20_000, max_users: int = 16_384):
        self.lam = lam
        self.max_items, self.max_users = max_items, max_users
        self.weights: Tensor | None = None  # (I, I) B, over items
        self.inverse: Tensor | None = None  # (U, U) K, over users
        self.denominator: Tensor | None = None  # (I,) 1 - diag(X^T K X), over users
        self.matrix: sp.csr_matrix | None = None
        self._by_item: Tensor | None = None  # (I, U) CSR X^T, built on first use

    def params(self) -> dict[str, Any]:
        return {"lam": self.lam, "max_items": self.max_items, "max_users": self.max_users}

    def over_users(self, shape: tuple[int, int]) -> bool:
        """Whether a (users, items) matrix is fitted through the users' inverse (Woodbury)."""
        return shape[0] < shape[1] and shape[0] <= self.max_users

    def fits(self, shape: tuple[int, int]) -> bool:
        """Whether a (users, items) matrix is within ``max_users`` or ``max_items``."""
        return self.over_users(shape) or shape[1] <= self.max_items

    def fit(self, data: Dataset, *, log: Log | None = None, progress: bool = False) -> EASE:
        return self.fit_matrix(data.matrix(TRAIN))

    def fit_matrix(self, matrix: sp.csr_matrix) -> EASE:
        num_users, num_items = matrix.shape
        if not self.fits(matrix.shape):
            raise ValueError(f"EASE needs a dense {num_items} x {num_items} inverse (max_items={self.max_items}) "
                             f"or a {num_users} x {num_users} one (max_users={self.max_users})")
        self.matrix = sp.csr_matrix(matrix, dtype=np.float32, copy=True)  # its values set to 1: never the caller's
        self.matrix.data[:] = 1.0
        if self.over_users(matrix.shape):
            self._fit_users()
        else:
            self._fit_items()
        return self

    def _fit_items(self) -> None:
        num_items = self.matrix.shape[1]
        gram = torch.empty(num_items, num_items)
        for start, stop, block in gram_blocks(self.matrix, BLOCK_FLOATS):
            gram[start:stop] = torch.from_numpy(block)
        gram.diagonal().add_(self.lam)
        chol = torch.linalg.cholesky(gram)  # X^T X + lam I is symmetric positive definite
        del gram
        inv = torch.cholesky_inverse(chol)
        del chol
        # B_ij = -P_ij / P_jj off the diagonal, 0 on it.
        inv.div_(-inv.diagonal().clone())
        inv.diagonal().zero_()
        self.weights = inv

    def _fit_users(self) -> None:
        x = self.matrix
        gram = torch.from_numpy((x @ x.T).toarray().astype(np.float64))
        gram.diagonal().add_(self.lam)
        self.inverse = torch.cholesky_inverse(torch.linalg.cholesky(gram)).float()
        # diag(X^T K X)_j = x_j^T K x_j over the item columns, a block of items at a time.
        block = max(1, BLOCK_FLOATS // max(x.shape[0], 1))
        quad = []
        for start in range(0, x.shape[1], block):
            cols = torch_csr(sp.csr_matrix(x.T[start:start + block]))
            quad.append((torch.sparse.mm(cols, self.inverse) * cols.to_dense()).sum(1))
        self.denominator = (1.0 - torch.cat(quad)).clamp_min(1e-12)

    def scores(self, users: np.ndarray) -> Tensor:
        return self.score_rows(self.matrix[users])

    def score_rows(self, rows: sp.csr_matrix) -> Tensor:
        """(B, I) x B for B rows of items (1 per item, or its weight), fitted listeners' or not."""
        rows = sp.csr_matrix(rows, dtype=np.float32)
        if self.weights is not None:
            return torch.sparse.mm(torch_csr(rows), self.weights)
        through = torch.from_numpy((rows @ self.matrix.T).toarray()) @ self.inverse  # (B, U) x X^T K
        if self._by_item is None:
            self._by_item = torch_csr(sp.csr_matrix(self.matrix.T))
        z = torch.sparse.mm(self._by_item, through.T.contiguous()).T  # (B, I) x X^T K X
        dense = torch.from_numpy(rows.toarray())
        return dense - (dense - z) / self.denominator

    def fold_in(self, histories: Sequence[np.ndarray], weights: Sequence[np.ndarray | None] | None = None) -> Tensor:
        """A new listener's row x scores x B, as a fitted one's does (B is over items alone)."""
        return self.score_rows(history_rows(histories, weights, self.matrix.shape[1]))

    def contributions(self, history: np.ndarray, targets: np.ndarray) -> tuple[Tensor, Tensor]:
        """(T, R): x B is linear in x, so own item i gives B[i, targets]; nothing is left over."""
        history = np.unique(np.asarray(history, np.int64))
        one_hot = sp.csr_matrix((np.ones(len(history), np.float32), (np.arange(len(history)), history)),
                                shape=(len(history), self.matrix.shape[1]))
        parts = self.score_rows(one_hot)[:, torch.from_numpy(np.array(targets, np.int64))]
        return parts.T.contiguous(), torch.zeros(parts.shape[1])

    def state(self) -> dict[str, Any]:
        return {**csr_state(self.matrix), **self.fitted_state()}

    def fitted_state(self) -> dict[str, Tensor]:
        """What fitting computed, the training matrix aside."""
        return {"weights": self.weights} if self.weights is not None else {
            "inverse": self.inverse, "denominator": self.denominator}

    @classmethod
    def from_state(cls, params: dict[str, Any], state: dict[str, Any]) -> EASE:
        model = cls(**params)
        model.matrix = csr_from_state(state)
        model.weights, model.inverse, model.denominator = (state.get(k) for k in ("weights", "inverse",
                                                                                  "denominator"))
        return model
