"""Baselines: planted taste communities each model must find, closed forms checked by hand."""

from __future__ import annotations

import sys

import conftest  # noqa: F401  (puts the repo on sys.path)
import numpy as np
import pytest
import torch

from melody_map.baselines import (
    EASE,
    IALS,
    ItemKNN,
    LightGCNBaseline,
    Recommender,
    interaction_matrix,
    matrix_of,
    tune,
    user_items_of,
)
from melody_map.evaluate import UserItems, evaluate, evaluate_popularity, top_k

torch.set_num_threads(1)
K = 10


def planted(users_per_community=(20, 30, 60), items_per_community=30, train_share=0.6, seed=0):
    """Users in disjoint taste communities: each knows a random 60% of its community's items
    (train) and likes the other 40% (held out). The largest community's items are the most
    popular, so popularity serves only that community; a personal model serves all.

    Returns (train matrix, held-out UserItems, community of each user, community of each item).
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
    train = interaction_matrix(np.array(tr_u), np.array(tr_i), None, u, num_items)
    heldout = UserItems.from_pairs(np.array(ho_u), np.array(ho_i), u)
    item_comm = np.arange(num_items) // items_per_community
    return train, heldout, np.array(user_comm), item_comm


@pytest.fixture(scope="module")
def communities():
    return planted()


def assert_finds_communities(model: Recommender, data) -> dict[str, float]:
    train, heldout, user_comm, item_comm = data
    num_items = train.shape[1]
    exclude = user_items_of(train)
    users = np.arange(train.shape[0])
    items, _ = top_k(model.score_fn(), users, K, exclude)
    precision = (item_comm[items] == user_comm[:, None]).mean(1)
    # The smallest community is where popularity fails: the model must serve it too.
    small = precision[user_comm == 0].mean()
    assert small >= 0.95, f"{model!r}: precision@{K} inside the smallest community {small:.3f}"
    assert precision.mean() >= 0.95, f"{model!r}: precision@{K} inside the community {precision.mean():.3f}"
    metrics = evaluate(model.score_fn(), heldout, exclude, num_items, K)
    pop = evaluate_popularity(train.indices, heldout, exclude, num_items, K)
    # Every user has 12 held-out items, all in-community: a perfect top 10 recalls 10/12.
    assert metrics[f"recall@{K}"] >= 0.8, f"{model!r}: recall@{K} {metrics[f'recall@{K}']:.3f}"
    assert pop[f"recall@{K}"] <= 0.6, "the fixture no longer separates personal models from popularity"
    assert metrics[f"recall@{K}"] > pop[f"recall@{K}"] + 0.25
    return metrics


# ----------------------------------------------------------------------------- helpers


def test_interaction_matrix_and_user_items_round_trip():
    m = interaction_matrix(np.array([1, 0, 1, 1]), np.array([2, 1, 0, 2]), None, 3, 4)
    assert m.shape == (3, 4) and m.dtype == np.float32
    np.testing.assert_array_equal(m.toarray(), [[0, 1, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]])  # repeat -> 1
    weighted = interaction_matrix(np.array([1, 1]), np.array([2, 2]), np.array([2.0, 3.0]), 2, 3)
    assert weighted[1, 2] == 5.0  # weights of a repeated pair add up
    ui = user_items_of(m)
    np.testing.assert_array_equal(ui.indptr, [0, 1, 3, 3])
    np.testing.assert_array_equal(ui.items, [1, 0, 2])
    np.testing.assert_array_equal(matrix_of(ui, 4).toarray(), m.toarray())


# ----------------------------------------------------------------------------- ItemKNN


TOY = np.array([[1, 1, 0],  # users x items
                [1, 1, 1],
                [1, 0, 0]], dtype=np.float32)


def toy_matrix():
    u, i = np.nonzero(TOY)
    return interaction_matrix(u, i, None, 3, 3)


def test_itemknn_cosine_by_hand():
    # Columns: item0 = (1,1,1), item1 = (1,1,0), item2 = (0,1,0); norms sqrt3, sqrt2, 1.
    c01, c02, c12 = 2 / np.sqrt(6), 1 / np.sqrt(3), 1 / np.sqrt(2)
    model = ItemKNN(neighbors=2).fit(toy_matrix())
    expected_sim = np.array([[0, c01, c02], [c01, 0, c12], [c02, c12, 0]])
    np.testing.assert_allclose(model.similarity.toarray(), expected_sim, rtol=1e-6)
    np.testing.assert_allclose(model.scores(np.arange(3)).numpy(), TOY @ expected_sim, rtol=1e-6)


def test_itemknn_keeps_each_items_nearest_neighbours_and_shrinks():
    c01, c12 = 2 / np.sqrt(6), 1 / np.sqrt(2)
    # neighbors=1: item0's nearest is item1, item1's is item0, item2's is item1, so user 0
    # (items 0, 1) scores item2 by sim(1, 2) alone.
    scores = ItemKNN(neighbors=1).fit(toy_matrix()).scores(np.array([0, 2])).numpy()
    np.testing.assert_allclose(scores, [[c01, c01, c12], [0, c01, 0]], rtol=1e-6)
    shrunk = ItemKNN(neighbors=2, shrink=1.0).fit(toy_matrix()).similarity.toarray()
    assert shrunk[0, 1] == pytest.approx(2 / (np.sqrt(6) + 1), rel=1e-6)
    assert shrunk[1, 2] == pytest.approx(1 / (np.sqrt(2) + 1), rel=1e-6)


def test_itemknn_blocks_give_the_same_similarity():
    train = planted()[0]
    whole = ItemKNN(neighbors=7).fit(train).similarity.toarray()
    blocked = ItemKNN(neighbors=7, max_block_floats=5 * train.shape[1]).fit(train).similarity.toarray()
    np.testing.assert_allclose(blocked, whole, rtol=1e-6)
    assert ((whole > 0).sum(0) <= 7).all()  # each item (column) keeps at most 7 neighbours


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
    model = EASE(lam=lam).fit(interaction_matrix(u, i, None, 8, 5))
    np.testing.assert_allclose(model.weights.numpy(), b, atol=1e-5)
    np.testing.assert_allclose(model.scores(np.arange(8)).numpy(), x @ b, atol=1e-5)


def test_ease_refuses_too_many_items():
    wide = interaction_matrix(np.array([0]), np.array([20_000]), None, 1, 20_001)
    with pytest.raises(ValueError, match="max_items=20000"):
        EASE().fit(wide)
    with pytest.raises(ValueError, match="max_items=4"):
        EASE(max_items=4).fit(interaction_matrix(np.array([0]), np.array([4]), None, 2, 5))


def test_ease_finds_communities(communities):
    assert_finds_communities(EASE(lam=10.0).fit(communities[0]), communities)


# ----------------------------------------------------------------------------- iALS


def test_ials_finds_communities(communities):
    pytest.importorskip("implicit")
    model = IALS(factors=8, regularization=1.0, iterations=10)
    assert_finds_communities(model.fit(communities[0]), communities)
    assert model.scores(np.array([0, 1])).dtype == torch.float32


def test_ials_without_implicit_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "implicit.cpu.als", None)  # makes the import fail
    with pytest.raises(ImportError, match=r"iALS needs the 'implicit' package: pip install implicit"):
        IALS().fit(toy_matrix())


# ----------------------------------------------------------------------------- LightGCN


def test_lightgcn_finds_communities_and_stops_early(communities):
    train, heldout = communities[0], communities[1]
    model = LightGCNBaseline(dim=32, epochs=60, lr=0.02, batch_size=256, eval_every=5, patience=2)
    model.fit(train, valid=heldout)
    assert_finds_communities(model, communities)
    checked = [r for r in model.history if f"recall@{model.k}" in r]
    assert checked and model.best_epoch == max(checked, key=lambda r: r[f"recall@{model.k}"])["epoch"]
    assert model.history[-1]["loss"] < model.history[0]["loss"]


def test_lightgcn_csr_adjacency_equals_pygs_edge_index_path_and_is_deterministic(communities):
    train = communities[0]
    users = np.arange(0, train.shape[0], 7)
    runs = [LightGCNBaseline(dim=16, epochs=2, batch_size=512, adjacency=a).fit(train).scores(users)
            for a in ("csr", "edge_index", "csr")]
    torch.testing.assert_close(runs[0], runs[1], rtol=1e-4, atol=1e-5)  # same normalised propagation
    assert torch.equal(runs[0], runs[2])
    assert "dim=16" in repr(LightGCNBaseline(dim=16))


# ----------------------------------------------------------------------------- tune


class Oracle(Recommender):
    """Scores the held-out items 1 when ``good``, else noise: a model of known quality."""

    def __init__(self, heldout: UserItems, num_items: int, good: bool, seed: int = 0):
        self.heldout, self.num_items, self.good, self.seed = heldout, num_items, good, seed

    def _params(self):
        return {"good": self.good, "seed": self.seed}

    def fit(self, matrix):
        return self

    def scores(self, users):
        if not self.good:
            return torch.rand(len(users), self.num_items, generator=torch.Generator().manual_seed(self.seed))
        out = torch.zeros(len(users), self.num_items)
        rows, cols = self.heldout.batch(users)
        out[torch.from_numpy(rows), torch.from_numpy(cols)] = 1.0
        return out


def test_tune_picks_the_best_validation_recall(communities):
    train, heldout = communities[0], communities[1]
    num_items = train.shape[1]
    best, table = tune(lambda good, seed: Oracle(heldout, num_items, good, seed),
                       {"good": [False, True], "seed": [0, 1]}, train, heldout, k=K)
    assert best == {"good": True, "seed": 0}  # ties go to the first tried
    assert len(table) == 4 and list(table["good"]) == [False, False, True, True]
    assert (table.loc[table["good"], f"recall@{K}"] > 0.8).all()
    assert (table.loc[~table["good"], f"recall@{K}"] < 0.5).all()
    # A real model: no neighbours at all is obviously worse than 20.
    best, table = tune(ItemKNN, {"neighbors": [0, 20]}, train, heldout, k=K)
    assert best == {"neighbors": 20}
    assert table[f"recall@{K}"].iloc[1] > table[f"recall@{K}"].iloc[0] + 0.3


def test_repr_shows_hyper_parameters():
    assert repr(ItemKNN(neighbors=5, shrink=2.0)) == "ItemKNN(neighbors=5, shrink=2.0)"
    assert repr(EASE(lam=10.0)) == "EASE(lam=10.0, max_items=20000)"
    assert "factors=8" in repr(IALS(factors=8)) and "alpha=1.0" in repr(IALS(factors=8))
