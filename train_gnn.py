"""Train Melody Map's GCN recommender on a Spotify playlists CSV or a plain interaction table.

Loads the input (the real 1.2 GB spotify_dataset.csv, the shipped synthetic sample, or a
user,item[,weight] table), builds one graph of users, tracks, artists and playlists, holds
out 10% + 10% of each user's pairs for validation and test, trains two GCNConv layers with
a linear scorer (MSE, Adam), reports test Recall/NDCG/HitRate/Coverage@k beside a
popularity baseline, and writes a self-contained checkpoint plus a training-curve PNG.
"""

from __future__ import annotations

import sys

from melody_map.config import TrainConfig, parse_config
from melody_map.pipeline import run
from melody_map.text import printable


def main(argv: list[str] | None = None) -> int:
    cfg = parse_config(TrainConfig, argv, __doc__)
    print("config: " + ", ".join(f"{k}={v!r}" for k, v in cfg.to_dict().items()))
    try:
        # Names and rows from the data are escaped; the lines of a table stay lines.
        run(cfg, log=lambda text: print("\n".join(map(printable, text.split("\n")))))
    except ValueError as e:  # bad input: one line, no traceback
        print(printable(f"error: {e}"), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
