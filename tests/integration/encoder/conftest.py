"""Fixtures for the encoder suite: the real encoder as a subprocess, the real model.

The model load is the slow part, so each test module starts one encoder (module scope)
and the reference `SentenceTransformer` is loaded once per session.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

os.environ["HF_HUB_OFFLINE"] = "1"  # nothing may come from a hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import chroma_operator

MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RunningEncoder:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        return self.process.poll() is None


def encoder_command(port: int, *args: str) -> list[str]:
    """`python -m chroma_operator encoder` on the CPU with the packaged model."""
    return [
        sys.executable,
        "-m",
        "chroma_operator",
        "encoder",
        "--model",
        MODEL_ID,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--device",
        "cpu",
        # The tests check refusals of over-long input; a test that wants truncation passes
        # --auto-truncate (the later flag wins).
        "--no-auto-truncate",
        *args,
    ]


def start_encoder(tmp: Path, *args: str, timeout: float = 90.0) -> RunningEncoder:
    """Start `python -m chroma_operator encoder` and wait until /health answers 200."""
    port = free_port()
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(chroma_operator.__file__).parents[1])
    env["HF_HUB_OFFLINE"] = "1"
    log = tmp / f"encoder-{port}.log"
    cmd = encoder_command(port, *args)
    with log.open("wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"encoder exited with {proc.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/health", timeout=1.0).status_code == 200:
                return RunningEncoder(url, proc, log)
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"encoder did not become healthy:\n{log.read_text()}")


def stop_encoder(enc: RunningEncoder) -> None:
    enc.process.terminate()
    try:
        enc.process.wait(10)
    except subprocess.TimeoutExpired:
        enc.process.kill()
        enc.process.wait()


@pytest.fixture(scope="module")
def encoder_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., RunningEncoder]]:
    """Start encoders with given flags; all are stopped when the module ends."""
    started: list[RunningEncoder] = []
    tmp = tmp_path_factory.mktemp("encoder")

    def make(*args: str) -> RunningEncoder:
        enc = start_encoder(tmp, *args)
        started.append(enc)
        return enc

    yield make
    for enc in started:
        stop_encoder(enc)


@pytest.fixture(scope="module")
def encoder(encoder_factory: Callable[..., RunningEncoder]) -> RunningEncoder:
    """One encoder with the default settings, shared by a test module."""
    return encoder_factory()


@pytest.fixture(scope="session")
def reference_model() -> Any:
    """The same model loaded directly: the vectors every served answer must equal."""
    from sentence_transformers import SentenceTransformer

    from chroma_operator.encoder.model import resolve_model

    return SentenceTransformer(resolve_model(MODEL_ID), device="cpu")


@pytest.fixture(scope="session")
def reference(reference_model: Any) -> Callable[[list[str]], np.ndarray]:
    def encode(texts: list[str]) -> np.ndarray:
        return np.asarray(
            reference_model.encode(texts, normalize_embeddings=True, show_progress_bar=False),
            dtype=np.float32,
        )

    return encode


def _cosine_rows(a: Any, b: Any) -> np.ndarray:
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    assert x.shape == y.shape, (x.shape, y.shape)
    return np.asarray((x * y).sum(axis=1) / (np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1)))


@pytest.fixture(scope="session")
def cosine() -> Callable[[Any, Any], np.ndarray]:
    """Row-wise cosine similarity of two (n, d) arrays (asserts equal shapes)."""
    return _cosine_rows
