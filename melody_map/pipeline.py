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
    ResumePoint,
    checkpoint_payload,
    interrupted_payload,
    load_resume,
    save_checkpoint,
)
from .config import TrainConfig
from .dataset import Dataset, load_dataset
from .distributed import Ranks
from .evaluate import evaluate, evaluate_popularity
from .gcn import MODELS, make_model
from .interrupt import StopRequest, TrainingInterrupted
from .outputs import busy_note, check_output_path, choose_threads
from .recommender import FitReport, Recommender
from .types import TRAIN, VALID, LoadReport


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
        ValueError (DataError, CheckpointError): bad input or an unwritable output path; the
            message is one line.
        TrainingInterrupted: Ctrl-C during training, after the checkpoint is written.
    """
    job = Run.start(cfg, log, progress)
    data = job.prepare()
    if job.cfg.stats_only:
        job.write_summary()
        return job.summary
    model = job.fit(data)
    if job.cfg.refit:
        model, data = job.refit(model, data)
    if job.ranks.rank == 0:
        job.finish(model, data)
    return job.summary


@dataclass
class Run:
    """One training run's state between its phases: ``prepare`` -> ``fit`` -> ``refit`` -> ``finish``."""

    cfg: TrainConfig
    log: Callable[[str], None]
    progress: bool
    ranks: Ranks
    resumed: ResumePoint | None  # an interrupted run's state, with --resume
    summary: RunSummary = field(default_factory=RunSummary)
    stop: StopRequest = field(default_factory=StopRequest)

    @classmethod
    def start(cls, cfg: TrainConfig, log: Callable[[str], None], progress: bool) -> Run:
        """Check the output paths, take a resumed run's options, and set the threads: before any work."""
        for flag in ("output", "plot", "diagram", "summary_json"):
            check_output_path(getattr(cfg, flag), "--" + flag.replace("_", "-"))
        ranks = Ranks.current()  # under torchrun: rank 0 logs, tests and writes; every rank trains
        if ranks.rank != 0:
            log = lambda line: None  # noqa: E731
        resumed = None
        if cfg.resume:
            resumed = load_resume(cfg.resume)
            try:
                cfg = cfg.resuming(resumed.config)
            except (TypeError, ValueError) as e:
                raise CheckpointError(f"{cfg.resume}: its config cannot be resumed ({e}); "
                                      "train anew without --resume")
            state = resumed.trainer
            log(f"resuming the {resumed.phase} of {cfg.resume} at epoch {state['epoch']}, step "
                f"{state['step'] + 1} of {state['steps']}")
        threads, why = choose_threads(cfg.threads)
        _set_threads(threads)
        log(f"threads: {threads} ({why})")
        if (note := busy_note(threads)) is not None:
            log(note)
        return cls(cfg, log, progress, ranks, resumed)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time a stage into the summary, with the peak resident memory at its end."""
        start = time.perf_counter()
        yield
        self.summary.stages[name] = {"seconds": time.perf_counter() - start, "peak_rss_mb": peak_rss_mb()}

    def prepare(self) -> Dataset:
        """Read, split and build the graph, log their statistics, and check the memory it will need."""
        cfg, summary = self.cfg, self.summary
        check, input_bytes = cfg.memory_check and _on_cpu(cfg), _input_bytes(cfg)
        summary.reading_estimate_mb = memory.reading_peak(input_bytes) / memory.MB
        if check:  # before the reader's allocations
            memory.check_reading(input_bytes, memory.available_bytes(), memory.resident_bytes())
        data = load_dataset(cfg, self.stage)
        summary.reports, summary.split, summary.graph = data.reports, data.pairs.counts(), data.graph.summary()
        summary.split_digest = data.pairs.digest()
        for report in data.reports:
            self.log(report.summary())
        self.log(describe_split(data))
        self.log(summary.graph)
        if not data.test_items().heldout_counts().any():
            self.log(f"warning: no user has held-out pairs, so there is nothing to test and the metrics will "
                     f"be nan: users need at least {cfg.min_user_pairs} distinct {data.catalogue.noun}s "
                     f"(--min-user-pairs) for a share to be held out")
        if not cfg.stats_only and _on_cpu(cfg):  # before the model's allocations
            self._estimate_memory(data, check)
        if self.resumed and self.resumed.split_digest != summary.split_digest:
            raise CheckpointError(f"{cfg.resume}: its run had another split (the data {cfg.data} changed since); "
                                  "resume with the same data, or train anew without --resume")
        return data

    def _estimate_memory(self, data: Dataset, check: bool) -> None:
        counts, resident = memory.Counts.of(data), memory.resident_bytes()
        available = memory.available_bytes() // self.ranks.local_size  # the ranks on a machine share its memory
        peak, phase = (memory.check_run(counts, self.cfg, resident, available) if check
                       else memory.run_peak(counts, self.cfg, resident))
        self.summary.memory_estimate_mb = peak / memory.MB
        self.log(f"memory: about {memory.gb(peak)} at the peak ({phase}), estimated from the counts and the "
                 f"flags; {memory.gb(resident + available)} available")

    def fit(self, data: Dataset) -> Recommender:
        """Fit the model on the training pairs (or take a resumed refit's fitted model)."""
        resumed = self.resumed
        if resumed and resumed.phase == "refit":  # the fit was done: its model is the checkpoint's
            self.summary.train = FitReport(**resumed.fit_report)
            return MODELS[resumed.model["name"]].from_state(resumed.model["params"], resumed.model["state"])
        model = make_model(self.cfg)
        with self.stage("train"), self.stop.armed():
            model.fit(data, log=self.log, progress=self.progress, stop=self.stop,
                      resume=resumed.trainer if resumed else None)
        self.summary.train = model.report
        if model.report.interrupted:  # the blend's filter is not built: its GCN is the model so far
            self._save_interrupted(getattr(model, "gcn", model), data, "fit", model.report)
        return model

    def refit(self, fitted: Recommender, data: Dataset) -> tuple[Recommender, Dataset]:
        """Fit again on training + validation with the choices the fit made."""
        merged = data.with_valid_in_train()
        self.log(f"refit on training + validation ({int((merged.pairs.part == TRAIN).sum()):,} pairs) with "
                 f"{_choices(fitted)}")
        resumed = self.resumed
        with self.stage("refit"), self.stop.armed():
            model = fitted.refit(merged, log=self.log, progress=self.progress, stop=self.stop,
                                 resume=resumed.trainer if resumed and resumed.phase == "refit" else None)
        if model.report.interrupted:  # the fitted model is the whole model so far
            self._save_interrupted(fitted, data, "refit", model.report)
        return model, merged

    def finish(self, model: Recommender, data: Dataset) -> None:
        """Test, write the checkpoint, the plot, the diagram and the summary."""
        cfg, summary = self.cfg, self.summary
        summary.model, summary.params = repr(model), model.params()
        with self.stage("evaluate"):
            summary.test = test_metrics(model, data, cfg.k)
        self.log(format_metrics(summary.test, cfg.k, data.num_items, data.catalogue.noun))
        if cfg.output:
            with self.stage("checkpoint"):
                metrics = {"test": summary.test, "best_epoch": summary.train.best_epoch,
                           "valid": summary.train.best_valid}
                save_checkpoint(cfg.output, checkpoint_payload(cfg, model, data, metrics))
            self.log(f"wrote {cfg.output}")
        if cfg.plot and summary.train.history:
            from .plot import plot_training  # matplotlib only when a plot is asked for

            plot_training(summary.train.history, cfg.plot, cfg.k, summary.train.best_epoch)
            self.log(f"wrote {cfg.plot}")
        if cfg.diagram:
            from .plot import draw_network

            self.log(draw_network(model, data, cfg.diagram))
        self.write_summary()

    def _save_interrupted(self, model: Recommender, data: Dataset, phase: str, report: FitReport) -> NoReturn:
        """Write ``model`` (the usable model so far) marked interrupted, with ``report``'s state; then raise."""
        cfg, state, fit = self.cfg, report.resume, self.summary.train
        where = f"epoch {state['epoch']}, step {state['step'] + 1} of {state['steps']}"
        if self.ranks.rank != 0:
            raise TrainingInterrupted(f"interrupted at {where}; rank 0 writes the checkpoint")
        if not cfg.output:
            raise TrainingInterrupted(f"interrupted during the {phase} at {where}; nothing written (--output is '')")
        metrics = {"test": {}, "best_epoch": fit.best_epoch, "valid": fit.best_valid}
        fit_report = {"history": fit.history, "best_epoch": fit.best_epoch, "best_valid": fit.best_valid}
        save_checkpoint(cfg.output, interrupted_payload(checkpoint_payload(cfg, model, data, metrics), phase, state,
                                                        self.summary.split_digest, fit_report))
        kept = (f"the best weights so far (epoch {fit.best_epoch})" if phase == "fit"
                else "the fitted model; the refit is not finished")
        self.log(f"wrote {cfg.output}, marked interrupted (the {phase} at {where}), holding {kept}")
        raise TrainingInterrupted(f"interrupted: {cfg.output} holds {kept}; carry on with: "
                                  f"python train_gnn.py --resume {cfg.output}")

    def write_summary(self) -> None:
        _write_summary(self.cfg, self.summary)


def _set_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _on_cpu(cfg: TrainConfig) -> bool:
    """Whether the run trains on the CPU, where the memory estimate applies."""
    import torch

    return cfg.device == "cpu" or (cfg.device == "auto" and not torch.cuda.is_available())


def _input_bytes(cfg: TrainConfig) -> int:
    """The bytes of the input tables (a missing one is the reader's to report)."""
    return sum(os.path.getsize(p) for p in (cfg.data, cfg.test) if p and os.path.isfile(p))


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
