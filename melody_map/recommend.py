"""Stage 6: recommendations from a checkpoint alone (no CSV, no graph)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import torch

from .checkpoint import load_checkpoint, unpack_strings
from .evaluate import UserItems, embedding_scores, top_k
from .scorer import PairScorer

if TYPE_CHECKING:
    from .model import GCNRecommender


@dataclass
class RecommenderData:
    """Everything a checkpoint holds besides the model's weights."""

    config: dict[str, Any]
    user_ids: pa.Array  # (users,) the dataset's user_id strings
    artist_names: pa.Array  # (artists,)
    track_titles: pa.Array  # (tracks,)
    track_artist: np.ndarray  # (tracks,) artist index of each track
    known: UserItems  # every track in each user's playlists
    user_embeddings: torch.Tensor  # (users, dim) final GCN output
    track_embeddings: torch.Tensor  # (tracks, dim)
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def num_users(self) -> int:
        return len(self.user_ids)

    @property
    def num_tracks(self) -> int:
        return len(self.track_titles)

    def user_index(self, user_id: str) -> int:
        """Index of a dataset user_id; ValueError when the checkpoint does not know it."""
        idx = pc.index(self.user_ids, str(user_id).strip()).as_py()
        if idx < 0:
            raise ValueError(f"unknown user id {user_id!r}: this checkpoint has {self.num_users:,} users "
                             f"(e.g. {self.user_ids[0].as_py()!r}); use --user 0..{self.num_users - 1} or a listed id")
        return idx


def load_model(path: str | os.PathLike = "gnn_model.pth",
               layers: bool = True) -> tuple[GCNRecommender | PairScorer, RecommenderData]:
    """Load a checkpoint written by ``train_gnn.py``.

    The model is rebuilt from the stored config and filled with ``load_state_dict``, exactly
    as ``model.load_state_dict(torch.load(path, weights_only=True)["state_dict"])`` would.

    Args:
        path: the checkpoint file.
        layers: rebuild the whole GCN (default). With False, return only its trained
            ``PairScorer``: ranking needs nothing else (the final embeddings are stored), and
            it spares the command line the import of torch_geometric.

    Returns:
        (model, data): the trained model in eval mode and the data it recommends from.

    Raises:
        ValueError: the file is missing, corrupt, unsafe or not a Melody Map checkpoint.
    """
    ckpt = load_checkpoint(path)
    cfg, state = ckpt["config"], ckpt["state_dict"]
    if layers:
        from .model import GCNRecommender  # imports torch_geometric (~1.3 s)

        with torch.device("meta"):  # no throw-away random init: the weights are assigned below
            model = GCNRecommender(state["embedding.weight"].shape[0], cfg["dim"], cfg["dropout"],
                                   cfg["fixed_features"])
        model.load_state_dict(state, assign=True)
    else:
        with torch.device("meta"):
            model = PairScorer(cfg["dim"])
        model.load_state_dict({"weight": state["scorer.weight"], "bias": state["scorer.bias"]}, assign=True)
    model.eval()
    data = RecommenderData(
        config=cfg,
        user_ids=unpack_strings(ckpt["user_ids"]),
        artist_names=unpack_strings(ckpt["artist_names"]),
        track_titles=unpack_strings(ckpt["track_titles"]),
        track_artist=ckpt["track_artist"].numpy(),
        known=UserItems(ckpt["known_indptr"].numpy(), ckpt["known_tracks"].numpy()),
        user_embeddings=ckpt["user_embeddings"],
        track_embeddings=ckpt["track_embeddings"],
        metrics=ckpt.get("metrics", {}),
    )
    return model, data


def get_recommendations(model: GCNRecommender | PairScorer, data: RecommenderData, user_idx: int | None = None,
                        top_k: int = 5, *, user_id: str | None = None,
                        include_known: bool = False) -> pd.DataFrame:
    """The best tracks for one user, best first.

    Args:
        model: from ``load_model``.
        data: from ``load_model``.
        user_idx: the user's index, 0 .. data.num_users - 1 (or give ``user_id``).
        top_k: how many tracks; clipped to what the catalogue has left.
        user_id: the dataset's own user_id string, instead of ``user_idx``.
        include_known: also rank tracks already in the user's playlists.

    Returns:
        A DataFrame with columns rank, artist, track, score, track_index.

    Raises:
        ValueError: unknown user, index out of range, or top_k < 1.
    """
    user = _resolve_user(data, user_idx, user_id)
    if not isinstance(top_k, (int, np.integer)) or isinstance(top_k, bool) or top_k < 1:
        raise ValueError(f"top_k must be a whole number >= 1, got {top_k!r}")
    exclude = None if include_known else data.known
    items, scores = _rank(model, data, np.array([user]), int(top_k), exclude)
    keep = np.isfinite(scores[0])
    tracks, scores = items[0][keep], scores[0][keep]
    return pd.DataFrame({
        "rank": np.arange(1, len(tracks) + 1),
        "artist": data.artist_names.take(pa.array(data.track_artist[tracks])).to_pylist(),
        "track": data.track_titles.take(pa.array(tracks)).to_pylist(),
        "score": scores.astype(np.float64),
        "track_index": tracks,
    })


def _rank(model: GCNRecommender | PairScorer, data: RecommenderData, users: np.ndarray, k: int,
          exclude: UserItems | None) -> tuple[np.ndarray, np.ndarray]:
    return top_k(embedding_scores(model, data.user_embeddings, data.track_embeddings), users, k, exclude)


def _resolve_user(data: RecommenderData, user_idx: int | None, user_id: str | None) -> int:
    if (user_idx is None) == (user_id is None):
        raise ValueError("give exactly one of user_idx (an index) or user_id (the dataset's user id)")
    if user_id is not None:
        return data.user_index(user_id)
    if not isinstance(user_idx, (int, np.integer)) or isinstance(user_idx, bool) \
            or not 0 <= user_idx < data.num_users:
        raise ValueError(f"user index {user_idx!r} is out of range: valid indices are 0..{data.num_users - 1}")
    return int(user_idx)
