"""All of training's defaults in one typed place; the command-line flags are derived from it."""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from typing import Any, Sequence


def _opt(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


MODELS = ("gcn", "gcn+gf-cf")
COMBINE = ("concat", "last")  # what the GCN's scorer reads, see model.GCNRecommender


@dataclass
class TrainConfig:
    # data and outputs
    data: str = _opt("spotify_dataset.csv", "playlists CSV to train on (the shipped sample is synthetic; "
                     "pass the real 1.2 GB spotify_dataset.csv here), or a plain interaction table: "
                     "user, item[, weight] per line, CSV or TSV, header optional")
    test: str = _opt("", "a fixed test table for a plain interaction table (--data user,item[,weight] CSV/TSV): "
                     "its pairs are the test set, validation is carved from --data")
    item_names: str = _opt("", "names of a plain table's items: id and name per line (e.g. HetRec artists.dat)")
    output: str = _opt("gnn_model.pth", "where to write the self-contained checkpoint")
    plot: str = _opt("training_curve.png", "where to write the training-curve PNG ('' for none)")
    stats_only: bool = _opt(False, "load the data, build the graph and the split, print their statistics, stop")
    summary_json: str = _opt("", "also write the run's statistics, stage timings and metrics here as JSON")
    # split
    seed: int = _opt(0, "seed for the split, initialisation and negative sampling")
    valid_frac: float = _opt(0.1, "share of each user's (user, track) pairs held out for validation")
    test_frac: float = _opt(0.1, "share of each user's pairs held out for the test")
    min_user_pairs: int = _opt(10, "users with fewer distinct tracks keep them all in training")
    # model (the design card: 2 x GCNConv + linear scorer)
    model: str = _opt("gcn", "gcn: the design card (two GCNConv + linear scorer, MSE); gcn+gf-cf: that GCN "
                      "blended with the GF-CF graph filter, filter and weight chosen on validation (plain "
                      "tables or catalogues up to 30,000 items; the best model on the Last.fm benchmarks)")
    dim: int = _opt(32, "size of node vectors and of both GCN layers")
    dropout: float = _opt(0.1, "dropout after each GCN layer")
    fixed_features: bool = _opt(True, "keep the starting node vectors frozen (fast: the first layer is computed "
                                "once); --no-fixed-features trains them too, over the whole graph each step")
    combine: str = _opt("concat", "what the linear scorer reads: 'concat' (the node vectors beside the second "
                        "GCNConv's output, so the spectral start's own ranking is kept) or 'last' (the second "
                        "GCNConv's output only)")
    init: str = _opt("spectral", "starting node vectors: 'spectral' (leading singular vectors of the normalised "
                     "user-track matrix) or 'normal' (random, std 0.1)")
    # training
    lr: float = _opt(0.01, "Adam learning rate")
    epochs: int = _opt(300, "most epochs (passes over the training pairs); early stopping usually ends sooner")
    steps_per_epoch: int = _opt(16, "Adam steps per epoch; each embeds the whole graph and scores 1/steps "
                                "of the epoch's pairs")
    negatives: int = _opt(4, "sampled non-edges (target 0) per observed pair")
    pairs_per_epoch: int = _opt(1_000_000, "most training pairs scored per epoch (sampled when there are more)")
    eval_every: int = _opt(2, "epochs between validation Recall@k evaluations")
    valid_users: int = _opt(2000, "most users in each validation check (a fixed seeded sample; the test uses all)")
    patience: int = _opt(5, "stop after this many evaluations without a better validation Recall@k")
    k: int = _opt(20, "cut-off of Recall@k, NDCG@k and HitRate@k")
    device: str = _opt("auto", "'auto' (CUDA when present, else CPU), 'cpu' or 'cuda'")

    def __post_init__(self) -> None:
        problems = [
            *(f"--{n.replace('_', '-')} must be between 0 and 1" for n in ("valid_frac", "test_frac", "dropout")
              if not 0 <= getattr(self, n) < 1),
            *(f"--{n.replace('_', '-')} must be >= 1" for n in ("dim", "epochs", "steps_per_epoch", "pairs_per_epoch",
                                                                "eval_every", "patience", "k", "min_user_pairs",
                                                                "valid_users")
              if getattr(self, n) < 1),
            *(["--negatives must be >= 0"] if self.negatives < 0 else []),
            *(["--lr must be > 0"] if not self.lr > 0 else []),
            *(["--valid-frac + --test-frac must be below 1"] if self.valid_frac + self.test_frac >= 1 else []),
            *(["--device must be auto, cpu or cuda"] if self.device not in ("auto", "cpu", "cuda") else []),
            *(["--init must be spectral or normal"] if self.init not in ("spectral", "normal") else []),
            *(["--combine must be concat or last"] if self.combine not in COMBINE else []),
            *(["--model must be gcn or gcn+gf-cf"] if self.model not in MODELS else []),
        ]
        if problems:
            raise ValueError("; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def build_parser(cls: type, description: str) -> argparse.ArgumentParser:
    """An argparse parser with one flag per dataclass field, defaults and help taken from it."""
    parser = argparse.ArgumentParser(description=description,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    for f in dataclasses.fields(cls):
        flag = "--" + f.name.replace("_", "-")
        kind = type(f.default)
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=f.default,
                                help=f.metadata.get("help"))
        else:
            parser.add_argument(flag, type=kind, default=f.default, help=f.metadata.get("help"),
                                metavar=f.name.upper())
    return parser


def parse_config(cls: type, argv: Sequence[str] | None, description: str):
    """Parse flags into a config of type ``cls``; unknown flags or bad values exit 2 with one line."""
    parser = build_parser(cls, description)
    args = parser.parse_args(argv)
    try:
        return cls(**vars(args))
    except ValueError as e:
        parser.exit(2, f"{parser.prog}: error: {e}\n")
