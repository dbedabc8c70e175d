"""Recommendations from a checkpoint alone: no CSV, no graph, no ``torch_geometric``."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from .checkpoint import RecommenderData, load_checkpoint
from .evaluate import top_k as rank_top_k
from .gcn import MODELS
from .recommender import Recommender

__all__ = ["RecommenderData", "get_recommendations", "item_labels", "load_model", "recommend_all",
           "write_recommendations"]


def load_model(path: str | os.PathLike = "gnn_model.pth") -> tuple[Recommender, RecommenderData]:
    """Load a checkpoint written by ``train_gnn.py``.

    Args:
        path: the checkpoint file.

    Returns:
        (model, data): the fitted model (``model.network()`` rebuilds a GCN's layers) and the
        names and known items it recommends with.

    Raises:
        ValueError: the file is missing, corrupt, unsafe or not a Melody Map checkpoint.
    """
    record, data = load_checkpoint(path)
    if record["name"] not in MODELS:
        raise ValueError(f"{path}: unknown model {record['name']!r} (this version knows {', '.join(MODELS)}); "
                         f"train one with: python train_gnn.py")
    return MODELS[record["name"]].from_state(record["params"], record["state"]), data


def get_recommendations(model: Recommender, data: RecommenderData, user_idx: int | None = None,
                        top_k: int = 5, *, user_id: str | None = None,
                        include_known: bool = False) -> pd.DataFrame:
    """The best items for one user, best first.

    Args:
        model: from ``load_model``.
        data: from ``load_model``.
        user_idx: the user's index, 0 .. data.num_users - 1 (or give ``user_id``).
        top_k: how many items; clipped to what the catalogue has left.
        user_id: the dataset's own user id, instead of ``user_idx``.
        include_known: also rank items the user already has.

    Returns:
        A DataFrame with columns rank, [artist,] track (or item), [item_id,] score and
        track_index (or item_index): artist for a playlists CSV, item_id for a plain table.

    Raises:
        ValueError: unknown user, index out of range, or top_k < 1.
    """
    user = _resolve_user(data, user_idx, user_id)
    _check_top_k(top_k)
    exclude = np.zeros(0, np.int64) if include_known else data.known.of(user)
    items, scores = model.recommend(user, int(top_k), exclude)
    cat, noun = data.catalogue, data.catalogue.noun
    columns: dict[str, Any] = {"rank": np.arange(1, len(items) + 1)}
    if cat.artist_names is not None:
        columns["artist"] = cat.artist_names.take(pa.array(cat.item_artist[items])).to_pylist()
    columns[noun] = cat.item_names.take(pa.array(items)).to_pylist()
    if cat.item_ids is not None:
        columns["item_id"] = cat.item_ids.take(pa.array(items)).to_pylist()
    columns["score"] = np.asarray(scores, np.float64)
    columns[f"{noun}_index"] = items
    return pd.DataFrame(columns)


def recommend_all(model: Recommender, data: RecommenderData,
                  top_k: int = 20) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every user's top items, ranked exactly as train_gnn.py's test metrics rank them: all
    items scored, the items the model fitted and validated on left out.

    Returns:
        users (n,), items (n, k) and scores (n, k), best first; -inf scores mark padding
        where a user has fewer than k items left.
    """
    _check_top_k(top_k)
    users = np.arange(data.num_users)
    items, scores = rank_top_k(model.scores, users, int(top_k), data.trained)
    return users, items, scores


def item_labels(data: RecommenderData) -> np.ndarray:
    """Each item as output files name it: a plain table's own id, or "artist - title"."""
    cat = data.catalogue
    if cat.item_ids is not None:
        return np.asarray(cat.item_ids.to_pylist(), dtype=object)
    artists = np.asarray(cat.artist_names.to_pylist(), dtype=object)[cat.item_artist]
    titles = np.asarray(cat.item_names.to_pylist(), dtype=object)
    return np.array([f"{a} - {t}" for a, t in zip(artists, titles)], dtype=object)


def write_recommendations(path: str | os.PathLike, data: RecommenderData, users: np.ndarray,
                          items: np.ndarray, scores: np.ndarray) -> int:
    """Write ``user<TAB>item<TAB>rank<TAB>score`` lines with the dataset's own ids; returns the count.

    Tabs and line breaks inside names become spaces.
    """
    names = item_labels(data)
    clean = str.maketrans({"\t": " ", "\n": " ", "\r": " "})
    user_ids = data.user_ids.to_pylist()
    count = 0
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for row, user in enumerate(users):
            uid = str(user_ids[user]).translate(clean)
            for rank, (item, score) in enumerate(zip(items[row], scores[row]), start=1):
                if not np.isfinite(score):
                    break
                f.write(f"{uid}\t{str(names[item]).translate(clean)}\t{rank}\t{score:.6g}\n")
                count += 1
    return count


def _check_top_k(top_k: Any) -> None:
    if not isinstance(top_k, (int, np.integer)) or isinstance(top_k, bool) or top_k < 1:
        raise ValueError(f"top_k must be a whole number >= 1, got {top_k!r}")


def _resolve_user(data: RecommenderData, user_idx: int | None, user_id: str | None) -> int:
    if (user_idx is None) == (user_id is None):
        raise ValueError("give exactly one of user_idx (an index) or user_id (the dataset's user id)")
    if user_id is not None:
        return data.user_index(user_id)
    if not isinstance(user_idx, (int, np.integer)) or isinstance(user_idx, bool) \
            or not 0 <= user_idx < data.num_users:
        raise ValueError(f"user index {user_idx!r} is out of range: valid indices are 0..{data.num_users - 1}")
    return int(user_idx)
