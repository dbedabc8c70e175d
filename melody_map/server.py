"""The HTTP server: the Python API (``melody_map.api``) as JSON endpoints, and a web page, over one
loaded checkpoint (``served.load_served``). Needs the serving extra: pip install -r requirements-serve.txt.

    from melody_map.server import create_app, serve
    serve("gnn_model.pth", host="127.0.0.1", port=8000)   # or: python recommend.py --serve

Every endpoint calls the same API a notebook does, with the dataset's ids and names; a
``ValueError`` from it (unknown user, unknown track with its closest matches) is a 400 JSON
``{"error": "..."}``, bad parameters a 422, never a 500 with a traceback. Endpoints are plain
functions, which FastAPI runs in its threadpool, off the event loop. POST /admin/reload (from
this machine only) or SIGHUP re-reads the checkpoint the server was started with and swaps it in
whole; requests already running finish on the old one, and a file that does not load is refused.
"""

from __future__ import annotations

import io
import ipaddress
import logging
import os
import signal
import threading
from importlib import resources
from typing import Any, Callable, Literal

import fastapi_offline
import numpy as np
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException

from . import api
from .plot import plot_user
from .schemas import (BatchIn, ContinueIn, ExplainIn, NewListenerIn, NewPlaylistIn, RecommendIn,
                      SimilarArtistsIn, SimilarTracksIn)
from .served import Served, load_served

MAX_BODY = 64 * 1024  # bytes a request body may hold
PAGE_FILES = {"app.js": "text/javascript", "style.css": "text/css"}  # served under /static/, from the package
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
# /docs is FastAPI's Swagger UI, its files served from fastapi-offline's copy: it starts from an
# inline script and sets inline styles (the page itself needs neither).
DOCS_CSP = ("default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'")
DOCS_FILES = {"swagger-ui-bundle.js": "text/javascript", "swagger-ui.css": "text/css"}  # under /static/docs/
log = logging.getLogger("melody_map.server")


class ServerState:
    """The checkpoint being served, swapped whole by ``reload``; a request reads ``current`` once."""

    def __init__(self, path: str, depth: int, say: Callable[[str], None]):
        self.path, self.depth, self.say = path, depth, say
        self.current: Served = load_served(path, depth, say, warm=False)
        self.reloads = 0
        self._reloading = threading.Lock()
        # The first checkpoint serves at once; its users' lists fill behind it (a user asked for
        # first is scored then). A reload fills them before it swaps, while the old one serves.
        served = self.current
        threading.Thread(target=served.ranker.warm, args=(say,), kwargs={"keep_going": lambda: self.current is served},
                         daemon=True, name="cache").start()

    def reload(self) -> dict[str, Any]:
        """Load the start path again and swap it in; returns the new identity.

        Raises:
            ValueError: the file does not load (the old checkpoint keeps serving), or a reload is running.
        """
        if not self._reloading.acquire(blocking=False):
            raise ValueError("a reload is already running; try again when it ends")
        try:
            fresh = load_served(self.path, self.depth, self.say)
            self.current, self.reloads = fresh, self.reloads + 1
            self.say(f"reloaded {self.path} (sha256 {fresh.identity['sha256'][:12]})")
            return fresh.identity
        finally:
            self._reloading.release()


class Guard:
    """ASGI middleware: refuses request bodies over ``max_body`` bytes (413) before the app reads
    them, and adds the security headers (the strict CSP) to every response."""

    def __init__(self, app, max_body: int = MAX_BODY):
        self.app, self.max_body = app, max_body

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        docs = scope["path"] == "/docs"

        async def send_guarded(message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["Content-Security-Policy"] = DOCS_CSP if docs else CSP
                headers["X-Content-Type-Options"] = "nosniff"
                headers["Referrer-Policy"] = "no-referrer"
                headers["X-Frame-Options"] = "DENY"
            await send(message)

        body, more = b"", True
        declared = dict(scope["headers"]).get(b"content-length", b"0")
        if not declared.isdigit() or int(declared) > self.max_body:
            return await _too_large(send_guarded, self.max_body)
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_body:
                return await _too_large(send_guarded, self.max_body)
        await self.app(scope, _replay(body, receive), send_guarded)


def _replay(body: bytes, receive):
    """A ``receive`` that gives the body already read, then defers to the real one (disconnects)."""
    given = False

    async def replay():
        nonlocal given
        if given:
            return await receive()
        given = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


async def _too_large(send, limit: int) -> None:
    await JSONResponse({"error": f"request body too large: at most {limit:,} bytes"}, 413)(
        {"type": "http"}, None, send)


def create_app(checkpoint_path: str | os.PathLike = "gnn_model.pth", *, depth: int = 100, max_body: int = MAX_BODY,
               say: Callable[[str], None] = print) -> FastAPI:
    """The app serving one checkpoint, loaded now (once): the JSON API, /health, /docs and the page.

    Args:
        checkpoint_path: the checkpoint; /admin/reload and SIGHUP read this path again, never another.
        depth: items cached per user (``served.CachedRanker``; 0: every list scored per request).
        max_body: bytes a request body may hold (413 above).
        say: called with progress lines (loading, caching, reloads).

    Raises:
        ValueError: the checkpoint does not load.
    """
    state = ServerState(os.fspath(checkpoint_path), depth, say)
    app = FastAPI(title="Melody Map", version=_version(), docs_url=None, redoc_url=None,
                  description="Track recommendations from a Melody Map checkpoint: the Python API as JSON.")
    app.state.melody = state
    app.add_middleware(Guard, max_body=max_body)
    _add_error_handlers(app)
    _add_page(app)
    _add_docs(app)
    _add_user_routes(app, state)
    _add_listener_routes(app, state)
    _add_lookup_routes(app, state)
    _add_admin_routes(app, state)
    return app


def _version() -> str:
    from . import __version__

    return __version__


def _add_error_handlers(app: FastAPI) -> None:
    """ValueError -> 400, bad parameters -> 422, HTTP errors as they are, anything else -> 500; all one-line JSON."""
    @app.exception_handler(ValueError)
    async def bad_value(request: Request, exc: ValueError) -> JSONResponse:
        return JSONResponse({"error": _one_line(str(exc))}, 400)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = ["/".join(str(p) for p in e.get("loc", ()) if p != "body") + ": " + e.get("msg", "invalid")
                    for e in exc.errors()]
        return JSONResponse({"error": _one_line("; ".join(problems))}, 422)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"error": _one_line(str(exc.detail))}, exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def crash(request: Request, exc: Exception) -> JSONResponse:
        log.exception("error serving %s", request.url.path)
        return JSONResponse({"error": f"internal error ({type(exc).__name__}); the server log has the detail"}, 500)


def _one_line(text: str, limit: int = 2000) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _add_page(app: FastAPI) -> None:
    """The web page: index.html at /, and its fixed files under /static/, read from the package once."""
    web = resources.files("melody_map") / "web"
    index = (web / "index.html").read_bytes()
    files = {name: ((web / name).read_bytes(), kind) for name, kind in PAGE_FILES.items()}

    @app.get("/", include_in_schema=False)
    def page() -> Response:
        return Response(index, media_type="text/html; charset=utf-8", headers={"Cache-Control": "no-cache"})

    for name, (content, kind) in files.items():  # one route per file: no path from the request is read
        app.add_api_route(f"/static/{name}", _static(content, kind), methods=["GET"], include_in_schema=False)


def _add_docs(app: FastAPI) -> None:
    """/docs: FastAPI's Swagger UI from the files fastapi-offline ships, read once and served as fixed
    routes, so the docs need no outside network either."""
    from fastapi.openapi.docs import get_swagger_ui_html

    assets = resources.files(fastapi_offline) / "static"
    for name, kind in DOCS_FILES.items():
        app.add_api_route(f"/static/docs/{name}", _static((assets / name).read_bytes(), kind), methods=["GET"],
                          include_in_schema=False)

    @app.get("/docs", include_in_schema=False)
    def docs() -> Response:
        return get_swagger_ui_html(openapi_url=app.openapi_url, title="Melody Map - API",
                                   swagger_js_url="/static/docs/swagger-ui-bundle.js",
                                   swagger_css_url="/static/docs/swagger-ui.css", swagger_favicon_url="data:,")


def _static(content: bytes, kind: str) -> Callable[[], Response]:
    def static() -> Response:
        return Response(content, media_type=f"{kind}; charset=utf-8", headers={"Cache-Control": "no-cache"})
    return static


def rows(served: Served, frame) -> list[dict[str, Any]]:
    """A recommendations DataFrame as JSON rows: plain numbers, a ``name`` ("Artist - Title") per item,
    reasons as objects, and non-finite numbers as null."""
    noun = served.data.catalogue.noun
    records = frame.to_dict("records")
    if f"{noun}_index" in frame:
        for record, name in zip(records, api.item_labels(served.data, frame[f"{noun}_index"].to_numpy())):
            record["name"] = str(name)
    for record in records:
        for key, value in record.items():
            if isinstance(value, np.generic):
                value = record[key] = value.item()
            if isinstance(value, float) and not np.isfinite(value):
                record[key] = None
        if "reasons" in record:
            record["reasons"] = [{"track": t, "part": float(p), "same_artist": bool(same)}
                                 for t, p, same in record["reasons"]]
    return records


def _user(served: Served, user: int) -> dict[str, Any]:
    """A user's id, index and, where the data has them, name and playlists."""
    cat = served.data.catalogue
    out: dict[str, Any] = {"user_id": served.data.user_ids[user].as_py(), "user_index": user,
                           f"known_{cat.noun}s": int(len(served.data.known.of(user)))}
    if cat.user_names is not None:
        out["name"] = cat.user_names[user].as_py()
    if cat.playlist_names is not None:
        own = np.flatnonzero(cat.playlist_user == user)
        out["playlists"] = cat.playlist_names.take(own).to_pylist()
    return out


def _recommended(s: Served, user: int, body: RecommendIn) -> dict[str, Any]:
    only = api.item_indices(s.data, body.only) if body.only is not None else None
    return {"user": _user(s, user), "items": rows(s, s.ranker.recommend(user, body.k, body.include_known, only))}


def _add_user_routes(app: FastAPI, state: ServerState) -> None:
    """The endpoints for the users the model knows, one per API function."""
    @app.post("/api/recommend", summary="A user's top tracks (get_recommendations)")
    async def recommend(body: RecommendIn) -> dict[str, Any]:
        s = state.current
        user = s.user_index(body.user_id, body.user_index)
        if body.only is None and s.ranker.cached(user, body.k, body.include_known):
            return _recommended(s, user, body)  # a cut of the cache: quicker here than through a thread
        return await run_in_threadpool(_recommended, s, user, body)

    @app.post("/api/recommend/batch", summary="Several users' top tracks (get_recommendations with a list)")
    def recommend_batch(body: BatchIn) -> dict[str, Any]:
        s = state.current
        if (body.user_ids is None) == (body.user_indices is None):
            raise ValueError("give exactly one of user_ids or user_indices")
        users = ([s.user_index(u, None) for u in body.user_ids] if body.user_ids is not None
                 else [s.user_index(None, u) for u in body.user_indices])
        return {"users": [{"user": _user(s, u), "items": rows(s, s.ranker.recommend(u, body.k, body.include_known))}
                          for u in users]}

    @app.post("/api/explain", summary="A user's top tracks with the user's own tracks behind each (explain)")
    def explain(body: ExplainIn) -> dict[str, Any]:
        s = state.current
        user = s.user_index(body.user_id, body.user_index)
        return {"user": _user(s, user), "items": rows(s, s.call(api.explain, user, body.k, reasons=body.reasons))}

    @app.post("/api/continue", summary="The next tracks for one of a user's playlists (continue_playlist)")
    def continue_playlist(body: ContinueIn) -> dict[str, Any]:
        s = state.current
        user = s.user_index(body.user_id, body.user_index)
        return {"user": _user(s, user), "playlist": body.playlist,
                "items": rows(s, s.call(api.continue_playlist, body.playlist, body.k, user_idx=user))}


def _add_listener_routes(app: FastAPI, state: ServerState) -> None:
    """The endpoints for new listeners, new playlists and similar names, one per API function."""
    @app.post("/api/new-listener", summary="A new listener's top tracks from a few tracks (recommend_for_tracks)")
    def new_listener(body: NewListenerIn) -> dict[str, Any]:
        s = state.current
        return {"items": rows(s, s.call(api.recommend_for_tracks, body.tracks, body.k, body.recency))}

    @app.post("/api/new-playlist", summary="A new playlist's tracks from its name (recommend_for_new_playlist)")
    def new_playlist(body: NewPlaylistIn) -> dict[str, Any]:
        s = state.current
        return {"items": rows(s, s.call(api.recommend_for_new_playlist, body.name, body.tracks, body.k, body.recency))}

    @app.post("/api/similar-tracks", summary="The tracks nearest to one track (similar_tracks)")
    def similar_tracks(body: SimilarTracksIn) -> dict[str, Any]:
        s = state.current
        return {"items": rows(s, s.call(api.similar_tracks, body.track, body.k))}

    @app.post("/api/similar-artists", summary="The artists nearest to one artist (similar_artists)")
    def similar_artists(body: SimilarArtistsIn) -> dict[str, Any]:
        s = state.current
        return {"items": rows(s, s.call(api.similar_artists, body.artist, body.k))}


def _add_lookup_routes(app: FastAPI, state: ServerState) -> None:
    """/health, search for autocompletion, a user's details and their neighbourhood picture."""
    @app.get("/health", summary="The served checkpoint's identity: file, sha256, model, data, counts")
    async def health() -> dict[str, Any]:
        s = state.current
        return {"status": "ok", **s.identity, "reloads": state.reloads, "cached_users": int(s.ranker.ready.sum())}

    @app.get("/api/search", summary="Users (by id), tracks or artists whose names hold q, for autocompletion")
    def search(q: str = Query(min_length=1, max_length=200), kind: Literal["users", "tracks", "artists"] = "tracks",
               limit: int = Query(10, ge=1, le=50)) -> dict[str, Any]:
        s = state.current
        if kind not in s.search:
            raise ValueError(f"this checkpoint has no {kind} to search (a plain interaction table)")
        return {"kind": kind, "results": [{"index": i, "name": n} for i, n in s.search[kind].find(q, limit)]}

    @app.get("/api/user", summary="A user's id, index, name and playlists")
    def user(user_id: str | None = None, user_index: int | None = None) -> dict[str, Any]:
        s = state.current
        return _user(s, s.user_index(user_id, user_index))

    @app.get("/api/plot", summary="A PNG of a user's neighbourhood (recommend.py --plot-user)",
             response_class=Response, responses={200: {"content": {"image/png": {}}}})
    def plot(user_id: str | None = None, user_index: int | None = None, k: int = Query(5, ge=1, le=20)) -> Response:
        s = state.current
        buffer = io.BytesIO()
        with _PLOT_LOCK:  # matplotlib's figures are not safe across threads
            s.call(plot_user, s.user_index(user_id, user_index), buffer, top_k=k)
        return Response(buffer.getvalue(), media_type="image/png")


_PLOT_LOCK = threading.Lock()


def _add_admin_routes(app: FastAPI, state: ServerState) -> None:
    @app.post("/admin/reload", summary="Serve the checkpoint file again (a newer one), from this machine only")
    def reload(request: Request) -> JSONResponse:
        if not _loopback(request.client.host if request.client else "") or not _local_page(request):
            return JSONResponse({"error": "reload is allowed from this machine only (127.0.0.1), "
                                          "not from a web page of another site"}, 403)
        try:
            return JSONResponse({"status": "reloaded", **state.reload()})
        except ValueError as e:
            old = state.current.identity["sha256"]
            return JSONResponse({"error": _one_line(f"refused: {e}; still serving sha256 {old}")}, 409)


def _local_page(request: Request) -> bool:
    """Whether the request names this machine as its host, and comes from no page of another origin:
    a browser on this machine visiting another site may send it a POST (or reach it under another
    name, by DNS rebinding), which a loopback client address alone would let through."""
    host = (request.url.hostname or "").strip("[]")
    origin = request.headers.get("origin")
    same = origin is None or origin == f"{request.url.scheme}://{request.headers.get('host', '')}"
    return same and (host == "localhost" or _loopback(host))


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(checkpoint_path: str | os.PathLike = "gnn_model.pth", host: str = "127.0.0.1", port: int = 8000,
          depth: int = 100) -> None:
    """Load a checkpoint and serve it until Ctrl-C: the page at /, the API docs at /docs.

    Args:
        checkpoint_path: the checkpoint; SIGHUP or POST /admin/reload serve this file again.
        host: the address to bind (127.0.0.1: this machine only; 0.0.0.0: every interface).
        port: the TCP port.
        depth: items cached per user.
    """
    import torch
    import uvicorn

    from .outputs import choose_threads

    threads, why = choose_threads(0)
    torch.set_num_threads(threads)  # model calls run one at a time (Served.thread), each on every CPU
    print(f"threads: {threads} ({why})", flush=True)
    app = create_app(checkpoint_path, depth=depth)
    state: ServerState = app.state.melody

    def on_hangup(signum, frame) -> None:
        def reload() -> None:
            try:
                state.reload()
            except ValueError as e:
                print(f"reload refused: {_one_line(str(e))}", flush=True)
        threading.Thread(target=reload, daemon=True).start()

    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, on_hangup)
    print(f"serving {checkpoint_path} at http://{host}:{port}/ (API docs: /docs; reload: SIGHUP to pid "
          f"{os.getpid()} or POST /admin/reload)", flush=True)
    uvicorn.run(app, host=host, port=port, access_log=False, log_level="warning")
