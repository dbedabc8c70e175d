"""GCN+ChebyCF: the item-side GCN part finds what the filter cannot see (a planted artist signal),
its neighbourhood forward equals PyG's layers over the whole graph, and it saves and loads."""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import pyarrow as pa
import pytest
import scipy.sparse as sp
import torch
from conftest import community_rows, load, pairs_dataset, write_original

from melody_map.ease import EASE
from melody_map.evaluate import evaluate
from melody_map.filters import ChebyCF, zscores
from melody_map.graph import build_graph
from melody_map.bounded import BoundedTopK
from melody_map.recommender import Recommender
from melody_map.hybrid import GCNChebyCF, RowGCN, SideGraph
from melody_map import pipeline
from melody_map.types import TEST, TRAIN, VALID

ARTISTS, PRIVATE, PUBLIC = 20, 6, 4  # each artist's tracks: 6 two fans hold alone, then 4 anyone may hold


def fans_and_noise(seed: int = 0):
    """Fans and noise listeners over 20 artists of 10 tracks each (track t is by artist t // 10).

    Fan u (40 of them, two per artist) trains on three tracks of its artist that nobody else
    holds, validates on two of the artist's four public tracks and is tested on the other two.
    60 noise listeners hold eight public tracks each, drawn at random in training: every public
    track has training pairs, but no listener's tracks co-occur with a fan's. A filter of the
    user-track matrix has no path from a fan's tracks to the public ones; the artist edges have one.
    """
    rng = np.random.default_rng(seed)
    tracks = PRIVATE + PUBLIC
    users, items, parts = [], [], []
    for fan in range(2 * ARTISTS):
        artist, half = fan // 2, fan % 2
        own = artist * tracks + half * 3 + np.arange(3)
        public = artist * tracks + PRIVATE + rng.permutation(PUBLIC)
        users += [fan] * 7
        items += [*own, *public]
        parts += [TRAIN] * 3 + [VALID] * 2 + [TEST] * 2
    public_tracks = np.asarray([a * tracks + PRIVATE + p for a in range(ARTISTS) for p in range(PUBLIC)])
    for noise in range(60):
        users += [2 * ARTISTS + noise] * 8
        items += list(rng.choice(public_tracks, 8, replace=False))
        parts += [TRAIN] * 8
    data = pairs_dataset(users, items, parts, 2 * ARTISTS + 60, ARTISTS * tracks)
    catalogue = dataclasses.replace(
        data.catalogue, artist_names=pa.array([f"artist {a}" for a in range(ARTISTS)], pa.large_string()),
        item_artist=(np.arange(ARTISTS * tracks) // tracks).astype(np.int32))
    rows = dataclasses.replace(data.rows, catalogue=catalogue)
    return dataclasses.replace(data, rows=rows, graph=build_graph(rows, data.pairs))


def small_options(**overrides):
    return {"eta": 16, "epochs": 40, "steps_per_epoch": 8, "batch_users": 8, "lr": 0.05, "patience": 10,
            **overrides}


@pytest.fixture(scope="module")
def fans():
    data = fans_and_noise()
    return data, GCNChebyCF(**small_options()).fit(data)


def test_the_gcn_part_finds_a_planted_artist_signal_the_filter_cannot(fans):
    data, trained = fans
    alone = GCNChebyCF(**small_options(epochs=0)).fit(data)  # the untrained start: the filter alone
    recall = {name: pipeline.test_metrics(m, data, 2)[m.label]["recall@2"] for name, m in
              (("trained", trained), ("filter alone", alone))}
    assert recall["trained"] >= 0.8, recall  # the fan's artist's two other public tracks, out of 80
    assert recall["filter alone"] <= 0.3, recall
    assert trained.weight[1:].abs().sum() > 0 and not alone.weight[1:].any()


def test_trained_as_past_a_large_catalogue_it_finds_the_planted_signal_too(monkeypatch):
    # Past BOUND_ITEMS a step takes the filter's hard negatives from its bound, its values and the
    # GCN part's at the pairs alone, and standardises the GCN part by items drawn each step.
    from melody_map import hybrid

    monkeypatch.setattr(hybrid, "BOUND_ITEMS", 0)
    monkeypatch.setattr(hybrid, "STAT_ITEMS", 150)  # a sample of 150 of the 200 tracks
    monkeypatch.setattr(hybrid, "STEP_STAT_ITEMS", 100)
    data = fans_and_noise()
    trained = GCNChebyCF(**small_options()).fit(data)
    assert trained._alone is not None and trained.ease is None  # the large path ran, without EASE
    recall = pipeline.test_metrics(trained, data, 2)[trained.label]["recall@2"]
    assert recall >= 0.8, recall


def test_the_neighbourhood_forward_with_and_without_autograd_equals_the_layers_over_the_whole_graph(fans):
    data, trained = fans
    rows = data.matrix(TRAIN)[np.arange(0, 100, 9)]
    net = RowGCN(8)
    with torch.no_grad():
        for layer in (net.conv1, net.conv2):  # away from the initial weights, and both signs of ReLU
            layer.lin.weight.normal_()
            layer.bias.normal_()
    for graph in (trained.side, SideGraph.of(data, data.matrix(TRAIN))):
        whole = net.full(graph, rows)
        torch.testing.assert_close(net(graph, rows), whole, rtol=1e-5, atol=1e-5)  # with autograd: local groups
        with torch.no_grad():  # without: the sparse change
            torch.testing.assert_close(net(graph, rows), whole, rtol=1e-5, atol=1e-5)
            moved = net.change(graph, rows, net.empty_row(graph))
            assert 0 < moved.nnz < rows.shape[0] * graph.num_items  # stored near each row's tracks alone


def test_saved_and_loaded_it_scores_and_folds_in_alike(fans):
    data, trained = fans
    buffer = io.BytesIO()
    torch.save({"params": trained.params(), "state": trained.state()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    loaded = GCNChebyCF.from_state(saved["params"], saved["state"])
    users = np.arange(0, 100, 11)
    torch.testing.assert_close(loaded.scores(users), trained.scores(users))
    history = data.items(TRAIN).of(4)
    torch.testing.assert_close(loaded.fold_in([history])[0], trained.scores(np.array([4]))[0])
    parts, rest = loaded.contributions(history, np.array([0, 47, 99]))
    torch.testing.assert_close(parts.sum(1) + rest, loaded.fold_in([history])[0][[0, 47, 99]])


def test_with_ease_its_filter_part_is_chebycf_plus_ease_in_z_scores_and_it_saves_explains_and_refits(fans):
    data, _ = fans
    start = GCNChebyCF(**small_options(epochs=0, ease_lam=5.0, ease_weight=0.5)).fit(data)
    users = np.arange(0, 100, 7)
    cheby = ChebyCF(eta=16, **start.choice).fit(data)
    expected = zscores(zscores(cheby.scores(users)) + 0.5 * zscores(EASE(lam=5.0).fit(data).scores(users)))
    torch.testing.assert_close(start.scores(users), expected, rtol=1e-4, atol=1e-4)
    buffer = io.BytesIO()
    torch.save({"params": start.params(), "state": start.state()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    loaded = GCNChebyCF.from_state(saved["params"], saved["state"])
    torch.testing.assert_close(loaded.scores(users), start.scores(users))
    history, targets = data.items(TRAIN).of(4), np.array([0, 47, 99])
    parts, rest = loaded.contributions(history, targets)
    torch.testing.assert_close(parts.sum(1) + rest, loaded.fold_in([history])[0][targets])
    assert torch.allclose(rest, rest.mean()), rest  # the filter part is all in the parts: the rest is the shifts
    refitted = start.refit(data.with_valid_in_train())
    assert refitted.ease_choice == {"ease_lam": 5.0, "ease_weight": 0.5}
    assert refitted.ease.matrix.nnz == data.matrix(TRAIN, VALID).nnz


def test_past_the_exact_filter_it_saves_the_leading_eigenpairs_and_loads_without_the_gram_matrix(monkeypatch):
    from melody_map import filters

    monkeypatch.setattr(filters, "GRAM_USERS", 0)  # 100 listeners, 200 tracks: the leading-eigenpairs path
    monkeypatch.setattr(filters, "GRAM_TOP_RATIO", 2)
    data = fans_and_noise()
    trained = GCNChebyCF(**small_options(eta=12, epochs=4)).fit(data)
    assert trained.filter._top is not None
    buffer = io.BytesIO()
    torch.save({"params": trained.params(), "state": trained.state()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    assert saved["state"]["filter_leading"]["vectors"].shape == (100, 12)

    def no_gram(*args, **kwargs):
        raise AssertionError("the Gram matrix was built again")

    monkeypatch.setattr(filters, "gram_matrix", no_gram)
    loaded = GCNChebyCF.from_state(saved["params"], saved["state"])
    torch.testing.assert_close(loaded.scores(np.arange(100)), trained.scores(np.arange(100)))
    saved["state"]["filter_leading"]["vectors"] = saved["state"]["filter_leading"]["vectors"][:50]
    with pytest.raises(ValueError, match="do not fit"):
        GCNChebyCF.from_state(saved["params"], saved["state"])


def test_refit_keeps_the_trained_weights_and_uses_the_new_pairs(fans):
    data, trained = fans
    merged = data.with_valid_in_train()
    refit = trained.refit(merged)
    torch.testing.assert_close(refit.weight, trained.weight)
    assert refit.filter.matrix.nnz == merged.matrix(TRAIN).nnz > trained.filter.matrix.nnz
    heldout = data.items(TEST)
    assert evaluate(refit.scores, heldout, merged.items(TRAIN), data.num_items, 2)["recall@2"] >= 0.8


def test_a_plain_tables_side_graph_links_items_to_their_training_users_alone():
    data = pairs_dataset([0, 0, 1, 1, 2, 2], [0, 1, 1, 2, 0, 3], [TRAIN, TRAIN, TRAIN, VALID, TRAIN, TEST], 3, 4)
    graph = SideGraph.of(data, data.matrix(TRAIN))
    assert sp.isspmatrix_csr(graph.adjacency) and graph.adjacency.shape == (7, 7)  # 4 items, then 3 users
    links = {(int(i), int(u)) for i, u in zip(*graph.adjacency[:4, 4:].nonzero())}
    assert links == {(0, 0), (1, 0), (1, 1), (0, 2)}  # the training pairs: not (2, 1) nor (3, 2)
    assert graph.adjacency.nnz == 7 + 2 * 4  # the self-loops and both directions


def test_the_gcn_part_starts_as_the_row_carried_two_hops(fans, monkeypatch):
    from melody_map import hybrid

    monkeypatch.setattr(hybrid, "SMALL_START", 0.0)  # the other units silent
    data, _ = fans
    graph, rows = SideGraph.of(data, data.matrix(TRAIN)), data.matrix(TRAIN)[:5]
    x = sp.vstack([sp.csr_matrix(rows.T), sp.csr_matrix((graph.adjacency.shape[0] - graph.num_items, 5))])
    expected = (graph.adjacency @ (graph.adjacency @ x)).toarray()[: graph.num_items].T
    with torch.no_grad():
        torch.testing.assert_close(RowGCN(8)(graph, rows), torch.from_numpy(expected).float())


def test_a_playlists_side_graph_links_training_rows_alone(tmp_path):
    # A playlist links its tracks, except the rows behind a held-out pair: the listener's own
    # playlist would lead from its other tracks to the answer.
    rows = community_rows(seed=3)
    rows += [(u, a, t, "Starred copy") for (u, a, t, p) in rows[::3]]  # tracks in several playlists
    data = load(write_original(tmp_path / "c.csv", rows))
    graph = SideGraph.of(data, data.matrix(TRAIN))
    cat = data.catalogue
    first = data.num_items + cat.num_artists  # the playlists' nodes come after the items' artists
    assert graph.adjacency.shape[0] == first + cat.num_playlists
    links = graph.adjacency.tocoo()
    edges = set(zip(links.row.tolist(), links.col.tolist()))
    train = (data.pairs.part == TRAIN)[data.pairs.row_pair]
    assert (~train).sum() > 0
    for item, playlist, kept in zip(data.rows.item, data.rows.playlist, train):
        assert ((item, first + playlist) in edges) == kept
        assert ((first + playlist, item) in edges) == kept


def test_its_filter_and_side_graph_hold_the_training_pairs_alone(fans):
    # The trained part learns from validation pairs (its targets, as the contract lets VALID
    # steer a fit); what scores a listener, the filter and the side graph, holds TRAIN alone.
    data, trained = fans
    assert (trained.filter.matrix != data.matrix(TRAIN)).nnz == 0
    torch.testing.assert_close(trained.side.pop, torch.from_numpy(np.asarray(data.matrix(TRAIN).sum(0),
                                                                             np.float32).ravel()))


def test_train_gnn_builds_it_with_its_own_defaults():
    from melody_map.config import TrainConfig
    from melody_map.gcn import make_model

    built = make_model(TrainConfig(model="gcn+chebycf"))
    assert isinstance(built, GCNChebyCF) and built.params() == GCNChebyCF().params()


@pytest.mark.parametrize("head", [0, 16, 80])
def test_the_bounded_ranking_equals_ranking_every_track(fans, monkeypatch, head):
    # A catalogue taken as large: the z-scores' statistics over a sample of 64 tracks, the
    # `head` most played scored for everyone, the tail by the bound; the lists must be those
    # of scoring every track (the same scores, ties aside), trained or the filter alone.
    from melody_map import bounded, hybrid
    from melody_map.ranking import top_k

    data, model = fans
    monkeypatch.setattr(hybrid, "STAT_ITEMS", 64)
    monkeypatch.setattr(hybrid, "BOUND_ITEMS", 0)
    monkeypatch.setattr(bounded, "HEAD_ITEMS", head)
    model._bounded = None
    assert model._bounds() and model.weight[1:].abs().sum() > 0  # trained: the GCN part counts
    users, known = np.arange(data.num_users), data.items(TRAIN, VALID)
    every, every_alone = model.scores(users), hybrid.zscores_over(model.filter.scores(users), hybrid.stat_columns(200))
    expected = top_k(lambda u: every[u], users, 10, known)
    alone = top_k(lambda u: every_alone[u], users, 10, known)
    trained = BoundedTopK(model, head_items=head)
    cases = [(model.top_k(users, 10, known), expected, every),
             (trained(users, 10, known, batch_size=1), expected, every),
             (trained(users, 10, None), top_k(lambda u: every[u], users, 10, None), every),  # held tracks rank too
             (BoundedTopK(model, head_items=head, weights=torch.tensor([1.0, 0.0, 0.0]))(users, 10, known), alone,
              every_alone)]
    for (items, scores), (_, expected_scores), reference in cases:
        np.testing.assert_allclose(scores, expected_scores, rtol=1e-4, atol=1e-4)  # the k best scores
        # ... and each listed track's own score: a list of the k best, whichever of tied tracks it takes
        np.testing.assert_allclose(reference[users[:, None], items].numpy(), scores, rtol=1e-4, atol=1e-4)
        assert len(set(map(tuple, items))) > 1
    assert model._bounded is not None
    for user in (0, 45, 99):  # one listener's list (serving) by the same bound
        mine = known.of(user)
        items, scores = model.recommend(user, 10, mine)
        dense_items, dense_scores = Recommender.recommend(model, user, 10, mine)
        np.testing.assert_allclose(scores, dense_scores, rtol=1e-4, atol=1e-4)
    if head < 80:  # some lists reached into the tail past the head
        assert trained.gathered > 0, (trained.fallbacks, trained.gathered)
    model._bounded = None
