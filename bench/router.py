"""Router benchmark: single Chroma node vs router over 1 shard vs router over 3 shards.

Same machine, same data, same HNSW settings (cosine, M 16, efConstruction 100, efSearch
100). Measures ingest vectors/s through the stock client, query latency p50/p99 at
concurrency 1, 8 and 32 (raw HTTP with `Cache-Control: no-cache`, so the router cache
stays out of it), recall@10 against exact brute force, and the router's cache-hit latency
both end to end and inside the router (its `Server-Timing` header).

    python bench/router.py [--n 50000] [--queries 200] [--out bench/results]

Data: `../shared/data/debian-packages.minilm-l6-v2.f16.npy` when present (real text
embeddings), else a generated clustered set of the same shape. The three setups run side
by side and are measured in interleaved rounds, so load from other work on a shared
machine falls on all of them alike.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
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
from chroma_operator.topology import ShardTopology, Topology  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "debian-packages.minilm-l6-v2.f16.npy"
DB = "/api/v2/tenants/default_tenant/databases/default_database"
HNSW = {"space": "cosine", "max_neighbors": 16, "ef_construction": 100, "ef_search": 100}
CONCURRENCY = (1, 8, 32)
K = 10


def load_data(n: int, n_queries: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, str]:
    """Base vectors and held-out queries, L2-normalised float32."""
    if DATA.exists():
        allv = np.load(DATA).astype(np.float32)
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(allv))
        base, queries = allv[order[:n]], allv[order[n : n + n_queries]]
        source = f"{DATA.name} (real MiniLM embeddings)"
    else:
        rng = np.random.default_rng(seed)
        centers = rng.standard_normal((200, 384)).astype(np.float32)
        labels = rng.integers(0, 200, n + n_queries)
        pts = centers[labels] + 0.35 * rng.standard_normal((n + n_queries, 384))
        base, queries = pts[:n].astype(np.float32), pts[n:].astype(np.float32)
        source = "generated clustered set (200 clusters, 384 dims)"
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    return base, queries, source


def brute_force(base: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k by cosine distance (ids as row numbers, and the distances)."""
    dist = 1.0 - queries @ base.T
    idx = np.argpartition(dist, k, axis=1)[:, :k]
    d = np.take_along_axis(dist, idx, axis=1)
    order = np.argsort(d, axis=1)
    return np.take_along_axis(idx, order, axis=1), np.take_along_axis(d, order, axis=1)


class Router:
    """`chroma-operator router` as a child process."""

    def __init__(self, shard_urls: list[str], workdir: Path) -> None:
        self.port = free_port()
        topo = Topology(
            cluster="bench",
            namespace="bench",
            shards=[ShardTopology(index=i, endpoints=[u]) for i, u in enumerate(shard_urls)],
        )
        path = workdir / f"topology-{self.port}.json"
        path.write_text(topo.to_json())
        env = {**os.environ, "PYTHONPATH": str(ROOT / "operator")}
        self.log = (workdir / f"router-{self.port}.log").open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "chroma_operator",
                "router",
                "--topology",
                str(path),
                "--port",
                str(self.port),
                "--host",
                "127.0.0.1",
                "--log-level",
                "warning",
            ],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("router did not start")
            time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        self.log.close()


def create(url: str, name: str) -> Any:
    port = int(url.rsplit(":", 1)[1])
    client = chromadb.HttpClient(host="127.0.0.1", port=port)
    return client.create_collection(name, configuration={"hnsw": HNSW}, embedding_function=None)


def ingest_interleaved(
    cols: dict[str, Any], base: np.ndarray, batch: int = 1000
) -> dict[str, float]:
    """Batch i goes to every setup in turn (rotating who goes first), each timed alone.

    The machine is shared: interleaving spreads background load evenly over the setups
    instead of charging it to whichever ran while it happened.
    """
    ids = [str(i) for i in range(len(base))]
    spent = dict.fromkeys(cols, 0.0)
    labels = list(cols)
    for n, i in enumerate(range(0, len(base), batch)):
        for label in labels[n % len(labels) :] + labels[: n % len(labels)]:
            t = time.perf_counter()
            cols[label].add(ids=ids[i : i + batch], embeddings=base[i : i + batch])
            spent[label] += time.perf_counter() - t
    for col in cols.values():
        assert col.count() == len(base)
    return {label: len(base) / spent[label] for label in cols}


def query_bodies(queries: np.ndarray) -> list[bytes]:
    return [
        orjson.dumps({"query_embeddings": [q.tolist()], "n_results": K, "include": ["distances"]})
        for q in queries
    ]


async def load(
    url: str, cid: str, bodies: list[bytes], concurrency: int, total: int, headers: dict[str, str]
) -> list[float]:
    """`total` queries from `concurrency` workers; per-request latencies in seconds."""
    endpoint = f"{url}{DB}/collections/{cid}/query"
    latencies: list[float] = []
    counter = iter(range(total))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:

        async def worker() -> None:
            for i in counter:
                body = bodies[i % len(bodies)]
                t = time.perf_counter()
                r = await client.post(endpoint, content=body, headers=headers)
                latencies.append(time.perf_counter() - t)
                r.raise_for_status()

        for _ in range(3):  # warm connections
            await client.post(endpoint, content=bodies[0], headers=headers)
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies


def recall(
    url: str, cid: str, queries: np.ndarray, truth: np.ndarray, truth_d: np.ndarray
) -> dict[str, float]:
    """Exact-id recall@10 and the ANN-benchmarks variant (distance within 1e-3 of the 10th)."""
    endpoint = f"{url}{DB}/collections/{cid}/query"
    hits = tol_hits = 0
    with httpx.Client(timeout=60) as client:
        for i in range(0, len(queries), 50):
            body = {
                "query_embeddings": queries[i : i + 50].tolist(),
                "n_results": K,
                "include": ["distances"],
            }
            res = client.post(
                endpoint, content=orjson.dumps(body), headers={"Cache-Control": "no-cache"}
            ).json()
            for j, (ids, dists) in enumerate(zip(res["ids"], res["distances"], strict=True)):
                want = set(truth[i + j].tolist())
                hits += len(want & {int(x) for x in ids})
                tol_hits += sum(1 for d in dists if d <= truth_d[i + j][-1] + 1e-3)
    n = len(queries) * K
    return {"recall_at_10": hits / n, "recall_at_10_dist_tol": tol_hits / n}


def pct(xs: list[float], p: float) -> float:
    return float(np.percentile(np.asarray(xs) * 1000.0, p))


def cache_hits(url: str, cid: str, body: bytes, n: int = 400) -> dict[str, float]:
    endpoint = f"{url}{DB}/collections/{cid}/query"
    outer, inner = [], []
    with httpx.Client(timeout=30) as client:
        client.post(endpoint, content=body)
        for _ in range(n):
            t = time.perf_counter()
            r = client.post(endpoint, content=body)
            outer.append(time.perf_counter() - t)
            assert r.headers.get("X-Chroma-Cache") == "hit"
            inner.append(float(r.headers["Server-Timing"].split("dur=")[1]) / 1000.0)
    return {
        "e2e_p50_ms": pct(outer, 50),
        "e2e_p99_ms": pct(outer, 99),
        "in_router_p50_ms": pct(inner, 50),
        "in_router_p99_ms": pct(inner, 99),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=50_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--requests", type=int, default=600, help="queries per concurrency level")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = ap.parse_args()
    started = time.perf_counter()
    base, queries, source = load_data(args.n, args.queries)
    truth, truth_d = brute_force(base, queries, K)
    bodies = query_bodies(queries)
    work = Path(tempfile.mkdtemp(prefix="router-bench-"))
    servers: list[ChromaServer] = []
    routers: list[Router] = []
    results: dict[str, Any] = {}
    try:
        servers = [ChromaServer(data_dir=work / f"s{i}").start() for i in range(5)]
        routers = [Router([servers[1].url], work), Router([s.url for s in servers[2:5]], work)]
        urls = {
            "single_node": servers[0].url,
            "router_1_shard": routers[0].url,
            "router_3_shards": routers[1].url,
        }
        cols = {label: create(url, "bench") for label, url in urls.items()}
        cids = {label: str(col.id) for label, col in cols.items()}
        print(f"ingest {args.n} vectors into each setup, interleaved ...", flush=True)
        for label, rate in ingest_interleaved(cols, base).items():
            results[label] = {"ingest_vec_per_s": rate}
        for label, url in urls.items():
            results[label].update(recall(url, cids[label], queries, truth, truth_d))
        headers = {"Cache-Control": "no-cache"}
        rounds = 5
        labels = list(urls)
        for c in CONCURRENCY:
            lat: dict[str, list[float]] = {label: [] for label in labels}
            for rnd in range(rounds):
                for label in labels[rnd % 3 :] + labels[: rnd % 3]:
                    lat[label] += asyncio.run(
                        load(urls[label], cids[label], bodies, c, args.requests // rounds, headers)
                    )
            for label in labels:
                results[label][f"c{c}"] = {
                    "p50_ms": pct(lat[label], 50),
                    "p99_ms": pct(lat[label], 99),
                    "requests": len(lat[label]),
                }
                print(
                    f"[{label}] c={c} p50={pct(lat[label], 50):.2f}ms "
                    f"p99={pct(lat[label], 99):.2f}ms",
                    flush=True,
                )
        for label in ("router_1_shard", "router_3_shards"):
            results[label]["cache_hit"] = cache_hits(urls[label], cids[label], bodies[0])
        print(json.dumps(results, indent=1), flush=True)
    finally:
        for r in routers:
            r.stop()
        for s in servers:
            s.close()
    single, r1, r3 = (results[k] for k in ("single_node", "router_1_shard", "router_3_shards"))
    ratios = {
        "router1_vs_single_p50_c1": r1["c1"]["p50_ms"] / single["c1"]["p50_ms"],
        "router1_vs_single_p50_c8": r1["c8"]["p50_ms"] / single["c8"]["p50_ms"],
        "router1_vs_single_p50_c32": r1["c32"]["p50_ms"] / single["c32"]["p50_ms"],
        "router1_vs_single_ingest": r1["ingest_vec_per_s"] / single["ingest_vec_per_s"],
        "router3_vs_single_ingest": r3["ingest_vec_per_s"] / single["ingest_vec_per_s"],
        "router3_minus_single_recall": r3["recall_at_10"] - single["recall_at_10"],
    }
    report = {
        "data": source,
        "n": args.n,
        "queries": args.queries,
        "k": K,
        "hnsw": HNSW,
        "requests_per_level": args.requests,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "chromadb": chromadb.__version__,
        },
        "results": results,
        "ratios": ratios,
        "wall_s": time.perf_counter() - started,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "router.json").write_text(json.dumps(report, indent=2))
    plot(report, args.out / "router.png")
    print(json.dumps(ratios, indent=2))


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    res = report["results"]
    labels = list(res)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    width = 0.25
    for i, label in enumerate(labels):
        xs = np.arange(len(CONCURRENCY)) + (i - 1) * width
        axes[0].bar(xs, [res[label][f"c{c}"]["p50_ms"] for c in CONCURRENCY], width, label=label)
        axes[0].scatter(
            xs,
            [res[label][f"c{c}"]["p99_ms"] for c in CONCURRENCY],
            marker="_",
            s=200,
            color="black",
        )
    axes[0].set_xticks(np.arange(len(CONCURRENCY)), [f"c={c}" for c in CONCURRENCY])
    axes[0].set_yscale("log")
    axes[0].set_ylabel("query latency ms, log (bar p50, tick p99)")
    axes[0].legend()
    axes[1].bar(labels, [res[lb]["ingest_vec_per_s"] for lb in labels])
    axes[1].set_ylabel("ingest vectors/s")
    axes[2].bar(labels, [res[lb]["recall_at_10"] for lb in labels])
    axes[2].set_ylim(0.8, 1.0)
    axes[2].set_ylabel("recall@10 (exact ids)")
    for ax in axes[1:]:
        ax.tick_params(axis="x", rotation=15)
    fig.suptitle(f"router benchmark: {report['n']} vectors, {report['data']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
