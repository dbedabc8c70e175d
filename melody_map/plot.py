"""Pictures of a run: the training curve, and the network's diagram."""

from __future__ import annotations

import os
import shutil
import warnings

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402


def plot_training(history: list[dict], path: str, k: int, best_epoch: int) -> None:
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
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def draw_network(model, data, path: str) -> str:
    """Draw the GCN's autograd graph (both GCNConv layers and the scorer, one pair scored) with
    torchviz; returns the line to print: what was written, or why it was skipped."""
    try:
        from torchviz import make_dot
    except ImportError:
        return "diagram skipped: torchviz is not installed (pip install -r requirements-extras.txt)"
    if shutil.which("dot") is None:
        return "diagram skipped: Graphviz's dot is not on PATH (e.g. apt-get install graphviz)"
    gcn = getattr(model, "gcn", model)
    net = gcn.network()
    for p in net.parameters():
        p.requires_grad_(True)
    z = net(data.graph.adj)
    score = net.score(z[:1], z[data.graph.item_offset: data.graph.item_offset + 1])
    with warnings.catch_warnings():  # torchviz compares versions with distutils' deprecated LooseVersion
        warnings.simplefilter("ignore", DeprecationWarning)
        dot = make_dot(score, params={name: p for name, p in net.named_parameters()})
    stem, ext = os.path.splitext(path)
    dot.render(stem, format=(ext.lstrip(".") or "png"), cleanup=True)
    return f"wrote {path}"


def plot_user(model, data, user: int, path: str, top_k: int = 5, max_tracks: int = 16) -> None:
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
    """
    import numpy as np

    from .recommend import explain, item_labels

    cat = data.catalogue
    recs = explain(model, data, user, top_k)
    labels = item_labels(data)
    noun = cat.noun
    own = np.unique(data.known.of(user))
    playlists = (np.flatnonzero(cat.playlist_user == user) if cat.playlist_user is not None
                 else np.zeros(0, np.int64))[:8]
    member = {int(p): set(data.playlists.of(int(p)).tolist()) for p in playlists} if data.playlists is not None else {}
    reasons = [[name for name, _, _ in r] for r in recs["reasons"]]
    index_of = {labels[i]: int(i) for i in own}
    shown = list(dict.fromkeys(index_of[n] for r in reasons for n in r if n in index_of))
    in_lists = sorted(own, key=lambda i: -sum(i in m for m in member.values()))
    shown = (shown + [int(i) for i in in_lists if int(i) not in shown])[:max_tracks]
    rec_items = recs[f"{noun}_index"].tolist()
    artists = (list(dict.fromkeys(int(cat.item_artist[i]) for i in shown + rec_items))
               if cat.item_artist is not None else [])

    def column(n: int) -> np.ndarray:  # n evenly spaced heights, top to bottom
        return np.linspace(1, 0, n) if n > 1 else np.array([0.5])

    pos = {("user", user): (0.0, 0.5)}
    pos.update({("playlist", int(p)): (1.0, y) for p, y in zip(playlists, column(len(playlists)))})
    pos.update({("own", i): (2.0, y) for i, y in zip(shown, column(len(shown)))})
    pos.update({("artist", a): (3.0, y) for a, y in zip(artists, column(len(artists)))})
    pos.update({("rec", i): (4.0, y) for i, y in zip(rec_items, column(len(rec_items)))})
    fig, ax = plt.subplots(figsize=(15, max(4.0, 0.42 * max(len(shown), len(artists), 8))))

    def edge(a, b, **style) -> None:
        (x0, y0), (x1, y1) = pos[a], pos[b]
        ax.plot([x0, x1], [y0, y1], zorder=1, **style)

    for p in playlists:
        edge(("user", user), ("playlist", int(p)), color="0.7", lw=0.8)
        for i in shown:
            if i in member.get(int(p), ()):
                edge(("playlist", int(p)), ("own", i), color="0.8", lw=0.6)
    if not len(playlists):
        for i in shown:
            edge(("user", user), ("own", i), color="0.8", lw=0.6)
    for i in shown + rec_items:
        if cat.item_artist is not None:
            edge(("own" if i in shown else "rec", i), ("artist", int(cat.item_artist[i])), color="tab:purple",
                 lw=0.6, alpha=0.5)
    for i, names in zip(rec_items, reasons):
        for rank, name in enumerate(names):
            if name in index_of and index_of[name] in shown:
                edge(("own", index_of[name]), ("rec", i), color="tab:orange", lw=2.0 - 0.5 * rank, alpha=0.8)
    styles = {"user": ("tab:blue", "s"), "playlist": ("tab:green", "D"), "own": ("tab:gray", "o"),
              "artist": ("tab:purple", "^"), "rec": ("tab:orange", "*")}
    names = {"user": lambda u: f"user {data.user_ids[u].as_py()[:12]}",
             "playlist": lambda p: cat.playlist_names[p].as_py(),
             "own": lambda i: cat.item_names[i].as_py(),
             "artist": lambda a: cat.artist_names[a].as_py(),
             "rec": lambda i: f"{recs['rank'][rec_items.index(i)]}. {cat.item_names[i].as_py()}"}
    for (kind, key), (x, y) in pos.items():
        colour, marker = styles[kind]
        ax.scatter([x], [y], color=colour, marker=marker, s=140 if kind == "rec" else 60, zorder=2)
        text = names[kind](key)
        text = text if len(text) <= 30 else text[:29] + "…"
        ax.annotate(text, (x, y), xytext=(6, 4), textcoords="offset points", fontsize=8)
    for x, title in enumerate(["user", "playlists", f"their {noun}s", "artists", f"recommended {noun}s"]):
        ax.text(x, 1.08, title, ha="center", fontsize=10, weight="bold")
    ax.set_xlim(-0.3, 5.0)
    ax.set_ylim(-0.08, 1.14)
    ax.axis("off")
    ax.set_title(f"why these {noun}s: orange links join each recommendation to the user's {noun}s that pull it "
                 f"up most", fontsize=10, loc="left")
    with warnings.catch_warnings():  # names in scripts the default font lacks are drawn as boxes
        warnings.filterwarnings("ignore", "Glyph .* missing from font")
        fig.tight_layout()
        fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_artist_map(model, data, path: str, groups: dict[str, str] | None = None, most: int = 3000) -> None:
    """Draw the artists in two dimensions: the leading principal components of their vectors
    (``recommend.artist_vectors``), the ``most`` artists with the most tracks, each coloured by
    its group (e.g. a genre or a tag) where ``groups`` names one. For a plain table whose items
    are artists (HetRec), the items are drawn, the most listened first.

    Args:
        model, data: from ``load_model`` (a playlists checkpoint).
        path: the PNG to write.
        groups: artist name -> group label; the 10 largest groups get colours, the rest grey.
        most: artists drawn at most.
    """
    from collections import Counter

    import numpy as np
    import torch

    from .recommend import artist_vectors

    cat = data.catalogue
    if cat.artist_names is not None:
        vectors, all_names = artist_vectors(model, data), cat.artist_names
        weight = np.bincount(cat.item_artist, minlength=cat.num_artists)  # tracks per artist
        what = "artists by their track vectors"
    else:  # a plain table whose items are artists (e.g. HetRec): the items' own vectors
        vectors, all_names = model.item_vectors(), cat.item_names
        weight = np.bincount(data.known.items, minlength=cat.num_items)  # listeners per item
        what = f"{cat.noun}s by their vectors"
    keep = np.argsort(-weight, kind="stable")[:most]
    x = vectors[torch.from_numpy(keep)]
    x = x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)
    centred = x - x.mean(0)
    _, _, v = torch.linalg.svd(centred, full_matrices=False)
    xy = (centred @ v[:2].T).numpy()  # (artists, 2): the two leading principal components
    names = all_names.take(keep).to_pylist()
    label = [groups.get(n, "") if groups else "" for n in names]
    top = [g for g, _ in Counter(g for g in label if g).most_common(10)]
    fig, ax = plt.subplots(figsize=(8, 6.5))
    other = np.array([g not in top for g in label])
    ax.scatter(xy[other, 0], xy[other, 1], s=8, color="0.8", label="other" if groups and other.any() else None)
    for colour, g in zip(plt.get_cmap("tab10").colors, top):
        mask = np.array([lab == g for lab in label])
        ax.scatter(xy[mask, 0], xy[mask, 1], s=10, color=colour, label=g)
    if groups:
        ax.legend(markerscale=2, fontsize=8, loc="best")
    ax.set(xlabel="first principal component", ylabel="second principal component",
           title=f"{len(keep):,} {what}")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
