"""The memory estimate's terms (melody_map/memory.py) against the tensors the code really holds.

Each test builds the real object a term stands for and counts its bytes, so that a change to
what the code allocates (a copy kept, a dtype widened, a half no longer dropped) fails here
until the estimate follows it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import community_rows, load, write_original

from melody_map import memory
from melody_map.foldin import FoldIn
from melody_map.gcn import GCN, GCN_OPTIONS
from melody_map.ranking import NormOrderedTopK
from melody_map.train import build_network


def owned_bytes(obj, *not_owned: torch.Tensor) -> int:
    """Bytes of the tensors an object keeps in its attributes, less those it was handed."""
    handed = {id(t) for t in not_owned}
    return sum(t.nbytes for t in vars(obj).values() if isinstance(t, torch.Tensor) and id(t) not in handed)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    path = write_original(tmp_path_factory.mktemp("mem") / "c.csv", community_rows((30, 40)))
    data = load(path)
    results = {}
    for combine in ("concat", "last"):
        from melody_map.config import TrainConfig

        cfg = TrainConfig(data=str(path), dim=8, epochs=2, combine=combine)
        model = GCN(**{name: getattr(cfg, name) for name in GCN_OPTIONS}).fit(data)
        results[combine] = (cfg, model)
    return data, results


def test_the_rankers_own_tensors_are_its_scan_order(fitted):
    data, results = fitted
    _, model = results["concat"]
    users, items = model.user_embeddings, model.item_embeddings
    q = users * model.scorer.weight[0].detach()
    ranker = NormOrderedTopK(q, items, 0.0)
    assert owned_bytes(ranker, q, items) == memory.scan_order_bytes(data.num_items)


@pytest.mark.parametrize("combine", ["concat", "last"])
def test_the_fold_ins_item_matrix_and_the_checkpoints_state(fitted, combine):
    data, results = fitted
    cfg, model = results[combine]
    width = memory.scorer_width(cfg)
    assert model.item_embeddings.shape[1] == width
    fold = FoldIn(model.item_embeddings, model.scorer.weight[0].detach(), 0.0, 1.0)
    assert fold.items.nbytes == memory.fold_in_bytes(data.num_items, width)
    counts = memory.Counts.of(data)
    state = model.state()
    written = state["user_embeddings"].nbytes + state["item_embeddings"].nbytes
    assert written == memory.checkpoint_state_bytes(counts, cfg)
    assert state["network"]["embedding.weight"].nbytes == memory.node_vector_bytes(counts, cfg)


def test_a_training_steps_block_stays_within_its_bytes_per_nonzero(fitted):
    data, results = fitted
    cfg, _ = results["concat"]
    net = build_network(cfg, data.graph, data.pairs)
    assert net.embedding.weight.nbytes == memory.node_vector_bytes(memory.Counts.of(data), cfg)
    rows = np.arange(0, data.graph.num_nodes, 3)
    block, _ = data.graph.row_block(rows)
    held = sum(t.nbytes for t in (block.crow_indices(), block.col_indices(), block.values(),
                                  block.transposed.crow_indices(), block.transposed.col_indices(),
                                  block.transposed.values()))
    assert held <= memory.STEP_BYTES_PER_NNZ * block._nnz(), (held, block._nnz())
