"""Write a synthetic Spotify Playlists CSV in the real file's exact format.

    python -m synthetic --preset sample --out spotify_dataset.csv
    python -m synthetic --preset full --scale 0.1 --out /tmp/spotify_10pct.csv
    python -m synthetic --format mpd --out /tmp/mpd_sample     # the same playlists as MPD JSON slices
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .generate import PRESETS, get_preset, write_dataset


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse command-line flags; unknown flags are an error.

    Args:
        argv: arguments without the program name; None reads sys.argv.
    """
    ap = argparse.ArgumentParser(prog="python -m synthetic", description=__doc__.splitlines()[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("spotify_dataset.csv"), help="output CSV path")
    ap.add_argument("--preset", choices=sorted(PRESETS), default="sample", help="dataset shape")
    ap.add_argument("--scale", type=float, default=1.0,
                    help="multiplies users/tracks/artists/playlists/rows (0.01, 0.1 for benchmarks)")
    ap.add_argument("--seed", type=int, default=0, help="same seed -> identical bytes")
    ap.add_argument("--format", choices=("csv", "mpd"), default="csv",
                    help="csv: the Spotify Playlists file; mpd: a folder of Million Playlist Dataset slices")
    ap.add_argument("--per-slice", type=int, default=1000, help="with --format mpd: playlists per slice")
    ap.add_argument("--slices", type=int, default=None, help="with --format mpd: write only the first N slices")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Generate the file and print what was written.

    Args:
        argv: arguments without the program name; None reads sys.argv.
    """
    args = parse_args(argv)
    try:
        preset = get_preset(args.preset, args.scale)
    except ValueError as e:
        sys.exit(f"error: {e}")
    print(f"preset={args.preset} scale={args.scale} seed={args.seed}: {preset}")
    if args.format == "mpd":
        from .mpd import write_mpd

        done = write_mpd(args.out, args.preset, args.scale, args.seed, args.per_slice, args.slices)
        print(f"wrote {args.out}: {done['slices']:,} slices, {done['playlists']:,} playlists, {done['rows']:,} "
              f"track rows, {done['bytes']:,} bytes in {done['seconds']:.1f} s")
        return
    stats = write_dataset(args.out, args.preset, args.scale, args.seed)
    planted = ", ".join(f"{k}={v}" for k, v in stats.planted.items())
    n_planted = sum(stats.planted.values())
    print(f"wrote {stats.path}\n"
          f"  rows       {stats.rows_written:,} ({stats.good_rows:,} good + {n_planted} planted)\n"
          f"  users      {stats.n_users:,} ({stats.n_starred:,} with 'Starred')\n"
          f"  tracks     {stats.n_tracks:,}\n"
          f"  artists    {stats.n_artists:,}\n"
          f"  playlists  {stats.n_playlists:,}\n"
          f"  planted    {planted}\n"
          f"  bytes      {stats.bytes:,}\n"
          f"  seconds    {stats.seconds:.1f}")


if __name__ == "__main__":
    main()
