"""Benchmark: tune HNSW for the Debian package embeddings served by a real Chroma.

Loads /work/shared/data's 63,666 all-MiniLM-L6-v2 vectors (cosine) into a `chroma run`
server (setup, timed apart), then runs the tuner exactly as the Job does — through the
HTTP API — on a 60k sample with 500 held-out queries, and writes bench/results/tune.json
and tune.png. Goal: the tuner's wall time under 5 minutes on 2 cores.

The default grid spends the build budget where 384-d embeddings need it: maxNeighbors 16
and 32 (M=8 points sit on the front at low recall but were never the choice at 0.95 in
our runs), every efConstruction of the spec's default, and a finer efSearch ladder
(queries are cheap next to builds). `--grid spec` runs the spec's default grid instead
(9 builds; 2.5 minutes at load average 3, 4.5 at load average 6 on 2 cores), written to
tune-spec-grid.json and .png.

    python bench/tune.py [--data FILE] [--sample 60000] [--queries 500] [--grid bench|spec]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "operator"))

from chroma_operator.api.models import Grid  # noqa: E402
from chroma_operator.tuner.report import compact, encode, plot, write_json  # noqa: E402
from chroma_operator.tuner.run import Options, run_tuning  # noqa: E402
from chroma_operator.tuner.sweep import grid_from  # noqa: E402

BENCH_GRID = Grid(
    max_neighbors=[16, 32],
    ef_construction=[64, 128, 256],
    ef_search=[10, 15, 20, 30, 40, 60, 80, 120, 160, 240, 320],
)
DATA = Path("/work/shared/data/debian-packages.minilm-l6-v2.f16.npy")
RESULTS = ROOT / "bench" / "results"


def start_chroma(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    cfg = workdir / "chroma.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "port": port,
                "listen_address": "127.0.0.1",
                "persist_path": str(workdir / "data"),
                "allow_reset": True,
                "max_payload_size_bytes": 41_943_040,
                "cors_allow_origins": [],
                "sqlitedb": {"hash_type": "md5", "migration_mode": "apply"},
            }
        )
    )
    chroma = shutil.which("chroma") or str(Path(sys.executable).with_name("chroma"))
    log = (workdir / "chroma.log").open("ab")
    proc = subprocess.Popen(
        [chroma, "run", str(cfg)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(1200):
        try:
            if httpx.get(f"{url}/api/v2/heartbeat", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("chroma did not start")


def load(url: str, vectors: np.ndarray) -> None:
    import chromadb

    host, port = url.removeprefix("http://").split(":")
    client = chromadb.HttpClient(host=host, port=int(port))
    col = client.create_collection(
        "debian-packages", configuration={"hnsw": {"space": "cosine"}}, embedding_function=None
    )
    batch = client.get_max_batch_size()
    for s in range(0, len(vectors), batch):
        part = vectors[s : s + batch]
        col.add(ids=[f"pkg-{i}" for i in range(s, s + len(part))], embeddings=part)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--sample", type=int, default=60_000)
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--target-recall", type=float, default=0.95)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--grid", choices=["bench", "spec"], default="bench")
    args = ap.parse_args()
    if not args.data.exists():
        sys.exit(f"no data at {args.data}: nothing to benchmark")
    vectors = np.load(args.data).astype(np.float32)
    RESULTS.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="bench-tune-"))
    proc, url = start_chroma(workdir)
    try:
        t0 = time.perf_counter()
        load(url, vectors)
        load_s = time.perf_counter() - t0
        print(f"loaded {len(vectors)} vectors into Chroma in {load_s:.1f} s", flush=True)
        g = BENCH_GRID if args.grid == "bench" else Grid()
        opts = Options(
            url=url,
            collection="debian-packages",
            grid=grid_from(g.max_neighbors, g.ef_construction, g.ef_search),
            k=args.k,
            target_recall=args.target_recall,
            sample=args.sample,
            queries=args.queries,
            progress=sys.stderr.isatty(),
            log=lambda msg: print(msg, flush=True),
        )
        load_before = os.getloadavg()
        t0, cpu0 = time.perf_counter(), time.process_time()
        report = run_tuning(opts)
        wall_s, cpu_s = time.perf_counter() - t0, time.process_time() - cpu0
        load_after = os.getloadavg()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        shutil.rmtree(workdir, ignore_errors=True)

    full = report.to_json()
    small = compact(report)
    out: dict[str, Any] = {
        "benchmark": "tune",
        "data": str(args.data),
        "vectors": len(vectors),
        "dim": int(vectors.shape[1]),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "loadSeconds": round(load_s, 2),
        "tunerWallSeconds": round(wall_s, 2),
        # CPU time of the tuner process (all its threads): with 2 free cores the wall
        # time would be about half of it; a busy machine shows in the load averages.
        "tunerCpuSeconds": round(cpu_s, 2),
        "loadAverage1m": {"before": load_before[0], "after": load_after[0]},
        "goalSeconds": 300,
        "grid": args.grid,
        "compactBytes": len(encode(small)),
        "compact": small,
        "report": full,
    }
    stem = "tune" if args.grid == "bench" else "tune-spec-grid"
    write_json(RESULTS / f"{stem}.json", out)
    plot(report, RESULTS / f"{stem}.png")
    keys = ("tunerWallSeconds", "tunerCpuSeconds", "loadAverage1m", "loadSeconds", "compactBytes")
    print(json.dumps({k: out[k] for k in keys}))
    print(f"status: {report.status} {report.message}")
    print("timings:", {k: round(v, 1) for k, v in report.timings_s.items()})
    for label, key in (("chosen", "chosen"), ("best", "best")):
        print(label, full[key])


if __name__ == "__main__":
    main()
