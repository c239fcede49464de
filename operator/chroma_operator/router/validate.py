"""Up-front checks of request bodies, mirroring what a single Chroma node answers.

Everything a shard would refuse for reasons visible in the request alone is refused here,
before any shard sees a byte: a batch split across shards must never be half written
because one shard's part was malformed. Types and statuses are a single 1.5.9 node's:
unparsable JSON 400 InvalidArgumentError, a body that does not fit the request type 422
ChromaError, inconsistent column lengths or dimensions 400 InvalidArgumentError.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from chroma_operator.router.errors import ChromaHTTPError, deserialize_error, invalid_argument

INCLUDE_VALUES = frozenset({"distances", "documents", "embeddings", "metadatas", "uris"})
DEFAULT_QUERY_INCLUDE = ["metadatas", "documents", "distances"]
DEFAULT_GET_INCLUDE = ["metadatas", "documents"]
RECORD_COLUMNS = ("embeddings", "metadatas", "documents", "uris")


def parse_json(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise invalid_argument(f"Failed to parse the request body as JSON: {exc}") from exc


def parse_object(raw: bytes) -> dict[str, Any]:
    body = parse_json(raw)
    if not isinstance(body, dict):
        raise deserialize_error(f"invalid type: {type(body).__name__}, expected a struct")
    return body


@functools.lru_cache(maxsize=4096)  # the same few ids arrive on every request
def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def check_collection_id(collection_id: str) -> str:
    if not _is_uuid(collection_id):
        raise invalid_argument("Collection ID is not a valid UUIDv4")
    return collection_id


def _str_list(body: dict[str, Any], field: str, required: bool) -> list[str] | None:
    value = body.get(field)
    if value is None:
        if required:
            raise deserialize_error(f"missing field `{field}`")
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise deserialize_error(f"{field}: invalid type, expected a sequence of strings")
    return value


def _optional_list(body: dict[str, Any], field: str) -> list[Any] | None:
    value = body.get(field)
    if value is not None and not isinstance(value, list):
        raise deserialize_error(f"{field}: invalid type, expected a sequence")
    return value


def _uint(body: dict[str, Any], field: str) -> int | None:
    value = body.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0 or value > 2**32 - 1:
        raise deserialize_error(f"{field}: invalid value: `{value}`, expected u32")
    return value


def include_of(body: dict[str, Any], default: Sequence[str]) -> list[str]:
    value = body.get("include")
    if value is None:
        return list(default)
    if not isinstance(value, list):
        raise deserialize_error("include: invalid type, expected a sequence")
    for v in value:
        if v not in INCLUDE_VALUES:
            raise deserialize_error(
                f"include: unknown variant `{v}`, expected one of `distances`, `documents`, "
                "`embeddings`, `metadatas`, `uris`"
            )
    return list(value)


def embedding_dim(embedding: Any) -> int:
    """Dimension of one embedding: a list of numbers, or base64 of little-endian float32.

    Base64 is measured from its length, never decoded: the router only forwards it.
    """
    if isinstance(embedding, list):
        return len(embedding)
    if isinstance(embedding, str):
        pad = 2 if embedding.endswith("==") else 1 if embedding.endswith("=") else 0
        return (len(embedding) * 3 // 4 - pad) // 4
    raise deserialize_error("embeddings: invalid type, expected a sequence or a base64 string")


def batch_dim(embeddings: Sequence[Any] | None) -> int | None:
    """The one dimension of a batch (None when empty); mixed dimensions are refused."""
    if not embeddings:
        return None
    first = embedding_dim(embeddings[0])
    for e in embeddings[1:]:
        if embedding_dim(e) != first:
            raise invalid_argument("Inconsistent dimensions in provided embeddings")
    return first


def check_dimension(expected: int | None, got: int | None) -> None:
    if expected is not None and got is not None and expected != got:
        raise invalid_argument(
            f"Collection expecting embedding with dimension of {expected}, got {got}"
        )


@dataclass
class RecordBatch:
    """A validated add/upsert/update body: ids plus the columns the client sent."""

    ids: list[str]
    columns: dict[str, list[Any]]
    dim: int | None


def record_batch(body: dict[str, Any], kind: str, max_batch_size: int | None) -> RecordBatch:
    ids = _str_list(body, "ids", required=True)
    assert ids is not None
    if kind != "update" and "embeddings" not in body:
        raise deserialize_error("missing field `embeddings`")
    columns: dict[str, list[Any]] = {}
    for field in RECORD_COLUMNS:
        value = _optional_list(body, field)
        if value is not None:
            columns[field] = value
    if any(len(col) != len(ids) for col in columns.values()):
        raise invalid_argument(
            "Inconsistent number of IDs, embeddings, documents, URIs and metadatas"
        )
    for m in columns.get("metadatas", []):
        if m is not None and not isinstance(m, dict):
            raise deserialize_error("metadatas: invalid type, expected a map")
    for d in columns.get("documents", []):
        if d is not None and not isinstance(d, str):
            raise deserialize_error("documents: invalid type, expected a string")
    if max_batch_size is not None and max_batch_size > 0 and len(ids) > max_batch_size:
        raise ChromaHTTPError(
            413,
            "BatchSizeExceededError",
            f"Cannot submit more than {max_batch_size:,} embeddings at once. Got {len(ids):,}.",
        )
    return RecordBatch(ids, columns, batch_dim(columns.get("embeddings")))


@dataclass
class QueryRequest:
    embeddings: list[Any]
    n_results: int
    include: list[str]
    ids: list[str] | None
    dim: int | None


def query_request(body: dict[str, Any]) -> QueryRequest:
    embeddings = body.get("query_embeddings")
    if embeddings is None:
        raise deserialize_error("missing field `query_embeddings`")
    if not isinstance(embeddings, list) or not all(isinstance(e, list) for e in embeddings):
        raise deserialize_error("query_embeddings: invalid type, expected a sequence")
    n_results = _uint(body, "n_results")
    include = include_of(body, DEFAULT_QUERY_INCLUDE)
    ids = _str_list(body, "ids", required=False)
    return QueryRequest(
        embeddings, 10 if n_results is None else n_results, include, ids, batch_dim(embeddings)
    )


@dataclass
class GetRequest:
    ids: list[str] | None
    include: list[str]
    limit: int | None
    offset: int


def get_request(body: dict[str, Any]) -> GetRequest:
    ids = _str_list(body, "ids", required=False)
    include = include_of(body, DEFAULT_GET_INCLUDE)
    limit = _uint(body, "limit")
    offset = _uint(body, "offset") or 0
    return GetRequest(ids, include, limit, offset)


def delete_ids(body: dict[str, Any]) -> list[str] | None:
    return _str_list(body, "ids", required=False)
