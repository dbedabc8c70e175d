"""Train Melody Map's GCN recommender on a Spotify playlists CSV or a plain interaction table.

Loads the input (the real 1.2 GB spotify_dataset.csv, the shipped synthetic sample, MPD
slices, or a user,item[,weight] table), builds one graph of users, tracks, artists and
playlists, holds out 10% + 10% of each user's pairs for validation and test, and fits the
default model, GCN+ChebyCF: the ChebyCF graph filter plus two GCNConv layers over the
tracks' artists, albums and tags that read each listener's tracks, joined by a linear scorer
trained with MSE and Adam. It reports test Recall/NDCG/HitRate/Coverage@k beside a
popularity baseline, and writes a self-contained checkpoint plus a training-curve PNG.

Ctrl-C during training keeps the best weights so far: GCN+ChebyCF finishes the run with them;
--model gcn writes its checkpoint marked interrupted, exits 130, and --resume CHECKPOINT
carries on from it. A second Ctrl-C stops at once.

Under torchrun (torchrun --nproc-per-node N train_gnn.py --model gcn ...) the ranks train
data-parallel with DistributedDataParallel (gloo on CPU, NCCL on CUDA); rank 0 tests and
writes. GCN+ChebyCF is not data-parallel: each rank fits it alike.
"""

from __future__ import annotations

import sys

from melody_map.config import TrainConfig, parse_config
from melody_map.text import printable


def main(argv: list[str] | None = None) -> int:
    cfg = parse_config(TrainConfig, argv, __doc__)  # before the heavy imports: --help is quick
    from melody_map import distributed
    from melody_map.interrupt import TrainingInterrupted
    from melody_map.pipeline import run

    ranks = distributed.init_from_env(cfg.device)  # under torchrun: join the other ranks
    if ranks.rank == 0:
        print("config: " + ", ".join(f"{k}={v!r}" for k, v in cfg.to_dict().items()))
    try:
        # Names and rows from the data are escaped; the lines of a table stay lines.
        run(cfg, log=lambda text: print("\n".join(map(printable, text.split("\n")))))
    except ValueError as e:  # bad input: one line, no traceback
        print(printable(f"error: {e}"), file=sys.stderr)
        return 2
    except TrainingInterrupted as e:  # the first Ctrl-C in training: the checkpoint so far is written
        print(printable(str(e)), file=sys.stderr)
        return 130
    except KeyboardInterrupt:  # elsewhere, or a second Ctrl-C: at once
        print(f"interrupted; nothing written ({cfg.output or 'no --output'} is as it was)", file=sys.stderr)
        return 130
    finally:
        distributed.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
