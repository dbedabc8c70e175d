"""Baselines: planted taste communities each model must find, closed forms checked by hand."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from conftest import needs_implicit, pairs_dataset

from bench.baselines import IALS, ItemKNN, LightGCNBaseline, tune
from melody_map.ease import EASE
from melody_map.evaluate import evaluate, evaluate_popularity
from melody_map.ranking import top_k
from melody_map.recommender import Recommender
from melody_map.types import TRAIN, VALID, UserItems

torch.set_num_threads(1)
K = 10


def planted(users_per_community=(20, 30, 60), items_per_community=30, train_share=0.6, seed=0):
    """Users in disjoint taste communities: each knows a random 60% of its community's items
    (train) and likes the other 40% (held out). The largest community's items are the most
    popular, so popularity serves only that community; a personal model serves all.

    Returns (Dataset with the held-out pairs as VALID, community of each user, of each item).
    """
    rng = np.random.default_rng(seed)
    n_train = int(round(train_share * items_per_community))
    tr_u, tr_i, ho_u, ho_i, user_comm = [], [], [], [], []
    u = 0
    for c, n_users in enumerate(users_per_community):
        for _ in range(n_users):
            items = c * items_per_community + rng.permutation(items_per_community)
            tr_u += [u] * n_train
            tr_i += list(items[:n_train])
            ho_u += [u] * (items_per_community - n_train)
            ho_i += list(items[n_train:])
            user_comm.append(c)
            u += 1
    num_items = len(users_per_community) * items_per_community
    part = np.repeat([TRAIN, VALID], [len(tr_u), len(ho_u)])
    data = pairs_dataset(tr_u + ho_u, tr_i + ho_i, part, u, num_items)
    item_comm = np.arange(num_items) // items_per_community
    return data, np.array(user_comm), item_comm


def csr(users, items, num_users: int, num_items: int):
    """The binary users x items matrix of some pairs."""
    return UserItems.from_pairs(np.asarray(users), np.asarray(items), num_users).matrix(num_items)


@pytest.fixture(scope="module")
def communities():
    return planted()


def assert_finds_communities(model: Recommender, planted) -> dict[str, float]:
    data, user_comm, item_comm = planted
    num_items, heldout, exclude = data.num_items, data.items(VALID), data.items(TRAIN)
    users = np.arange(data.num_users)
    items, _ = top_k(model.scores, users, K, exclude)
    precision = (item_comm[items] == user_comm[:, None]).mean(1)
    # The smallest community is where popularity fails: the model must serve it too.
    small = precision[user_comm == 0].mean()
    assert small >= 0.95, f"{model!r}: precision@{K} inside the smallest community {small:.3f}"
    assert precision.mean() >= 0.95, f"{model!r}: precision@{K} inside the community {precision.mean():.3f}"
    metrics = evaluate(model.scores, heldout, exclude, num_items, K)
    pop = evaluate_popularity(exclude.items, heldout, exclude, num_items, K)
    # Every user has 12 held-out items, all in-community: a perfect top 10 recalls 10/12.
    assert metrics[f"recall@{K}"] >= 0.8, f"{model!r}: recall@{K} {metrics[f'recall@{K}']:.3f}"
    assert pop[f"recall@{K}"] <= 0.6, "the fixture no longer separates personal models from popularity"
    assert metrics[f"recall@{K}"] > pop[f"recall@{K}"] + 0.25
    return metrics


# ----------------------------------------------------------------------------- ItemKNN


TOY = np.array([[1, 1, 0],  # users x items
                [1, 1, 1],
                [1, 0, 0]], dtype=np.float32)


def toy_matrix():
    u, i = np.nonzero(TOY)
    return csr(u, i, 3, 3)


@needs_implicit
def test_itemknn_cosine_by_hand():
    # Columns: item0 = (1,1,1), item1 = (1,1,0), item2 = (0,1,0); norms sqrt3, sqrt2, 1.
    # implicit keeps each item among its own neighbours (cosine 1 on the diagonal).
    c01, c02, c12 = 2 / np.sqrt(6), 1 / np.sqrt(3), 1 / np.sqrt(2)
    model = ItemKNN(neighbors=3).fit_matrix(toy_matrix())
    expected_sim = np.array([[1, c01, c02], [c01, 1, c12], [c02, c12, 1]])
    np.testing.assert_allclose(model.similarity.toarray(), expected_sim, rtol=1e-6)
    np.testing.assert_allclose(model.scores(np.arange(3)).numpy(), TOY @ expected_sim, rtol=1e-6)


@needs_implicit
def test_itemknn_keeps_each_items_nearest_neighbours():
    c01, c12 = 2 / np.sqrt(6), 1 / np.sqrt(2)
    # neighbors=2: each item keeps itself and its nearest other item: item0 -> item1,
    # item1 -> item0, item2 -> item1. User 2 (item 0 only) reaches item1 and nothing else.
    model = ItemKNN(neighbors=2).fit_matrix(toy_matrix())
    expected_sim = np.array([[1, c01, 0], [c01, 1, 0], [0, c12, 1]])
    np.testing.assert_allclose(model.similarity.toarray(), expected_sim, rtol=1e-6)
    np.testing.assert_allclose(model.scores(np.array([2])).numpy(), [[1, c01, 0]], rtol=1e-6)
    assert (ItemKNN(neighbors=0).fit_matrix(toy_matrix()).scores(np.arange(3)).numpy() == 0).all()


@needs_implicit
def test_itemknn_bm25_is_a_different_similarity():
    data = planted()[0]
    cosine = ItemKNN(neighbors=7).fit(data).similarity
    bm25 = ItemKNN(neighbors=7, similarity="bm25").fit(data).similarity
    assert (cosine.getnnz(1) <= 7).all() and (bm25.getnnz(1) <= 7).all()  # each item's 7 nearest
    assert not np.allclose(cosine.toarray(), bm25.toarray())
    with pytest.raises(ValueError, match="similarity must be one of"):
        ItemKNN(similarity="jaccard")


@needs_implicit
def test_itemknn_finds_communities(communities):
    assert_finds_communities(ItemKNN(neighbors=20).fit(communities[0]), communities)


# ----------------------------------------------------------------------------- EASE


def test_ease_matches_the_closed_form():
    rng = np.random.default_rng(3)
    x = (rng.random((8, 5)) < 0.5).astype(np.float64)
    u, i = np.nonzero(x)
    lam = 2.0
    p = np.linalg.inv(x.T @ x + lam * np.eye(5))
    b = np.eye(5) - p / np.diag(p)  # column j divided by P_jj
    np.fill_diagonal(b, 0.0)
    model = EASE(lam=lam).fit_matrix(csr(u, i, 8, 5))  # 8 users > 5 items: over items
    np.testing.assert_allclose(model.weights.numpy(), b, atol=1e-5)
    np.testing.assert_allclose(model.scores(np.arange(8)).numpy(), x @ b, atol=1e-5)


def test_ease_over_users_gives_the_scores_over_items():
    rng = np.random.default_rng(4)
    x = (rng.random((12, 30)) < 0.3).astype(np.float64)
    u, i = np.nonzero(x)
    over_items = EASE(lam=3.0, max_users=0).fit_matrix(csr(u, i, 12, 30))
    over_users = EASE(lam=3.0).fit_matrix(csr(u, i, 12, 30))  # 12 users < 30 items
    assert over_users.weights is None and over_users.inverse.shape == (12, 12) and over_items.inverse is None
    np.testing.assert_allclose(over_users.scores(np.arange(12)).numpy(), over_items.scores(np.arange(12)).numpy(),
                               atol=1e-4)


@pytest.mark.parametrize("max_users", [0, 16_384])  # over items, over users
def test_ease_folds_a_fitted_user_in_exactly_and_splits_the_score_over_their_items(max_users):
    rng = np.random.default_rng(5)
    x = (rng.random((12, 30)) < 0.3).astype(np.float64)
    u, i = np.nonzero(x)
    model = EASE(lam=3.0, max_users=max_users).fit_matrix(csr(u, i, 12, 30))
    history = np.flatnonzero(x[4])
    torch.testing.assert_close(model.fold_in([history])[0], model.scores(np.array([4]))[0])
    parts, rest = model.contributions(history, np.arange(30))
    assert parts.shape == (30, len(history))
    torch.testing.assert_close(parts.sum(1) + rest, model.scores(np.array([4]))[0], rtol=1e-4, atol=1e-5)


def test_ease_refuses_too_many_items_and_users():
    wide = csr([0, 1], [20_000, 0], 2, 20_001)
    with pytest.raises(ValueError, match="max_items=20000.*max_users=1"):
        EASE(max_users=1).fit_matrix(wide)
    with pytest.raises(ValueError, match="max_items=4"):
        EASE(max_items=4).fit_matrix(csr([0, 1, 2, 3, 4, 5], [4, 0, 1, 2, 3, 4], 6, 5))  # 6 users > 5 items


def test_ease_finds_communities(communities):
    assert_finds_communities(EASE(lam=10.0).fit(communities[0]), communities)


# ----------------------------------------------------------------------------- iALS


@needs_implicit
def test_ials_finds_communities(communities):
    model = IALS(factors=8, regularization=1.0, iterations=10)
    assert_finds_communities(model.fit(communities[0]), communities)
    assert model.scores(np.array([0, 1])).dtype == torch.float32


def test_ials_without_implicit_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "implicit.cpu.als", None)  # makes the import fail
    with pytest.raises(ImportError, match=r"iALS needs the 'implicit' package: pip install implicit"):
        IALS().fit_matrix(toy_matrix())


# ----------------------------------------------------------------------------- LightGCN


def test_lightgcn_finds_communities_and_stops_early(communities):
    model = LightGCNBaseline(dim=32, epochs=60, lr=0.02, batch_size=256, eval_every=5, patience=2)
    model.fit(communities[0])  # early stopping on the VALID pairs
    assert_finds_communities(model, communities)
    history, best = model.report.history, model.report.best_epoch
    checked = [r for r in history if f"recall@{model.k}" in r]
    assert checked and best == max(checked, key=lambda r: r[f"recall@{model.k}"])["epoch"]
    assert history[-1]["loss"] < history[0]["loss"]
    assert model.params()["epochs"] == best  # what a refit trains for


def test_lightgcn_csr_adjacency_equals_pygs_edge_index_path_and_is_deterministic(communities):
    train = communities[0].matrix(TRAIN)
    users = np.arange(0, train.shape[0], 7)
    runs = [LightGCNBaseline(dim=16, epochs=2, batch_size=512, adjacency=a).fit_matrix(train).scores(users)
            for a in ("csr", "edge_index", "csr")]
    torch.testing.assert_close(runs[0], runs[1], rtol=1e-4, atol=1e-5)  # same normalised propagation
    assert torch.equal(runs[0], runs[2])
    assert "dim=16" in repr(LightGCNBaseline(dim=16))


# ----------------------------------------------------------------------------- tune


class Oracle(Recommender):
    """Scores the VALID items 1 when ``good``, else noise: a model of known quality."""

    label = "oracle"

    def __init__(self, good: bool, seed: int = 0):
        self.good, self.seed = good, seed

    def params(self):
        return {"good": self.good, "seed": self.seed}

    def fit(self, data, *, log=None, progress=False):
        self.heldout, self.num_items = data.items(VALID), data.num_items
        return self

    def scores(self, users):
        if not self.good:
            return torch.rand(len(users), self.num_items, generator=torch.Generator().manual_seed(self.seed))
        out = torch.zeros(len(users), self.num_items)
        rows, cols = self.heldout.batch(users)
        out[torch.from_numpy(rows), torch.from_numpy(cols)] = 1.0
        return out


@needs_implicit
def test_tune_picks_the_best_validation_recall(communities):
    data = communities[0]
    best, table = tune(Oracle, {"good": [False, True], "seed": [0, 1]}, data, k=K)
    assert best.params() == {"good": True, "seed": 0}  # ties go to the first tried
    assert [row["good"] for row in table] == [False, False, True, True]
    assert all(row[f"recall@{K}"] > 0.8 for row in table if row["good"])
    assert all(row[f"recall@{K}"] < 0.5 for row in table if not row["good"])
    # A real model: no neighbours at all is obviously worse than 20.
    best, table = tune(ItemKNN, {"neighbors": [0, 20]}, data, k=K)
    assert best.params()["neighbors"] == 20
    assert table[1][f"recall@{K}"] > table[0][f"recall@{K}"] + 0.3


def test_repr_shows_hyper_parameters():
    assert repr(ItemKNN(neighbors=5, similarity="bm25")) == "ItemKNN(neighbors=5, similarity='bm25')"
    assert repr(EASE(lam=10.0)) == "EASE(lam=10.0, max_items=20000, max_users=16384)"
    assert "factors=8" in repr(IALS(factors=8)) and "alpha=1.0" in repr(IALS(factors=8))
