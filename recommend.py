"""Recommendations from a Melody Map checkpoint alone (no CSV, no graph library needed).

Examples:
  python recommend.py --user 0 --top-k 5                      # a user's top tracks
  python recommend.py --user-id f63ec95e7313891dab2cd9e028198161 --top-k 10
  python recommend.py --user 0 --playlist "Sunday morning"    # the next tracks for one of their playlists
  python recommend.py --tracks "Artist - Title" "Artist - Other title"   # a new listener, no retraining
  python recommend.py --tracks-file my_tracks.txt             # the same, one "Artist - Title" per line
  python recommend.py --playlist-name "summer vibes"          # a new playlist from its name (MPD, playlists CSV)
  python recommend.py --playlist-name "road trip" --tracks "Artist - Title"   # its name and a few tracks
  python recommend.py --tracks "A - First" "B - Second" --recency 1   # in order: later tracks weigh more
  python recommend.py --similar-to "Artist - Title"           # the nearest tracks
  python recommend.py --similar-artist "Artist"               # the nearest artists
  python recommend.py --user 0 --explain                      # each track with the user's tracks behind it
  python recommend.py --plot-user 0 user0.png                 # a picture of one user's neighbourhood
  python recommend.py --export-onnx model.onnx                # the scoring graph, for Netron or onnxruntime
  python recommend.py --all-users --top-k 20 --output recs.tsv   # user<TAB>item<TAB>rank<TAB>score
  python recommend.py --serve --port 8000                     # the HTTP API and a web page (the serving extra)

In a notebook:
  from recommend import get_recommendations, load_model
  model, data = load_model("gnn_model.pth")
  get_recommendations(model, data, user_idx=0, top_k=5)   # a DataFrame: rank, artist, track, score
  get_recommendations(model, data, user_idx=[0, 1, 2])    # several users, one DataFrame
  recommend_for_tracks(model, data, ["Artist - Title"]); continue_playlist(model, data, "Name", user_idx=0)
  recommend_for_new_playlist(model, data, "summer vibes", tracks=["Artist - Title"])
  similar_tracks(model, data, "Artist - Title"); similar_artists(model, data, "Artist")
"""

from __future__ import annotations

import argparse
import os
import sys

from melody_map.text import printable

# The API is imported on first use (``from recommend import get_recommendations`` works), so
# that --help answers before torch and pandas load.
API = ("continue_playlist", "explain", "get_recommendations", "load_model", "recommend_all",
       "recommend_for_tracks", "similar_artists", "similar_tracks")
__all__ = [*API, "main"]


def __getattr__(name: str):
    if name in API:
        from melody_map import api

        return getattr(api, name)
    raise AttributeError(f"module 'recommend' has no attribute {name!r}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    who = parser.add_mutually_exclusive_group()
    who.add_argument("--user", type=int, metavar="INDEX",
                     help="user index, 0 .. number of users - 1 (default: 0)")
    who.add_argument("--user-id", metavar="ID", help="the dataset's own user_id string")
    who.add_argument("--all-users", action="store_true",
                     help="every user's top tracks, known tracks left out as with --user, written to --output as "
                          "a TSV with a header: user_id, user_index, rank, track_index, artist, track, score "
                          "(a plain table: item_index, item_id, item)")
    who.add_argument("--tracks", nargs="+", metavar="NAME",
                     help='a new listener given by a few tracks ("Artist - Title"; a plain table\'s item ids): '
                          "their top tracks without retraining, the given ones left out")
    who.add_argument("--tracks-file", metavar="PATH", help="the same as --tracks, one track per line")
    parser.add_argument("--recency", type=float, default=0.0, metavar="R",
                        help="with --tracks/--tracks-file: they are a playlist in order and later ones weigh more, "
                             "the last 1 + R times the first (default: 0, all alike)")
    parser.add_argument("--playlist-name", metavar="NAME",
                        help="a new playlist given by its name, alone or with --tracks/--tracks-file: the name's "
                             "words that name playlists in the training data place it (MPD slices or a "
                             "playlists CSV trained with name words, the default)")
    who.add_argument("--similar-to", metavar="NAME", help='the tracks nearest to one track ("Artist - Title")')
    who.add_argument("--similar-artist", metavar="NAME", help="the artists nearest to one artist")
    who.add_argument("--plot-user", nargs=2, metavar=("ID", "PNG"),
                     help="draw one user's neighbourhood (playlists, tracks, recommended tracks and their artists, "
                          "each recommendation linked to the user's tracks behind it) to a PNG; ID is a user id "
                          "or an index")
    who.add_argument("--export-onnx", metavar="PATH",
                     help="write the model's scoring graph (user indices in, every track's score out) as ONNX, "
                          "for Netron or onnxruntime; needs pip install -r requirements-extras.txt")
    who.add_argument("--serve", action="store_true",
                     help="serve the checkpoint over HTTP: the API as JSON (docs at /docs) and a web page at /; "
                          "needs pip install -r requirements-serve.txt")
    parser.add_argument("--host", metavar="ADDRESS",
                        help="with --serve: the address to bind (default: 127.0.0.1, this machine only)")
    parser.add_argument("--port", type=int, metavar="PORT", help="with --serve: the TCP port (default: 8000)")
    parser.add_argument("--playlist", metavar="NAME",
                        help="with --user or --user-id: the next tracks for that user's playlist of this name, "
                             "leaving out what it holds")
    parser.add_argument("--output", metavar="PATH", help="with --all-users: the TSV to write (default: stdout)")
    parser.add_argument("--evaluation", action="store_true",
                        help="with --all-users: leave out only the tracks the model fitted and validated on, so "
                             "that each user's held-out test tracks stay rankable: the lists the test metrics "
                             "of train_gnn.py score")
    parser.add_argument("--top-k", type=int, default=5, metavar="K", help="how many tracks (default: 5)")
    parser.add_argument("--checkpoint", default="gnn_model.pth", metavar="PATH",
                        help="checkpoint written by train_gnn.py (default: gnn_model.pth)")
    parser.add_argument("--include-known", action="store_true",
                        help="also rank tracks already in the user's playlists")
    parser.add_argument("--explain", action="store_true",
                        help="with --user or --user-id: under each track, the user's own tracks that pull it up "
                             "most (real terms of the score of the user folded in from their tracks)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        check_args(args)
        if args.serve:
            serve(args)
            return 0
        from melody_map.api import load_model

        tracks = args.tracks or (_read_lines(args.tracks_file) if args.tracks_file else None)
        model, data = load_model(args.checkpoint)
        if isinstance(data.config.get("interrupted"), dict):
            print(printable(f"note: {args.checkpoint} is from an interrupted run (the best model so far); "
                            f"python train_gnn.py --resume {args.checkpoint} finishes it"), file=sys.stderr)
        if args.plot_user:
            lines = plot_user(args, model, data)
        elif args.export_onnx:
            lines = export_onnx(args, model)
        elif args.all_users:
            lines = all_users(args, model, data)
        else:
            lines = ranked_lines(*recommendations(args, model, data, tracks), data.catalogue.noun)
    except ValueError as e:
        print(printable(f"error: {e}"), file=sys.stderr)
        return 2
    for line in lines:
        print(printable(line))
    return 0


def check_args(args: argparse.Namespace) -> None:
    """Refuse flags that do not go together, and output paths that cannot be written, before any work."""
    from melody_map.outputs import check_output_path

    if (args.host is not None or args.port is not None) and not args.serve:
        raise ValueError("--host and --port go with --serve")
    if args.port is not None and not 1 <= args.port <= 65535:
        raise ValueError(f"--port must be 1..65535, got {args.port}")
    if args.serve and (args.playlist is not None or args.playlist_name is not None or args.output or args.explain
                       or args.include_known or args.evaluation or args.recency):
        raise ValueError("--serve goes with --checkpoint, --host and --port alone (each request says the rest)")
    if args.top_k < 1:
        raise ValueError(f"--top-k must be >= 1, got {args.top_k}")
    if args.output and not args.all_users:
        raise ValueError("--output goes with --all-users")
    if args.evaluation and not args.all_users:
        raise ValueError("--evaluation goes with --all-users")
    if args.include_known and (args.all_users or args.tracks or args.tracks_file or args.similar_to
                               or args.similar_artist or args.plot_user or args.export_onnx
                               or args.playlist is not None):
        raise ValueError("--include-known goes with --user or --user-id alone (--all-users --evaluation keeps "
                         "the test tracks rankable)")
    if args.explain and (args.playlist is not None or args.include_known or args.tracks or args.tracks_file
                         or args.similar_to or args.similar_artist or args.all_users):
        raise ValueError("--explain goes with --user or --user-id alone")
    if args.playlist_name is not None and (args.user is not None or args.user_id is not None or args.all_users
                                           or args.similar_to or args.similar_artist or args.plot_user
                                           or args.export_onnx or args.playlist is not None or args.explain
                                           or args.include_known):
        raise ValueError("--playlist-name goes alone or with --tracks/--tracks-file (a new playlist; "
                         "--user with --playlist continues one of a user's playlists)")
    if args.playlist_name is not None and not args.playlist_name.strip():
        raise ValueError("--playlist-name is empty; give the playlist's name, e.g. --playlist-name \"summer vibes\"")
    if args.playlist is not None and args.user is None and args.user_id is None:
        raise ValueError("--playlist needs the playlist's owner: --user INDEX or --user-id ID")
    if args.recency and not (args.tracks or args.tracks_file):
        raise ValueError("--recency weighs the tracks of --tracks/--tracks-file by their order; give those too")
    if not args.recency >= 0:
        raise ValueError(f"--recency must be 0 or more (the last track weighs 1 + R times the first), "
                         f"got {args.recency}")
    check_output_path(args.output or "", "--output")
    check_output_path(args.export_onnx or "", "--export-onnx")
    check_output_path(args.plot_user[1] if args.plot_user else "", "--plot-user")


def serve(args: argparse.Namespace) -> None:
    """Serve the checkpoint until Ctrl-C (``melody_map.server.serve``)."""
    try:
        from melody_map.server import serve
    except ImportError as e:
        raise ValueError(f"--serve needs the serving extra ({e.name} is not installed): "
                         f"pip install -r requirements-serve.txt") from None
    serve(args.checkpoint, host=args.host or "127.0.0.1", port=8000 if args.port is None else args.port)


def plot_user(args: argparse.Namespace, model, data) -> list[str]:
    from melody_map.api import get_recommendations, plural
    from melody_map.plot import plot_user

    who, png = args.plot_user
    try:
        user = data.user_index(who)
    except ValueError:
        if not who.isdigit():
            raise
        user = int(who)
        get_recommendations(model, data, user, 1)  # checks the range
    notes = plot_user(model, data, user, png, top_k=args.top_k)
    wrote = (f"wrote {png}: user {user} ({data.user_ids[user].as_py()}), their top "
             f"{plural(args.top_k, data.catalogue.noun)}")
    return [wrote, *notes]  # then what the picture leaves out, and names no installed font draws


def export_onnx(args: argparse.Namespace, model) -> list[str]:
    from melody_map.export import export_onnx

    graph = export_onnx(model, args.export_onnx)
    return [f"wrote {args.export_onnx}: users (B,) int64 -> scores (B, {graph.items_t.shape[1]:,}); "
            f"open it in Netron, or score with onnxruntime"]


def all_users(args: argparse.Namespace, model, data) -> list[str]:
    from melody_map.api import recommend_all, write_recommendations

    users, items, scores = recommend_all(model, data, args.top_k, evaluation=args.evaluation)
    rows = write_recommendations(args.output or "/dev/stdout", data, users, items, scores)
    left_out = ("the tracks the model fitted and validated on left out (--evaluation)" if args.evaluation
                else "known tracks left out")
    return [f"wrote {rows:,} recommendations for {len(users):,} users to {args.output}, {left_out}"] \
        if args.output else []


def recommendations(args: argparse.Namespace, model, data, tracks: list[str] | None):
    """The DataFrame of recommendations the flags ask for, and the line above it."""
    from melody_map import api
    from melody_map.api import plural

    noun, k = data.catalogue.noun, args.top_k
    if args.playlist_name is not None:
        recs = api.recommend_for_new_playlist(model, data, args.playlist_name, tracks or (), k, args.recency)
        given = f" and {plural(len(tracks), noun)}" if tracks else ""
        return recs, (f"top {plural(len(recs), noun)} for a new playlist named {args.playlist_name!r}{given} "
                      f"(from its name's words; not retrained):")
    if tracks is not None:
        recs = api.recommend_for_tracks(model, data, tracks, k, args.recency)
        return recs, (f"top {plural(len(recs), noun)} for a new listener of {plural(len(tracks), noun)} "
                      f"(folded in, not retrained):")
    if args.similar_to is not None:
        recs = api.similar_tracks(model, data, args.similar_to, k)
        return recs, f"{plural(len(recs), noun)} nearest to {args.similar_to!r}:"
    if args.similar_artist is not None:
        recs = api.similar_artists(model, data, args.similar_artist, k)
        return recs, f"{plural(len(recs), 'artist')} nearest to {args.similar_artist!r}:"
    if args.playlist is not None:
        recs = api.continue_playlist(model, data, args.playlist, k, user_idx=args.user, user_id=args.user_id)
        return recs, f"next {plural(len(recs), noun)} for the playlist {args.playlist!r}:"
    user_idx = 0 if args.user is None and args.user_id is None else args.user
    if args.explain:
        recs = api.explain(model, data, user_idx, k, user_id=args.user_id)
    else:
        recs = api.get_recommendations(model, data, user_idx, k, user_id=args.user_id,
                                       include_known=args.include_known)
    idx = data.user_index(args.user_id) if args.user_id is not None else user_idx
    known = f"{plural(len(data.known.of(idx)), noun)} known{' (included)' if args.include_known else ' (excluded)'}"
    names = data.catalogue.user_names  # MPD: a playlist is its own user, named
    who = data.user_ids[idx].as_py() + (f", {names[idx].as_py()!r}" if names is not None else "")
    return recs, f"top {plural(len(recs), noun)} for user {idx} ({who}), {known}:"


def ranked_lines(recs, header: str, noun: str) -> list[str]:
    """The header, then one line per recommendation (and its reasons, with --explain)."""
    lines = [header]
    for row, (rank, name, score) in enumerate(zip(recs["rank"], _names(recs, noun), recs["score"])):
        lines.append(f"{rank:>3}. {name}  ({score:.4f})")
        if "reasons" in recs:
            why = [f"{track} (+{part:.3f}{', same artist' if same else ''})"
                   for track, part, same in recs["reasons"].iloc[row]]
            lines.append(f"       because you have: {'; '.join(why) if why else 'no track of yours adds to it'}")
    return lines


def _names(recs, noun: str) -> list[str]:
    """Each row's name: "artist — title" aligned, an artist, or an item."""
    if noun not in recs:
        return recs["artist"].tolist()
    names = recs[noun].tolist()
    if "artist" in recs:
        width = max((len(a) for a in recs["artist"]), default=0)
        names = [f"{a:<{width}} — {t}" for a, t in zip(recs["artist"], names)]
    return names


def _read_lines(path: str) -> list[str]:
    """The non-blank lines of a --tracks-file."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = [line.strip() for line in f if line.strip()]
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"cannot read --tracks-file {path}: {e.strerror if isinstance(e, OSError) else e}; "
                         f"give a UTF-8 text file with one \"Artist - Title\" per line") from None
    if not lines:
        raise ValueError(f"--tracks-file {path} holds no tracks; give one \"Artist - Title\" per line")
    return lines


if __name__ == "__main__":
    try:
        code = main()
    except BrokenPipeError:  # the reader went away (e.g. | head): nothing more to say
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (the flush below must not fail again)
        code = 0
    # Every file is closed by now: once the output is flushed, skip the interpreter's teardown of
    # torch, pandas and the model, which a one-off command would otherwise wait for.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
