"""The artist maps of docs/: artists in two dimensions, coloured by a group the model never saw.

    python bench/pictures.py            # docs/artist_map_sample.png and docs/artist_map_hetrec.png

sample  the shipped synthetic file, each artist coloured by the genre the generator gave it
hetrec  HetRec 2011 Last.fm (read from ../shared/data), each artist coloured by the tag its
        listeners gave it most often (user_taggedartists.dat); skipped where the data is absent
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

HETREC = ROOT / "../shared/data/hetrec2011-lastfm-2k"


def top_tags() -> dict[str, str]:
    """Artist name -> the tag its listeners gave it most often (HetRec)."""
    import pandas as pd

    read = lambda name: pd.read_csv(HETREC / name, sep="\t", encoding="utf-8", encoding_errors="replace")  # noqa: E731
    tagged = pd.concat([read(f"user_taggedartists.part{i}.dat") for i in (1, 2)])
    tags = read("tags.dat").set_index("tagID")["tagValue"].str.strip()
    artists = read("artists.dat").set_index("id")["name"].str.strip()
    counts = tagged.groupby(["artistID", "tagID"]).size().rename("n").reset_index()
    best = counts.sort_values(["artistID", "n"], ascending=[True, False]).drop_duplicates("artistID")
    best = best[best["artistID"].isin(artists.index)]
    return dict(zip(artists.loc[best["artistID"]].to_numpy(), tags.reindex(best["tagID"]).fillna("").to_numpy()))


def main() -> int:
    from melody_map.api import load_model
    from melody_map.config import TrainConfig
    from melody_map.pipeline import run
    from melody_map.plot import plot_artist_map
    from synthetic import generate, get_preset

    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / "m.pth"
        run(TrainConfig(data=str(ROOT / "spotify_dataset.csv"), output=str(ckpt), plot=""), progress=False)
        truth = generate(get_preset("sample"), 0)
        genre = {a: truth.genre_names[g] for a, g in zip(truth.artist_names, truth.artist_genre)}
        notes = plot_artist_map(*load_model(ckpt), str(ROOT / "docs" / "artist_map_sample.png"), genre,
                                group_name="generator's genre")
        print("wrote docs/artist_map_sample.png", *notes, sep="\n")
        if not HETREC.exists():
            print(f"hetrec: skipped, {HETREC} is absent")
            return 0
        run(TrainConfig(data=str(HETREC / "user_artists.dat"), item_names=str(HETREC / "artists.dat"),
                        test_frac=0.2, output=str(ckpt), plot=""), progress=False)
        notes = plot_artist_map(*load_model(ckpt), str(ROOT / "docs" / "artist_map_hetrec.png"), top_tags(),
                                most=2000, group_name="listeners' top tag")
        print("wrote docs/artist_map_hetrec.png", *notes, sep="\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
