"""Training-free graph filters for recommendation: GF-CF (Shen et al., CIKM 2021).

A user's row of the interaction matrix is a signal on the item-item graph; smoothing it
with a low-pass filter of that graph ranks the items the user's neighbourhood favours.
GF-CF adds two filters of the degree-normalised matrix ``R~ = D_U^-1/2 R D_I^-1/2``:

    linear filter      P~ = R~^T R~                      (item-item co-occurrence, normalised)
    ideal low-pass     D_I^-1/2 V_k V_k^T D_I^1/2       (V_k: the k leading right singular vectors of R~)

and scores ``s_u = r_u (P~ + alpha * ideal)``. No weights are learned; the only choices are
``k`` and ``alpha``, picked on validation like any hyper-parameter. LightGCN's propagation
is the same kind of low-pass filter, reached by gradient descent (Shen et al., Sec. 3).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from .evaluate import evaluate
from .foldin import distinct_items
from .names import words as name_words
from .ranking import ScoreFn
from .recommender import Log, Recommender
from .sparse import csr_from_state, csr_state, torch_csr
from .types import TRAIN, UserItems

MAX_FACTOR_FLOATS = 1 << 28  # k is clipped so that each (items, k) factor stays within 1 GiB


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
        binary = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
        binary.data[:] = 1.0
        self.matrix = binary
        self.k = max(1, min(self.k, MAX_FACTOR_FLOATS // max(binary.shape[1], 1)))
        du = np.asarray(binary.sum(1)).ravel()
        di = np.asarray(binary.sum(0)).ravel()
        inv_u = (np.where(du > 0, du, 1) ** -0.5).astype(np.float32)
        inv_i = (np.where(di > 0, di, 1) ** -0.5).astype(np.float32)
        norm = sp.csr_matrix(sp.diags(inv_u) @ binary @ sp.diags(inv_i))
        self._norm_t_sp = sp.csr_matrix(norm.T)
        self._norm_t = torch_csr(self._norm_t_sp)
        k = max(1, min(self.k, min(norm.shape) - 1))
        with torch.random.fork_rng(devices=[]):  # seeded without touching the caller's generator
            torch.manual_seed(self.seed)
            _, _, v = torch.svd_lowrank(torch_csr(norm), q=k, niter=4)
        scale = torch.from_numpy(inv_i)[:, None]
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
        rows, weights = distinct_items(histories, weights)
        values = [np.ones(len(h), np.float32) if w is None else w.astype(np.float32) for h, w in zip(rows, weights)]
        indptr = np.concatenate([[0], np.cumsum([len(h) for h in rows])]).astype(np.int64)
        matrix = UserItems(indptr, np.concatenate(rows) if rows else np.zeros(0, np.int64)).matrix(self.matrix.shape[1])
        matrix.data = np.concatenate(values) if values else matrix.data
        return self._filter(matrix)

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


def standardised(score_fn: ScoreFn) -> ScoreFn:
    """Per-user z-scores of a ScoreFn's rows, so that two models' scores can be added."""
    def scores(users: np.ndarray) -> Tensor:
        x = score_fn(users).clone()
        return (x - x.mean(1, keepdim=True)) / x.std(1, keepdim=True).clamp_min(1e-9)
    return scores


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
