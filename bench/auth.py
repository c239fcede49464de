"""Auth benchmark: the same router with token auth on vs off, one client, side by side.

Two router processes over the same two real Chroma shards (same collection, same data):
one without auth, one with a tokens file of `--entries` tokens (the client's is the last,
so every entry is compared). One client at a time sends queries (`Cache-Control:
no-cache`, so the router cache stays out of it) and counts, alternating request by
request between the two routers so machine load falls on both alike. Reports p50/p99
end to end and inside the router (`Server-Timing`), the p50 ratio on/off, and the cost
of one token match in-process.

    python bench/auth.py [--n 5000] [--requests 2000] [--entries 50] [--out bench/results]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "operator"))
sys.path.insert(0, str(ROOT / "tests"))

from chroma_operator.router.tokens import TokenTable, parse_tokens  # noqa: E402
from chroma_operator.topology import AuthTopology  # noqa: E402
from router_harness import RouterProcess, make_topology, start_servers  # noqa: E402

DB = "/api/v2/tenants/default_tenant/databases/default_database"
TOKEN = "bench-client-t0ken"


def tokens_file(path: Path, entries: int) -> bytes:
    others = [
        {
            "name": f"user-{i}",
            "sha256": hashlib.sha256(f"other-{i}".encode()).hexdigest(),
            "tenant": f"t{i}",
            "role": "read",
        }
        for i in range(entries - 1)
    ]
    doc = {"tokens": [*others, {"name": "bench", "token": TOKEN, "tenant": "*", "role": "admin"}]}
    raw = yaml.safe_dump(doc).encode()
    path.write_bytes(raw)
    return raw


def pct(xs: list[float], p: float) -> float:
    return float(np.percentile(np.asarray(xs), p))


def server_ms(reply: httpx.Response) -> float:
    return float(reply.headers["server-timing"].split("dur=")[1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--entries", type=int, default=50)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = ap.parse_args()

    rng = np.random.default_rng(0)
    base = rng.standard_normal((args.n, args.dim)).astype(np.float32)
    queries = rng.standard_normal((200, args.dim)).astype(np.float32)
    work = Path(tempfile.mkdtemp(prefix="bench-auth-"))
    raw_tokens = tokens_file(work / "tokens.yaml", args.entries)
    shards = start_servers(2)
    routers: dict[str, RouterProcess] = {}
    try:
        topo = make_topology([[s.url] for s in shards], cache={"enabled": False})
        routers["off"] = RouterProcess(topo).start()
        routers["on"] = RouterProcess(
            topo.model_copy(update={"auth": AuthTopology(tokens_file=str(work / "tokens.yaml"))})
        ).start()
        headers = {"on": {"Authorization": f"Bearer {TOKEN}"}, "off": {}}
        http = {k: httpx.Client(base_url=r.url, timeout=30) for k, r in routers.items()}
        created = (
            http["on"]
            .post(DB + "/collections", json={"name": "bench"}, headers=headers["on"])
            .json()
        )
        cid = created["id"]
        for i in range(0, args.n, 500):
            chunk = base[i : i + 500]
            body = {"ids": [str(j) for j in range(i, i + len(chunk))], "embeddings": chunk.tolist()}
            http["on"].post(
                f"{DB}/collections/{cid}/add", json=body, headers=headers["on"]
            ).raise_for_status()
        bodies = [
            orjson.dumps({"query_embeddings": [q.tolist()], "n_results": 10, "include": []})
            for q in queries
        ]
        results: dict[str, Any] = {}
        for op in ("query", "count"):
            lat: dict[str, list[float]] = {"on": [], "off": []}
            inner: dict[str, list[float]] = {"on": [], "off": []}
            for i in range(args.requests + 50):
                order = ("on", "off") if i % 2 else ("off", "on")
                for which in order:
                    h = {**headers[which], "cache-control": "no-cache"}
                    start = time.perf_counter()
                    if op == "query":
                        h["content-type"] = "application/json"
                        reply = http[which].post(
                            f"{DB}/collections/{cid}/query",
                            content=bodies[i % len(bodies)],
                            headers=h,
                        )
                    else:
                        reply = http[which].get(f"{DB}/collections/{cid}/count", headers=h)
                    elapsed = (time.perf_counter() - start) * 1000
                    reply.raise_for_status()
                    if i >= 50:  # warm-up
                        lat[which].append(elapsed)
                        inner[which].append(server_ms(reply))
            results[op] = {
                which: {
                    "p50_ms": pct(lat[which], 50),
                    "p99_ms": pct(lat[which], 99),
                    "router_p50_ms": pct(inner[which], 50),
                }
                for which in ("on", "off")
            }
            results[op]["p50_ratio_on_off"] = (
                results[op]["on"]["p50_ms"] / results[op]["off"]["p50_ms"]
            )
            results[op]["router_p50_ratio_on_off"] = (
                results[op]["on"]["router_p50_ms"] / results[op]["off"]["router_p50_ms"]
            )
        table = TokenTable(parse_tokens(raw_tokens))
        reps = 20000
        start = time.perf_counter()
        for _ in range(reps):
            table.match(TOKEN.encode())
        match_us = (time.perf_counter() - start) / reps * 1e6
    finally:
        for r in routers.values():
            r.stop()
        for s in shards:
            s.close()
    report = {
        "setup": {
            "vectors": args.n,
            "dim": args.dim,
            "shards": 2,
            "requests_per_router": args.requests,
            "token_entries": args.entries,
            "client_concurrency": 1,
            "python": platform.python_version(),
            "machine": platform.machine(),
        },
        "results": results,
        "token_match_us": match_us,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "auth.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(report, args.out / "auth.png")
    print(json.dumps(report, indent=2))


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ops = list(report["results"])
    fig, axes = plt.subplots(1, len(ops), figsize=(5 * len(ops), 4))
    for ax, op in zip(axes, ops, strict=True):
        r = report["results"][op]
        labels = ["end to end p50", "inside router p50"]
        off = [r["off"]["p50_ms"], r["off"]["router_p50_ms"]]
        on = [r["on"]["p50_ms"], r["on"]["router_p50_ms"]]
        x = np.arange(len(labels))
        ax.bar(x - 0.2, off, 0.4, label="auth off")
        ax.bar(x + 0.2, on, 0.4, label="auth on")
        ax.set_xticks(x, labels)
        ax.set_ylabel("ms")
        ax.set_title(f"{op}: p50 on/off = {r['p50_ratio_on_off']:.3f}")
        ax.legend()
    entries = report["setup"]["token_entries"]
    fig.suptitle(f"Router token auth cost, 1 client, {entries} tokens in the file")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    main()
