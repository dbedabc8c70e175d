"""The GCN learns: planted communities, falling loss, determinism, scorer consistency."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import ROOT, community_rows, load, pairs_dataset, write_original

from melody_map.api import get_recommendations, load_model
from melody_map.config import TrainConfig
from melody_map.evaluate import popularity_scores
from melody_map.model import GCNNetwork
from melody_map.pipeline import run
from melody_map.ranking import top_k
from melody_map.types import TRAIN


def quiet_run(**overrides):
    return run(TrainConfig(**{"model": "gcn", **overrides}), log=lambda line: None, progress=False)


@pytest.mark.parametrize("variant", [{}, {"fixed_features": False, "init": "normal", "combine": "last"},
                                     {"conv": "gat", "fixed_features": False, "init": "normal", "combine": "last"}],
                         ids=["default: frozen spectral vectors", "trainable random vectors, scorer on the last layer",
                              "GATConv layers, trainable random vectors"])
def test_recommends_inside_the_users_community_where_popularity_cannot(tmp_path, variant):
    # Community 0 (30 users) and community 1 (60 users) share no track, so community 1's
    # tracks are the most popular overall: popularity recommends them to everyone. The playlist
    # names ("Mix 0", "Mix 1") would tell the communities apart through their word nodes, so
    # they are left out: the test is of what the tracks and training find.
    path = write_original(tmp_path / "c.csv", community_rows())
    quiet_run(data=str(path), output=str(tmp_path / "m.pth"), plot="", epochs=60, words=False, **variant)
    model, data = load_model(tmp_path / "m.pth")
    assert ("conv='gat'" in repr(model.network())) == (variant.get("conv") == "gat")  # the layers it was fitted with
    small = [u for u in range(data.num_users) if data.user_ids[u].as_py().startswith("00")]
    assert len(small) == 30

    def precision(recs_artists: list[str]) -> float:
        return np.mean([a.startswith("Artist 0-") for a in recs_artists])

    gcn = np.mean([precision(get_recommendations(model, data, u, top_k=10)["artist"].tolist()) for u in small])
    pop_items, _ = top_k(popularity_scores(data.known.items, data.num_items), np.array(small), 10, data.known)
    artists = data.catalogue.artist_names.to_pylist()
    pop = np.mean([precision([artists[data.catalogue.item_artist[t]] for t in row]) for row in pop_items])
    assert gcn >= 0.95, f"GCN precision inside the user's community {gcn:.3f}, expected >= 0.95"
    assert pop <= 0.05, f"popularity precision {pop:.3f}: the fixture no longer separates the models"
    if variant:  # a random start: the same network untrained (epoch 0) must not find the community
        quiet_run(data=str(path), output=str(tmp_path / "u.pth"), plot="", epochs=0, words=False, **variant)
        model, data = load_model(tmp_path / "u.pth")
        untrained = np.mean([precision(get_recommendations(model, data, u, top_k=10)["artist"].tolist())
                             for u in small])
        assert untrained <= 0.8, f"the untrained random network already scores {untrained:.3f}"


@pytest.mark.parametrize("item_sample", [30, 16384], ids=["sampled items", "every item"])
def test_all_items_term_is_a_negative_signal_the_network_learns_from(tmp_path, item_sample):
    # From a random start and with no sampled non-edges, MSE on the observed pairs alone never
    # tells the communities apart (precision 0 here); iALS's all-items term (--all-items),
    # over 30 sampled items of 80 per step or over all of them, is what teaches it.
    path = write_original(tmp_path / "c.csv", community_rows())

    def precision(**options) -> float:
        quiet_run(data=str(path), output=str(tmp_path / "m.pth"), plot="", epochs=60, init="normal", negatives=0,
                  **options)
        model, data = load_model(tmp_path / "m.pth")
        small = [u for u in range(data.num_users) if data.user_ids[u].as_py().startswith("00")]
        return np.mean([np.mean([a.startswith("Artist 0-") for a in get_recommendations(model, data, u, top_k=10)
                                 ["artist"]]) for u in small])

    assert precision() <= 0.5
    assert precision(all_items=0.1, item_sample=item_sample) >= 0.95


def test_disjoint_row_block_leaves_out_exactly_the_dropped_edges(tmp_path):
    pairs, graph = _community_graph(tmp_path)
    dense = graph.adj.to_dense()
    train = np.flatnonzero(pairs.part == TRAIN)[[0, 40]]  # two training pairs: edges of the graph
    users, items = pairs.user[train], pairs.item[train] + graph.item_offset
    rows = np.unique(np.concatenate([users, items, [graph.item_offset + 7]]))
    keys = np.unique(np.concatenate([users * graph.num_nodes + items, items * graph.num_nodes + users]))
    block, cols = graph.row_block(rows, keys)
    expected = dense[torch.from_numpy(rows)][:, torch.from_numpy(cols)].clone()
    for u, t in zip(users, items):
        for a, b in ((u, t), (t, u)):
            if b in cols:
                expected[int(np.flatnonzero(rows == a)[0]), int(np.flatnonzero(cols == b)[0])] = 0.0
    torch.testing.assert_close(block.to_dense(), expected)
    assert not torch.equal(expected, dense[torch.from_numpy(rows)][:, torch.from_numpy(cols)])  # something was dropped
    torch.testing.assert_close(block.transposed.to_dense(), expected.T)


def test_same_seed_gives_identical_metrics_and_weights(tmp_path):
    path = write_original(tmp_path / "c.csv", community_rows())
    a = quiet_run(data=str(path), output=str(tmp_path / "a.pth"), plot="", epochs=15)
    b = quiet_run(data=str(path), output=str(tmp_path / "b.pth"), plot="", epochs=15)
    assert a.test == b.test
    assert [r["loss"] for r in a.train.history] == [r["loss"] for r in b.train.history]
    wa, wb = (torch.load(tmp_path / f, weights_only=True)["model"]["state"]["network"] for f in ("a.pth", "b.pth"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_loss_falls_on_the_shipped_sample(tmp_path):
    # 20 epochs of ~18 steps: past the plateau where the model only knows popularity. (The
    # first epoch's mean already counts some learning: the concat scorer picks up the start's
    # dot product within a few steps, so the fall from it is ~1.7x, not the old card's ~2x.)
    summary = quiet_run(data=str(ROOT / "spotify_dataset.csv"), output=str(tmp_path / "s.pth"), plot="",
                        epochs=20, eval_every=20, patience=100)
    losses = [r["loss"] for r in summary.train.history if r["loss"] is not None]
    assert losses[-1] < losses[0] / 1.5, f"MSE went from {losses[0]:.5f} to {losses[-1]:.5f}; expected a 1.5x fall"
    # Validation saw the untrained start (epoch 0) first, and kept whichever was better.
    start, last = summary.train.history[0], summary.train.history[-1]
    assert (start["epoch"], last["epoch"]) == (0, 20) and "valid_recall@20" in start
    assert summary.train.best_valid["recall@20"] == max(start["valid_recall@20"], last["valid_recall@20"])


def test_training_is_what_lifts_a_random_start_on_the_shipped_sample(tmp_path):
    """A learning claim that fails without learning: from random frozen node vectors the
    untrained network ranks at chance, and 20 epochs of training lift it over 10x, to about
    popularity's level (all that a random start's network can learn on this sample)."""
    common = dict(data=str(ROOT / "spotify_dataset.csv"), output="", plot="", init="normal", eval_every=20,
                  patience=100)
    untrained = quiet_run(epochs=0, **common).test
    trained = quiet_run(epochs=20, **common).test
    assert trained["GCN"]["recall@20"] > 10 * untrained["GCN"]["recall@20"], (untrained, trained)
    assert trained["GCN"]["recall@20"] > 0.8 * trained["popularity"]["recall@20"], trained
    assert untrained["GCN"]["recall@20"] < 0.2 * untrained["popularity"]["recall@20"], untrained


def test_score_all_equals_pairwise_score():
    torch.manual_seed(0)
    model = GCNNetwork(10, dim=8)  # concat: the scorer reads 16 numbers
    z = torch.randn(10, 16)
    users, tracks = z[:3], z[3:]
    full = model.scorer.score_all(users, tracks)
    pairwise = model.score(users[:, None, :].expand(3, 7, 16), tracks[None].expand(3, 7, 16))
    torch.testing.assert_close(full, pairwise)


@pytest.mark.parametrize("fixed_features", [True, False], ids=["frozen node vectors", "trainable node vectors"])
def test_training_leaves_frozen_node_vectors_unchanged_and_moves_trainable_ones(tmp_path, fixed_features):
    """Real training steps through the product's own path (build_network, then train): the
    layers' weights move and a trained epoch is kept in both cases; the node vectors stay
    bit for bit as they started only when they are frozen, so a bug that trained the frozen
    vectors fails the first case and a training loop that took no steps fails the second."""
    from melody_map.train import build_network, train

    data = load(write_original(tmp_path / "c.csv", community_rows()))
    assert (data.pairs.part == TRAIN).sum() > 0
    cfg = TrainConfig(dim=16, epochs=5, eval_every=1, patience=100, fixed_features=fixed_features)
    model = build_network(cfg, data.graph, data.pairs)
    nodes_before = model.embedding.weight.detach().clone()
    layers_before = {name: p.detach().clone() for name, p in model.named_parameters() if "embedding" not in name}
    report = train(model, data.graph, data.pairs, cfg, torch.device("cpu"), progress=False)
    assert report.best_epoch > 0, report.history  # the model holds trained weights, not the untrained start
    moved = [name for name, p in model.named_parameters() if name in layers_before
             and not torch.equal(p.detach(), layers_before[name])]
    assert moved, "no layer's weights changed: training took no steps"
    change = (model.embedding.weight.detach() - nodes_before).abs().max().item()
    if fixed_features:
        assert change == 0, f"the frozen node vectors changed by up to {change:.3g} in training"
    else:
        assert change > 1e-4, f"trainable node vectors changed by only {change:.3g} in training"


def test_symmetric_gcnconv_matches_pyg_gcnconv_forward_and_gradients():
    from torch_geometric.nn import GCNConv

    from melody_map.graph import normalized_adjacency
    from melody_map.model import SymmetricGCNConv

    rng = np.random.default_rng(0)
    src, dst = rng.integers(0, 30, 80), rng.integers(0, 30, 80)
    keep = src < dst  # one direction per undirected edge, no self-loops
    pairs = np.unique(np.stack([src[keep], dst[keep]], 1), axis=0)
    adj = normalized_adjacency(pairs[:, 0], pairs[:, 1], rng.random(len(pairs)).astype(np.float32), 30)
    torch.manual_seed(0)
    ours, ref = SymmetricGCNConv(8, 4, normalize=False), GCNConv(8, 4, normalize=False)
    ref.load_state_dict(ours.state_dict())
    x1 = torch.randn(30, 8, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_()
    out1, out2 = ours(x1, adj), ref(x2, adj)
    torch.testing.assert_close(out1, out2)
    out1.square().sum().backward()
    out2.square().sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad)
    torch.testing.assert_close(ours.lin.weight.grad, ref.lin.weight.grad)


def _community_graph(tmp_path):
    data = load(write_original(tmp_path / "c.csv", community_rows()))
    return data.pairs, data.graph


@pytest.mark.parametrize("combine", ["concat", "last"])
def test_row_block_step_equals_the_whole_graph_forward_and_gradients(tmp_path, combine):
    # A training step with frozen vectors embeds only its batch's nodes from a block of the
    # adjacency's rows and the cached first product; it must be the whole-graph model there.
    _, graph = _community_graph(tmp_path)
    torch.manual_seed(0)
    model = GCNNetwork(graph.num_nodes, 8, dropout=0.0, fixed_features=True, combine=combine)
    rows = np.sort(np.random.default_rng(0).choice(graph.num_nodes, 25, replace=False))
    block, cols = graph.row_block(rows)
    torch.testing.assert_close(block.to_dense(), graph.adj.to_dense()[rows][:, cols])
    cached = model.first_layer_input(graph.adj)
    torch.testing.assert_close(model(graph.adj, cached), model(graph.adj))

    part = model.forward_rows(cached[torch.from_numpy(cols)], block, torch.from_numpy(rows))
    assert part.shape == (len(rows), 16 if combine == "concat" else 8)
    part.square().sum().backward()
    layers = [p for name, p in model.named_parameters() if name.startswith("conv")]
    grads = [p.grad.clone() for p in layers]
    model.zero_grad()
    whole = model(graph.adj)[torch.from_numpy(rows)]
    whole.square().sum().backward()
    torch.testing.assert_close(part, whole)
    for g, p in zip(grads, layers):
        torch.testing.assert_close(g, p.grad)


def test_spectral_vectors_alone_rank_inside_the_community(tmp_path):
    from melody_map.spectral import spectral_embedding

    pairs, graph = _community_graph(tmp_path)
    train = pairs.part == TRAIN
    x = spectral_embedding(graph, pairs.user[train], pairs.item[train], pairs.weight[train], 4, seed=0)
    assert x.shape == (graph.num_nodes, 4)
    assert abs(float(x.pow(2).mean().sqrt()) - 0.1) < 1e-4
    users, tracks = x[: graph.num_users], x[graph.item_offset: graph.item_offset + graph.num_items]
    # Which community each user and track belongs to, from the tracks' planted artist names.
    cat = load(tmp_path / "c.csv").catalogue
    track_community = np.array([a.startswith("Artist 1-") for a in
                                np.asarray(cat.artist_names)[cat.item_artist]])
    user_community = np.zeros(graph.num_users, bool)
    user_community[pairs.user] = track_community[pairs.item]
    top = torch.topk(users @ tracks.T, 10, dim=1).indices.numpy()
    assert (track_community[top] == user_community[:, None]).mean() == 1.0


def test_spectral_scores_give_popular_tracks_their_weight():
    # One community: user u holds track t unless (u + t) % 5 == 0 and t >= 4, so the tracks'
    # degrees differ (tracks 0-3 are held by everyone). Its rank-1 normalised matrix has
    # V ∝ D_t^1/2, so the leading score U S V^T of a track grows with sqrt(degree); with the
    # D_t^1/2 put back on the track side (GF-CF's ideal filter) it is proportional to degree,
    # like popularity, for every user.
    from melody_map.spectral import spectral_embedding

    users, tracks = np.meshgrid(np.arange(40), np.arange(12), indexing="ij")
    users, tracks = users.ravel(), tracks.ravel()
    held = ((users + tracks) % 5 != 0) | (tracks < 4)
    users, tracks = users[held], tracks[held]
    data = pairs_dataset(users, tracks)
    graph = data.graph
    x = spectral_embedding(graph, users, tracks, data.pairs.weight, 1, seed=0)
    scores = (x[:40] @ x[graph.item_offset: graph.item_offset + 12].T).numpy()
    degree = np.bincount(tracks, minlength=12).astype(float)
    assert len(set(degree)) > 1
    ratio = scores / degree
    np.testing.assert_allclose(ratio, ratio[:, :1].repeat(12, axis=1), rtol=1e-4)


def test_untrained_concat_network_ranks_exactly_as_its_start(tmp_path):
    # With combine="concat" the embeddings are [node vector, second layer]; a fresh scorer
    # weighs only the first half, so the untrained network ranks by the start's x_u . x_t.
    _, graph = _community_graph(tmp_path)
    torch.manual_seed(0)
    model = GCNNetwork(graph.num_nodes, 8, dropout=0.0, fixed_features=True, combine="concat").eval()
    assert model.scorer.weight[0, :8].eq(1).all() and model.scorer.weight[0, 8:].eq(0).all()
    with torch.no_grad():
        z = model(graph.adj)
    x = model.embedding.weight.detach()
    users, tracks = slice(0, graph.num_users), slice(graph.item_offset, graph.item_offset + graph.num_items)
    torch.testing.assert_close(z[:, :8], x)
    torch.testing.assert_close(model.scorer.score_all(z[users], z[tracks]) - model.scorer.bias,
                               x[users] @ x[tracks].T)


def test_degree_start_holds_each_nodes_standardised_log_degree_in_its_last_column(tmp_path):
    from melody_map.train import build_network

    pairs, graph = _community_graph(tmp_path)
    x = build_network(TrainConfig(init="spectral+degree", dim=8), graph, pairs).embedding.weight.detach()
    spectral = build_network(TrainConfig(dim=8), graph, pairs).embedding.weight.detach()
    log_degree = torch.log1p(torch.from_numpy(graph.degrees()).float())
    assert torch.corrcoef(torch.stack([x[:, -1], log_degree]))[0, 1] > 0.9999
    torch.testing.assert_close(x[:, :-1], spectral[:, :-1])


def test_tag_start_ranks_a_users_unheard_items_by_their_tags():
    """Items 10-19 and 30-39 have no listener; only their tags say that the first ten are
    genre a (the genre of users 0-9) and the last ten genre b (users 10-19)."""
    import scipy.sparse as sp

    from melody_map.train import build_network

    user = np.repeat(np.arange(20), 10)
    item = np.r_[np.tile(np.arange(10), 10), np.tile(np.arange(20, 30), 10)]
    data = pairs_dataset(user, item, num_items=40)
    genre = np.arange(40) // 20  # the tag of each item: 0 (genre a) or 1 (genre b)
    tags = sp.csr_matrix((np.ones(40), (np.arange(40), genre)), shape=(40, 2))
    graph = data.graph
    heard, cold_a, cold_b = np.r_[0:10, 20:30], np.arange(10, 20), np.arange(30, 40)

    def start_scores(init):
        net = build_network(TrainConfig(init=init, dim=4), graph, data.pairs, tags)
        x = net.embedding.weight.detach()
        return (x[:20] @ x[graph.item_offset: graph.item_offset + 40].T).numpy()

    spectral, tagged = start_scores("spectral"), start_scores("spectral+tags")
    assert np.allclose(spectral[:, np.r_[cold_a, cold_b]], 0)  # nothing to go on without tags
    assert (tagged[:10, cold_a].min(axis=1) > tagged[:10, cold_b].max(axis=1)).all()
    assert (tagged[10:, cold_b].min(axis=1) > tagged[10:, cold_a].max(axis=1)).all()
    assert np.allclose(tagged[:, heard].argmax(axis=1), spectral[:, heard].argmax(axis=1))
    with pytest.raises(ValueError, match="--item-tags"):
        build_network(TrainConfig(init="spectral+tags", dim=4), graph, data.pairs)
    from melody_map.readers import DataError
    with pytest.raises(DataError, match="--item-tags"):
        load(ROOT / "spotify_dataset.csv", init="spectral+tags")
    with pytest.raises(DataError, match="--item-tags is for plain interaction tables"):
        load(ROOT / "spotify_dataset.csv", item_tags="tags.tsv")
