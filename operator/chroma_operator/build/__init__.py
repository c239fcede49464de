"""Pure builders: a validated ChromaCluster in, Kubernetes manifests (dicts) out. No I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from chroma_operator.api.models import ChromaCluster
from chroma_operator.build import autoscaling, monitoring
from chroma_operator.build.autoscaling import build_encoder_autoscaler
from chroma_operator.build.backup import build_backup_cronjob, build_restore_job
from chroma_operator.build.config import build_config_map
from chroma_operator.build.encoder import build_encoder_deployment, build_encoder_service
from chroma_operator.build.meta import Manifest, Owner, with_spec_hash
from chroma_operator.build.monitoring import build_monitoring
from chroma_operator.build.naming import TUNE_ANNOTATION
from chroma_operator.build.network import build_network_policies
from chroma_operator.build.repair import (
    REPAIR_ANNOTATION,
    build_repair_cronjob,
    build_repair_job,
)
from chroma_operator.build.service import build_front_service
from chroma_operator.build.shards import build_headless_service, build_pdb, build_statefulset
from chroma_operator.build.tuning import build_tuning_cronjob, build_tuning_job, build_verify_job
from chroma_operator.topology import PlacementTopology

__all__ = ["Manifest", "Operations", "Owner", "build_all", "owner_of", "required_crd"]


def required_crd(manifest: Manifest) -> str | None:
    """The CRD (`plural.group`) a manifest needs beyond core Kubernetes, if any."""
    return monitoring.required_crd(manifest) or autoscaling.required_crd(manifest)


@dataclass(frozen=True)
class Operations:
    """What the operator decided on top of the spec (from annotations and status).

    `fenced` replicas go into the topology; `hibernated` scales shards and encoder to
    zero (claims are kept); `images` and `storage_sizes` hold shards at what they run
    until an upgrade or a resize reaches them.
    """

    fenced: tuple[str, ...] = ()
    hibernated: bool = False
    images: dict[int, str] = field(default_factory=dict)
    storage_sizes: dict[int, str] = field(default_factory=dict)


def owner_of(cluster: ChromaCluster, namespace: str = "default", uid: str | None = None) -> Owner:
    return Owner(name=cluster.name, namespace=cluster.namespace_or(namespace), uid=uid)


def build_all(
    cluster: ChromaCluster,
    owner: Owner,
    tuned_hnsw: dict[str, int] | None = None,
    restarts: dict[int, str] | None = None,
    verify: tuple[str, str] | None = None,
    replica_states: dict[str, str] | None = None,
    placement: PlacementTopology | None = None,
    listed_shards: int | None = None,
    ops: Operations | None = None,
    restore: bool = False,
    operator_peer: dict[str, Any] | None = None,
) -> list[Manifest]:
    """Every object the cluster should own, in apply order, each with its spec hash.

    `tuned_hnsw` (snake_case HNSW fields a tuning run applied, kept in status) overrides
    the spec's HNSW defaults for collections created from now on; the spec is untouched.
    `restarts` maps shard index to a restart token (a rolling restart, one shard at a time);
    `verify` (token, collection) asks for the Job that measures the result once loaded;
    `replica_states` (replica name -> state, from status) go into the topology;
    `restore` asks for the bootstrap restore Job (once the shards are ready);
    `operator_peer` names the operator's pods in the NetworkPolicies (`network.operator_peer`).
    """
    ops = ops or Operations()
    spec = cluster.spec
    topo_spec = spec
    if tuned_hnsw:
        topo_spec = spec.model_copy(update={"hnsw": spec.hnsw.model_copy(update=tuned_hnsw)})
    # During a move the topology lists `listed_shards` (both counts' shards) and carries
    # the placement; `spec.shards` StatefulSets exist (new ones before they are listed).
    if listed_shards is not None:
        topo_spec = topo_spec.model_copy(update={"shards": listed_shards})
    out: list[Manifest] = [
        build_config_map(owner, topo_spec, replica_states, placement, ops.fenced)
    ]
    for i in range(spec.shards):
        out.append(build_headless_service(owner, spec, i))
        out.append(
            build_statefulset(
                owner,
                spec,
                i,
                (restarts or {}).get(i),
                replicas=0 if ops.hibernated else None,
                image=ops.images.get(i),
                storage_size=ops.storage_sizes.get(i),
            )
        )
        pdb = build_pdb(owner, spec, i)
        if pdb is not None:
            out.append(pdb)
    out.append(build_front_service(owner, spec))
    if spec.encoder.enabled:
        deployment = build_encoder_deployment(owner, spec)
        if ops.hibernated:
            deployment["spec"]["replicas"] = 0
        out.append(deployment)
        out.append(build_encoder_service(owner, spec))
        scaler = build_encoder_autoscaler(owner, spec)
        if scaler is not None:
            out.append(scaler)
    extra = cluster.metadata.model_extra or {}
    cronjob = build_tuning_cronjob(owner, spec)
    if cronjob is not None:
        if ops.hibernated:  # nothing to measure while every shard is down
            cronjob["spec"]["suspend"] = True
        out.append(cronjob)
    request = (extra.get("annotations") or {}).get(TUNE_ANNOTATION)
    if request and not ops.hibernated:
        out.append(build_tuning_job(owner, spec, str(request)))
    if verify is not None and not ops.hibernated:
        out.append(build_verify_job(owner, spec, *verify))
    repair_cron = build_repair_cronjob(owner, spec)
    if repair_cron is not None:
        out.append(repair_cron)
    repair_request = (extra.get("annotations") or {}).get(REPAIR_ANNOTATION)
    if repair_request:
        out.append(build_repair_job(owner, spec, str(repair_request)))
    out += build_network_policies(owner, spec, operator_peer)
    backup_cron = build_backup_cronjob(owner, spec)
    if backup_cron is not None:
        out.append(backup_cron)
    restore_job = build_restore_job(owner, spec) if restore else None
    if restore_job is not None:
        out.append(restore_job)
    out += build_monitoring(owner, spec, extra.get("labels") or {})
    return [with_spec_hash(m) for m in out]
