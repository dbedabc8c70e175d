"""Melody Map: a graph-neural-network track recommender for the Spotify Playlists dataset."""

__version__ = "0.1.0"
