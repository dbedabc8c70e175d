"""What a server holds of one checkpoint: the model and data, a ranker with each user's top list
cached, name search for autocompletion, and the checkpoint's identity.

A ``Served`` is built whole (``load_served``) before it serves, and never changed afterwards
except for the ranker's cache filling in; a server swaps one reference to replace it. The
model's own calls go through ``Served.call`` and run on the model's one thread (``ModelThread``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import torch

from .api import get_recommendations, item_indices, item_labels, load_model, ranked_frame
from .checkpoint import HINT, RecommenderData
from .recommender import Recommender

Log = Callable[[str], None]


class ModelThread:
    """Runs every call into a model on one thread of its own, one call at a time: a model may reuse
    buffers between calls, torch spreads each call over every CPU anyway, and glibc gives each
    thread its own heap, so calls spread over the request threads would each keep their freed
    memory (a server's RSS grew from 0.8 to 9 GiB under load that way). The thread ends when
    this object is dropped (a reload's old checkpoint, once its last request is done)."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="melody-model")
        self._local = threading.local()

    def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` on the model's thread; its result, or its exception raised here."""
        if getattr(self._local, "inside", False):  # already on it (a call that makes another)
            return fn(*args, **kwargs)
        return self._pool.submit(self._inside, fn, args, kwargs).result()

    def _inside(self, fn: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
        self._local.inside = True
        return fn(*args, **kwargs)


class CachedRanker:
    """Each user's top ``depth`` items, known items left out, scored once; lists of k <= depth are
    cut from the cache, others (more items, known items kept, a filter) are scored per request."""

    def __init__(self, model: Recommender, data: RecommenderData, thread: ModelThread, depth: int = 100):
        """Args:
            model, data: from ``load_model``.
            thread: runs every call into the model.
            depth: items cached per user (0: no cache, every list scored).
        """
        self.model, self.data, self.thread, self.depth = model, data, thread, depth
        self.items = np.zeros((data.num_users, depth), np.int64)  # (users, depth) best first
        self.scores = np.full((data.num_users, depth), -np.inf, np.float32)  # -inf pads a short list
        self.ready = np.zeros(data.num_users, bool)  # which rows hold a user's list

    def warm(self, log: Log | None = None, seconds: float = 1.0, keep_going: Callable[[], bool] = lambda: True
             ) -> None:
        """Fill the lists of every user not filled yet, in batches sized to take about ``seconds`` each
        (the model's thread is busy that long), with about ten progress lines; stops early when
        ``keep_going()`` turns false (a reload replaced this checkpoint)."""
        todo, n = np.flatnonzero(~self.ready) if self.depth else np.zeros(0, np.int64), self.data.num_users
        start, done, size, step = time.perf_counter(), 0, 8, max(1, len(todo) // 10)
        while done < len(todo) and keep_going():
            users = todo[done:done + size]
            began = time.perf_counter()
            self._fill(users)
            size = int(np.clip(len(users) * seconds / max(time.perf_counter() - began, 1e-3), 1, 4096))
            if log and ((done + len(users)) // step > done // step or done + len(users) == len(todo)):
                log(f"cached {int(self.ready.sum()):,} of {n:,} users' top {self.depth} "
                    f"({time.perf_counter() - start:.1f} s)")
            done += len(users)

    def _fill(self, users: np.ndarray) -> None:
        items, scores = self.thread.run(self.model.top_k, users, self.depth, self.data.known)
        width = items.shape[1]  # fewer than depth where the catalogue is smaller
        self.items[users, :width], self.scores[users, :width] = items, scores
        self.ready[users] = True

    def cached(self, user: int, k: int, include_known: bool = False) -> bool:
        """Whether ``recommend(user, k, include_known)`` is a cut of the cache, with no scoring."""
        return not include_known and k <= self.depth and bool(self.ready[user])

    def recommend(self, user: int, k: int, include_known: bool = False,
                  only: np.ndarray | None = None) -> pd.DataFrame:
        """``get_recommendations``'s DataFrame for one user index (checked by ``user_index``).

        Args:
            user: the user's index.
            k: how many items.
            include_known: also rank the user's own items.
            only: rank these item indices alone (a filter), or None for the whole catalogue.
        """
        if only is not None:
            return self._among(user, k, include_known, only)
        if include_known or k > self.depth:
            return self.thread.run(get_recommendations, self.model, self.data, user, k, include_known=include_known)
        if not self.ready[user]:
            self._fill(np.array([user]))
        keep = np.isfinite(self.scores[user, :k])
        return ranked_frame(self.data, self.items[user, :k][keep], self.scores[user, :k][keep])

    def _among(self, user: int, k: int, include_known: bool, only: np.ndarray) -> pd.DataFrame:
        """The best of ``only`` for the user: every other item's score set to -inf."""
        scores = self.thread.run(self.model.scores, np.array([user]))[0].float()
        picked = torch.full_like(scores, float("-inf"))
        wanted = torch.from_numpy(np.asarray(only, np.int64))
        picked[wanted] = scores[wanted]
        if not include_known:
            picked[torch.from_numpy(self.data.known.of(user).astype(np.int64))] = float("-inf")
        best = torch.topk(picked, min(k, len(picked)))
        keep = torch.isfinite(best.values)
        return ranked_frame(self.data, best.indices[keep].numpy(), best.values[keep].numpy())


class NameSearch:
    """Substring search over names for autocompletion: the weightiest names (e.g. the most listened)
    that hold the text, those starting with it first. Names are kept weightiest first and scanned
    in growing chunks until enough match, so a common text reads a small part of a large catalogue."""

    def __init__(self, names: pa.Array, weight: np.ndarray):
        """Args:
            names: the names, one per index.
            weight: (len(names),) what orders the matches.
        """
        self.names = names
        self.order = np.argsort(-np.asarray(weight, np.float64), kind="stable")  # weightiest first
        self.lower = pc.utf8_lower(names.cast(pa.large_string()).take(pa.array(self.order)))

    def find(self, text: str, limit: int = 10) -> list[tuple[int, str]]:
        """Up to ``limit`` (index, name) whose names hold ``text`` (case-insensitive)."""
        text = " ".join(text.split()).lower()
        found: list[np.ndarray] = []
        start, chunk, count = 0, 1 << 14, 0
        while text and start < len(self.lower) and count < limit:
            part = self.lower.slice(start, chunk)
            hits = np.flatnonzero(pc.match_substring(part, text).to_numpy(zero_copy_only=False))
            found.append(hits + start)
            count += len(hits)
            start, chunk = start + chunk, chunk * 2
        hits = np.concatenate(found) if found else np.zeros(0, np.int64)  # places in weight order
        prefix = pc.starts_with(self.lower.take(pa.array(hits)), text).to_numpy(zero_copy_only=False) \
            if len(hits) else np.zeros(0, bool)
        top = self.order[hits[np.argsort(~prefix, kind="stable")][:limit]]
        return list(zip(top.tolist(), self.names.take(pa.array(top)).to_pylist()))


@dataclass
class Served:
    """One checkpoint as served: built whole by ``load_served``, then only read."""

    model: Recommender
    data: RecommenderData
    ranker: CachedRanker
    search: dict[str, NameSearch]  # "users", "tracks" (items) and, with artists, "artists"
    identity: dict[str, Any]  # what /health reports: file, checksum, model, data, counts
    thread: ModelThread = field(default_factory=ModelThread)

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn(model, data, *args, **kwargs)`` on the model's thread (an ``api`` function)."""
        return self.thread.run(fn, self.model, self.data, *args, **kwargs)

    def user_index(self, user_id: str | None, user_index: int | None) -> int:
        """The index of a user given by the dataset's id or by index; ValueError if unknown."""
        if (user_id is None) == (user_index is None):
            raise ValueError("give exactly one of user_id (the dataset's user id) or user_index")
        if user_id is not None:
            return self.data.user_index(user_id)
        if not 0 <= user_index < self.data.num_users:
            raise ValueError(f"user index {user_index} is out of range: valid indices are 0..{self.data.num_users - 1}")
        return int(user_index)


def load_served(path: str | os.PathLike, depth: int = 100, log: Log | None = None, warm: bool = True) -> Served:
    """Load a checkpoint for serving: the model, the users' cached lists, the search indexes, its identity.

    The model is loaded from a private copy of the file (``_private_copy``), whose checksum is the
    identity: the file itself may then be overwritten, even in place, while it is served.

    Args:
        path: the checkpoint file.
        depth: items cached per user (``CachedRanker``).
        log: called with progress lines.
        warm: fill every user's list now (``CachedRanker.warm``); else they fill as they are asked
            for, or by a caller's own ``warm``.

    Raises:
        ValueError: the file is missing, corrupt or not a checkpoint (``load_model``'s one line).
    """
    path = os.fspath(path)
    copy = _private_copy(path)
    try:
        checksum = _sha256(copy)
        model, data = load_model(copy)
    except ValueError as e:
        raise ValueError(str(e).replace(copy, path)) from None
    finally:
        try:
            os.unlink(copy)  # the loaded model maps it; the name is not needed any more
        except OSError:
            pass
    thread = ModelThread()
    ranker = CachedRanker(model, data, thread, depth)
    if warm:
        ranker.warm(log)
    served = Served(model, data, ranker, _searches(data), _identity(path, checksum, model, data), thread)
    served.call(get_recommendations, 0, 1)  # builds what the model makes on first use, before requests race
    item_indices(data, [0])  # and the names' index, which the first request by name would wait for
    return served


def _private_copy(path: str) -> str:
    """A copy of the checkpoint that only this process knows, beside it (else in the temp folder).

    ``load_model`` maps the file's tensors (``torch.load(mmap=True)``): were they mapped from the
    file the server was started with, copying a new checkpoint over it in place (``cp``) would pull
    the pages from under the running model and kill the process (SIGBUS).
    """
    if not os.path.isfile(path):
        raise ValueError(f"{path}: checkpoint not found; {HINT}")
    problem = None
    for folder in (os.path.dirname(os.path.abspath(path)), None):
        try:
            fd, copy = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".serving", dir=folder)
        except OSError as e:
            problem = e
            continue
        os.close(fd)
        try:
            shutil.copyfile(path, copy)
            return copy
        except OSError as e:
            problem = e
            os.unlink(copy)
    raise ValueError(f"{path}: cannot copy the checkpoint to load it ({getattr(problem, 'strerror', None) or problem})")


def _searches(data: RecommenderData) -> dict[str, NameSearch]:
    """Search indexes of users (by id), tracks ("Artist - Title") and artists, weighed by how much they hold."""
    cat = data.catalogue
    plays = np.bincount(data.known.items.astype(np.int64), minlength=data.num_items)
    search = {"users": NameSearch(cat.user_ids, data.known.counts()),
              "tracks": NameSearch(pa.array(item_labels(data), pa.large_string()), plays)}
    if cat.artist_names is not None:
        weight = np.bincount(np.asarray(cat.item_artist, np.int64), weights=plays, minlength=cat.num_artists)
        search["artists"] = NameSearch(cat.artist_names, weight)
    return search


def _identity(path: str, checksum: str, model: Recommender, data: RecommenderData) -> dict[str, Any]:
    cat = data.catalogue
    counts = {"users": data.num_users, f"{cat.noun}s": data.num_items}
    if cat.artist_names is not None:
        counts["artists"] = cat.num_artists
    if cat.playlist_names is not None:
        counts["playlists"] = cat.num_playlists
    return {"checkpoint": os.path.basename(path), "sha256": checksum, "model": model.label,
            "data": os.path.basename(str(data.config.get("data", ""))), "counts": counts,
            "loaded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def _sha256(path: str) -> str:
    try:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
        return digest.hexdigest()
    except OSError as e:
        raise ValueError(f"{path}: cannot read the checkpoint ({e.strerror or e}); {HINT}") from None
