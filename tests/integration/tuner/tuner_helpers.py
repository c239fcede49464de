"""Helpers for the tuner's integration tests: a real `chroma run`, data, and the CLI.

The server class is a small copy on purpose (the suite's shared fixture lands with the
local runtime); it owns a free loopback port, a data directory and a clean stop.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import chromadb
import httpx
import numpy as np
import yaml

import chroma_operator


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def chroma_executable() -> str:
    beside = Path(sys.executable).with_name("chroma")
    found = str(beside) if beside.exists() else shutil.which("chroma")
    if not found:
        raise RuntimeError("the `chroma` command from the chromadb wheel is not installed")
    return found


class ChromaProcess:
    """`chroma run CONFIG` on loopback, waited for by its heartbeat."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ChromaProcess:
        config = {
            "port": self.port,
            "listen_address": "127.0.0.1",
            "persist_path": str(self.workdir / "data"),
            "allow_reset": True,
            "max_payload_size_bytes": 41_943_040,
            "cors_allow_origins": [],
            "sqlitedb": {"hash_type": "md5", "migration_mode": "apply"},
        }
        cfg = self.workdir / "chroma.yaml"
        cfg.write_text(yaml.safe_dump(config))
        log = (self.workdir / "chroma.log").open("ab")
        env = {**os.environ, "ANONYMIZED_TELEMETRY": "False"}
        self.proc = subprocess.Popen(
            [chroma_executable(), "run", str(cfg)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError((self.workdir / "chroma.log").read_text()[-2000:])
            try:
                if httpx.get(f"{self.url}/api/v2/heartbeat", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"chroma did not come up on {self.url}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def client(self) -> Any:
        return chromadb.HttpClient(
            host="127.0.0.1",
            port=self.port,
            settings=chromadb.config.Settings(anonymized_telemetry=False),
        )


def blobs(n: int, d: int, seed: int, clusters: int = 40) -> np.ndarray:
    """Gaussian blobs around random centres: clustered like real embeddings, and seeded."""
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(12345).normal(size=(clusters, d)) * 3
    return (centres[rng.integers(0, clusters, n)] + rng.normal(size=(n, d))).astype(np.float32)


def load(client: Any, name: str, vectors: np.ndarray, space: str, **hnsw: int) -> Any:
    col = client.create_collection(
        name, configuration={"hnsw": {"space": space, **hnsw}}, embedding_function=None
    )
    for s in range(0, len(vectors), 5000):
        part = vectors[s : s + 5000]
        col.add(ids=[f"v{i}" for i in range(s, s + len(part))], embeddings=part)
    return col


@dataclass
class CliRun:
    code: int
    stdout: str
    stderr: str
    report: dict[str, Any] | None


def run_cli(args: list[str], report: Path | None = None, timeout: float = 300) -> CliRun:
    """The real command in a child process: `python -m chroma_operator tune ...`."""
    package_root = Path(chroma_operator.__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(package_root), "ANONYMIZED_TELEMETRY": "False"}
    cmd = [sys.executable, "-m", "chroma_operator", "tune", *args]
    if report is not None:
        cmd += ["--report", str(report)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    data = json.loads(report.read_text()) if report is not None and report.exists() else None
    return CliRun(proc.returncode, proc.stdout, proc.stderr, data)


class RouterOverShards:
    """`chroma-operator router` in front of `n` real Chroma shards (one replica each)."""

    def __init__(self, workdir: Path, shards: int = 2) -> None:
        self.workdir = workdir
        self.shards = [ChromaProcess(self._dir(f"shard-{i}")) for i in range(shards)]
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def _dir(self, name: str) -> Path:
        path = self.workdir / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> RouterOverShards:
        from chroma_operator.topology import ShardTopology, Topology

        for shard in self.shards:
            shard.start()
        topology = Topology(
            cluster="tuner-test",
            namespace="default",
            shards=[ShardTopology(index=i, endpoints=[s.url]) for i, s in enumerate(self.shards)],
        )
        path = self.workdir / "topology.json"
        path.write_text(topology.to_json())
        package_root = Path(chroma_operator.__file__).resolve().parent.parent
        log = (self.workdir / "router.log").open("ab")
        args = ["--topology", str(path), "--port", str(self.port), "--host", "127.0.0.1"]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "chroma_operator", "router", *args, "--log-level", "warning"],
            env={**os.environ, "PYTHONPATH": str(package_root)},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError((self.workdir / "router.log").read_text()[-2000:])
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("the router did not come up")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        for shard in self.shards:
            shard.stop()

    def client(self) -> Any:
        return chromadb.HttpClient(
            host="127.0.0.1",
            port=self.port,
            settings=chromadb.config.Settings(anonymized_telemetry=False),
        )


@dataclass
class Verdict:
    """The chosen point measured again on unseen queries over the whole collection."""

    recall: float
    p50_ms: float
    fastest: tuple[int, int, int]
    fastest_p50_ms: float


def verify_on_unseen(
    data: np.ndarray,
    fresh: np.ndarray,
    grid: dict[str, list[int]],
    chosen: dict[str, Any],
    space: str,
    k: int,
    target: float,
) -> Verdict:
    """Measure every grid point on `fresh` queries (never seen by the tuner) with the whole
    collection as the base; return the chosen point's numbers and the fastest passing one."""
    from chroma_operator.tuner.spaces import parse_space, prepare
    from chroma_operator.tuner.sweep import build_index, measure
    from chroma_operator.tuner.truth import exact_topk

    sp = parse_space(space)
    base, queries = prepare(data, sp), prepare(fresh, sp)
    truth = exact_topk(base, queries, k, sp)
    measured: dict[tuple[int, int, int], tuple[float, float]] = {}
    for m in grid["M"]:
        for efc in grid["efc"]:
            index = build_index(base, sp, m, efc, threads=2)
            for ef in grid["ef"]:
                recall, p50, *_ = measure(index, base, queries, truth, sp, k, ef, repeats=3)
                measured[(m, efc, ef)] = (recall, p50)
    key = (chosen["maxNeighbors"], chosen["efConstruction"], chosen["efSearch"])
    meeting = {p: v for p, v in measured.items() if v[0] >= target}
    fastest = min(meeting, key=lambda p: meeting[p][1]) if meeting else key
    return Verdict(
        measured[key][0], measured[key][1], fastest, meeting.get(fastest, measured[key])[1]
    )
