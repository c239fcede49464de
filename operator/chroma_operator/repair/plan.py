"""What a repair compares and what it changes: pure decisions, no I/O.

A shard's replicas are compared bucket by bucket with a reference. The reference is an
in-sync replica; when several in-sync replicas disagree on a bucket, the majority (equal
count and hash sum) wins, ties go to the first in-sync replica, and the disagreement is
reported. Every other replica is repaired bucket by bucket from that bucket's reference.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from chroma_operator.data.digest import Digest, EmbeddingMode, diff_records
from chroma_operator.data.records import RecordBatch

IN_SYNC = "in-sync"
FENCED = "fenced"
REPAIRING = "repairing"


@dataclass(frozen=True)
class Replica:
    """One replica of one shard: its router name (`shard-<i>-<r>`), URL and state."""

    name: str
    shard: int
    ordinal: int
    endpoint: str
    state: str

    @property
    def in_sync(self) -> bool:
        return self.state == IN_SYNC


def replica_name(shard: int, ordinal: int) -> str:
    return f"shard-{shard}-{ordinal}"


def references(replicas: Sequence[Replica]) -> list[Replica]:
    """The replicas a shard is repaired from: its in-sync ones, in ordinal order."""
    return sorted((r for r in replicas if r.in_sync), key=lambda r: r.ordinal)


def bucket_references(
    digests: Mapping[str, Digest], order: Sequence[str]
) -> tuple[list[str], list[int]]:
    """Per bucket, the name of the reference replica, and the buckets where the in-sync
    replicas (`order`, the first wins a tie) disagree."""
    first = digests[order[0]]
    chosen: list[str] = []
    disagree: list[int] = []
    for b in range(first.buckets):
        votes = Counter((digests[n].sums[b], digests[n].counts[b]) for n in order)
        if len(votes) > 1:
            disagree.append(b)
        top = max(votes.values())
        winner = next(n for n in order if votes[(digests[n].sums[b], digests[n].counts[b])] == top)
        chosen.append(winner)
    return chosen, disagree


def differing_buckets(
    target: Digest, digests: Mapping[str, Digest], chosen: Sequence[str]
) -> dict[str, list[int]]:
    """Reference name -> the buckets where `target` differs from that bucket's reference."""
    out: dict[str, list[int]] = {}
    for b, ref in enumerate(chosen):
        d = digests[ref]
        if target.sums[b] != d.sums[b] or target.counts[b] != d.counts[b]:
            out.setdefault(ref, []).append(b)
    return out


@dataclass
class Changes:
    """What a target needs so its records in some buckets equal the reference's."""

    copy: RecordBatch = field(default_factory=RecordBatch.empty)
    """Records the target lacks."""
    overwrite: RecordBatch = field(default_factory=RecordBatch.empty)
    """Records the target holds with other content."""
    remove: list[str] = field(default_factory=list)
    """Ids the target holds that the reference does not (deleted while it was away)."""

    def __len__(self) -> int:
        return len(self.copy) + len(self.overwrite) + len(self.remove)


def _concat(batches: Iterable[RecordBatch]) -> RecordBatch:
    parts = [b for b in batches if len(b)]
    if not parts:
        return RecordBatch.empty()
    if len(parts) == 1:
        return parts[0]
    return RecordBatch(
        [i for p in parts for i in p.ids],
        np.concatenate([p.embeddings for p in parts]),
        [d for p in parts for d in p.documents],
        [m for p in parts for m in p.metadatas],
        [u for p in parts for u in p.uris],
    )


def changes(
    reference: Sequence[RecordBatch], target: Sequence[RecordBatch], mode: EmbeddingMode
) -> Changes:
    """Classify the records of the same buckets on the reference and on the target.

    `diff_records` decides what differs (with the cosine tolerance in "direction" mode),
    so a record that only moved by Chroma's normalization is not rewritten."""
    differ = set(diff_records(reference, target, mode))
    ref = _concat(reference)
    held = {i for b in target for i in b.ids}
    ref_ids = set(ref.ids)
    copy = [k for k, rid in enumerate(ref.ids) if rid in differ and rid not in held]
    over = [k for k, rid in enumerate(ref.ids) if rid in differ and rid in held]
    remove = sorted(rid for rid in held if rid not in ref_ids)
    return Changes(ref.select(copy), ref.select(over), remove)
