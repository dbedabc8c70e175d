"""The metrics users quote, of exact top-k lists over every item with known items masked.

Definitions (means over the users who have held-out items; a held-out pair whose item
never appears in training is one of them, and always a miss):
    Recall@k   = hits in the top k / number of the user's held-out items
    NDCG@k     = DCG@k / IDCG@k, DCG = sum of 1 / log2(rank + 1) over hits (rank from 1),
                 IDCG over min(|held-out|, k) hits at the top
    HitRate@k  = 1 if the top k holds at least one held-out item, else 0
    Coverage@k = distinct items in all evaluated users' top k / number of items
"""

from __future__ import annotations

import numpy as np
import torch

from .ranking import ScoreFn, TopKFn, top_k
from .types import UserItems


def ranking_metrics(users: np.ndarray, top_items: np.ndarray, top_scores: np.ndarray,
                    heldout: UserItems, num_items: int, k: int) -> dict[str, float]:
    """Recall@k, NDCG@k, HitRate@k and Coverage@k of ranked lists against held-out items.

    Args:
        users: (n,) evaluated users, each with at least one held-out item.
        top_items: (n, >=k) ranked items per user; top_scores marks padding with -inf.
        heldout: the held-out items of every user.
        num_items: size of the catalogue, for coverage.
        k: cut-off.
    """
    if not len(users):  # nobody to evaluate (a tiny dataset): no figure, and no numpy warning
        return {f"{name}@{k}": float("nan") for name in ("recall", "ndcg", "hitrate", "coverage")}
    top_items, top_scores = top_items[:, :k], top_scores[:, :k]
    valid = np.isfinite(top_scores)
    keys = users[:, None].astype(np.int64) * num_items + top_items
    heldout_keys = heldout.keys(num_items)
    pos = np.clip(np.searchsorted(heldout_keys, keys), 0, max(len(heldout_keys) - 1, 0))
    hits = (heldout_keys[pos] == keys) & valid if len(heldout_keys) else np.zeros_like(valid)
    n_held = heldout.heldout_counts()[users]
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = (hits * discount[: hits.shape[1]]).sum(1)
    idcg = np.cumsum(discount)[np.minimum(n_held, k) - 1]
    return {
        f"recall@{k}": float(np.mean(hits.sum(1) / n_held)),
        f"ndcg@{k}": float(np.mean(dcg / idcg)),
        f"hitrate@{k}": float(np.mean(hits.any(1))),
        f"coverage@{k}": float(len(np.unique(top_items[valid])) / num_items),
    }


def evaluate(score_fn: ScoreFn | None, heldout: UserItems, exclude: UserItems, num_items: int, k: int = 20,
             batch_size: int | None = None, top_k_fn: TopKFn | None = None) -> dict[str, float]:
    """Rank every item for each user with held-out items, excluded items masked, and score it.

    ``top_k_fn(users, k, exclude)``, when given, ranks instead of ``top_k`` over ``score_fn``'s
    rows (e.g. ``NormOrderedTopK``: the same ranking without scoring every item).
    """
    users = np.flatnonzero(heldout.heldout_counts() > 0)
    if top_k_fn is not None:
        items, scores = top_k_fn(users, k, exclude)
    else:
        items, scores = top_k(score_fn, users, k, exclude, batch_size)
    metrics = ranking_metrics(users, items, scores, heldout, num_items, k)
    metrics["users"] = float(len(users))
    return metrics


def popularity_scores(train_items: np.ndarray, num_items: int) -> ScoreFn:
    """The popularity baseline: every user gets items ranked by their number of training users."""
    pop = torch.from_numpy(np.bincount(train_items, minlength=num_items).astype(np.float32))
    return lambda users: pop.expand(len(users), num_items).clone()


def popularity_top_k(train_items: np.ndarray, users: np.ndarray, k: int, exclude: UserItems | None,
                     num_items: int) -> tuple[np.ndarray, np.ndarray]:
    """``top_k`` of the popularity baseline without scoring every item for every user.

    Every user shares one ranking, so each user's list is the head of the global order with
    their excluded items skipped: the first k + |excluded| items always suffice.
    Ties go to the lower item index.
    """
    pop = np.bincount(train_items, minlength=num_items).astype(np.float32)
    order = np.argsort(-pop, kind="stable")
    k = min(k, num_items)
    items = np.zeros((len(users), k), np.int64)
    scores = np.full((len(users), k), -np.inf, np.float32)
    for row, user in enumerate(users):
        skip = exclude.of(user) if exclude is not None else np.zeros(0, np.int64)
        head = order[: k + len(skip)]
        head = head[~np.isin(head, skip)][:k]
        items[row, : len(head)], scores[row, : len(head)] = head, pop[head]
    return items, scores


def evaluate_popularity(train_items: np.ndarray, heldout: UserItems, exclude: UserItems, num_items: int,
                        k: int = 20) -> dict[str, float]:
    """``evaluate`` for the popularity baseline, by ``popularity_top_k``."""
    users = np.flatnonzero(heldout.heldout_counts() > 0)
    items, scores = popularity_top_k(train_items, users, k, exclude, num_items)
    metrics = ranking_metrics(users, items, scores, heldout, num_items, k)
    metrics["users"] = float(len(users))
    return metrics


def subsample_users(items: UserItems, max_users: int, rng: np.random.Generator) -> UserItems:
    """Keep the items of at most ``max_users`` users (a seeded sample); the others get none.

    Validation checks rank every item for every sampled user; on a large catalogue a full
    check costs more than an epoch, and a sample of users tells epochs apart.
    """
    users = np.flatnonzero(items.counts() > 0)
    if len(users) <= max_users:
        return items
    return only_users(items, rng.choice(users, size=max_users, replace=False))


def only_users(items: UserItems, users: np.ndarray) -> UserItems:
    """``items`` of ``users`` alone; the others get none."""
    chosen = np.zeros(items.num_users, dtype=bool)
    chosen[users] = True
    owner = np.repeat(np.arange(items.num_users), items.counts())
    keep = chosen[owner]
    return UserItems.from_pairs(owner[keep], items.items[keep], items.num_users)
