"""Synthetic Spotify Playlists dataset, written byte for byte in the real file's format.

The real `spotify_dataset.csv` (12.9M rows, 1.2 GB) cannot ship, so the repo ships a
sample written by this generator, and benchmarks use full-scale files from it.

    python -m synthetic --preset sample --out spotify_dataset.csv
    python -m synthetic --preset full --scale 0.1 --out /tmp/spotify_10pct.csv

Modules: `generate` (presets, the generative story, the planted lines, writing the file),
`names` (artist, track and playlist names, user ids), `__main__` (the command line).
"""

from .generate import (
    HEADER,
    PLANTED_KINDS,
    PRESETS,
    SEP,
    Preset,
    SyntheticData,
    SyntheticStats,
    generate,
    get_preset,
    write_dataset,
)
from .names import STARRED, check_name

__all__ = [
    "HEADER", "PLANTED_KINDS", "PRESETS", "SEP", "STARRED", "Preset", "SyntheticData", "SyntheticStats",
    "check_name", "generate", "get_preset", "write_dataset",
]
