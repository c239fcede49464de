"""The HTTP app in-process with a real tiny encoder: the paths the real model cannot hit
on demand (a failing forward pass, a stopped worker) and the response plumbing."""

from __future__ import annotations

import asyncio
import base64
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pytest
from starlette.testclient import TestClient

from chroma_operator.encoder.app import ServerSettings, create_app


@dataclass(frozen=True)
class TinyInfo:
    model_id: str = "tiny"
    model_path: str = "/nowhere"
    dimension: int = 4
    max_input_tokens: int = 8
    device: str = "cpu"
    dtype: str = "float32"


class WordCounter:
    """One token per word, plus two special tokens, like a BERT tokenizer would add."""

    def count(self, texts: Sequence[str]) -> list[int]:
        return [len(t.split()) + 2 for t in texts]


class Tiny:
    """Vector [n, 0, 0, 0] + 1 for a text of n characters; "boom" makes the pass fail."""

    info = TinyInfo()
    tokenizer = WordCounter()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if "boom" in texts:
            raise RuntimeError("CUDA out of memory (pretend)")
        return np.asarray([[len(t), 1.0, 1.0, 1.0] for t in texts], dtype=np.float32)


@pytest.fixture
def client() -> Iterator[TestClient]:
    app = create_app(
        [Tiny()],
        ServerSettings(
            max_client_batch=100, max_queue=1000, max_batch_delay_ms=1, served_model_name="tiny-v1"
        ),
    )
    with TestClient(app) as c:
        yield c


def test_embed_normalises_unless_asked_not_to(client: TestClient) -> None:
    raw = client.post("/embed", json={"inputs": ["abc"], "normalize": False}).json()
    assert raw == [[3.0, 1.0, 1.0, 1.0]]
    unit = np.asarray(client.post("/embed", json={"inputs": "abc"}).json())
    np.testing.assert_allclose(unit, [[3, 1, 1, 1]] / np.sqrt(12), rtol=1e-6)


def test_openai_base64_is_little_endian_float32_and_usage_counts_tokens(client: TestClient) -> None:
    r = client.post(
        "/v1/embeddings",
        json={
            "input": ["ab", "two words"],
            "model": "x",
            "encoding_format": "base64",
            "dimensions": 2,
        },
    )
    body = r.json()
    assert body["model"] == "tiny-v1" and body["object"] == "list"
    assert body["usage"] == {"prompt_tokens": 7, "total_tokens": 7}
    vec = np.frombuffer(base64.b64decode(body["data"][1]["embedding"]), dtype="<f4")
    np.testing.assert_allclose(vec, np.array([9, 1]) / np.sqrt(82), rtol=1e-6)
    assert [d["index"] for d in body["data"]] == [0, 1]


def test_failed_forward_pass_is_a_500_in_each_shape_and_serving_goes_on(client: TestClient) -> None:
    r = client.post("/embed", json={"inputs": ["boom"]})
    assert r.status_code == 500
    assert r.json()["error_type"] == "Backend" and "out of memory" in r.json()["error"]
    r = client.post("/v1/embeddings", json={"input": "boom"})
    assert r.status_code == 500 and r.json()["error"]["type"] == "server_error"
    assert client.get("/health").status_code == 200
    assert client.post("/embed", json={"inputs": "fine"}).status_code == 200


def test_info_models_and_metrics(client: TestClient) -> None:
    info = client.get("/info").json()
    assert info["model_id"] == "tiny-v1" and info["max_client_batch"] == 100
    assert info["max_input_tokens"] == 8 and info["devices"] == ["cpu"]
    assert client.get("/v1/models").json()["data"][0]["id"] == "tiny-v1"
    client.post("/embed", json={"inputs": ["a", "b"]})
    text = client.get("/metrics").text
    assert 'chroma_encoder_info{device="cpu",dimension="4",dtype="float32",model="tiny-v1"}' in text
    assert "chroma_encoder_texts_total 2.0" in text


def test_health_is_503_once_the_worker_is_gone() -> None:
    app = create_app([Tiny()], ServerSettings(max_client_batch=10, max_queue=10))
    with TestClient(app) as c:
        assert c.get("/health").status_code == 200
        tasks = app.state.batcher._tasks

        async def kill_worker() -> None:  # on the app's own loop
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        assert c.portal is not None
        c.portal.call(kill_worker)
        r = c.get("/health")
        assert r.status_code == 503 and r.json()["error_type"] == "Unhealthy"


def test_settings_that_could_never_serve_are_refused() -> None:
    with pytest.raises(ValueError, match="max_client_batch"):
        create_app([Tiny()], ServerSettings(max_client_batch=100, max_queue=10))


def test_ready_only_while_loaded_and_not_draining() -> None:
    from chroma_operator.encoder.lifecycle import Lifecycle, LoadingGate

    lifecycle = Lifecycle()
    release = threading.Event()
    settings = ServerSettings(max_client_batch=100, max_queue=1000, max_batch_delay_ms=1)

    def load():  # type: ignore[no-untyped-def]
        release.wait(10)  # the model "loads" until the test lets it
        return create_app([Tiny()], settings, lifecycle)

    with TestClient(LoadingGate(load, lifecycle)) as c:
        for path in ("/ready", "/health"):
            loading = c.get(path)
            assert loading.status_code == 503 and "loading" in loading.json()["error"]
        assert c.post("/embed", json={"inputs": ["abc"]}).status_code == 503
        release.set()
        for _ in range(200):
            if c.get("/ready").status_code == 200:
                break
            time.sleep(0.02)
        assert c.get("/ready").json() == {"status": "ready"}
        assert c.post("/embed", json={"inputs": ["abc"]}).status_code == 200
        assert "chroma_encoder_ready 1.0" in c.get("/metrics").text
        lifecycle.draining = True  # what SIGTERM does
        assert c.get("/ready").status_code == 503
        assert c.get("/health").status_code == 200  # still alive: no restart while draining
        assert c.post("/embed", json={"inputs": ["abc"]}).status_code == 200
        assert "chroma_encoder_ready 0.0" in c.get("/metrics").text


def test_a_failed_load_is_reported_and_stops_the_server() -> None:
    from chroma_operator.encoder.lifecycle import Lifecycle, LoadingGate

    lifecycle = Lifecycle()
    failures: list[BaseException] = []

    def load():  # type: ignore[no-untyped-def]
        raise RuntimeError("cannot load model /nowhere")

    with TestClient(LoadingGate(load, lifecycle, on_failure=failures.append)) as c:
        for _ in range(200):
            if failures:
                break
            time.sleep(0.02)
        assert [str(f) for f in failures] == ["cannot load model /nowhere"]
        rsp = c.get("/ready")
        assert rsp.status_code == 503 and "cannot load model" in rsp.json()["error"]
