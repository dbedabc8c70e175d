"""GF-CF and ChebyCF against their closed forms on toy matrices, and on planted communities."""

from __future__ import annotations

import numpy as np
import torch

import melody_map.filters as filters
from melody_map.filters import GFCF, ChebyCF, chebyshev_coefficients, leading_right_singular, normalised
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


def toy(seed: int = 0, users: int = 40, items: int = 90):
    rng = np.random.default_rng(seed)
    dense = (rng.random((users, items)) < 0.12).astype(np.float32)
    dense[np.arange(users), rng.integers(0, items, users)] = 1  # no empty row
    dense[rng.integers(0, users, items), np.arange(items)] = 1  # no empty column
    return dense, csr(*np.nonzero(dense), users, items)


def test_chebyshev_coefficients_interpolate_the_step_at_the_nodes():
    for order, flatness in ((8, 1.5), (4, 10.0), (1, 1.0)):
        nodes = np.cos(np.pi * (np.arange(order + 1) + 0.5) / (order + 1))
        step = 0.5 - 0.5 * np.sign(nodes) * np.abs(nodes) ** flatness
        np.testing.assert_allclose(np.polynomial.chebyshev.chebval(nodes, chebyshev_coefficients(order, flatness)),
                                   step, atol=1e-12)


def test_the_gram_matrix_gives_the_exact_leading_singular_vectors():
    _, matrix = toy()
    norm, _, _ = normalised(matrix)
    _, _, vt = np.linalg.svd(norm.toarray())
    v = leading_right_singular(norm, 6).numpy()  # 40 users < 90 items: through the users' Gram matrix
    np.testing.assert_allclose(v @ v.T, vt[:6].T @ vt[:6], atol=1e-5)


def test_more_users_take_the_gram_matrix_leading_eigenpairs(monkeypatch):
    _, matrix = toy()
    norm, _, _ = normalised(matrix)
    _, _, vt = np.linalg.svd(norm.toarray())
    monkeypatch.setattr(filters, "GRAM_USERS", 0)  # 40 users: past the exact limit,
    monkeypatch.setattr(filters, "GRAM_TOP_RATIO", 2)  # 90 items: more than twice as many
    monkeypatch.setattr(filters, "GRAM_BLOCK_FLOATS", 7 * 40)  # the Gram matrix in blocks of 7 users
    np.testing.assert_allclose(filters.gram_matrix(norm).numpy(), (norm @ norm.T).toarray(), atol=1e-6)
    assert filters.uses_gram_top(norm.shape)
    v = leading_right_singular(norm, 6).numpy()
    np.testing.assert_allclose(v @ v.T, vt[:6].T @ vt[:6], atol=1e-4)
    monkeypatch.setattr(filters, "GRAM_TOP_RATIO", 3)  # fewer items than that: R's own randomised SVD
    assert not filters.uses_gram_top(norm.shape)


def chebycf_closed_form(dense, order, flatness, alpha, beta, eta):
    """ChebyCF's scores of a dense matrix's rows from the filter built as an (I, I) matrix:
    sum_k c_k T_k(I - 2M) + alpha V V^T, wrapped in the degree equaliser; and the polynomial alone."""
    users, items = dense.shape
    norm, _, di = normalised(csr(*np.nonzero(dense), users, items))
    m = norm.toarray().T @ norm.toarray()
    _, _, vt = np.linalg.svd(norm.toarray())
    lap = np.eye(items) - 2 * m
    bases = [np.eye(items), lap]
    for _ in range(2, order + 1):
        bases.append(2 * lap @ bases[-1] - bases[-2])
    poly = sum(c * b for c, b in zip(chebyshev_coefficients(order, flatness), bases))
    h = poly + alpha * vt[:eta].T @ vt[:eta]
    return (dense * di ** -beta) @ h.T * di ** beta, (dense * di ** -beta) @ poly.T * di ** beta


def test_chebycf_equals_its_closed_form_every_way(monkeypatch):
    dense, matrix = toy(1)
    order, flatness, alpha, beta, eta = 6, 1.5, 0.3, 0.4, 5
    expected, poly_only = chebycf_closed_form(dense, order, flatness, alpha, beta, eta)
    gram = ChebyCF(order, flatness, eta, alpha, beta).fit_matrix(matrix)
    np.testing.assert_allclose(gram.scores(np.arange(40)).numpy(), expected, rtol=1e-3, atol=1e-4)
    # Past the exact limit, with items far more than users: G's leading eigenpairs and one
    # constant for the rest of its spectrum; exact where the rest is one eigenvalue (39 of 40).
    monkeypatch.setattr(filters, "GRAM_USERS", 0)
    monkeypatch.setattr(filters, "GRAM_TOP_RATIO", 2)
    top = ChebyCF(order, flatness, 39, alpha, beta).fit_matrix(matrix)
    assert top._gram is None and top._v is None and top._top[1].shape == (40, 39)
    np.testing.assert_allclose(top.scores(np.arange(40)).numpy(),
                               chebycf_closed_form(dense, order, flatness, alpha, beta, 39)[0], rtol=1e-3, atol=1e-4)
    # Over items (no Gram matrix) with alpha 0 the recursion gives the polynomial part exactly.
    monkeypatch.setattr(filters, "GRAM_TOP_RATIO", 10)
    recursion = ChebyCF(order, flatness, eta, 0.0, beta).fit_matrix(matrix)
    assert recursion._gram is None and recursion._top is None
    np.testing.assert_allclose(recursion.scores(np.arange(40)).numpy(), poly_only, rtol=1e-3, atol=1e-4)


def test_chebycf_from_the_leading_eigenpairs_ranks_as_the_exact_filter(monkeypatch):
    # 150 users in three taste groups over 600 items: a quarter of G's spectrum kept, the rest
    # one constant; the top 20 of each user stay nearly those of the exact filter.
    rng = np.random.default_rng(3)
    group = np.arange(150) % 3
    dense = (rng.random((150, 600)) < np.where(np.arange(600)[None, :] // 200 == group[:, None], 0.05, 0.01))
    dense = dense.astype(np.float32)
    dense[np.arange(150), rng.integers(0, 600, 150)] = 1
    matrix = csr(*np.nonzero(dense), 150, 600)
    exact = ChebyCF(eta=40).fit_matrix(matrix)
    monkeypatch.setattr(filters, "GRAM_USERS", 0)
    monkeypatch.setattr(filters, "GRAM_TOP_RATIO", 4)
    top = ChebyCF(eta=40).fit_matrix(matrix)
    assert top._top is not None
    seen = torch.from_numpy(dense > 0)
    ranked = [torch.topk(m.scores(np.arange(150)).masked_fill(seen, float("-inf")), 20, dim=1).indices
              for m in (exact, top)]
    overlap = np.mean([len(set(a.tolist()) & set(b.tolist())) / 20 for a, b in zip(*ranked)])
    assert overlap > 0.9, overlap
    # Its contributions (through the same operator) add up to its scores.
    parts, rest = top.contributions(np.flatnonzero(dense[0]), np.arange(600))
    np.testing.assert_allclose(parts.sum(1) + rest, top.scores(np.array([0]))[0], rtol=1e-4, atol=1e-5)


def test_chebycf_ranks_inside_the_users_community():
    rng = np.random.default_rng(1)
    users, items = [], []
    for u in range(60):
        for i in rng.choice(20, 8, replace=False):
            users.append(u)
            items.append(u % 2 * 20 + i)
    model = ChebyCF(eta=4).fit_matrix(csr(users, items, 60, 40))
    scores = model.scores(np.arange(60))
    seen = torch.zeros(60, 40, dtype=torch.bool)
    seen[torch.tensor(users), torch.tensor(items)] = True
    top = torch.topk(scores.masked_fill(seen, float("-inf")), 5, dim=1).indices
    assert (top // 20 == torch.arange(60)[:, None] % 2).all()


def test_chebycf_contributions_through_the_gram_matrix_equal_the_filtered_unit_rows():
    _, matrix = toy(1)
    model = ChebyCF(6, 1.5, 5, 0.3, 0.4).fit_matrix(matrix)
    assert model._gram is not None
    history, targets = np.array([3, 7, 8, 40, 88]), np.array([7, 0, 55, 89, 3])  # 7 and 3: their own parts too
    parts, rest = model.contributions(history, targets)
    expected = model._filter(csr(np.arange(5), history, 5, 90))[:, targets].T  # each own item's row alone
    torch.testing.assert_close(parts, expected, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(parts.sum(1) + rest, model.fold_in([history])[0][targets], rtol=1e-4, atol=1e-5)
