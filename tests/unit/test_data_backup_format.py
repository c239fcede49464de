"""Backup record files and manifests without a cluster."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from chroma_operator.data.backup import BackupError, load_manifest
from chroma_operator.data.backup_format import (
    MANIFEST,
    CollectionEntry,
    FileEntry,
    Manifest,
    RecordFileSource,
    RecordFileWriter,
)
from chroma_operator.data.digest import digest_records
from chroma_operator.data.mover import move
from chroma_operator.data.records import RecordBatch
from chroma_operator.data.restore import major, portable_configuration, verify_backup
from chroma_operator.data.store import Store, StoreError


def sample(n: int) -> RecordBatch:
    rng = np.random.default_rng(3)
    return RecordBatch(
        [f"id{i}" for i in range(n)],
        rng.random((n, 5), dtype=np.float32),
        [None if i % 2 else f"doc {i}" for i in range(n)],
        [{"k": i, "s": "x"} if i % 3 else None for i in range(n)],
        [f"u{i}" if i % 4 == 0 else None for i in range(n)],
    )


def write_backup(tmp_path: Path, records: RecordBatch) -> tuple[Store, Manifest]:
    store = Store(str(tmp_path / "b1"))
    rel = "records/0000-db-c.parquet"
    w = RecordFileWriter(store.open(rel, "wb"), rel, max_batch_size=16)
    for page in records.slices(16):
        w.write(page)
    w.write(records.select([0, 1, 2]))  # already written (a record on two shards): skipped
    entry = w.close()
    manifest = Manifest(
        backup_id="b1",
        source="http://r",
        chroma_version="1.0.0",
        started="t0",
        completed="t1",
        point_in_time=True,
        collections=[
            CollectionEntry(
                tenant="default_tenant",
                database="db",
                name="c",
                count=w.count,
                dimension=w.dimension,
                digest=w.digest.to_json(),
                file=entry,
            )
        ],
    )
    store.write_bytes(MANIFEST, manifest.to_json())
    return store, manifest


def test_record_file_round_trip_and_checksum(tmp_path: Path) -> None:
    records = sample(70)
    store, manifest = write_backup(tmp_path, records)
    c = manifest.collections[0]
    assert c.count == 70 and c.dimension == 5
    raw = (tmp_path / "b1" / c.file.path).read_bytes()
    assert c.file.size == len(raw) and c.file.sha256 == hashlib.sha256(raw).hexdigest()
    # Stock pyarrow reads it: the documented columns and types.
    table = pq.read_table(tmp_path / "b1" / c.file.path)
    assert table.schema.names == ["id", "embedding", "document", "metadata", "uri"]
    emb_type = table.schema.field("embedding").type
    assert emb_type.value_type == pa.float32()
    assert table.column("metadata")[1].as_py() == '{"k":1,"s":"x"}'
    # A mover reading it back in odd pages gets every record, bit for bit.
    src = RecordFileSource(store.open(c.file.path))

    class Collect:
        max_batch_size = 9
        got: list[RecordBatch] = []

        def write(self, batch: RecordBatch) -> None:
            self.got.append(batch)

    sink = Collect()
    stats = move(src, sink)
    assert stats.moved == 70
    assert digest_records(sink.got) == digest_records([records])
    assert src.read(65, 10).ids == [f"id{i}" for i in range(65, 70)]
    assert verify_backup(str(tmp_path / "b1")).backup_id == "b1"


def test_pages_are_full_across_row_groups(tmp_path: Path) -> None:
    """Row groups of 16 (plus a short one) come back as full pages of any size, in order."""
    records = sample(70)
    store, manifest = write_backup(tmp_path, records)
    c = manifest.collections[0]
    for size in (1, 7, 16, 25, 70, 100):
        pages = list(RecordFileSource(store.open(c.file.path)).pages(size))
        assert [len(p) for p in pages[:-1]] == [size] * (len(pages) - 1)
        assert 0 < len(pages[-1]) <= size
        assert [i for p in pages for i in p.ids] == records.ids
        assert digest_records(pages) == digest_records([records])
    with pytest.raises(ValueError):
        list(RecordFileSource(store.open(c.file.path)).pages(0))


def test_verify_names_the_broken_file(tmp_path: Path) -> None:
    _, manifest = write_backup(tmp_path, sample(40))
    path = tmp_path / "b1" / manifest.collections[0].file.path
    data = bytearray(path.read_bytes())
    data[100] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(BackupError, match=r"0000-db-c.parquet: sha256 differs"):
        verify_backup(str(tmp_path / "b1"))
    path.write_bytes(bytes(data[:50]))
    with pytest.raises(BackupError, match="truncated"):
        verify_backup(str(tmp_path / "b1"))
    path.unlink()
    with pytest.raises(BackupError, match="missing"):
        verify_backup(str(tmp_path / "b1"))


def test_manifest_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(BackupError, match=r"no manifest\.json"):
        load_manifest(Store(str(tmp_path)))
    (tmp_path / MANIFEST).write_text('{"format_version": 1}')
    with pytest.raises(BackupError, match="not a valid manifest") as err:
        load_manifest(Store(str(tmp_path)))
    assert "\n" not in str(err.value)
    (tmp_path / MANIFEST).write_text("{not json")
    with pytest.raises(BackupError, match="not a valid manifest"):
        load_manifest(Store(str(tmp_path)))


def test_store_schemes_and_major_versions(tmp_path: Path) -> None:
    s = Store(f"file://{tmp_path}/x")
    s.write_bytes("a/b", b"1")
    assert Store(str(tmp_path)).children() == ["x"] and s.size("a/b") == 1
    s.remove()
    assert not (tmp_path / "x").exists()
    with pytest.raises(StoreError, match="gcsfs"):
        Store("gs://bucket/path")
    assert major("1.0.0") == "1" and major("v2.3") == "2"
    FileEntry(path="p", sha256="0" * 64, size=0)


def test_the_source_encoder_is_not_carried_to_a_new_cluster(tmp_path: Path) -> None:
    _, manifest = write_backup(tmp_path, sample(3))
    ef = {
        "type": "known",
        "name": "huggingface_server",
        "config": {"url": "http://a-encoder:8080/embed"},
    }
    c = manifest.collections[0].model_copy(
        update={"configuration": {"hnsw": {"space": "cosine"}, "embedding_function": ef}}
    )
    own = manifest.model_copy(update={"cluster": {"encoder": {"url": "http://a-encoder:8080"}}})
    assert portable_configuration(c, own) == {"hnsw": {"space": "cosine"}}
    other = manifest.model_copy(update={"cluster": {"encoder": {"url": "http://elsewhere:1"}}})
    assert portable_configuration(c, other) == c.configuration
    assert portable_configuration(c, manifest) == c.configuration  # no topology known
