"""Resharding benchmark: 2 -> 3 -> 2 shards online, under a steady query load.

Measures records moved per second during backfill and query latency p50/p99 before,
during and after each move (one query client at a time through the router, raw HTTP,
`Cache-Control: no-cache`). The "during" window is the whole move, all phases; the
ratio during/before is the number to watch (target <= 2x).

    python bench/reshard.py [--n 20000] [--rate 2000] [--out bench/results]

Data: random float32 vectors (the move cost depends on record count and size, not on
their meaning). Writes reshard.json and reshard.png under --out.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import chromadb
import httpx
import numpy as np
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "operator"))

from chroma_operator.local.chroma_server import ChromaServer, free_port  # noqa: E402
from chroma_operator.reshard.engine import Engine  # noqa: E402
from chroma_operator.reshard.file_runtime import FileRuntime  # noqa: E402
from chroma_operator.reshard.plan import expected_moved_fraction  # noqa: E402
from chroma_operator.topology import ShardTopology, Topology  # noqa: E402

DB = "/api/v2/tenants/default_tenant/databases/default_database"
DIM = 64


def start_router(topology: Path, workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "operator")}
    log = (workdir / f"router-{port}.log").open("ab")
    argv = [sys.executable, "-m", "chroma_operator", "router", "--topology", str(topology)]
    argv += ["--port", str(port), "--host", "127.0.0.1", "--log-level", "warning"]
    argv += ["--reload-interval", "0.2"]
    proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError("router did not start")
        time.sleep(0.1)


class Prober:
    """One query at a time through the router; each latency tagged with the current window."""

    def __init__(self, url: str, coll_id: str, queries: np.ndarray) -> None:
        self.url, self.queries = url, queries
        self.path = f"{DB}/collections/{coll_id}/query"
        self.window = "idle"
        self.samples: list[tuple[float, str, float]] = []
        self.errors = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        client = httpx.Client(timeout=30, headers={"cache-control": "no-cache"})
        i = 0
        while not self.stop.is_set():
            q = self.queries[i % len(self.queries)]
            body = orjson.dumps({"query_embeddings": [q.tolist()], "n_results": 10})
            t0 = time.perf_counter()
            r = client.post(self.url + self.path, content=body)
            dt = (time.perf_counter() - t0) * 1000
            if r.status_code != 200:
                self.errors += 1
            elif self.window != "idle":
                self.samples.append((time.time(), self.window, dt))
            i += 1
        client.close()

    def stats(self, window: str) -> dict[str, float]:
        xs = np.array([d for _, w, d in self.samples if w == window])
        if len(xs) == 0:
            return {"n": 0}
        return {
            "n": len(xs),
            "p50_ms": float(np.percentile(xs, 50)),
            "p99_ms": float(np.percentile(xs, 99)),
        }


def move(
    runtime: FileRuntime, target: int, shards: list[ShardTopology], rate: float
) -> dict[str, Any]:
    engine = Engine(runtime, rate=rate)
    t0 = time.monotonic()
    engine.start(target, shards)
    engine.run()
    prog = engine.progress
    assert prog is not None
    return {
        "seconds": time.monotonic() - t0,
        "records_moved": prog.records_moved,
        "backfill_seconds": prog.backfill_seconds,
        "moved_per_second": prog.rate,
        "records_cleaned": prog.records_cleaned,
        "records_repaired": prog.records_repaired,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--rate", type=float, default=2000.0, help="backfill records/s limit")
    ap.add_argument("--window", type=float, default=15.0, help="seconds before/after")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-reshard-"))
    servers = [ChromaServer() for _ in range(3)]
    for s in servers:
        s.start()
    router: subprocess.Popen[bytes] | None = None
    try:
        shards = [ShardTopology(index=i, endpoints=[s.url]) for i, s in enumerate(servers)]
        topo_path = work / "topology.json"
        topo = Topology(cluster="bench", namespace="bench", shards=shards[:2])
        topo_path.write_text(topo.to_json())
        router, url = start_router(topo_path, work)
        rng = np.random.default_rng(0)
        base = rng.standard_normal((args.n, DIM)).astype(np.float32)
        client = chromadb.HttpClient(host="127.0.0.1", port=int(url.rsplit(":", 1)[1]))
        coll = client.create_collection("bench", configuration={"hnsw": {"space": "l2"}})
        for i in range(0, args.n, 1000):
            ids = [f"r{j}" for j in range(i, min(i + 1000, args.n))]
            coll.add(ids=ids, embeddings=base[i : i + len(ids)], documents=ids)
        prober = Prober(url, str(coll.id), rng.standard_normal((500, DIM)).astype(np.float32))
        prober.thread.start()
        runtime = FileRuntime(topo_path, [url])
        moves: dict[str, Any] = {}
        spans: list[tuple[str, float, float]] = []
        for label, target in (("grow 2->3", 3), ("shrink 3->2", 2)):
            old = 2 if target == 3 else 3
            key = label.split()[0]
            prober.window = f"{key}:before"
            t = time.time()
            time.sleep(args.window)
            spans.append((f"{key}:before", t, time.time()))
            prober.window = f"{key}:during"
            t = time.time()
            result = move(runtime, target, shards, args.rate)
            spans.append((f"{key}:during", t, time.time()))
            prober.window = f"{key}:after"
            t = time.time()
            time.sleep(args.window)
            spans.append((f"{key}:after", t, time.time()))
            result["moved_fraction"] = result["records_moved"] / args.n
            result["predicted_fraction"] = expected_moved_fraction(old, target)
            for w in ("before", "during", "after"):
                result[f"query_{w}"] = prober.stats(f"{key}:{w}")
            b, d = result["query_before"], result["query_during"]
            result["p50_during_over_before"] = d["p50_ms"] / b["p50_ms"]
            result["p99_during_over_before"] = d["p99_ms"] / b["p99_ms"]
            moves[label] = result
        prober.stop.set()
        prober.thread.join(30)
        out = {
            "benchmark": "reshard",
            "records": args.n,
            "dim": DIM,
            "rate_limit": args.rate,
            "query_errors": prober.errors,
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
            "moves": moves,
        }
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "reshard.json").write_text(json.dumps(out, indent=2) + "\n")
        plot(prober.samples, spans, args.out / "reshard.png")
        print(json.dumps(out, indent=2))
    finally:
        if router is not None:
            router.terminate()
            router.wait(10)
        for s in servers:
            s.close()


def plot(
    samples: list[tuple[float, str, float]], spans: list[tuple[str, float, float]], path: Path
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t0 = samples[0][0] if samples else 0.0
    fig, ax = plt.subplots(figsize=(10, 4))
    colors = {"before": "#dddddd", "during": "#ffd27f", "after": "#c9e7c9"}
    for name, a, b in spans:
        ax.axvspan(a - t0, b - t0, color=colors[name.split(":")[1]], alpha=0.6)
        ax.text(
            (a + b) / 2 - t0,
            0.98,
            name,
            ha="center",
            va="top",
            transform=ax.get_xaxis_transform(),
            fontsize=8,
        )
    ax.plot([s[0] - t0 for s in samples], [s[2] for s in samples], ".", ms=2, color="#333333")
    ax.set_xlabel("seconds")
    ax.set_ylabel("query latency (ms)")
    ax.set_yscale("log")
    ax.set_title("Query latency through the router while resharding 2 -> 3 -> 2")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
