"""Digests of moved records: are the copies on the new owners equal to the originals?

Records are bucketed by a hash of the id; a bucket's digest XORs a hash of each record's
id and content (embedding, document, canonical metadata JSON, uri), so it is independent
of order. Two sides compare bucket by bucket and only differing buckets are fetched.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

import orjson

BUCKETS = 256


def bucket_of(record_id: str, buckets: int = BUCKETS) -> int:
    return (
        int.from_bytes(hashlib.blake2b(record_id.encode(), digest_size=4).digest(), "big") % buckets
    )


def record_hashes(records: dict[str, Any]) -> dict[str, bytes]:
    """Per id, a hash of the id and its content as Chroma returns it."""
    ids = [str(i) for i in records["ids"]]
    cols = [records.get(f) for f in ("embeddings", "documents", "metadatas", "uris")]
    out: dict[str, bytes] = {}
    for j, record_id in enumerate(ids):
        row = [record_id, *[(c[j] if c is not None else None) for c in cols]]
        raw = orjson.dumps(row, option=orjson.OPT_SORT_KEYS | orjson.OPT_SERIALIZE_NUMPY)
        out[record_id] = hashlib.blake2b(raw, digest_size=16).digest()
    return out


def digest(hashes: dict[str, bytes], buckets: int = BUCKETS) -> list[bytes]:
    """Bucket digests: XOR of the record hashes in each bucket."""
    acc = [0] * buckets
    for record_id, h in hashes.items():
        acc[bucket_of(record_id, buckets)] ^= int.from_bytes(h, "big")
    return [a.to_bytes(16, "big") for a in acc]


def differing(a: list[bytes], b: list[bytes]) -> list[int]:
    return [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y]


def ids_in(buckets: Iterable[int], ids: Iterable[str], n: int = BUCKETS) -> list[str]:
    wanted = set(buckets)
    return sorted(i for i in ids if bucket_of(i, n) in wanted)
