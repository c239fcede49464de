"""The encoder against the clients people already use, with the real packaged model."""

from __future__ import annotations

import asyncio
import base64
import struct
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import pytest

pytestmark = pytest.mark.slow

TEXTS = [
    "The quick brown fox jumps over the lazy dog",
    "Kubernetes operators reconcile desired and observed state",
    "A vector database stores embeddings for similarity search",
    "Réal-time strategy game of ancient warfare ⚔️",
    "x",
]


def test_health_and_info(encoder: Any) -> None:
    assert httpx.get(f"{encoder.url}/health").json() == {"status": "ok"}
    info = httpx.get(f"{encoder.url}/info").json()
    assert info["model_id"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert info["dimension"] == 384
    assert info["max_input_tokens"] == 256
    assert info["max_client_batch"] >= 5461  # Chroma's max batch fits in one request
    assert info["device"] == "cpu"
    assert info["dtype"] == "float32"


def test_tei_embed_shapes_and_headers(
    encoder: Any, reference: Callable[..., np.ndarray], cosine: Callable[..., np.ndarray]
) -> None:
    r = httpx.post(f"{encoder.url}/embed", json={"inputs": TEXTS[0]})
    assert r.status_code == 200
    body = r.json()
    assert isinstance(body, list) and len(body) == 1 and len(body[0]) == 384  # list of lists
    for header in ("x-queue-time", "x-inference-time", "x-total-time"):
        assert float(r.headers[header]) >= 0
    assert float(r.headers["x-total-time"]) >= float(r.headers["x-inference-time"])
    assert cosine(body, reference([TEXTS[0]])).min() >= 0.9999

    raw = np.asarray(
        httpx.post(f"{encoder.url}/embed", json={"inputs": TEXTS, "normalize": False}).json()
    )
    norms = np.linalg.norm(raw, axis=1)
    assert not np.allclose(norms, 1.0, atol=1e-3)  # really unnormalised
    assert cosine(raw, reference(TEXTS)).min() >= 0.9999


def test_chroma_huggingface_embedding_server(
    encoder: Any, reference: Callable[..., np.ndarray], cosine: Callable[..., np.ndarray]
) -> None:
    from chromadb.utils.embedding_functions import HuggingFaceEmbeddingServer

    ef = HuggingFaceEmbeddingServer(url=f"{encoder.url}/embed")
    got = ef(TEXTS)
    assert len(got) == len(TEXTS)
    assert cosine(np.stack(got), reference(TEXTS)).min() >= 0.9999


def test_chroma_openai_embedding_function_base64(
    encoder: Any, reference: Callable[..., np.ndarray], cosine: Callable[..., np.ndarray]
) -> None:
    from chromadb.utils.embedding_functions import OpenAIEmbeddingFunction

    ef = OpenAIEmbeddingFunction(
        api_key="x",
        api_base=f"{encoder.url}/v1",
        model_name="sentence-transformers/all-MiniLM-L6-v2",
    )
    got = ef(TEXTS)  # the openai SDK asks for base64 by default
    assert cosine(np.stack(got), reference(TEXTS)).min() >= 0.9999


def test_openai_sdk_float_and_base64_agree(
    encoder: Any, reference: Callable[..., np.ndarray], cosine: Callable[..., np.ndarray]
) -> None:
    import openai

    client = openai.OpenAI(api_key="x", base_url=f"{encoder.url}/v1")
    floats = client.embeddings.create(model="m", input=TEXTS, encoding_format="float")
    assert [d.index for d in floats.data] == list(range(len(TEXTS)))
    assert floats.model == "sentence-transformers/all-MiniLM-L6-v2"
    assert floats.usage.prompt_tokens == floats.usage.total_tokens > len(TEXTS)
    vecs = np.asarray([d.embedding for d in floats.data])
    assert cosine(vecs, reference(TEXTS)).min() >= 0.9999

    raw = httpx.post(
        f"{encoder.url}/embeddings",  # the route without /v1 too
        json={"input": TEXTS, "model": "m", "encoding_format": "base64"},
    ).json()
    decoded = []
    for item in raw["data"]:
        blob = base64.b64decode(item["embedding"])
        assert len(blob) == 384 * 4
        decoded.append(struct.unpack("<384f", blob))  # little-endian float32
    np.testing.assert_allclose(np.asarray(decoded), vecs, atol=1e-6)


def test_openai_dimensions_truncate_and_renormalise(encoder: Any) -> None:
    full = httpx.post(
        f"{encoder.url}/v1/embeddings", json={"input": TEXTS[1], "model": "m"}
    ).json()["data"][0]["embedding"]
    r = httpx.post(
        f"{encoder.url}/v1/embeddings", json={"input": TEXTS[1], "model": "m", "dimensions": 64}
    )
    short = np.asarray(r.json()["data"][0]["embedding"])
    assert short.shape == (64,)
    assert abs(np.linalg.norm(short) - 1.0) < 1e-5
    expected = np.asarray(full[:64]) / np.linalg.norm(full[:64])
    np.testing.assert_allclose(short, expected, atol=1e-5)


def test_64_concurrent_callers_get_their_own_vectors(
    encoder: Any, reference: Callable[..., np.ndarray], cosine: Callable[..., np.ndarray]
) -> None:
    # Different texts of different lengths, some callers sending several at once, so
    # batches mix callers and sizes; every answer must be the caller's own.
    texts = [
        f"caller {i}: " + " ".join(f"word{j * i % 97}" for j in range(1 + i % 23))
        for i in range(64)
    ]
    groups = [[t] if i % 4 else [t, t.upper(), t[::-1]] for i, t in enumerate(texts)]

    async def run() -> list[Any]:
        async with httpx.AsyncClient(
            base_url=encoder.url, timeout=60, limits=httpx.Limits(max_connections=64)
        ) as client:

            async def one(i: int, group: list[str]) -> Any:
                if i % 2:
                    r = await client.post("/embed", json={"inputs": group})
                    return r.json()
                r = await client.post(
                    "/v1/embeddings",
                    json={"input": group, "model": "m", "encoding_format": "float"},
                )
                return [d["embedding"] for d in r.json()["data"]]

            return await asyncio.gather(*(one(i, g) for i, g in enumerate(groups)))

    answers = asyncio.run(run())
    for group, got in zip(groups, answers, strict=True):
        assert cosine(got, reference(group)).min() >= 0.9999, group
    metrics = httpx.get(f"{encoder.url}/metrics").text
    # Batching really happened: some forward pass took more than one text.
    assert "chroma_encoder_batch_size_count" in metrics
    count = float(metrics.split("chroma_encoder_batch_size_count ")[1].split()[0])
    total = float(metrics.split("chroma_encoder_batch_size_sum ")[1].split()[0])
    assert total / count > 1.5


def test_chroma_max_batch_in_one_request(
    encoder: Any, reference: Callable[..., np.ndarray], cosine: Callable[..., np.ndarray]
) -> None:
    texts = [f"item {i}" for i in range(5461)]  # Chroma's max batch, split internally
    r = httpx.post(f"{encoder.url}/embed", json={"inputs": texts}, timeout=120)
    assert r.status_code == 200
    got = np.asarray(r.json(), dtype=np.float32)
    assert got.shape == (5461, 384)
    sample = [*list(range(0, 5461, 97)), 5460]
    assert cosine(got[sample], reference([texts[i] for i in sample])).min() >= 0.9999


def test_truncate_true_matches_sentence_transformers(
    encoder: Any, reference: Callable[..., np.ndarray], cosine: Callable[..., np.ndarray]
) -> None:
    long_text = "embedding " * 600  # far over 256 tokens
    r = httpx.post(f"{encoder.url}/embed", json={"inputs": [long_text], "truncate": True})
    assert r.status_code == 200
    assert cosine(r.json(), reference([long_text])).min() >= 0.9999  # both cut at 256


def test_metrics_exposed(encoder: Any) -> None:
    httpx.post(f"{encoder.url}/embed", json={"inputs": "metrics please"})
    text = httpx.get(f"{encoder.url}/metrics").text
    for name in (
        'chroma_encoder_requests_total{route="/embed",status="200"}',
        "chroma_encoder_request_duration_seconds_bucket",
        "chroma_encoder_queue_duration_seconds_bucket",
        "chroma_encoder_inference_duration_seconds_bucket",
        "chroma_encoder_batch_size_bucket",
        "chroma_encoder_queue_depth",
        "chroma_encoder_info{",
    ):
        assert name in text, name
