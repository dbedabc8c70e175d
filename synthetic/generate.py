"""Generate the dataset and write it in the real Spotify Playlists file's format.

Format (the real file's quirks, reproduced on purpose):
  header  `"user_id", "artistname", "trackname", "playlistname"` (a space after each comma)
  rows    `"f1","f2","f3","f4"`: every field quoted, inner quotes NOT escaped, names may
          hold commas; a good row splits on the 3-char separator `","` into exactly 4 parts.

Generative story (every draw seeded):
  genres -> scenes (sub-communities of a genre) -> artists (heavy-tailed track counts)
  -> tracks (Zipf-like popularity inside their (genre, scene) block).
  Users like 1-3 genres (Dirichlet weights) and one scene per liked genre; activity is
  lognormal. Regular playlists belong to one user and are themed on 1-2 of the user's
  genres; every slot of a playlist asks a block for a track. Each block hands out a
  multiset of its tracks with Zipf counts (every track at least once), so the catalogue
  is exactly what the file holds. 'Starred' (~65% of users) re-lists a sample of the
  user's tracks. A few malformed lines are planted at seeded positions.

`PRESETS` holds the two shapes (`sample`, the shipped file; `full`, the real file's size);
`get_preset` scales one. `generate` builds the good rows and their ground truth in memory;
`write_dataset` adds the planted lines and writes the file.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from . import names

HEADER = b'"user_id", "artistname", "trackname", "playlistname"\n'
SEP = b'","'
PLANTED_KINDS = ("wrong_shape", "empty_field", "duplicate", "invalid_utf8")

# Slots drawn beyond the target so that, after duplicate (playlist, track) slots are
# merged, there are rows to spare; the spare rows are trimmed at the end.
_SLOT_MARGIN = 0.2


@dataclass(frozen=True)
class Preset:
    """Size and shape of a synthetic dataset.

    The five counts are targets for the written file; `scaled()` multiplies them.
    """

    n_users: int  # distinct user_id values
    n_rows: int  # data lines in the file, planted lines included (header excluded)
    n_tracks: int  # distinct (artistname, trackname) pairs
    n_artists: int  # distinct artistname values
    n_playlists: int  # distinct (user_id, playlistname) pairs, Starred included
    n_genres: int  # taste communities; not scaled
    n_scenes: int  # sub-communities per genre, so CF has structure below genre; not scaled
    starred_prob: float = 0.65  # share of users with a 'Starred' playlist
    starred_share: float = 0.15  # share of rows that sit in Starred playlists
    median_playlist_size: float = 16.0  # regular playlists; sizes are lognormal
    max_playlist_size: int = 5000
    activity_sigma: float = 1.1  # lognormal sigma of playlists per user (heavy tail)
    artist_tracks_sigma: float = 1.6  # lognormal sigma of tracks per artist
    zipf_exponent: float = 1.1  # track popularity inside a block: (rank + 2) ** -s
    off_taste_prob: float = 0.06  # slots filled from a random genre (exploration)
    second_genre_prob: float = 0.35  # playlists themed on two of the user's genres
    second_genre_share: float = 0.35  # share of such a playlist's slots in genre two
    favourite_scene_prob: float = 0.6  # slots taken from the user's scene of that genre
    wrong_shape: int = 2  # planted: 3 fields / a name holding '","' (5 parts)
    empty_field: int = 2  # planted: an empty field / a whitespace-only field
    duplicate: int = 5  # planted: exact copies of earlier good lines
    invalid_utf8: int = 2  # planted: a latin-1 byte inside a name

    @property
    def n_planted(self) -> int:
        """Malformed lines planted in the file, all kinds together."""
        return self.wrong_shape + self.empty_field + self.duplicate + self.invalid_utf8

    def scaled(self, scale: float) -> Preset:
        """Return this preset with users/tracks/artists/playlists/rows times `scale`.

        Args:
            scale: multiplier, e.g. 0.01 and 0.1 for the 1% and 10% benchmark files.
        """
        if not scale > 0:
            raise ValueError(f"scale must be > 0, got {scale}")
        n = {k: max(1, round(getattr(self, k) * scale))
             for k in ("n_users", "n_rows", "n_tracks", "n_artists", "n_playlists")}
        out = replace(self, **n)
        out.validate()
        return out

    def validate(self) -> None:
        """Raise ValueError when the counts cannot make a consistent file."""
        blocks = self.n_genres * self.n_scenes
        if not 3 <= self.n_genres <= len(names.GENRES):
            raise ValueError(f"n_genres must be in [3, {len(names.GENRES)}]")
        problems = [
            (self.n_artists < blocks, f"n_artists ({self.n_artists}) < genres*scenes ({blocks})"),
            (self.n_tracks < self.n_artists, "n_tracks < n_artists"),
            (self.n_playlists < 2 * self.n_users, "n_playlists < 2 * n_users"),
            (self.n_rows < 2 * self.n_tracks + self.n_planted, "n_rows < 2 * n_tracks"),
        ]
        for bad, msg in problems:
            if bad:
                raise ValueError(f"preset too small (scale down less): {msg}")


PRESETS: dict[str, Preset] = {
    # Shipped in the repo: denser than the real file (10 rows per track, not 4.6) so a
    # model trained on 1,000 users has enough signal to beat popularity.
    "sample": Preset(n_users=1_000, n_rows=120_000, n_tracks=12_000, n_artists=2_000,
                     n_playlists=4_000, n_genres=8, n_scenes=3, max_playlist_size=1_000),
    # The real file's shape: ~1.2 GB.
    "full": Preset(n_users=15_900, n_rows=12_900_000, n_tracks=2_800_000, n_artists=290_000,
                   n_playlists=230_000, n_genres=32, n_scenes=6,
                   wrong_shape=4, empty_field=4, duplicate=20, invalid_utf8=4),
}


def get_preset(name: str, scale: float = 1.0) -> Preset:
    """Look up a named preset and scale it.

    Args:
        name: 'sample' or 'full'.
        scale: multiplier for users/tracks/artists/playlists/rows.
    """
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose from {sorted(PRESETS)}")
    return PRESETS[name].scaled(scale) if scale != 1.0 else PRESETS[name]


@dataclass(frozen=True)
class SyntheticStats:
    """What `write_dataset` wrote.

    Entity counts are over the good rows only. The invalid_utf8 lines are well shaped, so
    a loader that replaces bad bytes keeps them as good_rows + invalid_utf8 rows, with a
    few extra (replaced) names.
    """

    path: str
    rows_written: int  # data lines, planted included, header excluded
    good_rows: int  # well-formed, distinct (user, artist, track, playlist) rows
    n_users: int
    n_tracks: int  # distinct (artist, track)
    n_artists: int
    n_playlists: int  # distinct (user, playlist name)
    n_starred: int  # users with a 'Starred' playlist
    planted: dict[str, int]  # kind -> lines planted, kinds in PLANTED_KINDS
    planted_lines: dict[str, tuple[int, ...]]  # kind -> 1-based file line numbers
    bytes: int
    seconds: float


@dataclass
class SyntheticData:
    """The generated good rows and the ground truth behind them (for tests, benchmarks)."""

    genre_names: list[str]
    artist_names: list[str]
    artist_genre: np.ndarray  # (n_artists,)
    track_names: list[str]
    track_artist: np.ndarray  # (n_tracks,)
    track_block: np.ndarray  # (n_tracks,) genre * n_scenes + scene
    user_ids: list[str]  # 32-char hex
    user_genres: np.ndarray  # (n_users, 3) genre ids, -1 past the user's k genres
    user_taste: np.ndarray  # (n_users, 3) Dirichlet weights over user_genres
    playlist_user: np.ndarray  # (n_playlists,)
    playlist_names: list[str]
    row_playlist: np.ndarray  # (n_rows,) in file order
    row_track: np.ndarray  # (n_rows,)
    n_scenes: int = 1
    n_starred: int = 0  # users with a 'Starred' playlist
    diagnostics: dict = field(default_factory=dict)  # slot_excess, passes: how the fill went

    @property
    def track_genre(self) -> np.ndarray:
        return self.track_block // self.n_scenes


# --------------------------------------------------------------------------- numerics


def _categorical_counts(weights: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Counts of `n` draws from a categorical with unnormalised `weights` (a multinomial).

    Args:
        weights: (k,) non-negative weights.
        n: number of draws.
        rng: random generator.
    """
    cdf = np.cumsum(weights, dtype=np.float64)
    cdf /= cdf[-1]
    draws = np.searchsorted(cdf, rng.random(n), side="right")
    return np.bincount(np.minimum(draws, len(weights) - 1), minlength=len(weights))


class _GroupedSampler:
    """Draw an item from a chosen group, items weighted, for many (group) requests at once.

    Items are sorted by group; the cdf of group g runs over (g, g + 1], so one
    searchsorted of `g + u` answers every request.
    """

    def __init__(self, groups_sorted: np.ndarray, weights: np.ndarray, n_groups: int):
        csum = np.cumsum(weights, dtype=np.float64)
        self.start = np.searchsorted(groups_sorted, np.arange(n_groups + 1))
        before = np.concatenate(([0.0], csum))
        lo, hi = before[self.start[:-1]], before[self.start[1:]]
        total = np.where(hi > lo, hi - lo, 1.0)
        local = (csum - lo[groups_sorted]) / total[groups_sorted]
        local[self.start[1:][self.start[1:] > self.start[:-1]] - 1] = 1.0
        self.cdf = groups_sorted + local

    def sample(self, groups: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Positions (into the sorted items) of one weighted draw per entry of `groups`."""
        pos = np.searchsorted(self.cdf, groups + rng.random(len(groups)), side="right")
        # g + u can round up to g + 1 for u near 1: clamp into the group
        return np.minimum(pos, self.start[groups + 1] - 1)


def _catalogue(p: Preset, rng: np.random.Generator) -> dict:
    """Artists (genre, scene, track count) and tracks (artist, block, popularity order)."""
    G, S, A, T = p.n_genres, p.n_scenes, p.n_artists, p.n_tracks
    genre_w = rng.permutation((np.arange(G) + 1.0) ** -0.7)  # a few big genres, a long tail
    artist_genre = np.searchsorted(np.cumsum(genre_w) / genre_w.sum(), rng.random(A), "right")
    artist_genre = np.minimum(artist_genre, G - 1)
    artist_scene = rng.integers(0, S, A)
    # one artist per block first, so no (genre, scene) block is empty
    artist_genre[: G * S], artist_scene[: G * S] = np.repeat(np.arange(G), S), np.tile(np.arange(S), G)
    artist_block = artist_genre * S + artist_scene
    # many artists with 1-3 tracks, a few with hundreds
    n_tracks = 1 + _categorical_counts(rng.lognormal(0.0, p.artist_tracks_sigma, A), T - A, rng)
    track_artist = np.repeat(np.arange(A), n_tracks)
    track_block = artist_block[track_artist]
    # popular artists have popular tracks; an artist's later tracks are a little less known
    artist_pop = rng.normal(0.0, 1.0, A) + 0.5 * np.log(n_tracks)
    idx_in_artist = np.arange(T) - np.repeat(np.cumsum(n_tracks) - n_tracks, n_tracks)
    score = artist_pop[track_artist] + rng.normal(0.0, 0.7, T) - 0.2 * np.log1p(idx_in_artist)
    order = np.lexsort((-score, track_block))  # tracks sorted by block, most popular first
    block_sorted = track_block[order]
    rank = np.arange(T) - np.searchsorted(block_sorted, block_sorted)  # popularity rank in block
    zipf = _GroupedSampler(block_sorted, (rank + 2.0) ** -p.zipf_exponent, G * S)
    return {"artist_genre": artist_genre, "track_artist": track_artist, "track_block": track_block,
            "order": order, "block_sorted": block_sorted, "rank": rank, "zipf": zipf}


def _users(p: Preset, block_tracks: np.ndarray, rng: np.random.Generator) -> dict:
    """Each user's genres (up to 3), taste weights, favourite block per genre, Starred flag."""
    G, S, U = p.n_genres, p.n_scenes, p.n_users
    genre_tracks = block_tracks.reshape(G, S).sum(1)
    k = rng.choice([1, 2, 3], size=U, p=[0.3, 0.45, 0.25])
    # Gumbel top-3: genres drawn without replacement, proportional to their catalogue size
    keys = np.log(genre_tracks)[None, :] + rng.gumbel(size=(U, G))
    genres = np.argsort(-keys, axis=1)[:, :3]
    taste = rng.dirichlet(np.ones(3), U) * (np.arange(3)[None, :] < k[:, None])
    taste /= taste.sum(1, keepdims=True)
    scenes = _GroupedSampler(np.repeat(np.arange(G), S), block_tracks.astype(float), G)
    fav_block = scenes.sample(genres.ravel(), rng).reshape(U, 3)
    genres = np.where(taste > 0, genres, -1)
    return {"k": k, "genres": genres, "taste": taste, "fav_block": fav_block, "scenes": scenes,
            "starred": rng.random(U) < p.starred_prob, "genre_tracks": genre_tracks}


def _playlists(p: Preset, usr: dict, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Regular playlists: owner, theme (taste slots k1, k2 of the owner), relative size."""
    U = p.n_users
    n_reg = p.n_playlists - int(usr["starred"].sum())
    # heavy-tailed activity: busy users own many playlists
    per_user = 1 + _categorical_counts(rng.lognormal(0.0, p.activity_sigma, U), n_reg - U, rng)
    user = np.repeat(np.arange(U), per_user)
    # theme: one taste slot by the user's weights, sometimes a second one
    kk = usr["k"][user]
    u = rng.random(n_reg)[:, None]
    k1 = np.minimum((u > np.cumsum(usr["taste"][user], 1)).sum(1), kk - 1)
    two = (kk > 1) & (rng.random(n_reg) < p.second_genre_prob)
    k2 = np.where(two, (k1 + 1 + rng.integers(0, 2, n_reg) % np.maximum(kk - 1, 1)) % kk, -1)
    # lognormal sizes; sigma puts the median at ~median_playlist_size for the mean we need
    mean = (p.n_rows - p.n_planted) * (1 - p.starred_share) * (1 + _SLOT_MARGIN) / n_reg
    ratio = mean / p.median_playlist_size
    sigma = math.sqrt(2 * math.log(ratio)) if ratio > 1.05 else 0.3
    return {"user": user, "k1": k1, "k2": k2, "shape": np.exp(rng.normal(0.0, sigma, n_reg))}


def _fit_sizes(shape: np.ndarray, total: float, max_size: int) -> np.ndarray:
    """Integer sizes proportional to `shape`, each in [1, max_size], summing to ~total."""
    f = total / shape.sum()
    for _ in range(6):  # the cap and rounding move the sum; rescale until it settles
        sizes = np.clip(np.rint(shape * f), 1, max_size)
        f *= total / sizes.sum()
    return sizes.astype(np.int64)


def _deal(p: Preset, cat: dict, usr: dict, pls: dict, sizes: np.ndarray,
          rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Fill every playlist slot with a track; return distinct (playlist, track) rows."""
    G, T, B = p.n_genres, p.n_tracks, p.n_genres * p.n_scenes
    slot_pl = np.repeat(np.arange(len(sizes), dtype=np.int32), sizes)
    n_slots = len(slot_pl)
    slot_user = pls["user"][slot_pl]
    k2 = pls["k2"][slot_pl]
    slot_k = np.where((k2 >= 0) & (rng.random(n_slots) < p.second_genre_share), k2, pls["k1"][slot_pl])
    del k2
    slot_genre = usr["genres"][slot_user, slot_k]
    fav = usr["fav_block"][slot_user, slot_k]
    del slot_user, slot_k
    block = usr["scenes"].sample(slot_genre, rng)  # a scene of the genre, by its size
    del slot_genre
    keep_fav = rng.random(n_slots) < p.favourite_scene_prob
    block[keep_fav] = fav[keep_fav]
    del fav, keep_fav
    # off-taste slots (exploration) go first to blocks asked for fewer slots than they
    # hold tracks, so every catalogue track gets listed even at small scales
    off = np.flatnonzero(rng.random(n_slots) < p.off_taste_prob)
    off = off[rng.permutation(len(off))]
    supply = np.bincount(cat["block_sorted"], minlength=B)
    on_taste = np.bincount(block, minlength=B) - np.bincount(block[off], minlength=B)
    fill = np.repeat(np.arange(B), np.maximum(supply - on_taste, 0))[: len(off)]
    block[off[: len(fill)]] = fill
    rest = off[len(fill):]
    gw = np.cumsum(usr["genre_tracks"]) / usr["genre_tracks"].sum()
    genre = np.minimum(np.searchsorted(gw, rng.random(len(rest)), "right"), G - 1)
    block[rest] = usr["scenes"].sample(genre, rng)
    del off, rest, genre

    # every block deals out a multiset of its tracks: each at least once, the rest Zipf,
    # so every catalogue track is in the file and popularity is heavy-tailed
    rank, block_sorted = cat["rank"], cat["block_sorted"]
    demand = np.bincount(block, minlength=B)
    extra = np.maximum(demand - supply, 0)
    counts = 1 + np.bincount(cat["zipf"].sample(np.repeat(np.arange(B), extra), rng), minlength=T)
    counts[rank >= demand[block_sorted]] = 0  # a block asked for less than it holds
    occ = np.repeat(cat["order"].astype(np.int32), counts)  # grouped by block, like sorted slots
    slot_track = np.empty(n_slots, dtype=np.int32)
    slot_track[np.argsort(block + rng.random(n_slots), kind="stable")] = occ
    del occ, block

    # a playlist lists a track once: merge repeated (playlist, track) slots
    key = np.unique(slot_pl.astype(np.int64) * T + slot_track)
    return (key // T).astype(np.int32), (key % T).astype(np.int32)


def _starred(p: Preset, usr: dict, pl_user: np.ndarray, reg_pl: np.ndarray, reg_tr: np.ndarray,
             need: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Starred rows (playlist ids after the regular ones): a per-user share of the user's
    distinct tracks, scaled so that ~`need` rows are drawn."""
    U, T = p.n_users, p.n_tracks
    starred = usr["starred"]
    pair = np.unique(pl_user[reg_pl].astype(np.int64) * T + reg_tr)
    pair_user, pair_tr = (pair // T).astype(np.int32), (pair % T).astype(np.int32)
    r = rng.beta(2.0, 3.0, U) * starred
    distinct = np.bincount(pair_user, minlength=U)
    prob = np.minimum(0.95, r * need / max((r * distinct).sum(), 1e-9))
    keep = rng.random(len(pair)) < prob[pair_user]
    keep[np.searchsorted(pair_user, np.flatnonzero(starred))] = True  # never an empty Starred
    star_pl = np.full(U, -1, dtype=np.int32)
    star_pl[starred] = len(pl_user) + np.arange(int(starred.sum()), dtype=np.int32)
    return star_pl[pair_user[keep]], pair_tr[keep]


def _rows(p: Preset, cat: dict, usr: dict, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Playlists and their (playlist, track) rows in file order, trimmed to the target."""
    target = p.n_rows - p.n_planted
    pls = _playlists(p, usr, rng)
    want = target * (1 - p.starred_share)  # regular rows; Starred fills the rest
    total, passes = want * (1 + _SLOT_MARGIN), 0
    while True:
        passes += 1
        reg_pl, reg_tr = _deal(p, cat, usr, pls, _fit_sizes(pls["shape"], total, p.max_playlist_size), rng)
        if len(reg_pl) >= want or passes == 3:
            break
        # popular tracks repeated inside a playlist were merged and ate the margin
        # (most when blocks are small, at small scales): ask again for more slots
        total *= 1.03 * want / len(reg_pl)
    need = max(target - len(reg_pl), 0.25 * p.starred_share * target) * 1.02 + 10
    star_pl, star_tr = _starred(p, usr, pls["user"], reg_pl, reg_tr, need, rng)
    row_pl, row_tr = np.concatenate([reg_pl, star_pl]), np.concatenate([reg_tr, star_tr])
    starred_users = np.flatnonzero(usr["starred"])
    playlist_user = np.concatenate([pls["user"], starred_users]).astype(np.int32)
    no_genre = np.full(len(starred_users), -1)
    genre1 = np.concatenate([usr["genres"][pls["user"], pls["k1"]], no_genre])
    genre2 = np.where(pls["k2"] >= 0, usr["genres"][pls["user"], np.maximum(pls["k2"], 0)], -1)
    genre2 = np.concatenate([genre2, no_genre])

    # trim the spare rows, never a track's or a playlist's only row, so counts stay exact
    excess = len(row_pl) - target
    if excess > 0:
        protected = np.zeros(len(row_pl), dtype=bool)
        protected[np.unique(row_tr, return_index=True)[1]] = True
        protected[np.unique(row_pl, return_index=True)[1]] = True
        keep_row = np.ones(len(row_pl), dtype=bool)
        keep_row[rng.choice(np.flatnonzero(~protected), size=excess, replace=False)] = False
        row_pl, row_tr = row_pl[keep_row], row_tr[keep_row]

    # file order: users as numbered (their hex ids are random), playlists shuffled within
    # a user, rows shuffled within a playlist
    n_pl = len(playlist_user)
    pl_rank = np.empty(n_pl, dtype=np.int64)
    pl_rank[np.lexsort((rng.random(n_pl), playlist_user))] = np.arange(n_pl)
    file_order = np.lexsort((rng.random(len(row_pl)), pl_rank[row_pl]))
    return {"row_pl": row_pl[file_order], "row_tr": row_tr[file_order], "playlist_user": playlist_user,
            "playlist_genre": genre1, "playlist_genre2": genre2,
            "is_starred": np.arange(n_pl) >= len(pls["user"]), "slot_excess": excess, "passes": passes}


# --------------------------------------------------------------------------- assembly


def generate(preset: Preset, seed: int = 0) -> SyntheticData:
    """Generate the good rows and their ground truth in memory (no planted lines).

    Args:
        preset: sizes and shape (see `get_preset`).
        seed: same seed -> same data.
    """
    preset.validate()
    r_cat, r_usr, r_rows, r_art, r_trk, r_pl, r_uid = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(7))
    cat = _catalogue(preset, r_cat)
    block_tracks = np.bincount(cat["track_block"], minlength=preset.n_genres * preset.n_scenes)
    usr = _users(preset, block_tracks, r_usr)
    rows = _rows(preset, cat, usr, r_rows)
    genre_names = names.GENRES[: preset.n_genres]
    artist_names = names.artist_names(preset.n_artists, r_art)
    track_names = names.track_names(cat["track_artist"], artist_names, r_trk)
    playlist_names = names.playlist_names(rows["playlist_user"], rows["playlist_genre"],
                                          rows["playlist_genre2"], rows["is_starred"], genre_names, r_pl)
    for column in (artist_names, track_names, playlist_names):
        for name in column:
            names.check_name(name)
    return SyntheticData(
        genre_names=genre_names, artist_names=artist_names, artist_genre=cat["artist_genre"],
        track_names=track_names, track_artist=cat["track_artist"], track_block=cat["track_block"],
        user_ids=names.user_ids(preset.n_users, r_uid), user_genres=usr["genres"], user_taste=usr["taste"],
        playlist_user=rows["playlist_user"], playlist_names=playlist_names,
        row_playlist=rows["row_pl"], row_track=rows["row_tr"], n_scenes=preset.n_scenes,
        n_starred=int(rows["is_starred"].sum()),
        diagnostics={"slot_excess": rows["slot_excess"], "passes": rows["passes"]})


_BAD_UTF8 = ("Café Tacvba", "Señorita", "Déjà vu", "Über alles", "Niño del sol", "Mañana, mañana")


def _planted(p: Preset, data: SyntheticData, line: Callable[[int], bytes], rng: np.random.Generator
             ) -> tuple[list[tuple[int, str, bytes]], int]:
    """Malformed lines and their data-line positions (0-based, header excluded)."""
    n_good = len(data.row_playlist)
    kinds = [k for k in PLANTED_KINDS for _ in range(getattr(p, k))]
    kinds = [kinds[i] for i in rng.permutation(len(kinds))]
    n_data = n_good + len(kinds)
    # positions >= len(kinds) leave at least one good line before each planted one
    pos = np.sort(rng.choice(np.arange(len(kinds), n_data), size=len(kinds), replace=False))
    out, seen = [], dict.fromkeys(PLANTED_KINDS, 0)
    for i, (q, kind) in enumerate(zip(pos.tolist(), kinds)):
        good_before = q - i
        j = min(good_before, n_good - 1)  # borrow the user/playlist of the next good row
        pl, tr = int(data.row_playlist[j]), int(data.row_track[j])
        uid = data.user_ids[data.playlist_user[pl]].encode()
        artist = data.artist_names[data.track_artist[tr]].encode()
        track, plname = data.track_names[tr].encode(), data.playlist_names[pl].encode()
        variant = seen[kind] % 2
        seen[kind] += 1
        if kind == "wrong_shape":
            fields = [uid, artist, track] if variant == 0 else [uid, artist, track + b'","Bonus Track', plname]
        elif kind == "empty_field":
            fields = [uid, b"", track, plname] if variant == 0 else [uid, artist, b"  ", plname]
        elif kind == "invalid_utf8":
            bad = _BAD_UTF8[int(rng.integers(len(_BAD_UTF8)))].encode("latin-1")
            fields = [uid, artist, bad, plname]
        else:
            fields = None
        text = line(int(rng.integers(good_before))) if fields is None else b'"' + SEP.join(fields) + b'"\n'
        out.append((q, kind, text))
    return out, n_data


def write_dataset(path: str | os.PathLike, preset: str = "sample", scale: float = 1.0,
                  seed: int = 0, chunk_rows: int = 500_000) -> SyntheticStats:
    """Generate a dataset and write it atomically (temp file, then rename).

    Args:
        path: output CSV path.
        preset: 'sample' or 'full'.
        scale: multiplier for users/tracks/artists/playlists/rows.
        seed: same seed -> identical bytes.
        chunk_rows: rows joined per write; bounds the memory the text takes.
    """
    t0 = time.perf_counter()
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    p = get_preset(preset, scale)
    data = generate(p, seed)
    uid = [u.encode() for u in data.user_ids]
    # a row is head[playlist] + mid[track] + tail[playlist]
    head = [b'"' + uid[u] + SEP for u in data.playlist_user.tolist()]
    tail = [SEP + n.encode() + b'"\n' for n in data.playlist_names]
    artist_b = [a.encode() for a in data.artist_names]
    mid = [artist_b[a] + SEP + t.encode() for a, t in zip(data.track_artist.tolist(), data.track_names)]
    row_pl, row_tr = data.row_playlist, data.row_track

    def line(i: int) -> bytes:
        return head[row_pl[i]] + mid[row_tr[i]] + tail[row_pl[i]]

    planted, n_data = _planted(p, data, line, np.random.default_rng([seed, 1]))
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(HEADER)
            k = 0  # next planted line
            for a in range(0, len(row_pl), chunk_rows):
                b = min(a + chunk_rows, len(row_pl))
                lines = [head[pl] + mid[tr] + tail[pl]
                         for pl, tr in zip(row_pl[a:b].tolist(), row_tr[a:b].tolist())]
                base = a + k  # data lines written before this chunk
                last = b == len(row_pl)
                while k < len(planted) and (planted[k][0] - k < b or last):
                    lines.insert(planted[k][0] - base, planted[k][2])
                    k += 1
                f.write(b"".join(lines))
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()

    users = data.playlist_user[row_pl]
    return SyntheticStats(
        path=str(path), rows_written=n_data, good_rows=len(row_pl),
        n_users=len(np.unique(users)), n_tracks=len(np.unique(row_tr)),
        n_artists=len(np.unique(data.track_artist[row_tr])), n_playlists=len(np.unique(row_pl)),
        n_starred=data.n_starred,
        planted={k: getattr(p, k) for k in PLANTED_KINDS},
        planted_lines={k: tuple(q + 2 for q, kind, _ in planted if kind == k) for k in PLANTED_KINDS},
        bytes=path.stat().st_size, seconds=time.perf_counter() - t0)
