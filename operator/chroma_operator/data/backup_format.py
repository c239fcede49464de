"""The backup format: `manifest.json` plus one Parquet record file per collection.

Readable with stock pyarrow or pandas (columns: id string, embedding list<float32>,
document string, metadata string holding JSON, uri string). The manifest lists every file
with its sha256 and size, and each collection's digest, so a backup can be verified
without a cluster and a restore can prove the target holds exactly what was saved.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import IO, Any, Literal

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field

from chroma_operator.data.digest import DEFAULT_BUCKETS, Digest, EmbeddingMode
from chroma_operator.data.records import RecordBatch, canonical_metadata

FORMAT_VERSION: Literal[1] = 1
MANIFEST = "manifest.json"
SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("embedding", pa.list_(pa.float32())),
        pa.field("document", pa.string()),
        pa.field("metadata", pa.string()),
        pa.field("uri", pa.string()),
    ]
)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FileEntry(_Model):
    path: str = Field(description="Relative to the backup's folder")
    sha256: str
    size: int


class CollectionEntry(_Model):
    tenant: str
    database: str
    name: str
    configuration: dict[str, Any] = Field(default_factory=dict)
    metadata: dict[str, Any] | None = None
    embedding_function: dict[str, Any] | None = None
    space: str | None = None
    dimension: int | None = None
    count: int
    digest: dict[str, Any]
    file: FileEntry


class Manifest(_Model):
    format_version: Literal[1] = FORMAT_VERSION
    backup_id: str
    cluster: dict[str, Any] | None = Field(None, description="The router's topology, if known")
    source: str = Field(description="The router URL the backup was taken through")
    chroma_version: str = Field(description="The shards' API version (GET /api/v2/version)")
    started: str
    completed: str
    point_in_time: bool = Field(description="Every shard was held (detached) while copied")
    collections: list[CollectionEntry] = Field(default_factory=list)

    def to_json(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json"), option=orjson.OPT_INDENT_2) + b"\n"

    @property
    def records(self) -> int:
        return sum(c.count for c in self.collections)

    @property
    def bytes(self) -> int:
        return sum(c.file.size for c in self.collections)


def batch_to_table(batch: RecordBatch) -> pa.Table:
    n, dim = batch.embeddings.shape if len(batch) else (0, 0)
    flat = pa.array(batch.embeddings.reshape(-1), type=pa.float32())
    offsets = pa.array(np.arange(0, (n + 1) * dim, dim, dtype=np.int32) if n else [0], pa.int32())
    embeddings = pa.ListArray.from_arrays(offsets, flat, type=pa.list_(pa.float32()))
    metadata = [
        None if (m := canonical_metadata(x)) is None else m.decode() for x in batch.metadatas
    ]
    return pa.Table.from_arrays(
        [
            pa.array(batch.ids, pa.string()),
            embeddings,
            pa.array(batch.documents, pa.string()),
            pa.array(metadata, pa.string()),
            pa.array(batch.uris, pa.string()),
        ],
        schema=SCHEMA,
    )


def table_to_batch(table: pa.Table | pa.RecordBatch) -> RecordBatch:
    ids = table.column("id").to_pylist()
    emb_col = table.column("embedding")
    if isinstance(emb_col, pa.ChunkedArray):
        emb_col = emb_col.combine_chunks()
    n = len(ids)
    if n:
        flat = emb_col.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
        embeddings = flat.reshape(n, -1)
    else:
        embeddings = np.zeros((0, 0), dtype=np.float32)
    metadata = [
        None if m is None else orjson.loads(m) for m in table.column("metadata").to_pylist()
    ]
    return RecordBatch(
        ids,
        embeddings,
        table.column("document").to_pylist(),
        metadata,
        table.column("uri").to_pylist(),
    )


class _HashingFile:
    """A write-only file wrapper that hashes and counts what passes through."""

    def __init__(self, f: IO[bytes]) -> None:
        self.f = f
        self.sha = hashlib.sha256()
        self.size = 0
        self.closed = False

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        self.size += len(data)
        self.f.write(data)
        return len(data)

    def flush(self) -> None:
        self.f.flush()

    def tell(self) -> int:
        return self.size

    def close(self) -> None:
        self.closed = True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readable(self) -> bool:
        return False


class RecordFileWriter:
    """A mover sink that appends records to one Parquet file and digests them on the way.

    Ids already written are skipped: while a record moves between shards it may sit on
    two, and a backup holds it once.
    """

    def __init__(
        self,
        f: IO[bytes],
        rel_path: str,
        *,
        max_batch_size: int = 5000,
        buckets: int = DEFAULT_BUCKETS,
        mode: EmbeddingMode = "exact",
    ) -> None:
        self.file = f
        self.rel_path = rel_path
        self._max = max_batch_size
        self.hashing = _HashingFile(f)
        self.writer = pq.ParquetWriter(self.hashing, SCHEMA, compression="snappy")  # type: ignore[arg-type]
        self.digest = Digest(buckets, mode=mode)
        self.seen: set[str] = set()
        self.dimension: int | None = None

    @property
    def max_batch_size(self) -> int:
        return self._max

    @property
    def count(self) -> int:
        return len(self.seen)

    def write(self, batch: RecordBatch) -> None:
        fresh = [i for i, rid in enumerate(batch.ids) if rid not in self.seen]
        batch = batch.select(fresh)
        if not len(batch):
            return
        self.seen.update(batch.ids)
        self.dimension = int(batch.embeddings.shape[1])
        self.digest.add(batch)
        self.writer.write_table(batch_to_table(batch))

    def close(self) -> FileEntry:
        self.writer.close()
        self.file.close()
        return FileEntry(
            path=self.rel_path, sha256=self.hashing.sha.hexdigest(), size=self.hashing.size
        )


class RecordFileSource:
    """A mover source reading a Parquet record file in order (offset = row number)."""

    def __init__(self, f: IO[bytes], count: int | None = None) -> None:
        self.parquet = pq.ParquetFile(f)
        self._count = count if count is not None else self.parquet.metadata.num_rows
        self._pos = 0
        self._buffer: RecordBatch = RecordBatch.empty()
        self._iter: Any = None

    def count(self) -> int | None:
        return self._count

    def read(self, offset: int, limit: int) -> RecordBatch:
        if self._iter is None or offset != self._pos:
            self._iter = self.parquet.iter_batches(batch_size=max(limit, 1))
            self._pos, self._buffer = 0, RecordBatch.empty()
            while self._pos + len(self._buffer) <= offset:
                self._pos += len(self._buffer)
                nxt = next(self._iter, None)
                if nxt is None:
                    return RecordBatch.empty()
                self._buffer = table_to_batch(nxt)
            self._buffer = self._buffer.select(range(offset - self._pos, len(self._buffer)))  # type: ignore[arg-type]
            self._pos = offset
        while len(self._buffer) < limit:
            nxt = next(self._iter, None)
            if nxt is None:
                break
            more = table_to_batch(nxt)
            self._buffer = _concat(self._buffer, more)
        out = self._buffer.select(range(min(limit, len(self._buffer))))  # type: ignore[arg-type]
        self._buffer = self._buffer.select(range(len(out), len(self._buffer)))  # type: ignore[arg-type]
        self._pos += len(out)
        return out

    def batches(self, size: int = 5000) -> Any:
        for b in self.parquet.iter_batches(batch_size=size):
            yield table_to_batch(b)

    def pages(self, size: int) -> Iterator[RecordBatch]:
        """Consecutive pages of exactly `size` records (the last one shorter).

        Parquet hands out batches that end at row-group boundaries; a restore wants
        full pages, so short ones are joined (in Arrow, without per-record work).
        """
        if size < 1:
            raise ValueError("page size must be >= 1")
        held: list[pa.RecordBatch] = []
        rows = 0
        for b in self.parquet.iter_batches(batch_size=size):
            held.append(b)
            rows += b.num_rows
            while rows >= size:
                table = pa.Table.from_batches(held, schema=b.schema)
                yield table_to_batch(table.slice(0, size))
                rest = table.slice(size)
                held, rows = rest.to_batches(), rest.num_rows
        if rows:
            yield table_to_batch(pa.Table.from_batches(held))


def _concat(a: RecordBatch, b: RecordBatch) -> RecordBatch:
    if not len(a):
        return b
    if not len(b):
        return a
    return RecordBatch(
        a.ids + b.ids,
        np.vstack([a.embeddings, b.embeddings]),
        a.documents + b.documents,
        a.metadatas + b.metadatas,
        a.uris + b.uris,
    )
