"""A fitted model as an ONNX file, for Netron or for serving with onnxruntime.

The exported graph is the scoring half of the model: user indices in, every item's score
out, the checkpoint's final embeddings and the linear scorer inside as constants:

    users (B,) int64 -> Gather(user embeddings) * w -> MatMul(item embeddings^T) + b -> scores (B, I)

The GCN's two layers ran once when training ended and their output is those embeddings;
they take a sparse adjacency, which ONNX's operators do not cover. For ``gcn+gf-cf`` the
file holds the GCN half: the GF-CF filter is sparse algebra too.
"""

from __future__ import annotations

import os
import warnings

import torch
from torch import Tensor, nn

from .recommender import Recommender


class ScoringGraph(nn.Module):
    """users (B,) -> (B, I) scores: ``w . (z_u * z_t) + b`` for every item t.

    Args:
        users: (U, d) the users' final embeddings.
        items: (I, d) the items' final embeddings.
        weight: (d,) the scorer's weights.
        bias: the scorer's bias.
    """

    def __init__(self, users: Tensor, items: Tensor, weight: Tensor, bias: Tensor):
        super().__init__()
        self.register_buffer("users", users.detach().float().contiguous())
        self.register_buffer("items_t", items.detach().float().T.contiguous())  # (d, I)
        self.register_buffer("weight", weight.detach().float().reshape(-1))
        self.register_buffer("bias", bias.detach().float().reshape(()))

    def forward(self, users: Tensor) -> Tensor:
        # (B, d) * (d,) -> (B, d) @ (d, I) -> (B, I), plus the bias
        return torch.addmm(self.bias, self.users[users] * self.weight, self.items_t)


def scoring_graph(model: Recommender) -> ScoringGraph:
    """The ``ScoringGraph`` of a fitted GCN (the GCN half of ``gcn+gf-cf``)."""
    gcn = getattr(model, "gcn", model)
    if getattr(gcn, "scorer", None) is None or gcn.user_embeddings is None:
        raise ValueError(f"{type(model).__name__} has no embeddings and scorer to export; --export-onnx takes a "
                         f"checkpoint of train_gnn.py --model gcn or gcn+gf-cf")
    return ScoringGraph(gcn.user_embeddings, gcn.item_embeddings, gcn.scorer.weight[0], gcn.scorer.bias)


def export_onnx(model: Recommender, path: str | os.PathLike) -> ScoringGraph:
    """Write the model's scoring graph to ``path`` as ONNX (dynamic batch of user indices).

    Returns:
        The exported module, whose outputs the file reproduces.

    Raises:
        ValueError: the model has nothing to export, or the file cannot be written.
    """
    graph = scoring_graph(model).eval()
    example = torch.zeros(2, dtype=torch.int64)
    try:
        with warnings.catch_warnings():  # the TorchScript-based exporter is deprecated but needs no extras
            warnings.simplefilter("ignore")
            torch.onnx.export(graph, (example,), os.fspath(path), input_names=["users"], output_names=["scores"],
                              dynamic_axes={"users": {0: "batch"}, "scores": {0: "batch"}}, dynamo=False)
    except OSError as e:
        raise ValueError(f"cannot write {path}: {e.strerror}") from None
    except (ImportError, torch.onnx.OnnxExporterError) as e:  # the exporter wraps a missing 'onnx' in its own error
        reason = str(e).strip().splitlines()[0][:120] if str(e).strip() else type(e).__name__
        raise ValueError(f"ONNX export failed ({reason}); it needs the 'onnx' package: "
                         f"pip install -r requirements-extras.txt") from None
    return graph
