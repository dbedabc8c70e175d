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
from typing import Callable

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor
from tqdm import tqdm  # text bars: a notebook without ipywidgets gets them too

from .allocator import reuse_freed_memory
from .config import TrainConfig
from .distributed import Group
from .evaluate import NormOrderedTopK, UserItems, evaluate, subsample_users
from .graph import Graph
from .model import GCNRecommender
from .recommender import FitReport
from .spectral import spectral_embedding, tag_embedding
from .split import TRAIN, VALID, Pairs

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
                  item_tags: sp.csr_matrix | None = None) -> GCNRecommender:
    """A fresh, seeded GCN over ``graph``, its node vectors started as ``cfg.init`` says.

    Raises:
        ValueError: ``--init spectral+tags`` without ``item_tags`` (the data's ``--item-tags``).
    """
    if cfg.init == "spectral+tags" and item_tags is None:
        raise ValueError("--init spectral+tags needs the items' tags: pass --item-tags FILE")
    torch.manual_seed(cfg.seed)
    net = GCNRecommender(graph.num_nodes, cfg.dim, cfg.dropout, cfg.fixed_features, cfg.combine, cfg.conv)
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


def train(model: GCNRecommender, graph: Graph, pairs: Pairs, cfg: TrainConfig, device: torch.device,
          progress: bool = True, stop: Callable[[], bool] | None = None, resume: dict | None = None) -> FitReport:
    """Fit ``model`` in place (deterministically: same seed, same weights); see ``_train``.

    Under ``torchrun`` (``distributed.Group``) every rank runs this with the same data and seed.
    """
    # Multi-threaded scatter-adds in the backward pass sum in varying order; the
    # deterministic kernels make the same seed give the same model bit for bit.
    was = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        return _train(model, graph, pairs, cfg, device, progress, stop or (lambda: False), resume, Group.current())
    finally:
        torch.use_deterministic_algorithms(was)


def _train(model: GCNRecommender, graph: Graph, pairs: Pairs, cfg: TrainConfig, device: torch.device,
           progress: bool, stop: Callable[[], bool], resume: dict | None, ranks: Group) -> FitReport:
    """Fit ``model`` in place and leave it holding the best validation weights.

    Args:
        model: a fresh GCNRecommender over graph.num_nodes nodes.
        graph: the training graph (its adjacency holds training pairs only).
        pairs: all pairs with their split; TRAIN ones are fitted, VALID ones select the epoch.
        cfg: epochs, steps_per_epoch, pairs_per_epoch, lr, negatives, eval_every, valid_users,
            patience, k, seed.
        device: where to train.
        progress: show a tqdm bar.
        stop: read after each step; True ends training there (``FitReport.resume`` holds its state).
        resume: an interrupted run's ``FitReport.resume``, to carry on from.
        ranks: the torchrun ranks. Each draws the same step, takes its share of the step's
            users and their pairs, and DistributedDataParallel averages the gradients; rank 0
            validates and tells the others.
    """
    rng = np.random.default_rng(cfg.seed + 1)
    adj = graph.adj.to(device)
    model.to(device)
    train_mask = pairs.part == TRAIN
    pos_user, pos_item = pairs.user[train_mask], pairs.item[train_mask]
    pos_target = pair_targets(pairs.weight[train_mask])
    known = UserItems.from_pairs(pos_user, pos_item, graph.num_users)
    known_keys = known.keys(graph.num_items)
    valid = subsample_users(UserItems.from_pairs(*pairs.select(VALID), graph.num_users), cfg.valid_users,
                             np.random.default_rng(cfg.seed + 2))
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.lr)
    # Frozen node vectors: the first layer's sparse product never changes, and a step only
    # needs the second layer at its batch's nodes (graph.row_block), not the whole graph.
    cached = model.first_layer_input(adj) if model.caches_first_layer else None
    # Pair positions of each user (pairs come sorted by user): a step's batch is the pairs of
    # a random group of users, sub-sampled to its share of the epoch. Few users per step keep
    # a frozen-vector step's block of the graph small at full scale (each user brings all of
    # their items' rows); at least MIN_GROUP_USERS (or all) keep small graphs' batches varied.
    user_pairs = UserItems(indptr=known.indptr, items=np.arange(len(pos_user)))
    active_users = np.flatnonzero(known.counts() > 0)
    steps = min(cfg.steps_per_epoch, max(len(active_users), 1))
    group = min(len(active_users), max(-(-len(active_users) // steps), MIN_GROUP_USERS))
    pairs_per_step = min(cfg.pairs_per_epoch, len(pos_user)) / steps
    item_sample = min(cfg.item_sample, graph.num_items)

    def draw() -> tuple[np.ndarray, float, np.ndarray | None, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """One step's users, their pairs' share, the all-items term's items, and the scored pairs."""
        users = np.sort(rng.choice(active_users, size=group, replace=False))
        batch = user_pairs.batch(users)[1]
        share = 1.0  # the share of the group's pairs in the step, which the all-items term matches
        if len(batch) > pairs_per_step:
            share = pairs_per_step / len(batch)
            batch = batch[rng.random(len(batch)) < share]
        items = None
        if cfg.all_items > 0:  # items for the all-items term: a random sample, or all of them
            items = np.sort(rng.choice(graph.num_items, size=item_sample, replace=False))
        return users, share, items, _with_negatives(rng, pos_user[batch], pos_item[batch], pos_target[batch],
                                                    known_keys, graph.num_items, cfg.negatives)

    has_valid = bool(valid.counts().sum())
    result = FitReport()
    best_state, best_recall, stale = None, -1.0, 0

    def check(record: dict) -> float:
        """Validate the current weights into ``record``; keep them if they are the best so far."""
        nonlocal best_state, best_recall, stale
        # Rank 0 validates; every rank gets its metrics, so all keep the same weights and stop together.
        metrics = evaluate_split(model, graph, adj, valid, known, cfg.k, cached) if ranks.rank == 0 else None
        metrics = ranks.broadcast(metrics)
        record.update({f"valid_{name}": value for name, value in metrics.items()})
        recall = metrics[f"recall@{cfg.k}"]
        if recall > best_recall:
            best_recall, stale = recall, 0
            # The trained tensors only: frozen node vectors (large at full scale) never change.
            best_state = {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}
            result.best_epoch, result.best_valid = record["epoch"], metrics
        else:
            stale += 1
        return recall

    def snapshot(epoch: int, step: int, losses: list[float]) -> dict:
        """Everything the rest of the run depends on, as tensors, numbers and strings."""
        trained = {name: p.detach().cpu().clone() for name, p in model.named_parameters() if p.requires_grad}
        return {"epoch": epoch, "step": step, "steps": steps, "losses": [float(x) for x in losses],
                "weights": trained, "optimizer": _to_cpu(optimizer.state_dict()),
                "numpy_rng": _rng_state(rng), "torch_rng": torch.get_rng_state(),
                **({"cuda_rng": torch.cuda.get_rng_state(device)} if device.type == "cuda" else {}),
                "best": {} if best_state is None else _to_cpu(best_state), "best_recall": best_recall,
                "stale": stale, "history": result.history, "best_epoch": result.best_epoch,
                "best_valid": result.best_valid}

    step_loss = ranks.wrap(StepLoss(model, graph, adj, cached, cfg, device))
    first_epoch, first_step, losses = 1, 0, []
    if resume is not None:
        first_epoch, first_step, losses = resume["epoch"], resume["step"], list(resume["losses"])
        if resume["steps"] != steps:
            raise ValueError(f"the checkpoint's run took {resume['steps']} steps an epoch, this one {steps}: "
                             "resume with the same data and options")
        try:
            _check_weights(model, resume["weights"], "weights")
            _check_weights(model, resume["best"], "best")
            model.load_state_dict(resume["weights"], strict=False)
            optimizer.load_state_dict(resume["optimizer"])
            _set_rng_state(rng, resume["numpy_rng"])
            saved = resume["torch_rng"]
            if saved.dtype != torch.uint8 or saved.shape != torch.get_rng_state().shape:
                raise ValueError("torch_rng is not a torch generator state")
        except (KeyError, TypeError, ValueError, RuntimeError) as e:
            reason = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
            raise ValueError(f"--resume: the checkpoint's training state does not fit this model ({reason}); "
                             "train anew without --resume") from None
        best_state = {name: t.to(device) for name, t in resume["best"].items()} or None
        best_recall, stale = resume["best_recall"], resume["stale"]
        result.history, result.best_epoch, result.best_valid = (list(resume["history"]), resume["best_epoch"],
                                                                 resume["best_valid"])
    elif has_valid:  # epoch 0: the untrained start, which training must beat to be kept
        start = {"epoch": 0, "loss": None, "seconds": 0.0}
        check(start)
        result.history.append(start)
    if resume is not None:  # last, so that nothing above draws from the restored generator
        torch.set_rng_state(resume["torch_rng"])
        if "cuda_rng" in resume and device.type == "cuda":
            torch.cuda.set_rng_state(resume["cuda_rng"], device)
    bar = tqdm(range(first_epoch, cfg.epochs + 1), desc="training", unit="epoch",
               disable=not progress or ranks.rank != 0,
               initial=first_epoch - 1, total=cfg.epochs)
    for epoch in bar:
        started = time.perf_counter()
        model.train()
        if epoch != first_epoch:
            losses = []
        with reuse_freed_memory():  # each step reallocates the last one's tensors: keep them mapped
            for step in range(first_step if epoch == first_epoch else 0, steps):
                if ranks.any(stop()):  # Ctrl-C (on any rank): hand back the state before this step
                    result.resume = snapshot(epoch, step, losses)
                    break
                users, share, items, (u, t, y) = draw()  # the same draw on every rank
                if ranks.size > 1:  # this rank's share of the group's users, and their pairs
                    users = users[ranks.rank::ranks.size]
                    mine = np.isin(u, users)
                    u, t, y = u[mine], t[mine], y[mine]
                loss = step_loss(u, t, y, users, items, share)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                losses.append(loss.item())
        if result.resume is not None:
            break
        record = {"epoch": epoch, "loss": float(np.mean(losses)), "seconds": time.perf_counter() - started}
        if has_valid and (epoch % cfg.eval_every == 0 or epoch == cfg.epochs):
            recall = check(record)
            bar.set_postfix(loss=f"{record['loss']:.4f}", **{f"val_recall@{cfg.k}": f"{recall:.4f}"})
        else:
            bar.set_postfix(loss=f"{record['loss']:.4f}")
        result.history.append(record)
        if stale >= cfg.patience:
            break
    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state, strict=False)
    elif result.resume is None:  # no validation: the last epoch's weights
        result.best_epoch = len(result.history)  # epoch 0 is recorded only when validated
    return result


def _check_weights(model: GCNRecommender, weights: dict, key: str) -> None:
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

    def __init__(self, model: GCNRecommender, graph: Graph, adj: Tensor, cached: Tensor | None,
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


def evaluate_split(model: GCNRecommender, graph: Graph, adj: Tensor, heldout: UserItems,
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


def _embed_nodes(model: GCNRecommender, graph: Graph, adj: Tensor, cached: Tensor | None,
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
