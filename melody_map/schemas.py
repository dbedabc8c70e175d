"""The HTTP API's request bodies (``server.py``): what each endpoint takes, with its limits.

Unknown fields are refused, numbers are bounded and names and lists have a most length, so a
bad request is a 422 before any model work.
"""

from __future__ import annotations

from typing import Annotated, Optional

from pydantic import BaseModel, ConfigDict, Field

MAX_K = 500  # items a list may ask for
MAX_NAME = 500  # characters of a name (a track, an artist, a playlist, a user id)
MAX_TRACKS = 500  # tracks a new listener or a filter may give
MAX_USERS = 1000  # users a batch may ask for

Name = Annotated[str, Field(min_length=1, max_length=MAX_NAME)]
K = Annotated[int, Field(ge=1, le=MAX_K, description="how many items")]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class UserIn(Body):
    """One user: the dataset's id or an index (exactly one)."""

    user_id: Optional[Name] = Field(None, description="the dataset's user id")
    user_index: Optional[int] = Field(None, ge=0, description="or the user's index, 0 .. users - 1")


class RecommendIn(UserIn):
    k: K = 10
    include_known: bool = Field(False, description="also rank the tracks the user has")
    only: Optional[list[Name]] = Field(None, max_length=MAX_TRACKS,
                                       description="rank these tracks alone (\"Artist - Title\"), a filter")


class BatchIn(Body):
    user_ids: Optional[list[Name]] = Field(None, min_length=1, max_length=MAX_USERS)
    user_indices: Optional[list[Annotated[int, Field(ge=0)]]] = Field(None, min_length=1, max_length=MAX_USERS)
    k: K = 10
    include_known: bool = False


class ExplainIn(UserIn):
    k: K = 10
    reasons: int = Field(3, ge=1, le=10, description="the user's own tracks named per recommendation, at most")


class ContinueIn(UserIn):
    playlist: Name = Field(description="the playlist's name, as in the data (case-insensitive)")
    k: K = 10


class NewListenerIn(Body):
    tracks: list[Name] = Field(min_length=1, max_length=MAX_TRACKS, description='"Artist - Title" names, in order')
    k: K = 10
    recency: float = Field(0.0, ge=0, le=100,
                           description="later tracks weigh more: the last 1 + recency times the first")


class NewPlaylistIn(Body):
    name: Name = Field(description='the playlist\'s name, e.g. "summer vibes"')
    tracks: list[Name] = Field([], max_length=MAX_TRACKS)
    k: K = 10
    recency: float = Field(0.0, ge=0, le=100)


class SimilarTracksIn(Body):
    track: Name
    k: K = 10


class SimilarArtistsIn(Body):
    artist: Name
    k: K = 10
