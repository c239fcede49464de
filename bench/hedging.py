"""Hedged reads benchmark: one replica of a shard made slow, and one stopped with SIGSTOP.

One shard, two replicas of real `chroma run` servers; the second replica sits behind a
loopback proxy that delays 10% of the requests it forwards by 50 ms. Three setups are
measured in interleaved rounds (who goes first rotates), one client, sequential queries
with `Cache-Control: no-cache`:

- healthy: the proxy adds nothing; router with hedging on (the default);
- slow, hedged: 10% of the slow replica's requests +50 ms; the same router;
- slow, not hedged: the same slow replica; a router with `hedging.enabled: false`.

Targets: p99 of "slow, hedged" <= 1.2x p99 of "healthy", at <= 5% extra sub-requests
(hedges / read sub-requests, from the router's /metrics).

Then the slow replica's process is stopped with SIGSTOP while the hedging router keeps
answering: the slowest read shows what one hung replica costs (the hedge delay), next to
a router without hedging, whose reads sent to the hung replica wait for the shard timeout.

    python bench/hedging.py [--n 5000] [--per-round 200] [--rounds 5] [--out bench/results]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "operator"))
sys.path.insert(0, str(ROOT / "tests"))

from router import load_data  # noqa: E402  (bench/router.py: the same vectors)
from router_harness import RouterProcess, make_topology, start_servers  # noqa: E402
from slow_proxy import DelayProxy  # noqa: E402

DB = "/api/v2/tenants/default_tenant/databases/default_database"
HNSW = {"space": "cosine", "max_neighbors": 16, "ef_construction": 100, "ef_search": 100}
K = 10
SHARD_TIMEOUT = 10.0


def hedge_counts(router: RouterProcess) -> tuple[float, float]:
    """(hedges sent that answered, read sub-requests) from the router's /metrics."""
    hedges = subrequests = 0.0
    for line in httpx.get(router.url + "/metrics").text.splitlines():
        if line.startswith("chroma_router_hedged_reads_total{"):
            hedges += float(line.rsplit(" ", 1)[1])
        elif line.startswith("chroma_router_read_subrequests_total "):
            subrequests = float(line.rsplit(" ", 1)[1])
    return hedges, subrequests


def run_queries(
    client: httpx.Client, url: str, bodies: list[bytes], n: int, start: int
) -> list[float]:
    """`n` sequential queries; latency of each in seconds."""
    out = []
    for i in range(n):
        t = time.perf_counter()
        r = client.post(url, content=bodies[(start + i) % len(bodies)])
        out.append(time.perf_counter() - t)
        r.raise_for_status()
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--per-round", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--stopped-queries", type=int, default=300)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()[0]
    t0 = time.monotonic()
    base, queries, source = load_data(args.n, 300)
    fast, slow = start_servers(2)
    proxy = DelayProxy(slow.port).start()
    proxy.delay, proxy.probability = 0.05, 0.0
    hints = tempfile.mkdtemp(prefix="bench-hints-")
    endpoints = [[fast.url, proxy.url]]
    hedged = RouterProcess(
        make_topology(endpoints, shard_timeout_seconds=SHARD_TIMEOUT, hints_dir=hints)
    ).start()
    plain = RouterProcess(
        make_topology(
            endpoints,
            shard_timeout_seconds=SHARD_TIMEOUT,
            hints_dir=hints + "-plain",
            hedging={"enabled": False},
        )
    ).start()
    try:
        col = hedged.client().create_collection(
            "bench", configuration={"hnsw": HNSW}, embedding_function=None
        )
        for i in range(0, len(base), 500):
            col.add(
                ids=[str(j) for j in range(i, i + len(base[i : i + 500]))],
                embeddings=base[i : i + 500],
            )
        bodies = [
            orjson.dumps({"query_embeddings": [q.tolist()], "n_results": K, "include": []})
            for q in queries
        ]
        headers = {"content-type": "application/json", "cache-control": "no-cache"}
        setups = {
            "healthy": (hedged, 0.0),
            "slow_hedged": (hedged, 0.1),
            "slow_not_hedged": (plain, 0.1),
        }
        clients = {
            name: httpx.Client(base_url=r.url, headers=headers, timeout=60)
            for name, (r, _) in setups.items()
        }
        path = f"{DB}/collections/{col.id}/query"
        for name, (_router, p) in setups.items():  # warm: each router learns the p95
            proxy.probability = p
            run_queries(clients[name], path, bodies, 100, 0)
        latencies: dict[str, list[float]] = {name: [] for name in setups}
        extra: dict[str, list[float]] = {name: [] for name in setups}
        rounds: list[dict[str, Any]] = []
        names = list(setups)
        for r in range(args.rounds):
            row: dict[str, Any] = {}
            for name in names[r % 3 :] + names[: r % 3]:
                router, p = setups[name]
                proxy.probability = p
                h0, s0 = hedge_counts(router)
                lat = run_queries(clients[name], path, bodies, args.per_round, r * 37)
                h1, s1 = hedge_counts(router)
                latencies[name] += lat
                extra[name].append((h1 - h0) / max(1.0, s1 - s0))
                row[name] = {"p50_ms": 1000 * pct(lat, 0.5), "p99_ms": 1000 * pct(lat, 0.99)}
            rounds.append(row)
            print(f"round {r + 1}/{args.rounds}: " + json.dumps(row), flush=True)

        # SIGSTOP the slow replica's process: the proxy still accepts, nothing answers.
        proxy.probability = 0.0
        run_queries(clients["healthy"], path, bodies, 50, 0)
        assert slow.pid is not None
        os.kill(slow.pid, signal.SIGSTOP)
        try:
            stopped = run_queries(clients["healthy"], path, bodies, args.stopped_queries, 0)
            unhedged_stopped = run_queries(clients["slow_not_hedged"], path, bodies, 4, 0)
        finally:
            os.kill(slow.pid, signal.SIGCONT)
        for c in clients.values():
            c.close()
    finally:
        hedged.stop()
        plain.stop()
        proxy.stop()
        fast.close()
        slow.close()

    summary: dict[str, Any] = {
        name: {
            "p50_ms": 1000 * statistics.median(lat),
            "p99_ms": 1000 * pct(lat, 0.99),
            "extra_subrequests": statistics.median(extra[name]),
            "requests": len(lat),
        }
        for name, lat in latencies.items()
    }
    healthy_p99 = summary["healthy"]["p99_ms"]
    stop_summary = {
        "hedged_max_ms": 1000 * max(stopped),
        "hedged_p99_ms": 1000 * pct(stopped, 0.99),
        "hedged_p50_ms": 1000 * statistics.median(stopped),
        "hedged_over_1s": sum(x > 1.0 for x in stopped),
        "queries": len(stopped),
        "not_hedged_max_ms": 1000 * max(unhedged_stopped),
        "shard_timeout_s": SHARD_TIMEOUT,
    }
    result = {
        "data": source,
        "n": args.n,
        "replicas": 2,
        "slow_replica": "10% of requests +50 ms (loopback proxy)",
        "rounds": rounds,
        "median": summary,
        "ratios": {
            "slow_hedged_p99_vs_healthy_p99": summary["slow_hedged"]["p99_ms"] / healthy_p99,
            "slow_not_hedged_p99_vs_healthy_p99": summary["slow_not_hedged"]["p99_ms"]
            / healthy_p99,
            "slow_hedged_p50_vs_healthy_p50": summary["slow_hedged"]["p50_ms"]
            / summary["healthy"]["p50_ms"],
        },
        "sigstop": stop_summary,
        "targets": {"p99_ratio_max": 1.2, "extra_subrequests_max": 0.05},
        "machine": {
            "cpus": os.cpu_count(),
            "load_avg_1m_before_after": [load_before, os.getloadavg()[0]],
            "python": platform.python_version(),
        },
        "wall_s": time.monotonic() - t0,
    }
    (args.out / "hedging.json").write_text(json.dumps(result, indent=1))
    plot(result, latencies, stopped, args.out / "hedging.png")
    print(json.dumps({k: result[k] for k in ("median", "ratios", "sigstop")}, indent=1))


def plot(
    result: dict[str, Any], latencies: dict[str, list[float]], stopped: list[float], path: Path
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    names = list(latencies)
    xs = np.arange(len(names))
    med = result["median"]
    left.bar(xs - 0.2, [med[n]["p50_ms"] for n in names], 0.4, label="p50")
    left.bar(xs + 0.2, [med[n]["p99_ms"] for n in names], 0.4, label="p99")
    left.set_xticks(xs, [n.replace("_", "\n") for n in names])
    left.set_ylabel("query latency (ms), one client")
    left.set_title("one replica: 10% of requests +50 ms")
    left.legend()
    right.plot(np.arange(len(stopped)), [1000 * x for x in stopped], ".", ms=3)
    right.axhline(
        1000 * result["sigstop"]["shard_timeout_s"],
        color="r",
        ls="--",
        label="shard timeout (what a read without hedging waits)",
    )
    right.set_yscale("log")
    right.set_xlabel("query # after SIGSTOP of one replica (hedging on)")
    right.set_ylabel("latency (ms)")
    right.set_title("a hung replica")
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
