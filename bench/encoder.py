"""Encoder benchmark: offline `model.encode` throughput (the ceiling) vs served throughput.

Scenarios, all against a real `chroma-operator encoder` subprocess on loopback:
1, 16 and 64 concurrent clients sending one text per request, and 4 clients sending
32-text requests; p50/p99 latency per scenario. Texts are the Debian package
descriptions (a `shared/data` folder beside the checkout) when present, else generated
sentences.

The load generator is a few lines of raw HTTP/1.1 over keep-alive asyncio streams, not
httpx: on a 2-core machine the client shares the CPU with the server, and a heavy client
would measure itself.

    python bench/encoder.py [--device cpu|cuda] [--duration 15] [--out bench/results]
    python bench/encoder.py --device cuda --dtype float16 --max-batch-size 64,128,256,512

Several batch sizes run one after another (one server each) and are compared side by
side; results go to encoder-<device>-<dtype>-b<size>.json/png, one file pair each.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import platform
import random
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "debian-packages.jsonl.gz"
MODEL = "sentence-transformers/all-MiniLM-L6-v2"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# The same OpenMP policy as the server sets for itself, so both sides of the ratio match.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(ROOT / "operator"))


def load_texts(n: int) -> tuple[list[str], str]:
    """Real short texts when the shared data set is there, generated ones otherwise."""
    for candidate in (DATA, Path("/work/shared/data/debian-packages.jsonl.gz")):
        if candidate.exists():
            with gzip.open(candidate, "rt") as fh:
                texts = [json.loads(line)["text"] for line in fh]
            random.Random(0).shuffle(texts)
            return texts[:n], candidate.name
    rng = random.Random(0)
    words = [
        "fast",
        "small",
        "secure",
        "library",
        "tool",
        "server",
        "client",
        "data",
        "graph",
        "image",
        "audio",
        "video",
        "text",
        "network",
        "file",
        "system",
        "database",
        "editor",
        "game",
        "font",
        "driver",
        "kernel",
        "python",
        "rust",
        "web",
    ]
    return [" ".join(rng.choices(words, k=rng.randint(3, 14))) for _ in range(n)], "generated"


class Offline:
    """`SentenceTransformer.encode` in this process: the ceiling the server is compared with.

    Measured in short windows right before and after each served scenario, so on a shared
    machine both sides of the ratio see the same background load.
    """

    def __init__(
        self, texts: list[str], device: str, batch_size: int, threads: int | None, dtype: str
    ) -> None:
        import torch
        from sentence_transformers import SentenceTransformer

        from chroma_operator.encoder.model import available_cpus, pick_dtype, resolve_model

        if device == "cpu":
            torch.set_num_threads(threads or available_cpus())
        self.model = SentenceTransformer(resolve_model(MODEL), device=device)
        precision = pick_dtype(device, dtype)  # type: ignore[arg-type]
        if precision == "float16":
            self.model.half()
        elif precision == "bfloat16":
            self.model.to(torch.bfloat16)
        self.device = device
        self.texts = texts
        self.batch_size = batch_size
        self.cursor = 0
        self.model.encode(texts[:256], batch_size=batch_size)

    def window(self, seconds: float) -> tuple[float, float]:
        """(texts per wall second, texts per CPU second) over chunks of 8 batches."""
        import torch

        chunk = self.batch_size * 8
        done = 0
        c0 = time.process_time()
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            start = self.cursor % len(self.texts)
            part = self.texts[start : start + chunk]
            self.cursor += chunk
            self.model.encode(part, batch_size=self.batch_size, show_progress_bar=False)
            done += len(part)
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
        return done / (time.perf_counter() - t0), done / (time.process_time() - c0)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Conn:
    """One keep-alive HTTP/1.1 connection that posts JSON and reads one response."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Conn:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json"
            f"\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        self.writer.write(head + body)
        raw = await self.reader.readuntil(b"\r\n\r\n")
        status = int(raw[9:12])
        m = re.search(rb"(?i)content-length: *(\d+)", raw)
        length = int(m.group(1)) if m else 0
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


async def scenario(
    port: int, texts: list[str], clients: int, per_request: int, duration: float
) -> dict[str, Any]:
    """`clients` closed-loop callers for `duration` s; each request a fresh slice of texts."""
    conns = [await Conn.open(port) for _ in range(clients)]
    latencies: list[float] = []
    done_texts = 0
    errors = 0
    stop_at = time.perf_counter() + duration
    counter = 0

    async def caller(conn: Conn) -> None:
        nonlocal done_texts, errors, counter
        while time.perf_counter() < stop_at:
            i = counter
            counter += per_request
            batch = [texts[(i + k) % len(texts)] for k in range(per_request)]
            body = json.dumps({"inputs": batch}).encode()
            t0 = time.perf_counter()
            status, payload = await conn.post("/embed", body)
            latencies.append(time.perf_counter() - t0)
            if status == 200 and payload.startswith(b"[["):
                done_texts += per_request
            else:
                errors += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(caller(c) for c in conns))
    elapsed = time.perf_counter() - t0
    for c in conns:
        c.close()
    lat = np.asarray(latencies) * 1000
    return {
        "clients": clients,
        "texts_per_request": per_request,
        "seconds": round(elapsed, 2),
        "requests": len(latencies),
        "errors": errors,
        "texts_per_s": round(done_texts / elapsed, 1),
        "latency_ms": {
            "p50": round(float(np.percentile(lat, 50)), 2),
            "p90": round(float(np.percentile(lat, 90)), 2),
            "p99": round(float(np.percentile(lat, 99)), 2),
        },
    }


def _metric(text: str, name: str) -> float:
    m = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def scrape(port: int) -> str:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return str(r.read().decode())


def start_server(port: int, device: str, extra: list[str]) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "operator"), HF_HUB_OFFLINE="1")
    cmd = [
        sys.executable,
        "-m",
        "chroma_operator",
        "encoder",
        "--model",
        MODEL,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--device",
        device,
        "--log-level",
        "warning",
        *extra,
    ]
    proc = subprocess.Popen(cmd, env=env)
    import urllib.request

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"encoder exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
                return proc
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise SystemExit("encoder did not start")


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["served"]
    labels = [f"{r['clients']}x{r['texts_per_request']}" for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    ax1.bar(labels, [r["texts_per_s"] for r in rows], color="#4c72b0", label="served")
    ax1.plot(
        labels,
        [r["offline_adjacent_texts_per_s"] for r in rows],
        "k_",
        ms=30,
        mew=2,
        label="offline, measured next to it",
    )
    ax1.axhline(
        result["offline_texts_per_s"],
        color="#c44e52",
        ls="--",
        label=f"offline median {result['offline_texts_per_s']:.0f}/s",
    )
    ax1.axhline(0.9 * result["offline_texts_per_s"], color="#c44e52", ls=":", label="0.9x offline")
    ax1.set_ylabel("texts / s")
    ax1.set_xlabel("clients x texts per request")
    ax1.set_title("Throughput")
    ax1.legend(loc="lower right", fontsize=8)
    x = np.arange(len(rows))
    ax2.bar(x - 0.2, [r["latency_ms"]["p50"] for r in rows], 0.4, label="p50")
    ax2.bar(x + 0.2, [r["latency_ms"]["p99"] for r in rows], 0.4, label="p99")
    ax2.set_xticks(x, labels)
    ax2.set_yscale("log")
    ax2.set_ylabel("request latency (ms)")
    ax2.set_xlabel("clients x texts per request")
    ax2.set_title("Latency")
    ax2.legend(fontsize=8)
    fig.suptitle(
        f"chroma-operator encoder, all-MiniLM-L6-v2, {result['device']} "
        f"({result['dtype']}), batch {result['max_batch_size']}"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def batch_sizes(text: str) -> list[int]:
    """`64` or `64,128,256,512`."""
    try:
        sizes = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of integers: {text!r}") from None
    if not sizes or any(not 1 <= n <= 4096 for n in sizes):
        raise argparse.ArgumentTypeError("batch sizes must be between 1 and 4096")
    return sizes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--duration", type=float, default=15.0, help="seconds per scenario")
    ap.add_argument(
        "--offline-seconds",
        type=float,
        default=6.0,
        help="length of each offline window (one before, one after each scenario)",
    )
    from chroma_operator.api.models import Batching

    ap.add_argument(
        "--max-batch-size",
        type=batch_sizes,
        default=[Batching().max_batch_size],
        help="texts per forward pass, or several to compare (e.g. 64,128,256,512) "
        "[default: what a ChromaCluster's encoder runs with]",
    )
    ap.add_argument(
        "--dtype",
        default="auto",
        choices=["auto", "float32", "float16", "bfloat16"],
        help="precision of both the server and the offline ceiling (float16 needs a GPU)",
    )
    ap.add_argument("--max-batch-delay-ms", type=float, default=None)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = ap.parse_args()

    if args.dtype == "float16" and args.device != "cuda":
        ap.error("--dtype float16 needs --device cuda")
    sizes = args.max_batch_size
    results = []
    for batch in sizes:
        stem = "encoder" if len(sizes) == 1 else f"encoder-{args.device}-{args.dtype}-b{batch}"
        results.append(run_one(args, batch, stem))
    if len(results) > 1:
        base = results[0]
        print(
            f"\n| batch | offline texts/s | 64x1 served texts/s | 4x32 served | "
            f"offline vs batch {sizes[0]} |"
        )
        print("|---|---|---|---|---|")
        for batch, r in zip(sizes, results, strict=True):
            by = {(x["clients"], x["texts_per_request"]): x for x in r["served"]}
            ratio = r["offline_texts_per_s"] / base["offline_texts_per_s"]
            print(
                f"| {batch} | {r['offline_texts_per_s']:.0f} | {by[(64, 1)]['texts_per_s']:.0f} "
                f"| {by[(4, 32)]['texts_per_s']:.0f} | {ratio:.2f} |"
            )


def run_one(args: argparse.Namespace, batch: int, stem: str) -> dict[str, Any]:
    """One server at one batch size: offline ceiling and served scenarios side by side."""
    texts, source = load_texts(20_000)
    started = time.time()
    load_before = os.getloadavg()
    ceiling_model = Offline(texts, args.device, batch, args.threads, args.dtype)

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    extra = ["--max-batch-size", str(batch), "--dtype", args.dtype]
    if args.max_batch_delay_ms is not None:
        extra += ["--max-batch-delay-ms", str(args.max_batch_delay_ms)]
    if args.threads:
        extra += ["--threads", str(args.threads)]
    proc = start_server(port, args.device, extra)
    served = []
    offline_runs: list[float] = []
    offline_cpu: list[float] = []
    try:
        try:
            import uvloop

            runner: Any = uvloop.run
        except ImportError:
            runner = asyncio.run
        runner(scenario(port, texts, 8, 1, 2.0))  # warm up
        wall, cpu = ceiling_model.window(args.offline_seconds)
        offline_runs.append(wall)
        offline_cpu.append(cpu)
        for clients, per_request in ((1, 1), (16, 1), (64, 1), (4, 32)):
            before = scrape(port)
            c0 = cpu_seconds(proc.pid)
            row = runner(scenario(port, texts, clients, per_request, args.duration))
            server_cpu = cpu_seconds(proc.pid) - c0
            after = scrape(port)
            wall, cpu = ceiling_model.window(args.offline_seconds)
            offline_runs.append(wall)
            offline_cpu.append(cpu)
            adjacent = (offline_runs[-2] + offline_runs[-1]) / 2
            adjacent_cpu = (offline_cpu[-2] + offline_cpu[-1]) / 2
            texts_done = row["texts_per_s"] * row["seconds"]
            row["server_texts_per_cpu_s"] = round(texts_done / server_cpu, 1)
            row["offline_texts_per_cpu_s"] = round(adjacent_cpu, 1)
            row["cpu_efficiency_vs_offline"] = round(texts_done / server_cpu / adjacent_cpu, 3)
            batches = _metric(after, "chroma_encoder_batch_size_count") - _metric(
                before, "chroma_encoder_batch_size_count"
            )
            summed = _metric(after, "chroma_encoder_batch_size_sum") - _metric(
                before, "chroma_encoder_batch_size_sum"
            )
            row["mean_batch_size"] = round(summed / batches, 1) if batches else 0.0
            row["offline_adjacent_texts_per_s"] = round(adjacent, 1)
            row["vs_offline"] = round(row["texts_per_s"] / adjacent, 3)
            served.append(row)
            print(json.dumps(row), flush=True)
        info = json.loads(
            __import__("urllib.request").request.urlopen(f"http://127.0.0.1:{port}/info").read()
        )
    finally:
        proc.terminate()
        proc.wait(20)
    ceiling = float(np.median(offline_runs))

    result = {
        "model": MODEL,
        "texts": source,
        "device": info["device"],
        "dtype": info["dtype"],
        "max_batch_size": info["max_batch_size"],
        "max_batch_delay_ms": info["max_batch_delay_ms"],
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "offline_texts_per_s": round(ceiling, 1),
        "offline_windows_texts_per_s": [round(x, 1) for x in offline_runs],
        "offline_windows_texts_per_cpu_s": [round(x, 1) for x in offline_cpu],
        "note": "vs_offline compares wall-clock throughput with offline windows measured "
        "right before and after each scenario; cpu_efficiency_vs_offline compares "
        "texts per CPU-second of the server process with texts per CPU-second of "
        "offline encode, which stays meaningful when other work shares the machine",
        "load_average_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "served": served,
        "target": "served at 64 concurrent single-text clients >= 0.9x offline (CPU)",
        "target_met": next(r for r in served if r["clients"] == 64)["vs_offline"] >= 0.9,
        "wall_seconds": round(time.time() - started, 1),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(result, args.out / f"{stem}.png")
    print(
        f"\n| scenario | texts/s | vs adjacent offline | texts/CPU-s vs offline | "
        f"mean batch | p50 ms | p99 ms |\n|---|---|---|---|---|---|---|\n"
        f"| offline encode (batch {batch}, median) | {ceiling:.0f} | 1.00 | 1.00 | {batch} | | |"
    )
    for r in served:
        print(
            f"| {r['clients']} clients x {r['texts_per_request']} text(s) | "
            f"{r['texts_per_s']:.0f} | {r['vs_offline']:.2f} | "
            f"{r['cpu_efficiency_vs_offline']:.2f} | {r['mean_batch_size']} | "
            f"{r['latency_ms']['p50']} | {r['latency_ms']['p99']} |"
        )
    return result


if __name__ == "__main__":
    main()
