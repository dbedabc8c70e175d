"""Train the GCN on observed pairs (their scaled weight) and sampled non-edges (0).

An epoch is ``steps_per_epoch`` Adam steps over ``pairs_per_epoch`` training pairs (or all):
each step takes the pairs of a random group of users (see ``MIN_GROUP_USERS``), sub-sampled
to its share, plus ``negatives`` random non-edges per pair, and steps on their MSE. With
trainable node vectors a step embeds the whole graph; with frozen ones (the default) the
first layer is computed once and a step runs the second layer at its batch's nodes only.
Counting steps rather than fixing a batch size keeps the number of steps the same from the
120k-row sample to the 12.9M-row dataset. Validation Recall@k is checked before the first
step (epoch 0, the untrained start) and every ``eval_every`` epochs; the best weights are
kept and training stops after ``patience`` checks without improvement. Without validation
pairs (a refit), training runs all ``epochs`` and keeps the last.

``stop`` (see ``interrupt.StopRequest``) is read after every step: when it is set, training
ends there, keeps the best weights so far and hands back its whole state (current weights,
Adam's moments, both random generators, the epoch's position) in ``FitReport.resume``;
``train(..., resume=that)`` carries on from that step and ends where an uninterrupted run ends.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor
from tqdm import tqdm  # text bars: a notebook without ipywidgets gets them too

from .allocator import reuse_freed_memory
from .config import TrainConfig
from .distributed import Ranks
from .evaluate import evaluate, subsample_users
from .graph import Graph
from .model import GCNNetwork
from .ranking import NormOrderedTopK
from .recommender import FitReport
from .spectral import spectral_embedding, tag_embedding
from .split import Pairs
from .types import TRAIN, VALID, UserItems

MIN_GROUP_USERS = 1024  # users in a training step's batch, at least (or all of them)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for but no CUDA device is available; use --device cpu")
    return torch.device(name)


def pair_targets(weight: np.ndarray) -> np.ndarray:
    """Observed pair weights (>= 1, e.g. playlist counts) scaled into (0, 1]: log1p(w) / log1p(max w)."""
    return (np.log1p(weight) / np.log1p(weight.max())).astype(np.float32)


def split_embeddings(z: Tensor, graph: Graph) -> tuple[Tensor, Tensor]:
    """(users, dim) and (items, dim) rows of the node embeddings z."""
    return z[: graph.num_users], z[graph.item_offset: graph.item_offset + graph.num_items]


def build_network(cfg: TrainConfig, graph: Graph, pairs: Pairs,
                  item_tags: sp.csr_matrix | None = None) -> GCNNetwork:
    """A fresh, seeded GCN over ``graph``, its node vectors started as ``cfg.init`` says.

    Raises:
        ValueError: ``--init spectral+tags`` without ``item_tags`` (the data's ``--item-tags``).
    """
    if cfg.init == "spectral+tags" and item_tags is None:
        raise ValueError("--init spectral+tags needs the items' tags: pass --item-tags FILE")
    torch.manual_seed(cfg.seed)
    net = GCNNetwork(graph.num_nodes, cfg.dim, cfg.dropout, cfg.fixed_features, cfg.combine, cfg.conv)
    if cfg.init.startswith("spectral"):
        train = pairs.part == TRAIN
        start = spectral_embedding(graph, pairs.user[train], pairs.item[train], pairs.weight[train],
                                   cfg.dim, cfg.seed)
        if cfg.init == "spectral+degree":  # the last (least informative) singular column gives way
            degree = torch.log1p(torch.from_numpy(graph.degrees()).float())
            degree = (degree - degree.mean()) / degree.std().clamp_min(1e-12)
            start[:, -1] = degree * start[:, :-1].pow(2).mean().sqrt()  # at the other columns' scale
        if cfg.init == "spectral+tags":  # the last quarter: the least informative singular columns
            width = max(1, cfg.dim // 4)
            scale = start[:, :-width].pow(2).mean().sqrt()  # at the other columns' scale
            start[:, -width:] = tag_embedding(graph, item_tags, width, cfg.seed) * scale
        with torch.no_grad():
            net.embedding.weight.copy_(start)
    return net


def train(model: GCNNetwork, graph: Graph, pairs: Pairs, cfg: TrainConfig, device: torch.device,
          progress: bool = True, stop: Callable[[], bool] | None = None, resume: dict | None = None) -> FitReport:
    """Fit ``model`` in place and leave it holding the best validation weights (deterministically:
    same seed, same weights).

    Args:
        model: a fresh GCNNetwork over graph.num_nodes nodes.
        graph: the training graph (its adjacency holds training pairs only).
        pairs: all pairs with their split; TRAIN ones are fitted, VALID ones select the epoch.
        cfg: epochs, steps_per_epoch, pairs_per_epoch, lr, negatives, eval_every, valid_users,
            patience, k, seed.
        device: where to train.
        progress: show a progress bar.
        stop: read after each step; True ends training there (``FitReport.resume`` holds its state).
        resume: an interrupted run's ``FitReport.resume``, to carry on from.

    Under ``torchrun`` (``distributed.Ranks``) every rank runs this with the same data and seed:
    each draws the same step, takes its share of the step's users and their pairs, and
    DistributedDataParallel averages the gradients; rank 0 validates and tells the others.
    """
    # Multi-threaded scatter-adds in the backward pass sum in varying order; the
    # deterministic kernels make the same seed give the same model bit for bit.
    was = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        trainer = Trainer(model, graph, pairs, cfg, device, Ranks.current())
        return trainer.fit(stop or (lambda: False), resume, progress)
    finally:
        torch.use_deterministic_algorithms(was)


@dataclass
class Step:
    """One training step's draw: its users, their pairs' share, the all-items term's items, the scored pairs."""

    users: np.ndarray  # (group,) sorted user ids
    share: float  # the share of the group's pairs scored, which the all-items term matches
    items: np.ndarray | None  # sorted item ids of the all-items term, or None
    user: np.ndarray  # (n,) scored pairs: observed ones, then sampled non-edges
    item: np.ndarray  # (n,)
    target: np.ndarray  # (n,) float32: scaled weight, or 0 for a non-edge

    def share_of(self, ranks: Ranks) -> Step:
        """This rank's share of the step's users, and their pairs."""
        if ranks.size == 1:
            return self
        users = self.users[ranks.rank::ranks.size]
        mine = np.isin(self.user, users)
        return replace(self, users=users, user=self.user[mine], item=self.item[mine], target=self.target[mine])


class StepSampler:
    """Draws each step's batch: the training pairs of a random group of users, sub-sampled to
    the step's share of the epoch, plus ``negatives`` random non-edges per pair.

    Few users per step keep a frozen-vector step's block of the graph small at full scale
    (each user brings all of their items' rows); at least ``MIN_GROUP_USERS`` (or all) keep
    small graphs' batches varied.
    """

    def __init__(self, pairs: Pairs, known: UserItems, num_items: int, cfg: TrainConfig):
        train = pairs.part == TRAIN
        self.user, self.item = pairs.user[train], pairs.item[train]  # sorted by user, then item
        self.target = pair_targets(pairs.weight[train])
        self.known_keys = known.keys(num_items)
        self.user_pairs = UserItems(indptr=known.indptr, items=np.arange(len(self.user)))  # each user's positions
        self.active_users = np.flatnonzero(known.counts() > 0)
        self.steps = min(cfg.steps_per_epoch, max(len(self.active_users), 1))
        self.group = min(len(self.active_users), max(-(-len(self.active_users) // self.steps), MIN_GROUP_USERS))
        self.pairs_per_step = min(cfg.pairs_per_epoch, len(self.user)) / self.steps
        self.num_items, self.item_sample = num_items, min(cfg.item_sample, num_items)
        self.negatives, self.all_items = cfg.negatives, cfg.all_items > 0
        self.rng = np.random.default_rng(cfg.seed + 1)

    def draw(self) -> Step:
        rng = self.rng
        users = np.sort(rng.choice(self.active_users, size=self.group, replace=False))
        batch = self.user_pairs.batch(users)[1]
        share = 1.0
        if len(batch) > self.pairs_per_step:
            share = self.pairs_per_step / len(batch)
            batch = batch[rng.random(len(batch)) < share]
        items = None
        if self.all_items:  # items for the all-items term: a random sample, or all of them
            items = np.sort(rng.choice(self.num_items, size=self.item_sample, replace=False))
        scored = _with_negatives(rng, self.user[batch], self.item[batch], self.target[batch], self.known_keys,
                                 self.num_items, self.negatives)
        return Step(users, share, items, *scored)


@dataclass
class EarlyStopper:
    """Keeps the best validation Recall@k's trained weights; done after ``patience`` checks without a better one."""

    patience: int
    best_recall: float = -1.0
    stale: int = 0  # checks since the best
    best_state: dict[str, Tensor] | None = None  # the trained tensors only: frozen node vectors never change

    def update(self, recall: float, model: GCNNetwork) -> bool:
        """Record a check of ``model``'s current weights; True when they are the best so far."""
        if recall <= self.best_recall:
            self.stale += 1
            return False
        self.best_recall, self.stale = recall, 0
        self.best_state = {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}
        return True

    @property
    def done(self) -> bool:
        return self.stale >= self.patience


class Trainer:
    """The training loop's state in named fields: the model and its optimizer, the sampler,
    the early stopper and the report; ``fit`` runs the epochs, ``snapshot``/``restore`` carry
    an interrupted run over to ``--resume``."""

    def __init__(self, model: GCNNetwork, graph: Graph, pairs: Pairs, cfg: TrainConfig, device: torch.device,
                 ranks: Ranks):
        self.model, self.graph, self.cfg, self.device, self.ranks = model.to(device), graph, cfg, device, ranks
        self.adj = graph.adj.to(device)
        self.known = UserItems.from_pairs(*pairs.select(TRAIN), graph.num_users)
        self.valid = subsample_users(UserItems.from_pairs(*pairs.select(VALID), graph.num_users), cfg.valid_users,
                                     np.random.default_rng(cfg.seed + 2))
        self.sampler = StepSampler(pairs, self.known, graph.num_items, cfg)
        self.optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.lr)
        # Frozen node vectors: the first layer's sparse product never changes, and a step only
        # needs the second layer at its batch's nodes (graph.row_block), not the whole graph.
        self.cached = model.first_layer_input(self.adj) if model.caches_first_layer else None
        self.step_loss = ranks.wrap(StepLoss(model, graph, self.adj, self.cached, cfg, device))
        self.stopper = EarlyStopper(cfg.patience)
        self.report = FitReport()
        self.has_valid = bool(self.valid.counts().sum())

    def fit(self, stop: Callable[[], bool], resume: dict | None, progress: bool) -> FitReport:
        """Epochs until ``cfg.epochs``, early stopping or ``stop``; the model keeps the best weights."""
        first_epoch, first_step, losses = 1, 0, []
        if resume is not None:
            first_epoch, first_step, losses = resume["epoch"], resume["step"], list(resume["losses"])
            self.restore(resume)
        elif self.has_valid:  # epoch 0: the untrained start, which training must beat to be kept
            start = {"epoch": 0, "loss": None, "seconds": 0.0}
            self.validate(start)
            self.report.history.append(start)
        bar = EpochBar(self.cfg, first_epoch, enabled=progress and self.ranks.rank == 0)
        for epoch in range(first_epoch, self.cfg.epochs + 1):
            started = time.perf_counter()
            losses = self.run_epoch(epoch, first_step if epoch == first_epoch else 0,
                                    losses if epoch == first_epoch else [], stop)
            if self.report.interrupted:
                break
            record = {"epoch": epoch, "loss": float(np.mean(losses)), "seconds": time.perf_counter() - started}
            if self.has_valid and (epoch % self.cfg.eval_every == 0 or epoch == self.cfg.epochs):
                self.validate(record)
            self.report.history.append(record)
            bar.update(record, self.stopper)
            if self.stopper.done:
                break
        bar.close()
        self.finish()
        return self.report

    def run_epoch(self, epoch: int, first_step: int, losses: list[float], stop: Callable[[], bool]) -> list[float]:
        """The epoch's steps from ``first_step``; each step's loss is appended to ``losses``."""
        self.model.train()
        with reuse_freed_memory():  # each step reallocates the last one's tensors: keep them mapped
            for step in range(first_step, self.sampler.steps):
                if self.ranks.any(stop()):  # Ctrl-C (on any rank): hand back the state before this step
                    self.report.resume = self.snapshot(epoch, step, losses)
                    break
                s = self.sampler.draw().share_of(self.ranks)  # the same draw on every rank
                loss = self.step_loss(s.user, s.item, s.target, s.users, s.items, s.share)
                self.optimizer.zero_grad()
                loss.backward()
                self.optimizer.step()
                losses.append(loss.item())
        return losses

    def validate(self, record: dict) -> None:
        """Validate the current weights into ``record``; keep them if they are the best so far."""
        k = self.cfg.k
        # Rank 0 validates; every rank gets its metrics, so all keep the same weights and stop together.
        metrics = (evaluate_split(self.model, self.graph, self.adj, self.valid, self.known, k, self.cached)
                   if self.ranks.rank == 0 else None)
        metrics = self.ranks.broadcast(metrics)
        record.update({f"valid_{name}": value for name, value in metrics.items()})
        if self.stopper.update(metrics[f"recall@{k}"], self.model):
            self.report.best_epoch, self.report.best_valid = record["epoch"], metrics

    def finish(self) -> None:
        """Leave the model holding the best weights (or the last, without validation)."""
        if self.stopper.best_state is not None:
            self.model.load_state_dict(self.stopper.best_state, strict=False)
        elif not self.report.interrupted:  # no validation: the last epoch's weights
            self.report.best_epoch = len(self.report.history)  # epoch 0 is recorded only when validated

    def snapshot(self, epoch: int, step: int, losses: list[float]) -> dict:
        """Everything the rest of the run depends on, as tensors, numbers and strings."""
        model, stopper, report = self.model, self.stopper, self.report
        trained = {name: p.detach().cpu().clone() for name, p in model.named_parameters() if p.requires_grad}
        cuda = {"cuda_rng": torch.cuda.get_rng_state(self.device)} if self.device.type == "cuda" else {}
        return {"epoch": epoch, "step": step, "steps": self.sampler.steps, "losses": [float(x) for x in losses],
                "weights": trained, "optimizer": _to_cpu(self.optimizer.state_dict()),
                "numpy_rng": _rng_state(self.sampler.rng), "torch_rng": torch.get_rng_state(), **cuda,
                "best": {} if stopper.best_state is None else _to_cpu(stopper.best_state),
                "best_recall": stopper.best_recall, "stale": stopper.stale, "history": report.history,
                "best_epoch": report.best_epoch, "best_valid": report.best_valid}

    def restore(self, resume: dict) -> None:
        """Carry on from ``snapshot``'s state: weights, Adam's moments, generators, stopper and report."""
        if resume["steps"] != self.sampler.steps:
            raise ValueError(f"the checkpoint's run took {resume['steps']} steps an epoch, this one "
                             f"{self.sampler.steps}: resume with the same data and options")
        try:
            _check_weights(self.model, resume["weights"], "weights")
            _check_weights(self.model, resume["best"], "best")
            self.model.load_state_dict(resume["weights"], strict=False)
            self.optimizer.load_state_dict(resume["optimizer"])
            _set_rng_state(self.sampler.rng, resume["numpy_rng"])
            saved = resume["torch_rng"]
            if saved.dtype != torch.uint8 or saved.shape != torch.get_rng_state().shape:
                raise ValueError("torch_rng is not a torch generator state")
        except (KeyError, TypeError, ValueError, RuntimeError) as e:
            reason = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
            raise ValueError(f"--resume: the checkpoint's training state does not fit this model ({reason}); "
                             "train anew without --resume") from None
        self.stopper = EarlyStopper(self.cfg.patience, resume["best_recall"], resume["stale"],
                                    {name: t.to(self.device) for name, t in resume["best"].items()} or None)
        self.report = FitReport(list(resume["history"]), resume["best_epoch"], resume["best_valid"])
        torch.set_rng_state(saved)  # last, so that nothing above draws from the restored generator
        if "cuda_rng" in resume and self.device.type == "cuda":
            torch.cuda.set_rng_state(resume["cuda_rng"], self.device)


class EpochBar:
    """A progress bar over epochs that says what it counts: at most ``cfg.epochs``, ending early when
    validation stops improving, so it shows the epochs run and the checks left before that stop."""

    def __init__(self, cfg: TrainConfig, first_epoch: int, enabled: bool):
        self.cfg = cfg
        self.bar = tqdm(desc=f"training (at most {cfg.epochs} epochs)", unit="epoch", initial=first_epoch - 1,
                        disable=not enabled, bar_format="{desc}: {n_fmt} epochs [{elapsed}, {rate_fmt}]{postfix}")

    def update(self, record: dict, stopper: EarlyStopper) -> None:
        post = {"loss": f"{record['loss']:.4f}"}
        recall = record.get(f"valid_recall@{self.cfg.k}")
        if recall is not None:
            post[f"val_recall@{self.cfg.k}"] = f"{recall:.4f}"
            post["stops after"] = f"{self.cfg.patience - stopper.stale} more checks without a better one"
        self.bar.set_postfix(post)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def _check_weights(model: GCNNetwork, weights: dict, key: str) -> None:
    """Every tensor in ``weights`` names a trained parameter of ``model`` and has its shape and dtype."""
    params = {name: p for name, p in model.named_parameters() if p.requires_grad}
    for name, t in weights.items():
        p = params.get(name)
        if p is None or not isinstance(t, Tensor) or t.shape != p.shape or t.dtype != p.dtype:
            raise ValueError(f"{key}.{name} is not one of the model's trained tensors, of its shape and dtype")
    if key == "weights" and set(weights) != set(params):
        raise ValueError(f"{key} lacks {sorted(set(params) - set(weights))}")


def _to_cpu(value):
    """A state dict (nested dicts and lists of tensors) with every tensor copied to the CPU."""
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_cpu(v) for v in value)
    return value.detach().cpu().clone() if isinstance(value, Tensor) else value


def _rng_state(rng: np.random.Generator) -> dict:
    """numpy's generator state with its 128-bit integers as strings (a checkpoint holds no pickled objects)."""
    state = rng.bit_generator.state
    return {"bit_generator": state["bit_generator"], "state": str(state["state"]["state"]),
            "inc": str(state["state"]["inc"]), "has_uint32": int(state["has_uint32"]),
            "uinteger": int(state["uinteger"])}


def _set_rng_state(rng: np.random.Generator, saved: dict) -> None:
    rng.bit_generator.state = {"bit_generator": saved["bit_generator"],
                               "state": {"state": int(saved["state"]), "inc": int(saved["inc"])},
                               "has_uint32": saved["has_uint32"], "uinteger": saved["uinteger"]}


class StepLoss(torch.nn.Module):
    """A training step's loss as a module (so that DistributedDataParallel can wrap it).

    MSE of the pairs' scores against their targets, plus ``--all-items``'s term: the squared
    score of every (user, item) pair of the step's users, target 0, estimated from the
    sampled items and matched to the share of pairs scored.
    """

    def __init__(self, model: GCNNetwork, graph: Graph, adj: Tensor, cached: Tensor | None,
                 cfg: TrainConfig, device: torch.device):
        super().__init__()
        self.model = model
        self.graph, self.adj, self.cached, self.cfg, self.device = graph, adj, cached, cfg, device

    def forward(self, u: np.ndarray, t: np.ndarray, y: np.ndarray, users: np.ndarray, items: np.ndarray | None,
                share: float) -> Tensor:
        graph, model = self.graph, self.model
        if not len(y):  # a rank whose share of a tiny group holds no pairs: a zero that still reaches every weight
            return sum(p.sum() for p in model.parameters() if p.requires_grad) * 0.0
        t = t + graph.item_offset
        drop = _own_edges(u[y > 0], t[y > 0], graph.num_nodes) if self.cfg.disjoint else None
        wanted = [u, t] if items is None else [u, t, users, items + graph.item_offset]
        z = _embed_nodes(model, graph, self.adj, self.cached, wanted, self.device, drop)
        loss = torch.nn.functional.mse_loss(model.score(z[0], z[1]), torch.from_numpy(y).to(self.device))
        if items is not None:
            every = model.scorer.score_all(z[2], z[3]).pow(2).sum() * (graph.num_items / len(items))
            loss = loss + self.cfg.all_items * share * every / max(len(y), 1)
        return loss


def evaluate_split(model: GCNNetwork, graph: Graph, adj: Tensor, heldout: UserItems,
                   exclude: UserItems, k: int, cached: Tensor | None = None) -> dict[str, float]:
    """Metrics of the model's current weights on one held-out part (all items ranked)."""
    model.eval()
    with torch.no_grad():
        z = model(adj, cached)
        users, items = split_embeddings(z, graph)
        ranker = NormOrderedTopK(users * model.scorer.weight[0], items, float(model.scorer.bias))
    return evaluate(None, heldout, exclude, graph.num_items, k, top_k_fn=ranker)


def _own_edges(u: np.ndarray, t: np.ndarray, num_nodes: int) -> np.ndarray:
    """Sorted adjacency keys (row * num_nodes + col) of the edges between the pairs' nodes, both ways."""
    return np.unique(np.concatenate([u * num_nodes + t, t * num_nodes + u]))


def _embed_nodes(model: GCNNetwork, graph: Graph, adj: Tensor, cached: Tensor | None,
                 wanted: list[np.ndarray], device: torch.device, drop: np.ndarray | None = None) -> list[Tensor]:
    """Embeddings at each array of node ids in ``wanted``: a (len(w), width) tensor for each.

    With ``cached`` (frozen node vectors) only the wanted nodes are embedded, from the
    adjacency's rows at them, leaving out the edges keyed in ``drop`` (``--disjoint``: a
    pair's score then cannot read its own edge); otherwise the whole graph is.
    """
    if cached is None:
        z = model(adj)  # (N, width): the whole graph, every step
        index = wanted
    else:
        rows = np.unique(np.concatenate(wanted))
        block, cols = graph.row_block(rows, drop)
        z = model.forward_rows(cached[torch.from_numpy(cols).to(device)], block_to(block, device),
                               torch.from_numpy(rows).to(device))
        index = [np.searchsorted(rows, w) for w in wanted]
    # index_select: its backward is one index_add, where z[idx]'s is a (deterministic, sorting) index_put.
    return [z.index_select(0, torch.from_numpy(i).to(device)) for i in index]


def block_to(block: Tensor, device: torch.device) -> Tensor:
    """``graph.row_block``'s block on ``device`` with its ``transposed`` beside it (``.to`` drops
    Python attributes, and without it the backward pass sorts the block to transpose it)."""
    moved = block.to(device)
    if moved is not block:
        moved.transposed = block.transposed.to(device)
    return moved


def _with_negatives(rng: np.random.Generator, pos_user: np.ndarray, pos_item: np.ndarray,
                    pos_target: np.ndarray, known_keys: np.ndarray, num_items: int,
                    negatives: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Observed pairs (target = scaled weight) plus random non-edges of the same users (target 0)."""
    neg_user = np.repeat(pos_user, negatives)
    neg_item = rng.integers(0, num_items, size=len(neg_user))
    # A "non-edge" that is a training pair would teach the model to forget it: drop those.
    keys = neg_user * num_items + neg_item
    pos = np.clip(np.searchsorted(known_keys, keys), 0, len(known_keys) - 1)
    fresh = known_keys[pos] != keys
    neg_user, neg_item = neg_user[fresh], neg_item[fresh]
    return (np.concatenate([pos_user, neg_user]),
            np.concatenate([pos_item, neg_item]),
            np.concatenate([pos_target, np.zeros(len(neg_user), np.float32)]))
