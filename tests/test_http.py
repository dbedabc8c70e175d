"""The HTTP API (melody_map.server) through FastAPI's TestClient: every endpoint against the Python
API it mirrors, on planted taste communities; bad input as 4xx JSON; hostile names as data; the
body limit and the CSP; reloading a newer checkpoint, and refusing a corrupt one."""

from __future__ import annotations

import hashlib
import json
import importlib.util
import os
import re
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
from conftest import HOSTILE_TRACK, ROOT, serving_rows, train_checkpoint, write_original

pytestmark = pytest.mark.skipif(
    any(importlib.util.find_spec(name) is None for name in ("fastapi", "fastapi_offline", "httpx")),
    reason="needs the serving extra: pip install -r requirements-serve.txt")

LOCAL = ("127.0.0.1", 50000)  # the test client's address: this machine, as /admin/reload requires
BASE = "http://127.0.0.1:8000"  # and the host it names


@pytest.fixture(scope="module")
def gcn_checkpoint(tmp_path_factory) -> str:
    """A --model gcn checkpoint of the same data: another model (and it reads playlist names)."""
    folder = tmp_path_factory.mktemp("gcn")
    return train_checkpoint(write_original(folder / "s.csv", serving_rows()), folder / "gcn.pth", model="gcn",
                            epochs=2)


@pytest.fixture(scope="module")
def app(serving_checkpoint):
    from melody_map.server import create_app

    return create_app(serving_checkpoint, depth=20, say=lambda line: None)


@pytest.fixture(scope="module")
def client(app):
    from fastapi.testclient import TestClient

    return TestClient(app, client=LOCAL, base_url=BASE)


def users_of(client, prefix: str) -> list[str]:
    """The ids of the users whose ids start with ``prefix`` (search, which puts prefix matches first)."""
    found = client.get("/api/search", params={"kind": "users", "q": prefix, "limit": 50}).json()["results"]
    return [r["name"] for r in found if r["name"].startswith(prefix)]


def test_health_names_the_checkpoint(client, serving_checkpoint):
    health = client.get("/health").json()
    assert health["status"] == "ok"
    assert health["sha256"] == hashlib.sha256(Path(serving_checkpoint).read_bytes()).hexdigest()
    assert health["checkpoint"] == "serving.pth" and health["data"] == "serving.csv"
    assert health["model"] == "GCN+ChebyCF"
    assert health["counts"]["users"] == 90 and health["counts"]["tracks"] == 81


def test_recommendations_stay_in_the_users_community(client):
    for community in ("00", "01"):
        for user in users_of(client, community)[:5]:
            items = client.post("/api/recommend", json={"user_id": user, "k": 5}).json()["items"]
            assert len(items) == 5
            own = [i for i in items if i["artist"].startswith(f"Artist {int(community)}-")]
            assert len(own) >= 4, (user, [i["name"] for i in items])  # the hostile track is community 0's too


def test_cached_lists_match_the_api(app, client):
    """k within the cache (20), beyond it, and with known tracks kept: the API's own lists."""
    from melody_map.api import get_recommendations

    served = app.state.melody.current
    for user in range(0, 90, 11):
        for k, include_known in ((5, False), (20, False), (35, False), (5, True)):
            got = client.post("/api/recommend", json={"user_index": user, "k": k, "include_known": include_known})
            want = get_recommendations(served.model, served.data, user, k, include_known=include_known)
            items = got.json()["items"]
            assert [i["track_index"] for i in items] == want["track_index"].tolist(), (user, k, include_known)
            assert np.allclose([i["score"] for i in items], want["score"], rtol=1e-5)


def test_lists_fill_on_demand_and_warming_stops_when_replaced(serving_checkpoint):
    """The server answers before its cache is full: a user asked for first is scored then, and the
    background warming stops when a reload has replaced its checkpoint."""
    from melody_map.served import load_served

    served = load_served(serving_checkpoint, depth=10, warm=False)
    served.ranker.warm(keep_going=lambda: False)
    assert not served.ranker.ready.any()
    first = served.ranker.recommend(5, 3)
    assert served.ranker.ready.sum() == 1 and served.ranker.ready[5]
    lines: list[str] = []
    served.ranker.warm(lines.append)
    assert served.ranker.ready.all() and lines[-1].startswith("cached 90 of 90 users' top 10")
    assert served.ranker.recommend(5, 3).equals(first)


def test_every_model_call_runs_on_the_models_one_thread(serving_checkpoint, monkeypatch):
    """Calls into the model from many request threads run on one thread of their own, one at a
    time (a model reuses buffers, and glibc keeps each thread's freed memory in its own heap)."""
    from concurrent.futures import ThreadPoolExecutor

    from melody_map.served import load_served

    served = load_served(serving_checkpoint, depth=10, warm=False)
    seen, running, overlap = set(), [0], []
    scores = served.model.scores

    def watched(users):
        seen.add(threading.get_ident())
        running[0] += 1
        overlap.append(running[0])
        try:
            return scores(users)
        finally:
            running[0] -= 1
    monkeypatch.setattr(served.model, "scores", watched)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda u: served.ranker.recommend(u, 3, only=np.arange(10)), range(40)))
    assert len(seen) == 1 and seen != {threading.get_ident()} and max(overlap) == 1


def test_batch_agrees_with_single_users(client):
    users = users_of(client, "01")[:3]
    batch = client.post("/api/recommend/batch", json={"user_ids": users, "k": 4}).json()["users"]
    assert [b["user"]["user_id"] for b in batch] == users
    for entry, user in zip(batch, users):
        single = client.post("/api/recommend", json={"user_id": user, "k": 4}).json()["items"]
        assert entry["items"] == single


def test_item_filter_ranks_only_the_given_tracks(client):
    user = users_of(client, "01")[0]
    pool = [i["name"] for i in client.post("/api/recommend", json={"user_id": user, "k": 12}).json()["items"]]
    only = pool[5:9]
    got = client.post("/api/recommend", json={"user_id": user, "k": 10, "only": only}).json()["items"]
    assert [i["name"] for i in got] == only  # the same order the full list gave them


def test_explain_names_the_users_own_tracks(client):
    user = users_of(client, "00")[0]
    info = client.get("/api/user", params={"user_id": user}).json()
    assert info["known_tracks"] in (16, 17) and set(info["playlists"]) == {"Mix 0", "Starred"}
    items = client.post("/api/explain", json={"user_id": user, "k": 3, "reasons": 2}).json()["items"]
    assert len(items) == 3
    for item in items:
        assert 1 <= len(item["reasons"]) <= 2
        assert all(r["track"].startswith("Artist 0-") and r["part"] > 0 for r in item["reasons"])


def test_new_listener_continue_and_similar(client):
    community_1 = [i["name"] for i in client.post("/api/recommend", json={
        "user_id": users_of(client, "01")[0], "k": 3, "include_known": True}).json()["items"]]
    new = client.post("/api/new-listener", json={"tracks": community_1, "k": 5}).json()["items"]
    assert len(new) == 5 and all(i["artist"].startswith("Artist 1-") for i in new)
    assert not set(community_1) & {i["name"] for i in new}
    user = users_of(client, "00")[0]
    cont = client.post("/api/continue", json={"user_id": user, "playlist": "mix 0", "k": 4}).json()
    assert len(cont["items"]) == 4 and all(i["artist"].startswith(("Artist 0-", "<script>")) for i in cont["items"])
    similar = client.post("/api/similar-tracks", json={"track": community_1[0], "k": 3}).json()["items"]
    assert len(similar) == 3 and community_1[0] not in {i["name"] for i in similar}
    artists = client.post("/api/similar-artists", json={"artist": "Artist 1-0", "k": 3}).json()["items"]
    assert len(artists) == 3 and all(a["artist"].startswith("Artist 1-") for a in artists)


def test_new_playlist_from_a_name(gcn_checkpoint):
    from fastapi.testclient import TestClient

    from melody_map.server import create_app

    client = TestClient(create_app(gcn_checkpoint, say=lambda line: None))
    items = client.post("/api/new-playlist", json={"name": "my mix", "k": 5}).json()["items"]
    assert len(items) == 5
    unknown = client.post("/api/new-playlist", json={"name": "zzzz qqqq", "k": 5})
    assert unknown.status_code == 400 and "no word of 'zzzz qqqq'" in unknown.json()["error"]


def test_search_autocompletes_prefix_first(client):
    found = client.get("/api/search", params={"q": "artist 1-3 - song", "limit": 10}).json()["results"]
    assert len(found) == 4 and all(r["name"].startswith("Artist 1-3 - Song") for r in found)  # t % 10 == 3
    assert len(client.get("/api/search", params={"q": "song", "limit": 5}).json()["results"]) == 5
    artists = client.get("/api/search", params={"kind": "artists", "q": "ARTIST 0-1"}).json()["results"]
    assert artists[0]["name"] == "Artist 0-1"
    assert client.get("/api/search", params={"q": "no such thing"}).json()["results"] == []


def test_plot_is_a_png(client):
    response = client.get("/api/plot", params={"user_index": 0, "k": 3})
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    assert response.content.startswith(b"\x89PNG\r\n\x1a\n")


@pytest.mark.parametrize("method, path, payload, status, says", [
    ("post", "/api/recommend", {"user_id": "nobody", "k": 5}, 400, "unknown user id 'nobody'"),
    ("post", "/api/recommend", {"user_index": 90}, 400, "out of range"),
    ("post", "/api/recommend", {"user_index": 0, "user_id": "x"}, 400, "exactly one"),
    ("post", "/api/recommend", {"user_index": 0, "k": 0}, 422, "k: "),
    ("post", "/api/recommend", {"user_index": 0, "k": 10 ** 9}, 422, "k: "),
    ("post", "/api/recommend", {"user_index": 0, "k": "many"}, 422, "k: "),
    ("post", "/api/recommend", {"user_index": -1}, 422, "user_index"),
    ("post", "/api/recommend", {"user_index": 0, "colour": "red"}, 422, "colour"),
    ("post", "/api/recommend", {"user_index": 0, "only": ["Artist 0-0 - Sogn 1"]}, 400, "did you mean"),
    ("post", "/api/new-listener", {"tracks": ["Artist 0-1 - Song 99"]}, 400, "unknown track"),
    ("post", "/api/new-listener", {"tracks": []}, 422, "tracks"),
    ("post", "/api/new-listener", {"tracks": ["Artist 0-1 - Song 1"], "recency": -1}, 422, "recency"),
    ("post", "/api/continue", {"user_index": 0, "playlist": "Nope"}, 400, "has no playlist 'Nope'"),
    ("post", "/api/similar-artists", {"artist": "Artist 9-9"}, 400, "unknown artist"),
    ("post", "/api/recommend/batch", {"user_ids": ["x"], "user_indices": [0]}, 400, "exactly one"),
    ("post", "/api/new-playlist", {"name": "mix"}, 400, "no name words"),
    ("get", "/api/search?q=", None, 422, "q: "),
    ("get", "/api/search?q=a&kind=albums", None, 422, "kind"),
    ("get", "/api/user?user_index=abc", None, 422, "user_index"),
    ("get", "/api/plot?user_index=0&k=99", None, 422, "k: "),
    ("get", "/no/such/page", None, 404, "Not Found"),
    ("get", "/api/recommend", None, 405, "Method Not Allowed"),
])
def test_bad_requests_are_one_line_json_errors(client, method, path, payload, status, says):
    response = getattr(client, method)(path, **({} if payload is None else {"json": payload}))
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert says in error and "\n" not in error and "Traceback" not in response.text


def test_malformed_json_is_a_422(client):
    response = client.post("/api/recommend", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 422 and "error" in response.json()


def test_bodies_over_the_limit_are_refused(client):
    big = {"tracks": ["Artist 0-1 - Song 1" * 20] * 400}  # about 150 KB
    assert client.post("/api/new-listener", json=big).status_code == 413

    def chunks():  # no Content-Length: counted as it arrives
        for _ in range(100):
            yield b" " * 1024
    response = client.post("/api/new-listener", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413 and "at most 65,536 bytes" in response.json()["error"]


def test_hostile_names_are_data(client):
    """The markup names come back as JSON strings, and the page sets every name as text under a CSP
    without inline scripts."""
    have = {r[0] for r in serving_rows() if r[2] == HOSTILE_TRACK}
    victims = [u for u in users_of(client, "00") if u not in have]
    items = [i for u in victims for i in client.post("/api/recommend", json={"user_id": u, "k": 3}).json()["items"]]
    assert any(i["track"] == HOSTILE_TRACK for i in items)
    found = client.get("/api/search", params={"q": "onerror"}).json()["results"]
    assert found[0]["name"] == f"<script>alert('artist')</script> - {HOSTILE_TRACK}"
    page = client.get("/")
    assert page.headers["content-type"].startswith("text/html")
    assert "script-src 'self';" in page.headers["content-security-policy"]
    assert "unsafe-inline" not in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    scripts = re.findall(r"<script[^>]*>", page.text)
    assert scripts and all('src="/static/' in s for s in scripts) and "</script>" in page.text
    assert not re.search(r"\son\w+=", page.text)  # no inline handlers
    js = client.get("/static/app.js").text
    assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(", js)


def test_static_files_are_a_fixed_set(client):
    assert client.get("/static/app.js").status_code == 200
    for path in ("/static/../server.py", "/static/%2e%2e/server.py", "/static/index.html", "/static/",
                 "/static/web/app.js", "//etc/passwd"):
        assert client.get(path).status_code == 404, path


def test_the_api_docs_need_no_outside_network(client):
    page = client.get("/docs")
    assert page.status_code == 200 and "/static/docs/swagger-ui-bundle.js" in page.text
    assert "http" not in page.headers["content-security-policy"]  # no CDN: every file is this server's
    assert "http://" not in page.text.replace(BASE, "") and "https://" not in page.text
    for name in ("swagger-ui-bundle.js", "swagger-ui.css"):
        assert client.get(f"/static/docs/{name}").status_code == 200
    assert client.get("/redoc").status_code == 404  # ReDoc would load from a CDN: not served


def test_reload_swaps_in_a_newer_checkpoint_and_refuses_a_corrupt_one(serving_checkpoint, gcn_checkpoint, tmp_path):
    from fastapi.testclient import TestClient

    from melody_map.server import create_app

    path = tmp_path / "served.pth"
    shutil.copy(serving_checkpoint, path)
    client = TestClient(create_app(path, say=lambda line: None), client=LOCAL, base_url=BASE)
    before = client.post("/api/recommend", json={"user_index": 3, "k": 5}).json()["items"]
    shutil.copy(gcn_checkpoint, tmp_path / "next.pth")
    os.replace(tmp_path / "next.pth", path)  # as train_gnn.py writes: a whole new file renamed in
    reloaded = client.post("/admin/reload")
    assert reloaded.status_code == 200 and reloaded.json()["model"] == "GCN"
    health = client.get("/health").json()
    assert health["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest() and health["reloads"] == 1
    after = client.post("/api/recommend", json={"user_index": 3, "k": 5}).json()["items"]
    assert after != before

    path.write_bytes(b"PK\x03\x04 not a checkpoint at all")
    refused = client.post("/admin/reload")
    assert refused.status_code == 409
    assert refused.json()["error"].startswith("refused: ") and health["sha256"] in refused.json()["error"]
    assert client.get("/health").json()["sha256"] == health["sha256"]  # the good one keeps serving
    assert client.post("/api/recommend", json={"user_index": 3, "k": 5}).json()["items"] == after
    elsewhere = TestClient(client.app, client=("203.0.113.9", 4000)).post("/admin/reload")
    assert elsewhere.status_code == 403
    local = TestClient(client.app, client=LOCAL, base_url=BASE)
    assert local.post("/admin/reload", headers={"origin": "https://evil.example"}).status_code == 403
    rebound = TestClient(client.app, client=LOCAL, base_url="http://evil.example:8000")  # DNS rebinding
    assert rebound.post("/admin/reload").status_code == 403


def test_a_request_in_flight_finishes_on_the_old_model(serving_checkpoint, gcn_checkpoint, tmp_path, monkeypatch):
    """A request that began before the swap is answered by the checkpoint it began on."""
    from fastapi.testclient import TestClient

    from melody_map import api
    from melody_map.server import create_app

    path = tmp_path / "served.pth"
    shutil.copy(serving_checkpoint, path)
    app = create_app(path, say=lambda line: None)
    old = app.state.melody.current
    entered, release = threading.Event(), threading.Event()
    call = old.call

    def held_call(*args, **kwargs):  # the old model's call waits until the swap is done
        entered.set()
        release.wait(30)
        return call(*args, **kwargs)

    monkeypatch.setattr(old, "call", held_call)
    answers = {}
    body = {"tracks": ["Artist 1-0 - Song 0", "Artist 1-1 - Song 1"], "k": 5}
    worker = threading.Thread(target=lambda: answers.update(
        slow=TestClient(app).post("/api/new-listener", json=body).json()))
    worker.start()
    assert entered.wait(30)
    shutil.copy(gcn_checkpoint, path)
    assert TestClient(app, client=LOCAL, base_url=BASE).post("/admin/reload").status_code == 200
    release.set()
    worker.join(30)
    want_old = api.recommend_for_tracks(old.model, old.data, body["tracks"], 5)
    new = app.state.melody.current
    want_new = api.recommend_for_tracks(new.model, new.data, body["tracks"], 5)
    assert [i["name"] for i in answers["slow"]["items"]] == list(api.item_labels(old.data, want_old["track_index"]))
    assert not np.allclose(want_old["score"], want_new["score"])  # the two models tell apart


def test_the_serve_command_binds_to_this_machine_and_reloads_on_sighup(serving_checkpoint, tmp_path):
    """recommend.py --serve as a user runs it: 127.0.0.1 by default, and SIGHUP serves the file again."""
    import signal
    import socket
    import subprocess
    import sys
    import time

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, str(ROOT / "recommend.py"), "--serve", "--checkpoint",
                               serving_checkpoint, "--port", str(port)], stdout=subprocess.PIPE, text=True)
    try:
        first = server.stdout.readline()
        while "serving " not in first:
            first = server.stdout.readline()
        assert f"at http://127.0.0.1:{port}/" in first
        health = _poll(lambda: httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).json())
        assert health["reloads"] == 0
        server.send_signal(signal.SIGHUP)
        deadline = time.time() + 60
        while httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).json()["reloads"] == 0:
            assert time.time() < deadline, "SIGHUP did not reload"
            time.sleep(0.2)
    finally:
        server.terminate()
        server.wait(30)


def _poll(read, seconds: float = 60):
    """``read()``'s value once it stops raising (a server starting), for at most ``seconds``."""
    import time

    import httpx

    deadline = time.time() + seconds
    while True:
        try:
            return read()
        except httpx.HTTPError:
            if time.time() > deadline:
                raise
            time.sleep(0.2)


def test_serve_flag_needs_no_other_mode():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, str(ROOT / "recommend.py"), "--port", "9"], capture_output=True, text=True)
    assert done.returncode == 2 and "error: --host and --port go with --serve" in done.stderr


def test_the_load_benchmark_counts_every_request_and_prints_its_table(serving_checkpoint, tmp_path, monkeypatch,
                                                                       capfd):
    from bench import http_load

    monkeypatch.setattr(http_load, "RESULTS", tmp_path)
    assert http_load.main(["--checkpoint", serving_checkpoint, "--requests", "40", "--single", "10",
                           "--concurrency", "4", "--name", "tiny"]) == 0
    doc = json.loads((tmp_path / "http_load_tiny.json").read_text())
    assert [p["requests"] for p in doc["phases"].values()] == [10, 40, 40]  # a fixed number: it stops by itself
    assert sum(e["requests"] for e in doc["phases"]["mixed"]["endpoints"].values()) == 40
    assert all(e["errors"] == 0 for p in doc["phases"].values() for e in p["endpoints"].values())
    assert all(0 < p["rss_mb"]["start"] <= p["rss_mb"]["peak"] for p in doc["phases"].values())
    table = capfd.readouterr().out  # capfd: the server's own lines go to the benchmark's stderr descriptor
    assert "| tiny |" in table and "python bench/http_load.py --checkpoint" in table
