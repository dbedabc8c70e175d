"""The checkpoint's whole schema: what is written, what is required, how it is read, its version.

One file holds everything ``recommend.py`` needs, as plain tensors, numbers and strings,
so it loads with ``torch.load(weights_only=True)`` and no pickled code:

    format, version   "melody-map", VERSION
    config            the run's TrainConfig as a dict
    model             name (``gcn.MODELS``), params and state: ``Recommender.params()/state()``
    catalogue         user_ids, item_names; item_ids (plain tables); user_names, item_uris (MPD);
                      artist_names, item_artist,
                      playlist_names, playlist_user (playlists)
    playlists         indptr, items: each playlist's tracks (playlists CSV only), for continuation
    known             indptr, items: every item each user has, left out of recommendations by default
    trained           indptr, items: the items the model fitted and validated on, left out by
                      ``recommend.py --all-users`` exactly as the test metrics leave them out
    metrics           test metrics, best epoch, validation metrics
    counts, versions  dataset sizes; torch and Python versions that wrote it
    resume            an interrupted run's only (config["interrupted"] says where it stopped):
                      the training state to carry on from, see ``load_resume``
    checksum          crc32 of everything above, so that a damaged file is named as damaged

Name tables are stored as one UTF-8 byte tensor plus an offsets tensor each: millions of
names load as two tensors instead of millions of Python strings. Writing is atomic and
durable: a temporary file beside the target, flushed to disk, then renamed over it, so a
kill, a crash or a full disk leaves the previous checkpoint whole under its name. Reading
refuses pickled code, checks the zip's members against the file's size before torch reads
them, verifies the checksum, and checks every index against the sizes it points into, so
a damaged or hostile file gets one line, never a crash. Reading this module never imports
``torch_geometric``.
"""

from __future__ import annotations

import errno
import glob
import os
import pickle
import sys
import zipfile
import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from .config import TrainConfig
from .recommender import Recommender
from .types import TEST, Catalogue, Sized, UserItems

if TYPE_CHECKING:
    from .dataset import Dataset

FORMAT = "melody-map"
VERSION = 3  # 3: a concat GCN stores only its second layer's half of the final embeddings
# Required keys and what each must be; nested ones as "outer.inner".
REQUIRED: dict[str, type] = {
    "format": str, "version": int, "config": dict, "model": dict, "model.name": str, "model.params": dict,
    "model.state": dict, "catalogue": dict, "catalogue.user_ids": dict, "catalogue.item_names": dict,
    "known": dict, "known.indptr": torch.Tensor, "known.items": torch.Tensor, "trained": dict,
    "trained.indptr": torch.Tensor, "trained.items": torch.Tensor, "metrics": dict, "counts": dict,
}
# Optional keys, present for one input format only.
OPTIONAL: dict[str, type] = {"catalogue.item_ids": dict, "catalogue.user_names": dict, "catalogue.item_uris": dict,
                             "catalogue.artist_names": dict,
                             "catalogue.item_artist": torch.Tensor, "catalogue.playlist_names": dict,
                             "catalogue.playlist_user": torch.Tensor, "playlists": dict,
                             "playlists.indptr": torch.Tensor, "playlists.items": torch.Tensor,
                             "checksum": int, "resume": dict}
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
    for name in ("item_ids", "user_names", "item_uris"):  # a table's ids; MPD's playlist names and track URIs
        if getattr(cat, name) is not None:
            catalogue[name] = pack_strings(getattr(cat, name))
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
    """Write ``payload`` and its checksum atomically and durably.

    The bytes go to ``.<name>.<pid>.tmp`` beside ``path``, are flushed to disk, and the file
    is renamed over ``path``; the folder is then flushed too. A writer killed at any point
    leaves either the previous file or the new one under ``path``, never a part. Temporary
    files of writers that are no longer running are removed first. Two writers of the same
    path each write their own temporary file; the last rename wins, whole.

    Raises:
        CheckpointError: the file cannot be written (a full disk, no permission); ``path``
            is left as it was and the temporary file is removed.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    _remove_stale_temporaries(path)
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    payload = {**{k: v for k, v in payload.items() if k != "checksum"}, "checksum": 0}
    payload["checksum"] = payload_checksum(payload)
    try:
        with open(tmp, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_folder(folder)
    except OSError as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        hint = ("free some space or choose another --output" if e.errno in (errno.ENOSPC, errno.EDQUOT)
                else "choose another --output")
        raise CheckpointError(f"{path}: cannot write the checkpoint ({e.strerror or e}); {hint}; "
                              f"the previous file, if any, is unchanged") from None
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _remove_stale_temporaries(path: str) -> None:
    """Remove ``.<name>.<pid>.tmp`` files beside ``path`` whose writing process is gone."""
    folder, name = os.path.split(os.path.abspath(path))
    for tmp in glob.glob(os.path.join(glob.escape(folder), f".{glob.escape(name)}.*.tmp")):
        pid = tmp[len(os.path.join(folder, f".{name}.")): -len(".tmp")]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            try:
                os.unlink(tmp)
            except OSError:
                pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fsync_folder(folder: str) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # not every platform opens folders
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def payload_checksum(payload: Any) -> int:
    """crc32 over a payload's keys, numbers, strings and tensor bytes in a fixed order.

    The ``checksum`` entry itself is left out, so the stored value can be checked against it.
    """
    crc = 0

    def walk(value: Any, key: str) -> None:
        nonlocal crc
        if isinstance(value, dict):
            for k in sorted(value, key=str):
                if not (key == "" and k == "checksum"):
                    walk(value[k], f"{key}.{k}")
        elif isinstance(value, (list, tuple)):
            for i, v in enumerate(value):
                walk(v, f"{key}[{i}]")
        elif isinstance(value, torch.Tensor):
            t = value.detach().cpu().contiguous().reshape(-1)
            crc = zlib.crc32(f"{key}:{t.dtype}:{tuple(value.shape)}".encode(), crc)
            crc = zlib.crc32(t.view(torch.uint8).numpy(), crc)
        else:
            crc = zlib.crc32(f"{key}={type(value).__name__}:{value!r}".encode(), crc)

    walk(payload, "")
    return crc


def load_checkpoint(path: str | os.PathLike) -> tuple[dict[str, Any], RecommenderData]:
    """Read and check a checkpoint (``_validate``); refuses pickled code.

    Returns:
        The model record ({"name", "params", "state"}) and the data beside it.

    Raises:
        CheckpointError: missing file, not a torch file, pickled objects inside, another
            format or version, or a required field missing or of the wrong kind.
    """
    ckpt = _read(os.fspath(path))
    cat = ckpt["catalogue"]
    catalogue = Catalogue(
        user_ids=unpack_strings(cat["user_ids"]),
        item_names=unpack_strings(cat["item_names"]),
        item_ids=unpack_strings(cat["item_ids"]) if "item_ids" in cat else None,
        user_names=unpack_strings(cat["user_names"]) if "user_names" in cat else None,
        item_uris=unpack_strings(cat["item_uris"]) if "item_uris" in cat else None,
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


def build_model(record: dict[str, Any], data: RecommenderData, path: str | os.PathLike,
                models: dict[str, type[Recommender]]) -> Recommender:
    """The fitted model a checked record describes, refused with one line unless it scores the catalogue.

    Args:
        record: ``load_checkpoint``'s model record.
        data: the data beside it (its counts).
        path: the file, for messages.
        models: the model classes by name (``gcn.MODELS``).

    Raises:
        CheckpointError: an unknown model, or a state that does not build or does not score
            every item of the catalogue.
    """
    if record["name"] not in models:
        raise CheckpointError(f"{path}: unknown model {record['name']!r} (this version knows "
                              f"{', '.join(models)}); {HINT}")
    try:
        model = models[record["name"]].from_state(record["params"], record["state"])
        probe = model.scores(np.array([0, data.num_users - 1]))  # the first and the last user
    except Exception as e:  # wrong options, or tensors of the wrong shape or kind in the model's state
        raise CheckpointError(f"{path}: the model's state does not load ({type(e).__name__}: "
                              f"{str(e).splitlines()[0][:160] if str(e) else 'no detail'}); {HINT}") from None
    if tuple(probe.shape) != (2, data.num_items) or not probe.dtype.is_floating_point:
        raise CheckpointError(f"{path}: the model scores {tuple(probe.shape)} items per user pair, the catalogue "
                              f"holds {data.num_items:,}; {HINT}")
    return model


@dataclass
class ResumePoint:
    """What an interrupted run's checkpoint holds to carry on from (``pipeline.run``'s ``--resume``)."""

    config: dict[str, Any]  # the interrupted run's TrainConfig
    phase: str  # "fit" or "refit": the training that Ctrl-C stopped
    trainer: dict[str, Any]  # train.train's state at the stop (FitReport.resume)
    split_digest: str  # Pairs.digest() of the interrupted run's split: the data must be the same
    fit_report: dict[str, Any]  # the fit's history, best epoch and validation (for a refit)
    model: dict[str, Any]  # the checkpoint's model record: the fitted model, in a refit


# The resume section's keys and what each must be.
RESUME: dict[str, type] = {"phase": str, "trainer": dict, "split_digest": str, "fit_report": dict}
TRAINER: dict[str, type] = {"epoch": int, "step": int, "steps": int, "losses": list, "weights": dict,
                            "optimizer": dict, "numpy_rng": dict, "torch_rng": torch.Tensor, "best": dict,
                            "best_recall": float, "stale": int, "history": list, "best_epoch": int,
                            "best_valid": dict}


def interrupted_payload(payload: dict[str, Any], phase: str, trainer: dict[str, Any], split_digest: str,
                        fit_report: dict[str, Any]) -> dict[str, Any]:
    """``payload`` (``checkpoint_payload``'s) marked interrupted in its config, with the state to resume from."""
    marked = {"phase": phase, "epoch": trainer["epoch"], "step": trainer["step"], "steps": trainer["steps"]}
    return {**payload, "config": {**payload["config"], "interrupted": marked},
            "resume": {"phase": phase, "trainer": trainer, "split_digest": split_digest, "fit_report": fit_report}}


def load_resume(path: str | os.PathLike) -> ResumePoint:
    """An interrupted run's state, checked like any checkpoint and then for its resume section.

    Raises:
        CheckpointError: as ``load_checkpoint``; or the file is a finished run's, or its
            resume section is damaged.
    """
    path = os.fspath(path)
    ckpt = _read(path)
    section = ckpt.get("resume")
    if section is None:
        raise CheckpointError(f"{path}: a finished run's checkpoint, not an interrupted one: nothing to resume; "
                              f"train anew without --resume")
    wrong = [key for key, kind in RESUME.items() if not isinstance(section.get(key), kind)]
    wrong += [f"trainer.{key}" for key, kind in TRAINER.items()
              if not isinstance(section.get("trainer", {}).get(key), (float, int) if kind is float else kind)]
    if wrong or section["phase"] not in ("fit", "refit"):
        raise CheckpointError(f"{path}: its resume state is damaged ({', '.join(wrong) or 'phase'}); "
                              f"train anew without --resume")
    return ResumePoint(config=ckpt["config"], phase=section["phase"], trainer=section["trainer"],
                       split_digest=section["split_digest"], fit_report=section["fit_report"], model=ckpt["model"])


def _read(path: str) -> dict[str, Any]:
    """The checkpoint at ``path`` as a dict, every check passed (see the module's doc)."""
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: checkpoint not found; {HINT}")
    _check_zip(path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError as e:
        # torch's message is a page long; keep the line that names the offending object.
        why = next((ln.strip() for ln in str(e).splitlines() if "Unsupported global" in ln), "unsafe content")
        raise CheckpointError(f"{path}: refused, it holds pickled objects that weights_only loading "
                              f"does not allow ({why[:160]}); {HINT}") from None
    except Exception:  # a damaged file fails in many ways: zip, pickle, storage, decoding
        raise CheckpointError(f"{path}: not a readable checkpoint (corrupt, truncated or not a torch file); "
                              f"{HINT}") from None
    if not isinstance(ckpt, dict) or not str(ckpt.get("format", "")).startswith(FORMAT):
        raise CheckpointError(f"{path}: not a Melody Map checkpoint (expected format {FORMAT!r}); {HINT}")
    if ckpt.get("version") != VERSION:
        raise CheckpointError(f"{path}: written by another Melody Map version (checkpoint format "
                              f"{ckpt.get('version', ckpt.get('format'))!r}, this one reads {VERSION}); {HINT}")
    _validate(ckpt, path)
    return ckpt


def _validate(ckpt: dict, path: str) -> None:
    """The one check of a read checkpoint, each step on what the last one vouched for: every key
    of its kind, the checksum over them, then every table of the size its counts say and every
    index inside what it points into. ``load_model`` then builds the model from its checked state."""
    _check_kinds(ckpt, path)
    if "checksum" in ckpt and payload_checksum(ckpt) != ckpt["checksum"]:
        raise CheckpointError(f"{path}: corrupt, its contents do not match the checksum written with them "
                              f"(damaged on disk or in a copy); copy it again or {HINT[0].lower()}{HINT[1:]}")
    _check_tables(ckpt, path)


def _check_kinds(ckpt: dict, path: str) -> None:
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


def _check_zip(path: str) -> None:
    """Refuse a torch zip whose members are compressed or claim more bytes than the file holds,
    before torch reads (or maps) them."""
    try:
        with zipfile.ZipFile(path) as z:
            size = os.path.getsize(path)
            bad = [m.filename for m in z.infolist()
                   if m.compress_type != zipfile.ZIP_STORED or m.file_size > size or m.compress_size > size]
    except zipfile.BadZipFile:
        return  # not a zip: torch.load says what it is (a legacy torch file, or not one at all)
    except Exception:
        raise CheckpointError(f"{path}: not a readable checkpoint (corrupt zip directory); {HINT}") from None
    if bad:
        raise CheckpointError(f"{path}: corrupt or hostile, zip member {bad[0][:80]!r} claims more bytes than the "
                              f"file holds; {HINT}")


def _check_tables(ckpt: dict, path: str) -> None:
    """Every table is as long as the counts say, and every index lies inside what it points into."""
    counts = ckpt["counts"]
    sizes = {key: counts.get(key) for key in ("users", "items", "artists", "playlists")}
    if not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 1 << 40 for v in sizes.values()):
        raise CheckpointError(f"{path}: checkpoint counts are not sizes ({sizes}); {HINT}")
    users, items = sizes["users"], sizes["items"]
    cat = ckpt["catalogue"]
    problems = [
        *_strings_problems(cat, "user_ids", users), *_strings_problems(cat, "item_names", items),
        *(_strings_problems(cat, "item_ids", items) if "item_ids" in cat else []),
        *(_strings_problems(cat, "user_names", users) if "user_names" in cat else []),
        *(_strings_problems(cat, "item_uris", items) if "item_uris" in cat else []),
        *(_strings_problems(cat, "artist_names", sizes["artists"]) if "artist_names" in cat else []),
        *(_strings_problems(cat, "playlist_names", sizes["playlists"]) if "playlist_names" in cat else []),
        *(_index_problems(cat["item_artist"], "catalogue.item_artist", items, sizes["artists"])
          if "item_artist" in cat else []),
        *(_index_problems(cat["playlist_user"], "catalogue.playlist_user", sizes["playlists"], users)
          if "playlist_user" in cat else []),
        *_lists_problems(ckpt["known"], "known", users, items),
        *_lists_problems(ckpt["trained"], "trained", users, items),
        *(_lists_problems(ckpt["playlists"], "playlists", sizes["playlists"], items) if "playlists" in ckpt else []),
    ]
    if problems:
        raise CheckpointError(f"{path}: checkpoint is inconsistent: {problems[0]}; {HINT}")


def _index_problems(t: Any, key: str, length: int, bound: int) -> list[str]:
    if not isinstance(t, torch.Tensor) or t.dim() != 1 or t.dtype not in (torch.int32, torch.int64):
        return [f"{key} is not a 1-d integer tensor"]
    if len(t) != length:
        return [f"{key} has {len(t):,} entries, expected {length:,}"]
    if len(t) and (int(t.min()) < 0 or int(t.max()) >= bound):
        return [f"{key} holds indices outside 0..{bound - 1:,}"]
    return []


def _lists_problems(packed: dict, key: str, rows: int, bound: int) -> list[str]:
    """A CSR list (indptr, items): rows + 1 non-decreasing offsets from 0 to len(items), items in range."""
    indptr, members = packed.get("indptr"), packed.get("items")
    problems = _index_problems(members, f"{key}.items", len(members) if isinstance(members, torch.Tensor) else 0,
                               bound)
    if problems:
        return problems
    if not isinstance(indptr, torch.Tensor) or indptr.dim() != 1 or indptr.dtype != torch.int64:
        return [f"{key}.indptr is not a 1-d int64 tensor"]
    if len(indptr) != rows + 1 or int(indptr[0]) != 0 or int(indptr[-1]) != len(members) \
            or bool((indptr[1:] < indptr[:-1]).any()):
        return [f"{key}.indptr is not {rows + 1:,} non-decreasing offsets from 0 to {len(members):,}"]
    return []


def _strings_problems(cat: dict, key: str, length: int | None) -> list[str]:
    packed = cat[key]
    data, offsets = packed.get("data"), packed.get("offsets")
    if not (isinstance(data, torch.Tensor) and data.dtype == torch.uint8 and data.dim() == 1
            and isinstance(offsets, torch.Tensor) and offsets.dtype == torch.int64 and offsets.dim() == 1):
        return [f"catalogue.{key} is not a uint8 data and int64 offsets tensor"]
    if len(offsets) != (length or 0) + 1 or (len(offsets) and (int(offsets[0]) != 0 or int(offsets[-1]) != len(data)
                                                                or bool((offsets[1:] < offsets[:-1]).any()))):
        return [f"catalogue.{key} does not hold {length:,} names"]
    try:
        unpack_strings(packed).validate(full=True)  # valid UTF-8 throughout
    except pa.ArrowException:
        return [f"catalogue.{key} holds invalid UTF-8"]
    return []


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
