"""Replica digests: prove two copies of a collection hold the same records.

Records are bucketed by a hash of the id (1,024 buckets by default); a bucket's digest is
the sum mod 2**128 of a 128-bit blake2b hash of each record's id and content (float32
embedding bytes little-endian, document, sorted-key metadata JSON, uri). Sums are
order-independent, so two scans in any order — or a backup's record file — compare
bucket by bucket, and only the buckets that differ need to be fetched and repaired.

The bucket hash is keyed ("chroma-bucket") so buckets are independent of shard
placement (sha256 jump hash): every shard spreads over all buckets.

Cosine collections: Chroma stores a cosine collection's vectors normalized and gives back
the vector rescaled, so every copy through the API changes ~1 ulp in most rows (measured:
unit-vector components move by <= 5e-8). A bit-exact hash would call every copy
different, so for `space="cosine"` the digest hashes the direction quantized to 1/256
(`embedding_mode="direction"`). A record then lands in a differing bucket by noise only
when a component sits within the drift of a grid boundary (about 2e-3 per 384-dim record
per copy, estimated from the measured drift); `diff_records` rechecks the records of differing buckets with a tolerance and
names the ids that really differ. l2 and ip collections copy bit-exactly: "exact" mode.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from chroma_operator.data.chroma_http import ChromaHTTP, CollectionRef
from chroma_operator.data.records import RecordBatch, canonical_metadata

DEFAULT_BUCKETS = 1024
_MOD = 1 << 128
_BUCKET_KEY = b"chroma-bucket"
_NONE = b"\x00"  # a field that is absent
_SOME = b"\x01"  # a field that is present, then its length and bytes


def bucket_of(record_id: str, buckets: int = DEFAULT_BUCKETS) -> int:
    """The digest bucket of an id: a pure function, the same on every machine."""
    h = hashlib.blake2b(record_id.encode("utf-8"), digest_size=8, key=_BUCKET_KEY).digest()
    return int.from_bytes(h, "big") % buckets


def _field(h: Any, value: bytes | None) -> None:
    if value is None:
        h.update(_NONE)
    else:
        h.update(_SOME + len(value).to_bytes(8, "little"))
        h.update(value)


EmbeddingMode = Literal["exact", "direction"]
DIRECTION_GRID = 256
DIRECTION_TOLERANCE = 1e-6


def mode_for_space(space: str | None) -> EmbeddingMode:
    """How a collection's embeddings are hashed: by direction for cosine, exactly otherwise."""
    return "direction" if space == "cosine" else "exact"


def mode_for_collection(model: dict[str, Any] | None) -> EmbeddingMode:
    """The embedding mode of a collection from its model (as Chroma lists it)."""
    config = (model or {}).get("configuration_json") or {}
    return mode_for_space((config.get("hnsw") or {}).get("space"))


def _unit(embedding: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    v = np.asarray(embedding, dtype=np.float64)
    norm = float(np.sqrt(np.dot(v, v)))
    return v / norm if norm > 0 else v


def embedding_bytes(embedding: np.ndarray[Any, Any], mode: EmbeddingMode = "exact") -> bytes:
    """What the digest hashes of an embedding: float32 LE bytes, or the quantized direction."""
    if mode == "direction":
        return bytes(np.rint(_unit(embedding) * DIRECTION_GRID).astype("<i2").tobytes())
    return np.ascontiguousarray(embedding, dtype="<f4").tobytes()


def record_hash(
    record_id: str,
    embedding: np.ndarray[Any, Any],
    document: str | None,
    metadata: dict[str, Any] | None,
    uri: str | None,
    mode: EmbeddingMode = "exact",
) -> int:
    """128-bit hash of one record's id and content (fields length-prefixed, None marked)."""
    h = hashlib.blake2b(digest_size=16)
    _field(h, record_id.encode("utf-8"))
    _field(h, embedding_bytes(embedding, mode))
    _field(h, None if document is None else document.encode("utf-8"))
    _field(h, canonical_metadata(metadata))
    _field(h, None if uri is None else uri.encode("utf-8"))
    return int.from_bytes(h.digest(), "big")


@dataclass
class Digest:
    """Per-bucket record counts and hash sums of one copy of a collection."""

    buckets: int = DEFAULT_BUCKETS
    sums: list[int] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)
    mode: EmbeddingMode = "exact"

    def __post_init__(self) -> None:
        if self.buckets < 1:
            raise ValueError("buckets must be >= 1")
        self.sums = self.sums or [0] * self.buckets
        self.counts = self.counts or [0] * self.buckets
        if len(self.sums) != self.buckets or len(self.counts) != self.buckets:
            raise ValueError("digest has the wrong number of buckets")

    @property
    def count(self) -> int:
        return sum(self.counts)

    def add(self, batch: RecordBatch) -> None:
        for i, rid in enumerate(batch.ids):
            b = bucket_of(rid, self.buckets)
            h = record_hash(
                rid,
                batch.embeddings[i],
                batch.documents[i],
                batch.metadatas[i],
                batch.uris[i],
                self.mode,
            )
            self.sums[b] = (self.sums[b] + h) % _MOD
            self.counts[b] += 1

    def merge(self, other: Digest) -> Digest:
        """The digest of the union of two disjoint record sets (e.g. two shards)."""
        _same_buckets(self, other)
        return Digest(
            self.buckets,
            [(a + b) % _MOD for a, b in zip(self.sums, other.sums, strict=True)],
            [a + b for a, b in zip(self.counts, other.counts, strict=True)],
            self.mode,
        )

    def diff(self, other: Digest) -> list[int]:
        """Buckets whose records differ, ascending."""
        return diff_buckets(self, other)

    def to_json(self) -> dict[str, Any]:
        """Hex sums (32 digits) and counts: the form backups store in their manifest."""
        return {
            "mode": self.mode,
            "buckets": self.buckets,
            "sums": [f"{s:032x}" for s in self.sums],
            "counts": list(self.counts),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Digest:
        return cls(
            int(data["buckets"]),
            [int(s, 16) for s in data["sums"]],
            [int(c) for c in data["counts"]],
            data.get("mode", "exact"),
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Digest):
            return NotImplemented
        return self.buckets == other.buckets and not diff_buckets(self, other)

    __hash__ = None  # type: ignore[assignment]


def _same_buckets(a: Digest, b: Digest) -> None:
    if a.buckets != b.buckets:
        raise ValueError(f"digests have {a.buckets} and {b.buckets} buckets")
    if a.mode != b.mode:
        raise ValueError(f"digests hash embeddings differently ({a.mode}, {b.mode})")


def diff_buckets(a: Digest, b: Digest) -> list[int]:
    """Buckets where `a` and `b` differ in records or count, ascending."""
    _same_buckets(a, b)
    return [i for i in range(a.buckets) if a.sums[i] != b.sums[i] or a.counts[i] != b.counts[i]]


def digest_records(
    batches: Iterable[RecordBatch],
    buckets: int = DEFAULT_BUCKETS,
    mode: EmbeddingMode = "exact",
) -> Digest:
    """The digest of a stream of record batches (a scan, a backup's record file)."""
    d = Digest(buckets, mode=mode)
    for batch in batches:
        d.add(batch)
    return d


def scan(
    http: ChromaHTTP, ref: CollectionRef, page_size: int | None = None, start: int = 0
) -> Iterator[RecordBatch]:
    """Every record of a collection, page by page (offset order; exact when not being written)."""
    size = page_size or http.max_batch_size()
    offset = start
    while True:
        batch = http.get(ref, offset=offset, limit=size)
        if len(batch):
            yield batch
        if len(batch) < size:
            return
        offset += len(batch)


def digest_collection(
    http: ChromaHTTP,
    ref: CollectionRef,
    buckets: int = DEFAULT_BUCKETS,
    page_size: int | None = None,
    mode: EmbeddingMode = "exact",
) -> Digest:
    """The digest of one collection on one server (or through a router)."""
    return digest_records(scan(http, ref, page_size), buckets, mode)


def fetch_buckets(
    batches: Iterable[RecordBatch], wanted: Iterable[int], buckets: int = DEFAULT_BUCKETS
) -> Iterator[RecordBatch]:
    """Only the records of `wanted` buckets from a stream (what a repair copies)."""
    keep = set(wanted)
    for batch in batches:
        sub = batch.filter(lambda rid: bucket_of(rid, buckets) in keep)
        if len(sub):
            yield sub


def fetch_bucket_records(
    http: ChromaHTTP,
    ref: CollectionRef,
    wanted: Iterable[int],
    buckets: int = DEFAULT_BUCKETS,
    page_size: int | None = None,
) -> Iterator[RecordBatch]:
    """Records of the `wanted` buckets of a collection on one server (scan + filter)."""
    return fetch_buckets(scan(http, ref, page_size), wanted, buckets)


def id_pages(
    http: ChromaHTTP, ref: CollectionRef, page_size: int | None = None, *, overlap: bool = False
) -> Iterator[list[str]]:
    """Pages of a collection's ids (no records on the wire), by offset. With `overlap` each
    page starts half a page after the last one, so up to that many deletes between two
    pages skip nothing (ids then repeat): for scans of a collection being written."""
    size = page_size or http.max_batch_size()
    step = max(1, size // 2) if overlap else size
    offset = 0
    while True:
        ids = http.get_ids(ref, offset=offset, limit=size)
        yield ids
        if len(ids) < size:
            return
        offset += step


def fetch_ids(
    http: ChromaHTTP, ref: CollectionRef, ids: list[str], page_size: int | None = None
) -> Iterator[RecordBatch]:
    """The records with `ids` (all fields), fetched by id a page at a time."""
    size = page_size or http.max_batch_size()
    for start in range(0, len(ids), size):
        yield http.get(ref, ids=ids[start : start + size])


def bucket_ids(
    http: ChromaHTTP,
    ref: CollectionRef,
    wanted: Iterable[int],
    buckets: int = DEFAULT_BUCKETS,
    page_size: int | None = None,
    on_page: Callable[[int], None] | None = None,
) -> list[str]:
    """Ids (only) in the `wanted` buckets: cheap, to find ids a replica must delete or
    fetch. `on_page` sees how many ids each page read."""
    keep = set(wanted)
    out: list[str] = []
    for ids in id_pages(http, ref, page_size):
        if on_page is not None:
            on_page(len(ids))
        out.extend(i for i in ids if bucket_of(i, buckets) in keep)
    return out


def _same_record(a: RecordBatch, i: int, b: RecordBatch, j: int, mode: EmbeddingMode) -> bool:
    if (a.documents[i], a.uris[i]) != (b.documents[j], b.uris[j]):
        return False
    if canonical_metadata(a.metadatas[i]) != canonical_metadata(b.metadatas[j]):
        return False
    ea, eb = a.embeddings[i], b.embeddings[j]
    if mode == "exact":
        return bool(ea.shape == eb.shape and np.array_equal(ea, eb))
    ua, ub = _unit(ea), _unit(eb)
    return bool(
        ua.shape == ub.shape and np.max(np.abs(ua - ub), initial=0.0) <= DIRECTION_TOLERANCE
    )


def diff_records(
    left: Iterable[RecordBatch], right: Iterable[RecordBatch], mode: EmbeddingMode = "exact"
) -> list[str]:
    """Ids that are on one side only or whose records differ (by direction within a
    tolerance in "direction" mode): the recheck of the records of differing buckets."""
    held: dict[str, tuple[RecordBatch, int]] = {}
    for batch in left:
        for i, rid in enumerate(batch.ids):
            held[rid] = (batch, i)
    differ: list[str] = []
    for batch in right:
        for j, rid in enumerate(batch.ids):
            got = held.pop(rid, None)
            if got is None or not _same_record(got[0], got[1], batch, j, mode):
                differ.append(rid)
    differ.extend(held)
    return sorted(differ)
