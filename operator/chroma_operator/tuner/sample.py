"""Draw the tuning sample from a live collection through Chroma's HTTP API.

Only the public API is used (the stock client), so the same code samples a single Chroma
node or the router in front of many shards. The sample is uniform over the collection:
ids are listed, a random subset is drawn, and its embeddings are fetched by id in pages.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import numpy as np
import numpy.typing as npt
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from chroma_operator.tuner.errors import TunerError
from chroma_operator.tuner.spaces import F32, Space, parse_space

DEFAULT_PAGE = 1000


def connect(url: str, token: str | None = None, timeout: float = 120.0) -> Any:
    """A stock `chromadb.HttpClient` for a base URL such as http://router:8000."""
    import chromadb
    from chromadb.config import Settings

    parsed = urlparse(url if "://" in url else f"http://{url}")
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise TunerError("bad-url", f"not an http(s) URL: {url!r}")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    headers = {"Authorization": f"Bearer {token}"} if token else None
    try:
        return chromadb.HttpClient(
            host=parsed.hostname,
            port=port,
            ssl=parsed.scheme == "https",
            headers=headers,
            settings=Settings(anonymized_telemetry=False, chroma_server_http_timeout=timeout),
        )
    except Exception as exc:  # the client probes the server on construction
        raise TunerError("unreachable", f"cannot reach Chroma at {url}: {exc}") from exc


@dataclass(frozen=True)
class CollectionInfo:
    """What the tuner needs to know about the collection it tunes."""

    name: str
    id: str
    count: int
    space: Space
    hnsw: dict[str, Any] = field(default_factory=dict)


def describe(collection: Any) -> CollectionInfo:
    """Name, size, distance space and current HNSW settings of a collection."""
    config = getattr(collection, "configuration_json", None) or {}
    hnsw = dict(config.get("hnsw") or {})
    metadata = collection.metadata or {}
    space = parse_space(hnsw.get("space") or metadata.get("hnsw:space") or "l2")
    return CollectionInfo(
        name=collection.name,
        id=str(collection.id),
        count=int(collection.count()),
        space=space,
        hnsw=hnsw,
    )


def open_collection(client: Any, name: str | None) -> Any:
    """The named collection, or the largest one when no name is given."""
    from chromadb.errors import NotFoundError

    if name is None:
        collections = list(client.list_collections())
        if not collections:
            raise TunerError("no-collection", "the database has no collections to tune")
        return max(collections, key=lambda c: (c.count(), c.name))
    try:
        return client.get_collection(name, embedding_function=None)
    except NotFoundError as exc:
        raise TunerError("unknown-collection", f"collection {name!r} does not exist") from exc
    except ValueError as exc:  # older clients raise ValueError for a missing collection
        if "does not exist" in str(exc):
            raise TunerError("unknown-collection", f"collection {name!r} does not exist") from exc
        raise


@dataclass(frozen=True)
class Sample:
    ids: list[str]
    vectors: F32


ID_LISTING_LIMIT = 2_000_000
"""Up to this many records, list every id in one call and fetch a uniform sample by id.

Fetching by id is linear through the router (each id goes to its shard), while deep
`offset` pages are not: the router must ask every shard for offset+limit records."""


def fetch_sample(
    collection: Any,
    total: int,
    size: int,
    *,
    page: int = DEFAULT_PAGE,
    seed: int = 0,
    progress: bool = True,
) -> Sample:
    """Up to `size` (id, embedding) pairs: a uniform sample by id, or for very large
    collections, pages at random offsets."""
    want = min(size, total)
    rng = np.random.default_rng(seed)
    if total <= ID_LISTING_LIMIT:
        all_ids = list(collection.get(include=[])["ids"])
        if len(all_ids) > want:
            picked = np.sort(rng.choice(len(all_ids), size=want, replace=False))
            all_ids = [all_ids[i] for i in picked]
        requests: list[dict[str, Any]] = [
            {"ids": all_ids[s : s + page]} for s in range(0, len(all_ids), page)
        ]
    else:
        pages = math.ceil(total / page)
        take = min(pages, math.ceil(want / page))
        starts = sorted(int(p) * page for p in rng.choice(pages, size=take, replace=False))
        requests = [{"offset": s, "limit": page} for s in starts]
    ids: list[str] = []
    chunks: list[npt.NDArray[np.float32]] = []
    with Progress(
        TextColumn("sampling {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        disable=not progress,
        transient=True,
    ) as bar:
        task = bar.add_task(collection.name, total=want)
        for request in requests:
            got = collection.get(**request, include=["embeddings"])
            emb = got.get("embeddings")
            if emb is None or len(got["ids"]) == 0:
                continue
            ids.extend(got["ids"])
            chunks.append(np.asarray(emb, dtype=np.float32))
            bar.update(task, completed=min(len(ids), want))
    if not ids:
        return Sample([], np.empty((0, 0), np.float32))
    vectors = np.concatenate(chunks)
    if len(ids) > want:
        keep = np.sort(rng.choice(len(ids), size=want, replace=False))
        ids = [ids[i] for i in keep]
        vectors = vectors[keep]
    return Sample(ids, np.ascontiguousarray(vectors))


def split_queries(
    sample: Sample, queries: int, seed: int = 0
) -> tuple[F32, F32, npt.NDArray[np.int64]]:
    """Hold out `queries` vectors: (base, queries, rows of the queries in the sample)."""
    rng = np.random.default_rng(seed + 1)
    order = rng.permutation(len(sample.ids))
    held = np.sort(order[:queries]).astype(np.int64)
    mask = np.ones(len(sample.ids), dtype=bool)
    mask[held] = False
    return sample.vectors[mask], sample.vectors[held], held
