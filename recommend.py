"""Print a user's top tracks from a Melody Map checkpoint (no CSV, no graph library needed).

Examples:
  python recommend.py --user 0 --top-k 5
  python recommend.py --user-id f63ec95e7313891dab2cd9e028198161 --top-k 10
  python recommend.py --user 3 --include-known --checkpoint other.pth
  python recommend.py --all-users --top-k 20 --output recs.tsv   # user<TAB>item<TAB>rank<TAB>score

In a notebook:
  from recommend import get_recommendations, load_model
  model, data = load_model("gnn_model.pth")
  get_recommendations(model, data, user_idx=0, top_k=5)   # a DataFrame: rank, artist, track, score
"""

from __future__ import annotations

import argparse
import sys

from melody_map.recommend import (
    get_recommendations,
    load_model,
    recommend_all,
    write_recommendations,
)

__all__ = ["get_recommendations", "load_model", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    who = parser.add_mutually_exclusive_group()
    who.add_argument("--user", type=int, metavar="INDEX",
                     help="user index, 0 .. number of users - 1 (default: 0)")
    who.add_argument("--user-id", metavar="ID", help="the dataset's own user_id string")
    who.add_argument("--all-users", action="store_true",
                     help="rank for every user, leaving out the tracks the model fitted and validated on (as "
                          "the test metrics do), and write user<TAB>item<TAB>rank<TAB>score lines to --output")
    parser.add_argument("--output", metavar="PATH", help="with --all-users: the TSV to write (default: stdout)")
    parser.add_argument("--top-k", type=int, default=5, metavar="K", help="how many tracks (default: 5)")
    parser.add_argument("--checkpoint", default="gnn_model.pth", metavar="PATH",
                        help="checkpoint written by train_gnn.py (default: gnn_model.pth)")
    parser.add_argument("--include-known", action="store_true",
                        help="also rank tracks already in the user's playlists")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.top_k < 1:
            raise ValueError(f"--top-k must be >= 1, got {args.top_k}")
        if args.output and not args.all_users:
            raise ValueError("--output goes with --all-users")
        model, data = load_model(args.checkpoint)
        if args.all_users:
            users, items, scores = recommend_all(model, data, args.top_k)
            lines = write_recommendations(args.output or "/dev/stdout", data, users, items, scores)
            if args.output:
                print(f"wrote {lines:,} recommendations for {len(users):,} users to {args.output}")
            return 0
        user_idx = 0 if args.user is None and args.user_id is None else args.user
        recs = get_recommendations(model, data, user_idx, args.top_k, user_id=args.user_id,
                                   include_known=args.include_known)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    idx = data.user_index(args.user_id) if args.user_id is not None else user_idx
    noun = data.catalogue.noun
    print(f"top {len(recs)} {noun}s for user {idx} ({data.user_ids[idx].as_py()}), "
          f"{len(data.known.of(idx))} {noun}s known{' (included)' if args.include_known else ' (excluded)'}:")
    names = recs[noun].tolist()
    if "artist" in recs:
        width = max((len(a) for a in recs["artist"]), default=0)
        names = [f"{a:<{width}} — {t}" for a, t in zip(recs["artist"], names)]
    for rank, name, score in zip(recs["rank"], names, recs["score"]):
        print(f"{rank:>3}. {name}  ({score:.4f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
