"""Digest and mover against real `chroma run` servers.

Three servers per module: a source, and two targets. Each test uses fresh collection
names; the digest is the oracle ("converged" means equal digests).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import numpy as np
import pytest

from chroma_operator.data.chroma_http import (
    DEFAULT_DATABASE,
    DEFAULT_TENANT,
    ChromaHTTP,
    CollectionRef,
)
from chroma_operator.data.digest import (
    bucket_ids,
    bucket_of,
    diff_records,
    digest_collection,
    fetch_bucket_records,
)
from chroma_operator.data.mover import CollectionSink, CollectionSource, MoveStats, delete_ids, move
from chroma_operator.data.records import RecordBatch
from chroma_operator.local.chroma_server import ChromaServer
from chroma_operator.router.placement import shard_for
from router_harness import start_servers

pytestmark = pytest.mark.slow

N = 1200
DIM = 16


@pytest.fixture(scope="module")
def servers() -> Iterator[list[ChromaServer]]:
    started = start_servers(3)
    try:
        yield started
    finally:
        for s in started:
            s.close()


@pytest.fixture(scope="module")
def https(servers: list[ChromaServer]) -> Iterator[list[ChromaHTTP]]:
    clients = [ChromaHTTP(s.url) for s in servers]
    yield clients
    for c in clients:
        c.close()


def sample(n: int, seed: int = 0) -> RecordBatch:
    rng = np.random.default_rng(seed)
    return RecordBatch(
        [f"doc-{i}" for i in range(n)],
        rng.standard_normal((n, DIM)).astype(np.float32),
        [f"text {i}" if i % 4 else None for i in range(n)],
        [{"i": i, "even": i % 2 == 0, "w": i / 8} if i % 3 else None for i in range(n)],
        [f"s3://bucket/{i}" if i % 10 == 0 else None for i in range(n)],
    )


def create(http: ChromaHTTP, name: str, space: str = "l2") -> CollectionRef:
    got = http.create_collection(
        DEFAULT_TENANT, DEFAULT_DATABASE, name, configuration={"hnsw": {"space": space}}
    )
    return CollectionRef(DEFAULT_TENANT, DEFAULT_DATABASE, str(got["id"]), name)


def filled(http: ChromaHTTP, n: int = N, space: str = "l2") -> CollectionRef:
    ref = create(http, "c" + uuid.uuid4().hex[:12], space)
    for page in sample(n).slices(500):
        http.upsert(ref, page)
    return ref


def test_move_gives_equal_digests(https: list[ChromaHTTP]) -> None:
    src_http, dst_http = https[0], https[1]
    src = filled(src_http)
    dst = create(dst_http, src.name)
    stats = move(CollectionSource(src_http, src), CollectionSink(dst_http, dst), page_size=300)
    assert (stats.scanned, stats.moved, stats.pages) == (N, N, 4)
    assert dst_http.count(dst) == N
    a, b = digest_collection(src_http, src), digest_collection(dst_http, dst)
    assert a == b and a.count == N
    # The digest of the records as written equals the digest read back from a server
    # (metadata floats here are exact binary fractions: Chroma may change the last bit of
    # others on their first write; copies between servers are then stable).
    from chroma_operator.data.digest import digest_records

    assert digest_records([sample(N)]) == a
    # Documents, metadata and uris come back as written.
    got = dst_http.get(dst, ids=["doc-5", "doc-10"])
    by_id = dict(
        zip(got.ids, zip(got.documents, got.metadatas, got.uris, strict=True), strict=True)
    )
    assert by_id["doc-5"] == ("text 5", {"i": 5, "even": False, "w": 5 / 8}, None)
    assert by_id["doc-10"] == ("text 10", {"i": 10, "even": True, "w": 10 / 8}, "s3://bucket/10")


def test_direct_edits_change_exactly_their_buckets_and_repair_converges(
    https: list[ChromaHTTP],
) -> None:
    src_http, dst_http = https[0], https[1]
    src = filled(src_http)
    dst = create(dst_http, src.name)
    move(CollectionSource(src_http, src), CollectionSink(dst_http, dst))
    # Edit the copy behind the mover's back: change, drop, add, re-embed, change metadata.
    changed = sample(N).select([5, 6, 7])
    changed.documents = ["edited", "edited", "edited"]
    changed.embeddings = changed.embeddings.copy()
    changed.embeddings[1, 0] += 1e-3
    changed.metadatas = [{"i": 5}, {"i": 6}, {"other": 1}]
    dst_http.upsert(dst, changed)
    dst_http.delete(dst, ["doc-100"])
    dst_http.upsert(dst, RecordBatch(["stray"], np.ones((1, DIM), dtype=np.float32)))
    touched = {"doc-5", "doc-6", "doc-7", "doc-100", "stray"}
    a, b = digest_collection(src_http, src), digest_collection(dst_http, dst)
    assert a.diff(b) == sorted({bucket_of(i) for i in touched})
    # Repair only those buckets: drop what the copy holds there, copy the source's records.
    bad = a.diff(b)
    extra = set(bucket_ids(dst_http, dst, bad)) - set(bucket_ids(src_http, src, bad))
    assert extra == {"stray"}
    delete_ids(dst_http, dst, sorted(extra))
    sink = CollectionSink(dst_http, dst, replace=True)
    for page in fetch_bucket_records(src_http, src, bad):
        sink.write(page)
    assert digest_collection(dst_http, dst) == a


def test_plain_upsert_does_not_overwrite_so_replace_mode_exists(https: list[ChromaHTTP]) -> None:
    """Chroma keeps old fields on upsert with None and merges metadata keys."""
    http = https[2]
    ref = create(http, "c" + uuid.uuid4().hex[:12])
    old = RecordBatch(["a"], np.ones((1, 2), dtype=np.float32), ["doc"], [{"k": 1}], ["u"])
    new = RecordBatch(["a"], np.zeros((1, 2), dtype=np.float32), [None], [{"j": 2}], [None])
    http.upsert(ref, old)
    http.upsert(ref, new)
    merged = http.get(ref)
    assert merged.documents == ["doc"] and merged.metadatas == [{"k": 1, "j": 2}]
    CollectionSink(http, ref, replace=True).write(new)
    got = http.get(ref)
    assert got.documents == [None] and got.metadatas == [{"j": 2}] and got.uris == [None]


def test_mover_resumes_from_a_cursor(https: list[ChromaHTTP]) -> None:
    src_http, dst_http = https[0], https[2]
    src = filled(src_http)
    dst = create(dst_http, src.name)
    cursors: list[int] = []

    class Interrupted(Exception):
        pass

    def stop_after_two(stats: MoveStats) -> None:
        cursors.append(stats.cursor)
        if len(cursors) == 2:
            raise Interrupted

    with pytest.raises(Interrupted):
        move(
            CollectionSource(src_http, src),
            CollectionSink(dst_http, dst),
            page_size=250,
            on_page=stop_after_two,
        )
    assert cursors == [250, 500] and dst_http.count(dst) == 500
    stats = move(
        CollectionSource(src_http, src),
        CollectionSink(dst_http, dst),
        page_size=250,
        cursor=cursors[-1],
        rate_limit=5000,
    )
    assert stats.scanned == N - 500 and stats.cursor == N
    assert digest_collection(dst_http, dst) == digest_collection(src_http, src)


def test_predicate_moves_exactly_the_selected_ids(https: list[ChromaHTTP]) -> None:
    src_http = https[0]
    src = filled(src_http)
    digests = []
    for s, http in enumerate(https[1:]):
        dst = create(http, src.name)
        stats = move(
            CollectionSource(src_http, src),
            CollectionSink(http, dst),
            predicate=lambda rid, s=s: shard_for(rid, 2) == s,  # type: ignore[misc]
        )
        expected = {f"doc-{i}" for i in range(N) if shard_for(f"doc-{i}", 2) == s}
        got = set(bucket_ids(http, dst, range(1024)))
        assert got == expected and stats.moved == len(expected) and stats.scanned == N
        digests.append(digest_collection(http, dst))
    assert digests[0].merge(digests[1]) == digest_collection(src_http, src)


def test_cosine_copies_drift_but_direction_digests_agree(https: list[ChromaHTTP]) -> None:
    """Chroma rescales cosine vectors on the way out: bit-exact digests differ, direction
    digests (plus the tolerant recheck of any differing bucket) agree."""
    src_http, dst_http = https[0], https[1]
    src = filled(src_http, space="cosine")
    dst = create(dst_http, src.name, "cosine")
    move(CollectionSource(src_http, src), CollectionSink(dst_http, dst))
    exact_a, exact_b = digest_collection(src_http, src), digest_collection(dst_http, dst)
    assert exact_a != exact_b  # the drift is real: why "direction" mode exists
    a = digest_collection(src_http, src, mode="direction")
    b = digest_collection(dst_http, dst, mode="direction")
    noisy = a.diff(b)
    assert len(noisy) <= 3
    recheck = diff_records(
        fetch_bucket_records(src_http, src, noisy),
        fetch_bucket_records(dst_http, dst, noisy),
        "direction",
    )
    assert recheck == []
    # A real change is still seen: by the digest and by the recheck.
    edited = sample(N).select([42])
    edited.embeddings = edited.embeddings * -1.0
    dst_http.upsert(dst, edited)
    changed = a.diff(digest_collection(dst_http, dst, mode="direction"))
    assert bucket_of("doc-42") in changed
    assert diff_records(
        fetch_bucket_records(src_http, src, changed),
        fetch_bucket_records(dst_http, dst, changed),
        "direction",
    ) == ["doc-42"]
