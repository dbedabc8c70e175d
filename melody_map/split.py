"""(user, item) pairs and the one per-user hold-out split, for every input format.

A user's interaction with an item is one *pair*, however many rows stand behind it (a
track in several of the user's playlists); the pair's weight is the sum of its rows'
weights. Validation and test hold out whole pairs, so every row behind a held-out pair
(its user-item edge and the item-playlist edges in that user's playlists) leaves the
graph together.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from .types import PART_NAMES, TEST, TRAIN, VALID, Interactions


@dataclass(eq=False)
class Pairs:
    """Distinct (user, item) pairs with their split part.

    The pairs of the input rows come sorted by user then item; pairs of a fixed test
    table follow them.
    """

    user: np.ndarray  # (pairs,) int64
    item: np.ndarray  # (pairs,) int64
    weight: np.ndarray  # (pairs,) float32: the summed weight of the pair's rows
    part: np.ndarray  # (pairs,) int8: TRAIN, VALID or TEST
    row_pair: np.ndarray  # (rows,) int64: the pair behind each input row
    # (users,) int64 or None: each user's test pairs left out because their item never
    # appears in training (a fixed test table's); evaluation counts them as misses.
    unseen: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.user)

    def select(self, *parts: int) -> tuple[np.ndarray, np.ndarray]:
        """(users, items) of the pairs in ``parts``."""
        mask = np.isin(self.part, parts)
        return self.user[mask], self.item[mask]

    def counts(self) -> dict[str, int]:
        """Pairs per part, and ``unseen`` test pairs (counted as misses, not among the pairs) where any."""
        n = np.bincount(self.part, minlength=3)
        counts = {name: int(n[p]) for p, name in enumerate(PART_NAMES)}
        if self.unseen is not None and self.unseen.any():
            counts["test_unseen"] = int(self.unseen.sum())
        return counts

    def digest(self) -> str:
        """A short fingerprint of the pairs and their parts: equal digests, the same split."""
        h = hashlib.sha1()
        for a in (self.user, self.item, self.part):
            h.update(np.ascontiguousarray(a).tobytes())
        if self.unseen is not None and self.unseen.any():
            h.update(np.ascontiguousarray(self.unseen, dtype=np.int64).tobytes())
        return h.hexdigest()[:16]

    def rows_per_pair(self) -> np.ndarray:
        """(pairs,) how many input rows stand behind each pair (0 for a fixed test table's pairs)."""
        return np.bincount(self.row_pair, minlength=len(self))

    def with_valid_in_train(self) -> Pairs:
        """The same pairs with validation folded into training (for a refit)."""
        return replace(self, part=np.where(self.part == VALID, TRAIN, self.part).astype(np.int8))


def split_pairs(rows: Interactions, valid_frac: float, test_frac: float, min_user_pairs: int, seed: int,
                test: Interactions | None = None) -> Pairs:
    """Group rows into pairs and hold out a seeded share of each user's pairs.

    Args:
        rows: the coded input rows.
        valid_frac: share of each eligible user's pairs held out for validation.
        test_frac: share held out for the test; ignored when ``test`` is given.
        min_user_pairs: users with fewer pairs keep all of them in training.
        seed: the same seed gives the same split.
        test: a fixed test table coded with ``rows``' vocabularies: its pairs are the test part.

    Returns:
        The pairs with their part.
    """
    num_items = max(rows.catalogue.num_items, 1)
    keys = rows.user.astype(np.int64) * num_items + rows.item
    if rows.report.pairs and bool(np.all(np.diff(keys) > 0)):  # a table's rows: distinct pairs, sorted already
        row_pair, uniq, weight = np.arange(len(keys)), keys, rows.weight.astype(np.float32)
    else:  # sorted keys: pairs ordered by user then item, and row_pair maps every row to its pair
        row_pair, uniq = pd.factorize(keys, sort=True)
        weight = np.bincount(row_pair, weights=rows.weight, minlength=len(uniq)).astype(np.float32)
    user, item = uniq // num_items, uniq % num_items
    part = assign_parts(user, rows.catalogue.num_users, valid_frac, 0.0 if test is not None else test_frac,
                        min_user_pairs, seed)
    if test is not None:
        user, item = np.concatenate([user, test.user]), np.concatenate([item, test.item])
        weight = np.concatenate([weight, test.weight]).astype(np.float32)
        part = np.concatenate([part, np.full(len(test.user), TEST, np.int8)])
    return Pairs(user=user.astype(np.int64), item=item.astype(np.int64), weight=weight, part=part,
                 row_pair=row_pair.astype(np.int64), unseen=None if test is None else test.unseen)


def assign_parts(user: np.ndarray, num_users: int, valid_frac: float, test_frac: float, min_user_pairs: int,
                 seed: int) -> np.ndarray:
    """Each pair's part: a seeded ``test_frac`` and ``valid_frac`` of every eligible user's pairs.

    An eligible user (at least ``min_user_pairs`` pairs) holds out ``round(frac * n)`` pairs
    for each part whose share is above 0, at least one, and always keeps at least one pair
    in training (validation gives way first). ``round`` is numpy's: halves go to the even
    neighbour.

    Args:
        user: (pairs,) user of each pair.
        num_users: U.
        valid_frac, test_frac: shares held out (0 holds out none).
        min_user_pairs: users with fewer pairs keep all of them in training.
        seed: the same seed (and pair order) gives the same parts.

    Returns:
        (pairs,) int8 TRAIN, VALID or TEST.
    """
    rng = np.random.default_rng(seed)
    order = np.lexsort((rng.random(len(user)), user))  # each user's pairs in random order
    per_user = np.bincount(user, minlength=num_users)
    start = np.concatenate(([0], np.cumsum(per_user)[:-1]))
    rank = np.empty(len(user), dtype=np.int64)
    rank[order] = np.arange(len(user)) - start[user[order]]

    def held(frac: float) -> np.ndarray:
        n = np.maximum(1, np.round(per_user * frac)) if frac > 0 else np.zeros(num_users)
        return np.where(per_user >= min_user_pairs, n, 0).astype(np.int64)

    n_test = np.minimum(held(test_frac), np.maximum(per_user - 1, 0))
    n_valid = np.minimum(held(valid_frac), np.maximum(per_user - 1 - n_test, 0))
    part = np.full(len(user), TRAIN, dtype=np.int8)
    part[rank < n_test[user]] = TEST
    part[(rank >= n_test[user]) & (rank < n_test[user] + n_valid[user])] = VALID
    return part
