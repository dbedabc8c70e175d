"""Stage 5: one self-contained checkpoint file, safe to load with ``weights_only=True``.

It holds plain tensors, numbers and strings only (no pickled classes): the model's
``state_dict``, the config, the final user and track embeddings, each user's known
tracks (CSR) and the names behind every index. Name tables are stored as one UTF-8 byte
tensor plus an offsets tensor per table: millions of names load as two tensors instead
of millions of Python strings.
"""

from __future__ import annotations

import os
import pickle
import tempfile
import zipfile
from typing import Any

import numpy as np
import pyarrow as pa
import torch

FORMAT = "melody-map/1"
REQUIRED = ("format", "config", "state_dict", "user_embeddings", "track_embeddings", "track_artist",
            "known_indptr", "known_tracks", "user_ids", "artist_names", "track_titles")


class CheckpointError(ValueError):
    """A checkpoint that is missing, corrupt or not ours; the message says what to do."""


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


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> None:
    """Write atomically: a temp file in the same folder, then a rename over ``path``."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".pth", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save({"format": FORMAT, **payload}, f)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load a checkpoint written by ``save_checkpoint``; refuses pickled code.

    Raises:
        CheckpointError: missing file, not a torch file, pickled objects inside, or a
            file without Melody Map's fields.
    """
    path = os.fspath(path)
    hint = "train one with: python train_gnn.py"
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: checkpoint not found; {hint}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError as e:
        # torch's message is a page long; keep the line that names the offending object.
        why = next((ln.strip() for ln in str(e).splitlines() if "Unsupported global" in ln), "unsafe content")
        raise CheckpointError(f"{path}: refused, it holds pickled objects that weights_only loading "
                              f"does not allow ({why[:160]}); {hint}") from None
    except (RuntimeError, zipfile.BadZipFile, EOFError, OSError, ValueError):
        raise CheckpointError(f"{path}: not a readable checkpoint (corrupt, truncated or not a torch file); "
                              f"{hint}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a Melody Map checkpoint (expected format {FORMAT!r}); {hint}")
    missing = [k for k in REQUIRED if k not in ckpt]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks {', '.join(missing)}; {hint}")
    return ckpt
