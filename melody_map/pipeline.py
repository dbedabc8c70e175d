"""The whole training run, stage by stage, as ``train_gnn.py`` and the benchmarks call it."""

from __future__ import annotations

import dataclasses
import json
import os
import resource
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator, NoReturn

from . import memory
from .checkpoint import (
    CheckpointError,
    checkpoint_payload,
    interrupted_payload,
    load_resume,
    save_checkpoint,
)
from .config import TrainConfig
from .dataset import Dataset, load_dataset
from .distributed import Group
from .evaluate import evaluate, evaluate_popularity
from .gcn import MODELS, make_model
from .interrupt import StopRequest, TrainingInterrupted
from .readers import LoadReport
from .recommender import FitReport, Recommender
from .split import TRAIN, VALID


@dataclass
class RunSummary:
    reports: list[LoadReport] = field(default_factory=list)
    split: dict[str, int] = field(default_factory=dict)
    split_digest: str = ""  # Pairs.digest(): equal digests, the same split
    graph: str = ""
    model: str = ""  # repr of the fitted model
    params: dict = field(default_factory=dict)  # its hyper-parameters, with what fitting chose
    train: FitReport | None = None
    test: dict[str, dict[str, float]] = field(default_factory=dict)  # model label -> metrics
    stages: dict[str, dict[str, float]] = field(default_factory=dict)  # stage -> seconds, peak RSS
    reading_estimate_mb: float | None = None  # memory.reading_peak's estimate, made before reading
    memory_estimate_mb: float | None = None  # memory.run_peak's estimate, made before the model's allocations


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(cfg: TrainConfig, log: Callable[[str], None] = print, progress: bool = True) -> RunSummary:
    """Load -> split -> graph -> fit (-> refit) -> test -> checkpoint -> plot.

    The first Ctrl-C during training ends it at the next step: the best model so far is
    written to ``cfg.output``, marked interrupted, with the state that ``cfg.resume`` carries
    on from, and ``TrainingInterrupted`` says so. A second Ctrl-C stops at once.

    Raises:
        ValueError (DataError, CheckpointError): bad input; the message is one line.
        TrainingInterrupted: Ctrl-C during training, after the checkpoint is written.
    """
    summary = RunSummary()
    group = Group.current()  # under torchrun: rank 0 logs, tests and writes; every rank trains
    if group.rank != 0:
        log = lambda line: None  # noqa: E731

    @contextmanager
    def stage(name: str) -> Iterator[None]:
        start = time.perf_counter()
        yield
        summary.stages[name] = {"seconds": time.perf_counter() - start, "peak_rss_mb": peak_rss_mb()}

    resumed = None
    if cfg.resume:
        resumed = load_resume(cfg.resume)
        try:
            cfg = cfg.resuming(resumed.config)
        except (TypeError, ValueError) as e:
            raise CheckpointError(f"{cfg.resume}: its config cannot be resumed ({e}); train anew without --resume")
        log(f"resuming the {resumed.phase} of {cfg.resume} at epoch {resumed.trainer['epoch']}, step "
            f"{resumed.trainer['step'] + 1} of {resumed.trainer['steps']}")
    check, input_bytes = cfg.memory_check and _on_cpu(cfg), _input_bytes(cfg)
    summary.reading_estimate_mb = memory.reading_peak(input_bytes) / memory.MB
    if check:  # before the reader's allocations
        memory.check_reading(input_bytes, memory.available_bytes(), memory.resident_bytes())
    data = load_dataset(cfg, stage)
    summary.reports, summary.split, summary.graph = data.reports, data.pairs.counts(), data.graph.summary()
    summary.split_digest = data.pairs.digest()
    for report in data.reports:
        log(report.summary())
    log(describe_split(data))
    log(summary.graph)
    if not cfg.stats_only and _on_cpu(cfg):  # before the model's
        counts, resident = memory.Counts.of(data), memory.resident_bytes()
        available = memory.available_bytes() // group.local_size  # the ranks on a machine share its memory
        peak, phase = (memory.check_run(counts, cfg, resident, available) if check
                       else memory.run_peak(counts, cfg, resident))
        summary.memory_estimate_mb = peak / memory.MB
        log(f"memory: about {memory.gb(peak)} at the peak ({phase}), estimated from the counts and the flags; "
            f"{memory.gb(resident + available)} available")
    if resumed and resumed.split_digest != summary.split_digest:
        raise CheckpointError(f"{cfg.resume}: its run had another split (the data {cfg.data} changed since); "
                              "resume with the same data, or train anew without --resume")
    if cfg.stats_only:
        _write_summary(cfg, summary)
        return summary

    stop = StopRequest()
    if resumed and resumed.phase == "refit":  # the fit was done: its model is the checkpoint's
        model = MODELS[resumed.model["name"]].from_state(resumed.model["params"], resumed.model["state"])
        summary.train = FitReport(**resumed.fit_report)
    else:
        model = make_model(cfg)
        with stage("train"), stop.armed():
            model.fit(data, log=log, progress=progress, stop=stop,
                      resume=resumed.trainer if resumed else None)
        summary.train = model.report
        if model.report.interrupted:  # the blend's filter is not built: its GCN is the model so far
            _save_interrupted(cfg, getattr(model, "gcn", model), data, "fit", model.report, summary, log)
    if cfg.refit:
        fitted, fit_data = model, data
        data = data.with_valid_in_train()
        log(f"refit on training + validation ({int((data.pairs.part == TRAIN).sum()):,} pairs) with "
            f"{_choices(model)}")
        with stage("refit"), stop.armed():
            model = model.refit(data, log=log, progress=progress, stop=stop,
                                resume=resumed.trainer if resumed and resumed.phase == "refit" else None)
        if model.report.interrupted:  # the fitted model is the whole model so far
            _save_interrupted(cfg, fitted, fit_data, "refit", model.report, summary, log)
    if group.rank != 0:
        return summary
    summary.model, summary.params = repr(model), model.params()

    with stage("evaluate"):
        summary.test = test_metrics(model, data, cfg.k)
    log(format_metrics(summary.test, cfg.k, data.num_items, data.catalogue.noun))

    if cfg.output:
        with stage("checkpoint"):
            metrics = {"test": summary.test, "best_epoch": summary.train.best_epoch,
                       "valid": summary.train.best_valid}
            save_checkpoint(cfg.output, checkpoint_payload(cfg, model, data, metrics))
        log(f"wrote {cfg.output}")
    if cfg.plot and summary.train.history:
        from .plot import plot_training  # matplotlib only when a plot is asked for

        plot_training(summary.train.history, cfg.plot, cfg.k, summary.train.best_epoch)
        log(f"wrote {cfg.plot}")
    if cfg.diagram:
        from .plot import draw_network

        log(draw_network(model, data, cfg.diagram))
    _write_summary(cfg, summary)
    return summary


def _on_cpu(cfg: TrainConfig) -> bool:
    """Whether the run trains on the CPU, where the memory estimate applies."""
    import torch

    return cfg.device == "cpu" or (cfg.device == "auto" and not torch.cuda.is_available())


def _input_bytes(cfg: TrainConfig) -> int:
    """The bytes of the input tables (a missing one is the reader's to report)."""
    return sum(os.path.getsize(p) for p in (cfg.data, cfg.test) if p and os.path.isfile(p))


def _save_interrupted(cfg: TrainConfig, model: Recommender, data: Dataset, phase: str, report: FitReport,
                      summary: RunSummary, log: Callable[[str], None]) -> NoReturn:
    """Write ``model`` (the usable model so far) marked interrupted, with ``report``'s state; then raise."""
    state = report.resume
    where = f"epoch {state['epoch']}, step {state['step'] + 1} of {state['steps']}"
    if Group.current().rank != 0:
        raise TrainingInterrupted(f"interrupted at {where}; rank 0 writes the checkpoint")
    if not cfg.output:
        raise TrainingInterrupted(f"interrupted during the {phase} at {where}; nothing written (--output is '')")
    fit = summary.train
    metrics = {"test": {}, "best_epoch": fit.best_epoch, "valid": fit.best_valid}
    fit_report = {"history": fit.history, "best_epoch": fit.best_epoch, "best_valid": fit.best_valid}
    save_checkpoint(cfg.output, interrupted_payload(checkpoint_payload(cfg, model, data, metrics), phase, state,
                                                    summary.split_digest, fit_report))
    kept = (f"the best weights so far (epoch {fit.best_epoch})" if phase == "fit"
            else "the fitted model; the refit is not finished")
    log(f"wrote {cfg.output}, marked interrupted (the {phase} at {where}), holding {kept}")
    raise TrainingInterrupted(f"interrupted: {cfg.output} holds {kept}; carry on with: "
                              f"python train_gnn.py --resume {cfg.output}")


def test_metrics(model: Recommender, data: Dataset, k: int) -> dict[str, dict[str, float]]:
    """The model's and popularity's test metrics: every item ranked, training and validation items left out."""
    known = data.items(TRAIN, VALID)
    heldout = data.test_items()
    train_items = data.pairs.select(TRAIN)[1]
    return {model.label: evaluate(model.scores, heldout, known, data.num_items, k, top_k_fn=model.top_k),
            "popularity": evaluate_popularity(train_items, heldout, known, data.num_items, k)}


def describe_split(data: Dataset) -> str:
    counts, pairs = data.pairs.counts(), data.pairs
    held_users = int((data.test_items().heldout_counts() > 0).sum())
    unseen = (f" + {counts['test_unseen']:,} whose {data.catalogue.noun} never appears in training, counted "
              f"as misses" if "test_unseen" in counts else "")
    return (f"pairs: {len(pairs):,} distinct (user, {data.catalogue.noun}) pairs -> train {counts['train']:,}, "
            f"valid {counts['valid']:,}, test {counts['test']:,}{unseen} "
            f"({held_users:,} of {data.num_users:,} users have held-out pairs)")


def format_metrics(results: dict[str, dict[str, float]], k: int, num_items: int, noun: str = "track") -> str:
    names = [f"recall@{k}", f"ndcg@{k}", f"hitrate@{k}", f"coverage@{k}"]
    users = int(next(iter(results.values()))["users"])
    lines = [f"test ({users:,} users, all {num_items:,} {noun}s ranked, known {noun}s excluded):",
             f"  {'model':<12}" + "".join(f"{n:>13}" for n in names)]
    for model, m in results.items():
        lines.append(f"  {model:<12}" + "".join(f"{m[n]:>13.4f}" for n in names))
    return "\n".join(lines)


def _choices(model: Recommender) -> str:
    keys = ("epochs", "gf_k", "gf_alpha", "weight")
    return ", ".join(f"{k}={v}" for k, v in model.params().items() if k in keys)


def _write_summary(cfg: TrainConfig, summary: RunSummary) -> None:
    """The run as JSON (for benchmarks): config, data reports, split, stage timings, metrics."""
    if not cfg.summary_json:
        return
    train = summary.train
    doc = {
        "config": cfg.to_dict(),
        "load": dataclasses.asdict(summary.reports[0]) if summary.reports else None,
        "reports": [dataclasses.asdict(r) for r in summary.reports],
        "split": summary.split,
        "split_digest": summary.split_digest,
        "graph": summary.graph,
        "model": summary.model,
        "params": summary.params,
        "stages": summary.stages,
        "test": summary.test,
        "train": None if train is None else {
            "epochs_run": len(train.history),
            "best_epoch": train.best_epoch,
            "best_valid": train.best_valid,
            "epoch_seconds": [r["seconds"] for r in train.history if r["epoch"] > 0],
            "valid_curve": [{"epoch": r["epoch"], **{n: r[f"valid_{n}"] for n in (f"recall@{cfg.k}", f"ndcg@{cfg.k}")}}
                            for r in train.history if f"valid_recall@{cfg.k}" in r],
        },
        "checkpoint_bytes": os.path.getsize(cfg.output) if cfg.output and os.path.exists(cfg.output)
        and not cfg.stats_only else None,
        "peak_rss_mb": peak_rss_mb(),
        "reading_estimate_mb": summary.reading_estimate_mb,
        "memory_estimate_mb": summary.memory_estimate_mb,
    }
    with open(cfg.summary_json, "w") as f:
        json.dump(doc, f, indent=2)
