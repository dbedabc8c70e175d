"""The whole training run, stage by stage, as ``train_gnn.py`` and the benchmarks call it."""

from __future__ import annotations

import dataclasses
import json
import os
import resource
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np
import pyarrow as pa
import torch

from .checkpoint import pack_strings, save_checkpoint
from .config import TrainConfig
from .data import DataError, LoadReport, load_playlists
from .evaluate import UserItems, evaluate, evaluate_popularity
from .filters import GFCF, blended, choose_blend, items_matrix
from .filters import MAX_ITEMS as GFCF_MAX_ITEMS
from .graph import Graph, build_graph, interaction_graph
from .interactions import (
    InteractionReport,
    read_interactions,
    read_item_names,
    read_train_test,
    sniff_table,
)
from .model import GCNRecommender
from .spectral import spectral_embedding
from .split import TEST, TRAIN, VALID, Pairs, make_pairs, table_pairs
from .train import TrainResult, resolve_device, train, user_scores


@dataclass
class RunSummary:
    report: LoadReport | InteractionReport | None = None
    split: dict[str, int] = field(default_factory=dict)
    graph: str = ""
    train: TrainResult | None = None
    test: dict[str, dict[str, float]] = field(default_factory=dict)  # model name -> metrics
    stages: dict[str, dict[str, float]] = field(default_factory=dict)  # stage -> seconds, peak RSS
    blend: dict[str, float] = field(default_factory=dict)  # --model gcn+gf-cf: the filter and weight chosen


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextmanager
def _stage(summary: RunSummary, name: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    summary.stages[name] = {"seconds": time.perf_counter() - start, "peak_rss_mb": peak_rss_mb()}


def run(cfg: TrainConfig, log: Callable[[str], None] = print, progress: bool = True) -> RunSummary:
    """Load -> pairs and split -> graph -> train -> evaluate -> checkpoint -> plot.

    Raises:
        ValueError (DataError, CheckpointError): bad input; the message is one line.
    """
    summary = RunSummary()
    table = is_interaction_table(cfg.data)
    if cfg.test and not table:
        raise ValueError(f"--test is for plain interaction tables; {cfg.data} is a playlists CSV, "
                         f"whose test split is held out per user (--test-frac)")
    if table:
        catalog, pairs, graph = _load_table(cfg, summary, log)
    else:
        with _stage(summary, "load"):
            playlists, summary.report = load_playlists(cfg.data)
        log(summary.report.summary())
        with _stage(summary, "split"):
            pairs = make_pairs(playlists, cfg.valid_frac, cfg.test_frac, cfg.min_user_pairs, cfg.seed)
        with _stage(summary, "graph"):
            graph = build_graph(playlists, pairs)
        catalog = Catalog(playlists.user_ids, playlists.track_titles, playlists.artist_names,
                          playlists.track_artist, None, playlists.num_rows)
    summary.split, summary.graph = pairs.counts(), graph.summary()
    held_users = len(np.unique(pairs.user[pairs.part == TEST]))
    log(f"pairs: {len(pairs):,} distinct (user, {catalog.item}) pairs -> train {summary.split['train']:,}, "
        f"valid {summary.split['valid']:,}, test {summary.split['test']:,} "
        f"({held_users:,} of {graph.num_users:,} users have held-out pairs)")
    log(summary.graph)
    if cfg.stats_only:
        _write_summary(cfg, summary)
        return summary

    if cfg.model == "gcn+gf-cf" and graph.num_tracks > GFCF_MAX_ITEMS:
        raise ValueError(f"--model gcn+gf-cf builds a dense items x items filter: {graph.num_tracks:,} items are "
                         f"more than {GFCF_MAX_ITEMS:,}; use --model gcn")
    device = resolve_device(cfg.device)
    with _stage(summary, "init"):
        model = make_model(cfg, graph, pairs)
    log(f"model: {model!r} on {device}; {sum(p.numel() for p in model.parameters()):,} parameters")
    with _stage(summary, "train"):
        summary.train = train(model, graph, pairs, cfg, device, progress=progress)
    best = summary.train.best_valid
    log(f"best validation epoch {summary.train.best_epoch}: "
        + ", ".join(f"{k} {v:.4f}" for k, v in best.items() if k != "users"))

    with _stage(summary, "evaluate"):
        model.eval()
        with torch.no_grad():
            z = model(graph.adj.to(device))
        # Test: rank every track; the user's training and validation tracks are known, not answers.
        known = UserItems.from_pairs(pairs.user[pairs.part != TEST], pairs.track[pairs.part != TEST],
                                     graph.num_users)
        heldout = UserItems.from_pairs(*pairs.select(TEST), graph.num_users)
        summary.test["GCN"] = evaluate(user_scores(model, z, graph), heldout, known, graph.num_tracks, cfg.k)
        if cfg.model == "gcn+gf-cf":
            # Filter and weight chosen on validation with the filter built from training pairs;
            # the test's filter is built from training + validation, as recommend.py rebuilds it.
            train_items = UserItems.from_pairs(*pairs.select(TRAIN), graph.num_users)
            valid_items = UserItems.from_pairs(*pairs.select(VALID), graph.num_users)
            gcn_fn = user_scores(model, z, graph)
            summary.blend = choose_blend(train_items, valid_items, gcn_fn, graph.num_tracks, cfg.k)
            gf = GFCF(k=summary.blend["gf_k"], alpha=summary.blend["gf_alpha"])
            gf.fit(items_matrix(known, graph.num_tracks))
            summary.test["GCN+GF-CF"] = evaluate(blended(gf.scores, gcn_fn, summary.blend["weight"]), heldout,
                                                 known, graph.num_tracks, cfg.k)
        summary.test["popularity"] = evaluate_popularity(pairs.track[pairs.part == TRAIN], heldout, known,
                                                         graph.num_tracks, cfg.k)
    if summary.blend:
        log(f"GCN+GF-CF, chosen on validation: GF-CF k={summary.blend['gf_k']}, alpha={summary.blend['gf_alpha']}, "
            f"GCN weight {summary.blend['weight']}")
    log(format_metrics(summary.test, cfg.k, graph.num_tracks))

    with _stage(summary, "checkpoint"):
        save_checkpoint(cfg.output, checkpoint_payload(cfg, model, z.cpu(), graph, catalog, pairs, summary))
    log(f"wrote {cfg.output}")
    if cfg.plot:
        from .plot import plot_training  # matplotlib only when a plot is asked for

        plot_training(summary.train.history, cfg.plot, cfg.k, summary.train.best_epoch)
        log(f"wrote {cfg.plot}")
    _write_summary(cfg, summary)
    return summary


def make_model(cfg: TrainConfig, graph: Graph, pairs: Pairs) -> GCNRecommender:
    """A fresh, seeded GCN over ``graph``, its node vectors started as ``cfg.init`` says."""
    torch.manual_seed(cfg.seed)
    model = GCNRecommender(graph.num_nodes, cfg.dim, cfg.dropout, cfg.fixed_features, cfg.combine)
    if cfg.init == "spectral":
        train = pairs.part == TRAIN
        start = spectral_embedding(graph, pairs.user[train], pairs.track[train], pairs.weight[train],
                                   cfg.dim, cfg.seed)
        with torch.no_grad():
            model.embedding.weight.copy_(start)
    return model


def _write_summary(cfg: TrainConfig, summary: RunSummary) -> None:
    """The run as JSON (for benchmarks): config, data report, split, stage timings, metrics."""
    if not cfg.summary_json:
        return
    doc = {
        "config": cfg.to_dict(),
        "load": dataclasses.asdict(summary.report) if summary.report else None,
        "split": summary.split,
        "graph": summary.graph,
        "stages": summary.stages,
        "test": summary.test,
        "blend": summary.blend,
        "train": None if summary.train is None else {
            "epochs_run": len(summary.train.history),
            "best_epoch": summary.train.best_epoch,
            "best_valid": summary.train.best_valid,
            "epoch_seconds": [r["seconds"] for r in summary.train.history],
        },
        "checkpoint_bytes": os.path.getsize(cfg.output) if os.path.exists(cfg.output) and not cfg.stats_only else None,
        "peak_rss_mb": peak_rss_mb(),
    }
    with open(cfg.summary_json, "w") as f:
        json.dump(doc, f, indent=2)


def format_metrics(results: dict[str, dict[str, float]], k: int, num_tracks: int) -> str:
    names = [f"recall@{k}", f"ndcg@{k}", f"hitrate@{k}", f"coverage@{k}"]
    users = int(next(iter(results.values()))["users"])
    lines = [f"test ({users:,} users, all {num_tracks:,} tracks ranked, known tracks excluded):",
             f"  {'model':<12}" + "".join(f"{n:>13}" for n in names)]
    for model, m in results.items():
        lines.append(f"  {model:<12}" + "".join(f"{m[n]:>13.4f}" for n in names))
    return "\n".join(lines)


def checkpoint_payload(cfg: TrainConfig, model: GCNRecommender, z: torch.Tensor, graph: Graph,
                       catalog: Catalog, pairs: Pairs, summary: RunSummary) -> dict:
    """Everything recommend.py needs, as tensors, numbers and strings."""
    # The user's known items: every pair of a playlists CSV (all of them are in the user's
    # playlists), the training table's pairs of a plain table with a fixed test table.
    known_mask = pairs.part != TEST if cfg.test else np.ones(len(pairs), bool)
    known = UserItems.from_pairs(pairs.user[known_mask], pairs.track[known_mask], graph.num_users)
    trained = UserItems.from_pairs(pairs.user[pairs.part != TEST], pairs.track[pairs.part != TEST],
                                   graph.num_users)  # what the test metrics exclude
    payload = {
        "config": cfg.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "user_embeddings": z[: graph.num_users].contiguous(),
        "track_embeddings": z[graph.track_offset: graph.track_offset + graph.num_tracks].contiguous(),
        "track_artist": torch.from_numpy(np.asarray(catalog.track_artist, np.int32)),
        "known_indptr": torch.from_numpy(known.indptr),
        "known_tracks": torch.from_numpy(known.items),
        "train_indptr": torch.from_numpy(trained.indptr),
        "train_tracks": torch.from_numpy(trained.items),
        "user_ids": pack_strings(catalog.user_ids),
        "artist_names": pack_strings(catalog.artist_names),
        "track_titles": pack_strings(catalog.track_titles),
        "metrics": {"test": summary.test, "best_epoch": summary.train.best_epoch,
                    "valid": summary.train.best_valid},
        "counts": {"users": graph.num_users, "tracks": graph.num_tracks, "artists": graph.num_artists,
                   "playlists": graph.num_playlists, "rows": catalog.num_rows},
        "versions": {"torch": str(torch.__version__), "python": sys.version.split()[0]},
    }
    if catalog.item_ids is not None:
        payload["item_ids"] = pack_strings(catalog.item_ids)
    if summary.blend:  # recommend.py rebuilds the filter from train_indptr/train_tracks
        payload["blend"] = dict(summary.blend)
    return payload


@dataclass
class Catalog:
    """The names behind the codes, for the checkpoint: a playlists CSV's or a plain table's."""

    user_ids: pa.Array  # (users,) the dataset's user ids
    track_titles: pa.Array  # (tracks,) a track's title, or a plain table's item name (its id if unnamed)
    artist_names: pa.Array  # (artists,); a plain table has one empty name
    track_artist: np.ndarray  # (tracks,) artist index of each track
    item_ids: pa.Array | None  # (items,) a plain table's own item ids; None for playlists
    num_rows: int

    @property
    def item(self) -> str:
        return "track" if self.item_ids is None else "item"


def is_interaction_table(path: str) -> bool:
    """Whether ``path`` is a plain (user, item[, weight]) table rather than a playlists CSV."""
    try:
        return sniff_table(path)[2] in (2, 3)
    except (DataError, OSError, UnicodeDecodeError):
        return False  # the playlists loader says what is wrong with it


def _load_table(cfg: TrainConfig, summary: RunSummary, log: Callable[[str], None]):
    """A plain interaction table (and a fixed test table) -> catalog, pairs, user-item graph."""
    with _stage(summary, "load"):
        if cfg.test:
            train_t, test_t = read_train_test(cfg.data, cfg.test)
        else:
            train_t, test_t = read_interactions(cfg.data), None
        names = read_item_names(cfg.item_names, train_t.item_ids) if cfg.item_names else None
    summary.report = train_t.report
    log(train_t.report.summary())
    if test_t is not None:
        log(test_t.report.summary())
    with _stage(summary, "split"):
        test = None if test_t is None else (test_t.user, test_t.item, test_t.weight)
        pairs = table_pairs(train_t.user, train_t.item, train_t.weight, train_t.num_users, cfg.valid_frac,
                            cfg.test_frac, cfg.min_user_pairs, cfg.seed, test)
    with _stage(summary, "graph"):
        graph = interaction_graph(pairs, train_t.num_users, train_t.num_items)
    titles = train_t.item_ids if names is None else np.where(names == "", train_t.item_ids, names)
    catalog = Catalog(pa.array(train_t.user_ids, pa.string()), pa.array(titles, pa.string()),
                      pa.array([""], pa.string()), np.zeros(train_t.num_items, np.int32),
                      pa.array(train_t.item_ids, pa.string()), train_t.report.rows_read)
    return catalog, pairs, graph
