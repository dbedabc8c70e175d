"""Sparse products with cheap backward passes, and CSR helpers.

torch's backward of ``A @ x`` for a sparse CSR ``A`` forms ``A.T`` on every call, a sort
of all its non-zeros. Our adjacencies are symmetric, and a training step's block of rows
can carry its transpose, so the backward is one more product with a matrix we already have.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor


class SymmetricSpMM(torch.autograd.Function):
    """``adj @ x`` for a symmetric sparse ``adj``: the backward is ``adj @ grad`` (``adj.T == adj``)."""

    @staticmethod
    def forward(ctx, adj: Tensor, x: Tensor) -> Tensor:
        ctx.adj = adj
        return torch.sparse.mm(adj, x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[None, Tensor]:
        return None, torch.sparse.mm(ctx.adj, grad)


class BlockSpMM(torch.autograd.Function):
    """``block @ x`` for a block of adjacency rows that carries its own transpose
    (``Graph.row_block``): the backward is one product with it."""

    @staticmethod
    def forward(ctx, block: Tensor, transposed: Tensor, x: Tensor) -> Tensor:
        ctx.transposed = transposed
        return torch.sparse.mm(block, x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[None, None, Tensor]:
        return None, None, torch.sparse.mm(ctx.transposed, grad)


def csr_tensor(indptr: np.ndarray, indices: np.ndarray, values: Tensor | np.ndarray,
               shape: tuple[int, int]) -> Tensor:
    """A torch sparse CSR tensor from CSR arrays (int64 indices; float32 values unless a tensor is given)."""
    if isinstance(values, np.ndarray):
        values = torch.from_numpy(values.astype(np.float32, copy=False))
    with warnings.catch_warnings():  # torch flags sparse CSR as "beta"
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(torch.from_numpy(np.asarray(indptr, np.int64)),
                                       torch.from_numpy(np.asarray(indices, np.int64)), values, shape)


def csr_state(matrix: sp.csr_matrix) -> dict[str, Tensor | int]:
    """A binary users x items matrix as tensors for a checkpoint (its values are all 1)."""
    return {"indptr": torch.from_numpy(matrix.indptr.astype(np.int64)),
            "items": torch.from_numpy(matrix.indices.astype(np.int64)), "num_items": matrix.shape[1]}


def csr_from_state(state: dict) -> sp.csr_matrix:
    """Inverse of ``csr_state``: the binary float32 matrix."""
    indptr, items = state["indptr"].numpy(), state["items"].numpy()
    return sp.csr_matrix((np.ones(len(items), np.float32), items, indptr),
                         shape=(len(indptr) - 1, int(state["num_items"])))


def torch_csr(matrix: sp.csr_matrix) -> Tensor:
    """A scipy CSR matrix as a float32 torch sparse CSR tensor."""
    return csr_tensor(matrix.indptr, matrix.indices, matrix.data, matrix.shape)


def scipy_csr(matrix: Tensor) -> sp.csr_matrix:
    """A torch sparse CSR tensor as a scipy CSR matrix over the same arrays (no copy)."""
    return sp.csr_matrix((matrix.values().numpy(), matrix.col_indices().numpy(), matrix.crow_indices().numpy()),
                         shape=tuple(matrix.shape))
