"""GF-CF against its closed form on a toy matrix, and on planted communities."""

from __future__ import annotations

import numpy as np
import torch

from melody_map.filters import GFCF
from melody_map.types import UserItems


def csr(users, items, num_users: int, num_items: int):
    return UserItems.from_pairs(np.asarray(users), np.asarray(items), num_users).matrix(num_items)


def test_gfcf_equals_the_closed_form_on_a_toy_matrix():
    # Users copy one of 4 prototype rows, so the normalised matrix has rank 4 and its 4
    # leading singular vectors (what k=4 keeps) are exact, randomised SVD or not.
    rng = np.random.default_rng(0)
    prototypes = (rng.random((4, 9)) < 0.5).astype(np.float32)
    prototypes[:, 0] = 1  # no empty column
    dense = prototypes[np.arange(12) % 4]
    users, items = np.nonzero(dense)
    model = GFCF(k=4, alpha=0.5).fit_matrix(csr(users, items, 12, 9))
    du, di = dense.sum(1), dense.sum(0)
    norm = dense / np.sqrt(du)[:, None] / np.sqrt(di)[None, :]
    _, _, vt = np.linalg.svd(norm)
    v = vt[:4].T  # the 4 leading right singular vectors
    ideal = np.diag(di ** -0.5) @ v @ v.T @ np.diag(di ** 0.5)
    expected = dense @ (norm.T @ norm + 0.5 * ideal)
    np.testing.assert_allclose(model.scores(np.arange(12)).numpy(), expected, rtol=1e-4, atol=1e-5)


def test_gfcf_ranks_inside_the_users_community():
    rng = np.random.default_rng(1)
    users, items = [], []
    for u in range(60):
        c = u % 2
        for i in rng.choice(20, 8, replace=False):
            users.append(u)
            items.append(c * 20 + i)
    model = GFCF(k=4, alpha=0.3).fit_matrix(csr(users, items, 60, 40))
    scores = model.scores(np.arange(60))
    seen = torch.zeros(60, 40, dtype=torch.bool)
    seen[torch.tensor(users), torch.tensor(items)] = True
    top = torch.topk(scores.masked_fill(seen, float("-inf")), 5, dim=1).indices
    community = torch.arange(60)[:, None] % 2
    assert (top // 20 == community).float().mean() == 1.0
