"""`tune --verify`: what clients get from the live collection now, measured end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import chromadb
import numpy as np
import pytest

import chroma_operator
from chroma_operator.local.chroma_server import ChromaServer

SOURCE_ROOT = str(Path(chroma_operator.__file__).resolve().parents[1])


@pytest.fixture(scope="module")
def server() -> Iterator[ChromaServer]:
    with ChromaServer() as s:
        client = chromadb.HttpClient(host="127.0.0.1", port=s.port)
        col = client.create_collection(
            "verify-me", configuration={"hnsw": {"space": "cosine", "ef_search": 64}}
        )
        vectors = np.random.default_rng(3).standard_normal((2000, 16)).astype(np.float32)
        col.add(ids=[f"v{i}" for i in range(2000)], embeddings=vectors)
        yield s


def test_verify_measures_the_live_collection(server: ChromaServer, tmp_path: Path) -> None:
    report, termination = tmp_path / "verify.json", tmp_path / "termination-log"
    termination.write_text("")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "chroma_operator",
            "tune",
            "--url",
            server.url,
            "--collection",
            "verify-me",
            "--verify",
            "--sample",
            "2000",
            "--queries",
            "50",
            "--report",
            str(report),
            "--termination-log",
            str(termination),
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": SOURCE_ROOT},
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    full = json.loads(report.read_text())
    assert full["points"] == []  # no sweep, no index built
    live = full["verify"]
    assert live["efSearch"] == 64 and live["exactTruth"] is True
    assert 0.9 <= live["recall"] <= 1.0 and live["p50Ms"] > 0
    compact = json.loads(termination.read_text())
    assert compact["status"] == "ok" and compact["verify"] == live
