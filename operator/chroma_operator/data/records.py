"""A page of records in one shape: what the mover, the digest and backups pass around.

Embeddings are a float32 (n, dim) array: that is what Chroma stores, so the bytes we hash
and write are the bytes the server holds, whichever way (JSON floats, base64) they came.
Chroma answers a missing metadata as `{}`; we keep `None` for both so a record survives a
round trip through any server or backup unchanged.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

Metadata = dict[str, Any]
INCLUDE_ALL = ["embeddings", "documents", "metadatas", "uris"]


def canonical_metadata(metadata: Metadata | None) -> bytes | None:
    """Sorted-key JSON of a metadata, or None for none (Chroma's `{}` included)."""
    if not metadata:
        return None
    return orjson.dumps(metadata, option=orjson.OPT_SORT_KEYS)


@dataclass
class RecordBatch:
    """Columns of one page of records; every list has len(ids) entries."""

    ids: list[str]
    embeddings: npt.NDArray[np.float32]
    documents: list[str | None] = field(default_factory=list)
    metadatas: list[Metadata | None] = field(default_factory=list)
    uris: list[str | None] = field(default_factory=list)

    def __post_init__(self) -> None:
        n = len(self.ids)
        if not self.documents:
            self.documents = [None] * n
        if not self.metadatas:
            self.metadatas = [None] * n
        if not self.uris:
            self.uris = [None] * n
        self.metadatas = [m or None for m in self.metadatas]
        if self.embeddings.ndim != 2 or self.embeddings.shape[0] != n:
            if n == 0:
                self.embeddings = np.zeros((0, 0), dtype=np.float32)
            else:
                raise ValueError(f"embeddings shape {self.embeddings.shape} for {n} ids")
        self.embeddings = np.ascontiguousarray(self.embeddings, dtype="<f4")
        if not (len(self.documents) == len(self.metadatas) == len(self.uris) == n):
            raise ValueError("record columns differ in length")

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def empty(cls) -> RecordBatch:
        return cls([], np.zeros((0, 0), dtype=np.float32))

    @classmethod
    def from_get(cls, body: dict[str, Any]) -> RecordBatch:
        """A batch from Chroma's `get` answer (include: embeddings, documents, metadatas, uris)."""
        ids = list(body.get("ids") or [])
        emb = body.get("embeddings")
        if emb is None or not ids:
            arr = np.zeros((len(ids), 0), dtype=np.float32)
        else:
            arr = np.asarray(emb, dtype=np.float32)
        return cls(
            ids,
            arr,
            list(body.get("documents") or []),
            list(body.get("metadatas") or []),
            list(body.get("uris") or []),
        )

    def select(self, positions: Sequence[int]) -> RecordBatch:
        """The records at `positions`, in that order."""
        if len(positions) == len(self.ids):
            return self
        pos = list(positions)
        return RecordBatch(
            [self.ids[p] for p in pos],
            self.embeddings[pos] if len(pos) else np.zeros((0, 0), dtype=np.float32),
            [self.documents[p] for p in pos],
            [self.metadatas[p] for p in pos],
            [self.uris[p] for p in pos],
        )

    def filter(self, keep: Callable[[str], bool]) -> RecordBatch:
        return self.select([i for i, rid in enumerate(self.ids) if keep(rid)])

    def slices(self, size: int) -> Iterable[RecordBatch]:
        """Consecutive batches of at most `size` records."""
        for start in range(0, len(self.ids), size):
            yield self.select(range(start, min(start + size, len(self.ids))))  # type: ignore[arg-type]

    def nbytes(self) -> int:
        """Payload bytes (ids, embeddings, documents, metadata JSON, uris): the mover's counter."""
        total = int(self.embeddings.nbytes)
        total += sum(len(i.encode()) for i in self.ids)
        total += sum(len(d.encode()) for d in self.documents if d is not None)
        total += sum(len(canonical_metadata(m) or b"") for m in self.metadatas)
        total += sum(len(u.encode()) for u in self.uris if u is not None)
        return total

    def to_write_body(self, base64_embeddings: bool = False) -> dict[str, Any]:
        """The JSON body of an add/upsert (embeddings as base64 float32 when the server says so)."""
        embeddings: list[Any]
        if base64_embeddings:
            embeddings = [
                base64.b64encode(row.tobytes()).decode("ascii") for row in self.embeddings
            ]
        else:
            embeddings = self.embeddings.tolist()
        body: dict[str, Any] = {"ids": self.ids, "embeddings": embeddings}
        if any(d is not None for d in self.documents):
            body["documents"] = self.documents
        if any(m is not None for m in self.metadatas):
            body["metadatas"] = self.metadatas
        if any(u is not None for u in self.uris):
            body["uris"] = self.uris
        return body
