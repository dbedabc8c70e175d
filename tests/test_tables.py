"""Plain interaction tables through the same front door: train_gnn.py --data/--test, and
recommend.py --all-users whose output an independent evaluator scores to the same metrics."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from collections import defaultdict

import numpy as np
import pytest
from conftest import ROOT


def write_tables(tmp_path, seed: int = 0):
    """Two taste communities of users over items "i<c>_<n>"; per user 12 train and 3 test items."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c, users in enumerate((40, 80)):
        for u in range(users):
            items = rng.choice(30, size=15, replace=False)
            rows = [(f"u{c}_{u:03d}", f"i{c}_{i:02d}", int(rng.integers(1, 50))) for i in items]
            train += rows[:12]
            test += rows[12:]
    # Every 8th user also has a test item never seen in training: no model can rank it, and
    # the protocol counts it as a miss (read_train_test keeps a count of such pairs per user).
    test += [(u, f"new_{u}", 1) for u, _, _ in train[::12 * 8]]
    (tmp_path / "train.tsv").write_text("".join(f"{u}\t{i}\t{w}\r\n" for u, i, w in train))
    (tmp_path / "test.tsv").write_text("".join(f"{u}\t{i}\t{w}\r\n" for u, i, w in test))
    return train, test


def independent_metrics(recs_path, test_rows, k: int = 20) -> dict[str, float]:
    """Recall@k and NDCG@k from recommend.py --all-users's TSV (its header names the columns),
    knowing nothing of the model."""
    ranked = defaultdict(dict)
    with open(recs_path, encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
            if int(row["rank"]) <= k:
                ranked[row["user_id"]][int(row["rank"])] = row["item_id"]
    held = defaultdict(set)
    for user, item, _ in test_rows:
        held[user].add(item)
    recalls, ndcgs = [], []
    for user, items in held.items():
        hits = [r for r, item in ranked[user].items() if item in items]
        recalls.append(len(hits) / len(items))
        dcg = sum(1 / math.log2(r + 1) for r in hits)
        ideal = sum(1 / math.log2(r + 1) for r in range(1, min(len(items), k) + 1))
        ndcgs.append(dcg / ideal)
    return {"recall@20": float(np.mean(recalls)), "ndcg@20": float(np.mean(ndcgs))}


@pytest.mark.parametrize("model, row", [("gcn", "GCN"), ("gcn+gf-cf", "GCN+GF-CF")])
def test_all_users_output_scores_to_the_printed_metrics(tmp_path, model, row):
    _, test = write_tables(tmp_path)
    run = subprocess.run([sys.executable, "train_gnn.py", "--data", str(tmp_path / "train.tsv"),
                          "--test", str(tmp_path / "test.tsv"), "--output", str(tmp_path / "m.pth"),
                          "--plot", "", "--summary-json", str(tmp_path / "s.json"), "--epochs", "30",
                          "--model", model], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    printed = json.loads((tmp_path / "s.json").read_text())["test"][row]
    rec = subprocess.run([sys.executable, "recommend.py", "--checkpoint", str(tmp_path / "m.pth"), "--all-users",
                          "--evaluation", "--top-k", "20", "--output", str(tmp_path / "recs.tsv")],
                         cwd=ROOT, capture_output=True, text=True)
    assert rec.returncode == 0, rec.stderr
    lines = (tmp_path / "recs.tsv").read_text().splitlines()
    assert lines[0].split("\t") == ["user_id", "user_index", "rank", "item_index", "item_id", "item", "score"]
    assert len(lines) == 1 + 120 * 20 and lines[1].split("\t")[0].startswith("u")
    ours = independent_metrics(tmp_path / "recs.tsv", test)
    assert abs(ours["recall@20"] - printed["recall@20"]) < 1e-9, (ours, printed)
    assert abs(ours["ndcg@20"] - printed["ndcg@20"]) < 1e-9, (ours, printed)
    assert printed["recall@20"] > 0.5  # two communities of 30 items: a working model finds them
    assert "+ 15 whose item never appears in training, counted as misses" in run.stdout


def test_all_users_output_leaves_out_training_items(tmp_path):
    train, _ = write_tables(tmp_path, seed=1)
    from melody_map.api import load_model, recommend_all, write_recommendations
    from melody_map.config import TrainConfig
    from melody_map.pipeline import run

    run(TrainConfig(data=str(tmp_path / "train.tsv"), test=str(tmp_path / "test.tsv"),
                    output=str(tmp_path / "m.pth"), plot="", epochs=4), log=lambda line: None, progress=False)
    model, data = load_model(tmp_path / "m.pth")
    users, tracks, scores = recommend_all(model, data, 20, evaluation=True)
    write_recommendations(tmp_path / "r.tsv", data, users, tracks, scores)
    seen = {(u, i) for u, i, _ in train}
    with open(tmp_path / "r.tsv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    assert rows and not any((r["user_id"], r["item_id"]) in seen for r in rows)
    # Each row joins back to the data: its indices name its ids.
    assert all(data.user_ids[int(r["user_index"])].as_py() == r["user_id"] for r in rows)
    assert all(data.catalogue.item_ids[int(r["item_index"])].as_py() == r["item_id"] for r in rows)
    # Scores never increase down a user's list.
    by_user = defaultdict(list)
    for r in rows:
        by_user[r["user_id"]].append((int(r["rank"]), float(r["score"])))
    assert all([s for _, s in sorted(v)] == sorted((s for _, s in v), reverse=True) for v in by_user.values())


def test_plain_table_with_names_recommends_by_name(tmp_path):
    write_tables(tmp_path)
    names = "".join(f"i{c}_{n:02d}\tSong {c}-{n}\n" for c in range(2) for n in range(30))
    (tmp_path / "names.tsv").write_text("id\tname\n" + names)
    run = subprocess.run([sys.executable, "train_gnn.py", "--data", str(tmp_path / "train.tsv"),
                          "--item-names", str(tmp_path / "names.tsv"), "--output", str(tmp_path / "m.pth"),
                          "--plot", "", "--epochs", "4"], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    rec = subprocess.run([sys.executable, "recommend.py", "--checkpoint", str(tmp_path / "m.pth"),
                          "--user-id", "u0_000", "--top-k", "3"], cwd=ROOT, capture_output=True, text=True)
    assert rec.returncode == 0, rec.stderr
    assert "Song 0-" in rec.stdout and " — " not in rec.stdout


def test_a_test_table_beside_a_playlists_csv_is_one_line(tmp_path):
    (tmp_path / "t.tsv").write_text("1\t2\n")
    run = subprocess.run([sys.executable, "train_gnn.py", "--test", str(tmp_path / "t.tsv")],
                         cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert "must be in the layout of --data spotify_dataset.csv: a playlists CSV for both" in run.stderr


def test_blend_single_user_list_matches_the_all_users_ranking(tmp_path):
    write_tables(tmp_path, seed=2)
    from melody_map.api import get_recommendations, load_model, recommend_all
    from melody_map.config import TrainConfig
    from melody_map.pipeline import run

    summary = run(TrainConfig(data=str(tmp_path / "train.tsv"), test=str(tmp_path / "test.tsv"),
                              output=str(tmp_path / "m.pth"), plot="", epochs=4, model="gcn+gf-cf"),
                  log=lambda line: None, progress=False)
    assert {"gf_k", "gf_alpha", "weight"} <= set(summary.params)
    model, data = load_model(tmp_path / "m.pth")
    _, tracks, _ = recommend_all(model, data, 10)
    # With a fixed test table, a user's known items are exactly the ones trained on.
    for user in (0, 57, 119):
        recs = get_recommendations(model, data, int(user), top_k=10)
        assert recs["item_index"].tolist() == tracks[user].tolist()
