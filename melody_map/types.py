"""The data every stage passes on: what was read, the names behind the codes, coded rows,
each user's items, and the split's parts. Readers, the split, training, evaluation and
serving all import these; this module imports none of them."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import scipy.sparse as sp

TRAIN, VALID, TEST = 0, 1, 2  # a pair's part of the split
PART_NAMES = ("train", "valid", "test")


@dataclass
class LoadReport:
    """What a reader read, kept and dropped; :meth:`balanced` says every row is accounted for."""

    path: str
    layout: str  # "original layout" / "csv layout" (playlists); "tab-separated, no header, 3 columns" (tables)
    rows_read: int = 0  # data rows after the header, blank lines included
    rows_kept: int = 0  # playlists: rows kept; tables: distinct (user, item) pairs kept
    dropped: dict[str, int] = field(default_factory=dict)  # reason -> rows, in the order printed
    duplicates_merged: int = 0  # rows folded into an earlier row of the same track/playlist or pair
    rows_with_bad_utf8: int = 0  # kept rows whose invalid UTF-8 was replaced by U+FFFD (playlists)
    examples: dict[str, str] = field(default_factory=dict)  # reason -> one offending row, for messages
    pairs: bool = False  # True for tables: kept rows are pairs, and merged rows' weights are summed
    unit: str = "rows"  # what is counted: "rows", or "playlists" (MPD's playlist report)

    def summary(self) -> str:
        """One line: rows read, layout, kept, dropped by reason, duplicates merged."""
        drops = ", ".join(f"{n:,} {why}" for why, n in self.dropped.items() if n) or "none"
        kept, merged = (("pairs kept", "duplicate pairs merged (weights summed)") if self.pairs
                        else ("kept", "duplicates merged"))
        line = (f"{self.path}: {self.rows_read:,} {self.unit} read ({self.layout}), {self.rows_kept:,} {kept}; "
                f"dropped: {drops}; {self.duplicates_merged:,} {merged}")
        if self.rows_with_bad_utf8:
            line += f"; {self.rows_with_bad_utf8:,} rows had invalid UTF-8 replaced"
        return line

    def balanced(self) -> bool:
        """True when ``rows_read == rows_kept + sum(dropped) + duplicates_merged``."""
        return self.rows_read == self.rows_kept + sum(self.dropped.values()) + self.duplicates_merged


@dataclass(eq=False)  # array fields: a generated __eq__ would be ambiguous
class Catalogue:
    """The names behind the codes."""

    user_ids: pa.Array  # (U,) the dataset's user ids (strings)
    item_names: pa.Array  # (I,) a track's title, or a table item's name (its id where unnamed)
    item_ids: pa.Array | None = None  # (I,) a plain table's own item ids; None for playlists
    artist_names: pa.Array | None = None  # (A,) playlists only
    item_artist: np.ndarray | None = None  # (I,) int32 artist code of each track; playlists only
    playlist_names: pa.Array | None = None  # (P,) playlists only
    playlist_user: np.ndarray | None = None  # (P,) int32 owner of each playlist; playlists only
    noun: str = "track"  # "track" (playlists) or "item" (tables), for messages
    user_names: pa.Array | None = None  # (U,) MPD only: each playlist's name (a playlist is its own user)
    item_uris: pa.Array | None = None  # (I,) MPD only: each track's track_uri ("" where the file has none)
    album_names: pa.Array | None = None  # (B,) MPD's full schema only
    item_album: np.ndarray | None = None  # (I,) int32 album code of each track, -1 where unknown; with album_names
    user_modified: np.ndarray | None = None  # (U,) int64 MPD only: each playlist's modified_at, -1 where absent
    new_items: np.ndarray | None = None  # (I,) bool: the tracks --catalogue added (no playlist holds them)

    @property
    def num_users(self) -> int:
        return len(self.user_ids)

    @property
    def num_items(self) -> int:
        return len(self.item_names)

    @property
    def num_artists(self) -> int:
        return 0 if self.artist_names is None else len(self.artist_names)

    @property
    def num_playlists(self) -> int:
        return 0 if self.playlist_names is None else len(self.playlist_names)

    @property
    def num_albums(self) -> int:
        return 0 if self.album_names is None else len(self.album_names)


class Sized:
    """``num_users`` and ``num_items`` of whatever holds a ``catalogue``."""

    catalogue: Catalogue

    @property
    def num_users(self) -> int:
        return self.catalogue.num_users

    @property
    def num_items(self) -> int:
        return self.catalogue.num_items


@dataclass(eq=False)
class Interactions(Sized):
    """Coded rows: one per (user, item[, playlist]) row kept, with the names behind the codes.

    ``num_users``/``num_items`` are the catalogue's sizes: a test table coded with the
    training vocabularies counts every training id, present in it or not.
    """

    user: np.ndarray  # (rows,) int64 code into catalogue.user_ids
    item: np.ndarray  # (rows,) int64 code into catalogue.item_names
    weight: np.ndarray  # (rows,) float32: 1.0 per playlist row; a table's weight, summed over merged rows
    playlist: np.ndarray | None  # (rows,) int64 playlist code; None for tables
    catalogue: Catalogue
    report: LoadReport
    # (users,) int64, a test table's only: each user's distinct pairs whose item is not in
    # the catalogue (never seen in training). No model can rank such an item, but the
    # usual protocol still counts the pair as a miss, so evaluation does too.
    unseen: np.ndarray | None = None
    # (rows,) int32 or None: each row's position in its playlist (MPD: its ``pos``, else its
    # place in the playlist's track list), for order-aware continuation.
    position: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.user)


@dataclass
class UserItems:
    """Each user's set of items, as CSR: the items of user u are ``items[indptr[u]:indptr[u+1]]``."""

    indptr: np.ndarray  # (users + 1,) int64
    items: np.ndarray  # (nnz,) int64, sorted within each user
    # (users,) int64 or None: held-out pairs of each user that no model can hit (their item
    # never appears in training); metrics count them as misses, as the usual protocol does.
    misses: np.ndarray | None = None

    @classmethod
    def from_pairs(cls, users: np.ndarray, items: np.ndarray, num_users: int) -> "UserItems":
        """Each user's items from (user, item) pairs, sorted here unless they come sorted already."""
        users, items = np.asarray(users, np.int64), np.asarray(items, dtype=np.int64)
        counts = np.bincount(users, minlength=num_users)
        indptr = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
        if not _sorted_pairs(users, items):
            items = items[np.lexsort((items, users))]
        return cls(indptr=indptr, items=items)

    @property
    def num_users(self) -> int:
        return len(self.indptr) - 1

    def counts(self) -> np.ndarray:
        return np.diff(self.indptr)

    def heldout_counts(self) -> np.ndarray:
        """(users,) held-out pairs per user as metrics count them: the items plus the misses."""
        return self.counts() if self.misses is None else self.counts() + self.misses

    def of(self, user: int) -> np.ndarray:
        return self.items[self.indptr[user]:self.indptr[user + 1]]

    def batch(self, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(row in batch, item) of every item of ``users``, for masking a (B, items) matrix."""
        start, stop = self.indptr[users], self.indptr[users + 1]
        lengths = stop - start
        rows = np.repeat(np.arange(len(users)), lengths)
        # Position of each entry in self.items: its user's start plus its offset in the run.
        offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        return rows, self.items[np.repeat(start, lengths) + offsets]

    def matrix(self, num_items: int) -> sp.csr_matrix:
        """The binary users x items matrix (float32 CSR) of these sets."""
        data = np.ones(len(self.items), np.float32)
        # csr_matrix rather than csr_array: implicit's fit checks isinstance(csr_matrix).
        return sp.csr_matrix((data, self.items, self.indptr), shape=(self.num_users, num_items))

    def keys(self, num_items: int) -> np.ndarray:
        """Sorted user * num_items + item keys, for fast membership tests."""
        users = np.repeat(np.arange(self.num_users, dtype=np.int64), self.counts())
        return users * num_items + self.items


def _sorted_pairs(users: np.ndarray, items: np.ndarray) -> bool:
    """Whether (user, item) pairs are already in user, then item, order (one linear pass)."""
    if len(users) < 2:
        return True
    step_user, step_item = np.diff(users), np.diff(items)
    return bool(np.all((step_user > 0) | ((step_user == 0) & (step_item >= 0))))
