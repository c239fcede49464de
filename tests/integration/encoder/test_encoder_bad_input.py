"""Every bad input gets a clear JSON error in the route's own shape; the server keeps serving.

TEI's shape on `/embed`: `{"error": str, "error_type": str}`; OpenAI's on the embeddings
routes: `{"error": {"message", "type", "param", "code"}}`.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.slow

LONG = "token " * 400  # ~400 tokens, over MiniLM's 256

# (name, body, status, words the message must contain)
TEI_CASES: list[tuple[str, bytes | dict[str, Any], int, list[str]]] = [
    ("empty list", {"inputs": []}, 400, ["empty"]),
    ("empty string", {"inputs": ""}, 400, ["empty"]),
    ("empty string in list", {"inputs": ["ok", ""]}, 400, ["inputs[1]", "empty"]),
    ("non-string item", {"inputs": ["ok", 3]}, 422, ["inputs[1]", "string"]),
    ("nested list item", {"inputs": [["a"]]}, 422, ["inputs[0]", "string"]),
    ("object as inputs", {"inputs": {"a": 1}}, 422, ["inputs", "string"]),
    ("missing inputs", {"input": "wrong key"}, 422, ["inputs", "required"]),
    ("not JSON", b"{not json", 422, ["JSON"]),
    ("JSON but not an object", b"[1, 2]", 422, ["object"]),
    ("empty body", b"", 422, ["empty"]),
    ("normalize not bool", {"inputs": "a", "normalize": "yes"}, 422, ["normalize"]),
    ("too many items", {"inputs": ["a"] * 8193}, 413, ["8193", "8192"]),
    ("over-long input", {"inputs": ["short", LONG], "truncate": False}, 413, ["inputs[1]", "256"]),
]

OPENAI_CASES: list[tuple[str, bytes | dict[str, Any], int, str | None, list[str]]] = [
    ("empty list", {"input": [], "model": "m"}, 400, "input", ["empty"]),
    ("empty string", {"input": "", "model": "m"}, 400, "input", ["empty"]),
    ("non-string item", {"input": ["a", None], "model": "m"}, 422, "input", ["input[1]"]),
    ("token arrays", {"input": [[1, 2, 3]], "model": "m"}, 422, "input", ["token arrays"]),
    ("not JSON", b"nope", 422, None, ["JSON"]),
    ("too many items", {"input": ["a"] * 8193, "model": "m"}, 413, "input", ["8192"]),
    ("over-long input", {"input": LONG, "model": "m"}, 413, "input", ["256"]),
    (
        "unknown encoding_format",
        {"input": "a", "model": "m", "encoding_format": "hex"},
        422,
        "encoding_format",
        ["hex", "base64"],
    ),
    (
        "dimensions too large",
        {"input": "a", "model": "m", "dimensions": 385},
        422,
        "dimensions",
        ["384"],
    ),
    (
        "dimensions not int",
        {"input": "a", "model": "m", "dimensions": "8"},
        422,
        "dimensions",
        ["integer"],
    ),
    ("model not a string", {"input": "a", "model": 5}, 422, "model", ["model"]),
]


def _post(url: str, body: bytes | dict[str, Any]) -> httpx.Response:
    if isinstance(body, bytes):
        return httpx.post(url, content=body, headers={"content-type": "application/json"})
    return httpx.post(url, json=body)


def _still_serving(encoder: Any) -> None:
    assert encoder.alive()
    r = httpx.post(f"{encoder.url}/embed", json={"inputs": "still here"})
    assert r.status_code == 200 and len(r.json()[0]) == 384


@pytest.mark.parametrize(
    ("name", "body", "status", "words"), TEI_CASES, ids=[c[0] for c in TEI_CASES]
)
def test_tei_bad_input(encoder: Any, name: str, body: Any, status: int, words: list[str]) -> None:
    r = _post(f"{encoder.url}/embed", body)
    assert r.status_code == status, r.text
    err = r.json()
    assert set(err) == {"error", "error_type"}
    assert isinstance(err["error"], str) and isinstance(err["error_type"], str)
    for word in words:
        assert word.lower() in err["error"].lower(), (word, err)
    _still_serving(encoder)


@pytest.mark.parametrize(
    ("name", "body", "status", "param", "words"), OPENAI_CASES, ids=[c[0] for c in OPENAI_CASES]
)
@pytest.mark.parametrize("route", ["/v1/embeddings", "/embeddings"])
def test_openai_bad_input(
    encoder: Any, route: str, name: str, body: Any, status: int, param: str | None, words: list[str]
) -> None:
    r = _post(f"{encoder.url}{route}", body)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["type"] == "invalid_request_error"
    assert err["param"] == param
    for word in words:
        assert word.lower() in err["message"].lower(), (word, err)
    _still_serving(encoder)


def test_openai_sdk_raises_on_bad_request(encoder: Any) -> None:
    import openai

    client = openai.OpenAI(api_key="x", base_url=f"{encoder.url}/v1", max_retries=0)
    with pytest.raises(openai.UnprocessableEntityError) as info:
        client.embeddings.create(model="m", input="a", dimensions=1000)
    assert "384" in str(info.value)


def test_full_queue_answers_429_at_once(encoder_factory: Any) -> None:
    # One text per forward pass and room for four waiting: 24 concurrent 4-text requests of
    # 256 tokens (over-long, cut by --auto-truncate) cannot all fit, so some must be
    # refused -- immediately, not after a wait.
    small = encoder_factory(
        "--max-queue",
        "4",
        "--max-client-batch",
        "4",
        "--max-batch-size",
        "1",
        "--max-batch-delay-ms",
        "0",
        "--auto-truncate",
    )
    texts = ["backpressure " * 100] * 4

    async def run() -> list[tuple[int, Any, float]]:
        async with httpx.AsyncClient(base_url=small.url, timeout=60) as client:

            async def one(i: int) -> tuple[int, Any, float]:
                t0 = time.perf_counter()
                if i % 2:
                    r = await client.post("/embed", json={"inputs": texts})
                else:
                    r = await client.post("/v1/embeddings", json={"input": texts, "model": "m"})
                return r.status_code, (r.json(), i % 2), time.perf_counter() - t0

            return await asyncio.gather(*(one(i) for i in range(24)))

    results = asyncio.run(run())
    statuses = [s for s, _, _ in results]
    assert 200 in statuses and 429 in statuses, statuses
    slowest_ok = max(t for s, _, t in results if s == 200)
    for status, (body, tei), elapsed in results:
        if status != 429:
            continue
        assert elapsed < slowest_ok  # refused without waiting for the queue to drain
        if tei:
            assert body["error_type"] == "Overloaded" and "queue full" in body["error"]
        else:
            assert body["error"]["type"] == "rate_limit_error"
            assert "queue full" in body["error"]["message"]
    # A request larger than the whole queue is a 413, not a 429.
    r = httpx.post(f"{small.url}/embed", json={"inputs": ["a"] * 5})
    assert r.status_code == 413
    # And the server recovers.
    r = httpx.post(f"{small.url}/embed", json={"inputs": ["after the storm"]})
    assert r.status_code == 200
    metrics = httpx.get(f"{small.url}/metrics").text
    assert 'chroma_encoder_requests_total{route="/embed",status="429"}' in metrics
