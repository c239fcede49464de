"""The repair report: per replica and collection counts, totals, the compact form the
operator reads from the termination message, and the text a person reads."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

TERMINATION_LIMIT = 3_500
"""Kubernetes keeps 4 KiB of a termination message; leave room."""


@dataclass
class CollectionResult:
    """One collection on one target replica, compared with its shard's reference."""

    replica: str
    shard: int
    tenant: str
    database: str
    collection: str
    buckets_compared: int = 0
    buckets_differing: int = 0
    copied: int = 0
    removed: int = 0
    overwritten: int = 0
    created: bool = False
    converged: bool = False
    rounds: int = 0


@dataclass
class RepairReport:
    dry_run: bool
    reference: str = "router"
    """Where replica states came from: "router", "topology" or "first-replica" (none)."""
    results: list[CollectionResult] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    disagreements: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    """Replicas that did not answer."""
    repaired: list[str] = field(default_factory=list)
    """Replicas that were `repairing` and were reported repaired to the routers."""
    seconds: float = 0.0
    records_read: int = 0

    def total(self, name: str) -> int:
        return sum(int(getattr(r, name)) for r in self.results)

    @property
    def converged(self) -> bool:
        return not self.errors and all(r.converged for r in self.results)

    @property
    def status(self) -> str:
        return "ok" if self.converged else "failed"

    @property
    def reason(self) -> str | None:
        if self.converged:
            return None
        if self.errors:
            return "replica-unreachable"
        return "differences-found" if self.dry_run else "not-converged"

    def message(self) -> str:
        if self.errors:
            return "; ".join(self.errors)
        if self.converged:
            return "every replica matches an in-sync one"
        if self.dry_run:
            return "replicas differ from their in-sync peers (dry run: nothing changed)"
        return "replicas still differ after the repair rounds (writes during the repair?)"

    def totals(self) -> dict[str, Any]:
        return {
            "collections": len({(r.tenant, r.database, r.collection) for r in self.results}),
            "bucketsCompared": self.total("buckets_compared"),
            "bucketsDiffering": self.total("buckets_differing"),
            "copied": self.total("copied"),
            "removed": self.total("removed"),
            "overwritten": self.total("overwritten"),
            "recordsRead": self.records_read,
            "seconds": round(self.seconds, 3),
        }

    def per_replica(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for r in self.results:
            row = out.setdefault(r.replica, {"copied": 0, "removed": 0, "overwritten": 0})
            row["copied"] += r.copied
            row["removed"] += r.removed
            row["overwritten"] += r.overwritten
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "v": 1,
            "status": self.status,
            "reason": self.reason,
            "message": self.message(),
            "dryRun": self.dry_run,
            "reference": self.reference,
            "converged": self.converged,
            **self.totals(),
            "replicas": self.per_replica(),
            "repaired": self.repaired,
            "skipped": self.skipped,
            "errors": self.errors,
            "warnings": self.warnings,
            "disagreements": self.disagreements,
            "results": [asdict(r) for r in self.results],
        }

    def compact(self) -> dict[str, Any]:
        """What fits a termination message: totals, changed replicas, the first problems."""
        full = self.to_json()
        full.pop("results")
        full["replicas"] = {k: v for k, v in full["replicas"].items() if any(v.values())}
        for key in ("errors", "warnings", "disagreements", "repaired", "skipped"):
            full[key] = [str(x)[:200] for x in full[key][:5]]
        while len(_encode(full)) > TERMINATION_LIMIT and full["replicas"]:
            full["replicas"].pop(next(iter(full["replicas"])))
        return full

    def summary(self) -> str:
        t = self.totals()
        verb = "would change" if self.dry_run else "changed"
        lines = [
            f"{'dry run: ' if self.dry_run else ''}{t['collections']} collection(s), "
            f"{t['bucketsCompared']} buckets compared, {t['bucketsDiffering']} differ; "
            f"{verb}: {t['copied']} copied, {t['removed']} removed, "
            f"{t['overwritten']} overwritten ({t['seconds']} s)"
        ]
        for r in self.results:
            if r.copied or r.removed or r.overwritten or not r.converged:
                lines.append(
                    f"  {r.replica} {r.tenant}/{r.database}/{r.collection}: "
                    f"{r.copied} copied, {r.removed} removed, {r.overwritten} overwritten"
                    + ("" if r.converged else " (not converged)")
                )
        lines += [f"  disagreement: {d}" for d in self.disagreements]
        lines += [f"  warning: {w}" for w in self.warnings]
        lines += [f"  error: {e}" for e in self.errors]
        lines += [f"  reported repaired to the routers: {n}" for n in self.repaired]
        return "\n".join(lines)


def _encode(data: Any) -> bytes:
    from chroma_operator.tuner.report import encode

    return encode(data)
