"""All of training's defaults in one typed place; the command-line flags are derived from it."""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from typing import Any, Sequence

MODELS = ("gcn", "gcn+gf-cf", "gcn+chebycf")  # gcn.MODELS holds the classes behind these names
COMBINE = ("concat", "last")  # what the GCN's scorer reads, see model.GCNNetwork
INITS = ("spectral", "spectral+degree", "spectral+tags", "normal")  # the GCN's starting node vectors, see train.build_network
SEPS = ("auto", "tab", "comma", "semicolon", "pipe")  # a plain table's --sep, see readers.SEPARATORS
CONVS = ("gcn", "gat")  # the GCN's two layers: PyG GCNConv or GATConv
GROUPS = {"data": "data and split", "model": "model", "training": "training", "output": "output"}


def _opt(default: Any, group: str, help: str) -> Any:
    return field(default=default, metadata={"group": group, "help": help})


@dataclass
class TrainConfig:
    # data and split
    data: str = _opt("spotify_dataset.csv", "data", "the input: a playlists CSV (user_id, artistname, trackname, "
                     "playlistname; the shipped sample, or the real 1.2 GB spotify_dataset.csv) or a plain "
                     "interaction table (user, item[, weight] per line, CSV or TSV, header optional)")
    test: str = _opt("", "data", "a fixed test in --data's layout (a plain table; a playlists CSV of --data's "
                     "users; MPD slices whose pids are --data's playlists): its pairs are the test "
                     "set, validation is carved from --data")
    catalogue: str = _opt("", "data", "tracks no playlist holds that may be recommended all the same (new "
                          "releases), joined to the graph through their artist and album: MPD slices, a JSON list "
                          "of MPD track rows, or a CSV/TSV with a header naming artist_name, track_name[, track_uri, "
                          "artist_uri, album_uri, album_name] (with MPD --data)")
    sep: str = _opt("auto", "data", "a plain table's delimiter: tab, comma, semicolon, pipe or auto (tab or comma)")
    header: str = _opt("auto", "data", "whether a plain table's first line is a header: yes, no, or auto (a 3rd "
                       "field that is not a number, words over numeric ids, or column names such as userID)")
    item_names: str = _opt("", "data", "names of a plain table's items: id and name per line (HetRec artists.dat)")
    item_tags: str = _opt("", "data", "tags of a plain table's items: item id and tag per line, or a header "
                          "naming the two columns (e.g. HetRec user_taggedartists.dat); a quoted glob reads "
                          "several files; the default model's side graph gives each tag a node, and --model gcn "
                          "--init spectral+tags starts the GCN from them")
    # the split
    seed: int = _opt(0, "data", "seed for the split, the initialisation and negative sampling")
    valid_frac: float = _opt(0.1, "data", "share of each user's (user, item) pairs held out for validation")
    test_frac: float = _opt(0.1, "data", "share of each user's pairs held out for the test (without --test)")
    min_user_pairs: int = _opt(10, "data", "users with fewer distinct items keep them all in training")
    words: bool = _opt(True, "data", "give each word that two or more playlist names share a node, linked to the "
                       "playlists named with it, so that a name alone reaches the tracks of playlists named alike "
                       "(MPD and playlists CSVs; --no-words leaves names out of the graph)")
    # model: 2 x GCNConv + a linear scorer
    model: str = _opt("gcn+chebycf", "model", "gcn+chebycf: the ChebyCF graph filter (with EASE beside it in "
                      "a catalogue under 131,072 tracks) plus two GCNConv layers over the tracks' artists, "
                      "albums, playlists and tags that read each listener's tracks, joined by a "
                      "linear scorer trained with MSE and Adam on the validation pairs (of the options below, "
                      "--lr, --epochs, --steps-per-epoch, --negatives, --eval-every, --patience, --valid-users, "
                      "--k and --seed are its); gcn: two GCNConv layers over the whole graph and a linear "
                      "scorer, trained with MSE (every option below is its); gcn+gf-cf: that GCN blended with "
                      "the GF-CF graph filter, the filter and the blend weight chosen on validation")
    dim: int = _opt(32, "model", "size of the node vectors and of both GCN layers")
    dropout: float = _opt(0.1, "model", "dropout after each GCN layer")
    fixed_features: bool = _opt(True, "model", "keep the starting node vectors frozen, so the first layer is "
                                "computed once; --no-fixed-features trains them too, over the whole graph each step")
    # the layers, the scorer and the start
    conv: str = _opt("gcn", "model", "the two message-passing layers: 'gcn' (PyG GCNConv) or "
                     "'gat' (PyG GATConv, one attention head; each training step then embeds the whole graph)")
    combine: str = _opt("concat", "model", "what the linear scorer reads: 'concat' (the node vectors beside the "
                        "second GCNConv's output) or 'last' (the second GCNConv's output only)")
    init: str = _opt("spectral", "model", "starting node vectors: 'spectral' (leading singular vectors of the "
                     "normalised user-item matrix), 'spectral+degree' (the same, its last column replaced by each "
                     "node's standardised log-degree: user activity, track popularity), 'spectral+tags' (the "
                     "same, its last quarter replaced by the items' --item-tags vectors, and each other node's "
                     "mean of its items') or 'normal' (random, std 0.1)")
    # training
    lr: float = _opt(0.01, "training", "Adam learning rate")
    epochs: int = _opt(300, "training", "most epochs; early stopping on validation usually ends sooner. "
                       "Validation also checks the untrained start (epoch 0), which it may keep; --epochs 0 "
                       "trains nothing: the start's ranking alone")
    steps_per_epoch: int = _opt(16, "training", "Adam steps per epoch, each on a random group of users' pairs")
    negatives: int = _opt(4, "training", "sampled non-edges (target 0) per observed pair")
    all_items: float = _opt(0.0, "training", "weight of iALS's term: the squared score of every (user, item) "
                            "pair, target 0, beside the sampled non-edges (0: off)")
    item_sample: int = _opt(16384, "training", "items the --all-items term is computed over per step (a random "
                            "sample; all items when the catalogue is smaller)")
    fold_in_alpha: float = _opt(0.0, "training", "confidence of a new listener's own tracks when they are folded "
                                "in without retraining (recommend.py --tracks, playlist continuation); 0: chosen "
                                "on validation among 1, 3, 10, 30, 100")
    disjoint: bool = _opt(False, "training", "keep each step's scored pairs out of the graph its second layer "
                          "passes messages over, so a pair's score cannot read its own edge (frozen node "
                          "vectors only)")
    pairs_per_epoch: int = _opt(1_000_000, "training", "most training pairs scored per epoch (sampled when "
                                "there are more)")
    eval_every: int = _opt(2, "training", "epochs between validation checks")
    valid_users: int = _opt(2000, "training", "most users per validation check (a seeded sample; the test uses all)")
    patience: int = _opt(5, "training", "stop after this many validation checks without a better Recall@k")
    k: int = _opt(20, "training", "cut-off of Recall@k, NDCG@k, HitRate@k and Coverage@k")
    refit: bool = _opt(False, "training", "after choosing epochs (and the blend) on validation, fit again on "
                       "training + validation with those choices, then test (as bench/quality.py does)")
    resume: str = _opt("", "training", "carry on from the checkpoint that an interrupted run (Ctrl-C) wrote, to "
                       "the result the uninterrupted run would have had: the data, model and training options "
                       "are the checkpoint's; the output options and --device are this command's")
    memory_check: bool = _opt(True, "training", "estimate the run's peak memory from the file's size, then from "
                              "the data's counts and the flags, and stop with a note of the flags that lower it "
                              "when it exceeds the available memory (CPU runs)")
    device: str = _opt("auto", "training", "'auto' (CUDA when present, else CPU), 'cpu' or 'cuda'")
    threads: int = _opt(0, "training", "CPU threads torch uses; 0: OMP_NUM_THREADS when set, else the CPUs "
                        "this process may use (its affinity and container quota). Runs with the same seed and "
                        "thread count give identical models; when other work keeps the CPUs busy, fewer "
                        "threads run faster (the run says so)")
    # output
    output: str = _opt("gnn_model.pth", "output", "where to write the self-contained checkpoint ('' for none)")
    plot: str = _opt("training_curve.png", "output", "where to write the training-curve PNG ('' for none)")
    diagram: str = _opt("", "output", "also draw the network's autograd graph with torchviz to this file (.png, "
                        ".svg or .pdf); needs pip install torchviz and Graphviz's dot, and is skipped with a note "
                        "when they are absent")
    stats_only: bool = _opt(False, "output", "load the data, build the split and the graph, print their "
                            "statistics and stop")
    summary_json: str = _opt("", "output", "also write the run's statistics, stage timings and metrics here as JSON")

    def __post_init__(self) -> None:
        problems = [
            *(f"--{n.replace('_', '-')} must be between 0 and 1" for n in ("valid_frac", "test_frac", "dropout")
              if not 0 <= getattr(self, n) < 1),
            *(f"--{n.replace('_', '-')} must be >= 1" for n in ("dim", "steps_per_epoch", "pairs_per_epoch",
                                                                "eval_every", "patience", "k", "min_user_pairs",
                                                                "valid_users", "item_sample")
              if getattr(self, n) < 1),
            *(f"--{n.replace('_', '-')} must be >= 0" for n in ("negatives", "epochs", "all_items", "fold_in_alpha",
                                                                "threads")
              if getattr(self, n) < 0),
            *(["--lr must be > 0"] if not self.lr > 0 else []),
            *(["--valid-frac + --test-frac must be below 1"] if self.valid_frac + self.test_frac >= 1 else []),
            *(["--device must be auto, cpu or cuda"] if self.device not in ("auto", "cpu", "cuda") else []),
            *([f"--init must be one of {', '.join(INITS)}"] if self.init not in INITS else []),
            *([f"--combine must be one of {', '.join(COMBINE)}"] if self.combine not in COMBINE else []),
            *([f"--conv must be one of {', '.join(CONVS)}"] if self.conv not in CONVS else []),
            *([f"--model must be one of {', '.join(MODELS)}"] if self.model not in MODELS else []),
            *([f"--sep must be one of {', '.join(SEPS)}"] if self.sep not in SEPS else []),
            *(["--header must be yes, no or auto"] if self.header not in ("yes", "no", "auto") else []),
            *(["--disjoint needs --fixed-features and --conv gcn"]
              if self.disjoint and not (self.fixed_features and self.conv == "gcn") else []),
        ]
        if problems:
            raise ValueError("; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def resuming(self, saved: dict[str, Any]) -> TrainConfig:
        """This config with ``saved``'s data, model and training options (an interrupted run's),
        keeping its own output options, device and resume."""
        own = ({f.name for f in dataclasses.fields(self) if f.metadata.get("group") == "output"}
               | {"device", "resume", "threads"})
        return TrainConfig(**{f.name: saved[f.name] if f.name in saved and f.name not in own else getattr(self, f.name)
                              for f in dataclasses.fields(self)})


def build_parser(cls: type, description: str) -> argparse.ArgumentParser:
    """An argparse parser with one flag per dataclass field, grouped, defaults and help taken from it."""
    parser = argparse.ArgumentParser(description=description,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    groups = {key: parser.add_argument_group(title) for key, title in GROUPS.items()}
    for f in dataclasses.fields(cls):
        flag = "--" + f.name.replace("_", "-")
        target = groups.get(f.metadata.get("group"), parser)
        kind = type(f.default)
        if kind is bool:
            target.add_argument(flag, action=argparse.BooleanOptionalAction, default=f.default,
                                help=f.metadata.get("help"))
        else:
            target.add_argument(flag, type=kind, default=f.default, help=f.metadata.get("help"),
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
