"""One tuning run, start to finish: sample, truth, sweep, choose, (live), report.

The steps fill in a `Report` as they go, so whatever stops the run, the report and the
compact result still say how far it got and why it stopped.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from chroma_operator.tuner import live as live_mode
from chroma_operator.tuner.choose import choose
from chroma_operator.tuner.errors import TunerError
from chroma_operator.tuner.report import Report, now_iso
from chroma_operator.tuner.sample import (
    connect,
    describe,
    fetch_sample,
    open_collection,
    split_queries,
)
from chroma_operator.tuner.spaces import prepare
from chroma_operator.tuner.sweep import GridSpec, sweep
from chroma_operator.tuner.truth import exact_topk


@dataclass
class Options:
    url: str
    collection: str | None
    grid: GridSpec
    k: int = 10
    target_recall: float = 0.95
    sample: int = 20_000
    queries: int = 500
    query_file: Path | None = None
    live: bool = False
    verify: bool = False
    """Measure recall and latency of the live collection as it is now; no sweep."""
    token: str | None = None
    threads: int | None = None
    repeats: int = 2
    seed: int = 0
    page: int = 1000
    progress: bool = True
    log: Callable[[str], None] = field(default=lambda _msg: None)


def run_tuning(opts: Options) -> Report:
    """Run; the report's status is ok, failed (with a reason) or target-not-reached."""
    report = Report(
        url=opts.url, collection=opts.collection, k=opts.k, target_recall=opts.target_recall
    )
    report.grid = {
        "maxNeighbors": list(opts.grid.max_neighbors),
        "efConstruction": list(opts.grid.ef_construction),
        "efSearch": list(opts.grid.ef_search),
    }
    try:
        _run(opts, report)
    except TunerError as exc:
        report.fail(exc.reason, exc.message)
    except Exception as exc:
        # A server error mid-run: still a report, and a code that says "retry may help";
        # the traceback goes to the log (the Job's log, when the pod fails).
        opts.log(traceback.format_exc())
        report.fail("server-error", f"{type(exc).__name__}: {exc}")
    return report


def _timed(report: Report, name: str, t0: float) -> None:
    report.timings_s[name] = time.perf_counter() - t0


def _run(opts: Options, report: Report) -> None:
    t_all = time.perf_counter()
    if opts.k < 1:
        raise TunerError("bad-input", f"k must be at least 1, got {opts.k}")
    if not 0 < opts.target_recall <= 1:
        raise TunerError("bad-input", f"target recall must be in (0, 1], got {opts.target_recall}")
    client = connect(opts.url, opts.token)
    collection = open_collection(client, opts.collection)
    info = describe(collection)
    report.collection, report.space = info.name, info.space
    report.collection_count, report.collection_hnsw = info.count, info.hnsw
    opts.log(f"collection {info.name}: {info.count} records, space {info.space}")
    if info.count == 0:
        raise TunerError("empty-collection", f"collection {info.name!r} is empty: nothing to tune")

    supplied = _load_queries(opts.query_file) if opts.query_file else None
    report.queries_requested = opts.queries if supplied is None else len(supplied)
    # A collection smaller than the asked-for query set keeps most of itself as the base:
    # hold out at most a fifth of what will be sampled (and say so in the report).
    held = (
        0 if supplied is not None else min(opts.queries, max(1, min(opts.sample, info.count) // 5))
    )
    if held < opts.queries and supplied is None:
        opts.log(f"holding out {held} queries instead of {opts.queries}: the sample is small")
    if opts.k > info.count - held:
        raise TunerError(
            "k-too-large",
            f"k={opts.k} is larger than the {info.count} records of {info.name!r}"
            + (f" less {held} held-out queries" if held else ""),
        )

    t0 = time.perf_counter()
    sample = fetch_sample(
        collection, info.count, opts.sample, page=opts.page, seed=opts.seed, progress=opts.progress
    )
    _timed(report, "sample", t0)
    if not sample.ids:
        raise TunerError("empty-collection", f"collection {info.name!r} returned no embeddings")
    report.sample_size = len(sample.ids)
    if supplied is not None:
        if supplied.shape[1] != sample.vectors.shape[1]:
            raise TunerError(
                "bad-input",
                f"query file has dimension {supplied.shape[1]}, the collection "
                f"{sample.vectors.shape[1]}",
            )
        base_raw, query_raw = sample.vectors, supplied
        report.query_source = str(opts.query_file)
    else:
        if held >= len(sample.ids):
            raise TunerError(
                "bad-input",
                f"{held} held-out queries leave no base vectors in a sample of "
                f"{len(sample.ids)}: lower --queries or raise --sample",
            )
        base_raw, query_raw, _ = split_queries(sample, held, opts.seed)
    if opts.k > len(base_raw):
        raise TunerError(
            "k-too-large", f"k={opts.k} is larger than the {len(base_raw)} sampled base vectors"
        )
    base = prepare(base_raw, info.space)
    queries = prepare(query_raw, info.space)
    report.base_size, report.queries = len(base), len(queries)

    if opts.verify:
        _verify(opts, report, collection, client, sample, query_raw, info.space, info.count)
        return

    t0 = time.perf_counter()
    truth = exact_topk(base, queries, opts.k, info.space)
    report.truth_device = truth.device
    _timed(report, "truth", t0)
    opts.log(f"ground truth for {len(queries)} queries over {len(base)} vectors ({truth.device})")

    t0 = time.perf_counter()
    report.points = sweep(
        base,
        queries,
        truth,
        info.space,
        opts.k,
        opts.grid,
        threads=opts.threads,
        repeats=opts.repeats,
        progress=opts.progress,
    )
    _timed(report, "sweep", t0)
    report.choice = choose(report.points, opts.target_recall, opts.k)

    if opts.live:
        t0 = time.perf_counter()
        # Held-out queries are still records of the live collection: score against the
        # whole sample, which is exact when the sample is the whole collection.
        everything = prepare(sample.vectors, info.space)
        live_truth = exact_topk(everything, queries, opts.k, info.space)
        report.live = live_mode.live_sweep(
            client,
            collection,
            np.ascontiguousarray(query_raw, dtype=np.float32),
            live_truth,
            info.space,
            opts.k,
            list(opts.grid.ef_search),
            exact_truth=len(sample.ids) >= info.count,
        )
        _timed(report, "live", t0)

    _timed(report, "total", t_all)
    report.finished = now_iso()
    choice = report.choice
    if choice.met:
        report.status, report.reason, report.message = "ok", None, choice.reason
    else:
        report.status, report.reason, report.message = "failed", "target-not-reached", choice.reason


def _verify(
    opts: Options,
    report: Report,
    collection: Any,
    client: Any,
    sample: Any,
    query_raw: np.ndarray,
    space: Any,
    count: int,
) -> None:
    """After a tuning run was applied and the shards restarted: what recall and latency do
    clients get now? Scored against exact top-k over the sample (exact when the sample is
    the whole collection, otherwise an upper bound)."""
    t0 = time.perf_counter()
    everything = prepare(sample.vectors, space)
    queries = np.ascontiguousarray(query_raw, dtype=np.float32)
    truth = exact_topk(everything, prepare(queries, space), opts.k, space)
    _, stats = live_mode.measure_now(collection, queries, opts.k, space, truth)
    report.verify = {
        "efSearch": live_mode.stored_ef(client, collection.name),
        "exactTruth": len(sample.ids) >= count,
        **{k: round(v, 4) for k, v in stats.items()},
    }
    _timed(report, "verify", t0)
    report.finished = now_iso()
    report.status, report.reason = "ok", None
    report.message = (
        f"live recall@{opts.k} {stats['recall']:.4f}, p50 {stats['p50Ms']:.2f} ms "
        f"at ef_search {report.verify['efSearch']}"
    )


def _load_queries(path: Path) -> np.ndarray:
    try:
        data = np.load(path)
    except (OSError, ValueError) as exc:
        raise TunerError("bad-input", f"cannot read query file {path}: {exc}") from exc
    if data.ndim != 2 or not len(data):
        raise TunerError("bad-input", f"query file {path} must hold a 2-D array of vectors")
    return np.ascontiguousarray(data, dtype=np.float32)
