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
