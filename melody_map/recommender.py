"""The one model contract that every recommender honours: ours and the benchmark's baselines.

    model = Model(**params).fit(data)          # fit on data's TRAIN pairs; VALID may steer it
    model.scores(users)                        # (B, items): every item scored for each user
    model.recommend(user, k, exclude)          # one user's k best items, best first
    model.top_k(users, k, exclude)             # many users' k best items (the test metrics' ranking)
    model.fold_in(histories)                   # (B, items): listeners it never saw, from their items
    model.contributions(history, targets)      # those scores split over the listener's items
    model.params()                             # its hyper-parameters, with what fitting chose
    state = model.state()                      # save: tensors, numbers and strings only
    Model.from_state(model.params(), state)    # load: scores as the fitted model did
    model.refit(other_data)                    # the same choices, fitted on other pairs

``refit`` is how "choose on validation, then fit on training + validation" works for
every model alike: ``params()`` holds the choices (an epoch count, a blend weight), and a
model built from them fits without looking at validation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Sequence

import numpy as np
import torch
from torch import Tensor

if TYPE_CHECKING:  # the dataset module imports the graph library; serving never needs it
    from .dataset import Dataset
    from .types import UserItems

Log = Callable[[str], None]


@dataclass
class FitReport:
    """What fitting did, for models trained by epochs (empty for closed-form ones)."""

    history: list[dict] = field(default_factory=list)  # per epoch: loss, validation metrics where checked
    best_epoch: int = 0  # the epoch whose weights were kept
    best_valid: dict = field(default_factory=dict)  # its validation metrics
    resume: dict | None = None  # set when Ctrl-C stopped it: the state to carry on from (see train.py)

    @property
    def interrupted(self) -> bool:
        return self.resume is not None


class Recommender:
    """Base class of the contract; subclasses set ``name`` and ``label`` and implement the methods."""

    name: ClassVar[str] = ""  # what --model and the checkpoint call it
    label: ClassVar[str] = ""  # how tables and logs show it
    report: FitReport = FitReport()  # models that train by epochs give each fit its own

    def fit(self, data: Dataset, *, log: Log | None = None, progress: bool = False) -> Recommender:
        """Fit on ``data``'s TRAIN pairs; VALID pairs may choose epochs or weights, TEST is never read.

        Args:
            data: the dataset (pairs with their split, the graph, the catalogue).
            log: called with a line of progress news, or None.
            progress: show a progress bar where fitting takes a while.

        Returns:
            self, fitted.
        """
        raise NotImplementedError

    def scores(self, users: np.ndarray) -> Tensor:
        """(B, items) float32 scores of every item for the users (B,)."""
        raise NotImplementedError

    def recommend(self, user: int, k: int, exclude: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One user's ``k`` best items outside ``exclude``, best first: (items, scores).

        Fewer than ``k`` come back when the catalogue runs out.
        """
        scores = self.scores(np.array([user]))[0].float()
        scores[torch.from_numpy(np.asarray(exclude, np.int64))] = float("-inf")
        best = torch.topk(scores, min(int(k), len(scores)))
        keep = torch.isfinite(best.values)
        return best.indices[keep].numpy(), best.values[keep].numpy()

    def top_k(self, users: np.ndarray, k: int, exclude: UserItems | None) -> tuple[np.ndarray, np.ndarray]:
        """Each user's ``k`` best items of the whole catalogue, ``exclude``'s left out: items (n, k)
        and scores (n, k), best first, -inf padding a short list (``ranking.top_k`` over ``scores``)."""
        from .ranking import top_k

        return top_k(self.scores, users, k, exclude)

    def fold_in(self, histories: Sequence[np.ndarray]) -> Tensor:
        """(B, items) scores for B listeners the model never saw, each given by an array of item
        indices, without refitting (``implicit``'s ``recalculate_user``). A model that
        ``reads_names`` also takes ``names=``, a playlist name per listener."""
        raise NotImplementedError(f"{type(self).__name__} cannot score listeners it was not fitted on")

    def reads_names(self) -> bool:
        """Whether ``fold_in`` takes playlist names (``names=``) and a name alone gives recommendations."""
        return False

    def contributions(self, history: np.ndarray, targets: np.ndarray) -> tuple[Tensor, Tensor]:
        """``fold_in``'s scores of ``targets`` split over the listener's items: (R, T) parts and
        (R,) rest, each target's parts summing with its rest to ``fold_in([history])[0][targets]``."""
        raise NotImplementedError(f"{type(self).__name__} cannot explain its scores")

    def params(self) -> dict[str, Any]:
        """Keyword arguments that rebuild this model, including what ``fit`` chose."""
        raise NotImplementedError

    def state(self) -> dict[str, Any]:
        """What ``scores`` needs, as tensors, numbers and strings (loadable with weights_only=True)."""
        raise NotImplementedError

    @classmethod
    def from_state(cls, params: dict[str, Any], state: dict[str, Any]) -> Recommender:
        """A fitted model from ``params()`` and ``state()``."""
        raise NotImplementedError

    def refit(self, data: Dataset, *, log: Log | None = None, progress: bool = False, **fit_options: Any
              ) -> Recommender:
        """A new model with this one's choices, fitted on ``data`` (e.g. training + validation).

        ``fit_options`` go to ``fit`` as they are (the GCN's ``stop`` and ``resume``).
        """
        return type(self)(**self.params()).fit(data, log=log, progress=progress, **fit_options)

    def __repr__(self) -> str:
        try:
            args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        except NotImplementedError:
            args = ""
        return f"{type(self).__name__}({args})"
