"""Sweep the HNSW grid on the sample with Chroma's own hnswlib build.

Each maxNeighbors x efConstruction pair builds one index (with every core: build time is
what a shard pays once), then each efSearch is measured on it: recall@k against the exact
truth, and per-query latency single-threaded (a shard answers one query on one thread),
taking each query's fastest of `repeats` runs so scheduler noise does not pick the winner.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from chroma_operator.tuner.recall import query_recalls
from chroma_operator.tuner.spaces import F32, Space, rowwise
from chroma_operator.tuner.truth import Truth


@dataclass(frozen=True)
class GridSpec:
    max_neighbors: tuple[int, ...]
    ef_construction: tuple[int, ...]
    ef_search: tuple[int, ...]

    @property
    def size(self) -> int:
        return len(self.max_neighbors) * len(self.ef_construction) * len(self.ef_search)


@dataclass(frozen=True)
class Point:
    """One measured grid point. Latencies in milliseconds (single-threaded, per query);
    `index_bytes` estimated from hnswlib's layout (within ~15% of its saved size)."""

    max_neighbors: int
    ef_construction: int
    ef_search: int
    recall: float
    p50_ms: float
    p99_ms: float
    mean_ms: float
    build_s: float
    index_bytes: int
    recall_se: float = 0.0
    """Standard error of the recall over the queries: how far a re-run could move it."""

    @property
    def params(self) -> tuple[int, int, int]:
        return (self.max_neighbors, self.ef_construction, self.ef_search)

    def to_json(self) -> dict[str, float | int]:
        """camelCase, like the ChromaCluster API the operator copies it into."""
        return {
            "maxNeighbors": self.max_neighbors,
            "efConstruction": self.ef_construction,
            "efSearch": self.ef_search,
            "recall": round(self.recall, 5),
            "recallStdErr": round(self.recall_se, 5),
            "p50Ms": round(self.p50_ms, 5),
            "p99Ms": round(self.p99_ms, 5),
            "meanMs": round(self.mean_ms, 5),
            "buildSeconds": round(self.build_s, 3),
            "indexBytes": self.index_bytes,
        }


def available_cpus() -> int:
    """CPUs this process may really use: its affinity, capped by a cgroup v2 CPU quota (a
    pod's `limits.cpu`), so index builds do not oversubscribe a throttled container."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cpus = min(cpus, max(1, int(int(quota) / int(period) + 0.5)))
    except (OSError, ValueError):
        pass
    return max(cpus, 1)


def index_bytes(n: int, dim: int, m: int) -> int:
    """Memory of an hnswlib index from its layout (hnswalg.h): level 0 holds 2M links, the
    vector and the label per element; upper levels (1/(M-1) of them per element on
    average) hold M links each; plus per-element level pointers and the label map."""
    level0 = 2 * m * 4 + 4 + dim * 4 + 8
    upper = (m * 4 + 4) / max(m - 1, 1)
    bookkeeping = 8 + 4 + 40
    return int(n * (level0 + upper + bookkeeping))


class HnswIndex(Protocol):
    """The part of `hnswlib.Index` the sweep uses (the extension ships no type hints)."""

    def set_ef(self, ef: int) -> None: ...
    def set_num_threads(self, num_threads: int) -> None: ...
    def knn_query(self, data: F32, k: int = 1) -> tuple[npt.NDArray[np.uint64], F32]: ...


def build_index(base: F32, space: Space, m: int, ef_construction: int, threads: int) -> HnswIndex:
    """An index over `base` with row numbers as labels, built on `threads` cores."""
    import hnswlib

    index = hnswlib.Index(space=space, dim=base.shape[1])
    index.init_index(
        max_elements=base.shape[0], M=m, ef_construction=ef_construction, random_seed=100
    )
    index.set_num_threads(threads)
    index.add_items(base, np.arange(base.shape[0]))
    built: HnswIndex = index
    return built


def measure(
    index: HnswIndex,
    base: F32,
    queries: F32,
    truth: Truth,
    space: Space,
    k: int,
    ef: int,
    repeats: int,
) -> tuple[float, float, float, float, float]:
    """(recall, p50 ms, p99 ms, mean ms, recall standard error) of one efSearch.

    Like Chroma, the search list is never shorter than k (ef below k searches with k).
    """
    index.set_ef(max(ef, k))
    index.set_num_threads(1)
    labels = np.full((len(queries), k), -1, dtype=np.int64)
    best = np.full(len(queries), np.inf)
    knn = index.knn_query
    clock = time.perf_counter_ns
    for _ in range(max(repeats, 1)):
        for i in range(len(queries)):
            q = queries[i : i + 1]
            t0 = clock()
            found, _ = knn(q, k=k)
            elapsed = clock() - t0
            best[i] = min(best[i], elapsed)
            labels[i, : found.shape[1]] = found[0]
    found_d = exact_found_distances(base, queries, labels, space)
    per_query = query_recalls(truth.kth, found_d, k)
    ms = best / 1e6
    return (
        float(per_query.mean()),
        float(np.percentile(ms, 50)),
        float(np.percentile(ms, 99)),
        float(ms.mean()),
        float(per_query.std(ddof=1) / np.sqrt(len(per_query))) if len(per_query) > 1 else 0.0,
    )


def exact_found_distances(base: F32, queries: F32, labels: np.ndarray, space: Space) -> F32:
    """Exact distances of the returned rows (-1 = no result: infinity), as ANN-benchmarks
    recomputes them rather than trusting the index's own numbers."""
    safe = np.where(labels < 0, 0, labels)
    dist = rowwise(queries, base[safe], space)
    dist[labels < 0] = np.inf
    return dist


def sweep(
    base: F32,
    queries: F32,
    truth: Truth,
    space: Space,
    k: int,
    grid: GridSpec,
    *,
    threads: int | None = None,
    repeats: int = 2,
    progress: bool = True,
) -> list[Point]:
    """Every grid point, measured: one build per (maxNeighbors, efConstruction), then
    every efSearch on it; each index is dropped before the next is built."""
    threads = threads or available_cpus()
    points: list[Point] = []
    builds = [(m, efc) for m in grid.max_neighbors for efc in grid.ef_construction]
    with Progress(
        TextColumn("sweeping {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        disable=not progress,
        transient=True,
    ) as bar:
        task = bar.add_task("HNSW grid", total=grid.size)
        for m, efc in builds:
            bar.update(task, description=f"M={m} efc={efc}")
            t0 = time.perf_counter()
            index = build_index(base, space, m, efc, threads)
            build_s = time.perf_counter() - t0
            mem = index_bytes(base.shape[0], base.shape[1], m)
            for ef in grid.ef_search:
                recall, p50, p99, mean, se = measure(
                    index, base, queries, truth, space, k, ef, repeats
                )
                points.append(Point(m, efc, ef, recall, p50, p99, mean, build_s, mem, se))
                bar.advance(task)
            del index
    return points


def unique_sorted(values: Iterable[int]) -> tuple[int, ...]:
    return tuple(sorted(set(values)))


def grid_from(
    max_neighbors: Sequence[int], ef_construction: Sequence[int], ef_search: Sequence[int]
) -> GridSpec:
    return GridSpec(
        unique_sorted(max_neighbors), unique_sorted(ef_construction), unique_sorted(ef_search)
    )
