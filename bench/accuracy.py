"""Accuracy per query: default HNSW vs `candidates=N` vs `exact`, side by side.

Two shards behind the router, HNSW built and searched with a low efSearch (10), the
setting where approximate search visibly misses neighbours. For each search mode the same
held-out queries are sent one at a time (cache off) in interleaved rounds, and the
benchmark reports p50/p99 latency and recall@10 against brute-force truth it computes
itself. Ratios are to the default mode measured in the same run.

    python bench/accuracy.py [--n 20000] [--queries 200] [--data FILE.npy]

Data: `--data` names a .npy of real embeddings (float16 or float32, one row a vector);
without it a clustered 384-dim set is generated.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import chromadb
import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "operator"))
sys.path.insert(0, str(ROOT / "tests"))

from chroma_operator.local.chroma_server import ChromaServer  # noqa: E402
from router_harness import RouterProcess, make_topology  # noqa: E402

K = 10
HNSW = {"space": "cosine", "max_neighbors": 16, "ef_construction": 100, "ef_search": 10}
MODES = ("approximate", "candidates=50", "candidates=200", "exact")


def load_data(path: Path | None, n: int, n_queries: int) -> tuple[np.ndarray, np.ndarray, str]:
    rng = np.random.default_rng(0)
    if path is not None:
        allv = np.load(path).astype(np.float32)
        order = rng.permutation(len(allv))
        base, queries = allv[order[:n]], allv[order[n : n + n_queries]]
        source = f"{path.name} (real embeddings)"
    else:
        centers = rng.standard_normal((200, 384)).astype(np.float32)
        pts = centers[rng.integers(0, 200, n + n_queries)] + 0.35 * rng.standard_normal(
            (n + n_queries, 384)
        )
        base, queries = pts[:n].astype(np.float32), pts[n:].astype(np.float32)
        source = "generated clustered set (200 clusters, 384 dims)"
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    return base, queries, source


def kth_distances(base: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Each query's exact k-th cosine distance (the recall threshold)."""
    dist = 1.0 - queries @ base.T
    return np.partition(dist, K - 1, axis=1)[:, K - 1]


def hits(base: np.ndarray, query: np.ndarray, got: list[int], kth: float) -> int:
    """Returned ids within the exact k-th distance (ANN-benchmarks' rule, so exact ties
    -- real data has many identical descriptions -- count whichever copy was returned)."""
    if not got:
        return 0
    d = 1.0 - base[got] @ query
    return int(np.sum(d <= kth + 1e-5))


def pct(xs: list[float], p: float) -> float:
    return float(np.percentile(np.asarray(xs), p))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = ap.parse_args()
    started = time.perf_counter()
    base, queries, source = load_data(args.data, args.n, args.queries)
    kth = kth_distances(base, queries)
    work = Path(tempfile.mkdtemp(prefix="accuracy-bench-"))
    servers = [ChromaServer(data_dir=work / f"s{i}").start() for i in range(2)]
    router = RouterProcess(
        make_topology(
            [[s.url] for s in servers],
            hnsw=HNSW,
            cache={"enabled": False},
            slo={"recall_sample_rate": 0.0},
        )
    ).start()
    results: dict[str, Any] = {}
    try:
        client = chromadb.HttpClient(host="127.0.0.1", port=router.port)
        coll = client.create_collection("bench", embedding_function=None)
        ids = [str(i) for i in range(args.n)]
        for start in range(0, args.n, 1000):
            coll.add(ids=ids[start : start + 1000], embeddings=base[start : start + 1000].tolist())
        url = (
            f"{router.url}/api/v2/tenants/default_tenant/databases/default_database/"
            f"collections/{coll.id}/query"
        )
        lat: dict[str, list[float]] = {m: [] for m in MODES}
        got: dict[str, list[list[int]]] = {m: [[] for _ in queries] for m in MODES}
        with httpx.Client(timeout=60) as http:
            for rnd in range(args.rounds):
                for qi, q in enumerate(queries):
                    if qi % args.rounds != rnd:
                        continue
                    body = {"query_embeddings": [q.tolist()], "n_results": K, "include": []}
                    order = MODES[qi % len(MODES) :] + MODES[: qi % len(MODES)]
                    for mode in order:
                        t0 = time.perf_counter()
                        r = http.post(url, json=body, headers={"X-Chroma-Search": mode})
                        lat[mode].append((time.perf_counter() - t0) * 1000)
                        r.raise_for_status()
                        got[mode][qi] = [int(i) for i in r.json()["ids"][0]]
        for mode in MODES:
            found = sum(
                hits(base, queries[qi], got[mode][qi], float(kth[qi])) for qi in range(len(queries))
            )
            results[mode] = {
                "p50_ms": pct(lat[mode], 50),
                "p99_ms": pct(lat[mode], 99),
                "recall_at_10": found / (K * len(queries)),
                "requests": len(lat[mode]),
            }
            print(f"[{mode}] {results[mode]}", flush=True)
    finally:
        router.stop()
        for s in servers:
            s.close()
    base_mode = results["approximate"]
    ratios = {
        f"{m}_vs_default_p50": results[m]["p50_ms"] / base_mode["p50_ms"] for m in MODES[1:]
    } | {f"{m}_vs_default_p99": results[m]["p99_ms"] / base_mode["p99_ms"] for m in MODES[1:]}
    report = {
        "data": source,
        "n": args.n,
        "queries": len(queries),
        "k": K,
        "hnsw": HNSW,
        "shards": 2,
        "machine": {
            "cpus": os.cpu_count(),
            "load_avg_1m": os.getloadavg()[0],
            "python": platform.python_version(),
            "chromadb": chromadb.__version__,
        },
        "results": results,
        "ratios": ratios,
        "wall_s": time.perf_counter() - started,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "accuracy.json").write_text(json.dumps(report, indent=2))
    plot(report, args.out / "accuracy.png")
    print(json.dumps(ratios, indent=2))


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    res = report["results"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for mode, r in res.items():
        ax.scatter(r["p50_ms"], r["recall_at_10"], s=60)
        ax.errorbar(
            r["p50_ms"], r["recall_at_10"], xerr=[[0], [r["p99_ms"] - r["p50_ms"]]], fmt="none"
        )
        ax.annotate(
            mode, (r["p50_ms"], r["recall_at_10"]), textcoords="offset points", xytext=(6, -12)
        )
    ax.set_xscale("log")
    ax.set_xlabel("query latency ms, log (dot p50, bar to p99)")
    ax.set_ylabel("recall@10")
    ax.set_title(f"search modes, {report['n']} vectors, efSearch 10, 2 shards\n{report['data']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
