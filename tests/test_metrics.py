"""Ranking metrics and top-k against hand-computed examples."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from melody_map.evaluate import (
    evaluate,
    evaluate_popularity,
    popularity_scores,
    popularity_top_k,
    ranking_metrics,
)
from melody_map.ranking import top_k, topk_rows
from melody_map.types import UserItems


def test_metrics_match_a_hand_computed_example():
    # 6 items. User 0 holds out {1, 4}; user 1 holds out {5}.
    heldout = UserItems.from_pairs(np.array([0, 0, 1]), np.array([4, 1, 5]), num_users=2)
    users = np.array([0, 1])
    top = np.array([[1, 2, 4], [0, 2, 3]])  # user 0 hits at ranks 1 and 3; user 1 misses
    scores = np.ones_like(top, dtype=np.float32)
    m = ranking_metrics(users, top, scores, heldout, num_items=6, k=3)
    dcg0 = 1 / math.log2(2) + 1 / math.log2(4)
    idcg0 = 1 / math.log2(2) + 1 / math.log2(3)  # ideal: min(|held-out| = 2, k) hits on top
    assert m["recall@3"] == pytest.approx((2 / 2 + 0 / 1) / 2)
    assert m["ndcg@3"] == pytest.approx((dcg0 / idcg0 + 0) / 2)
    assert m["hitrate@3"] == pytest.approx(1 / 2)
    assert m["coverage@3"] == pytest.approx(5 / 6)  # items 0, 1, 2, 3, 4 were recommended


def test_recall_divides_by_all_held_out_items_even_beyond_k():
    # 5 held-out items, k = 2, both slots hit: Recall = 2/5, NDCG = 1 (ideal is 2 hits).
    heldout = UserItems.from_pairs(np.zeros(5, np.int64), np.arange(5), num_users=1)
    m = ranking_metrics(np.array([0]), np.array([[0, 1]]), np.ones((1, 2), np.float32), heldout, 10, k=2)
    assert m["recall@2"] == pytest.approx(2 / 5)
    assert m["ndcg@2"] == pytest.approx(1.0)


def test_top_k_never_returns_excluded_items_and_is_sorted():
    scores = torch.tensor([[5.0, 4.0, 3.0, 2.0, 1.0], [1.0, 2.0, 3.0, 4.0, 5.0]])
    exclude = UserItems.from_pairs(np.array([0, 0, 1]), np.array([0, 2, 4]), num_users=2)
    items, vals = top_k(lambda users: scores[torch.from_numpy(users)].clone(), np.array([0, 1]), 3, exclude)
    assert items.tolist() == [[1, 3, 4], [3, 2, 1]]
    assert (np.diff(vals, axis=1) <= 0).all()


def test_top_k_clips_k_to_the_catalogue_and_marks_exhausted_slots():
    scores = torch.tensor([[1.0, 2.0, 3.0]])
    exclude = UserItems.from_pairs(np.array([0]), np.array([2]), num_users=1)
    items, vals = top_k(lambda users: scores.clone(), np.array([0]), 10, exclude)
    assert items.shape == (1, 3)
    assert items[0, :2].tolist() == [1, 0] and np.isinf(vals[0, 2])


def test_evaluate_batches_agree_with_one_batch():
    rng = np.random.default_rng(0)
    table = torch.from_numpy(rng.random((50, 30)).astype(np.float32))
    heldout = UserItems.from_pairs(rng.integers(0, 50, 200), rng.integers(0, 30, 200), 50)
    known = UserItems.from_pairs(rng.integers(0, 50, 300), rng.integers(0, 30, 300), 50)
    fn = lambda users: table[torch.from_numpy(users)].clone()  # noqa: E731
    assert evaluate(fn, heldout, known, 30, k=5, batch_size=7) == evaluate(fn, heldout, known, 30, k=5, batch_size=1000)


def test_popularity_ranks_by_training_users():
    fn = popularity_scores(np.array([2, 2, 2, 0, 0, 1]), num_items=4)
    items, _ = top_k(fn, np.array([0, 1]), 4, None)
    assert items.tolist() == [[2, 0, 1, 3], [2, 0, 1, 3]]


def test_fast_popularity_equals_scoring_every_item():
    rng = np.random.default_rng(1)
    # Distinct counts, so that no tie order can differ between the two paths.
    train_items = np.repeat(np.arange(40), rng.permutation(40) + 1)
    heldout = UserItems.from_pairs(rng.integers(0, 25, 150), rng.integers(0, 40, 150), 25)
    known = UserItems.from_pairs(rng.integers(0, 25, 300), rng.integers(0, 40, 300), 25)
    slow = evaluate(popularity_scores(train_items, 40), heldout, known, 40, k=10)
    assert evaluate_popularity(train_items, heldout, known, 40, k=10) == slow
    users = np.arange(25)
    fast_items, _ = popularity_top_k(train_items, users, 10, known, 40)
    slow_items, _ = top_k(popularity_scores(train_items, 40), users, 10, known)
    assert np.array_equal(fast_items, slow_items)


def test_topk_rows_equals_torch_topk_on_wide_rows_with_masked_entries():
    torch.manual_seed(0)
    scores = torch.randn(7, 100_000)
    scores[:, ::3] = float("-inf")  # excluded items, some of them in the strided sample
    scores[2, :50] = 10.0 + torch.arange(50.0)  # a row whose best items sit together
    values, indices = topk_rows(scores, 20)
    ref_values, ref_indices = torch.topk(scores, 20, dim=1)
    torch.testing.assert_close(values, ref_values)
    assert torch.equal(indices, ref_indices)  # no ties in continuous random scores


def test_topk_rows_on_sparse_scores_gives_torch_topks_values():
    # Mostly zeros (an item-neighbour model's scores): the bound is 0 and every column ties at it
    # (a sort of all 30M candidates took minutes; now torch.topk takes them).
    scores = torch.zeros(300, 100_000)
    scores[:, :5] = torch.arange(5.0) + 1
    values, indices = topk_rows(scores, 20)
    torch.testing.assert_close(values, torch.topk(scores, 20, dim=1).values)
    assert (indices[:, :5] == torch.arange(4, -1, -1)).all()


def test_unseen_heldout_items_count_as_misses():
    """A held-out pair whose item never appears in training is in the denominators (the
    LightGCN/BARS protocol): user 0 hits its one rankable item of two, user 1 has only an
    unseen one and still counts, with Recall 0."""
    scores = torch.tensor([[3.0, 2.0, 1.0], [3.0, 2.0, 1.0]])
    heldout = UserItems.from_pairs(np.array([0]), np.array([0]), num_users=2)
    heldout.misses = np.array([1, 1])
    m = evaluate(lambda users: scores[torch.from_numpy(users)].clone(), heldout, None, 3, k=2)
    assert m["users"] == 2
    assert m["recall@2"] == pytest.approx((1 / 2 + 0) / 2)
    assert m["ndcg@2"] == pytest.approx((1.0 / (1 + 1 / np.log2(3)) + 0) / 2)
    assert m["hitrate@2"] == pytest.approx(0.5)


def test_the_norm_ordered_scan_ranks_exactly_as_scoring_every_item():
    """Items of skewed norms (as trained embeddings have), a few known items per user left out,
    users with fewer items left than k, and tied scores: the same top k as the full score matrix."""
    from melody_map.ranking import NormOrderedTopK, top_k
    from melody_map.types import UserItems

    rng = np.random.default_rng(0)
    n_users, n_items, d = 200, 5000, 8
    items = torch.from_numpy(rng.normal(size=(n_items, d)) * (rng.pareto(2.0, n_items) + 0.1)[:, None]).float()
    items[10:20] = items[3]  # ten items tied with item 3 for every user
    q = torch.from_numpy(rng.normal(size=(n_users, d))).float()
    user, item = rng.integers(0, n_users, 4000), rng.integers(0, n_items, 4000)
    user, item = np.append(user, [7] * (n_items - 5)), np.append(item, np.arange(5, n_items))  # user 7: 5 left
    exclude = UserItems.from_pairs(user, item, n_users)
    ranker = NormOrderedTopK(q, items, -0.2, chunk=256)
    got_items, got_scores = ranker(np.arange(n_users), 20, exclude, batch_size=64)
    want_items, want_scores = top_k(lambda u: q[torch.from_numpy(u)] @ items.T - 0.2, np.arange(n_users), 20, exclude)
    assert np.allclose(got_scores, want_scores, atol=1e-6)  # -inf pads user 7's list in both
    finite = np.isfinite(want_scores)
    tied = np.isin(want_items, [3, *range(10, 20)])
    assert np.array_equal(got_items[finite & ~tied], want_items[finite & ~tied])
    assert np.isfinite(got_scores[7]).sum() == 5 and set(got_items[7][:5]) == set(range(5))
    for u in (7, 42):  # one user at a time in small chunks, as a model's recommend() asks
        known = exclude.of(u)
        one_items, one_scores = ranker.rank(q[u][None], 20, np.zeros(len(known), np.int64), known, chunk=64)
        assert np.allclose(one_scores[0].numpy(), want_scores[u], atol=1e-6)
        keep = finite[u] & ~tied[u]
        assert np.array_equal(one_items[0].numpy()[keep], want_items[u][keep])
