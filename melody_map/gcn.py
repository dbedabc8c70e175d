"""The product's models under the one contract: the GCN, and the GCN blended with GF-CF.

A fitted GCN scores from its final embeddings and its linear scorer alone, so loading one
for recommendations needs neither the graph nor ``torch_geometric``: the training stack
(``train.py``, ``model.py``) is imported only when ``fit`` runs or ``network()`` is asked for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from .config import TrainConfig
from .distributed import Ranks
from .evaluate import subsample_users
from .filters import GFCF, NameFilter, blended, choose_blend, choose_name_weight, with_names
from .foldin import FoldIn, choose_alpha, distinct_items
from .hybrid import GCNChebyCF
from .names import words as name_words
from .ranking import NormOrderedTopK, embedding_scores
from .recommender import FitReport, Log, Recommender
from .scorer import PairScorer
from .types import TRAIN, VALID, UserItems

if TYPE_CHECKING:
    from .dataset import Dataset
    from .model import GCNNetwork

# The TrainConfig fields a GCN takes: the model and training groups' own, and the seed.
GCN_OPTIONS = ("seed", "dim", "dropout", "fixed_features", "conv", "combine", "init", "lr", "epochs",
               "steps_per_epoch", "negatives", "all_items", "item_sample", "disjoint", "pairs_per_epoch",
               "eval_every", "valid_users", "patience", "k", "fold_in_alpha", "device")
DEFAULT_FOLD_IN_ALPHA = 10.0  # when there is no validation to choose it on
FOLD_IN_USERS = 500  # validation users that choose the fold-in's alpha


class GCN(Recommender):
    """Two GCNConv layers over the graph and a linear pair scorer, trained with MSE and Adam.

    Args:
        **options: any of ``GCN_OPTIONS``, as ``TrainConfig`` names and checks them.
    """

    name = "gcn"
    label = "GCN"

    def __init__(self, **options: Any):
        unknown = set(options) - set(GCN_OPTIONS)
        if unknown:
            raise TypeError(f"GCN got unknown options {sorted(unknown)}; it takes {', '.join(GCN_OPTIONS)}")
        self.cfg = TrainConfig(**options)
        self.report = FitReport()
        self.scorer: PairScorer | None = None
        self.user_embeddings: Tensor | None = None  # (users, width)
        self.item_embeddings: Tensor | None = None  # (items, width)
        self._network_state: dict[str, Tensor] = {}
        self._score_fn = None
        self._ranker: GCNRanker | None = None  # handed out by ranker(), built on first use
        self._alpha: float | None = None  # the fold-in's confidence, once fitted or loaded

    def fit(self, data: Dataset, *, log: Log | None = None, progress: bool = False,
            stop: Callable[[], bool] | None = None, resume: dict | None = None) -> GCN:
        """Train (see ``train.train``; ``stop`` and ``resume`` are its), then embed every node once.

        When ``stop`` ends training early, the model holds the best weights so far and
        ``report.resume`` the state to carry on from; the fold-in's alpha is then not chosen.
        """
        from . import train  # the training stack imports torch_geometric

        device = train.resolve_device(self.cfg.device)
        net = train.build_network(self.cfg, data.graph, data.pairs, data.item_tags)
        if log:
            log(f"model: {net!r} on {device}; {sum(p.numel() for p in net.parameters()):,} parameters")
        self.report = train.train(net, data.graph, data.pairs, self.cfg, device, progress=progress, stop=stop,
                                  resume=resume)
        if Ranks.current().rank != 0:  # under torchrun, rank 0 alone embeds, tests and writes
            return self
        if log and self.report.best_valid:
            log(f"best validation epoch {self.report.best_epoch}: "
                + ", ".join(f"{k} {v:.4f}" for k, v in self.report.best_valid.items() if k != "users"))
        net.eval()
        with torch.no_grad():
            z = net(data.graph.adj.to(device)).cpu()
        net.cpu()
        users, items = train.split_embeddings(z, data.graph)
        self._load({name: p.detach() for name, p in net.state_dict().items()}, users.contiguous(),
                   items.contiguous(), data.graph.word_names, z[data.graph.word_offset:].contiguous())
        if not self.cfg.fold_in_alpha and not self.report.interrupted:
            # A few hundred listeners decide it: each candidate ranks the whole catalogue for each.
            valid = subsample_users(data.items(VALID), min(self.cfg.valid_users, FOLD_IN_USERS),
                                    np.random.default_rng(self.cfg.seed + 3))
            alpha = DEFAULT_FOLD_IN_ALPHA
            if valid.counts().any():
                alpha = choose_alpha(self.ranker().fold, data.items(TRAIN), valid, data.num_items, self.cfg.k)
                if log:
                    log(f"fold-in of new listeners: alpha {alpha:g}, chosen on validation")
            self._alpha, self._ranker = alpha, None  # rebuilt with this alpha when it is asked for
        return self

    def _load(self, network_state: dict[str, Tensor], users: Tensor, items: Tensor,
              word_names: list[str] | None = None, words: Tensor | None = None) -> None:
        self._network_state = network_state
        self.word_names = list(word_names or [])
        self.word_embeddings = words if self.word_names else None  # (words, width) the name words' final embeddings
        self._word_index = {w: i for i, w in enumerate(self.word_names)}
        weight, bias = network_state["scorer.weight"], network_state["scorer.bias"]
        with torch.device("meta"):  # no throw-away random init: the weights are assigned below
            self.scorer = PairScorer(weight.shape[1])
        self.scorer.load_state_dict({"weight": weight, "bias": bias}, assign=True)
        self.scorer.eval()
        self.user_embeddings, self.item_embeddings = users, items
        self._score_fn = embedding_scores(self.scorer, users, items)
        self._alpha = self.cfg.fold_in_alpha or DEFAULT_FOLD_IN_ALPHA
        self._ranker = None

    def ranker(self) -> GCNRanker:
        """The ranker that serves this model's embeddings (built on first use, then kept)."""
        if self._ranker is None:
            self._ranker = GCNRanker(self.user_embeddings, self.item_embeddings, self.scorer.weight[0].detach(),
                                     float(self.scorer.bias.detach()), self._alpha)
        return self._ranker

    def top_k(self, users: np.ndarray, k: int, exclude: UserItems | None) -> tuple[np.ndarray, np.ndarray]:
        """The exact top-k of every item (``ranking.NormOrderedTopK``: items scanned longest first)."""
        return self.ranker().scan(users, k, exclude)

    def scores(self, users: np.ndarray) -> Tensor:
        return self._score_fn(users)

    def fold_in(self, histories, names: Sequence[str] | None = None,
                weights: Sequence[np.ndarray | None] | None = None) -> Tensor:
        """Each listener's vector fitted to their items with the item embeddings fixed (``foldin``).

        With ``names`` (a playlist name per listener, "" for none), a name whose words have
        nodes gives the mean of those words' final embeddings: the listener's vector where it
        has no item, and the prior its items' fit is drawn towards where it has some
        (``FoldIn.vectors``'s ``priors``, weighing as much as one item). ``weights`` (an array
        beside each history, or None) scale each item's confidence (``foldin.position_weights``).
        """
        histories, weights = distinct_items(histories, weights)
        priors = self.name_vectors(names) if names is not None else None
        fold = self.ranker().fold
        return fold.vectors(histories, priors, weights) @ fold.items.T + fold.bias

    def name_vectors(self, names: Sequence[str]) -> list[Tensor | None]:
        """Each name's vector: the mean final embedding of its words that have nodes (``names.words``),
        None where it has none (no name words in the graph, or none of its words among them)."""
        out: list[Tensor | None] = []
        for name in names:
            codes = [self._word_index[w] for w in name_words(name or "") if w in self._word_index]
            out.append(self.word_embeddings[torch.tensor(codes)].mean(0) if codes else None)
        return out

    def reads_names(self) -> bool:
        """Whether a playlist's name alone gives this model's recommendations (name words in its graph)."""
        return bool(self.word_names)

    def word_vocabulary(self) -> dict[str, int]:
        """The name words with a node, each with its row of ``word_embeddings``."""
        return self._word_index

    def item_vectors(self) -> Tensor:
        """(items, width) the items' final embeddings, e.g. for similar items."""
        return self.item_embeddings

    def contributions(self, history: np.ndarray, targets: np.ndarray) -> tuple[Tensor, Tensor]:
        return self.ranker().fold.contributions(np.unique(np.asarray(history, np.int64)), targets)

    def recommend(self, user: int, k: int, exclude: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k of one user (``GCNRanker.recommend``)."""
        return self.ranker().recommend(user, k, exclude, lambda: super(GCN, self).recommend(user, k, exclude))

    def params(self) -> dict[str, Any]:
        params = {name: getattr(self.cfg, name) for name in GCN_OPTIONS}
        fitted = bool(self.report.history or self.report.best_valid)
        params["epochs"] = self.report.best_epoch if fitted else self.cfg.epochs  # what validation chose
        if self._alpha is not None:
            params["fold_in_alpha"] = self._alpha
        return params

    def state(self) -> dict[str, Any]:
        """The network's weights and the final embeddings; with ``combine="concat"`` only their
        second layer's half, as the first half is the node vectors the network holds."""
        users, items = self.user_embeddings, self.item_embeddings
        if self.cfg.combine == "concat":
            users, items = users[:, self.cfg.dim:], items[:, self.cfg.dim:]
        # Copies of their own: torch.save writes a view's whole storage (every node's embedding).
        state = {"network": self._network_state,
                 "user_embeddings": users.clone(memory_format=torch.contiguous_format),
                 "item_embeddings": items.clone(memory_format=torch.contiguous_format)}
        if self.word_names:  # one string: words hold no whitespace
            words = self.word_embeddings[:, self.cfg.dim:] if self.cfg.combine == "concat" else self.word_embeddings
            state.update(words="\n".join(self.word_names),
                         word_embeddings=words.clone(memory_format=torch.contiguous_format))
        return state

    @classmethod
    def from_state(cls, params: dict[str, Any], state: dict[str, Any]) -> GCN:
        model = cls(**params)
        users, items = state["user_embeddings"], state["item_embeddings"]
        names = state["words"].split("\n") if isinstance(state.get("words"), str) and state["words"] else []
        words = state.get("word_embeddings") if names else None
        if names and (not isinstance(words, Tensor) or words.dim() != 2 or len(words) != len(names)):
            raise ValueError(f"{len(names):,} name words but word_embeddings of another shape")
        if model.cfg.combine == "concat":  # the node vectors beside the second layer's output (model.py)
            nodes, n_users = state["network"]["embedding.weight"], len(users)
            users = torch.cat([nodes[:n_users], users], dim=1)
            items = torch.cat([nodes[n_users: n_users + len(items)], items], dim=1)
            if names:  # the word block is the last
                words = torch.cat([nodes[len(nodes) - len(names):], words], dim=1)
        model._load(state["network"], users, items, names, words)
        return model

    def network(self) -> GCNNetwork:
        """The fitted ``GCNNetwork`` (both GCNConv layers and the scorer), rebuilt from the state."""
        from .model import GCNNetwork  # imports torch_geometric

        with torch.device("meta"):
            net = GCNNetwork(self._network_state["embedding.weight"].shape[0], self.cfg.dim, self.cfg.dropout,
                                 self.cfg.fixed_features, self.cfg.combine, self.cfg.conv)
        net.load_state_dict(self._network_state, assign=True)
        return net.eval()


class GCNRanker:
    """Serves a fitted GCN's final embeddings: exact top-k by a norm-ordered scan of the items
    (``ranking.NormOrderedTopK``) and the fold-in of new listeners (``foldin.FoldIn``), each
    built on first use and kept.

    Args:
        users: (users, width) and items: (items, width) final embeddings.
        weight: (width,) the scorer's weights; bias: its bias.
        alpha: the fold-in's confidence of a listener's own items.
    """

    def __init__(self, users: Tensor, items: Tensor, weight: Tensor, bias: float, alpha: float):
        self.users, self.items, self.weight, self.bias, self.alpha = users, items, weight, bias, alpha
        self._scan: NormOrderedTopK | None = None
        self._fold: FoldIn | None = None
        self._scanned_once = False  # recommend's first call scores every item; later ones sort by norm once

    @property
    def scan(self) -> NormOrderedTopK:
        """The items in decreasing norm, with each user's query vector (sorted on first use)."""
        if self._scan is None:
            self._scan = NormOrderedTopK(self.users * self.weight, self.items, self.bias)
        return self._scan

    @property
    def fold(self) -> FoldIn:
        """The fold-in of new listeners (an items x width matrix, built on first use)."""
        if self._fold is None:
            self._fold = FoldIn(self.items, self.weight, self.bias, self.alpha)
        return self._fold

    @torch.no_grad()
    def recommend(self, user: int, k: int, exclude: np.ndarray, score_every_item: Callable[[], tuple],
                  chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k of one user, by the scan in small chunks (one user stops early). The first
        call scores every item instead (``score_every_item``, cheaper than sorting millions of
        norms for a one-off ``recommend.py``); the order is sorted on the second and kept."""
        if self._scan is None and not self._scanned_once:
            self._scanned_once = True
            return score_every_item()
        scan, exclude = self.scan, np.asarray(exclude, dtype=np.int64)
        items, scores = scan.rank(scan.q_users[user][None], min(int(k), len(scan.order)),
                                  np.zeros(len(exclude), np.int64), exclude, chunk)
        keep = torch.isfinite(scores[0])
        return items[0][keep].numpy(), scores[0][keep].numpy()


class GCNBlend(Recommender):
    """The GCN plus the GF-CF graph filter, each standardised per user: ``z(GF-CF) + weight * z(GCN)``,
    and, where playlists are users with names (MPD), ``+ name_weight * z(names)``.

    Fitting trains the GCN, then chooses GF-CF's ``k`` and ``alpha``, the GCN's weight and the
    names' weight by validation Recall@k (``filters.choose_blend``, ``filters.choose_name_weight``);
    the filters are built from the training pairs, as the contract says (``refit`` builds them
    from training + validation). Given all the choices, it chooses nothing. The names' part
    (``filters.NameFilter``) walks the graph's name words; a playlist with no training track
    is scored by its name alone.

    Args:
        gf_k, gf_alpha, weight, name_weight: the choices, or None to make them on validation.
        **gcn_options: the GCN's, see ``GCN``.
    """

    name = "gcn+gf-cf"
    label = "GCN+GF-CF"

    def __init__(self, gf_k: int | None = None, gf_alpha: float | None = None, weight: float | None = None,
                 name_weight: float | None = None, **gcn_options: Any):
        self.gcn = GCN(**gcn_options)
        self.choice = {"gf_k": gf_k, "gf_alpha": gf_alpha, "weight": weight}
        self.name_weight = name_weight
        self.filter: GFCF | None = None
        self.names: NameFilter | None = None  # the names' part, where the users have names with word nodes
        self._score_fn = None

    @property
    def report(self) -> FitReport:
        return self.gcn.report

    def fit(self, data: Dataset, *, log: Log | None = None, progress: bool = False,
            stop: Callable[[], bool] | None = None, resume: dict | None = None) -> GCNBlend:
        """Fit the GCN (``stop``, ``resume``: see ``GCN.fit``), then the filter and the blend.

        When ``stop`` ends the GCN's training early, the filter is not built: ``self.gcn``
        is the usable model so far.
        """
        self.gcn.fit(data, log=log, progress=progress, stop=stop, resume=resume)
        if self.gcn.report.interrupted or Ranks.current().rank != 0:
            return self
        cfg = self.gcn.cfg
        valid = subsample_users(data.items(VALID), cfg.valid_users, np.random.default_rng(cfg.seed + 2))
        if None in self.choice.values():
            self.choice, chosen = choose_blend(data.items(TRAIN), valid, self.gcn.scores, data.num_items, cfg.k)
            if log:
                log(f"{self.label}, chosen on validation: GF-CF k={self.choice['gf_k']}, "
                    f"alpha={self.choice['gf_alpha']}, GCN weight {self.choice['weight']}")
        else:
            chosen = GFCF(k=int(self.choice["gf_k"]), alpha=float(self.choice["gf_alpha"]))
            chosen.fit_matrix(data.matrix(TRAIN))
        names = data.catalogue.user_names
        self._set_filter(chosen, NameFilter.of(names, chosen.matrix) if names is not None and data.words else None)
        if self.names is not None and self.name_weight is None:
            base = blended(chosen.scores, self.gcn.scores, float(self.choice["weight"]))
            self.name_weight = choose_name_weight(data.items(TRAIN), valid, base, self.names, data.num_items, cfg.k)
            if log:
                log(f"{self.label}, chosen on validation: names' weight {self.name_weight}")
            self._set_filter(chosen, self.names)
        return self

    def _set_filter(self, gf: GFCF, names: NameFilter | None = None) -> None:
        self.filter, self.names = gf, names
        self._score_fn = blended(gf.scores, self.gcn.scores, float(self.choice["weight"]))
        if names is not None:
            bare = np.diff(gf.matrix.indptr) == 0
            self._score_fn = with_names(self._score_fn, names.scores, float(self.name_weight or 0.0), bare)

    def scores(self, users: np.ndarray) -> Tensor:
        return self._score_fn(users)

    def item_vectors(self) -> Tensor:
        """The GCN's item embeddings (GF-CF has no item vectors of its own)."""
        return self.gcn.item_vectors()

    def fold_in(self, histories, names: Sequence[str] | None = None,
                weights: Sequence[np.ndarray | None] | None = None) -> Tensor:
        """GF-CF's exact fold-in (of the weighted row, where weights are given) plus the GCN's,
        blended as ``scores`` blends them, and the names' part as ``scores`` adds it: a listener
        given by a name alone is scored by the name."""
        rows = np.arange(len(histories))
        pick = lambda values, r: None if values is None else [values[i] for i in r]  # noqa: E731
        out = blended(lambda r: self.filter.fold_in(pick(histories, r), pick(weights, r)),
                      lambda r: self.gcn.fold_in(pick(histories, r), pick(names, r), pick(weights, r)),
                      float(self.choice["weight"]))
        if self.names is not None and names is not None:
            bare = np.asarray([not len(h) for h in histories])
            out = with_names(out, lambda r: self.names.scores_of_names(pick(names, r)), float(self.name_weight or 0.0),
                             bare)
        return out(rows)

    def reads_names(self) -> bool:
        return self.names is not None or self.gcn.reads_names()

    def word_vocabulary(self) -> dict[str, int]:
        return self.names.index if self.names is not None else self.gcn.word_vocabulary()

    def contributions(self, history: np.ndarray, targets: np.ndarray) -> tuple[Tensor, Tensor]:
        """Each half's parts divided by its per-listener spread, as ``standardised`` divides its scores."""
        history = np.unique(np.asarray(history, np.int64))
        weight = float(self.choice["weight"])
        (f_parts, f_rest), (g_parts, g_rest) = (m.contributions(history, targets) for m in (self.filter, self.gcn))
        f, g = self.filter.fold_in([history])[0], self.gcn.fold_in([history])[0]
        f_std, g_std = f.std().clamp_min(1e-9), g.std().clamp_min(1e-9)
        parts = f_parts / f_std + weight * g_parts / g_std
        rest = (f_rest - f.mean()) / f_std + weight * (g_rest - g.mean()) / g_std
        return parts, rest

    def params(self) -> dict[str, Any]:
        return {**self.gcn.params(), **self.choice, "name_weight": self.name_weight}

    def state(self) -> dict[str, Any]:
        state = {"gcn": self.gcn.state(), "filter": self.filter.state()}
        if self.names is not None:
            state["names"] = self.names.state()
        return state

    @classmethod
    def from_state(cls, params: dict[str, Any], state: dict[str, Any]) -> GCNBlend:
        model = cls(**params)
        model.gcn = GCN.from_state(model.gcn.params(), state["gcn"])
        gf = GFCF.from_state({"k": int(params["gf_k"]), "alpha": float(params["gf_alpha"])}, state["filter"])
        model._set_filter(gf, NameFilter.from_state(state["names"], gf.matrix) if "names" in state else None)
        return model


MODELS: dict[str, type[Recommender]] = {GCN.name: GCN, GCNBlend.name: GCNBlend, GCNChebyCF.name: GCNChebyCF}


HYBRID_OPTIONS = ("seed", "lr", "epochs", "steps_per_epoch", "negatives", "eval_every", "patience", "valid_users",
                  "k")  # the TrainConfig fields GCN+ChebyCF takes


def make_model(cfg: TrainConfig) -> Recommender:
    """The unfitted model ``cfg.model`` names, with ``cfg``'s options."""
    names = HYBRID_OPTIONS if cfg.model == GCNChebyCF.name else GCN_OPTIONS
    return MODELS[cfg.model](**{name: getattr(cfg, name) for name in names})
