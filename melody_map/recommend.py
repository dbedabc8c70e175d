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
from .evaluate import UserItems, embedding_scores
from .evaluate import top_k as rank_top_k
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
    known: UserItems  # every track in each user's playlists (a plain table: its training table's items)
    trained: UserItems  # the tracks the model trained and validated on, which the test metrics exclude
    user_embeddings: torch.Tensor  # (users, dim) final GCN output
    track_embeddings: torch.Tensor  # (tracks, dim)
    metrics: dict[str, Any] = field(default_factory=dict)
    item_ids: pa.Array | None = None  # a plain table's own item ids (None for playlists)
    blend: dict[str, float] | None = None  # --model gcn+gf-cf: GF-CF's k, alpha and the GCN's weight
    _filter: Any = field(default=None, repr=False)  # the rebuilt GF-CF filter of a blend, built once
    _norm_index: tuple[torch.Tensor, torch.Tensor] | None = field(default=None, repr=False)

    @property
    def num_users(self) -> int:
        return len(self.user_ids)

    @property
    def num_tracks(self) -> int:
        return len(self.track_titles)

    def norm_order(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Track indices by decreasing embedding norm, and those norms (computed once)."""
        if self._norm_index is None:
            norms = self.track_embeddings.norm(dim=1)
            order = torch.argsort(norms, descending=True)
            self._norm_index = (order, norms[order])
        return self._norm_index

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
                                   cfg["fixed_features"], cfg.get("combine", "last"))
        model.load_state_dict(state, assign=True)
    else:
        with torch.device("meta"):
            model = PairScorer(state["scorer.weight"].shape[1])
        model.load_state_dict({"weight": state["scorer.weight"], "bias": state["scorer.bias"]}, assign=True)
    model.eval()
    data = RecommenderData(
        config=cfg,
        user_ids=unpack_strings(ckpt["user_ids"]),
        artist_names=unpack_strings(ckpt["artist_names"]),
        track_titles=unpack_strings(ckpt["track_titles"]),
        track_artist=ckpt["track_artist"].numpy(),
        known=UserItems(ckpt["known_indptr"].numpy(), ckpt["known_tracks"].numpy()),
        trained=UserItems(ckpt["train_indptr"].numpy(), ckpt["train_tracks"].numpy()),
        user_embeddings=ckpt["user_embeddings"],
        track_embeddings=ckpt["track_embeddings"],
        metrics=ckpt.get("metrics", {}),
        item_ids=unpack_strings(ckpt["item_ids"]) if "item_ids" in ckpt else None,
        blend=ckpt.get("blend"),
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
    _check_top_k(top_k)
    exclude = data.known.of(user) if not include_known else np.zeros(0, np.int64)
    if data.blend:  # a blend's scores have no norm bound: score the (<= 30k-item) catalogue
        scores = score_function(model, data)(np.array([user]))[0]
        scores[torch.from_numpy(exclude)] = float("-inf")
        best = torch.topk(scores, min(int(top_k), data.num_tracks))
        keep = torch.isfinite(best.values)
        tracks, scores = best.indices[keep].numpy(), best.values[keep].numpy()
    else:
        tracks, scores = _rank_one(model, data, user, int(top_k), exclude)
    return pd.DataFrame({
        "rank": np.arange(1, len(tracks) + 1),
        "artist": data.artist_names.take(pa.array(data.track_artist[tracks])).to_pylist(),
        "track": data.track_titles.take(pa.array(tracks)).to_pylist(),
        "score": scores.astype(np.float64),
        "track_index": tracks,
    })


def recommend_all(model: GCNRecommender | PairScorer, data: RecommenderData,
                  top_k: int = 20) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every user's top tracks, ranked exactly as train_gnn.py's test metrics rank them: all
    tracks scored, the tracks the model trained and validated on excluded.

    Returns:
        users (n,), tracks (n, k) and scores (n, k), best first; -inf scores mark padding
        where a user has fewer than k tracks left.
    """
    _check_top_k(top_k)
    users = np.arange(data.num_users)
    tracks, scores = rank_top_k(score_function(model, data), users, int(top_k), data.trained)
    return users, tracks, scores


def score_function(model: GCNRecommender | PairScorer, data: RecommenderData):
    """Scores of every track for a batch of users, as train_gnn.py's test metrics computed them.

    A ``--model gcn+gf-cf`` checkpoint rebuilds its GF-CF filter from the tracks the model
    trained on (the same matrix, so the same filter) and adds the GCN's scores with the
    weight chosen on validation; otherwise the scores are the GCN's alone.
    """
    scorer = model if isinstance(model, PairScorer) else model.scorer
    gcn = embedding_scores(scorer, data.user_embeddings, data.track_embeddings)
    if not data.blend:
        return gcn
    from .filters import GFCF, blended, items_matrix

    if data._filter is None:
        data._filter = GFCF(k=int(data.blend["gf_k"]), alpha=float(data.blend["gf_alpha"]))
        data._filter.fit(items_matrix(data.trained, data.num_tracks))
    return blended(data._filter.scores, gcn, float(data.blend["weight"]))


def write_recommendations(path: str | os.PathLike, data: RecommenderData, users: np.ndarray,
                          tracks: np.ndarray, scores: np.ndarray) -> int:
    """Write ``user<TAB>item<TAB>rank<TAB>score`` lines with the dataset's own ids; returns the count.

    Items are a plain table's item ids, or a playlists CSV's "artist - title" (tabs and line
    breaks in names become spaces).
    """
    if data.item_ids is not None:
        names = np.asarray(data.item_ids.to_pylist(), dtype=object)
    else:
        artists = np.asarray(data.artist_names.to_pylist(), dtype=object)[data.track_artist]
        titles = np.asarray(data.track_titles.to_pylist(), dtype=object)
        names = np.array([f"{a} - {t}" for a, t in zip(artists, titles)], dtype=object)
    clean = str.maketrans({"\t": " ", "\n": " ", "\r": " "})
    user_ids = data.user_ids.to_pylist()
    count = 0
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for row, user in enumerate(users):
            uid = str(user_ids[user]).translate(clean)
            for rank, (t, score) in enumerate(zip(tracks[row], scores[row]), start=1):
                if not np.isfinite(score):
                    break
                f.write(f"{uid}\t{str(names[t]).translate(clean)}\t{rank}\t{score:.6g}\n")
                count += 1
    return count


@torch.no_grad()
def _rank_one(model: GCNRecommender | PairScorer, data: RecommenderData, user: int, k: int,
              exclude: np.ndarray, block: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k tracks of one user, scanning tracks in decreasing embedding norm.

    A track's score is ``q . t + b`` with ``q = z_u * w``, at most ``|q| |t| + b``: once that
    bound for the next (smaller-norm) track falls below the k-th best score so far, no track
    left can enter the list. On a 2.8M-track checkpoint ~100 tracks are scored instead of
    all of them. Equal to a full scan up to the order of exactly tied scores (tested).
    """
    scorer = model if isinstance(model, PairScorer) else model.scorer
    q = data.user_embeddings[user] * scorer.weight[0]
    bias = float(scorer.bias)
    order, norms = data.norm_order()
    q_norm = float(q.norm())
    excluded = torch.from_numpy(np.asarray(exclude, dtype=np.int64))
    best_ids = torch.zeros(0, dtype=torch.int64)
    best = torch.zeros(0, dtype=data.track_embeddings.dtype)
    k = min(k, data.num_tracks)
    for start in range(0, data.num_tracks, block):
        if len(best) == k and q_norm * float(norms[start]) + bias < float(best[-1]):
            break
        ids = order[start:start + block]
        scores = data.track_embeddings[ids] @ q + bias
        scores[torch.isin(ids, excluded)] = float("-inf")
        best, pick = torch.topk(torch.cat([best, scores]), min(k, len(best) + len(scores)))
        best_ids = torch.cat([best_ids, ids])[pick]
    keep = torch.isfinite(best)
    return best_ids[keep].numpy(), best[keep].numpy()


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
