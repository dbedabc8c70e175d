"""Stage 2: (user, track) pairs and a per-user hold-out split that leaks nothing.

A user's interaction with a track is one *pair*, however many of the user's playlists
hold the track; the pair's weight is that count. Validation and test hold out whole
pairs, so every row behind a held-out pair (its user-track edge and the track-playlist
edges in that user's playlists) later leaves the graph together.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .data import Playlists

TRAIN, VALID, TEST = 0, 1, 2


@dataclass
class Pairs:
    """Distinct (user, track) pairs, sorted by user then track, with their split part."""

    user: np.ndarray  # (pairs,) int64
    track: np.ndarray  # (pairs,) int64
    weight: np.ndarray  # (pairs,) float32: how many of the user's playlists hold the track
    part: np.ndarray  # (pairs,) int8: TRAIN, VALID or TEST
    row_pair: np.ndarray  # (rows,) int64: the pair behind each playlist row

    def __len__(self) -> int:
        return len(self.user)

    def select(self, part: int) -> tuple[np.ndarray, np.ndarray]:
        """(users, tracks) of one part."""
        mask = self.part == part
        return self.user[mask], self.track[mask]

    def counts(self) -> dict[str, int]:
        n = np.bincount(self.part, minlength=3)
        return {"train": int(n[TRAIN]), "valid": int(n[VALID]), "test": int(n[TEST])}


def make_pairs(playlists: Playlists, valid_frac: float, test_frac: float, min_user_pairs: int,
               seed: int) -> Pairs:
    """Group rows into (user, track) pairs and hold out a seeded share of each user's pairs.

    Args:
        playlists: the coded rows.
        valid_frac: share of each eligible user's pairs held out for validation.
        test_frac: share held out for the test.
        min_user_pairs: users with fewer pairs keep all of them in training.
        seed: the same seed gives the same split.

    Returns:
        The pairs with their part; held-out pairs of an eligible user number at least one each.
    """
    num_tracks = playlists.num_tracks
    keys = playlists.user.astype(np.int64) * num_tracks + playlists.track
    # Sorted keys: pairs ordered by user then track, and row_pair maps every row to its pair.
    row_pair, uniq = pd.factorize(keys, sort=True)
    weight = np.bincount(row_pair, minlength=len(uniq)).astype(np.float32)
    user, track = uniq // num_tracks, uniq % num_tracks

    part = assign_parts(user, playlists.num_users, valid_frac, test_frac, min_user_pairs, seed)
    return Pairs(user=user, track=track, weight=weight, part=part, row_pair=row_pair)


def assign_parts(user: np.ndarray, num_users: int, valid_frac: float, test_frac: float, min_user_pairs: int,
                 seed: int) -> np.ndarray:
    """Each pair's part: a seeded ``test_frac`` and ``valid_frac`` of every eligible user's pairs.

    Args:
        user: (pairs,) user of each pair.
        num_users: U.
        valid_frac, test_frac: shares held out (0 holds out none).
        min_user_pairs: users with fewer pairs keep all of them in training.
        seed: the same seed (and pair order) gives the same parts.

    Returns:
        (pairs,) int8 TRAIN, VALID or TEST; an eligible user holds out at least one pair in
        each part whose share is above 0.
    """
    rng = np.random.default_rng(seed)
    order = np.lexsort((rng.random(len(user)), user))  # each user's pairs in random order
    per_user = np.bincount(user, minlength=num_users)
    start = np.concatenate(([0], np.cumsum(per_user)[:-1]))
    rank = np.empty(len(user), dtype=np.int64)
    rank[order] = np.arange(len(user)) - start[user[order]]

    eligible = per_user >= min_user_pairs
    n_test = np.where(eligible, np.maximum(1, np.round(per_user * test_frac)), 0).astype(np.int64)
    n_valid = np.where(eligible, np.maximum(1, np.round(per_user * valid_frac)), 0).astype(np.int64)
    if test_frac == 0:
        n_test[:] = 0
    if valid_frac == 0:
        n_valid[:] = 0
    part = np.full(len(user), TRAIN, dtype=np.int8)
    part[rank < n_test[user]] = TEST
    part[(rank >= n_test[user]) & (rank < n_test[user] + n_valid[user])] = VALID
    return part


def table_pairs(train_user: np.ndarray, train_item: np.ndarray, train_weight: np.ndarray, num_users: int,
                valid_frac: float, test_frac: float, min_user_pairs: int, seed: int,
                test: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> Pairs:
    """Pairs of a plain interaction table (one row per pair already), with their parts.

    Without ``test``, validation and test are held out per user as ``make_pairs`` does; with a
    fixed test table (user, item, weight), its pairs are the test part and validation is
    carved from the training table.
    """
    part = assign_parts(train_user, num_users, valid_frac, 0.0 if test is not None else test_frac,
                        min_user_pairs, seed)
    user, item, weight = train_user, train_item, train_weight
    if test is not None:
        user, item, weight = (np.concatenate([a, b]) for a, b in zip((user, item, weight), test))
        part = np.concatenate([part, np.full(len(test[0]), TEST, np.int8)])
    return Pairs(user=np.asarray(user, np.int64), track=np.asarray(item, np.int64),
                 weight=np.asarray(weight, np.float32), part=part, row_pair=np.arange(len(user)))
