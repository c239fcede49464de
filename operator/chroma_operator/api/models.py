"""The ChromaCluster resource as typed models: the single source of the CRD schema.

Python names are snake_case; the Kubernetes spelling (camelCase) is the alias. Every
field has a default and a description: the description becomes `kubectl explain` text.
Cross-field rules are declared once in `rules.py` and appear both as CEL in the CRD and
as checks in `validate.py`, so a cluster whose CRD lacks validation is still protected.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

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
DEFAULT_ENCODER_MODEL = "sentence-transformers/all-MiniLM-L6-v2"

QUANTITY_PATTERN = r"^[0-9]+(\.[0-9]+)?(m|k|Ki|Mi|Gi|Ti|Pi|Ei|M|G|T|P|E)?$"
DURATION_PATTERN = r"^[1-9][0-9]*(m|h|d|w)$"
CRON_PATTERN = r"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|(\S+\s+){4}\S+)$"
LABEL_KEY_PATTERN = r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"


class Model(BaseModel):
    """Base for every spec group: camelCase aliases, unknown fields refused."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        validate_default=True,
        use_attribute_docstrings=False,
    )


Quantity = str


class ResourceList(Model):
    cpu: str | None = Field(
        default=None, pattern=QUANTITY_PATTERN, description="CPU, e.g. 500m or 2"
    )
    memory: str | None = Field(
        default=None, pattern=QUANTITY_PATTERN, description="Memory, e.g. 512Mi or 4Gi"
    )


class Resources(Model):
    """Kubernetes resource requests and limits for one container."""

    requests: ResourceList = Field(default_factory=ResourceList, description="Requested resources")
    limits: ResourceList = Field(default_factory=ResourceList, description="Resource limits")


def _resources(cpu: str, memory: str, memory_limit: str) -> Resources:
    return Resources(
        requests=ResourceList(cpu=cpu, memory=memory), limits=ResourceList(memory=memory_limit)
    )


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
        default_factory=lambda: _resources("100m", "128Mi", "512Mi"),
        description="Resources of the router container",
    )
    hedging: Hedging = Field(default_factory=Hedging, description="Hedged reads")


class Batching(Model):
    max_batch_size: int = Field(default=64, ge=1, le=4096, description="Texts in one forward pass")
    max_batch_delay_ms: int = Field(
        default=5, ge=0, le=10_000, description="Longest wait for a batch to fill"
    )
    max_client_batch: int = Field(
        default=8192,
        ge=1,
        le=100_000,
        description="Most texts accepted in one request (split internally)",
    )
    max_queue: int = Field(
        default=16_384, ge=1, le=1_000_000, description="Texts waiting before requests get 429"
    )


class Autoscaling(Model):
    """Scale the encoder on its queue depth (texts waiting per pod), not on CPU."""

    enabled: bool = Field(
        default=False,
        description="Create an autoscaler; the encoder's replicas are then left to it",
    )
    provider: Literal["hpa", "keda"] = Field(
        default="hpa",
        description="hpa: an autoscaling/v2 HorizontalPodAutoscaler on a Pods metric served "
        "by prometheus-adapter; keda: a KEDA ScaledObject with a Prometheus trigger "
        "(created only when KEDA's CRD is installed)",
    )
    min_replicas: int = Field(default=1, ge=1, le=100, description="Fewest encoder pods")
    max_replicas: int = Field(default=4, ge=1, le=100, description="Most encoder pods")
    target_queue_per_replica: int = Field(
        default=256,
        ge=1,
        le=1_000_000,
        description="Texts waiting per pod (chroma_encoder_queue_depth) the autoscaler aims at",
    )
    prometheus_url: str = Field(
        default="http://prometheus-operated.monitoring.svc:9090",
        pattern=r"^https?://",
        description="Prometheus that KEDA queries (provider keda)",
    )


class Encoder(Model):
    """The embedding server: TEI- and OpenAI-compatible, batching on a GPU or the CPU."""

    enabled: bool = Field(
        default=False,
        description="Run an encoder; collections created without an embedding function then "
        "embed documents and query texts on it",
    )
    model: str = Field(
        default=DEFAULT_ENCODER_MODEL, min_length=1, description="Model id or path in the image"
    )
    image: str | None = Field(
        default=None, description="Encoder image; the project's encoder image when unset"
    )
    replicas: int = Field(default=1, ge=0, le=100, description="Encoder pods")
    port: int = Field(default=8080, ge=1024, le=65535, description="Port the encoder listens on")
    gpu: int = Field(default=0, ge=0, le=16, description="GPUs per encoder pod; 0 runs on the CPU")
    gpu_resource_name: str = Field(
        default="nvidia.com/gpu",
        pattern=LABEL_KEY_PATTERN,
        description="Extended resource name of a GPU",
    )
    node_selector: dict[str, str] = Field(
        default_factory=dict,
        description="Node labels the encoder pods require (e.g. a GPU node pool)",
    )
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = Field(
        default="auto",
        description="Inference precision; auto is float16 on a GPU, float32 on the CPU",
    )
    truncate: bool = Field(
        default=True, description="Truncate over-long inputs by default instead of refusing them"
    )
    batching: Batching = Field(default_factory=Batching, description="Dynamic batching")
    autoscaling: Autoscaling = Field(
        default_factory=Autoscaling, description="Queue-depth autoscaling (HPA or KEDA)"
    )
    resources: Resources = Field(
        default_factory=lambda: _resources("1", "2Gi", "4Gi"),
        description="Resources of the encoder container (GPUs come from `gpu`)",
    )


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
        default_factory=lambda: _resources("1", "1Gi", "4Gi"), description="Resources of the Job"
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
        default_factory=lambda: _resources("250m", "256Mi", "1Gi"),
        description="Resources of the Job",
    )


class Objective(Model):
    name: str = Field(
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63, description="Objective name"
    )
    type: Literal["latency", "availability", "recall"] = Field(
        description="latency: share of queries faster than thresholdMs; availability: share "
        "of requests without a server error; recall: share of the exact top-k that sampled "
        "live queries returned (recall@k)"
    )
    threshold_ms: float | None = Field(
        default=None, gt=0, le=600_000, description="Latency threshold (latency objectives)"
    )
    target: float = Field(
        ge=0, le=1, description="Target share, strictly between 0 and 1, e.g. 0.99"
    )
    k: int = Field(
        default=10, ge=1, le=1000, description="Recall objectives: recall is measured at k"
    )
    window: str = Field(default="30d", pattern=DURATION_PATTERN, description="SLO window, e.g. 30d")


def _default_objectives() -> list[Objective]:
    return [
        Objective(name="query-latency", type="latency", threshold_ms=50, target=0.99),
        Objective(name="availability", type="availability", target=0.999),
    ]


class Slo(Model):
    objectives: list[Objective] = Field(
        default_factory=_default_objectives, max_length=32, description="Service-level objectives"
    )
    recall_sample_rate: float = Field(
        default=0.01,
        ge=0,
        le=1,
        description="Share of live queries each router re-runs exactly (off the request "
        "path, rate-limited) to measure recall; 0 turns the recall SLI off",
    )
    evaluation_interval_seconds: int = Field(
        default=30, ge=5, le=3600, description="How often the operator scrapes the routers"
    )
    alertmanager_url: str | None = Field(
        default=None, pattern=r"^https?://", description="Also post alerts to this Alertmanager"
    )


class Monitoring(Model):
    service_monitor: bool = Field(
        default=False, description="Create ServiceMonitors (Prometheus Operator)"
    )
    prometheus_rule: bool = Field(default=False, description="Create the SLO PrometheusRule")
    dashboard: bool = Field(default=False, description="Create a Grafana dashboard ConfigMap")
    labels: dict[str, str] = Field(
        default_factory=dict,
        description="Extra labels on monitoring objects (e.g. release: prometheus)",
    )
    scrape_interval: str = Field(
        default="30s", pattern=r"^[1-9][0-9]*(s|m)$", description="Scrape interval"
    )


DNS_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"


class Auth(Model):
    """Token auth at the router (Chroma 1.x servers have none of their own)."""

    secret_name: str | None = Field(
        default=None,
        pattern=DNS_NAME_PATTERN,
        max_length=253,
        description="Secret whose key tokens.yaml lists the tokens: name, token (or sha256 "
        "of it), tenant, databases, role (read, write or admin); unset: no auth",
    )


class Tls(Model):
    """HTTPS at the router."""

    secret_name: str | None = Field(
        default=None,
        pattern=DNS_NAME_PATTERN,
        max_length=253,
        description="kubernetes.io/tls Secret (tls.crt, tls.key, optional ca.crt), e.g. from "
        "a cert-manager Certificate; unset: plain HTTP",
    )


class LabelSelectorRequirement(Model):
    key: str = Field(pattern=LABEL_KEY_PATTERN, description="Label key")
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"] = Field(description="Operator")
    values: list[str] = Field(default_factory=list, description="Values (In, NotIn)")


class LabelSelector(Model):
    match_labels: dict[str, str] = Field(default_factory=dict, description="Labels to match")
    match_expressions: list[LabelSelectorRequirement] = Field(
        default_factory=list, description="Label expressions to match"
    )


class IpBlock(Model):
    cidr: str = Field(min_length=1, description="CIDR, e.g. 10.0.0.0/8")
    except_: list[str] = Field(
        default_factory=list, alias="except", description="CIDRs excluded from cidr"
    )


class NetworkPeer(Model):
    """One NetworkPolicy peer: the namespaces and/or pods (or addresses) allowed in."""

    namespace_selector: LabelSelector | None = Field(
        default=None, description="Namespaces allowed (all pods in them unless podSelector)"
    )
    pod_selector: LabelSelector | None = Field(
        default=None, description="Pods allowed (in this namespace unless namespaceSelector)"
    )
    ip_block: IpBlock | None = Field(default=None, description="Addresses allowed")


class Network(Model):
    """NetworkPolicies around the cluster's pods."""

    policies: bool = Field(
        default=True,
        description="Create NetworkPolicies: shard Chroma ports only from the cluster's own "
        "pods, the router and encoder ports from allowFrom",
    )
    allow_from: list[NetworkPeer] = Field(
        default_factory=list,
        max_length=64,
        description="Who may reach the router and encoder ports (the cluster's own pods "
        "always may); empty: anywhere",
    )


SECRET_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"


def destination_help() -> str:
    return "Where backups go: a folder, file://, s3://, gs:// or az:// URL"


def credentials_help() -> str:
    return (
        "Secret whose keys become the Job's environment (e.g. AWS_ACCESS_KEY_ID, "
        "AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL)"
    )


class Retention(Model):
    """Which scheduled backups to keep: the newest `keep`, none older than `maxAgeDays`."""

    keep: int = Field(default=7, ge=1, le=10_000, description="Newest backups kept")
    max_age_days: int | None = Field(
        default=None, ge=1, le=36_500, description="Backups older than this are removed"
    )


class ScheduledBackup(Model):
    """Backups on a schedule: a CronJob runs `backup create` then prunes by retention."""

    schedule: str = Field(
        default="0 3 * * *", pattern=CRON_PATTERN, description="Cron schedule of the backup Job"
    )
    destination: str = Field(min_length=1, description=destination_help())
    credentials_secret: str | None = Field(
        default=None, pattern=SECRET_NAME_PATTERN, description=credentials_help()
    )
    retention: Retention = Field(default_factory=Retention, description="Backups kept")


class FromBackup(Model):
    """The backup a new cluster starts from."""

    destination: str = Field(min_length=1, description=destination_help())
    backup_id: str = Field(min_length=1, description="The backup's id (`backup list DEST`)")
    credentials_secret: str | None = Field(
        default=None, pattern=SECRET_NAME_PATTERN, description=credentials_help()
    )


class Bootstrap(Model):
    """How a new cluster is filled before it is Ready."""

    from_backup: FromBackup | None = Field(
        default=None, description="Restore this backup through the routers once shards are up"
    )


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
        default_factory=lambda: _resources("500m", "1Gi", "4Gi"),
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
    tuning: dict[str, Any] | None = None
    repair: dict[str, Any] | None = None
    slo: dict[str, Any] | None = None
    resharding: dict[str, Any] | None = Field(
        default=None,
        description="A shard-count change: phase, epoch, placement, collections done, "
        "records moved, rate, ETA",
    )
    upgrade: UpgradeStatus | None = None
    fence: FenceStatus | None = None
    storage: StorageStatus | None = None


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
