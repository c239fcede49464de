"""The `X-config` ConfigMap: Chroma's server config and the cluster topology."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml

from chroma_operator.api.models import ChromaClusterSpec, Objective
from chroma_operator.build import naming
from chroma_operator.build.meta import Manifest, Owner, metadata
from chroma_operator.topology import (
    CHROMA_CONFIG_KEY,
    TOPOLOGY_KEY,
    AuthTopology,
    CacheTopology,
    EncoderTopology,
    HedgingTopology,
    HnswDefaults,
    PlacementTopology,
    ReplicationTopology,
    RouterTopology,
    ShardTopology,
    SloTopology,
    TlsTopology,
    Topology,
)


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def chroma_server_config(
    spec: ChromaClusterSpec,
    *,
    port: int = naming.CHROMA_PORT,
    listen_address: str = "0.0.0.0",
    persist_path: str = naming.DATA_DIR,
) -> dict[str, Any]:
    """Settings of the Chroma 1.5 (Rust) server, with `spec.chromaConfig` merged over them."""
    generated: dict[str, Any] = {
        "port": port,
        "listen_address": listen_address,
        "persist_path": persist_path,
        "allow_reset": False,
        "max_payload_size_bytes": 41_943_040,
        "cors_allow_origins": [],
        "sqlitedb": {"hash_type": "md5", "migration_mode": "apply"},
    }
    return _deep_merge(generated, spec.chroma_config)


def chroma_config_yaml(config: dict[str, Any]) -> str:
    return yaml.safe_dump(config, sort_keys=True)


def latency_thresholds(objectives: Sequence[Objective]) -> list[float]:
    return sorted({o.threshold_ms for o in objectives if o.threshold_ms is not None})


def build_topology(
    name: str,
    namespace: str,
    spec: ChromaClusterSpec,
    *,
    shard_endpoints: Sequence[Sequence[str]],
    router_peers: Sequence[str],
    encoder_url: str | None,
    replica_states: dict[str, str] | None = None,
    fenced: Sequence[str] = (),
    auth_dir: str | None = None,
    tls_dir: str | None = None,
    hints_dir: str | None = None,
) -> Topology:
    """The topology routers read; endpoints are given so the same spec serves k8s and local.

    `auth_dir` / `tls_dir`: where the auth and TLS Secrets' files are (when the spec names
    them)."""
    return Topology(
        cluster=name,
        namespace=namespace,
        shards=[
            ShardTopology(index=i, endpoints=list(eps)) for i, eps in enumerate(shard_endpoints)
        ],
        # Same fields, same snake_case names: the topology carries the spec's HNSW as is.
        hnsw=HnswDefaults(**spec.hnsw.model_dump()),
        router=RouterTopology(
            shard_timeout_seconds=spec.router.shard_timeout_seconds,
            partial_results=spec.router.partial_results,
            exact_search_max_records=spec.router.exact_search_max_records,
            cache=CacheTopology(
                enabled=spec.router.cache.enabled,
                max_entries=spec.router.cache.max_entries,
                ttl_seconds=spec.router.cache.ttl_seconds,
            ),
            peers=list(router_peers),
            hedging=HedgingTopology(
                enabled=spec.router.hedging.enabled,
                max_fraction=spec.router.hedging.max_fraction,
            ),
        ),
        replication=ReplicationTopology(
            min_acks=spec.replication.min_acks,
            max_hint_bytes=spec.replication.max_hint_bytes,
        ),
        hints_dir=hints_dir,
        encoder=(
            EncoderTopology(url=encoder_url, model=spec.encoder.model)
            if spec.encoder.enabled and encoder_url
            else None
        ),
        slo=SloTopology(
            latency_thresholds_ms=latency_thresholds(spec.slo.objectives),
            recall_sample_rate=spec.slo.recall_sample_rate,
            recall_k=max((o.k for o in spec.slo.objectives if o.type == "recall"), default=10),
        ),
        replica_states=dict(replica_states or {}),
        fenced=list(fenced),
        auth=(
            AuthTopology(tokens_file=f"{auth_dir}/{naming.TOKENS_KEY}")
            if spec.auth.secret_name and auth_dir
            else None
        ),
        tls=(
            TlsTopology(
                cert_file=f"{tls_dir}/tls.crt",
                key_file=f"{tls_dir}/tls.key",
                ca_file=f"{tls_dir}/{naming.TLS_CA_KEY}",
            )
            if spec.tls.secret_name and tls_dir
            else None
        ),
    )


def kubernetes_topology(
    owner: Owner,
    spec: ChromaClusterSpec,
    replica_states: dict[str, str] | None = None,
    fenced: Sequence[str] = (),
) -> Topology:
    """Topology with in-cluster DNS names: pod DNS for shards and router peers."""
    hosts = [
        [naming.pod_host(owner.name, owner.namespace, i, r) for r in range(spec.replicas)]
        for i in range(spec.shards)
    ]
    encoder_url = (
        f"http://{naming.service_host(naming.encoder(owner.name), owner.namespace)}:{spec.encoder.port}"
        if spec.encoder.enabled
        else None
    )
    scheme = naming.router_scheme(spec.tls.secret_name is not None)
    return build_topology(
        owner.name,
        owner.namespace,
        spec,
        shard_endpoints=[[f"http://{h}:{naming.CHROMA_PORT}" for h in shard] for shard in hosts],
        router_peers=[f"{scheme}://{h}:{spec.router.port}" for shard in hosts for h in shard],
        encoder_url=encoder_url,
        replica_states=replica_states,
        fenced=fenced,
        auth_dir=naming.AUTH_DIR,
        tls_dir=naming.TLS_DIR,
        hints_dir=naming.HINTS_DIR,
    )


def build_config_map(
    owner: Owner,
    spec: ChromaClusterSpec,
    replica_states: dict[str, str] | None = None,
    placement: PlacementTopology | None = None,
    fenced: Sequence[str] = (),
) -> Manifest:
    """Chroma's config and the topology. `replica_states` (collected from the routers,
    kept in status) tell a restarted router which replicas are not in sync; during a move
    `spec.shards` is the shards listed and `placement` the move's epoch; `fenced` replicas
    take no reads and their writes become hints."""
    topology = kubernetes_topology(owner, spec, replica_states, fenced)
    if placement is not None:
        topology = topology.model_copy(update={"placement": placement})
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(owner, naming.config_map(owner.name), "config"),
        "data": {
            CHROMA_CONFIG_KEY: chroma_config_yaml(chroma_server_config(spec)),
            TOPOLOGY_KEY: topology.to_json(),
        },
    }
