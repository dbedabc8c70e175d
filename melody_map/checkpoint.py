"""The checkpoint's whole schema: what is written, what is required, how it is read, its version.

One file holds everything ``recommend.py`` needs, as plain tensors, numbers and strings,
so it loads with ``torch.load(weights_only=True)`` and no pickled code:

    format, version   "melody-map", VERSION
    config            the run's TrainConfig as a dict
    model             name (``gcn.MODELS``), params and state: ``Recommender.params()/state()``
    catalogue         user_ids, item_names; item_ids (plain tables); artist_names, item_artist,
                      playlist_names, playlist_user (playlists)
    playlists         indptr, items: each playlist's tracks (playlists CSV only), for continuation
    known             indptr, items: every item each user has, left out of recommendations by default
    trained           indptr, items: the items the model fitted and validated on, left out by
                      ``recommend.py --all-users`` exactly as the test metrics leave them out
    metrics           test metrics, best epoch, validation metrics
    counts, versions  dataset sizes; torch and Python versions that wrote it

Name tables are stored as one UTF-8 byte tensor plus an offsets tensor each: millions of
names load as two tensors instead of millions of Python strings. Writing is atomic (a
temporary file, then a rename). Reading this module never imports ``torch_geometric``.
"""

from __future__ import annotations

import os
import pickle
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from .config import TrainConfig
from .evaluate import UserItems
from .readers import Catalogue, Sized
from .recommender import Recommender
from .split import TEST

if TYPE_CHECKING:
    from .dataset import Dataset

FORMAT = "melody-map"
VERSION = 2
# Required keys and what each must be; nested ones as "outer.inner".
REQUIRED: dict[str, type] = {
    "format": str, "version": int, "config": dict, "model": dict, "model.name": str, "model.params": dict,
    "model.state": dict, "catalogue": dict, "catalogue.user_ids": dict, "catalogue.item_names": dict,
    "known": dict, "known.indptr": torch.Tensor, "known.items": torch.Tensor, "trained": dict,
    "trained.indptr": torch.Tensor, "trained.items": torch.Tensor, "metrics": dict, "counts": dict,
}
# Optional keys, present for one input format only.
OPTIONAL: dict[str, type] = {"catalogue.item_ids": dict, "catalogue.artist_names": dict,
                             "catalogue.item_artist": torch.Tensor, "catalogue.playlist_names": dict,
                             "catalogue.playlist_user": torch.Tensor, "playlists": dict,
                             "playlists.indptr": torch.Tensor, "playlists.items": torch.Tensor}
HINT = "train one with: python train_gnn.py"


class CheckpointError(ValueError):
    """A checkpoint that is missing, corrupt or not ours; the message says what to do."""


@dataclass
class RecommenderData(Sized):
    """Everything a checkpoint holds besides the model: the names, and which items each user has."""

    config: dict[str, Any]
    catalogue: Catalogue
    known: UserItems  # every item each user has (a plain table with --test: its training table's)
    trained: UserItems  # the items the model fitted and validated on, which the test metrics leave out
    metrics: dict[str, Any] = field(default_factory=dict)
    playlists: UserItems | None = None  # each playlist's tracks (playlists CSV only)
    lookup: dict[str, Any] = field(default_factory=dict, repr=False)  # name indexes, built on first use

    @property
    def user_ids(self) -> pa.Array:
        return self.catalogue.user_ids

    def user_index(self, user_id: str) -> int:
        """Index of a dataset user id; ValueError when the checkpoint does not know it."""
        idx = pc.index(self.user_ids, str(user_id).strip()).as_py()
        if idx < 0:
            raise ValueError(f"unknown user id {user_id!r}: this checkpoint has {self.num_users:,} users "
                             f"(e.g. {self.user_ids[0].as_py()!r}); use --user 0..{self.num_users - 1} or a listed id")
        return idx


def checkpoint_payload(cfg: TrainConfig, model: Recommender, data: Dataset, metrics: dict[str, Any]) -> dict:
    """What ``save_checkpoint`` writes for a fitted model and its dataset."""
    pairs, cat = data.pairs, data.catalogue
    # Pairs with input rows behind them are the user's own; a fixed test table's pairs are not.
    known = pairs.rows_per_pair() > 0
    catalogue = {"user_ids": pack_strings(cat.user_ids), "item_names": pack_strings(cat.item_names)}
    if cat.item_ids is not None:
        catalogue["item_ids"] = pack_strings(cat.item_ids)
    if cat.artist_names is not None:
        catalogue["artist_names"] = pack_strings(cat.artist_names)
        catalogue["item_artist"] = torch.from_numpy(np.asarray(cat.item_artist, np.int32))
    extra = {}
    if cat.playlist_names is not None:
        catalogue["playlist_names"] = pack_strings(cat.playlist_names)
        catalogue["playlist_user"] = torch.from_numpy(np.asarray(cat.playlist_user, np.int32))
        rows = data.rows
        members = UserItems.from_pairs(rows.playlist, rows.item, cat.num_playlists)
        extra["playlists"] = {"indptr": torch.from_numpy(members.indptr),
                              "items": torch.from_numpy(members.items.astype(np.int32))}
    return {
        "format": FORMAT,
        "version": VERSION,
        "config": cfg.to_dict(),
        "model": {"name": model.name, "params": model.params(), "state": model.state()},
        "catalogue": catalogue,
        "known": _pack_items(UserItems.from_pairs(pairs.user[known], pairs.item[known], data.num_users)),
        "trained": _pack_items(UserItems.from_pairs(*pairs.select(*(p for p in range(3) if p != TEST)),
                                                    data.num_users)),
        "metrics": metrics,
        "counts": {"users": data.num_users, "items": data.num_items, "artists": cat.num_artists,
                   "playlists": cat.num_playlists, "rows": len(data.rows)},
        "versions": {"torch": str(torch.__version__), "python": sys.version.split()[0]},
        **extra,
    }


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> None:
    """Write atomically: a temp file in the same folder, then a rename over ``path``."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".pth", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def load_checkpoint(path: str | os.PathLike) -> tuple[dict[str, Any], RecommenderData]:
    """Read and check a checkpoint; refuses pickled code.

    Returns:
        The model record ({"name", "params", "state"}) and the data beside it.

    Raises:
        CheckpointError: missing file, not a torch file, pickled objects inside, another
            format or version, or a required field missing or of the wrong kind.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: checkpoint not found; {HINT}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError as e:
        # torch's message is a page long; keep the line that names the offending object.
        why = next((ln.strip() for ln in str(e).splitlines() if "Unsupported global" in ln), "unsafe content")
        raise CheckpointError(f"{path}: refused, it holds pickled objects that weights_only loading "
                              f"does not allow ({why[:160]}); {HINT}") from None
    except (RuntimeError, zipfile.BadZipFile, EOFError, OSError, ValueError):
        raise CheckpointError(f"{path}: not a readable checkpoint (corrupt, truncated or not a torch file); "
                              f"{HINT}") from None
    if not isinstance(ckpt, dict) or not str(ckpt.get("format", "")).startswith(FORMAT):
        raise CheckpointError(f"{path}: not a Melody Map checkpoint (expected format {FORMAT!r}); {HINT}")
    if ckpt.get("version") != VERSION:
        raise CheckpointError(f"{path}: written by another Melody Map version (checkpoint format "
                              f"{ckpt.get('version', ckpt.get('format'))!r}, this one reads {VERSION}); {HINT}")
    _check(ckpt, path)
    cat = ckpt["catalogue"]
    catalogue = Catalogue(
        user_ids=unpack_strings(cat["user_ids"]),
        item_names=unpack_strings(cat["item_names"]),
        item_ids=unpack_strings(cat["item_ids"]) if "item_ids" in cat else None,
        artist_names=unpack_strings(cat["artist_names"]) if "artist_names" in cat else None,
        item_artist=cat["item_artist"].numpy() if "item_artist" in cat else None,
        playlist_names=unpack_strings(cat["playlist_names"]) if "playlist_names" in cat else None,
        playlist_user=cat["playlist_user"].numpy() if "playlist_user" in cat else None,
        noun="track" if "artist_names" in cat else "item",
    )
    data = RecommenderData(config=ckpt["config"], catalogue=catalogue, known=_unpack_items(ckpt["known"]),
                           trained=_unpack_items(ckpt["trained"]), metrics=ckpt["metrics"])
    if "playlists" in ckpt:
        data.playlists = UserItems(ckpt["playlists"]["indptr"].numpy(), ckpt["playlists"]["items"].numpy())
    return ckpt["model"], data


def _check(ckpt: dict, path: str) -> None:
    """Every required key present with its kind, every optional one of its kind where present."""
    missing, wrong = [], []
    for key, kind in {**REQUIRED, **OPTIONAL}.items():
        outer, _, inner = key.partition(".")
        holder = ckpt if not inner else ckpt.get(outer)
        name = inner or outer
        if not isinstance(holder, dict) or name not in holder:
            if key in REQUIRED:
                missing.append(key)
        elif not isinstance(holder[name], kind):
            wrong.append(f"{key} ({type(holder[name]).__name__}, expected {kind.__name__})")
    if missing or wrong:
        problems = ([f"lacks {', '.join(missing)}"] if missing else []) + (
            [f"has the wrong kind of {', '.join(wrong)}"] if wrong else [])
        raise CheckpointError(f"{path}: checkpoint {'; '.join(problems)}; {HINT}")
    if "artist_names" in ckpt["catalogue"] and "item_artist" not in ckpt["catalogue"]:
        raise CheckpointError(f"{path}: checkpoint lacks catalogue.item_artist beside its artist names; {HINT}")


def pack_strings(values: pa.Array) -> dict[str, torch.Tensor]:
    """A string array as {"data": uint8 UTF-8 bytes, "offsets": int64 (n + 1,)}."""
    values = values.cast(pa.large_string())
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    offsets = np.frombuffer(values.buffers()[1], dtype=np.int64)[values.offset: values.offset + len(values) + 1]
    data = np.frombuffer(values.buffers()[2], dtype=np.uint8)[offsets[0]: offsets[-1]] if len(values) else np.zeros(0, np.uint8)
    return {"data": torch.from_numpy(data.copy()), "offsets": torch.from_numpy(offsets - offsets[0])}


def unpack_strings(packed: dict[str, torch.Tensor]) -> pa.Array:
    """Inverse of ``pack_strings`` (zero-copy over the tensors' memory)."""
    offsets = packed["offsets"].numpy()
    return pa.Array.from_buffers(pa.large_string(), len(offsets) - 1,
                                 [None, pa.py_buffer(offsets), pa.py_buffer(packed["data"].numpy())])


def _pack_items(items: UserItems) -> dict[str, torch.Tensor]:
    return {"indptr": torch.from_numpy(items.indptr), "items": torch.from_numpy(items.items)}


def _unpack_items(packed: dict[str, torch.Tensor]) -> UserItems:
    return UserItems(packed["indptr"].numpy(), packed["items"].numpy())
