"""The ChromaCluster resource as typed models: the single source of the CRD schema.

Python names are snake_case; the Kubernetes spelling (camelCase) is the alias. Every
field has a default and a description: the description becomes `kubectl explain` text.
Cross-field rules are declared once in `rules.py` and appear both as CEL in the CRD and
as checks in `validate.py`, so a cluster whose CRD lacks validation is still protected.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from chroma_operator.api.backup_spec import (
    Bootstrap,
    FromBackup,
    Retention,
    ScheduledBackup,
    credentials_help,
    destination_help,
)
from chroma_operator.api.base import (
    CRON_PATTERN,
    DNS_NAME_PATTERN,
    DURATION_PATTERN,
    LABEL_KEY_PATTERN,
    QUANTITY_PATTERN,
    Model,
    Quantity,
    ResourceList,
    Resources,
    resources_of,
)
from chroma_operator.api.encoder_spec import (
    DEFAULT_ENCODER_MODEL,
    Autoscaling,
    Batching,
    Encoder,
)
from chroma_operator.api.jobs_spec import Grid, Repair, Tuning
from chroma_operator.api.security import (
    Auth,
    IpBlock,
    LabelSelector,
    LabelSelectorRequirement,
    Network,
    NetworkPeer,
    Tls,
)
from chroma_operator.api.slo_spec import Monitoring, Objective, Slo
from chroma_operator.api.status import (
    ChromaClusterStatus,
    Condition,
    Endpoints,
    FenceStatus,
    ReplicaStatus,
    ShardStatus,
    StorageStatus,
    UpgradeStatus,
)

API_GROUP = "chroma.operator.dev"
API_VERSION = "v1alpha1"
KIND = "ChromaCluster"
PLURAL = "chromaclusters"
SINGULAR = "chromacluster"
SHORT_NAMES = ["chroma", "cc"]
CATEGORIES = ["chroma"]

DEFAULT_CHROMA_VERSION = "1.5.9"
DEFAULT_OPERATOR_IMAGE = "ghcr.io/chroma-operator/chroma-operator:0.1.0"
DEFAULT_ENCODER_IMAGE = "ghcr.io/chroma-operator/chroma-operator-encoder:0.1.0"


class Storage(Model):
    size: str = Field(
        default="10Gi",
        pattern=QUANTITY_PATTERN,
        description="Size of each shard replica's PersistentVolumeClaim",
    )
    storage_class_name: str | None = Field(
        default=None, description="StorageClass of the claims; the cluster default when unset"
    )


class Hnsw(Model):
    """HNSW index settings for collections the router creates (Chroma's defaults)."""

    space: Literal["l2", "cosine", "ip"] = Field(
        default="l2", description="Distance function: l2 (squared), cosine or ip (inner product)"
    )
    max_neighbors: int = Field(
        default=16,
        ge=2,
        le=512,
        description="M: links per node; more is better recall, more memory",
    )
    ef_construction: int = Field(
        default=100, ge=1, le=10_000, description="Candidate list size while building the index"
    )
    ef_search: int = Field(
        default=100, ge=1, le=10_000, description="Candidate list size while querying"
    )
    num_threads: int | None = Field(
        default=None,
        ge=1,
        le=256,
        description="Threads for index building; Chroma uses all CPUs when unset",
    )
    batch_size: int = Field(
        default=100, ge=2, le=100_000, description="Vectors buffered in the brute-force layer"
    )
    sync_threshold: int = Field(
        default=1000,
        ge=2,
        le=1_000_000,
        description="Vectors written before the index is persisted",
    )
    resize_factor: float = Field(
        default=1.2, ge=1.0, le=10.0, description="Growth factor of the index when it fills up"
    )


class Cache(Model):
    enabled: bool = Field(default=True, description="Cache query results in each router")
    max_entries: int = Field(
        default=10_000,
        ge=1,
        le=10_000_000,
        description="Least-recently-used entries kept per router",
    )
    ttl_seconds: float = Field(
        default=30.0, gt=0, le=86_400, description="Longest time a cached result may be served"
    )


class Hedging(Model):
    """Hedged reads: a slow read sub-request also goes to a second in-sync replica."""

    enabled: bool = Field(default=True, description="Hedge reads slower than the shard's p95")
    max_fraction: float = Field(
        default=0.05, ge=0, le=1, description="Most hedges as a fraction of read sub-requests"
    )


class Replication(Model):
    """How writes are acknowledged when shards have two or more replicas."""

    min_acks: int = Field(
        default=1,
        ge=1,
        le=9,
        description="Replicas of the owning shard that must take a write before it is "
        "acknowledged; replicas that miss it get durable hints and catch up",
    )
    max_hint_bytes: int = Field(
        default=256 * 1024 * 1024,
        ge=1024,
        description="Cap of one router's hint log per replica; past it the log is dropped "
        "and the replica needs `chroma-operator repair`",
    )


class Router(Model):
    """The query router: a sidecar in every shard pod, behind the cluster's Service."""

    image: str | None = Field(
        default=None, description="Router image; the operator's image when unset"
    )
    port: int = Field(
        default=8080, ge=1024, le=65535, description="Port the router listens on in the pod"
    )
    cache: Cache = Field(default_factory=Cache, description="Query-result cache")
    shard_timeout_seconds: float = Field(
        default=10.0, gt=0, le=600, description="Timeout of one call to one shard"
    )
    partial_results: bool = Field(
        default=False,
        description="Answer with the shards that replied (header X-Chroma-Partial-Shards) "
        "instead of failing when a shard is down",
    )
    exact_search_max_records: int = Field(
        default=100_000,
        ge=1,
        le=10_000_000,
        description="Largest collection (records across shards) that an exact search "
        "(header X-Chroma-Search: exact) may scan; larger ones get a 400",
    )
    resources: Resources = Field(
        default_factory=lambda: resources_of("100m", "128Mi", "512Mi"),
        description="Resources of the router container",
    )
    hedging: Hedging = Field(default_factory=Hedging, description="Hedged reads")


class ChromaClusterSpec(Model):
    """Desired state of a sharded Chroma cluster."""

    version: str = Field(
        default=DEFAULT_CHROMA_VERSION,
        pattern=r"^[0-9]+\.[0-9]+\.[0-9]+$",
        description="Chroma version",
    )
    image: str | None = Field(
        default=None, description="Chroma image; chromadb/chroma:<version> when unset"
    )
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = Field(
        default="IfNotPresent", description="Pull policy of every container"
    )
    shards: int = Field(
        default=2,
        ge=1,
        le=256,
        description="Number of shards; records are placed by jump hash of their id",
    )
    replicas: int = Field(
        default=1, ge=1, le=9, description="Pods per shard, each holding the whole shard"
    )
    storage: Storage = Field(default_factory=Storage, description="Persistent storage per pod")
    replication: Replication = Field(
        default_factory=Replication, description="Write acknowledgement and hint logs"
    )
    resources: Resources = Field(
        default_factory=lambda: resources_of("500m", "1Gi", "4Gi"),
        description="Resources of the chroma container",
    )
    hnsw: Hnsw = Field(default_factory=Hnsw, description="HNSW defaults for new collections")
    router: Router = Field(default_factory=Router, description="Query router")
    encoder: Encoder = Field(default_factory=Encoder, description="Embedding encoder")
    tuning: Tuning = Field(default_factory=Tuning, description="HNSW tuning")
    repair: Repair = Field(default_factory=Repair, description="Replica repair (anti-entropy) Jobs")
    backup: ScheduledBackup | None = Field(
        default=None, description="Scheduled backups and their retention"
    )
    bootstrap: Bootstrap | None = Field(
        default=None, description="How a new cluster is filled (e.g. from a backup)"
    )
    slo: Slo = Field(default_factory=Slo, description="Latency and availability objectives")
    monitoring: Monitoring = Field(
        default_factory=Monitoring, description="Prometheus and Grafana objects"
    )
    auth: Auth = Field(default_factory=Auth, description="Token auth at the router")
    tls: Tls = Field(default_factory=Tls, description="HTTPS at the router")
    network: Network = Field(default_factory=Network, description="NetworkPolicies")
    chroma_config: dict[str, Any] = Field(
        default_factory=dict,
        description="Chroma server settings merged over the generated ones (e.g. allow_reset: true)",
    )

    @model_validator(mode="after")
    def _min_acks_fit(self) -> ChromaClusterSpec:
        return _check_replication(self)


def _check_replication(spec: ChromaClusterSpec) -> ChromaClusterSpec:
    if spec.replication.min_acks > spec.replicas:
        raise ValueError(
            f"replication.minAcks ({spec.replication.min_acks}) cannot exceed replicas "
            f"({spec.replicas}): no write could ever be acknowledged"
        )
    return spec


class ObjectMeta(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str = Field(
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        max_length=40,
        description="Cluster name; children append suffixes, so it is kept short",
    )
    namespace: str | None = None


class ChromaCluster(BaseModel):
    """A whole resource as a user writes it."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    api_version: Literal["chroma.operator.dev/v1alpha1"] = Field(alias="apiVersion")
    kind: Literal["ChromaCluster"]
    metadata: ObjectMeta
    spec: ChromaClusterSpec = Field(default_factory=ChromaClusterSpec)
    status: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        return self.metadata.name

    def namespace_or(self, default: str) -> str:
        return self.metadata.namespace or default


__all__ = [
    "API_GROUP",
    "API_VERSION",
    "CATEGORIES",
    "CRON_PATTERN",
    "DEFAULT_CHROMA_VERSION",
    "DEFAULT_ENCODER_IMAGE",
    "DEFAULT_ENCODER_MODEL",
    "DEFAULT_OPERATOR_IMAGE",
    "DNS_NAME_PATTERN",
    "DURATION_PATTERN",
    "KIND",
    "LABEL_KEY_PATTERN",
    "PLURAL",
    "QUANTITY_PATTERN",
    "SHORT_NAMES",
    "SINGULAR",
    "Auth",
    "Autoscaling",
    "Batching",
    "Bootstrap",
    "Cache",
    "ChromaCluster",
    "ChromaClusterSpec",
    "ChromaClusterStatus",
    "Condition",
    "Encoder",
    "Endpoints",
    "FenceStatus",
    "FromBackup",
    "Grid",
    "Hedging",
    "Hnsw",
    "IpBlock",
    "LabelSelector",
    "LabelSelectorRequirement",
    "Model",
    "Monitoring",
    "Network",
    "NetworkPeer",
    "ObjectMeta",
    "Objective",
    "Quantity",
    "Repair",
    "ReplicaStatus",
    "Replication",
    "ResourceList",
    "Resources",
    "Retention",
    "Router",
    "ScheduledBackup",
    "ShardStatus",
    "Slo",
    "Storage",
    "StorageStatus",
    "Tls",
    "Tuning",
    "UpgradeStatus",
    "credentials_help",
    "destination_help",
]
