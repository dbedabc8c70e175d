"""Classic top-k recommenders over an implicit-feedback matrix, to benchmark the GCN against.

Every model takes a users x items ``scipy.sparse.csr_matrix`` (``interaction_matrix``) in
``fit`` and then gives a ``ScoreFn`` (``score_fn()``: user indices (B,) -> float32 scores
(B, items)), so ``melody_map.evaluate.evaluate`` ranks all of them with the same code as the
GCN, training items masked.

Methods:
    ItemKNN  Item-based neighbourhood model (Sarwar et al., "Item-based collaborative
             filtering recommendation algorithms", WWW 2001; Deshpande & Karypis, "Item-based
             top-N recommendation algorithms", TOIS 2004): cosine similarity between item
             columns, optionally shrunk (dot / (|i| |j| + shrink)), only each item's
             ``neighbors`` most similar items kept; score(u, j) = sum over the user's items i
             among j's neighbours of x_ui * sim(i, j).
    EASE     Steck, "Embarrassingly Shallow Autoencoders for Sparse Data", WWW 2019: the
             item-item weights B minimising |X - XB|^2 + lambda |B|^2 with diag(B) = 0 have the
             closed form B = I - P / diag(P) (column j divided by P_jj), P = (X^T X + lambda I)^-1;
             score = X_u B. Needs a dense items x items inverse, hence ``max_items``.
    IALS     Hu, Koren & Volinsky, "Collaborative Filtering for Implicit Feedback Datasets",
             ICDM 2008 (conjugate-gradient solver of Takacs et al., RecSys 2011), through the
             ``implicit`` package (an optional benchmark extra, imported lazily).
    LightGCN He et al., "LightGCN: Simplifying and Powering Graph Convolution Network for
             Recommendation", SIGIR 2020: PyG's ``LightGCN`` on the user-item bipartite graph,
             trained with BPR (Rendle et al., UAI 2009) on (user, positive, uniform negative)
             triples.

``tune`` grid-searches any of them by validation Recall@k (``tune_ials``, ``tune_itemknn``,
``tune_ease`` and ``tune_lightgcn`` hold default grids).
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

from .evaluate import ScoreFn, UserItems, evaluate
from .filters import items_matrix
from .filters import torch_csr as _torch_csr
from .model import _SymmetricSpMM

# --------------------------------------------------------------------------- data helpers


def interaction_matrix(users: np.ndarray, items: np.ndarray, weights: np.ndarray | None = None,
                       num_users: int | None = None, num_items: int | None = None) -> sp.csr_matrix:
    """The users x items float32 CSR matrix of interactions.

    Args:
        users: (n,) user index of each interaction.
        items: (n,) item index of each interaction.
        weights: (n,) confidence of each interaction, summed over repeated pairs; None gives a
            binary matrix (a pair seen twice is still 1).
        num_users: rows; by default the largest user index + 1.
        num_items: columns; by default the largest item index + 1.
    """
    users = np.asarray(users, dtype=np.int64)
    items = np.asarray(items, dtype=np.int64)
    shape = (int(num_users if num_users is not None else users.max(initial=-1) + 1),
             int(num_items if num_items is not None else items.max(initial=-1) + 1))
    data = np.ones(len(users), np.float32) if weights is None else np.asarray(weights, np.float32)
    # csr_matrix rather than csr_array: implicit's fit checks isinstance(csr_matrix).
    matrix = sp.csr_matrix((data, (users, items)), shape=shape, dtype=np.float32)  # sums repeats
    matrix.sort_indices()
    if weights is None:
        matrix.data[:] = 1.0
    return matrix


def matrix_of(user_items: UserItems, num_items: int) -> sp.csr_matrix:
    """The binary users x items CSR matrix of a ``UserItems``."""
    return items_matrix(user_items, num_items)


def user_items_of(matrix: sp.csr_matrix) -> UserItems:
    """Each user's items in ``matrix`` (its non-zeros) as a ``UserItems``, e.g. to exclude them."""
    matrix = sp.csr_matrix(matrix, copy=True)
    matrix.sum_duplicates()  # one entry per pair, sorted within each user as UserItems keeps them
    return UserItems(indptr=matrix.indptr.astype(np.int64), items=matrix.indices.astype(np.int64))


def _gram_blocks(matrix: sp.csr_matrix, max_block_floats: int):
    """Yield (start, stop, dense rows start:stop of X^T X) over item blocks, so no more than
    ``max_block_floats`` dense floats (and no items x items sparse product) exist at once."""
    num_items = matrix.shape[1]
    by_item = matrix.T.tocsr()  # items x users
    block = max(1, min(num_items, max_block_floats // max(num_items, 1)))
    for start in range(0, num_items, block):
        stop = min(num_items, start + block)
        yield start, stop, (by_item[start:stop] @ matrix).toarray()


# --------------------------------------------------------------------------- models


class Recommender:
    """Common interface: ``fit(matrix)``, then ``scores(users)`` / ``score_fn()``."""

    def _params(self) -> dict[str, Any]:
        raise NotImplementedError

    def fit(self, matrix: sp.csr_matrix) -> "Recommender":
        raise NotImplementedError

    def scores(self, users: np.ndarray) -> Tensor:
        """(B, items) float32 scores of every item for ``users``."""
        raise NotImplementedError

    def score_fn(self) -> ScoreFn:
        """The fitted model as a ``ScoreFn`` for ``melody_map.evaluate``."""
        return self.scores

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._params().items())
        return f"{type(self).__name__}({args})"


class ItemKNN(Recommender):
    """Item-based k-nearest-neighbours with (shrunk) cosine similarity.

    Similarities are computed one block of items at a time (a dense block x items slice of
    X^T X, its top ``neighbors`` per row kept), so memory stays ~``max_block_floats`` floats
    plus the sparse result, for any number of items.

    Args:
        neighbors: similar items kept per item.
        shrink: added to the cosine's denominator; damps similarities of rarely seen items.
        max_block_floats: size of the dense similarity block computed at once.
    """

    def __init__(self, neighbors: int = 100, shrink: float = 0.0, max_block_floats: int = 1 << 25):
        self.neighbors = neighbors
        self.shrink = shrink
        self.max_block_floats = max_block_floats
        self.similarity: sp.csr_matrix | None = None
        self.matrix: sp.csr_matrix | None = None

    def _params(self) -> dict[str, Any]:
        return {"neighbors": self.neighbors, "shrink": self.shrink}

    def fit(self, matrix: sp.csr_matrix) -> "ItemKNN":
        """Args:
            matrix: users x items interactions (``interaction_matrix``).
        """
        self.matrix = sp.csr_matrix(matrix, dtype=np.float32)
        num_items = self.matrix.shape[1]
        norms = np.sqrt(np.asarray(self.matrix.multiply(self.matrix).sum(0)).ravel()).astype(np.float32)
        k = min(self.neighbors, max(num_items - 1, 0))
        rows, cols, vals = [], [], []
        for start, stop, dots in _gram_blocks(self.matrix, self.max_block_floats):
            denom = norms[start:stop, None] * norms[None, :] + np.float32(self.shrink)
            sims = np.divide(dots, denom, out=np.zeros_like(dots), where=denom > 0)
            sims[np.arange(stop - start), np.arange(start, stop)] = 0.0  # an item is not its own neighbour
            if k == 0:
                continue
            top = torch.topk(torch.from_numpy(sims), k, dim=1)
            v, c = top.values.numpy().ravel(), top.indices.numpy().ravel()
            keep = v > 0  # padding when an item has fewer than k co-occurring items
            rows.append(np.repeat(np.arange(start, stop), k)[keep])
            cols.append(c[keep])
            vals.append(v[keep])
        cat = (lambda parts, dt: np.concatenate(parts).astype(dt) if parts else np.zeros(0, dt))
        # knn[j, i] = sim(j, i) for i among j's neighbours; scoring needs S[i, j] (score = X S).
        knn = sp.csr_matrix((cat(vals, np.float32), (cat(rows, np.int64), cat(cols, np.int64))),
                            shape=(num_items, num_items))
        self.similarity = knn.T.tocsr()
        return self

    def scores(self, users: np.ndarray) -> Tensor:
        # Sparse x sparse: each user touches only its items' neighbour lists.
        return torch.from_numpy((self.matrix[users] @ self.similarity).toarray().astype(np.float32, copy=False))


class EASE(Recommender):
    """Steck's EASE: closed-form item-item weights, B = I - P / diag(P), P = (X^T X + lam I)^-1.

    Computed in float32 with a Cholesky inverse: peak memory about 3 dense items x items
    float32 matrices (~4.8 GB at 20k items).

    Args:
        lam: L2 regularisation (Steck's lambda; 500 is a common start, larger for denser data).
        max_items: refuse catalogues larger than this, whose dense inverse would not fit.
    """

    def __init__(self, lam: float = 500.0, max_items: int = 20_000):
        self.lam = lam
        self.max_items = max_items
        self.weights: Tensor | None = None
        self.matrix: sp.csr_matrix | None = None

    def _params(self) -> dict[str, Any]:
        return {"lam": self.lam, "max_items": self.max_items}

    def fit(self, matrix: sp.csr_matrix) -> "EASE":
        """Args:
            matrix: users x items interactions (``interaction_matrix``).
        """
        num_items = matrix.shape[1]
        if num_items > self.max_items:
            raise ValueError(f"EASE needs a dense {num_items} x {num_items} inverse: {num_items} items "
                             f"exceed max_items={self.max_items}")
        self.matrix = sp.csr_matrix(matrix, dtype=np.float32)
        gram = torch.empty(num_items, num_items)
        for start, stop, block in _gram_blocks(self.matrix, 1 << 25):
            gram[start:stop] = torch.from_numpy(block)
        gram.diagonal().add_(self.lam)
        chol = torch.linalg.cholesky(gram)  # X^T X + lam I is symmetric positive definite
        del gram
        inv = torch.cholesky_inverse(chol)
        del chol
        # B_ij = -P_ij / P_jj off the diagonal, 0 on it.
        inv.div_(-inv.diagonal().clone())
        inv.diagonal().zero_()
        self.weights = inv
        return self

    def scores(self, users: np.ndarray) -> Tensor:
        return torch.sparse.mm(_torch_csr(self.matrix[users]), self.weights)


class IALS(Recommender):
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

    def _params(self) -> dict[str, Any]:
        return {"factors": self.factors, "regularization": self.regularization, "alpha": self.alpha,
                "iterations": self.iterations, "random_state": self.random_state}

    def fit(self, matrix: sp.csr_matrix) -> "IALS":
        """Args:
            matrix: users x items confidences (``interaction_matrix``); implicit >= 0.5 takes
                users x items, older versions items x users (unsupported).
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
        return self

    def scores(self, users: np.ndarray) -> Tensor:
        return self.user_factors[torch.from_numpy(np.asarray(users, np.int64))] @ self.item_factors.T


def _as_tensor(factors) -> Tensor:
    # implicit's GPU models hold implicit.gpu.Matrix, which has to_numpy(); CPU ones numpy.
    array = factors.to_numpy() if hasattr(factors, "to_numpy") else factors
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))


class _SymmetricLGConv(LGConv):
    """PyG's ``LGConv`` with only its sparse product swapped for ``_SymmetricSpMM``: for a
    symmetric, pre-normalised CSR adjacency (build with ``normalize=False``)."""

    def message_and_aggregate(self, adj_t, x: Tensor) -> Tensor:
        if isinstance(adj_t, Tensor) and adj_t.layout == torch.sparse_csr:
            return _SymmetricSpMM.apply(adj_t, x)
        return super().message_and_aggregate(adj_t, x)


class LightGCNBaseline(Recommender):
    """PyG's ``LightGCN`` trained with BPR on the user-item bipartite graph.

    Nodes are users 0..U-1 and items U..U+I-1, every training pair an edge both ways. The
    graph goes to ``LightGCN`` as a pre-normalised (D^-1/2 A D^-1/2) sparse CSR adjacency
    with its ``LGConv`` layers' own normalisation off: the same propagation as an
    ``edge_index``, without re-normalising every layer of every step. On 66k user-item pairs
    (1 thread) a propagation took 29 ms this way against 211 ms by PyG's gather-scatter over
    an ``edge_index``; the layers' sparse product also skips torch's per-step transpose of the
    (symmetric) adjacency in backward, another 1.5x per step.

    Each step propagates the whole graph and takes a BPR step on a batch of (user, positive,
    negative) triples, one triple per training pair per epoch; negatives are uniform over
    items, redrawn (a few times) where they hit one of the user's training items.

    Args:
        dim: embedding size.
        layers: propagation layers.
        epochs: maximum passes over the training pairs.
        lr: Adam learning rate.
        batch_size: triples per step; every step propagates the whole graph, so larger
            batches make an epoch cheaper (8192 at 1M pairs: ~120 steps an epoch).
        reg: L2 weight on the batch's layer-0 embeddings (PyG's ``lambda_reg``).
        seed: seed of the initialisation and of the sampling.
        eval_every: epochs between validation checks (when ``fit`` gets ``valid``).
        patience: checks without improvement before stopping.
        k: cut-off of the validation Recall@k.
        adjacency: "csr" (pre-normalised sparse CSR) or "edge_index" (PyG's default path).
        log: called with a line per validation check, or None.
    """

    def __init__(self, dim: int = 64, layers: int = 3, epochs: int = 50, lr: float = 0.005,
                 batch_size: int = 8192, reg: float = 1e-4, seed: int = 0, eval_every: int = 5,
                 patience: int = 3, k: int = 20, adjacency: str = "csr",
                 log: Callable[[str], None] | None = None):
        if adjacency not in ("csr", "edge_index"):
            raise ValueError(f"adjacency must be 'csr' or 'edge_index', not {adjacency!r}")
        self.dim, self.layers, self.epochs, self.lr = dim, layers, epochs, lr
        self.batch_size, self.reg, self.seed = batch_size, reg, seed
        self.eval_every, self.patience, self.k = eval_every, patience, k
        self.adjacency = adjacency
        self.log = log
        self.model = None
        self.history: list[dict[str, float]] = []
        self.best_epoch = 0
        self.user_emb: Tensor | None = None
        self.item_emb: Tensor | None = None

    def _params(self) -> dict[str, Any]:
        return {"dim": self.dim, "layers": self.layers, "epochs": self.epochs, "lr": self.lr,
                "batch_size": self.batch_size, "reg": self.reg, "seed": self.seed}

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

    def fit(self, matrix: sp.csr_matrix, valid: UserItems | None = None) -> "LightGCNBaseline":
        """Args:
            matrix: users x items training interactions (only which pairs exist is used).
            valid: held-out items per user for early stopping on Recall@k (training items
                excluded from the ranking), or None to train all ``epochs``.
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
        exclude = user_items_of(matrix) if valid is not None else None
        best_recall, best_state, bad = -1.0, None, 0
        self.history, self.best_epoch = [], 0

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
                    best_recall, bad, self.best_epoch = recall, 0, epoch
                    best_state = copy.deepcopy(model.state_dict())
                else:
                    bad += 1
                if self.log:
                    self.log(f"epoch {epoch} loss {record['loss']:.4f} recall@{self.k} {recall:.4f}")
            self.history.append(record)
            if bad >= self.patience:
                break
        if best_state is not None:
            model.load_state_dict(best_state)
        else:
            self.best_epoch = len(self.history)
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


def tune(factory: Callable[..., Recommender], grid: Mapping[str, Sequence[Any]], train: sp.csr_matrix,
         valid: UserItems, k: int = 20, metric: str = "recall",
         log: Callable[[str], None] | None = None) -> tuple[dict[str, Any], pd.DataFrame]:
    """Fit ``factory(**point)`` on ``train`` for every point of ``grid`` and keep the best by
    validation ``metric@k`` (training items excluded from the ranking).

    Args:
        factory: builds an unfitted model from keyword hyper-parameters (e.g. ``EASE``, or
            ``functools.partial(IALS, iterations=10)`` for fixed ones).
        grid: hyper-parameter name -> values; every combination is tried.
        train: users x items training interactions.
        valid: held-out items per user.
        k: cut-off.
        metric: "recall", "ndcg" or "hitrate".
        log: called with one line per grid point, or None.

    Returns:
        The best point's parameters (the first tried among ties) and a table with one row
        per point: its parameters, the validation metrics and the fit seconds.
    """
    names = list(grid)
    exclude = user_items_of(train)
    rows, best, best_value = [], None, -np.inf
    for values in itertools.product(*(grid[n] for n in names)):
        params = dict(zip(names, values))
        start = time.perf_counter()
        model = factory(**params).fit(train)
        seconds = time.perf_counter() - start
        metrics = evaluate(model.score_fn(), valid, exclude, train.shape[1], k)
        rows.append({**params, **metrics, "fit_seconds": seconds})
        value = metrics[f"{metric}@{k}"]
        if log:
            log(f"{model!r}: {metric}@{k} {value:.4f} ({seconds:.1f} s)")
        if value > best_value:
            best, best_value = params, value
    return best, pd.DataFrame(rows)


def tune_ials(train: sp.csr_matrix, valid: UserItems, grid: Mapping[str, Sequence[Any]] | None = None,
              k: int = 20, log: Callable[[str], None] | None = None, **fixed: Any):
    """``tune`` for ``IALS``; ``fixed`` holds the parameters not searched (e.g. iterations).

    The default grid (12 fits) spans the usual ranges for binary play data.
    """
    grid = grid or {"factors": [32, 64, 128], "regularization": [0.01, 0.1], "alpha": [1.0, 10.0]}
    return tune(lambda **p: IALS(**fixed, **p), grid, train, valid, k, log=log)


def tune_itemknn(train: sp.csr_matrix, valid: UserItems, grid: Mapping[str, Sequence[Any]] | None = None,
                 k: int = 20, log: Callable[[str], None] | None = None, **fixed: Any):
    """``tune`` for ``ItemKNN`` over neighbours (and shrink if the grid says)."""
    grid = grid or {"neighbors": [20, 50, 100, 200, 500]}
    return tune(lambda **p: ItemKNN(**fixed, **p), grid, train, valid, k, log=log)


def tune_ease(train: sp.csr_matrix, valid: UserItems, grid: Mapping[str, Sequence[Any]] | None = None,
              k: int = 20, log: Callable[[str], None] | None = None, **fixed: Any):
    """``tune`` for ``EASE`` over lambda."""
    grid = grid or {"lam": [50.0, 100.0, 250.0, 500.0, 1000.0, 2000.0]}
    return tune(lambda **p: EASE(**fixed, **p), grid, train, valid, k, log=log)


def tune_lightgcn(train: sp.csr_matrix, valid: UserItems, grid: Mapping[str, Sequence[Any]] | None = None,
                  k: int = 20, log: Callable[[str], None] | None = None, **fixed: Any):
    """``tune`` for ``LightGCNBaseline`` (each point trains its full ``epochs``: no early stopping)."""
    grid = grid or {"lr": [0.001, 0.005], "reg": [1e-5, 1e-4]}
    return tune(lambda **p: LightGCNBaseline(**fixed, **p), grid, train, valid, k, log=log)
