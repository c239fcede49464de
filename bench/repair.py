"""Repair throughput: how fast `chroma-operator repair` digests and fixes replicas.

One shard with two real `chroma run` replicas behind a real router, N records written
through the router. Side by side, in interleaved rounds (median of --rounds):

- clean: replicas agree; the repair only digests both (records read per second);
- drift-1pct: 1% of the records deleted on one replica behind the router's back;
- full-copy: the collection dropped on one replica (created again and refilled);
- limited: drift-1pct with the default rate limit (5,000 records/s), to show the pacing.

    python bench/repair.py [--n 20000] [--dim 64] [--rounds 3] [--out bench/results]

Writes repair.json and repair.png under --out.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
from pathlib import Path
from typing import Any

import chromadb
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "operator"))
sys.path.insert(0, str(ROOT / "tests"))

from chroma_operator.repair.run import Options, run_repair  # noqa: E402
from router_harness import RouterProcess, make_topology, start_servers  # noqa: E402

NAME = "bench-repair"


def fill(router: RouterProcess, n: int, dim: int) -> list[str]:
    col = router.client().create_collection(NAME)
    rng = np.random.default_rng(0)
    ids = [f"id{i}" for i in range(n)]
    for start in range(0, n, 1000):
        part = ids[start : start + 1000]
        col.add(
            ids=part,
            embeddings=rng.standard_normal((len(part), dim)).astype(np.float32).tolist(),
            documents=[f"document {i}" for i in range(start, start + len(part))],
            metadatas=[{"i": i} for i in range(start, start + len(part))],
        )
    return ids


def one(router: RouterProcess, replica: Any, ids: list[str], setup: str) -> dict[str, float]:
    """Damage the replica as `setup` says, repair, and measure."""
    if setup in ("drift-1pct", "limited"):
        replica.get_collection(NAME).delete(ids=ids[::100])
    elif setup == "full-copy":
        replica.delete_collection(NAME)
    rate = 5_000 if setup == "limited" else 0
    report = run_repair(Options(url=router.url, collection=NAME, records_per_second=rate))
    assert report.converged, report.summary()
    t = report.totals()
    fixed = t["copied"] + t["removed"] + t["overwritten"]
    return {
        "seconds": t["seconds"],
        "records_read": t["recordsRead"],
        "records_fixed": fixed,
        "read_per_s": t["recordsRead"] / t["seconds"],
        "collection_records_per_s": len(ids) / t["seconds"],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = ap.parse_args()
    servers = start_servers(2)
    router = RouterProcess(make_topology([[s.url for s in servers]])).start()
    setups = ("clean", "drift-1pct", "full-copy", "limited")
    runs: dict[str, list[dict[str, float]]] = {s: [] for s in setups}
    try:
        ids = fill(router, args.n, args.dim)
        replica = chromadb.HttpClient(host="127.0.0.1", port=servers[1].port)
        for r in range(args.rounds):
            for setup in setups:
                runs[setup].append(one(router, replica, ids, setup))
                print(setup, r, json.dumps(runs[setup][-1]), flush=True)
    finally:
        router.stop()
        for s in servers:
            s.close()
    med = {s: {k: statistics.median(x[k] for x in runs[s]) for k in runs[s][0]} for s in setups}
    clean = med["clean"]["seconds"]
    ratios = {f"{s}_time_vs_clean": round(med[s]["seconds"] / clean, 2) for s in setups}
    report = {
        "bench": "repair",
        "n": args.n,
        "dim": args.dim,
        "replicas": 2,
        "rounds": args.rounds,
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}",
        "median": med,
        "ratios": ratios,
        "runs": runs,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "repair.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(report, args.out / "repair.png")
    print(json.dumps({"median": med, "ratios": ratios}, indent=2))


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    med = report["median"]
    names = list(med)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), dpi=110)
    axes[0].bar(names, [med[n]["collection_records_per_s"] for n in names], color="#4477aa")
    axes[0].set_title(f"collection records repaired per second (n={report['n']})")
    axes[1].bar(names, [med[n]["seconds"] for n in names], color="#cc6677")
    axes[1].set_title("seconds per repair run (median)")
    for ax in axes:
        ax.tick_params(axis="x", rotation=20)
    fig.tight_layout()
    fig.savefig(path)


if __name__ == "__main__":
    main()
