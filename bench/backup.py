"""Backup and restore throughput next to the plain operations they are made of.

Two 2-shard clusters (real `chroma run` shards behind a router each), synthetic 384-dim
float32 vectors with a document and metadata per record, l2 space. Each round:
  add      the stock client's `add` through the source router (batches of 1,000), timed
           twice, before the backup and again after the restore (into a fresh
           collection), and averaged: on a shared machine the load drifts within a round
  scan     a plain `get` scan (embeddings, documents, metadatas, uris) of every shard
  backup   `backup create` of the source to a local folder (scan + Parquet + digest)
  restore  `backup restore` into the empty target (checks, load, count + digest verify)
Every step uses pages of 1,000 records. Ratios: backup / scan and restore / add, per
round (the steps of a round run back to back, so load from other work on the machine
hits both sides alike) and as the ratio of the medians. Medians over the rounds.

    python bench/backup.py [--n 20000] [--rounds 3] [--out bench/results]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "operator"))
sys.path.insert(0, str(ROOT / "tests"))

from chroma_operator.data.backup import create_backup  # noqa: E402
from chroma_operator.data.chroma_http import ChromaHTTP, CollectionRef  # noqa: E402
from chroma_operator.data.digest import scan  # noqa: E402
from chroma_operator.data.loader import DEFAULT_IN_FLIGHT  # noqa: E402
from chroma_operator.data.restore import restore_backup  # noqa: E402
from router_harness import RouterProcess, make_topology, start_servers  # noqa: E402

DIM = 384
NAME = "bench"


def data(n: int) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    return {
        "ids": [f"rec-{i}" for i in range(n)],
        "embeddings": rng.standard_normal((n, DIM)).astype(np.float32),
        "documents": [f"document number {i} with some text" for i in range(n)],
        "metadatas": [{"i": i, "group": i % 10} for i in range(n)],
    }


def wipe(router: RouterProcess) -> None:
    client = router.client()
    for c in client.list_collections():
        client.delete_collection(c.name)


def timed_add(router: RouterProcess, records: dict[str, Any], n: int) -> float:
    """Seconds for the stock client to `add` every record into a fresh collection."""
    wipe(router)
    coll = router.client().create_collection(
        NAME, configuration={"hnsw": {"space": "l2"}}, embedding_function=None
    )
    t = time.perf_counter()
    for s in range(0, n, 1000):
        coll.add(**{k: v[s : s + 1000] for k, v in records.items()})
    return time.perf_counter() - t


def one_round(
    source: RouterProcess, target: RouterProcess, shards: list[str], n: int
) -> dict[str, float]:
    wipe(target)
    records = data(n)
    first_add = timed_add(source, records, n)

    t = time.perf_counter()
    scanned = 0
    for url in shards:
        with ChromaHTTP(url) as http:
            info = http.get_collection("default_tenant", "default_database", NAME)
            assert info is not None
            ref = CollectionRef("default_tenant", "default_database", str(info["id"]), NAME)
            scanned += sum(len(b) for b in scan(http, ref, page_size=1000))
    scan_s = time.perf_counter() - t
    assert scanned == n

    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        result = create_backup(source.url, tmp, page_size=1000)
        backup_s = time.perf_counter() - t
        size_bytes = result.manifest.bytes
        t = time.perf_counter()
        restored = restore_backup(result.location, target.url, page_size=1000)
        restore_s = time.perf_counter() - t
    assert restored.records == n
    add_s = (first_add + timed_add(source, records, n)) / 2
    return {
        "add": n / add_s,
        "scan": n / scan_s,
        "backup": n / backup_s,
        "restore": n / restore_s,
        "backup_bytes": float(size_bytes),
    }


def plot(summary: dict[str, float], path: Path, n: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = ["add", "restore", "scan", "backup"]
    colors = ["#8da0cb", "#66c2a5", "#8da0cb", "#fc8d62"]
    fig, ax = plt.subplots(figsize=(7, 4))
    bars = ax.bar(names, [summary[k] for k in names], color=colors)
    for bar, k in zip(bars, names, strict=True):
        ax.annotate(
            f"{summary[k]:,.0f}",
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center",
            va="bottom",
            fontsize=9,
        )
    ax.set_ylabel("records/s (median)")
    ax.set_title(
        f"{n:,} records x {DIM} dims, 2 shards (medians): restore/add "
        f"{summary['restore_vs_add']:.2f}x, backup/scan {summary['backup_vs_scan']:.2f}x",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = ap.parse_args()
    servers = start_servers(4)
    # A long shard timeout: on a loaded shared machine a big page can take seconds.
    source = RouterProcess(
        make_topology([[s.url] for s in servers[:2]], shard_timeout_seconds=120)
    ).start()
    target = RouterProcess(
        make_topology([[s.url] for s in servers[2:]], shard_timeout_seconds=120)
    ).start()
    try:
        rounds = []
        for r in range(args.rounds):
            row = one_round(source, target, [s.url for s in servers[:2]], args.n)
            print(json.dumps({"round": r, **row}), flush=True)
            rounds.append(row)
    finally:
        source.stop()
        target.stop()
        for s in servers:
            s.close()
    for row in rounds:  # each round's own ratio: its steps ran back to back
        row["restore_vs_add"] = row["restore"] / row["add"]
        row["backup_vs_scan"] = row["backup"] / row["scan"]
    summary = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
    summary["restore_vs_add_of_medians"] = summary["restore"] / summary["add"]
    summary["backup_vs_scan_of_medians"] = summary["backup"] / summary["scan"]
    args.out.mkdir(parents=True, exist_ok=True)
    report = {
        "n": args.n,
        "dim": DIM,
        "shards": 2,
        "restore_pages_in_flight": DEFAULT_IN_FLIGHT,
        "rounds": rounds,
        "median": summary,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
    }
    (args.out / "backup.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(summary, args.out / "backup.png", args.n)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
