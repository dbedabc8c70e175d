"""Either input format -> one ``Dataset``: the catalogue, the pairs with their split, the graph.

``load_dataset`` is the only place that tells a playlists CSV from a plain table; from
here on, training, evaluation and every model see the same object.
"""

from __future__ import annotations

import dataclasses
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np
import pyarrow as pa
import scipy.sparse as sp

from .config import TrainConfig
from .graph import Graph, build_graph
from .mpd import is_mpd, read_mpd_data
from .playlists import read_playlists, read_playlists_train_test
from .readers import SEPARATORS, DataError
from .split import Pairs, split_pairs
from .tables import (
    is_table,
    read_item_names,
    read_item_tags,
    read_table,
    read_train_test,
)
from .types import TEST, Catalogue, Interactions, LoadReport, Sized, UserItems

Stage = Callable[[str], AbstractContextManager]  # times a named stage of loading


@dataclass(eq=False)
class Dataset(Sized):
    """The input rows, their (user, item) pairs with the split, and the training graph."""

    rows: Interactions  # the coded input rows (a fixed test table's are not among them)
    pairs: Pairs  # distinct pairs, each TRAIN, VALID or TEST
    graph: Graph  # over the TRAIN pairs and the rows behind them
    reports: list[LoadReport]  # one per file read
    item_tags: sp.csr_matrix | None = None  # (items, tags) counts from --item-tags, or None
    words: bool = True  # the graph gives the playlist names' words nodes (--words)
    _items: dict[tuple[int, ...], UserItems] = field(default_factory=dict, repr=False)  # items()'s, once each

    @property
    def catalogue(self) -> Catalogue:
        return self.rows.catalogue

    def items(self, *parts: int) -> UserItems:
        """Each user's items in the given parts (TRAIN, VALID, TEST), built once per choice of parts."""
        key = tuple(sorted(set(parts)))
        if key not in self._items:
            self._items[key] = UserItems.from_pairs(*self.pairs.select(*key), self.num_users)
        return self._items[key]

    def test_items(self) -> UserItems:
        """Each user's test items, with the test pairs whose item never appears in training as misses."""
        return dataclasses.replace(self.items(TEST), misses=self.pairs.unseen)

    def matrix(self, *parts: int) -> sp.csr_matrix:
        """The binary users x items matrix of the pairs in the given parts."""
        return self.items(*parts).matrix(self.num_items)

    def with_valid_in_train(self) -> Dataset:
        """Validation folded into training, and the graph rebuilt over it (for a refit)."""
        pairs = self.pairs.with_valid_in_train()
        return replace(self, pairs=pairs, graph=build_graph(self.rows, pairs, self.words), _items={})


def load_dataset(cfg: TrainConfig, stage: Stage = lambda name: nullcontext()) -> Dataset:
    """Read ``cfg.data`` (and ``cfg.test``, ``cfg.item_names``, ``cfg.item_tags``), split it and build the graph.

    Args:
        cfg: the data and split fields are read.
        stage: wraps each stage ("load", "split", "graph"), e.g. to time it.

    Raises:
        DataError: unusable input; the message is one line that says what to do.
    """
    sep = SEPARATORS.get(cfg.sep)  # None: sniffed
    header = {"yes": True, "no": False}.get(cfg.header)  # None: sniffed
    mpd = is_mpd(cfg.data)
    table = not mpd and is_table(cfg.data, sep)
    if cfg.init == "spectral+tags" and not cfg.item_tags:
        raise DataError("--init spectral+tags needs the items' tags: pass --item-tags FILE")
    if not table and (cfg.item_names or cfg.item_tags):
        flag = "--item-names" if cfg.item_names else "--item-tags"
        kind = "MPD slices" if mpd else "a playlists CSV"
        raise DataError(f"{flag} is for plain interaction tables; {cfg.data} is {kind}, whose tracks are named already")
    if cfg.catalogue and not mpd:
        raise DataError(f"--catalogue takes MPD data (--data names MPD slices); {cfg.data} is "
                        f"{'a plain table' if table else 'a playlists CSV'}")
    test_mpd = bool(cfg.test) and is_mpd(cfg.test)
    if cfg.test and (mpd, table) != (test_mpd, not test_mpd and is_table(cfg.test, sep)):
        kind = "MPD slices (JSON)" if mpd else "a plain table" if table else "a playlists CSV"
        raise DataError(f"--test {cfg.test} must be in the layout of --data {cfg.data}: {kind} for both")
    extra: list[LoadReport] = []
    with stage("load"):
        if mpd:
            rows, mpd_reports, test = read_mpd_data(cfg.data, cfg.test or None, cfg.catalogue or None)
            extra += mpd_reports
        elif not table:
            rows, test = (read_playlists_train_test(cfg.data, cfg.test) if cfg.test
                          else (read_playlists(cfg.data), None))
        elif cfg.test:
            rows, test = read_train_test(cfg.data, cfg.test, header=header, sep=sep)
        else:
            rows, test = read_table(cfg.data, header=header, sep=sep), None
        if cfg.item_names:
            ids = np.asarray(rows.catalogue.item_ids.to_pylist(), dtype=str)
            names = read_item_names(cfg.item_names, ids)
            named = replace(rows.catalogue, item_names=pa.array(np.where(names == "", ids, names), pa.string()))
            rows = replace(rows, catalogue=named)
        tags, tag_reports = (read_item_tags(cfg.item_tags, rows.catalogue.item_ids) if cfg.item_tags
                             else (None, []))
    with stage("split"):
        pairs = split_pairs(rows, cfg.valid_frac, cfg.test_frac, cfg.min_user_pairs, cfg.seed, test)
    with stage("graph"):
        graph = build_graph(rows, pairs, cfg.words)
    reports = [rows.report, *extra] + ([test.report] if test is not None else []) + tag_reports
    return Dataset(rows=rows, pairs=pairs, graph=graph, reports=reports, item_tags=tags, words=cfg.words)
