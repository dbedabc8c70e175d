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
import torch

from .checkpoint import pack_strings, save_checkpoint
from .config import TrainConfig
from .data import LoadReport, Playlists, load_playlists
from .evaluate import UserItems, evaluate, evaluate_popularity
from .graph import Graph, build_graph
from .model import GCNRecommender
from .spectral import spectral_embedding
from .split import TEST, TRAIN, Pairs, make_pairs
from .train import TrainResult, resolve_device, train, user_scores


@dataclass
class RunSummary:
    report: LoadReport | None = None
    split: dict[str, int] = field(default_factory=dict)
    graph: str = ""
    train: TrainResult | None = None
    test: dict[str, dict[str, float]] = field(default_factory=dict)  # model name -> metrics
    stages: dict[str, dict[str, float]] = field(default_factory=dict)  # stage -> seconds, peak RSS


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
    with _stage(summary, "load"):
        playlists, summary.report = load_playlists(cfg.data)
    log(summary.report.summary())
    with _stage(summary, "split"):
        pairs = make_pairs(playlists, cfg.valid_frac, cfg.test_frac, cfg.min_user_pairs, cfg.seed)
    with _stage(summary, "graph"):
        graph = build_graph(playlists, pairs)
    summary.split, summary.graph = pairs.counts(), graph.summary()
    held_users = len(np.unique(pairs.user[pairs.part == TEST]))
    log(f"pairs: {len(pairs):,} distinct (user, track) pairs -> train {summary.split['train']:,}, "
        f"valid {summary.split['valid']:,}, test {summary.split['test']:,} "
        f"({held_users:,} of {playlists.num_users:,} users have held-out pairs)")
    log(summary.graph)
    if cfg.stats_only:
        _write_summary(cfg, summary)
        return summary

    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    model = GCNRecommender(graph.num_nodes, cfg.dim, cfg.dropout, cfg.fixed_features)
    if cfg.init == "spectral":
        with _stage(summary, "init"):
            train_pairs = pairs.part == TRAIN
            start = spectral_embedding(graph, pairs.user[train_pairs], pairs.track[train_pairs],
                                       pairs.weight[train_pairs], cfg.dim, cfg.seed)
            with torch.no_grad():
                model.embedding.weight.copy_(start)
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
        summary.test["popularity"] = evaluate_popularity(pairs.track[pairs.part == TRAIN], heldout, known,
                                                         graph.num_tracks, cfg.k)
    log(format_metrics(summary.test, cfg.k, graph.num_tracks))

    with _stage(summary, "checkpoint"):
        save_checkpoint(cfg.output, checkpoint_payload(cfg, model, z.cpu(), graph, playlists, pairs, summary))
    log(f"wrote {cfg.output}")
    if cfg.plot:
        from .plot import plot_training  # matplotlib only when a plot is asked for

        plot_training(summary.train.history, cfg.plot, cfg.k, summary.train.best_epoch)
        log(f"wrote {cfg.plot}")
    _write_summary(cfg, summary)
    return summary


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
                       playlists: Playlists, pairs: Pairs, summary: RunSummary) -> dict:
    """Everything recommend.py needs, as tensors, numbers and strings."""
    known = UserItems.from_pairs(pairs.user, pairs.track, graph.num_users)  # all parts: the user's playlists
    return {
        "config": cfg.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "user_embeddings": z[: graph.num_users].contiguous(),
        "track_embeddings": z[graph.track_offset: graph.track_offset + graph.num_tracks].contiguous(),
        "track_artist": torch.from_numpy(playlists.track_artist),
        "known_indptr": torch.from_numpy(known.indptr),
        "known_tracks": torch.from_numpy(known.items),
        "user_ids": pack_strings(playlists.user_ids),
        "artist_names": pack_strings(playlists.artist_names),
        "track_titles": pack_strings(playlists.track_titles),
        "metrics": {"test": summary.test, "best_epoch": summary.train.best_epoch,
                    "valid": summary.train.best_valid},
        "counts": {"users": graph.num_users, "tracks": graph.num_tracks, "artists": graph.num_artists,
                   "playlists": graph.num_playlists, "rows": playlists.num_rows},
        "versions": {"torch": str(torch.__version__), "python": sys.version.split()[0]},
    }
