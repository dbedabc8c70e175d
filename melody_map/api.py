"""The public Python API: recommendations from a checkpoint alone (no CSV, no retraining; a ``--model gcn``
checkpoint not even ``torch_geometric``, while the default's GCN part runs its layers)."""

from __future__ import annotations

import difflib
import inspect
import os
from typing import Any, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import torch
from torch import Tensor

from .checkpoint import RecommenderData, build_model, load_checkpoint
from .foldin import position_weights
from .gcn import MODELS
from .names import words as name_words
from .recommender import Recommender
from .text import tsv_field

__all__ = ["RecommenderData", "continue_playlist", "explain", "get_recommendations", "item_indices", "item_labels",
           "load_model", "plural", "ranked_frame", "recommend_all", "recommend_for_new_playlist",
           "recommend_for_tracks", "recommendation_columns", "similar_artists", "similar_tracks",
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
    return build_model(record, data, path, MODELS), data


def get_recommendations(model: Recommender, data: RecommenderData, user_idx: int | Sequence[int] | None = None,
                        top_k: int = 5, *, user_id: str | Sequence[str] | None = None,
                        include_known: bool = False) -> pd.DataFrame:
    """The best items for one user, or for a list of users, best first.

    Args:
        model: from ``load_model``.
        data: from ``load_model``.
        user_idx: the user's index, 0 .. data.num_users - 1, or a list of them (or give ``user_id``).
        top_k: how many items per user; clipped to what the catalogue has left.
        user_id: the dataset's own user id, or a list of them, instead of ``user_idx``.
        include_known: also rank items the user already has.

    Returns:
        A DataFrame with columns rank, [artist,] track (or item), [item_id,] score and
        track_index (or item_index): artist for a playlists CSV, item_id for a plain table.
        For a list of users it starts with user_id and user_index, the users in the order asked.

    Raises:
        ValueError: unknown user, index out of range, or top_k < 1.
    """
    _check_top_k(top_k)
    many = _is_list(user_idx) or _is_list(user_id)
    if not many:
        user = _resolve_user(data, user_idx, user_id)
        exclude = np.zeros(0, np.int64) if include_known else data.known.of(user)
        return _frame(data, *model.recommend(user, int(top_k), exclude))
    if (user_idx is None) == (user_id is None):
        raise ValueError("give exactly one of user_idx (indices) or user_id (the dataset's user ids)")
    users = (np.array([_resolve_user(data, u, None) for u in user_idx], np.int64) if user_id is None
             else np.array([data.user_index(u) for u in user_id], np.int64))
    exclude = None if include_known else data.known
    items, scores = model.top_k(users, int(top_k), exclude)
    frames = []
    for row, user in enumerate(users):
        keep = np.isfinite(scores[row])
        frame = _frame(data, items[row][keep], scores[row][keep])
        frame.insert(0, "user_index", int(user))
        frame.insert(0, "user_id", data.user_ids[int(user)].as_py())
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else _frame(data, np.zeros(0, np.int64), np.zeros(0))


def explain(model: Recommender, data: RecommenderData, user_idx: int | None = None, top_k: int = 5, *,
            user_id: str | None = None, reasons: int = 3) -> pd.DataFrame:
    """A user's recommendations with the reasons behind each: the user's own tracks that pull it up most.

    A reason is a real term of a score: the user folded in from their own tracks
    (``Recommender.fold_in``, as ``implicit``'s ``explain`` recalculates the user) scores each
    recommendation as a sum of one part per own track plus a rest (``Recommender.contributions``).
    The largest positive parts are the reasons; taking that track away lowers the folded-in score.

    Args:
        model, data, user_idx, top_k, user_id: as ``get_recommendations``.
        reasons: how many reasons per recommendation, at most.

    Returns:
        ``get_recommendations``'s DataFrame plus ``folded_score`` (the score the reasons add up to,
        with the rest) and ``reasons``: a list of (own track's name, its part, same artist?) per row.
    """
    if _is_list(user_idx) or _is_list(user_id):
        raise ValueError("explain takes one user; call it once per user")
    recs = get_recommendations(model, data, user_idx, top_k, user_id=user_id)
    user = data.user_index(user_id) if user_id is not None else int(user_idx)
    history = np.unique(data.known.of(user).astype(np.int64))
    targets = recs[f"{data.catalogue.noun}_index"].to_numpy()
    if not len(history) or not len(targets):
        return recs.assign(folded_score=np.nan, reasons=[[] for _ in range(len(recs))])
    parts, rest = model.contributions(history, targets)
    labels = item_labels(data, history)  # (len(history),): the user's own tracks only
    artist = data.catalogue.item_artist
    why = []
    for row, target in enumerate(targets):
        order = torch.argsort(parts[row], descending=True)[:reasons].numpy()
        why.append([(str(labels[j]), float(parts[row, j]),
                     bool(artist is not None and artist[history[j]] == artist[target]))
                    for j in order if parts[row, j] > 0])
    return recs.assign(folded_score=(parts.sum(1) + rest).numpy().astype(np.float64), reasons=why)


def recommend_for_tracks(model: Recommender, data: RecommenderData, tracks: Sequence[str | int],
                         top_k: int = 10, recency: float = 0.0) -> pd.DataFrame:
    """The best items for a listener the model never saw, from a few of their tracks, without retraining.

    The listener is folded into the fitted model (``Recommender.fold_in``); the given tracks
    are left out of the list.

    Args:
        model, data: from ``load_model``.
        tracks: "Artist - Title" names (case-insensitive), a plain table's item ids, or indices.
        top_k: how many items; clipped to what the catalogue has left.
        recency: the tracks are a playlist in order and later ones weigh more: the last weighs
            ``1 + recency`` times the first (``foldin.position_weights``); 0: all alike.

    Returns:
        A DataFrame like ``get_recommendations``'s.

    Raises:
        ValueError: no tracks, an unknown name (with the closest matches), top_k < 1, a
            negative recency, or a recency for a model that cannot weigh tracks.
    """
    _check_top_k(top_k)
    history = _items(data, tracks)
    return _ranked(data, _fold_in(model, history, recency=recency), top_k, history)


def recommend_for_new_playlist(model: Recommender, data: RecommenderData, name: str,
                               tracks: Sequence[str | int] = (), top_k: int = 10,
                               recency: float = 0.0) -> pd.DataFrame:
    """The best tracks for a playlist that is not in the data, from its name and any tracks it has.

    The name's words (``names.words``) that have nodes in the model's graph give the playlist a
    vector, the mean of theirs: with no track that is the playlist's vector, and with tracks the
    prior that their fold-in is drawn towards (``FoldIn.vectors``). The given tracks are left out.

    Args:
        model, data: from ``load_model``; the model must read names (trained on MPD slices or a
            playlists CSV with name words, the default).
        name: the playlist's name, e.g. "summer vibes".
        tracks: as ``recommend_for_tracks``'s; none for a name alone.
        top_k: how many tracks.
        recency: as ``recommend_for_tracks``'s.

    Raises:
        ValueError: a model without name words, a name none of whose words the graph has and no
            tracks, an unknown track, or top_k < 1.
    """
    _check_top_k(top_k)
    if not model.reads_names():
        raise ValueError("this checkpoint's model has no name words (trained on a plain table, with --no-words, "
                         "or by an older version); retrain on MPD slices or a playlists CSV, or give --tracks alone")
    history = _items(data, tracks) if len(tracks) else np.zeros(0, np.int64)
    known = [w for w in name_words(name) if w in model.word_vocabulary()]
    if not known and not len(history):
        raise ValueError(f"no word of {name!r} names a playlist in the training data "
                         f"(words: {', '.join(name_words(name)) or 'none'}); add a few of its tracks with --tracks")
    return _ranked(data, _fold_in(model, history, name, recency), top_k, history)


def _fold_in(model: Recommender, history: np.ndarray, name: str | None = None, recency: float = 0.0) -> Tensor:
    """(I,) the scores of one new listener folded in from its items in order (and its name)."""
    if not recency >= 0:
        raise ValueError(f"recency must be 0 or more (the last track weighs 1 + recency times the first), "
                         f"got {recency}")
    options: dict[str, Any] = {} if name is None else {"names": [name]}
    if recency:
        if "weights" not in inspect.signature(model.fold_in).parameters:
            raise ValueError(f"{model.label} cannot weigh tracks by their order; leave the recency out")
        options["weights"] = [position_weights(len(history), recency)]
    return model.fold_in([history], **options)[0]


def continue_playlist(model: Recommender, data: RecommenderData, playlist: str, top_k: int = 10, *,
                      user_id: str | None = None, user_idx: int | None = None) -> pd.DataFrame:
    """The next tracks for one of a user's playlists, leaving out what it already holds.

    The playlist's tracks are folded in as a listener of their own (``recommend_for_tracks``).

    Args:
        model, data: from ``load_model`` (a playlists CSV's checkpoint).
        playlist: the playlist's name, as in the CSV (case-insensitive).
        top_k: how many tracks.
        user_id, user_idx: the playlist's owner (one of the two).

    Raises:
        ValueError: not a playlists checkpoint, unknown user or playlist, or top_k < 1.
    """
    _check_top_k(top_k)
    if data.playlists is None or data.catalogue.playlist_names is None:
        raise ValueError("this checkpoint has no playlists (a plain table, or written by an older version); "
                         "train one on a playlists CSV with: python train_gnn.py")
    user = _resolve_user(data, user_idx, user_id)
    history = data.playlists.of(playlist_index(data, user, playlist)).astype(np.int64)
    return _ranked(data, model.fold_in([history])[0], top_k, history)


def playlist_index(data: RecommenderData, user: int, name: str) -> int:
    """The index of user ``user``'s playlist called ``name``; ValueError naming their playlists if none."""
    cat = data.catalogue
    own = np.flatnonzero(cat.playlist_user == user)
    names = cat.playlist_names.take(pa.array(own)).to_pylist()
    wanted = _norm(name)
    for index, candidate in zip(own, names):
        if _norm(candidate) == wanted:
            return int(index)
    close = difflib.get_close_matches(wanted, [_norm(n) for n in names], n=1)
    hint = f"; did you mean {names[[_norm(n) for n in names].index(close[0])]!r}?" if close else ""
    listed = ", ".join(repr(n) for n in names[:5]) + (", ..." if len(names) > 5 else "")
    raise ValueError(f"user {data.user_ids[user].as_py()} has no playlist {name!r}{hint} "
                     f"(their {len(names)} playlists: {listed})")


def similar_tracks(model: Recommender, data: RecommenderData, track: str | int, top_k: int = 10) -> pd.DataFrame:
    """The items nearest to one item by the cosine of the model's item vectors, itself left out.

    Args:
        track: an "Artist - Title" name, a plain table's item id, or an index.

    Raises:
        ValueError: an unknown name (with the closest matches), a model without item vectors, or top_k < 1.
    """
    _check_top_k(top_k)
    item = _items(data, [track])[0]
    vectors = _item_vectors(model)
    # (I, d) @ (d,) over the lengths: the cosines, without a normalised copy of every vector
    cosines = (vectors @ vectors[item]) / (vectors.norm(dim=1) * vectors[item].norm()).clamp_min(1e-12)
    return _ranked(data, cosines, top_k, np.array([item]))


def similar_artists(model: Recommender, data: RecommenderData, artist: str, top_k: int = 10) -> pd.DataFrame:
    """The artists nearest to one artist: cosine of the mean of each artist's (unit) track vectors.

    Returns:
        A DataFrame with columns rank, artist, score and artist_index.

    Raises:
        ValueError: not a playlists checkpoint, an unknown artist (with the closest matches), or top_k < 1.
    """
    _check_top_k(top_k)
    cat = data.catalogue
    if cat.artist_names is None:
        raise ValueError("this checkpoint has no artists (a plain interaction table)")
    index = _name_index(data, "artists", lambda: cat.artist_names.to_pylist())
    wanted = index.get(_norm(artist))
    if wanted is None:
        raise ValueError(f"unknown artist {artist!r}{_suggest(artist, cat.artist_names.to_pylist())}")
    artists = _unit(artist_vectors(model, data))
    scores = artists @ artists[wanted]
    scores[wanted] = float("-inf")
    best = torch.topk(scores, min(int(top_k), cat.num_artists - 1))
    keep = torch.isfinite(best.values)
    picked = best.indices[keep].numpy()
    return pd.DataFrame({"rank": np.arange(1, len(picked) + 1),
                         "artist": cat.artist_names.take(pa.array(picked)).to_pylist(),
                         "score": best.values[keep].numpy().astype(np.float64), "artist_index": picked})


def recommend_all(model: Recommender, data: RecommenderData, top_k: int = 20, *,
                  evaluation: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every user's top items, known items left out as ``get_recommendations`` leaves them out.

    Args:
        model, data: from ``load_model``.
        top_k: how many items per user.
        evaluation: leave out only the items the model fitted and validated on, so that the
            user's held-out test items stay rankable: the lists train_gnn.py's test metrics score.

    Returns:
        users (n,), items (n, k) and scores (n, k), best first; -inf scores mark padding
        where a user has fewer than k items left.
    """
    _check_top_k(top_k)
    users = np.arange(data.num_users)
    items, scores = model.top_k(users, int(top_k), data.trained if evaluation else data.known)
    return users, items, scores


def item_labels(data: RecommenderData, items: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
    """Items as output files name them: a plain table's own id, or "artist - title".

    Args:
        data: from ``load_model``.
        items: the item indices to name; None names every item (millions at full scale: name
            only the ones needed where you can).

    Returns:
        An object array of strings, one per item asked for.
    """
    cat = data.catalogue
    picked = None if items is None else pa.array(np.asarray(items, np.int64))
    if cat.item_ids is not None:
        ids = cat.item_ids if picked is None else cat.item_ids.take(picked)
        return np.asarray(ids.to_pylist(), dtype=object)
    item_artist = pa.array(np.asarray(cat.item_artist, np.int64))
    if picked is not None:
        item_artist = item_artist.take(picked)
    titles = cat.item_names if picked is None else cat.item_names.take(picked)
    labels = pc.binary_join_element_wise(cat.artist_names.take(item_artist), titles, pa.scalar(" - ", titles.type))
    return np.asarray(labels.to_pylist(), dtype=object)


def recommendation_columns(data: RecommenderData) -> list[str]:
    """The columns of ``write_recommendations``'s file: the user, the rank, the item's index and names, the score."""
    cat = data.catalogue
    names = ["artist", "track"] if cat.item_ids is None else ["item_id", "item"]
    user = ["user_id", "user_name"] if cat.user_names is not None else ["user_id"]  # MPD: pid, playlist name
    item = [f"{cat.noun}_index", "track_uri"] if cat.item_uris is not None else [f"{cat.noun}_index"]
    return [*user, "user_index", "rank", *item, *names, "score"]


def write_recommendations(path: str | os.PathLike, data: RecommenderData, users: np.ndarray,
                          items: np.ndarray, scores: np.ndarray) -> int:
    """Write the lists as a TSV with a header (``recommendation_columns``); returns the rows written.

    Each row names the user by the dataset's id and index, and the item by its index and its
    names in separate cells (artist and title, or a plain table's id and name), so rows join
    back to the source. Cells are written through :func:`melody_map.text.tsv_field`: tabs, line
    breaks, backslashes and control characters escaped, formula-like cells neutralised.
    """
    cat = data.catalogue
    user_cells = [tsv_field(u) for u in data.user_ids.to_pylist()]
    if cat.user_names is not None:
        user_cells = [f"{u}\t{tsv_field(n)}" for u, n in zip(user_cells, cat.user_names.to_pylist())]
    # The names of the items the lists hold, and no others, as Python strings.
    named = np.unique(items[np.isfinite(scores)])
    position = dict(zip(named.tolist(), range(len(named))))  # item -> its place in first and second
    picked = pa.array(named)
    if cat.item_ids is None:
        first = cat.artist_names.take(pa.array(np.asarray(cat.item_artist, np.int64)).take(picked)).to_pylist()
    else:
        first = cat.item_ids.take(picked).to_pylist()
    second = cat.item_names.take(picked).to_pylist()
    if cat.item_uris is not None:  # the index cell carries the track's URI beside it
        first = [f"{tsv_field(u)}\t{tsv_field(a)}" for u, a in zip(cat.item_uris.take(picked).to_pylist(), first)]
    else:
        first = [tsv_field(a) for a in first]
    count = 0
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write("\t".join(recommendation_columns(data)) + "\n")
        for row, user in enumerate(users):
            for rank, (item, score) in enumerate(zip(items[row], scores[row]), start=1):
                if not np.isfinite(score):
                    break
                at = position[int(item)]
                f.write(f"{user_cells[user]}\t{user}\t{rank}\t{item}\t{first[at]}\t{tsv_field(second[at])}"
                        f"\t{score:.6g}\n")
                count += 1
    return count


def ranked_frame(data: RecommenderData, items: np.ndarray, scores: np.ndarray) -> pd.DataFrame:
    """``get_recommendations``'s DataFrame for items a caller ranked itself (e.g. a server's cached lists).

    Args:
        data: from ``load_model``.
        items: (n,) item indices, best first.
        scores: (n,) their scores.
    """
    return _frame(data, items, scores)


def item_indices(data: RecommenderData, tracks: Sequence[str | int]) -> np.ndarray:
    """The sorted distinct indices of tracks given as "Artist - Title" names, a plain table's ids or indices.

    Raises:
        ValueError: no tracks, or unknown ones (each named, with its closest matches).
    """
    return _items(data, tracks)


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


def artist_vectors(model: Recommender, data: RecommenderData) -> Tensor:
    """(artists, width): each artist's mean unit track vector (a playlists checkpoint's artists)."""
    cat = data.catalogue
    tracks = _unit(_item_vectors(model))
    return torch.zeros(cat.num_artists, tracks.shape[1]).index_add_(
        0, torch.from_numpy(cat.item_artist.astype(np.int64)), tracks) / torch.from_numpy(
        np.bincount(cat.item_artist, minlength=cat.num_artists).clip(1)).float()[:, None]


def _frame(data: RecommenderData, items: np.ndarray, scores: np.ndarray) -> pd.DataFrame:
    """Ranked items as a DataFrame: rank, [artist,] name, [item_id,] score, index."""
    items = np.asarray(items, np.int64)
    cat, noun = data.catalogue, data.catalogue.noun
    columns: dict[str, Any] = {"rank": np.arange(1, len(items) + 1)}
    if cat.artist_names is not None:
        columns["artist"] = cat.artist_names.take(pa.array(cat.item_artist[items])).to_pylist()
    columns[noun] = cat.item_names.take(pa.array(items)).to_pylist()
    if cat.item_uris is not None:
        columns["track_uri"] = cat.item_uris.take(pa.array(items)).to_pylist()
    if cat.item_ids is not None:
        columns["item_id"] = cat.item_ids.take(pa.array(items)).to_pylist()
    columns["score"] = np.asarray(scores, np.float64)
    columns[f"{noun}_index"] = items
    return pd.DataFrame(columns)


def _ranked(data: RecommenderData, scores: Tensor, top_k: int, exclude: np.ndarray) -> pd.DataFrame:
    """The top_k of one row of scores, ``exclude`` left out."""
    scores = scores.float().clone()
    scores[torch.from_numpy(np.asarray(exclude, np.int64))] = float("-inf")
    best = torch.topk(scores, min(int(top_k), len(scores)))
    keep = torch.isfinite(best.values)
    return _frame(data, best.indices[keep].numpy(), best.values[keep].numpy())


def _is_list(value: Any) -> bool:
    return isinstance(value, (list, tuple, np.ndarray, pd.Series))


def _norm(name: Any) -> str:
    return " ".join(str(name).split()).casefold()


def _name_index(data: RecommenderData, kind: str, names) -> dict[str, int]:
    """Normalised name -> index (the first of equal names), built once per loaded checkpoint."""
    if kind not in data.lookup:
        index: dict[str, int] = {}
        for i, name in enumerate(names()):
            index.setdefault(_norm(name), i)
        data.lookup[kind] = index
    return data.lookup[kind]


def _suggest(name: str, candidates: list[str], limit: int = 3, cutoff: float = 0.6) -> str:
    """"; did you mean ...?" with the closest of ``candidates`` as they are written, or "".

    A candidate is compared whole and by its beginning (as long as ``name``), so that a
    short name finds a longer one that starts like it ("Otis Suzuky" -> "Otis Suzuki & the Loves").
    """
    by_norm: dict[str, str] = {}
    for candidate in candidates:
        by_norm.setdefault(_norm(candidate), candidate)
    wanted = _norm(name)
    heads: dict[str, str] = {}
    for norm in by_norm:
        heads.setdefault(norm[: len(wanted)], norm)
    scored = {c: difflib.SequenceMatcher(None, wanted, c).ratio()
              for c in difflib.get_close_matches(wanted, list(by_norm), n=limit, cutoff=cutoff)}
    for head in difflib.get_close_matches(wanted, list(heads), n=limit, cutoff=max(cutoff, 0.8)):
        full = heads[head]
        scored[full] = max(scored.get(full, 0.0), difflib.SequenceMatcher(None, wanted, head).ratio())
    close = sorted(scored, key=lambda c: -scored[c])[:limit]
    return f"; did you mean {', '.join(repr(by_norm[c]) for c in close)}?" if close else ""


def _items(data: RecommenderData, tracks: Sequence[str | int]) -> np.ndarray:
    """Item indices of tracks given as names, a plain table's ids, or indices; every unknown one
    is named in one error, each with its closest matches."""
    if isinstance(tracks, (str, int, np.integer)) or not len(tracks):
        raise ValueError("give one or more tracks, as a list of names (\"Artist - Title\") or indices")
    labels = _name_index(data, "items", lambda: item_labels(data))
    found, unknown = [], []
    for track in tracks:
        if isinstance(track, (int, np.integer)) and not isinstance(track, bool):
            if not 0 <= track < data.num_items:
                raise ValueError(f"{data.catalogue.noun} index {track} is out of range: valid indices are "
                                 f"0..{data.num_items - 1}")
            found.append(int(track))
        elif (index := labels.get(_norm(track))) is not None or (index := _uri_index(data, track)) is not None:
            found.append(index)
        else:
            unknown.append(f"{track!r}{_closest_item(data, str(track), labels)}")
    if unknown:
        raise ValueError(f"unknown {plural(len(unknown), data.catalogue.noun, count=False)} " + "; ".join(unknown))
    return np.unique(np.array(found, np.int64))


def _uri_index(data: RecommenderData, uri: str) -> int | None:
    """The index of the track with this ``track_uri`` (MPD), or None."""
    uris = data.catalogue.item_uris
    if uris is None or not str(uri).strip():
        return None
    found = pc.index(uris, str(uri).strip()).as_py()
    return found if found >= 0 else None


def _closest_item(data: RecommenderData, name: str, labels: dict[str, int]) -> str:
    """A closest-match hint for an unknown item name. For "Artist - Title" it looks among the
    artist's own tracks (or the closest artists'), so a large catalogue is never scanned whole;
    a bare title is matched against the titles and shown in the "Artist - Title" form."""
    cat = data.catalogue
    if cat.artist_names is None:
        return _suggest(name, item_labels(data).tolist()) if len(labels) <= 200_000 else ""
    artists = _name_index(data, "artists", lambda: cat.artist_names.to_pylist())
    text = _norm(name)
    parts = [(text[:i], text[i + 3:]) for i in range(len(text)) if text.startswith(" - ", i)]
    known = [(a, t) for a, t in parts if a in artists]
    if not parts:  # no " - ": perhaps a title alone
        return _title_hint(data, text)
    if not known:  # no artist by that name: the closest artists' names
        hint = _suggest(parts[0][0], cat.artist_names.to_pylist())
        return hint.replace("did you mean", "no such artist; did you mean") if hint else " (no such artist)"
    artist, title = known[0]
    own = np.flatnonzero(cat.item_artist == artists[artist])
    artist_name = cat.artist_names[artists[artist]].as_py()
    titles = [f"{artist_name} - {t}" for t in cat.item_names.take(pa.array(own)).to_pylist()]
    return _suggest(f"{artist} - {title}", titles, cutoff=0.5) or f" ({artist_name} has no such title)"


def _title_hint(data: RecommenderData, title: str) -> str:
    """For a name without " - ": the tracks with that title (or a close one), as "Artist - Title"."""
    cat = data.catalogue
    titles = _name_index(data, "titles", lambda: cat.item_names.to_pylist())
    expected = ': tracks are named "Artist - Title"'
    if title in titles:
        same = np.flatnonzero(np.asarray([_norm(t) for t in cat.item_names.to_pylist()]) == title)[:3]
        return f"{expected}; did you mean {', '.join(repr(str(n)) for n in item_labels(data, same))}?"
    close = difflib.get_close_matches(title, list(titles), n=3, cutoff=0.6)
    if close:
        named = item_labels(data, [titles[c] for c in close])
        return f"{expected}; did you mean {', '.join(repr(str(n)) for n in named)}?"
    return expected


def plural(n: int, noun: str, count: bool = True) -> str:
    """"1 track", "2 tracks" (or the noun alone, in the number's form, with ``count=False``)."""
    word = noun if n == 1 else f"{noun}s"
    return f"{n:,} {word}" if count else word


def _item_vectors(model: Recommender) -> Tensor:
    vectors = getattr(model, "item_vectors", None)
    if vectors is None:
        raise ValueError(f"{type(model).__name__} has no item vectors to compare items by")
    return vectors()


def _unit(x: Tensor) -> Tensor:
    return x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)
