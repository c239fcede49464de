"""Scale-down drops nothing: a real encoder (the real model) gets SIGTERM with requests in
flight, turns unready, keeps serving through the drain delay, then answers every accepted
request before it exits. Also: /ready is 503 while the model loads."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

import chroma_operator
from conftest import encoder_command, free_port

pytestmark = pytest.mark.slow

DRAIN_DELAY = 0.5
REQUESTS = 16
TEXTS_PER_REQUEST = 16
WORDS = [
    "shard",
    "router",
    "encoder",
    "replica",
    "vector",
    "index",
    "query",
    "latency",
    "batch",
    "queue",
    "cluster",
    "node",
    "operator",
    "recall",
    "storage",
    "tenant",
    "collection",
    "embedding",
    "document",
    "search",
    "ranking",
]


def _texts(request: int) -> list[str]:
    out = []
    for j in range(TEXTS_PER_REQUEST):
        n = request * TEXTS_PER_REQUEST + j
        words = [WORDS[(n * 7 + k * 3) % len(WORDS)] for k in range(12 + n % 12)]
        out.append(f"text {n}: " + " ".join(words))
    return out


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not exported")


def _start(tmp_path: Path) -> tuple[subprocess.Popen[bytes], str, Path, list[int]]:
    """Start the encoder and poll /ready from the moment the port opens until 200."""
    port = free_port()
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    env["PYTHONPATH"] = str(Path(chroma_operator.__file__).parents[1])
    log = tmp_path / "encoder.log"
    cmd = encoder_command(
        port,
        "--max-batch-size",
        "16",
        "--drain-delay-seconds",
        str(DRAIN_DELAY),
        "--shutdown-timeout-seconds",
        "120",
    )
    with log.open("wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    seen: list[int] = []
    deadline = time.monotonic() + 300  # torch's import alone is slow on a busy machine
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"encoder exited with {proc.returncode}:\n{log.read_text()}")
        try:
            seen.append(httpx.get(f"{url}/ready", timeout=2.0).status_code)
        except httpx.TransportError:
            time.sleep(0.05)
            continue
        if seen[-1] == 200:
            return proc, url, log, seen
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"encoder never became ready:\n{log.read_text()}")


async def _load_then_sigterm(
    proc: subprocess.Popen[bytes], url: str
) -> tuple[list[tuple[list[str], httpx.Response, float]], dict[str, Any], float]:
    """Send every request at once, SIGTERM while they are queued, probe the drain."""
    limits = httpx.Limits(max_connections=REQUESTS, max_keepalive_connections=REQUESTS)
    async with httpx.AsyncClient(timeout=180.0, limits=limits) as client:

        async def one(texts: list[str]) -> tuple[list[str], httpx.Response, float]:
            rsp = await client.post(f"{url}/embed", json={"inputs": texts})
            return texts, rsp, time.monotonic()

        tasks = [asyncio.create_task(one(_texts(i))) for i in range(REQUESTS)]
        async with httpx.AsyncClient(timeout=180.0) as probe:
            while True:  # until the queue holds texts: requests are really in flight
                metrics = (await probe.get(f"{url}/metrics")).text
                if _metric(metrics, "chroma_encoder_queue_depth") > 0:
                    break
                await asyncio.sleep(0.01)
            in_flight = _metric(metrics, "chroma_encoder_inflight_texts")
            proc.send_signal(signal.SIGTERM)
            sigterm_at = time.monotonic()
            await asyncio.sleep(0.1)
            during: dict[str, Any] = {
                "in_flight": in_flight,
                "ready": (await probe.get(f"{url}/ready")).status_code,
                "health": (await probe.get(f"{url}/health")).status_code,
            }
            # A request that arrives while endpoints are still being updated is served
            # (queued behind everything else).
            late_texts = ["sent after SIGTERM, within the drain delay"]
            late = await probe.post(f"{url}/embed", json={"inputs": late_texts})
            during["late"] = (late_texts, late, time.monotonic())
        done = await asyncio.gather(*tasks)
    return done, during, sigterm_at


def test_sigterm_drains_every_request_in_flight(
    tmp_path: Path,
    reference: Callable[[list[str]], np.ndarray],
    cosine: Callable[[Any, Any], np.ndarray],
) -> None:
    proc, url, log, seen = _start(tmp_path)
    try:
        # The port answered before the model was loaded, and said so.
        assert seen[0] == 503 and seen[-1] == 200, seen

        done, during, sigterm_at = asyncio.run(_load_then_sigterm(proc, url))
        code = proc.wait(300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log.read_text()
    assert during["in_flight"] > 0
    assert during["ready"] == 503 and during["health"] == 200, during

    answered = [*done, during["late"]]
    statuses = [rsp.status_code for _, rsp, _ in answered]
    assert statuses == [200] * len(answered), (statuses, text[-3000:])
    sent = [t for texts, _, _ in answered for t in texts]
    got = np.concatenate([np.asarray(rsp.json(), dtype=np.float32) for _, rsp, _ in answered])
    assert got.shape == (len(sent), 384)
    assert cosine(got, reference(sent)).min() > 0.999  # each caller got its own rows
    # Some answers came after the drain delay, i.e. after the port had closed: the queue
    # was emptied through the model, not dropped.
    finished_after = [t - sigterm_at for _, _, t in done]
    assert max(finished_after) > DRAIN_DELAY, finished_after
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{url}/health", timeout=2.0)  # gone: the process has exited
    assert code in (0, -signal.SIGTERM), (code, text[-3000:])
    assert "unanswered" not in text
    print(
        f"\n{REQUESTS * TEXTS_PER_REQUEST} texts in flight at SIGTERM: all answered, last "
        f"{max(finished_after):.1f}s after SIGTERM (drain delay {DRAIN_DELAY}s); exit {code}"
    )
