"""Load benchmark of the HTTP server (recommend.py --serve), against 127.0.0.1 only.

    python bench/http_load.py --checkpoint gnn_model.pth --requests 500          # brief, the sample
    python bench/http_load.py --checkpoint full.pth --requests 5000 --concurrency 32 --name 100pct
    python bench/http_load.py --report              # Markdown from bench/results/http_load_*.json

It starts ``recommend.py --serve`` on a free port of 127.0.0.1, waits until /health says every
user's top list is cached (the server answers as soon as it has loaded, and fills the cache
behind), then runs three phases, each a fixed number of requests, so it stops by itself:

single      one client, one request at a time: a random user's top 10 (POST /api/recommend)
concurrent  ``--concurrency`` clients at once, the same requests
mixed       ``--concurrency`` clients over every kind of request, weighed by ``MIX``

Per endpoint it records requests, errors (any status but 200, or no answer), throughput and
p50/p95/p99 latency; the server's resident memory (VmRSS) is sampled every 0.2 s: at each
phase's start and end, and its peak. The client
runs on the same machine and takes CPU from the server: compare runs on one machine only.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import shlex
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.full_scale import machine, write_json  # noqa: E402

RESULTS = ROOT / "bench" / "results"
MIX = {"recommend": 50, "search": 20, "new-listener": 10, "similar-tracks": 10, "explain": 5, "health": 5}
STARTUP_S = 4 * 3600  # the most seconds the server may take to load and cache every user's list


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default="gnn_model.pth", help="the checkpoint to serve")
    p.add_argument("--requests", type=int, default=5000, help="requests in each of the concurrent and mixed phases")
    p.add_argument("--single", type=int, help="requests of the single-client phase (default: a fifth of --requests)")
    p.add_argument("--concurrency", type=int, default=32, help="clients at once")
    p.add_argument("--name", default="sample", help="names the result: bench/results/http_load_NAME.json")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--report", nargs="*", metavar="JSON", help="print the table from these results (default: all)")
    args = p.parse_args(argv)
    if args.report is None and not (args.requests >= 1 and args.concurrency >= 1):
        p.error("--requests and --concurrency must be >= 1")
    return args


def start_server(checkpoint: str) -> tuple[subprocess.Popen, str, float, float]:
    """``recommend.py --serve`` on a free port of 127.0.0.1; returns it, its URL, the seconds until it
    answered and the seconds until every user's list was cached."""
    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.perf_counter()
    server = subprocess.Popen([sys.executable, str(ROOT / "recommend.py"), "--serve", "--checkpoint", checkpoint,
                               "--host", "127.0.0.1", "--port", str(port)], stdout=sys.stderr)
    url, answered = f"http://127.0.0.1:{port}", None
    while time.perf_counter() - start < STARTUP_S:
        if server.poll() is not None:
            raise SystemExit(f"the server exited with {server.returncode} before it answered")
        try:
            health = httpx.get(f"{url}/health", timeout=5).json()
            answered = answered or time.perf_counter() - start
            if health["cached_users"] == health["counts"]["users"]:
                return server, url, answered, time.perf_counter() - start
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    server.terminate()
    raise SystemExit(f"the server had not cached every user's list within {STARTUP_S} s")


class MemorySampler(threading.Thread):
    """The server's VmRSS (MiB) every 0.2 s until stopped (Linux: /proc/PID/status)."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.samples, self.done = pid, [], threading.Event()

    def rss_mb(self) -> float | None:
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            return None
        return None

    def run(self) -> None:
        while not self.done.wait(0.2):
            if (rss := self.rss_mb()) is not None:
                self.samples.append(rss)


def plan(url: str, n: int, kinds: dict[str, int], seed: int) -> list[tuple[str, str, str, Any]]:
    """n requests (kind, method, path, JSON body or query): random users, and tracks from their lists."""
    import httpx

    rng = np.random.default_rng(seed)
    users = httpx.get(f"{url}/health").json()["counts"]["users"]
    tracks = [i["name"] for u in rng.integers(users, size=20).tolist()
              for i in httpx.post(f"{url}/api/recommend", json={"user_index": u, "k": 10}).json()["items"]]
    names, weights = list(kinds), np.array(list(kinds.values()), float)
    out = []
    for kind in rng.choice(names, size=n, p=weights / weights.sum()):
        user, track = int(rng.integers(users)), tracks[int(rng.integers(len(tracks)))]
        out.append({
            "recommend": ("recommend", "POST", "/api/recommend", {"user_index": user, "k": 10}),
            "explain": ("explain", "POST", "/api/explain", {"user_index": user, "k": 10}),
            "search": ("search", "GET", "/api/search", {"kind": "tracks", "q": track[:4]}),
            "new-listener": ("new-listener", "POST", "/api/new-listener",
                             {"tracks": list(rng.choice(tracks, size=3)), "k": 10}),
            "similar-tracks": ("similar-tracks", "POST", "/api/similar-tracks", {"track": track, "k": 10}),
            "health": ("health", "GET", "/health", {}),
        }[kind])
    return out


async def run_phase(url: str, requests: list, concurrency: int) -> dict[str, Any]:
    """Send ``requests`` with ``concurrency`` clients; per endpoint: latencies and errors."""
    import httpx

    times: dict[str, list[float]] = {}
    errors: dict[str, list[str]] = {}
    queue = iter(requests)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
        async def worker() -> None:
            for kind, method, path, body in queue:
                start = time.perf_counter()
                try:
                    response = await (client.post(path, json=body) if method == "POST"
                                      else client.get(path, params=body))
                    problem = None if response.status_code == 200 else f"{response.status_code} {response.text[:200]}"
                except httpx.HTTPError as e:
                    problem = f"{type(e).__name__}: {e}"
                times.setdefault(kind, []).append(time.perf_counter() - start)
                if problem:
                    errors.setdefault(kind, []).append(problem)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - start
    endpoints = {kind: {"requests": len(t), "errors": len(errors.get(kind, [])),
                        "first_error": (errors.get(kind) or [None])[0], "per_second": len(t) / seconds,
                        **{f"p{q}_ms": float(np.percentile(np.array(t) * 1000, q)) for q in (50, 95, 99)}}
                 for kind, t in sorted(times.items())}
    return {"clients": concurrency, "requests": len(requests), "seconds": seconds,
            "per_second": len(requests) / seconds, "endpoints": endpoints}


def measure(args: argparse.Namespace, argv: list[str]) -> dict[str, Any]:
    import httpx

    server, url, answered, startup = start_server(args.checkpoint)
    sampler = MemorySampler(server.pid)
    try:
        loaded_mb = sampler.rss_mb()
        health = httpx.get(f"{url}/health").json()
        sampler.start()
        single = args.single if args.single is not None else max(1, args.requests // 5)
        phases = {}
        for name, n, clients, kinds in (("single", single, 1, {"recommend": 1}),
                                        ("concurrent", args.requests, args.concurrency, {"recommend": 1}),
                                        ("mixed", args.requests, args.concurrency, MIX)):
            before, first = sampler.rss_mb(), len(sampler.samples)
            phases[name] = asyncio.run(run_phase(url, plan(url, n, kinds, args.seed), clients))
            after = sampler.rss_mb()
            phases[name]["rss_mb"] = {"start": before, "end": after,
                                      "peak": max([before, after, *sampler.samples[first:]])}
            print(f"{name}: {phases[name]['per_second']:.0f} req/s", file=sys.stderr)
    finally:
        sampler.done.set()
        server.terminate()
        server.wait(30)
    return {"benchmark": "http_load", "name": args.name,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "command": shlex.join(["python", "bench/http_load.py", *argv]), "machine": machine(),
            "served": health, "answered_s": answered, "startup_s": startup,
            "rss_mb": {"loaded": loaded_mb, "peak": max(sampler.samples, default=loaded_mb),
                       "end": sampler.samples[-1] if sampler.samples else loaded_mb},
            "phases": phases}


def report(paths: list[Path]) -> str:
    """The Markdown table of the given results: one row per phase and endpoint."""
    lines = ["| result | users × tracks | phase | clients | endpoint | requests | errors | req/s | p50 | p95 | p99 "
             "| server RSS: phase start → end (peak) |", "|" + "---|" * 12]
    for path in paths:
        doc = json.loads(path.read_text())
        counts = doc["served"]["counts"]
        size = f"{counts['users']:,} × {counts.get('tracks', counts.get('items', 0)):,}"
        for phase, result in doc["phases"].items():
            mb = result.get("rss_mb") or {"start": doc["rss_mb"]["loaded"], "end": doc["rss_mb"]["end"],
                                          "peak": doc["rss_mb"]["peak"]}  # results from before per-phase figures
            rss = f"{mb['start'] / 1024:.2f} → {mb['end'] / 1024:.2f} ({mb['peak'] / 1024:.2f}) GiB"
            for kind, e in result["endpoints"].items():
                lines.append(f"| {doc['name']} | {size} | {phase} | {result['clients']} | {kind} | {e['requests']:,} "
                             f"| {e['errors']} | {e['per_second']:.0f} | {e['p50_ms']:.1f} ms | {e['p95_ms']:.1f} ms "
                             f"| {e['p99_ms']:.1f} ms | {rss} |")
    for path in paths:
        doc = json.loads(path.read_text())
        lines.append(f"\n`{doc['name']}`: `{doc['command']}` on {doc['machine']['cpus_usable']} CPUs "
                     f"({doc['machine']['processor']}), {doc['date']}, git {doc['machine']['git']}; "
                     f"start-up: answering after {doc.get('answered_s') or doc['startup_s']:.1f} s, "
                     f"every user cached after {doc['startup_s']:.1f} s.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.report is not None:
        paths = [Path(p) for p in args.report] or sorted(RESULTS.glob("http_load_*.json"))
        print(report(paths))
        return 0
    out = RESULTS / f"http_load_{args.name}.json"
    write_json(measure(args, argv), out)
    print(report([out]))
    print(f"\nwrote {os.path.relpath(out, ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
