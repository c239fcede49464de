"""The topology: what a router (and the local runtime) needs to know about one cluster.

The builders write it as JSON into the `X-config` ConfigMap (key `topology.json`); the
router reads it from the mounted file and reloads it when the file changes. It is the one
contract between the control plane and the data plane, so it is a typed model with a
version, not an ad-hoc dict.
"""

from __future__ import annotations

from typing import Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

TOPOLOGY_VERSION: Literal[1] = 1
TOPOLOGY_KEY = "topology.json"
CHROMA_CONFIG_KEY = "chroma.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ShardTopology(_Strict):
    """One shard: every replica holds the whole shard (writes go to all, reads to one)."""

    index: int = Field(ge=0)
    endpoints: list[str] = Field(min_length=1, description="Base URLs of the shard's replicas")


class HnswDefaults(_Strict):
    """HNSW settings in Chroma's own collection-configuration spelling."""

    space: Literal["l2", "cosine", "ip"] = "l2"
    max_neighbors: int = 16
    ef_construction: int = 100
    ef_search: int = 100
    num_threads: int | None = None
    batch_size: int = 100
    sync_threshold: int = 1000
    resize_factor: float = 1.2

    def as_collection_configuration(self) -> dict[str, object]:
        """The `configuration.hnsw` object Chroma accepts on collection create."""
        cfg = self.model_dump(exclude_none=True)
        return {"hnsw": cfg}


class CacheTopology(_Strict):
    enabled: bool = True
    max_entries: int = 10_000
    ttl_seconds: float = 30.0


class HedgingTopology(_Strict):
    """Hedged reads: a read sub-request slower than its shard's recent p95 also goes to a
    second in-sync replica; the first answer wins. Never applied to writes."""

    enabled: bool = True
    max_fraction: float = Field(default=0.05, ge=0, le=1)
    floor_ms: float = Field(default=5.0, ge=0)


class RouterTopology(_Strict):
    shard_timeout_seconds: float = 10.0
    partial_results: bool = False
    exact_search_max_records: int = Field(
        default=100_000, description="Largest collection an exact search may scan"
    )
    cache: CacheTopology = CacheTopology()
    hedging: HedgingTopology = HedgingTopology()
    peers: list[str] = Field(
        default_factory=list,
        description="Base URLs of every router; a write through one invalidates the others",
    )


class ReplicationTopology(_Strict):
    """Write acknowledgement and hint logs (only matters with two or more replicas)."""

    min_acks: int = Field(
        default=1,
        ge=1,
        description="Replicas of the owning shard that must take a write before it is "
        "acknowledged; the others get hints",
    )
    max_hint_bytes: int = Field(
        default=256 * 1024 * 1024,
        ge=1024,
        description="A hint log larger than this is dropped and its replica needs a full repair",
    )
    mark_check_seconds: float = Field(
        default=10.0,
        gt=0,
        description="How often each router checks that every replica still carries its "
        "mark (one without it, beside siblings with it, lost its data)",
    )


class EncoderTopology(_Strict):
    url: str = Field(description="Base URL of the encoder; TEI's /embed is under it")
    model: str


class SloTopology(_Strict):
    latency_thresholds_ms: list[float] = Field(
        default_factory=list,
        description="Every latency SLO threshold: the router's histogram has a bucket bound at each",
    )
    recall_sample_rate: float = Field(
        default=0.01, description="Share of live queries re-run exactly to measure recall"
    )
    recall_k: int = Field(default=10, description="Recall is measured at min(n_results, k)")
    recall_max_per_second: float = Field(
        default=2.0, description="Most exact re-runs per second, per router"
    )


PlacementPhase = Literal["stable", "dual-write", "backfill", "verify", "cutover", "cleanup"]


class PlacementTopology(_Strict):
    """Which shard count places records now, and during a move which one it replaces.

    Resharding from N to M shards is a sequence of epochs, one per phase: writes go to
    the owners under both counts from "dual-write" until "cutover" (inclusive), reads use
    the old count until "cutover" and the new one from then on. `shards` entries in the
    topology cover max(N, M) shards while a move runs.
    """

    epoch: int = Field(default=0, ge=0)
    shards: int = Field(ge=1, description="Shard count that places records (the target)")
    previous_shards: int | None = Field(
        default=None, ge=1, description="Shard count being moved away from; None when stable"
    )
    phase: PlacementPhase = "stable"


class AuthTopology(_Strict):
    """Token auth at the router: the mounted tokens file, re-read when it changes."""

    tokens_file: str = Field(description="Path of the tokens YAML (a Secret's tokens.yaml)")


class TlsTopology(_Strict):
    """HTTPS at the router: the mounted kubernetes.io/tls Secret's files."""

    cert_file: str
    key_file: str
    ca_file: str | None = Field(
        default=None, description="CA bundle peers are verified with (the Secret's ca.crt)"
    )


class Topology(_Strict):
    version: Literal[1] = 1
    cluster: str
    namespace: str
    hash_scheme: Literal["jump-sha256"] = Field(
        default="jump-sha256",
        description="Record placement: jump consistent hash of the first 8 bytes of "
        "sha256(id) read as a big-endian unsigned integer",
    )
    shards: list[ShardTopology] = Field(min_length=1)
    hnsw: HnswDefaults = HnswDefaults()
    router: RouterTopology = RouterTopology()
    encoder: EncoderTopology | None = None
    slo: SloTopology = SloTopology()
    replication: ReplicationTopology = ReplicationTopology()
    replica_states: dict[str, Literal["in-sync", "stale", "repairing", "fenced"]] = Field(
        default_factory=dict,
        description="Published replica states by name (shard-<i>-<r>), as the operator last "
        "collected them from the routers; a router never reads a replica listed here as "
        "anything but in-sync",
    )
    fenced: list[str] = Field(
        default_factory=list,
        description="Replica names that take no reads; their writes become hints until unfenced",
    )
    hints_dir: str | None = Field(
        default=None,
        description="Directory of this router's hint logs (one file per replica); "
        "unset: hints are kept in memory only and lost with the router",
    )
    placement: PlacementTopology | None = Field(
        default=None,
        description="Record placement epoch; None means every listed shard places records",
    )
    auth: AuthTopology | None = None
    tls: TlsTopology | None = None

    def current_placement(self) -> PlacementTopology:
        """The placement in force (a topology without one: stable over its shards)."""
        if self.placement is not None:
            return self.placement
        return PlacementTopology(shards=len(self.shards))

    def to_json(self) -> str:
        """Canonical JSON (sorted keys) so the same topology is the same bytes."""
        options = orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2
        data = self.model_dump(mode="json")
        if data.get("placement") is None:
            data.pop("placement", None)  # a stable cluster's topology stays as it was
        return orjson.dumps(data, option=options).decode() + "\n"

    @classmethod
    def from_json(cls, text: str | bytes) -> Topology:
        return cls.model_validate(orjson.loads(text))
