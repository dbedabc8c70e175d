"""Pictures of a run: the training curve, one user's neighbourhood, the artist map, and the network's diagram.

Every picture is drawn in one font fallback list (``_fonts``): DejaVu Sans, then the installed
fonts that draw what it lacks, so that every script a font is installed for is drawn. The plot
functions return the notes to print: what a picture leaves out, and the names in it that have
characters no installed font draws (drawn as boxes).
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import warnings
from collections import Counter
from dataclasses import dataclass

import matplotlib
import numpy as np

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import font_manager  # noqa: E402
from matplotlib.text import Text  # noqa: E402

GLYPH_MISSING = re.compile(r"Glyph (\d+) .*missing from font")  # matplotlib's warning, one per character
NAMES_LISTED = 5  # names a note quotes; the rest are counted


@functools.cache
def _fonts() -> dict[str, frozenset[int]]:
    """The font families text is drawn in, in fallback order, each with the code points it draws.

    DejaVu Sans first, then each installed system family with a regular upright face that draws
    something the ones before it do not (Noto Sans CJK, then Noto Sans, first). matplotlib looks a
    text's weight up in every family of the list and warns where one lacks it, hence regular faces
    only and bold text in DejaVu Sans alone. matplotlib's other bundled fonts are left out: they
    hold math symbols and placeholder boxes, not text.
    """
    bundled = os.path.realpath(matplotlib.get_data_path())
    regular = {f.name: f.fname for f in font_manager.fontManager.ttflist
               if f.style == "normal" and font_manager.weight_dict.get(f.weight, f.weight) == 400
               and (f.name == "DejaVu Sans" or not os.path.realpath(f.fname).startswith(bundled))}
    order = sorted(regular, key=lambda name: (name != "DejaVu Sans", not name.startswith("Noto Sans CJK"),
                                              not name.startswith("Noto Sans"), name))
    fonts: dict[str, frozenset[int]] = {}
    covered: set[int] = set()
    for family in order:
        chars = frozenset(font_manager.get_font(regular[family]).get_charmap())
        if chars - covered:
            fonts[family] = chars
            covered |= chars
    return fonts


@functools.cache
def _drawable() -> frozenset[int]:
    """Every code point some font of ``_fonts`` draws."""
    return frozenset().union(*_fonts().values())


def _styled(draw):
    """Run a plot function with the font fallback list, and names drawn as text, never as math ($)."""
    @functools.wraps(draw)
    def styled(*args, **kwargs):
        with plt.rc_context({"font.family": list(_fonts()), "text.parse_math": False}):
            return draw(*args, **kwargs)
    return styled


def _save(fig, path: str) -> list[str]:
    """Lay out, write and close ``fig``; returns the note on its texts that no installed font draws
    fully, made of matplotlib's "Glyph missing" warnings and the fonts' character maps, or nothing."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig.tight_layout()
        fig.savefig(path, dpi=110)
    plt.close(fig)
    missing = set()
    for w in caught:
        if match := GLYPH_MISSING.match(str(w.message)):
            missing.add(chr(int(match[1])))
        else:  # any other warning goes on as it came
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)
    return _glyph_note([t.get_text() for t in fig.findobj(Text)], missing)


def _glyph_note(texts: list[str], missing: set[str]) -> list[str]:
    """One line naming the texts with a character in ``missing`` or outside every font's map, if any."""
    drawable = _drawable()
    names = [t for t in dict.fromkeys(texts)
             if any(c in missing or not (c.isspace() or ord(c) in drawable) for c in t)]
    if not names:
        return []
    listed = ", ".join(map(repr, names[:NAMES_LISTED]))
    more = f" and {len(names) - NAMES_LISTED} more" if len(names) > NAMES_LISTED else ""
    many = len(names) > 1
    line = (f"note: {len(names)} name{'s' * many} in the picture {'have' if many else 'has'} characters no "
            f"installed font draws, drawn as boxes: {listed}{more} (fonts-noto-cjk and fonts-noto draw most scripts)")
    return [line]


@_styled
def plot_training(history: list[dict], path: str, k: int, best_epoch: int) -> list[str]:
    """Write a two-panel PNG: training MSE per epoch, validation Recall@k per check (from epoch 0, the start)."""
    trained = [r for r in history if r.get("loss") is not None]  # epoch 0, the start, has no loss
    checked = [r for r in history if f"valid_recall@{k}" in r]
    fig, (ax_loss, ax_val) = plt.subplots(1, 2, figsize=(10, 3.8))
    ax_loss.plot([r["epoch"] for r in trained], [r["loss"] for r in trained], color="tab:blue")
    ax_loss.set(xlabel="epoch", ylabel="MSE loss", title="training loss")
    ax_val.plot([r["epoch"] for r in checked], [r[f"valid_recall@{k}"] for r in checked],
                marker="o", color="tab:green", label=f"Recall@{k}")
    ax_val.plot([r["epoch"] for r in checked], [r[f"valid_ndcg@{k}"] for r in checked],
                marker="s", color="tab:orange", label=f"NDCG@{k}")
    if checked:
        ax_val.axvline(best_epoch, color="gray", linestyle="--", label=f"best (epoch {best_epoch})")
    ax_val.set(xlabel="epoch", ylabel="metric", title="validation (all tracks ranked)")
    ax_val.legend()
    for ax in (ax_loss, ax_val):
        ax.grid(alpha=0.3)
    return _save(fig, path)


def draw_network(model, data, path: str) -> str:
    """Draw the GCN's autograd graph (both GCNConv layers and the scorer, one pair scored) with
    torchviz; returns the line to print: what was written, or why it was skipped."""
    try:
        from torchviz import make_dot
    except ImportError:
        return "diagram skipped: torchviz is not installed (pip install -r requirements-extras.txt)"
    if shutil.which("dot") is None:
        return "diagram skipped: Graphviz's dot is not on PATH (e.g. apt-get install graphviz)"
    if hasattr(model, "diagram_score"):  # GCN+ChebyCF: its GCN part and scorer for one listener's first track
        score, params = model.diagram_score()
    else:
        net = getattr(model, "gcn", model).network()
        for p in net.parameters():
            p.requires_grad_(True)
        z = net(data.graph.adj)
        score = net.score(z[:1], z[data.graph.item_offset: data.graph.item_offset + 1])
        params = dict(net.named_parameters())
    with warnings.catch_warnings():  # torchviz compares versions with distutils' deprecated LooseVersion
        warnings.simplefilter("ignore", DeprecationWarning)
        dot = make_dot(score, params=params)
    stem, ext = os.path.splitext(path)
    dot.render(stem, format=(ext.lstrip(".") or "png"), cleanup=True)
    return f"wrote {path}"


MAX_PLAYLISTS = 8  # playlists plot_user draws at most
STYLES = {"user": ("tab:blue", "s"), "playlist": ("tab:green", "D"), "own": ("tab:gray", "o"),
          "artist": ("tab:purple", "^"), "rec": ("tab:orange", "*")}  # colour and marker of each column


@dataclass
class Neighbourhood:
    """What ``plot_user`` draws of one user, column by column (catalogue indices)."""

    user: int
    playlists: list[int]  # the user's first MAX_PLAYLISTS playlists
    member: dict[int, set[int]]  # each drawn playlist's tracks
    shown: list[int]  # own tracks drawn: the reasons first, then those in most of the drawn playlists
    recs: list[int]  # recommendations, best first
    reasons: list[list[int]]  # per recommendation, the own tracks that pull it up most, most first
    artists: list[int]  # the artists of shown and recs
    num_own: int  # the user's own tracks in all
    num_playlists: int  # the user's playlists in all


def _neighbourhood(model, data, user: int, top_k: int, max_tracks: int) -> Neighbourhood:
    """The user's playlists, the own tracks to draw, the recommendations and their reasons and artists."""
    from .api import explain, item_labels

    cat = data.catalogue
    recs = explain(model, data, user, top_k)
    own = np.unique(data.known.of(user)).tolist()
    playlists = np.flatnonzero(cat.playlist_user == user).tolist() if cat.playlist_user is not None else []
    member = ({p: set(data.playlists.of(p).tolist()) for p in playlists[:MAX_PLAYLISTS]}
              if data.playlists is not None else {})
    index_of = dict(zip(item_labels(data, own), own))  # the user's own tracks, by the names reasons give
    reasons = [[index_of[name] for name, _, _ in r if name in index_of] for r in recs["reasons"]]
    in_lists = sorted(own, key=lambda i: -sum(i in m for m in member.values()))
    shown = list(dict.fromkeys([i for r in reasons for i in r] + in_lists))[:max_tracks]
    rec_items = recs[f"{cat.noun}_index"].tolist()
    artists = (list(dict.fromkeys(int(cat.item_artist[i]) for i in shown + rec_items))
               if cat.item_artist is not None else [])
    return Neighbourhood(user, playlists[:MAX_PLAYLISTS], member, shown, rec_items, reasons, artists,
                         num_own=len(own), num_playlists=len(playlists))


def _positions(nb: Neighbourhood) -> dict[tuple[str, int], tuple[float, float]]:
    """Each node's (x, y): one column per kind, left to right, its nodes evenly spaced top to bottom."""
    columns = {"user": [nb.user], "playlist": nb.playlists, "own": nb.shown, "artist": nb.artists, "rec": nb.recs}
    pos = {}
    for x, (kind, keys) in enumerate(columns.items()):
        heights = np.linspace(1, 0, len(keys)) if len(keys) > 1 else [0.5]
        pos.update({(kind, key): (float(x), float(y)) for key, y in zip(keys, heights)})
    return pos


def _draw_links(ax, nb: Neighbourhood, pos: dict, item_artist) -> None:
    """User - playlists - own tracks in grey, tracks - artists in purple, reasons - recommendations in orange."""
    def edge(a, b, **style) -> None:
        (x0, y0), (x1, y1) = pos[a], pos[b]
        ax.plot([x0, x1], [y0, y1], zorder=1, **style)

    for p in nb.playlists:
        edge(("user", nb.user), ("playlist", p), color="0.7", lw=0.8)
        for i in nb.shown:
            if i in nb.member.get(p, ()):
                edge(("playlist", p), ("own", i), color="0.8", lw=0.6)
    if not nb.playlists:
        for i in nb.shown:
            edge(("user", nb.user), ("own", i), color="0.8", lw=0.6)
    if item_artist is not None:
        for kind, items in (("own", nb.shown), ("rec", nb.recs)):
            for i in items:
                edge((kind, i), ("artist", int(item_artist[i])), color="tab:purple", lw=0.6, alpha=0.5)
    for i, reasons in zip(nb.recs, nb.reasons):
        for rank, j in enumerate(reasons):
            if j in nb.shown:
                edge(("own", j), ("rec", i), color="tab:orange", lw=2.0 - 0.5 * rank, alpha=0.8)


def _draw_nodes(ax, nb: Neighbourhood, pos: dict, data) -> None:
    """A marker per node and its name beside it, cut to 30 characters."""
    cat = data.catalogue
    names = {"user": lambda u: f"user {data.user_ids[u].as_py()[:12]}",
             "playlist": lambda p: cat.playlist_names[p].as_py(),
             "own": lambda i: cat.item_names[i].as_py(),
             "artist": lambda a: cat.artist_names[a].as_py(),
             "rec": lambda i: f"{nb.recs.index(i) + 1}. {cat.item_names[i].as_py()}"}
    for (kind, key), (x, y) in pos.items():
        colour, marker = STYLES[kind]
        ax.scatter([x], [y], color=colour, marker=marker, s=140 if kind == "rec" else 60, zorder=2)
        text = names[kind](key)
        text = text if len(text) <= 30 else text[:29] + "…"
        ax.annotate(text, (x, y), xytext=(6, 4), textcoords="offset points", fontsize=8)


def _left_out(nb: Neighbourhood, noun: str) -> list[str]:
    """What the picture leaves out of the user's own, one line each (none when it draws everything)."""
    lines = []
    if len(nb.shown) < nb.num_own:
        then = ", then those in most of the user's playlists" if nb.member else ""
        lines.append(f"{len(nb.shown)} of the user's {nb.num_own:,} {noun}s shown: the reasons first{then}")
    if len(nb.playlists) < nb.num_playlists:
        lines.append(f"{len(nb.playlists)} of the user's {nb.num_playlists:,} playlists shown: the first ones")
    return lines


@_styled
def plot_user(model, data, user: int, path: str, top_k: int = 5, max_tracks: int = 16) -> list[str]:
    """Draw one user's neighbourhood: their playlists, their tracks, the tracks recommended to them
    and the artists of both, left to right. A recommendation is linked to the user's tracks that
    pull it up most (``recommend.explain``) and to its artist; own tracks shown are those reasons
    first, then the ones in most of the user's playlists.

    Args:
        model, data: from ``load_model``.
        user: the user's index.
        path: the PNG to write.
        top_k: recommendations drawn.
        max_tracks: most of the user's own tracks drawn.

    Returns:
        The notes to print, one line each: what the picture leaves out, names it cannot draw.
    """
    noun = data.catalogue.noun
    nb = _neighbourhood(model, data, user, top_k, max_tracks)
    pos = _positions(nb)
    fig, ax = plt.subplots(figsize=(15, max(4.0, 0.42 * max(len(nb.shown), len(nb.artists), 8))))
    _draw_links(ax, nb, pos, data.catalogue.item_artist)
    _draw_nodes(ax, nb, pos, data)
    for x, title in enumerate(["user", "playlists", f"their {noun}s", "artists", f"recommended {noun}s"]):
        ax.text(x, 1.08, title, ha="center", fontsize=10, weight="bold", family="DejaVu Sans")  # see _fonts
    ax.set_xlim(-0.3, 5.0)
    ax.set_ylim(-0.08, 1.14)
    ax.axis("off")
    left_out = _left_out(nb, noun)
    why = f"why these {noun}s: orange links join each recommendation to the user's {noun}s that pull it up most"
    ax.set_title("\n".join([why, *left_out]), fontsize=10, loc="left")
    return [f"note: {line}" for line in left_out] + _save(fig, path)


# Group colours: tab10 with its grey swapped for black, so that no group looks like the ungrouped rest.
GROUP_COLOURS = [c for c in plt.get_cmap("tab10").colors if c != matplotlib.colors.to_rgb("tab:gray")] + [(0, 0, 0)]


def _artist_points(model, data, most: int) -> tuple[np.ndarray, list[str], str]:
    """The ``most`` heaviest artists' (x, y), the two leading principal components of their unit
    vectors, their names, and what they are for a title. For a plain table whose items are artists
    (HetRec), the items, the most listened first."""
    import torch

    from .api import artist_vectors

    cat = data.catalogue
    if cat.artist_names is not None:
        vectors, all_names = artist_vectors(model, data), cat.artist_names
        weight = np.bincount(cat.item_artist, minlength=cat.num_artists)  # tracks per artist
        what, most_of, how = "artists", "with the most tracks", "by their track vectors"
    else:  # a plain table whose items are artists (e.g. HetRec): the items' own vectors
        vectors, all_names = model.item_vectors(), cat.item_names
        weight = np.bincount(data.known.items, minlength=cat.num_items)  # listeners per item
        what, most_of, how = f"{cat.noun}s", "with the most listeners", "by their vectors"
    keep = np.argsort(-weight, kind="stable")[:most]
    x = vectors[torch.from_numpy(keep)]
    x = x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)
    centred = x - x.mean(0)
    _, _, v = torch.linalg.svd(centred, full_matrices=False)
    xy = (centred @ v[:2].T).numpy()  # (artists, 2): the two leading principal components
    drawn = (f"the {len(keep):,} of {len(weight):,} {what} {most_of}," if len(keep) < len(weight)
             else f"{len(keep):,} {what}")
    return xy, all_names.take(keep).to_pylist(), f"{drawn} {how}"


def _draw_groups(ax, xy: np.ndarray, label: list[str], title: str) -> None:
    """The points of the 10 largest groups each in its own colour over the rest in grey, and a legend
    beside the axes with each group's name and its count."""
    counts = Counter(g for g in label if g)
    top = [g for g, _ in counts.most_common(len(GROUP_COLOURS))]
    other = np.array([g not in top for g in label])
    if other.any():
        ax.scatter(xy[other, 0], xy[other, 1], s=8, color="0.8", label=f"other or none ({other.sum():,})")
    for colour, g in zip(GROUP_COLOURS, top):
        mask = np.array([lab == g for lab in label])
        ax.scatter(xy[mask, 0], xy[mask, 1], s=10, color=colour, label=f"{g} ({counts[g]:,})")
    ax.legend(markerscale=2, fontsize=8, title=title, title_fontsize=9, loc="upper left",
              bbox_to_anchor=(1.01, 1.0), frameon=False)


@_styled
def plot_artist_map(model, data, path: str, groups: dict[str, str] | None = None, most: int = 3000,
                    group_name: str = "group") -> list[str]:
    """Draw the artists in two dimensions: the leading principal components of their vectors
    (``recommend.artist_vectors``), the ``most`` artists with the most tracks, each coloured by
    its group (e.g. a genre or a tag) where ``groups`` names one. For a plain table whose items
    are artists (HetRec), the items are drawn, the most listened first. The title names the dataset.

    Args:
        model, data: from ``load_model`` (a playlists checkpoint).
        path: the PNG to write.
        groups: artist name -> group label; the 10 largest groups get colours, the rest grey.
        most: artists drawn at most.
        group_name: what a group is (e.g. "genre"), the legend's title.

    Returns:
        The notes to print, one line each (names it cannot draw).
    """
    xy, names, what = _artist_points(model, data, most)
    fig, ax = plt.subplots(figsize=(10, 6.5))
    if groups:
        _draw_groups(ax, xy, [groups.get(n, "") for n in names], f"{group_name} (artists drawn)")
    else:
        ax.scatter(xy[:, 0], xy[:, 1], s=8, color="0.8")
    dataset = os.path.basename(str(data.config.get("data", ""))) or "unnamed data"
    ax.set(xlabel="first principal component", ylabel="second principal component", title=f"{dataset}: {what}")
    ax.grid(alpha=0.3)
    return _save(fig, path)
