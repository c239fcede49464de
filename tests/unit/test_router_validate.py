"""Up-front request checks: the statuses and Chroma error types a single node uses."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from chroma_operator.router import validate as v
from chroma_operator.router.errors import ChromaHTTPError


def refused(fn, *args):  # type: ignore[no-untyped-def]
    with pytest.raises(ChromaHTTPError) as err:
        fn(*args)
    return err.value.status, err.value.error


@pytest.mark.parametrize("dim", [1, 2, 3, 4, 5, 384])
def test_base64_dimension_is_read_from_its_length(dim: int) -> None:
    encoded = base64.b64encode(np.ones(dim, dtype="<f4").tobytes()).decode()
    assert v.embedding_dim(encoded) == dim
    assert v.embedding_dim([0.0] * dim) == dim


def test_malformed_json_and_non_objects() -> None:
    assert refused(v.parse_object, b"{nope") == (400, "InvalidArgumentError")
    assert refused(v.parse_object, b"[1, 2]") == (422, "ChromaError")


def test_record_batches() -> None:
    ok = v.record_batch({"ids": ["a", "b"], "embeddings": [[1, 2], [3, 4]]}, "add", 10)
    assert ok.dim == 2 and ok.ids == ["a", "b"]
    assert v.record_batch({"ids": ["a"], "documents": ["d"]}, "update", 10).dim is None
    cases = [
        ({"embeddings": [[1]]}, "add", (422, "ChromaError")),
        ({"ids": ["a"]}, "upsert", (422, "ChromaError")),
        ({"ids": ["a", "b"], "embeddings": [[1]]}, "add", (400, "InvalidArgumentError")),
        ({"ids": ["a", "b"], "embeddings": [[1], [1, 2]]}, "add", (400, "InvalidArgumentError")),
        ({"ids": ["a"], "embeddings": [[1]], "metadatas": ["x"]}, "add", (422, "ChromaError")),
        ({"ids": [1], "embeddings": [[1]]}, "add", (422, "ChromaError")),
        ({"ids": ["a"] * 11, "embeddings": [[1]] * 11}, "add", (413, "BatchSizeExceededError")),
    ]
    for body, kind, expected in cases:
        assert refused(v.record_batch, body, kind, 10) == expected, body


def test_dimension_against_the_collection() -> None:
    v.check_dimension(None, 3)
    v.check_dimension(3, None)
    assert refused(v.check_dimension, 2, 3) == (400, "InvalidArgumentError")


def test_query_and_get_requests() -> None:
    q = v.query_request({"query_embeddings": [[1.0, 2.0]]})
    assert (q.n_results, q.include, q.dim) == (10, ["metadatas", "documents", "distances"], 2)
    assert refused(v.query_request, {"query_embeddings": [[1.0]], "n_results": -1}) == (
        422,
        "ChromaError",
    )
    assert refused(v.query_request, {"n_results": 1}) == (422, "ChromaError")
    assert refused(v.get_request, {"include": ["bogus"]}) == (422, "ChromaError")
    assert refused(v.get_request, {"limit": -1}) == (422, "ChromaError")
    g = v.get_request({"offset": 5, "limit": 2, "include": ["embeddings"]})
    assert (g.offset, g.limit, g.include) == (5, 2, ["embeddings"])
    assert refused(v.check_collection_id, "nope") == (400, "InvalidArgumentError")
