"""Replication benchmark: what acknowledgement + hint logs cost, and how fast hints replay.

1. Write p50 with every replica healthy: this branch's router vs the router of a baseline
   git ref (default `main`, extracted with `git archive`), both over the same 2 shards x
   2 replicas of real `chroma run` servers, sequential upserts of 10 records, rounds
   interleaved (A, B, A, B, ...) so drift hits both alike. Target ratio <= 1.05.
2. Hint replay: kill -9 one replica of each shard, write W batches (they become hints),
   start the replicas again and time until every replica is in sync: records/s. Then the
   same through a router whose topology lists peers, so each replay is also reconciled
   with an in-sync sibling (what routers in Kubernetes do): the same records/s, side by
   side.

    python bench/replicas.py [--baseline main] [--writes 300] [--rounds 4] [--out bench/results]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "operator"))
sys.path.insert(0, str(ROOT / "tests"))

from chroma_operator.local.chroma_server import ChromaServer, free_port  # noqa: E402
from router_harness import RouterProcess, make_topology, start_servers  # noqa: E402

DIM = 32
BATCH = 10


def baseline_tree(ref: str) -> Path:
    """The baseline ref's `operator/` package in a temporary directory."""
    out = Path(tempfile.mkdtemp(prefix="baseline-"))
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", ref, "operator"], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(out)], input=archive, check=True)
    return out / "operator"


class BaselineRouter(RouterProcess):
    """The same harness, running another checkout's router code."""

    def __init__(self, topology: Any, package_root: Path) -> None:
        self.package_root = package_root
        super().__init__(topology)

    def write_topology(self, topology: Any) -> None:
        """Without the fields this branch added (the baseline's model forbids them)."""
        doc = topology.model_dump(mode="json")
        for key in ("replication", "replica_states", "fenced", "hints_dir"):
            doc.pop(key, None)
        doc["router"].pop("hedging", None)
        self.topology_path.write_text(json.dumps(doc))

    def start(self) -> RouterProcess:
        import router_harness

        saved = router_harness.PACKAGE_ROOT
        router_harness.PACKAGE_ROOT = str(self.package_root)
        try:
            return super().start()
        finally:
            router_harness.PACKAGE_ROOT = saved


def timed_upserts(col: Any, n: int, prefix: str, rng: np.random.Generator) -> list[float]:
    out = []
    for k in range(n):
        ids = [f"{prefix}-{k}-{j}" for j in range(BATCH)]
        emb = rng.standard_normal((BATCH, DIM)).astype(np.float32)
        start = time.perf_counter()
        col.upsert(ids=ids, embeddings=emb, metadatas=[{"k": k}] * BATCH)
        out.append(time.perf_counter() - start)
    return out


def wait_in_sync(url: str, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = httpx.get(url + "/internal/replicas", timeout=5).json()["replicas"]
        if all(r["state"] == "in-sync" and r["pending_hints"] == 0 for r in rows):
            return
        time.sleep(0.05)
    raise RuntimeError("replicas did not catch up")


def replayed_records(url: str) -> float:
    total = 0.0
    for line in httpx.get(url + "/metrics", timeout=5).text.splitlines():
        if line.startswith("chroma_router_hints_replayed_records_total{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def replay(
    router: RouterProcess, grid: list[list[ChromaServer]], hinted: int, rng: np.random.Generator
) -> dict[str, float]:
    """Replica 1 of each shard down while `hinted` batches arrive, then back: how long
    until every replica is in sync, and how many records were replayed."""
    col = router.client().get_or_create_collection("bench-replay")  # needs every replica
    lost = [shard[1] for shard in grid]
    for s in lost:
        s.kill()
    timed_upserts(col, hinted, f"hinted-{router.port}", rng)
    pending = sum(
        r["pending_hints"] for r in httpx.get(router.url + "/internal/replicas").json()["replicas"]
    )
    before = replayed_records(router.url)
    for s in lost:
        s.start()
    start = time.perf_counter()
    wait_in_sync(router.url)
    seconds = time.perf_counter() - start
    records = replayed_records(router.url) - before
    return {
        "hints_pending": pending,
        "records": records,
        "seconds_from_return_to_in_sync": seconds,
        "records_per_s": records / seconds if seconds else 0.0,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline", default="main")
    ap.add_argument("--writes", type=int, default=300, help="Upserts per round and router")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument(
        "--hinted", type=int, default=300, help="Batches written while replicas are down"
    )
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = ap.parse_args()

    servers = start_servers(4)
    grid = [servers[:2], servers[2:]]
    urls = [[s.url for s in shard] for shard in grid]
    hints = Path(tempfile.mkdtemp(prefix="bench-hints-"))
    ours = RouterProcess(make_topology(urls, hints_dir=str(hints))).start()
    base = BaselineRouter(make_topology(urls), baseline_tree(args.baseline)).start()
    rng = np.random.default_rng(0)
    try:
        cols = {}
        for label, router in (("this", ours), ("baseline", base)):
            cols[label] = router.client().get_or_create_collection(f"bench-{label}")
            timed_upserts(cols[label], 30, "warm", rng)  # connections, caches
        lat: dict[str, list[float]] = {"this": [], "baseline": []}
        for r in range(args.rounds):
            order = ["this", "baseline"] if r % 2 == 0 else ["baseline", "this"]
            for label in order:
                lat[label] += timed_upserts(cols[label], args.writes, f"r{r}", rng)
        p50 = {k: statistics.median(v) * 1000 for k, v in lat.items()}
        p99 = {k: float(np.percentile(v, 99)) * 1000 for k, v in lat.items()}

        # Hint replay: one replica of each shard down while batches arrive; then the same
        # through a router that reconciles its replays (its topology lists peers).
        plain = replay(ours, grid, args.hinted, rng)
        ours.stop()
        port = free_port()
        ours = RouterProcess(
            make_topology(
                urls,
                hints_dir=tempfile.mkdtemp(prefix="bench-hints-"),
                peers=[f"http://127.0.0.1:{port}"],
            ),
            port=port,
        ).start()
        reconciled = replay(ours, grid, args.hinted, rng)
    finally:
        ours.stop()
        base.stop()
        for s in servers:
            s.close()

    result = {
        "what": "write p50 (10-record upserts, 2 shards x 2 replicas, all healthy) and hint replay",
        "machine": f"{platform.machine()}, {platform.processor() or platform.platform()}",
        "baseline_ref": args.baseline,
        "writes_per_router": len(lat["this"]),
        "write_p50_ms": p50,
        "write_p99_ms": p99,
        "write_p50_ratio": p50["this"] / p50["baseline"],
        "target_ratio": 1.05,
        "replay": plain,
        "replay_reconciled": reconciled,
        "reconciled_replay_rate_ratio": reconciled["records_per_s"] / plain["records_per_s"],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "replicas.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(result, lat, args.out / "replicas.png")
    print(json.dumps(result, indent=2))


def plot(result: dict[str, Any], lat: dict[str, list[float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    data = [np.array(lat["baseline"]) * 1000, np.array(lat["this"]) * 1000]
    a.boxplot(data, showfliers=False)
    a.set_xticks([1, 2], [f"baseline ({result['baseline_ref']})", "acks + hints"])
    a.set_ylabel("upsert latency, ms")
    a.set_title(f"write p50 ratio {result['write_p50_ratio']:.3f} (target <= 1.05)")
    kinds = ("replay", "replay_reconciled")
    b.bar(["hint replay", "replay + reconcile"], [result[k]["records_per_s"] for k in kinds])
    b.set_ylabel("records/s")
    b.set_title(
        f"{result['replay']['records']:.0f} records each; reconciled "
        f"{result['reconciled_replay_rate_ratio']:.2f}x the rate"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
