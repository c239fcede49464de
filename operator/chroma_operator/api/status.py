"""What the operator reports in a ChromaCluster's status."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field

from chroma_operator.api.base import Model, Observed
from chroma_operator.api.slo_status import SloStatus
from chroma_operator.api.tuning_state import TuningStatus


class Condition(Model):
    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str = ""
    last_transition_time: str
    observed_generation: int | None = None


class ReplicaStatus(Model):
    """One replica as the routers see it (the worst state any router reports)."""

    name: str
    endpoint: str | None = None
    state: str
    pending_hints: int = 0


class ShardStatus(Model):
    index: int
    replicas: int
    ready_replicas: int
    replica_states: list[ReplicaStatus] | None = None


class UpgradeStatus(Model):
    """A rolling Chroma upgrade: one shard at a time, each replica ready before the next."""

    from_: str | None = Field(default=None, alias="from", description="Image being replaced")
    to: str | None = Field(default=None, description="Image rolled out")
    state: Literal["Rolling", "Done", "Failed"] | None = None
    current: int | None = Field(default=None, description="Shard rolling now (or where it stopped)")
    shards: int | None = None
    shards_done: int | None = Field(default=None, description="Shards on the new image, ready")
    started_at: str | None = None
    at: str | None = Field(default=None, description="When the upgrade finished")
    message: str | None = None


class FenceStatus(Model):
    replicas: list[str] = Field(
        default_factory=list, description="Replicas out of reads and writes (shard-<i>-<r>)"
    )
    problem: str | None = Field(
        default=None, description="Why the fence annotation was not applied"
    )


class StorageStatus(Model):
    size: str | None = Field(default=None, description="Requested claim size")
    kept: dict[str, str] | None = Field(
        default=None, description="Shards kept at their size (shrink refused, not expandable)"
    )


class Endpoints(Model):
    router: str | None = None
    encoder: str | None = None


class RepairStatus(Observed):
    """The last repair Job's report (`chroma-operator repair` writes it as JSON)."""

    job: str | None = Field(default=None, description="The repair Job this came from")
    status: str | None = Field(default=None, description="ok, or failed")
    reason: str | None = None
    message: str | None = None
    dry_run: bool | None = None
    copied: int | None = Field(default=None, description="Records copied to a replica")
    removed: int | None = Field(default=None, description="Records removed from a replica")
    overwritten: int | None = Field(default=None, description="Records overwritten")
    buckets_compared: int | None = None
    buckets_differing: int | None = None
    seconds: float | None = None


class ReshardingStatus(Observed):
    """A shard-count change in progress (or the last one): phase, counts, rate, ETA."""

    phase: str | None = Field(
        default=None, description="stable, dual-write, backfill, verify, cutover or cleanup"
    )
    epoch: int | None = Field(default=None, description="The placement epoch")
    from_shards: int | None = None
    to_shards: int | None = None
    collections_total: int | None = None
    collections_done: int | None = None
    done_collections: list[str] | None = None
    records_to_move: int | None = None
    records_moved: int | None = None
    records_verified: int | None = None
    records_repaired: int | None = None
    records_cleaned: int | None = None
    rate_per_second: float | None = None
    eta_seconds: float | None = None
    paused: str | None = Field(default=None, description="Why the move waits, while it does")
    message: str | None = None
    placement: dict[str, Any] | None = Field(
        default=None, description="The placement the routers follow (the topology's own form)"
    )


class ChromaClusterStatus(Model):
    """Observed state; written by the operator only."""

    model_config = ConfigDict(extra="allow")

    phase: (
        Literal[
            "Pending",
            "Provisioning",
            "Ready",
            "Degraded",
            "Failed",
            "Hibernated",
            "Paused",
            "Upgrading",
        ]
        | None
    ) = None
    reason: str | None = None
    message: str | None = None
    observed_generation: int | None = None
    ready: str | None = Field(default=None, description="Ready shards, e.g. 2/3")
    conditions: list[Condition] = Field(default_factory=list)
    shards: list[ShardStatus] = Field(default_factory=list)
    endpoints: Endpoints | None = None
    tuning: TuningStatus | None = None
    repair: RepairStatus | None = None
    slo: SloStatus | None = None
    resharding: ReshardingStatus | None = Field(
        default=None,
        description="A shard-count change: phase, epoch, placement, collections done, "
        "records moved, rate, ETA",
    )
    upgrade: UpgradeStatus | None = None
    fence: FenceStatus | None = None
    storage: StorageStatus | None = None
