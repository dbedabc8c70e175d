"""Training-free graph filters for recommendation: GF-CF (Shen et al., CIKM 2021) and ChebyCF
(Kim et al., SIGIR 2025).

A user's row of the interaction matrix is a signal on the item-item graph; smoothing it
with a low-pass filter of that graph ranks the items the user's neighbourhood favours.
GF-CF adds two filters of the degree-normalised matrix ``R~ = D_U^-1/2 R D_I^-1/2``:

    linear filter      P~ = R~^T R~                      (item-item co-occurrence, normalised)
    ideal low-pass     D_I^-1/2 V_k V_k^T D_I^1/2       (V_k: the k leading right singular vectors of R~)

and scores ``s_u = r_u (P~ + alpha * ideal)``. No weights are learned; the only choices are
``k`` and ``alpha``, picked on validation like any hyper-parameter. LightGCN's propagation
is the same kind of low-pass filter, reached by gradient descent (Shen et al., Sec. 3).

ChebyCF replaces the linear filter by a Chebyshev polynomial of ``M = R~^T R~`` that
approximates a smooth step over its spectrum, keeps the ideal pass, and wraps both in a
degree equaliser (the row divided by item degree^beta going in, multiplied by it coming out).
Both need only sparse products with ``R~`` and the leading singular vectors of ``R~``
(``leading_right_singular``: exact through the users' Gram matrix when users are few).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from .evaluate import evaluate
from .foldin import history_rows
from .names import words as name_words
from .ranking import ScoreFn
from .recommender import Log, Recommender
from .sparse import csr_from_state, csr_state, scipy_csr, torch_csr
from .types import TRAIN, UserItems

MAX_FACTOR_FLOATS = 1 << 28  # k is clipped so that each (items, k) factor stays within 1 GiB
GRAM_USERS = 8192  # up to this many users (and fewer than items) the SVD goes through the users' Gram matrix
GRAM_TOP_USERS = 32768  # past GRAM_USERS, up to this many users and with items GRAM_TOP_RATIO times as many,
GRAM_TOP_RATIO = 8  # the leading singular vectors come from the Gram matrix's leading eigenpairs (randomised)
GRAM_BLOCK_FLOATS = 1 << 25  # the Gram matrix is built in blocks of users of at most this many (block, U) floats
FILTER_BLOCK_FLOATS = 1 << 25  # ChebyCF filters a batch in blocks of users of at most this many (block, I) floats


def normalised(matrix: sp.csr_matrix) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    """``R~ = D_U^-1/2 R D_I^-1/2`` of a users x items matrix taken as binary, with the binary
    matrix and the item degrees."""
    binary = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
    binary.data[:] = 1.0
    du = np.asarray(binary.sum(1)).ravel()
    di = np.asarray(binary.sum(0)).ravel()
    inv_u = (np.where(du > 0, du, 1) ** -0.5).astype(np.float32)
    inv_i = (np.where(di > 0, di, 1) ** -0.5).astype(np.float32)
    norm = binary.copy()
    norm.data = inv_u[np.repeat(np.arange(binary.shape[0]), np.diff(binary.indptr))] * inv_i[binary.indices]
    return norm, binary, di


def gram_matrix(norm: sp.csr_matrix, dtype: torch.dtype = torch.float64) -> Tensor:
    """The users' dense (U, U) Gram matrix ``G = R R^T``, built a block of users at a time so that
    no sparse copy of the whole (often half-dense) product is ever held."""
    users = norm.shape[0]
    gram = torch.empty(users, users, dtype=dtype)
    norm_t = sp.csc_matrix(norm.T)
    block = max(1, GRAM_BLOCK_FLOATS // max(users, 1))
    for s in range(0, users, block):
        gram[s:s + block] = torch.from_numpy((norm[s:s + block] @ norm_t).toarray()).to(dtype)
    return gram


def _drop_tiny(values: Tensor, vectors: Tensor) -> tuple[Tensor, Tensor]:
    """Eigenpairs (values descending) without those below 1e-12 of the largest (singular values below 1e-6)."""
    keep = values > 1e-12 * float(values[0].clamp_min(1e-30))
    return values[keep], vectors[:, keep].contiguous()


def gram_eigen(norm: sp.csr_matrix, k: int | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """The users' (U, U) Gram matrix ``G = R R^T`` (float64) and its ``k`` leading eigenpairs
    (all with None) ``G = W S^2 W^T``: values (k',) descending and vectors (U, k'), k' <= k;
    eigenvalues below 1e-12 of the largest (singular values below 1e-6) are dropped."""
    gram = gram_matrix(norm)
    values, vectors = torch.linalg.eigh(gram)  # ascending
    return (gram, *_drop_tiny(values.flip(0)[:k], vectors.flip(1)[:, :k]))


def gram_top(gram: Tensor, k: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """The ``k`` leading eigenpairs of a users' Gram matrix (``gram_matrix``), values (k',) descending
    and vectors (U, k'), by a seeded randomised range finder on ``G`` (its spectrum is R's squared,
    so each power iteration counts twice) with 32 extra columns."""
    with torch.random.fork_rng(devices=[]):  # seeded without touching the caller's generator
        torch.manual_seed(seed)
        vectors, values, _ = torch.svd_lowrank(gram, q=min(k + 32, gram.shape[0]), niter=4)
    return _drop_tiny(values[:k], vectors[:, :k])


def uses_gram(shape: tuple[int, int]) -> bool:
    """Whether a users x items matrix is filtered through its users' Gram matrix: few users, fewer than items."""
    return shape[0] <= min(GRAM_USERS, shape[1] - 1)


def uses_gram_top(shape: tuple[int, int]) -> bool:
    """Whether the leading singular vectors of a users x items matrix come from its users' Gram
    matrix's leading eigenpairs: past ``uses_gram``, users are few and items far more."""
    return not uses_gram(shape) and shape[0] <= GRAM_TOP_USERS and shape[1] >= GRAM_TOP_RATIO * shape[0]


def leading_right_singular(norm: sp.csr_matrix, k: int, seed: int = 0) -> Tensor:
    """(I, k') the leading right singular vectors of a users x items matrix, k' <= k.

    With few users (``uses_gram``) they come exactly from the eigenvectors of the users' Gram
    matrix, ``V = R^T W S^-1`` (``gram_eigen``); with more users but far more items
    (``uses_gram_top``) from its leading eigenpairs (``gram_top``); else from a seeded
    randomised SVD of R.
    """
    k = max(1, min(k, min(norm.shape) - 1))
    if uses_gram(norm.shape):
        return right_singular(norm, *gram_eigen(norm, k)[1:])
    if uses_gram_top(norm.shape):
        return right_singular(norm, *gram_top(gram_matrix(norm, torch.float32), k, seed))
    with torch.random.fork_rng(devices=[]):  # seeded without touching the caller's generator
        torch.manual_seed(seed)
        _, _, v = torch.svd_lowrank(torch_csr(norm), q=k, niter=4)
    return v.contiguous()


def right_singular(norm: sp.csr_matrix, values: Tensor, vectors: Tensor) -> Tensor:
    """(I, k) float32 right singular vectors ``V = R^T W S^-1`` from the Gram matrix's eigenpairs ``S^2, W``."""
    v = torch.from_numpy(np.asarray(norm.T @ vectors.numpy()))  # (I, k) = R^T W
    return (v / values.sqrt()).float().contiguous()


class GFCF(Recommender):
    """GF-CF's linear plus ideal low-pass filter over the item-item graph, never built as a matrix.

    Both filters are applied to a batch of users' rows through sparse products and the
    truncated SVD, so memory grows with the interactions and ``k`` x items, not items^2:

        linear  r_u P~        = (r_u R~^T) R~                 two sparse products through the users
        ideal   r_u D^-1/2 V V^T D^1/2 = ((r_u D^-1/2) V) (V^T D^1/2)   (B, k) @ (k, I)

    Args:
        k: singular vectors in the ideal low-pass filter, clipped to the matrix's rank bound and
            to ``MAX_FACTOR_FLOATS`` / items (``params()`` reports the k used).
        alpha: weight of the ideal low-pass filter against the linear one.
        seed: seeds the randomised SVD.
    """

    name = "gf-cf"
    label = "GF-CF"

    def __init__(self, k: int = 256, alpha: float = 0.3, seed: int = 0):
        self.k, self.alpha, self.seed = k, alpha, seed
        self.matrix: sp.csr_matrix | None = None  # (U, I) binary training matrix
        self._norm_t: Tensor | None = None  # (I, U) CSR R~^T
        self._norm_t_sp: sp.csr_matrix | None = None  # the same, for scipy's sparse @ sparse
        self._down: Tensor | None = None  # (I, k) D_I^-1/2 V
        self._up: Tensor | None = None  # (k, I) V^T D_I^1/2

    def params(self) -> dict[str, Any]:
        return {"k": self.k, "alpha": self.alpha}

    def fit(self, data, *, log: Log | None = None, progress: bool = False) -> GFCF:
        return self.fit_matrix(data.matrix(TRAIN))

    def fit_matrix(self, matrix: sp.csr_matrix) -> GFCF:
        """Normalise a users x items interaction matrix (treated as binary) and take its truncated SVD."""
        norm, self.matrix, di = normalised(matrix)
        self.k = max(1, min(self.k, MAX_FACTOR_FLOATS // max(norm.shape[1], 1)))
        self._norm_t_sp = sp.csr_matrix(norm.T)
        self._norm_t = torch_csr(self._norm_t_sp)
        v = leading_right_singular(norm, self.k, self.seed)
        scale = torch.from_numpy((np.where(di > 0, di, 1) ** -0.5).astype(np.float32))[:, None]
        self._down, self._up = (v * scale).contiguous(), (v / scale).T.contiguous()
        return self

    def with_choice(self, k: int, alpha: float) -> GFCF:
        """The same fitted filter with fewer singular vectors (the leading ``k``) or another ``alpha``,
        sharing this one's matrices: a grid over k and alpha costs one SVD."""
        other = GFCF(k=k, alpha=alpha, seed=self.seed)
        other.matrix, other._norm_t, other._norm_t_sp = self.matrix, self._norm_t, self._norm_t_sp
        kk = min(k, self._down.shape[1])
        other._down, other._up = self._down[:, :kk], self._up[:kk]
        return other

    def scores(self, users: np.ndarray) -> Tensor:
        return self._filter(self.matrix[users])

    def fold_in(self, histories: Sequence[np.ndarray], weights: Sequence[np.ndarray | None] | None = None) -> Tensor:
        """GF-CF filters a listener's row, so a new listener is scored exactly as a fitted one;
        ``weights`` (an array beside each history, or None) are the row's values instead of 1."""
        return self._filter(history_rows(histories, weights, self.matrix.shape[1]))

    def contributions(self, history: np.ndarray, targets: np.ndarray) -> tuple[Tensor, Tensor]:
        """The filter is linear in the listener's row: item j adds its filtered row, taken at the
        targets only (never a (T, items) matrix)."""
        history = np.unique(np.asarray(history, np.int64))
        targets = np.asarray(targets, np.int64)
        # ideal: (T, k) @ (k, R); linear: R~^T[j] . R~^T[t] over the users, (T, U) @ (U, R)
        ideal = self._down[torch.from_numpy(history)] @ self._up[:, torch.from_numpy(targets.copy())]
        if self.alpha != 1.0:
            ideal.mul_(self.alpha)
        linear = torch.from_numpy((self._norm_t_sp[history] @ self._norm_t_sp[targets].T).toarray())
        return (ideal + linear).T.contiguous(), torch.zeros(len(targets))

    def _filter(self, rows: sp.csr_matrix) -> Tensor:
        """(B, I) scores of B binary rows of items."""
        # Ideal low-pass: (B, I) sparse @ (I, k) -> (B, k), then @ (k, I) -> (B, I).
        out = torch.sparse.mm(torch_csr(rows), self._down) @ self._up
        if self.alpha != 1.0:
            out.mul_(self.alpha)
        # Linear: (B, I) @ (I, U) sparse -> (B, U) dense, then through R~ as (I, U) @ (U, B) -> (B, I).
        through_users = torch.from_numpy((rows @ self._norm_t_sp).toarray())
        out += torch.sparse.mm(self._norm_t, through_users.T.contiguous()).T
        return out

    def state(self) -> dict[str, Any]:
        """The fitted matrix; ``from_state`` rebuilds the (seeded, deterministic) filter from it."""
        return csr_state(self.matrix)

    @classmethod
    def from_state(cls, params: dict[str, Any], state: dict[str, Any]) -> GFCF:
        return cls(**params).fit_matrix(csr_from_state(state))


def chebyshev_coefficients(order: int, flatness: float) -> np.ndarray:
    """(order + 1,) Chebyshev interpolation coefficients of ChebyCF's smooth step on [-1, 1].

    The step is ``h(x) = 1/2 - sign(x) |x|^flatness / 2``: 1 at x = -1 (the lowest frequency
    of ``L = I - 2M``), 0 at x = 1, a flat plateau either side of 0 for a large ``flatness``.
    It is interpolated at the ``order + 1`` Chebyshev nodes.
    """
    j = np.arange(order + 1)
    nodes = np.cos(np.pi * (j + 0.5) / (order + 1))
    target = 0.5 - 0.5 * np.sign(nodes) * np.abs(nodes) ** flatness
    basis = np.cos(np.outer(np.arange(order + 1), np.arccos(nodes)))  # T_k(node_j)
    coeffs = basis @ target * (2.0 / (order + 1))
    coeffs[0] /= 2
    return coeffs


class ChebyCF(GFCF):
    """ChebyCF (Kim et al., SIGIR 2025): a Chebyshev polynomial filter, an ideal pass and a degree equaliser.

    A row r (B of them at once) is scored as

        s = d^beta * ( sum_k c_k T_k(L) x  +  alpha V V^T x ),   x = r d^-beta,   L = I - 2 R~^T R~

    with d the item degrees, T_k the Chebyshev polynomials, ``c`` from ``chebyshev_coefficients``
    and V the ``eta`` leading right singular vectors of ``R~``. Two ways, the same scores:

    * few users (``uses_gram``): the polynomial is one in ``M = R~^T R~``, ``b_0 I + sum_j b_j M^j``,
      and ``M^j = R~^T G^(j-1) R~`` with ``G = R~ R~^T = W S^2 W^T`` the users' Gram matrix; so is
      the ideal pass, ``V V^T = R~^T W_eta S_eta^-2 W_eta^T R~``. Both fold into one (U, U) matrix
      ``Q = W diag(sum_j b_j s^2(j-1) + alpha [top eta] / s^2) W^T`` (one product from G's whole
      eigendecomposition): ``s = d^beta (b_0 x + R~^T Q R~ x)``, two sparse products and one
      dense one per batch.
    * more users, items far more (``uses_gram_top``): the same operator on the users' side from G's
      ``eta`` leading eigenpairs only, ``Q ~ c I + W_eta diag(phi(s^2) - c + alpha / s^2) W_eta^T``
      with ``phi(l) = sum_j b_j l^(j-1)`` and ``c = phi`` at the mean of G's other eigenvalues
      (their sum is G's trace less the leading ones'): exact on the leading directions, the
      rest of the spectrum, where phi is smooth and near its value at 0, taken as one constant.
      ``c R~^T R~`` is GF-CF's linear filter, so a batch costs what GF-CF's does, never a (U, U)
      product per user.
    * else the three-term recursion over items, two sparse products with ``R~`` per degree.

    Args:
        order: the polynomial's degree K.
        flatness: phi; the step is 1/2 over a wider middle of the spectrum the larger it is.
        eta: singular vectors in the ideal pass (clipped as GF-CF's ``k`` where they are held over items).
        alpha: the ideal pass's weight (0: none).
        beta: the degree equaliser's power (0: none).
        seed: seeds a randomised SVD.
    """

    name = "chebycf"
    label = "ChebyCF"

    def __init__(self, order: int = 8, flatness: float = 1.5, eta: int = 256, alpha: float = 0.2,
                 beta: float = 0.4, seed: int = 0):
        super().__init__(k=eta, alpha=alpha, seed=seed)
        self.order, self.flatness, self.beta = order, flatness, beta
        self._norm: Tensor | None = None  # (U, I) CSR R~
        self._degree: Tensor | None = None  # (I,) item degrees, 1 where 0
        self._v: Tensor | None = None  # (I, eta) V, without the Gram matrix
        self._gram: tuple[Tensor, Tensor] | None = None  # gram_eigen's (S^2, W), every eigenpair
        self._top: tuple[Tensor, Tensor, float] | None = None  # where uses_gram_top: (S^2, W) of the leading
        # eta eigenpairs and the mean of G's other eigenvalues
        self._q: Tensor | None = None  # (U, U) float32 Q, built on first use
        self._vectors: tuple[int, Tensor] | None = None  # (dims, item_vectors(dims)), built on first use
        self._by_degree: dict[tuple[float, bool], Any] = {}  # (power p, as a tensor) -> D^p R~^T, on first use
        self._spectrum: tuple[tuple, tuple[Tensor, float]] | None = None  # (its key, _top_spectrum), on first use

    def params(self) -> dict[str, Any]:
        return {"order": self.order, "flatness": self.flatness, "eta": self.k, "alpha": self.alpha,
                "beta": self.beta}

    def fit_matrix(self, matrix: sp.csr_matrix, leading: dict[str, Tensor] | None = None) -> ChebyCF:
        """Normalise a users x items matrix and decompose it; ``leading`` (``leading_state`` of a
        filter fitted on the same matrix) stands in for the decomposition where it applies."""
        norm, self.matrix, di = normalised(matrix)
        self._q = self._vectors = self._spectrum = None  # built from the matrix on first use
        self._by_degree = {}
        self.k = max(1, min(self.k, min(norm.shape) - 1))
        self._norm = torch_csr(norm)
        self._norm_t = torch_csr(sp.csr_matrix(norm.T))
        self._degree = torch.from_numpy(np.where(di > 0, di, 1).astype(np.float32))
        if uses_gram(norm.shape):
            self._gram = gram_eigen(norm)[1:]  # every eigenpair: Q is a function of G
        elif uses_gram_top(norm.shape) and leading is not None:
            values, vectors = leading["values"].float(), leading["vectors"].float()
            if vectors.shape != (norm.shape[0], len(values)) or len(values) > self.k:
                raise ValueError(f"the filter's saved eigenpairs {tuple(vectors.shape)} do not fit "
                                 f"{norm.shape[0]:,} users and eta {self.k}")
            self._top = values, vectors, float(leading["rest"])
        elif uses_gram_top(norm.shape):  # the leading eigenpairs and the trace of the rest
            gram = gram_matrix(norm, torch.float32)
            values, vectors = gram_top(gram, self.k, self.seed)
            rest = max(int((np.diff(norm.indptr) > 0).sum()) - len(values), 1)  # G's rank is at most its nonzero rows
            self._top = values, vectors, max(float(gram.diagonal().sum(dtype=torch.float64)) - float(values.sum()),
                                             0.0) / rest
        else:
            self.k = max(1, min(self.k, MAX_FACTOR_FLOATS // max(norm.shape[1], 1)))
            self._v = leading_right_singular(norm, self.k, self.seed)
        return self

    def with_choice(self, flatness: float, alpha: float, beta: float) -> ChebyCF:
        """The same fitted filter with another step, ideal pass weight or equaliser, sharing this
        one's matrices and singular vectors: a grid over them costs one decomposition."""
        other = ChebyCF(order=self.order, flatness=flatness, eta=self.k, alpha=alpha, beta=beta, seed=self.seed)
        for name in ("matrix", "_norm", "_norm_t", "_degree", "_v", "_gram", "_top"):
            setattr(other, name, getattr(self, name))
        return other

    def contributions(self, history: np.ndarray, targets: np.ndarray) -> tuple[Tensor, Tensor]:
        """The filter is linear in the listener's row: item j adds the filtered row of j alone,
        taken at the targets only where the filter goes through the Gram matrix."""
        history = np.unique(np.asarray(history, np.int64))
        targets = np.array(targets, np.int64)
        if self._v is None:  # through the users' side
            return self._gram_parts(history, targets), torch.zeros(len(targets))
        units = sp.csr_matrix((np.ones(len(history), np.float32), (np.arange(len(history)), history)),
                              shape=(len(history), self.matrix.shape[1]))
        parts = self._filter(units)[:, torch.from_numpy(targets)]
        return parts.T.contiguous(), torch.zeros(len(targets))

    def _gram_parts(self, history: np.ndarray, targets: np.ndarray) -> Tensor:
        """(T, R) item j's filtered unit row at target t, ``d_t^b (b_0 [t = j] + R~_t^T Q R~_j) d_j^-b``
        with ``R~_j`` the column of j: (U, R) and (U, T) columns, never a (R, items) block."""
        columns = torch.from_numpy(scipy_csr(self._norm_t)[np.concatenate([history, targets])].toarray())  # (R+T, U)
        own, wanted = columns[:len(history)], columns[len(history):]
        parts = wanted @ self._through_users(own.T.contiguous())  # (T, U) @ (U, R)
        parts += float(self._polynomial()[0]) * torch.from_numpy(targets[:, None] == history[None, :]).float()
        if self.beta:
            degree = self._degree.pow(self.beta)
            parts *= degree[torch.from_numpy(targets)][:, None] / degree[torch.from_numpy(history)][None, :]
        return parts

    def item_vectors(self, dims: int = 64) -> Tensor:
        """(I, dims) the items' coordinates along the leading singular directions of ``R~``, ``V S``:
        their dot products are the normalised co-occurrence ``R~^T R~`` the spectrum's top keeps.
        Built on first use and kept (similar-track requests ask for them again and again)."""
        if self._vectors is None or self._vectors[0] != dims:
            if self._v is None:  # V S = R~^T W
                vectors = (self._gram or self._top)[1][:, :min(dims, self.k)]
                self._vectors = dims, torch.sparse.mm(self._norm_t, vectors.float().contiguous())
            else:
                v = self._v[:, :dims]
                self._vectors = dims, (v * torch.sparse.mm(self._norm, v.contiguous()).norm(dim=0)).contiguous()
        return self._vectors[1]

    def _polynomial(self) -> np.ndarray:
        """(order + 1,) the filter as a polynomial in M (lowest degree first)."""
        in_l = np.polynomial.Chebyshev(chebyshev_coefficients(self.order, self.flatness)).convert(
            kind=np.polynomial.Polynomial)
        return in_l(np.polynomial.Polynomial([1.0, -2.0])).coef  # L = I - 2M

    def _gram_q(self) -> Tensor:
        if self._q is None:
            values, vectors = self._gram
            b = torch.from_numpy(self._polynomial()[1:])  # b_1 .. b_K
            spectrum = (values[:, None] ** torch.arange(len(b), dtype=values.dtype)) @ b  # sum_j b_j s^2(j-1)
            if self.alpha:
                spectrum[:self.k] += self.alpha / values[:self.k]
            self._q = ((vectors * spectrum) @ vectors.T).float().contiguous()
        return self._q

    def _phi(self, values: Tensor) -> Tensor:
        """``phi(l) = sum_j b_j l^(j-1)``, the polynomial past its constant divided by M, at G's eigenvalues."""
        b = torch.from_numpy(self._polynomial()[1:])
        return (values.double()[:, None] ** torch.arange(len(b), dtype=torch.float64)) @ b

    def _top_spectrum(self) -> tuple[Tensor, float]:
        """(eta,) the leading directions' weights less ``c``, and ``c``, ``phi`` at the rest's mean
        eigenvalue; kept while the eigenpairs and the filter's choices stay."""
        key = (id(self._top), self.order, self.flatness, self.alpha)
        if self._spectrum is None or self._spectrum[0] != key:
            values, _, rest = self._top
            c = float(self._phi(torch.tensor([rest]))[0])
            spectrum = self._phi(values) - c
            if self.alpha:
                spectrum += self.alpha / values.double()
            self._spectrum = key, (spectrum.float(), c)
        return self._spectrum[1]

    def _through_users(self, y: Tensor) -> Tensor:
        """(U, B) ``Q y``: the polynomial past its constant and the ideal pass, on the users' side."""
        if self._gram is not None:
            return self._gram_q() @ y
        vectors = self._top[1]
        spectrum, c = self._top_spectrum()
        return (vectors @ (spectrum[:, None] * (vectors.T @ y))).add_(y, alpha=c)

    def _filter(self, rows: sp.csr_matrix) -> Tensor:
        """(B, I) scores of B rows of items, in blocks of users that keep each (block, I) tensor bounded."""
        rows = sp.csr_matrix(rows, dtype=np.float32)
        block = max(1, FILTER_BLOCK_FLOATS // max(rows.shape[1], 1))
        return torch.cat([self._filter_block(rows[s:s + block]) for s in range(0, rows.shape[0], block)]
                         or [torch.zeros(0, rows.shape[1])])

    def _filter_block(self, rows: sp.csr_matrix) -> Tensor:
        if self._v is None:
            return self._users_side_block(rows)
        # Over items: the three-term recursion in L = I - 2M, then the ideal pass.
        x = torch.from_numpy(rows.toarray().T.copy())  # (I, B)
        if self.beta:
            x.div_(self._degree.pow(self.beta)[:, None])
        coeffs = chebyshev_coefficients(self.order, self.flatness)
        step = lambda y: y - 2 * torch.sparse.mm(self._norm_t, torch.sparse.mm(self._norm, y))  # noqa: E731
        before, now = x, step(x)
        out = coeffs[0] * x + (coeffs[1] * now if self.order >= 1 else 0)
        for c in coeffs[2:]:
            before, now = now, 2 * step(now) - before
            out = out + c * now
        if self.alpha:
            out = out + self.alpha * (self._v @ (self._v.T @ x))
        if self.beta:
            out.mul_(self._degree.pow(self.beta)[:, None])
        return out.T.contiguous()

    def _users_side_block(self, rows: sp.csr_matrix) -> Tensor:
        """(B, I) ``d^b (b_0 x + R~^T Q R~ x)`` = ``b_0 r + (D^b R~^T) Q (R~ D^-b r)``: the rows stay
        sparse until the one (I, B) product, the equaliser folded into a scaled copy of ``R~^T``."""
        out = torch.sparse.mm(self.by_degree(self.beta, tensor=True), self.users_side(rows)).T.contiguous()
        b0 = float(self._polynomial()[0])
        if b0:
            rows = sp.coo_matrix(rows)
            out[torch.from_numpy(rows.row.astype(np.int64)), torch.from_numpy(rows.col.astype(np.int64))] += \
                torch.from_numpy(b0 * rows.data.astype(np.float32))
        return out

    def users_side(self, rows: sp.csr_matrix) -> Tensor:
        """(U, B) ``Q R~ D^-b r`` of B rows, which ``D^b R~^T`` turns into their scores past ``b_0 r``
        (the users'-side paths): a track's score is ``d^(b - 1/2)`` times the sum, over the users
        holding it, of this vector over their ``sqrt(degree)``."""
        through = (sp.csr_matrix(rows, dtype=np.float32) @ self.by_degree(-self.beta)).toarray()  # (B, U) R~ D^-b r
        return self._through_users(torch.from_numpy(through).T.contiguous())

    def by_degree(self, power: float, tensor: bool = False) -> sp.csr_matrix | Tensor:
        """(I, U) ``D^power R~^T`` as scipy CSR, or with ``tensor`` as a torch CSR tensor, built on
        first use for each power (the equaliser's ``beta`` and ``-beta``)."""
        if (power, tensor) not in self._by_degree:
            if tensor:
                scaled = torch_csr(self.by_degree(power))
            else:
                scaled = scipy_csr(self._norm_t)
                if power:
                    scaled = sp.csr_matrix(sp.diags(self._degree.pow(power).numpy()) @ scaled)
            self._by_degree[power, tensor] = scaled
        return self._by_degree[power, tensor]

    def leading_state(self) -> dict[str, Tensor] | None:
        """The leading eigenpairs and the rest's mean eigenvalue where the filter holds them
        (``uses_gram_top``), for a checkpoint: loading skips the Gram matrix. Else None."""
        if self._top is None:
            return None
        values, vectors, rest = self._top
        return {"values": values, "vectors": vectors, "rest": torch.tensor(rest, dtype=torch.float64)}

    @classmethod
    def from_state(cls, params: dict[str, Any], state: dict[str, Any]) -> ChebyCF:
        return cls(**params).fit_matrix(csr_from_state(state))


CHEBY_CF_GRID = {"flatness": [1.5, 10.0], "alpha": [0.0, 0.1, 0.2], "beta": [0.2, 0.4]}  # searched on validation


def zscores(x: Tensor) -> Tensor:
    """Each row's z-scores (a row without spread: its deviations, unscaled)."""
    return (x - x.mean(1, keepdim=True)) / x.std(1, keepdim=True).clamp_min(1e-9)


def standardised(score_fn: ScoreFn) -> ScoreFn:
    """Per-user z-scores of a ScoreFn's rows, so that two models' scores can be added."""
    return lambda users: zscores(score_fn(users))


def blended(filter_fn: ScoreFn, gcn_fn: ScoreFn, weight: float) -> ScoreFn:
    """``z(filter) + weight * z(gcn)``: the GCN+GF-CF model's scores."""
    f, g = standardised(filter_fn), standardised(gcn_fn)
    return lambda users: f(users) + weight * g(users)


GF_CF_GRID = {"k": [64, 256], "alpha": [0.0, 0.3, 1.0]}  # searched on validation
BLEND_WEIGHTS = (0.0, 0.25, 0.5, 1.0, 2.0)  # the GCN's weight in GCN+GF-CF, searched on validation


def choose_blend(fit: UserItems, valid: UserItems, gcn_fn: ScoreFn, num_items: int, k: int = 20,
                 log: Log | None = None) -> tuple[dict[str, float], GFCF]:
    """GF-CF's ``k`` and ``alpha``, then the GCN's weight beside it, by validation Recall@k.

    Args:
        fit: the training items the filter is built from (and that validation excludes).
        valid: each user's validation items.
        gcn_fn: the trained GCN's scores.
        num_items: I.
        k: cut-off.
        log: called with a line per candidate, or None.

    Returns:
        {"gf_k", "gf_alpha", "weight"}, and the chosen filter, built from ``fit``.
    """
    full = GFCF(k=max(GF_CF_GRID["k"])).fit_matrix(fit.matrix(num_items))  # one SVD serves the grid
    best, best_recall, best_model = {}, -1.0, None
    for gk in GF_CF_GRID["k"]:
        for alpha in GF_CF_GRID["alpha"]:
            model = full.with_choice(gk, alpha)
            recall = evaluate(model.scores, valid, fit, num_items, k)[f"recall@{k}"]
            if log:
                log(f"{model!r}: validation recall@{k} {recall:.4f}")
            if recall > best_recall:
                best, best_recall, best_model = {"gf_k": gk, "gf_alpha": alpha}, recall, model
    best_recall = -1.0
    for weight in BLEND_WEIGHTS:
        recall = evaluate(blended(best_model.scores, gcn_fn, weight), valid, fit, num_items, k)[f"recall@{k}"]
        if log:
            log(f"GF-CF + {weight} x GCN: validation recall@{k} {recall:.4f}")
        if recall > best_recall:
            best_recall, best["weight"] = recall, weight
    return best, best_model


class NameFilter:
    """The playlist names' part of the graph as a filter (MPD, where a playlist is a user node).

    A playlist's name links it to the word nodes of its name (``graph.name_word_edges``);
    three hops over the graph, playlist -> word -> playlists named with it -> their tracks,
    score every track:

        s_u = W~_u (W^T R),    W~ = D_U^-1/2 W D_W^-1/2

    with W the (playlists, words) name-word incidence and R the training matrix: each word
    brings the tracks of the playlists named with it, a word many names share counting less.
    Ties are broken by popularity (a millionth of it, below any track a word reaches).
    A new playlist's name scores the same way through its words that have nodes.

    Args:
        vocabulary: the words with a node.
        words: (users, words) binary name-word incidence.
        matrix: (users, items) binary training matrix.
    """

    def __init__(self, vocabulary: list[str], words: sp.csr_matrix, matrix: sp.csr_matrix):
        self.vocabulary = list(vocabulary)
        self.index = {w: i for i, w in enumerate(self.vocabulary)}
        self.words = sp.csr_matrix(words, dtype=np.float32)
        dw = np.asarray(self.words.sum(0)).ravel()
        scale = (1 / np.sqrt(np.maximum(dw, 1))).astype(np.float32)
        self.through = sp.csr_matrix(sp.diags(scale) @ (self.words.T @ sp.csr_matrix(matrix, dtype=np.float32)))
        # Ties (a name whose words reach few tracks) go to the popular tracks: 1e-6 of popularity
        # stays below any track a word reaches (at least 1 / sqrt(words x playlists per word)).
        pop = np.asarray(sp.csr_matrix(matrix).sum(0), dtype=np.float32).ravel()
        self.prior = torch.from_numpy(1e-6 * pop / max(float(pop.max(initial=0.0)), 1.0))

    def scores(self, users: np.ndarray) -> Tensor:
        """(B, I) scores of B users by their names."""
        return self._rows(self.words[np.asarray(users, np.int64)])

    def scores_of_names(self, names: Sequence[str]) -> Tensor:
        """(B, I) scores of B new playlists by their names (their words that have nodes)."""
        codes = [sorted({self.index[w] for w in name_words(n or "") if w in self.index}) for n in names]
        indptr = np.concatenate([[0], np.cumsum([len(c) for c in codes])]).astype(np.int64)
        flat = np.asarray([c for cs in codes for c in cs], np.int64)
        rows = sp.csr_matrix((np.ones(len(flat), np.float32), flat, indptr), shape=(len(names), len(self.vocabulary)))
        return self._rows(rows)

    def _rows(self, rows: sp.csr_matrix) -> Tensor:
        du = np.asarray(rows.sum(1)).ravel()
        rows = sp.diags((1 / np.sqrt(np.maximum(du, 1))).astype(np.float32)) @ rows
        return torch.from_numpy((rows @ self.through).toarray()) + self.prior

    def state(self) -> dict[str, Any]:
        """The vocabulary and the incidence; the training matrix is the filter's beside it."""
        return {"words": "\n".join(self.vocabulary), **{f"incidence_{k}": v for k, v in csr_state(self.words).items()}}

    @classmethod
    def from_state(cls, state: dict[str, Any], matrix: sp.csr_matrix) -> NameFilter:
        incidence = csr_from_state({k.removeprefix("incidence_"): v for k, v in state.items()
                                    if k.startswith("incidence_")})
        vocabulary = state["words"].split("\n") if state["words"] else []
        return cls(vocabulary, incidence, matrix)

    @classmethod
    def of(cls, names, matrix: sp.csr_matrix) -> NameFilter | None:
        """The filter of the users' names (``catalogue.user_names``), None when no word has a node."""
        from .graph import name_word_edges

        vocabulary, owner, code = name_word_edges(names)
        if not vocabulary:
            return None
        incidence = sp.csr_matrix((np.ones(len(owner), np.float32), (owner, code)),  # distinct (owner, word) pairs
                                  shape=(matrix.shape[0], len(vocabulary)))
        return cls(vocabulary, incidence, matrix)


NAME_WEIGHTS = (0.0, 0.1, 0.25, 0.5, 1.0)  # the names' weight beside the blend, searched on validation


def with_names(base_fn: ScoreFn, names_fn: ScoreFn, weight: float, bare: np.ndarray) -> ScoreFn:
    """``base + weight * z(names)``; a user in ``bare`` (no training item) is scored by its name alone."""
    z = standardised(names_fn)

    def scores(users: np.ndarray) -> Tensor:
        users = np.asarray(users, np.int64)
        out = base_fn(users)
        alone = bare[users]
        if weight:
            by_name = z(users)
            out = out + weight * by_name
            out[torch.from_numpy(alone)] = by_name[torch.from_numpy(alone)]
        elif alone.any():  # the names' scores of the users that have nothing else
            out[torch.from_numpy(alone)] = z(users[alone])
        return out
    return scores


def choose_name_weight(fit: UserItems, valid: UserItems, base_fn: ScoreFn, names: NameFilter, num_items: int,
                       k: int = 20, log: Log | None = None) -> float:
    """The names' weight beside ``base_fn`` (of ``NAME_WEIGHTS``) by validation Recall@k."""
    bare = fit.counts() == 0
    best, best_recall = 0.0, -1.0
    for weight in NAME_WEIGHTS:
        recall = evaluate(with_names(base_fn, names.scores, weight, bare), valid, fit, num_items, k)[f"recall@{k}"]
        if log:
            log(f"+ {weight} x names: validation recall@{k} {recall:.4f}")
        if recall > best_recall:
            best, best_recall = weight, recall
    return best
