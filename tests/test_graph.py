"""Pairs, the leak-free split and the normalised graph."""

from __future__ import annotations

import numpy as np
import torch
from conftest import community_rows, load, write_original

from melody_map.graph import build_graph, normalized_adjacency
from melody_map.playlists import read_playlists
from melody_map.split import assign_parts, split_pairs
from melody_map.types import TEST, TRAIN, VALID


def test_normalisation_matches_a_hand_computed_example():
    # Path 0 -(2)- 1 -(1)- 3 and 0 -(1)- 2. With self-loops the weighted degrees are
    # d = [1+2+1, 1+2+1, 1+1, 1+1] = [4, 4, 2, 2]; entry (i, j) = a_ij / sqrt(d_i d_j).
    adj = normalized_adjacency(np.array([0, 0, 1]), np.array([1, 2, 3]),
                               np.array([2.0, 1.0, 1.0], np.float32), 4).to_dense()
    r2 = 2 ** 0.5
    expected = torch.tensor([
        [1 / 4, 2 / 4, 1 / (2 * r2), 0],
        [2 / 4, 1 / 4, 0, 1 / (2 * r2)],
        [1 / (2 * r2), 0, 1 / 2, 0],
        [0, 1 / (2 * r2), 0, 1 / 2],
    ])
    torch.testing.assert_close(adj, expected)


def small_dataset(tmp_path):
    # u1 holds T1 in two playlists (weight 2) and T2 in one; u2 holds T1 once.
    path = write_original(tmp_path / "small.csv", [
        ("u1", "A", "T1", "Starred"), ("u1", "A", "T1", "Mix"), ("u1", "B", "T2", "Mix"),
        ("u2", "A", "T1", "Starred"),
    ])
    return read_playlists(path)


def test_a_word_two_playlist_names_share_is_a_node_after_the_others(tmp_path):
    playlists = small_dataset(tmp_path)
    pairs = split_pairs(playlists, valid_frac=0, test_frac=0, min_user_pairs=1, seed=0)
    g = build_graph(playlists, pairs)
    # "Starred" names a playlist of each user; "Mix" one playlist only: no node.
    assert g.word_names == ["starred"] and (g.word_offset, g.num_nodes) == (9, 10)
    assert g.edge_counts["name-word"] == 2
    adj = g.adj.to_dense()
    starred = [6 + i for i, name in enumerate(playlists.catalogue.playlist_names.to_pylist()) if name == "Starred"]
    assert sorted(torch.nonzero(adj[9]).flatten().tolist()) == sorted(starred + [9])  # its playlists and its self-loop


def test_graph_layout_counts_weights_and_symmetry(tmp_path):
    playlists = small_dataset(tmp_path)
    pairs = split_pairs(playlists, valid_frac=0, test_frac=0, min_user_pairs=1, seed=0)
    assert pairs.weight.tolist() == [2.0, 1.0, 1.0]  # (u1,T1) (u1,T2) (u2,T1)
    g = build_graph(playlists, pairs, words=False)  # the name words' block: the next test
    assert (g.num_users, g.num_items, g.num_artists, g.num_playlists) == (2, 2, 2, 3)
    assert (g.item_offset, g.artist_offset, g.playlist_offset, g.num_nodes) == (2, 4, 6, 9)
    assert g.edge_counts == {"user-track": 3, "track-artist": 2, "track-playlist": 4}
    adj = g.adj.to_dense()
    torch.testing.assert_close(adj, adj.T)
    # Rebuild A + I by hand and normalise it densely.
    a = torch.zeros(9, 9)
    u1, u2, t1, t2, art_a, art_b, pl_star1, pl_mix1, pl_star2 = range(9)
    for i, j, w in [(u1, t1, 2), (u1, t2, 1), (u2, t1, 1), (t1, art_a, 1), (t2, art_b, 1),
                    (t1, pl_star1, 1), (t1, pl_mix1, 1), (t2, pl_mix1, 1), (t1, pl_star2, 1)]:
        a[i, j] = a[j, i] = w
    a += torch.eye(9)
    d = a.sum(1).rsqrt()
    torch.testing.assert_close(adj, d[:, None] * a * d[None, :])


def test_split_is_deterministic_and_holds_out_per_user(tmp_path):
    playlists = read_playlists(write_original(tmp_path / "c.csv", community_rows()))
    a = split_pairs(playlists, 0.1, 0.1, min_user_pairs=10, seed=7)
    b = split_pairs(playlists, 0.1, 0.1, min_user_pairs=10, seed=7)
    c = split_pairs(playlists, 0.1, 0.1, min_user_pairs=10, seed=8)
    assert np.array_equal(a.part, b.part)
    assert not np.array_equal(a.part, c.part)
    # Every user has 16 tracks: round(1.6) = 2 validation and 2 test pairs each.
    for part in (VALID, TEST):
        per_user = np.bincount(a.user[a.part == part], minlength=playlists.num_users)
        assert (per_user == 2).all()


def test_users_with_few_pairs_stay_in_training(tmp_path):
    playlists = small_dataset(tmp_path)
    pairs = split_pairs(playlists, 0.4, 0.4, min_user_pairs=3, seed=0)
    assert (pairs.part == TRAIN).all()


def test_no_held_out_pair_is_reachable_through_the_users_own_playlists(tmp_path):
    # Regression: removing only the user-track edge leaves user -> own playlist -> track,
    # a two-hop path that hands the answer to a GCN.
    rows = community_rows(seed=3)
    rows += [(u, a, t, "Starred copy") for (u, a, t, p) in rows[::3]]  # tracks in several playlists
    playlists = read_playlists(write_original(tmp_path / "c.csv", rows))
    pairs = split_pairs(playlists, 0.1, 0.1, min_user_pairs=10, seed=0)
    g = build_graph(playlists, pairs)
    adj = g.adj.to_sparse_coo().coalesce()
    src, dst = adj.indices().numpy()
    edges = set(zip(src.tolist(), dst.tolist()))
    owner = playlists.catalogue.playlist_user
    held = pairs.part != TRAIN
    assert held.sum() > 0
    for u, t in zip(pairs.user[held], pairs.item[held]):
        track_node = g.item_offset + t
        assert (u, track_node) not in edges
        for p in np.flatnonzero(owner == u):
            assert (g.playlist_offset + p, track_node) not in edges
    # ...while the training pairs are all there, with both of their hops.
    for u, t in zip(pairs.user[~held], pairs.item[~held]):
        assert (u, g.item_offset + t) in edges and (g.item_offset + t, u) in edges


def test_a_track_only_held_out_pairs_hold_is_linked_to_nothing(tmp_path):
    # Regression: its artist edge scored the answer by the listener's taste for that artist.
    playlists = small_dataset(tmp_path)
    part = np.array([TRAIN, TEST, TRAIN])  # (u1,T1) (u1,T2) (u2,T1): T2 is only a test pair
    pairs = split_pairs(playlists, valid_frac=0, test_frac=0, min_user_pairs=1, seed=0)
    pairs.part = part
    g = build_graph(playlists, pairs, words=False)
    assert g.edge_counts["track-artist"] == 1
    t2 = g.item_offset + 1
    assert torch.nonzero(g.adj.to_dense()[t2]).flatten().tolist() == [t2]  # its self-loop alone


def test_every_split_user_keeps_a_training_pair_and_rounds_half_to_even():
    # 2 pairs with 40 % + 40 % held out: round(0.8) = 1 each would leave no training pair, so
    # validation gives way. 25 pairs at 10 %: numpy rounds 2.5 to 2.
    user = np.repeat([0, 1], [2, 25])
    part = assign_parts(user, 2, 0.4, 0.4, min_user_pairs=2, seed=0)
    assert np.bincount(part[user == 0], minlength=3).tolist() == [1, 0, 1]
    part = assign_parts(user, 2, 0.1, 0.1, min_user_pairs=2, seed=0)
    assert np.bincount(part[user == 1], minlength=3).tolist() == [21, 2, 2]


def test_a_fixed_test_table_is_the_test_part_and_leaves_the_graph_alone(tmp_path):
    from conftest import load

    # Every user holds items 0-13 but user 0 lacks item 13, which is the test table's one pair.
    (tmp_path / "train.tsv").write_text("".join(f"u{u}\ti{i}\t1\n" for u in range(3) for i in range(14)
                                                if (u, i) != (0, 13)))
    (tmp_path / "test.tsv").write_text("u0\ti13\t1\n")
    data = load(tmp_path / "train.tsv", test=str(tmp_path / "test.tsv"))
    assert data.pairs.counts()["test"] == 1 and data.pairs.part[-1] == TEST
    assert (data.pairs.item[-1], data.pairs.user[-1]) == (13, 0)
    assert data.graph.edge_counts == {"user-item": data.pairs.counts()["train"]}
    assert data.pairs.rows_per_pair()[-1] == 0  # no input row stands behind a test-table pair


def test_degrees_count_each_nodes_neighbours_without_its_self_loop(community_csv):
    graph = load(community_csv).graph
    dense = graph.adj.to_dense()
    off_diagonal = (dense != 0).sum(1) - (dense.diagonal() != 0).long()
    assert graph.degrees().tolist() == off_diagonal.tolist()


def test_a_row_block_keeps_its_transpose_on_another_device(community_csv):
    """``.to(device)`` drops the block's ``transposed``; ``block_to`` carries it (here to "meta", as to CUDA)."""
    from melody_map.train import block_to

    graph = load(community_csv).graph
    block, cols = graph.row_block(np.array([0, 1, graph.item_offset]))
    assert not hasattr(block.to("meta"), "transposed")
    moved = block_to(block, torch.device("meta"))
    assert moved.device.type == "meta" and moved.transposed.device.type == "meta"
    assert moved.transposed.shape == (len(cols), 3)
    assert block_to(block, torch.device("cpu")) is block
