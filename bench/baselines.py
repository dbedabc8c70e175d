"""Baselines the GCN is compared with, each under the product's model contract
(``melody_map.recommender.Recommender``: fit on a Dataset's training pairs, score every item,
params, state/from_state, refit).

Methods:
    Popularity  items ranked by their number of training users, the same list for everyone.
    ItemKNN     item-based neighbourhood model (Sarwar et al., WWW 2001; Deshpande & Karypis,
                TOIS 2004) by the ``implicit`` package: cosine or BM25 similarity between item
                columns, each item's ``neighbors`` most similar items kept;
                score(u, j) = sum over the user's items i with j among i's neighbours of x_ui sim(i, j).
    EASE        Steck, WWW 2019 (``melody_map.ease``: also a part of GCN+ChebyCF's filter).
    IALS        Hu, Koren & Volinsky, ICDM 2008, by the ``implicit`` package (a benchmark extra).
    LightGCN    He et al., SIGIR 2020: PyG's ``LightGCN`` on the user-item graph, trained with
                BPR (Rendle et al., UAI 2009), early-stopped on validation Recall@k.

``tune`` grid-searches any contract model by validation Recall@k.
"""

from __future__ import annotations

import copy
import itertools
import time
import warnings
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from torch import Tensor
from torch_geometric.nn.conv import LGConv
from torch_geometric.nn.models import LightGCN
from torch_geometric.utils import to_torch_csr_tensor

from melody_map.dataset import Dataset
from melody_map.ease import EASE  # noqa: F401  (a baseline of the tables, the product's own)
from melody_map.evaluate import evaluate
from melody_map.recommender import FitReport, Log, Recommender
from melody_map.sparse import SymmetricSpMM, csr_from_state, csr_state
from melody_map.types import TRAIN, VALID, UserItems

# --------------------------------------------------------------------------- models


class MatrixModel(Recommender):
    """A model fitted on the binary users x items matrix of the training pairs: ``fit`` hands
    that matrix to the subclass's ``fit_matrix``."""

    def fit(self, data: Dataset, *, log: Log | None = None, progress: bool = False) -> MatrixModel:
        return self.fit_matrix(data.matrix(TRAIN))

    def fit_matrix(self, matrix: sp.csr_matrix) -> MatrixModel:
        raise NotImplementedError


class Popularity(Recommender):
    """Every user gets the items ranked by their number of training users."""

    name, label = "popularity", "popularity"

    def __init__(self):
        self.counts: Tensor | None = None

    def fit(self, data: Dataset, *, log: Log | None = None, progress: bool = False) -> Popularity:
        counts = np.bincount(data.pairs.select(TRAIN)[1], minlength=data.num_items).astype(np.float32)
        self.counts = torch.from_numpy(counts)
        return self

    def scores(self, users: np.ndarray) -> Tensor:
        return self.counts.expand(len(users), len(self.counts)).clone()

    def params(self) -> dict[str, Any]:
        return {}

    def state(self) -> dict[str, Any]:
        return {"counts": self.counts}

    @classmethod
    def from_state(cls, params: dict[str, Any], state: dict[str, Any]) -> Popularity:
        model = cls(**params)
        model.counts = state["counts"]
        return model


class NamePopularity(Recommender):
    """A playlist gets the tracks most often held by training playlists of the same normalised
    name (``melody_map.names.normalise``), ties and unnamed playlists by popularity: the
    RecSys Challenge 2018's usual baseline for a playlist given by its name alone."""

    name, label = "name-popularity", "popularity among same-name playlists"

    def __init__(self):
        self.by_name: sp.csr_matrix | None = None  # (names, items) training playlists of each name holding each item
        self.user_name: np.ndarray | None = None  # (users,) each user's name code; -1: unnamed
        self.counts: Tensor | None = None  # (items,) training users per item

    def fit(self, data: Dataset, *, log: Log | None = None, progress: bool = False) -> NamePopularity:
        from melody_map.names import normalise

        names = data.catalogue.user_names
        if names is None:
            raise ValueError("popularity among same-name playlists needs MPD playlists (a name per playlist)")
        codes, uniques = pd.factorize(np.asarray([normalise(n or "") for n in names.to_pylist()], dtype=object))
        codes[np.asarray(uniques, dtype=object)[codes] == ""] = -1
        user, item = data.pairs.select(TRAIN)
        named = codes[user] >= 0
        self.by_name = sp.csr_matrix((np.ones(int(named.sum()), np.float32), (codes[user][named], item[named])),
                                     shape=(len(uniques), data.num_items))
        self.user_name = codes.astype(np.int64)
        self.counts = torch.from_numpy(np.bincount(item, minlength=data.num_items).astype(np.float32))
        return self

    def scores(self, users: np.ndarray) -> Tensor:
        codes = self.user_name[np.asarray(users, np.int64)]
        out = torch.zeros(len(codes), self.by_name.shape[1])
        has = np.flatnonzero(codes >= 0)
        out[torch.from_numpy(has)] = torch.from_numpy(self.by_name[codes[has]].toarray())
        return out + self.counts / (float(self.counts.max()) + 1)  # popularity below one same-name playlist

    def params(self) -> dict[str, Any]:
        return {}

    def state(self) -> dict[str, Any]:
        return {"by_name": csr_state(self.by_name), "by_name_counts": torch.from_numpy(self.by_name.data),
                "user_name": torch.from_numpy(self.user_name), "counts": self.counts}

    @classmethod
    def from_state(cls, params: dict[str, Any], state: dict[str, Any]) -> NamePopularity:
        model = cls(**params)
        model.by_name = csr_from_state(state["by_name"])
        model.by_name.data = state["by_name_counts"].numpy()
        model.user_name, model.counts = state["user_name"].numpy(), state["counts"]
        return model


class ItemKNN(MatrixModel):
    """Item-based k-nearest-neighbours by the ``implicit`` package (``implicit.nearest_neighbours``).

    implicit keeps, for each item i, its ``neighbors`` most similar items j (i itself among
    them) and scores score(u, j) = sum over the user's items i of x_ui sim(i, j): ``X @ S``.

    Args:
        neighbors: similar items kept per item (implicit's ``K``).
        similarity: "cosine" (``CosineRecommender``) or "bm25" (``BM25Recommender``, which
            weights the matrix by BM25 before the dot products).
        num_threads: implicit's threads (0: all cores).
    """

    name, label = "itemknn", "ItemKNN"
    SIMILARITIES = ("cosine", "bm25")

    def __init__(self, neighbors: int = 100, similarity: str = "cosine", num_threads: int = 2):
        if similarity not in self.SIMILARITIES:
            raise ValueError(f"similarity must be one of {self.SIMILARITIES}, got {similarity!r}")
        self.neighbors = neighbors
        self.similarity_name = similarity
        self.num_threads = num_threads
        self.similarity: sp.csr_matrix | None = None
        self.matrix: sp.csr_matrix | None = None

    def params(self) -> dict[str, Any]:
        return {"neighbors": self.neighbors, "similarity": self.similarity_name}

    def fit_matrix(self, matrix: sp.csr_matrix) -> ItemKNN:
        """Args:
            matrix: users x items (implicit >= 0.5 takes users x items).
        """
        try:
            from implicit.nearest_neighbours import BM25Recommender, CosineRecommender
        except ImportError as err:
            raise ImportError("ItemKNN needs the 'implicit' package: pip install implicit") from err
        self.matrix = sp.csr_matrix(matrix, dtype=np.float32)
        num_items = self.matrix.shape[1]
        if self.neighbors <= 0 or num_items == 0:  # no neighbours: every score is 0
            self.similarity = sp.csr_matrix((num_items, num_items), dtype=np.float32)
            return self
        knn = {"cosine": CosineRecommender, "bm25": BM25Recommender}[self.similarity_name]
        model = knn(K=self.neighbors, num_threads=self.num_threads)
        with warnings.catch_warnings():  # implicit converts its own COO product to CSR and says so
            warnings.simplefilter("ignore")
            model.fit(self.matrix, show_progress=False)
        self.similarity = sp.csr_matrix(model.similarity, dtype=np.float32)
        return self

    def scores(self, users: np.ndarray) -> Tensor:
        # Sparse x sparse: each user touches only its items' neighbour lists.
        return torch.from_numpy((self.matrix[users] @ self.similarity).toarray().astype(np.float32, copy=False))

    def state(self) -> dict[str, Any]:
        s = self.similarity
        return {**csr_state(self.matrix), "sim_indptr": torch.from_numpy(s.indptr.astype(np.int64)),
                "sim_indices": torch.from_numpy(s.indices.astype(np.int64)), "sim_values": torch.from_numpy(s.data)}

    @classmethod
    def from_state(cls, params: dict[str, Any], state: dict[str, Any]) -> ItemKNN:
        model = cls(**params)
        model.matrix = csr_from_state(state)
        n = model.matrix.shape[1]
        model.similarity = sp.csr_matrix((state["sim_values"].numpy(), state["sim_indices"].numpy(),
                                          state["sim_indptr"].numpy()), shape=(n, n))
        return model


class IALS(MatrixModel):
    """Implicit ALS (Hu et al. 2008) by the ``implicit`` package's CPU solver.

    ``implicit`` warns when BLAS runs its own thread pool (it slows the solver); fitting
    runs under ``threadpoolctl.threadpool_limits(1, "blas")``, which avoids both the slowdown
    and the warning, and parallelises with ``num_threads`` of its own instead.

    Args:
        factors: latent dimension.
        regularization: L2 weight of the factors.
        alpha: confidence scale: implicit multiplies the matrix's values by alpha.
        iterations: ALS sweeps.
        random_state: seed of the factors' initialisation.
        num_threads: implicit's solver threads (0: all cores).
    """

    name, label = "ials", "iALS"

    def __init__(self, factors: int = 64, regularization: float = 0.01, alpha: float = 1.0,
                 iterations: int = 15, random_state: int = 0, num_threads: int = 2):
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.random_state = random_state
        self.num_threads = num_threads
        self.user_factors: Tensor | None = None
        self.item_factors: Tensor | None = None

    def params(self) -> dict[str, Any]:
        return {"factors": self.factors, "regularization": self.regularization, "alpha": self.alpha,
                "iterations": self.iterations, "random_state": self.random_state}

    def fit_matrix(self, matrix: sp.csr_matrix) -> IALS:
        """Args:
            matrix: users x items confidences; implicit >= 0.5 takes users x items.
        """
        try:
            import threadpoolctl
            from implicit.cpu.als import AlternatingLeastSquares
        except ImportError as err:
            raise ImportError("iALS needs the 'implicit' package: pip install implicit") from err
        matrix = sp.csr_matrix(matrix, dtype=np.float32)
        with threadpoolctl.threadpool_limits(1, "blas"):
            model = AlternatingLeastSquares(factors=self.factors, regularization=self.regularization,
                                            alpha=self.alpha, iterations=self.iterations,
                                            random_state=self.random_state, num_threads=self.num_threads)
            model.fit(matrix, show_progress=False)
        self.user_factors = _as_tensor(model.user_factors)
        self.item_factors = _as_tensor(model.item_factors)
        self._implicit = model
        return self

    def fold_in(self, histories) -> Tensor:
        """implicit's own ``recalculate_user``: each listener's factors solved against the fixed items."""
        if getattr(self, "_implicit", None) is None:
            raise NotImplementedError("iALS folds in only from a model fitted in this process")
        import threadpoolctl

        indptr = np.concatenate([[0], np.cumsum([len(h) for h in histories])]).astype(np.int64)
        items = np.concatenate([np.asarray(h, np.int64) for h in histories])
        rows = sp.csr_matrix((np.ones(len(items), np.float32), items, indptr),
                             shape=(len(histories), self.item_factors.shape[0]))
        with threadpoolctl.threadpool_limits(1, "blas"):
            factors = self._implicit.recalculate_user(np.arange(len(histories)), rows)
        return _as_tensor(factors) @ self.item_factors.T

    def scores(self, users: np.ndarray) -> Tensor:
        return self.user_factors[torch.from_numpy(np.asarray(users, np.int64))] @ self.item_factors.T

    def state(self) -> dict[str, Any]:
        return {"user_factors": self.user_factors, "item_factors": self.item_factors}

    @classmethod
    def from_state(cls, params: dict[str, Any], state: dict[str, Any]) -> IALS:
        model = cls(**params)
        model.user_factors, model.item_factors = state["user_factors"], state["item_factors"]
        return model


def _as_tensor(factors) -> Tensor:
    # implicit's GPU models hold implicit.gpu.Matrix, which has to_numpy(); CPU ones numpy.
    array = factors.to_numpy() if hasattr(factors, "to_numpy") else factors
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))


class _SymmetricLGConv(LGConv):
    """PyG's ``LGConv`` with only its sparse product swapped for ``SymmetricSpMM``: for a
    symmetric, pre-normalised CSR adjacency (build with ``normalize=False``)."""

    def message_and_aggregate(self, adj_t, x: Tensor) -> Tensor:
        if isinstance(adj_t, Tensor) and adj_t.layout == torch.sparse_csr:
            return SymmetricSpMM.apply(adj_t, x)
        return super().message_and_aggregate(adj_t, x)


class LightGCNBaseline(Recommender):
    """PyG's ``LightGCN`` trained with BPR on the user-item bipartite graph.

    Nodes are users 0..U-1 and items U..U+I-1, every training pair an edge both ways. The
    graph goes to ``LightGCN`` as a pre-normalised (D^-1/2 A D^-1/2) sparse CSR adjacency
    with its ``LGConv`` layers' own normalisation off: the same propagation as an
    ``edge_index``, without re-normalising every layer of every step or gathering one message
    per edge; the layers' sparse product also skips torch's per-step transpose of the
    (symmetric) adjacency in backward.

    Each step propagates the whole graph and takes a BPR step on a batch of (user, positive,
    negative) triples, one triple per training pair per epoch; negatives are uniform over
    items, redrawn (a few times) where they hit one of the user's training items.

    Args:
        dim: embedding size.
        layers: propagation layers.
        epochs: maximum passes over the training pairs.
        lr: Adam learning rate.
        batch_size: triples per step; every step propagates the whole graph, so larger
            batches make an epoch cheaper.
        reg: L2 weight on the batch's layer-0 embeddings (PyG's ``lambda_reg``).
        seed: seed of the initialisation and of the sampling.
        eval_every: epochs between validation checks (when ``fit`` gets ``valid``).
        patience: checks without improvement before stopping.
        k: cut-off of the validation Recall@k.
        adjacency: "csr" (pre-normalised sparse CSR) or "edge_index" (PyG's default path).
    """

    name, label = "lightgcn", "LightGCN"

    def __init__(self, dim: int = 64, layers: int = 3, epochs: int = 50, lr: float = 0.005,
                 batch_size: int = 8192, reg: float = 1e-4, seed: int = 0, eval_every: int = 5,
                 patience: int = 3, k: int = 20, adjacency: str = "csr"):
        if adjacency not in ("csr", "edge_index"):
            raise ValueError(f"adjacency must be 'csr' or 'edge_index', not {adjacency!r}")
        self.dim, self.layers, self.epochs, self.lr = dim, layers, epochs, lr
        self.batch_size, self.reg, self.seed = batch_size, reg, seed
        self.eval_every, self.patience, self.k = eval_every, patience, k
        self.adjacency = adjacency
        self.model = None
        self.report = FitReport()
        self.user_emb: Tensor | None = None
        self.item_emb: Tensor | None = None

    def params(self) -> dict[str, Any]:
        return {"dim": self.dim, "layers": self.layers, "epochs": self.report.best_epoch or self.epochs,
                "lr": self.lr, "batch_size": self.batch_size, "reg": self.reg, "seed": self.seed,
                "eval_every": self.eval_every, "patience": self.patience, "k": self.k, "adjacency": self.adjacency}

    def _graph(self, matrix: sp.csr_matrix) -> tuple[Any, Tensor | None]:
        """The propagation graph: (adjacency or edge_index, edge weights or None)."""
        num_users, num_items = matrix.shape
        coo = matrix.tocoo()
        u = torch.from_numpy(coo.row.astype(np.int64))
        i = torch.from_numpy(coo.col.astype(np.int64)) + num_users
        edge_index = torch.stack([torch.cat([u, i]), torch.cat([i, u])])
        if self.adjacency == "edge_index":
            return edge_index, None  # LGConv normalises by degree itself
        n = num_users + num_items
        deg = torch.bincount(edge_index[0], minlength=n).float()
        inv_sqrt = deg.pow(-0.5).masked_fill(deg == 0, 0.0)  # nodes without edges stay zero
        weight = inv_sqrt[edge_index[0]] * inv_sqrt[edge_index[1]]
        with warnings.catch_warnings():  # torch flags sparse CSR as "beta"
            warnings.simplefilter("ignore", UserWarning)
            return to_torch_csr_tensor(edge_index, weight, size=(n, n)), None

    def fit(self, data: Dataset, *, log: Log | None = None, progress: bool = False) -> LightGCNBaseline:
        valid = data.items(VALID) if (data.pairs.part == VALID).any() else None
        return self.fit_matrix(data.matrix(TRAIN), valid, log)

    def fit_matrix(self, matrix: sp.csr_matrix, valid: UserItems | None = None,
                   log: Log | None = None) -> LightGCNBaseline:
        """Args:
            matrix: users x items training interactions (only which pairs exist is used).
            valid: held-out items per user for early stopping on Recall@k (training items
                excluded from the ranking), or None to train all ``epochs``.
            log: called with a line per validation check, or None.
        """
        matrix = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
        matrix.sum_duplicates()  # one edge per pair, items sorted within each user (for keys)
        num_users, num_items = matrix.shape
        graph, weight = self._graph(matrix)
        with torch.random.fork_rng(devices=[]):  # seeded init without touching the global RNG
            torch.manual_seed(self.seed)
            model = LightGCN(num_users + num_items, self.dim, self.layers,
                             normalize=self.adjacency == "edge_index")
        if self.adjacency == "csr":  # LGConv holds no parameters: swapping it changes no weight
            model.convs = torch.nn.ModuleList(_SymmetricLGConv(normalize=False) for _ in range(self.layers))
        self.model = model
        gen = torch.Generator().manual_seed(self.seed)
        optimizer = torch.optim.Adam(model.parameters(), lr=self.lr)

        pos_users = torch.from_numpy(np.repeat(np.arange(num_users), np.diff(matrix.indptr)))
        pos_items = torch.from_numpy(matrix.indices.astype(np.int64))
        keys = pos_users * num_items + pos_items  # sorted: CSR order is user then item
        exclude = UserItems(matrix.indptr.astype(np.int64), matrix.indices.astype(np.int64))
        best_recall, best_state, bad = -1.0, None, 0
        report = self.report = FitReport()

        for epoch in range(1, self.epochs + 1):
            model.train()
            total, perm = 0.0, torch.randperm(len(pos_users), generator=gen)
            for start in range(0, len(perm), self.batch_size):
                b = perm[start:start + self.batch_size]
                users, pos = pos_users[b], pos_items[b]
                neg = _sample_negatives(users, keys, num_items, gen)
                emb = model.get_embedding(graph, weight)
                u_emb = emb[users]
                pos_rank = (u_emb * emb[pos + num_users]).sum(-1)
                neg_rank = (u_emb * emb[neg + num_users]).sum(-1)
                node_id = torch.cat([users, pos + num_users, neg + num_users]).unique()
                loss = model.recommendation_loss(pos_rank, neg_rank, node_id=node_id, lambda_reg=self.reg)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total += float(loss.detach()) * len(b)
            record = {"epoch": epoch, "loss": total / max(len(perm), 1)}
            if valid is not None and (epoch % self.eval_every == 0 or epoch == self.epochs):
                self._freeze(graph, weight, num_users)
                recall = evaluate(self.scores, valid, exclude, num_items, self.k)[f"recall@{self.k}"]
                record[f"recall@{self.k}"] = recall
                if recall > best_recall:
                    best_recall, bad, report.best_epoch = recall, 0, epoch
                    best_state = copy.deepcopy(model.state_dict())
                else:
                    bad += 1
                if log:
                    log(f"epoch {epoch} loss {record['loss']:.4f} recall@{self.k} {recall:.4f}")
            report.history.append(record)
            if bad >= self.patience:
                break
        if best_state is not None:
            model.load_state_dict(best_state)
        else:
            report.best_epoch = len(report.history)
        self._freeze(graph, weight, num_users)
        return self

    @torch.no_grad()
    def _freeze(self, graph, weight, num_users: int) -> None:
        """Propagate once and keep the final user and item embeddings for scoring."""
        self.model.eval()
        emb = self.model.get_embedding(graph, weight)
        self.user_emb, self.item_emb = emb[:num_users].contiguous(), emb[num_users:].contiguous()

    @torch.no_grad()
    def scores(self, users: np.ndarray) -> Tensor:
        return self.user_emb[torch.from_numpy(np.asarray(users, np.int64))] @ self.item_emb.T

    def state(self) -> dict[str, Any]:
        return {"user_embeddings": self.user_emb, "item_embeddings": self.item_emb}

    @classmethod
    def from_state(cls, params: dict[str, Any], state: dict[str, Any]) -> LightGCNBaseline:
        model = cls(**params)
        model.user_emb, model.item_emb = state["user_embeddings"], state["item_embeddings"]
        return model


def _sample_negatives(users: Tensor, keys: Tensor, num_items: int, gen: torch.Generator,
                      tries: int = 5) -> Tensor:
    """Uniform items per user, redrawn up to ``tries`` times where they are a training item
    (``keys``: sorted user * num_items + item of the training pairs)."""
    neg = torch.randint(num_items, (len(users),), generator=gen)
    for _ in range(tries):
        k = users * num_items + neg
        pos = torch.searchsorted(keys, k).clamp_(max=len(keys) - 1)
        hit = keys[pos] == k
        if not hit.any():
            break
        neg[hit] = torch.randint(num_items, (int(hit.sum()),), generator=gen)
    return neg


# --------------------------------------------------------------------------- tuning


def tune(factory: Callable[..., Recommender], grid: Mapping[str, Sequence[Any]], data: Dataset, k: int = 20,
         log: Log | None = None) -> tuple[Recommender, list[dict[str, Any]]]:
    """Fit ``factory(**point)`` on ``data``'s training pairs for every point of ``grid`` and keep
    the best by validation Recall@k (training items left out of the ranking).

    Args:
        factory: builds an unfitted model from keyword hyper-parameters.
        grid: hyper-parameter name -> values; every combination is tried ({} tries the defaults).
        data: the dataset; its VALID pairs judge, its TEST pairs are never read.
        k: cut-off.
        log: called with one line per grid point, or None.

    Returns:
        The best fitted model (the first among ties) and one row per point: its parameters,
        the validation metrics and the fit seconds.
    """
    names = list(grid)
    valid, exclude = data.items(VALID), data.items(TRAIN)
    rows, best, best_value = [], None, -np.inf
    for values in itertools.product(*(grid[n] for n in names)):
        point = dict(zip(names, values))
        start = time.perf_counter()
        model = factory(**point).fit(data, log=log)
        seconds = time.perf_counter() - start
        metrics = evaluate(model.scores, valid, exclude, data.num_items, k, top_k_fn=model.top_k)
        rows.append({**point, **metrics, "fit_seconds": seconds})
        if log:
            log(f"{model.label} {point}: validation recall@{k} {metrics[f'recall@{k}']:.4f} ({seconds:.1f} s)")
        if metrics[f"recall@{k}"] > best_value:
            best, best_value = model, metrics[f"recall@{k}"]
    return best, rows
