"""Load records into a new, empty collection through a router, a few pages at a time.

A restore writes into an empty target, so each page goes out as a plain `add`: nothing
to overwrite, nothing to read back per page. Pages are sent concurrently (a small
bounded number in flight): while one page is being stored by the shards the next is
already encoded and on the wire, which keeps every shard busy instead of waiting for
the client between pages. Any page that fails fails the load, after every page still in
flight has finished, so the caller can remove what was created knowing no write is left
running. A page retried after a lost answer is harmless: adding an id already there
changes nothing, and the restore's final count and digest check proves the result.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from chroma_operator.data.chroma_http import ChromaHTTP, CollectionRef
from chroma_operator.data.mover import MoveStats, ProgressBar, RateLimiter
from chroma_operator.data.records import RecordBatch

DEFAULT_IN_FLIGHT = 3


def load_pages(
    pages: Iterable[RecordBatch],
    http: ChromaHTTP,
    ref: CollectionRef,
    *,
    in_flight: int = DEFAULT_IN_FLIGHT,
    rate_limit: float | None = None,
    progress: bool = False,
    total: int | None = None,
    description: str = "loading",
) -> MoveStats:
    """`add` every page to `ref` on `http`, up to `in_flight` pages at once."""
    if in_flight < 1:
        raise ValueError("in_flight must be >= 1")
    http.supports_base64()  # the pre-flight answer is fetched once, before the threads
    stats = MoveStats()
    limiter = RateLimiter(rate_limit)
    started = time.monotonic()
    bar = ProgressBar(progress, description, total if progress else None, 0)

    def send(page: RecordBatch) -> int:
        http.add(ref, page)
        return len(page)

    def finish(done: Iterable[Future[int]]) -> None:
        for f in done:
            n = f.result()  # raises the page's error
            stats.moved += n
            stats.pages += 1
            bar.advance(n)

    pool = ThreadPoolExecutor(in_flight, thread_name_prefix="restore-load")
    pending: set[Future[int]] = set()
    try:
        for page in pages:
            if not len(page):
                continue
            if len(pending) >= in_flight:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                finish(done)
            pending.add(pool.submit(send, page))
            stats.scanned += len(page)
            limiter.take(len(page))
        done, pending = wait(pending)
        finish(done)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # nothing keeps writing after we return
        bar.close()
    stats.cursor = stats.scanned
    stats.seconds = time.monotonic() - started
    return stats
