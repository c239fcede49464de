"""The spec groups of the operator's scheduled Jobs: HNSW tuning and replica repair."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from chroma_operator.api.base import CRON_PATTERN, Model, Resources, resources_of


class Grid(Model):
    max_neighbors: list[int] = Field(
        default_factory=lambda: [8, 16, 32],
        min_length=1,
        max_length=16,
        description="maxNeighbors values to try",
    )
    ef_construction: list[int] = Field(
        default_factory=lambda: [64, 128, 256],
        min_length=1,
        max_length=16,
        description="efConstruction values to try",
    )
    ef_search: list[int] = Field(
        default_factory=lambda: [10, 20, 40, 80, 160, 320],
        min_length=1,
        max_length=32,
        description="efSearch values to try",
    )


class Tuning(Model):
    """Scheduled HNSW tuning: measure recall and latency on a sample, pick the fastest point."""

    enabled: bool = Field(default=False, description="Create the tuning CronJob")
    schedule: str = Field(
        default="0 3 * * 0", pattern=CRON_PATTERN, description="Cron schedule of the tuning Job"
    )
    collection: str | None = Field(
        default=None, min_length=1, description="Collection to tune; the largest one when unset"
    )
    target_recall: float = Field(
        default=0.95, gt=0, le=1, description="Recall@k the chosen point must reach"
    )
    k: int = Field(default=10, ge=1, le=1000, description="k of recall@k")
    sample_size: int = Field(default=20_000, ge=100, le=10_000_000, description="Vectors sampled")
    queries: int = Field(default=500, ge=10, le=100_000, description="Held-out query vectors")
    grid: Grid = Field(default_factory=Grid, description="Parameter grid swept")
    apply: Literal["none", "efSearch", "all"] = Field(
        default="none",
        description="What to apply: efSearch to live collections, all to also use the "
        "recommended build parameters for new collections",
    )
    resources: Resources = Field(
        default_factory=lambda: resources_of("1", "1Gi", "4Gi"), description="Resources of the Job"
    )


class Repair(Model):
    """Scheduled anti-entropy: compare every replica with an in-sync one, fix what differs."""

    enabled: bool = Field(default=False, description="Create the repair CronJob")
    schedule: str = Field(
        default="0 4 * * *", pattern=CRON_PATTERN, description="Cron schedule of the repair Job"
    )
    collection: str | None = Field(
        default=None, min_length=1, description="Collection to repair; every collection when unset"
    )
    records_per_second: int = Field(
        default=5_000,
        ge=0,
        le=10_000_000,
        description="Records read from or written to replicas per second (0: no limit), "
        "so live traffic keeps its latency",
    )
    resources: Resources = Field(
        default_factory=lambda: resources_of("250m", "256Mi", "1Gi"),
        description="Resources of the Job",
    )
