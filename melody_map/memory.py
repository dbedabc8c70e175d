"""The run's peak memory, estimated from the data's counts and the flags before the big allocations.

Two checks stop a run that would run out of memory, with one line, before it starts the
allocation that would fail:

- before reading, ``reading_peak``: the reader's peak grows with the input's bytes;
- once the graph is built, ``run_peak``: the memory resident now plus the largest of the
  later phases, each the sum of the arrays it holds at once, counted in bytes from the
  counts (nodes, users, items, training pairs, adjacency non-zeros) and the flags.

The phases after the graph, for the default GCN (frozen node vectors):

    spectral   randomised SVD of the user-item matrix: (users + items) x dim factors, and
               the node vectors built from them, a few copies of each
    training   node vectors and the cached first layer; a validation check's forward pass
               over the graph and its ranker (the items' scan order, a chunk of scores)
    fit's end  the final embeddings, the fold-in's item matrix (a float64 copy while its sums
               are taken) and its alpha's validation, beside the network's own node vectors
    test       the fitted model, and one block of the score matrix
    checkpoint the fitted model, and the copies the checkpoint writes

``--model gcn+gf-cf`` adds GF-CF's (items x k) factors and its SVD; ``--no-fixed-features``
adds the autograd graph of a whole-graph forward pass and Adam's moments on every node
vector; ``--conv gat`` adds per-edge messages. ``docs/reliability.md`` compares the
estimates with measured peaks. The multipliers (how many copies a phase holds at once)
come from reading the code and from runs on files of other sizes than the ones checked.
The sizes and counts the code allocates by (the rankers' chunks, GF-CF's k, the fold-in's
validation users) are imported from the modules that own them, and ``tests/test_memory_model.py``
checks each term below against the tensors the code really holds, so that a change to one
cannot leave the other stale.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from dataclasses import dataclass

from .config import TrainConfig
from .ease import EASE
from .filters import GF_CF_GRID
from .filters import MAX_FACTOR_FLOATS as GF_CF_MAX_FACTOR_FLOATS
from .filters import GRAM_BLOCK_FLOATS, uses_gram, uses_gram_top
from .gcn import FOLD_IN_USERS
from .hybrid import ETA as CHEBY_ETA
from .hybrid import BOUND_ITEMS, SCORE_FLOATS, STOP_FLOATS, STOP_USERS
from .ranking import RANK_BATCH, RANK_CHUNK, SCORE_BLOCK_FLOATS

MB = 1 << 20
BASE_BYTES = 400 * MB  # Python, torch, PyG, pyarrow and pandas imported
READ_FIXED_BYTES = 230 * MB  # the reader's pools and buffers, whatever the file's size
READ_BYTES_PER_INPUT_BYTE = 3.7  # the parsed columns, their codes and the tables built from them
GF_CF_K = max(GF_CF_GRID["k"])  # the largest k the blend's validation tries
STEP_BYTES_PER_NNZ = 100  # a step's block: positions, columns, values, its CSR and transposed copies
TRAIN_FIXED_BYTES = 100 * MB  # autograd's and the sparse kernels' buffers, whatever the size


class MemoryShortage(ValueError):
    """The run's estimated peak exceeds the memory available; the message names the flags that lower it."""


@dataclass(frozen=True)
class Counts:
    """The sizes a run's memory grows with."""

    users: int
    items: int
    nodes: int  # users + items + artists + playlists
    train_pairs: int
    nnz: int  # non-zeros of the normalised adjacency, self-loops included
    valid_users: int  # users with validation pairs
    test_users: int  # users with test pairs

    @classmethod
    def of(cls, data) -> Counts:
        """The counts of a ``Dataset``."""
        import numpy as np

        from .types import TEST, TRAIN, VALID

        part = data.pairs.part
        users_with = [len(np.unique(data.pairs.user[part == p])) for p in (VALID, TEST)]
        return cls(users=data.num_users, items=data.num_items, nodes=data.graph.num_nodes,
                   train_pairs=int((part == TRAIN).sum()), nnz=int(data.graph.adj._nnz()),
                   valid_users=users_with[0], test_users=users_with[1])


def scan_order_bytes(items: int) -> int:
    """``ranking.NormOrderedTopK``'s own tensors: the items' norms (float32), scan order and places (int64)."""
    return 20 * items


def ranker_bytes(users: int, items: int, width: int) -> int:
    """``ranking.NormOrderedTopK``: its scan order (it reads the item vectors where they are),
    one chunk of them gathered, and one chunk of scores (with top-k's workspace) for a batch of users."""
    chunk = min(items, RANK_CHUNK)
    return scan_order_bytes(items) + chunk * width * 4 + min(users, RANK_BATCH) * chunk * 8


def node_vector_bytes(c: Counts, cfg: TrainConfig) -> int:
    """The network's node vectors: (nodes, dim) float32."""
    return c.nodes * cfg.dim * 4


def scorer_width(cfg: TrainConfig) -> int:
    """What the scorer reads: the node vectors beside the second layer's output, or the output alone."""
    return 2 * cfg.dim if cfg.combine == "concat" else cfg.dim


def fold_in_bytes(items: int, width: int) -> int:
    """``foldin.FoldIn``'s item matrix: (items, width) float32."""
    return items * width * 4


def checkpoint_state_bytes(c: Counts, cfg: TrainConfig) -> int:
    """The tensors a fitted GCN's ``state()`` writes beyond its network's node vectors: the final
    embeddings of users and items, only their second layer's half with ``combine="concat"``."""
    width = scorer_width(cfg)
    return (c.users + c.items) * (width - cfg.dim if width > cfg.dim else cfg.dim) * 4


def reading_peak(input_bytes: int) -> int:
    """The peak while reading, splitting and building the graph of ``input_bytes`` of CSV or TSV."""
    return int(BASE_BYTES + READ_FIXED_BYTES + READ_BYTES_PER_INPUT_BYTE * input_bytes)


def phases(c: Counts, cfg: TrainConfig) -> dict[str, int]:
    """Bytes each phase after the graph adds to what is resident when the graph is built."""
    d, f = cfg.dim, 4  # float32
    width = scorer_width(cfg)
    node, item, z = node_vector_bytes(c, cfg), fold_in_bytes(c.items, width), c.nodes * width * f
    valid = ranker_bytes(min(c.valid_users, cfg.valid_users), c.items, width)
    forward = c.nodes * (3 * d + width) * f  # a layer's output, its ReLU, the second layer's, the scorer's input
    # A step's block of the graph: the rows of the items its sampled pairs touch (graph.row_block).
    # Training keeps it for the next step (allocator.reuse_freed_memory); the later phases count
    # it too, as the measured peaks bear out (bench/memory.py).
    sampled = min(cfg.pairs_per_epoch, c.train_pairs) / cfg.steps_per_epoch * (1 + cfg.negatives)
    touched = 1 - math.exp(-sampled / max(c.items, 1))  # the share of items drawn at least once
    step = int(STEP_BYTES_PER_NNZ * c.nnz * touched)
    out = {
        "spectral": 3 * (c.users + c.items) * d * f + 3 * node + 40 * c.train_pairs,
        "training": 2 * node + TRAIN_FIXED_BYTES + step + max(forward, z + valid),
        # the network's node vectors, the final embeddings and the fold-in's item matrix: while
        # its sums are taken, a float64 copy beside it; then the ranker over it (foldin.choose_alpha)
        "fit's end": node + step + z + max(3 * item, item + ranker_bytes(min(c.valid_users, FOLD_IN_USERS),
                                                                          c.items, width)),
        "test": node + step + z + ranker_bytes(c.test_users, c.items, width),
        "checkpoint": node + step + z + node + checkpoint_state_bytes(c, cfg),
    }
    if not cfg.fixed_features:  # autograd keeps the whole graph's activations; Adam two moments per vector
        out["training"] += forward + 3 * node
    if cfg.conv == "gat":  # edge_index, attention coefficients and a message per edge, per layer
        out["training"] += c.nnz * (16 + 3 * f + 2 * d * f)
    if cfg.model == "gcn+gf-cf":
        k = max(1, min(GF_CF_K, GF_CF_MAX_FACTOR_FLOATS // max(c.items, 1)))
        factors = c.items * k * f
        decomposition = gram_top_bytes(c, k) + factors if uses_gram_top((c.users, c.items)) else 5 * factors
        block = min(c.valid_users, 4096, SCORE_BLOCK_FLOATS // max(c.items, 1)) * c.items * f  # ranking.top_k's
        out["blend"] = out["test"] + decomposition + 40 * c.train_pairs + 8 * block
        out["test"] += 2 * factors + 40 * c.train_pairs + 8 * block
    return out


def gram_top_bytes(c: Counts, k: int) -> int:
    """``filters.gram_top``'s peak beside its (I, k) result: the float32 Gram matrix, a block of it
    in float64 while built, and the randomised range finder's (U, k + 32) factors."""
    return c.users * c.users * 4 + 2 * GRAM_BLOCK_FLOATS * 8 + 6 * c.users * (k + 32) * 4


def hybrid_phases(c: Counts) -> dict[str, int]:
    """Bytes each phase of ``--model gcn+chebycf`` adds (``hybrid.GCNChebyCF``): the filter's
    decomposition, then ranking's block of (users, items) scores (and top-k's copy of it), each
    built in groups whose tensors (the filter's scores, their z-scores, the GCN part's output and
    its two z-scored features) stay within ``SCORE_FLOATS``."""
    f = 4
    if uses_gram((c.users, c.items)):  # the Gram matrix, its eigenvectors and eigh's workspace (float64); Q
        decomposition = 3 * c.users * c.users * 8 + c.users * c.users * f
    elif uses_gram_top((c.users, c.items)):  # the leading eigenpairs of the Gram matrix, nothing over items
        decomposition = gram_top_bytes(c, CHEBY_ETA)
    else:  # the randomised SVD's factors and its workspace
        decomposition = 4 * c.items * max(1, min(CHEBY_ETA, GF_CF_MAX_FACTOR_FLOATS // max(c.items, 1))) * f
    block = 2 * min(c.test_users, max(1, SCORE_BLOCK_FLOATS // max(c.items, 1))) * c.items * f
    group = 8 * min(SCORE_FLOATS, c.test_users * c.items) * f
    stop = min(STOP_USERS, max(1, STOP_FLOATS // max(c.items, 1))) * c.items * f  # the stopping listeners' scores
    side = 40 * c.items  # the side graph: each item's self-loop and links, twice (scipy and torch)
    decomposition += ease_bytes(c) if c.items < BOUND_ITEMS else 0  # EASE's part of the filter
    return {"filter": decomposition + side, "training": decomposition + side + stop + block + group,
            "test": decomposition + side + block + group}


def ease_bytes(c: Counts) -> int:
    """``ease.EASE``'s part of the filter, its choice and its fit: over users (their float64 Gram
    matrix, its Cholesky factor and the float32 inverse) where they are fewer than the items, else
    over items (three float32 items x items matrices)."""
    ease, shape = EASE(), (c.users, c.items)
    if not ease.fits(shape):
        return 0
    choosing = 2 * min(STOP_FLOATS // 2, c.valid_users * c.items) * 4  # the choosing listeners' two z-scores
    return choosing + (c.users * c.users * 20 if ease.over_users(shape) else 3 * c.items * c.items * 4)


def run_peak(c: Counts, cfg: TrainConfig, resident: int) -> tuple[int, str]:
    """The run's estimated peak from here on, and the phase that reaches it."""
    parts = hybrid_phases(c) if cfg.model == "gcn+chebycf" else phases(c, cfg)
    phase = max(parts, key=parts.get)
    return resident + parts[phase], phase


# Flags whose other value lowers the estimate, tried in this order for the message.
def _alternatives(cfg: TrainConfig) -> list[tuple[str, TrainConfig]]:
    options = []
    if cfg.model != "gcn":
        options.append(("--model gcn", dataclasses.replace(cfg, model="gcn")))
    if not cfg.fixed_features:
        options.append(("--fixed-features", dataclasses.replace(cfg, fixed_features=True)))
    if cfg.conv != "gcn":
        options.append(("--conv gcn", dataclasses.replace(cfg, conv="gcn", disjoint=False)))
    if cfg.dim > 8:
        options.append((f"--dim {cfg.dim // 2}", dataclasses.replace(cfg, dim=cfg.dim // 2)))
    if cfg.combine != "last":
        options.append(("--combine last", dataclasses.replace(cfg, combine="last")))
    return options


def check_run(c: Counts, cfg: TrainConfig, resident: int, available: int) -> tuple[int, str]:
    """``run_peak``'s estimate and phase; ``MemoryShortage`` when what it adds to ``resident``
    exceeds ``available``."""
    peak, phase = run_peak(c, cfg, resident)
    if peak - resident <= available:
        return peak, phase
    lower = []
    for flag, other in _alternatives(cfg):
        other_peak = run_peak(c, other, resident)[0]
        if other_peak < peak:
            lower.append(f"{flag} ({gb(other_peak)})")
    hint = f"lower it with {', '.join(lower)}" if lower else "no flag lowers it much: use a machine with more memory"
    raise MemoryShortage(f"this run needs about {gb(peak)} at its peak ({phase}), estimated from the data's counts "
                         f"and the flags, but {gb(resident + available)} is available to it; {hint}; or pass "
                         f"--no-memory-check to try anyway")


def check_reading(input_bytes: int, available: int, resident: int) -> int:
    """The reader's estimated peak; ``MemoryShortage`` when it cannot fit."""
    peak = reading_peak(input_bytes)
    if peak - BASE_BYTES > available:  # what reading adds to the process
        raise MemoryShortage(f"reading {gb(input_bytes, 1)} of input needs about {gb(peak)}, estimated from its size, "
                             f"but {gb(resident + available)} is available; use a machine with more memory or a "
                             f"smaller file, or pass --no-memory-check to try anyway")
    return peak


def gb(n: float, digits: int = 1) -> str:
    return f"{n / (1 << 30):.{digits}f} GB"


def available_bytes() -> int:
    """Memory this process may still take: the system's available memory, within a cgroup limit if any."""
    free = None
    try:
        with open("/proc/meminfo") as f:
            found = re.search(r"^MemAvailable:\s+(\d+) kB", f.read(), re.M)
        free = int(found.group(1)) * 1024 if found else None
    except OSError:
        pass
    if free is None:
        try:
            free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return 1 << 62  # unknown: never stop
    try:  # cgroup v2: a container's limit may be far below the machine's
        with open("/sys/fs/cgroup/memory.max") as f:
            limit = f.read().strip()
        with open("/sys/fs/cgroup/memory.current") as f:
            used = int(f.read())
        if limit != "max":
            free = min(free, int(limit) - used)
    except (OSError, ValueError):
        pass
    return max(free, 0)


def resident_bytes() -> int:
    """This process's resident memory now."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
