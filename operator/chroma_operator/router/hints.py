"""Durable per-replica hint logs: the writes a replica missed, in order.

One append-only file per replica (`<hints_dir>/<replica name>.hints`), one JSON line per
write: method, the replica's own path when known (it holds the replica's own collection
id) or else (tenant, database, collection name, suffix) to resolve on replay, the exact
body and the credentials it was sent with. Every append is fsynced before the write it
belongs to is acknowledged, so a router killed mid-write loses no acknowledged write.

A log that would grow past its cap is dropped and the replica is marked for a full
repair (a `<name>.repair` marker file, so a restarted router remembers).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson


class HintLogError(Exception):
    """The hint could not be made durable (disk full, I/O error): the write must fail."""


class HintLogFull(Exception):
    """The log passed its cap: it was dropped, the replica needs a full repair."""


@dataclass(frozen=True)
class Hint:
    method: str
    path: str | None
    body: bytes | None
    headers: dict[str, str]
    # (tenant, database, collection name, suffix) when the replica's own path is unknown
    where: tuple[str, str, str, str] | None = None

    def encode(self) -> bytes:
        doc: dict[str, Any] = {"m": self.method, "h": self.headers}
        if self.path is not None:
            doc["p"] = self.path
        if self.where is not None:
            doc["w"] = list(self.where)
        if self.body is not None:
            try:
                doc["b"] = self.body.decode()
            except UnicodeDecodeError:
                doc["b64"] = base64.b64encode(self.body).decode()
        return orjson.dumps(doc) + b"\n"

    @classmethod
    def decode(cls, line: bytes) -> Hint:
        doc = orjson.loads(line)
        body: bytes | None = None
        if "b" in doc:
            body = str(doc["b"]).encode()
        elif "b64" in doc:
            body = base64.b64decode(doc["b64"])
        w = doc.get("w")
        return cls(
            method=str(doc["m"]),
            path=doc.get("p"),
            body=body,
            headers={str(k): str(v) for k, v in (doc.get("h") or {}).items()},
            where=(str(w[0]), str(w[1]), str(w[2]), str(w[3])) if w else None,
        )

    @property
    def records(self) -> int:
        """How many records the hint carries (for the replay-rate metric)."""
        if not self.body:
            return 0
        try:
            ids = orjson.loads(self.body).get("ids")
        except (orjson.JSONDecodeError, AttributeError):
            return 0
        return len(ids) if isinstance(ids, list) else 0


class HintLog:
    """The hint file of one replica; appends and the drain-then-truncate step are
    serialised by `lock`, so no append can slip between "replayed everything" and
    "the replica is in sync"."""

    def __init__(self, directory: Path, name: str, max_bytes: int) -> None:
        self.path = directory / f"{name}.hints"
        self.marker = directory / f"{name}.repair"
        self.max_bytes = max_bytes
        self.lock = asyncio.Lock()
        self.offset = 0  # bytes already replayed (in memory: a restart replays again)
        self.pending = 0
        self.size = 0
        # Only this log writes or removes its marker, so the file is read once, not on
        # every request that asks a replica's state.
        self._needs_repair = self.marker.exists()
        self._load()

    def _load(self) -> None:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return
        # A line cut by a crash mid-append was never acknowledged: drop it.
        end = data.rfind(b"\n") + 1
        if end != len(data):
            with open(self.path, "r+b") as f:
                f.truncate(end)
                os.fsync(f.fileno())
        self.size = end
        self.pending = data[:end].count(b"\n")

    @property
    def needs_repair(self) -> bool:
        return self._needs_repair

    def _append_sync(self, lines: bytes) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            written = 0
            while written < len(lines):
                written += os.write(fd, lines[written:])
            os.fsync(fd)
        except OSError:
            # Take back a partial line so the log stays parseable.
            with contextlib.suppress(OSError):
                os.ftruncate(fd, self.size)
            raise
        finally:
            os.close(fd)

    async def append(self, hint: Hint) -> None:
        """Append durably; the caller holds `lock`. Raises HintLogFull / HintLogError."""
        line = hint.encode()
        if self.size + len(line) > self.max_bytes:
            await asyncio.to_thread(self._drop_sync)
            raise HintLogFull(f"hint log {self.path.name} passed {self.max_bytes} bytes")
        try:
            await asyncio.to_thread(self._append_sync, line)
        except OSError as exc:
            raise HintLogError(f"cannot write hint log {self.path}: {exc.strerror or exc}") from exc
        self.size += len(line)
        self.pending += 1

    def read_from(self, offset: int, limit: int = 256) -> Iterator[tuple[Hint, int]]:
        """Up to `limit` hints after `offset`, each with the offset just past it."""
        if offset >= self.size:
            return
        with open(self.path, "rb") as f:
            f.seek(offset)
            pos = offset
            for _ in range(limit):
                line = f.readline()
                if not line.endswith(b"\n") or pos + len(line) > self.size:
                    return
                pos += len(line)
                yield Hint.decode(line), pos

    def advance(self, offset: int, count: int = 1) -> None:
        self.pending = max(0, self.pending - count)
        self.offset = offset

    def drained(self) -> bool:
        return self.offset >= self.size

    def truncate(self) -> None:
        """Everything replayed: empty the file (the caller holds `lock`)."""
        with open(self.path, "wb") as f:
            os.fsync(f.fileno())
        self.offset = self.size = self.pending = 0

    def _drop_sync(self) -> None:
        self._needs_repair = True
        self.marker.write_bytes(b"hint log dropped: full repair needed\n")
        self.path.unlink(missing_ok=True)
        self.offset = self.size = self.pending = 0

    def mark_repair(self) -> None:
        """A hint could not be kept: the replica needs a full repair."""
        try:
            self._drop_sync()
        except OSError:
            self.offset = self.size = self.pending = 0

    def clear_repair(self) -> None:
        self.marker.unlink(missing_ok=True)
        self._needs_repair = False


MERGEABLE = frozenset({"/add", "/upsert", "/update", "/delete"})


def _columns(hint: Hint) -> dict[str, Any] | None:
    """The body as columns when it is a plain by-ids record write, else None."""
    if hint.method != "POST" or not hint.body:
        return None
    suffix = (hint.path or (hint.where[3] if hint.where else "")).rsplit("/", 1)[-1]
    if "/" + suffix not in MERGEABLE:
        return None
    try:
        body = orjson.loads(hint.body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(body, dict) or not isinstance(body.get("ids"), list):
        return None
    if any(body.get(k) is not None for k in ("where", "where_document", "limit")):
        return None
    return body


def coalesce(batch: list[tuple[Hint, int]], max_ids: int = 1000) -> list[tuple[Hint, int, int]]:
    """Consecutive by-ids writes of the same kind to the same collection, on disjoint ids,
    merged into one request (the same effect, in far fewer round trips).

    Returns (hint, offset past its last part, how many hints it stands for)."""
    out: list[tuple[Hint, int, int]] = []
    group: list[tuple[Hint, int]] = []
    cols: dict[str, Any] | None = None
    ids: set[str] = set()

    def flush() -> None:
        nonlocal cols
        if not group:
            return
        if len(group) == 1 or cols is None:
            out.append((group[0][0], group[-1][1], len(group)))
        else:
            merged = Hint(
                group[0][0].method,
                group[0][0].path,
                orjson.dumps(cols),
                group[0][0].headers,
                group[0][0].where,
            )
            out.append((merged, group[-1][1], len(group)))
        group.clear()
        ids.clear()
        cols = None

    for hint, end in batch:
        body = _columns(hint)
        if group and cols is not None and body is not None:
            head = group[0][0]
            same = (hint.method, hint.path, hint.where, hint.headers) == (
                head.method,
                head.path,
                head.where,
                head.headers,
            )
            new_ids = {str(i) for i in body["ids"]}
            fits = (
                same
                and set(body) == set(cols)
                and all((body[k] is None) == (cols[k] is None) for k in body)
                and all(isinstance(body[k], list) or body[k] is None for k in body)
                and not (new_ids & ids)
                and len(new_ids) == len(body["ids"])
                and len(ids) + len(new_ids) <= max_ids
            )
            if fits:
                for k, v in body.items():
                    if v is not None:
                        cols[k] = [*cols[k], *v]
                ids.update(new_ids)
                group.append((hint, end))
                continue
        flush()
        group.append((hint, end))
        if body is not None and all(isinstance(v, list) or v is None for v in body.values()):
            cols = dict(body)
            ids.update(str(i) for i in body["ids"])
            if len(ids) != len(body["ids"]):
                cols = None  # repeated ids inside one write: keep it as it is
        else:
            cols = None
    flush()
    return out
