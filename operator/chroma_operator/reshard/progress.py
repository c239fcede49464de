"""What a move reports: `status.resharding` on Kubernetes, a line a phase locally."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Progress:
    """Progress of one move; the phase and epoch are those of the topology's placement."""

    from_shards: int
    to_shards: int
    phase: str = "dual-write"
    epoch: int = 0
    collections_total: int = 0
    collections_done: list[str] = field(default_factory=list)
    records_to_move: int = 0
    records_moved: int = 0
    records_verified: int = 0
    records_repaired: int = 0
    records_cleaned: int = 0
    paused: str | None = None
    message: str = ""
    started: float = field(default_factory=time.time)
    backfill_started: float | None = None
    backfill_seconds: float = 0.0
    # The mover's cursor per "collection#source shard" (in memory: a restarted operator
    # resumes by collection, and rewriting a page is harmless).
    cursors: dict[str, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        """Records moved per second during backfill."""
        if self.backfill_started is None:
            return 0.0
        elapsed = self.backfill_seconds or (time.time() - self.backfill_started)
        return self.records_moved / elapsed if elapsed > 0 else 0.0

    @property
    def eta_seconds(self) -> float | None:
        if self.phase != "backfill" or self.rate <= 0:
            return None
        return max(0.0, (self.records_to_move - self.records_moved) / self.rate)

    def as_status(self) -> dict[str, Any]:
        """The `status.resharding` object (camelCase, as the rest of the status)."""
        eta = self.eta_seconds
        return {
            "phase": self.phase,
            "epoch": self.epoch,
            "fromShards": self.from_shards,
            "toShards": self.to_shards,
            "collectionsTotal": self.collections_total,
            "collectionsDone": len(self.collections_done),
            "doneCollections": list(self.collections_done),
            "recordsToMove": self.records_to_move,
            "recordsMoved": self.records_moved,
            "recordsVerified": self.records_verified,
            "recordsRepaired": self.records_repaired,
            "recordsCleaned": self.records_cleaned,
            "ratePerSecond": round(self.rate, 1),
            "etaSeconds": None if eta is None else round(eta, 1),
            "paused": self.paused,
            "message": self.message,
        }

    @classmethod
    def from_status(cls, data: dict[str, Any]) -> Progress:
        """Resume from a saved status (a restarted operator carries on from it)."""
        p = cls(int(data.get("fromShards", 0)), int(data.get("toShards", 0)))
        p.phase = str(data.get("phase", p.phase))
        p.epoch = int(data.get("epoch", 0))
        p.collections_done = [str(c) for c in data.get("doneCollections", [])]
        p.records_moved = int(data.get("recordsMoved", 0))
        p.records_to_move = int(data.get("recordsToMove", 0))
        p.records_verified = int(data.get("recordsVerified", 0))
        p.records_cleaned = int(data.get("recordsCleaned", 0))
        return p
