"""Pure builders: a validated ChromaCluster in, Kubernetes manifests (dicts) out. No I/O."""

from __future__ import annotations

from chroma_operator.api.models import ChromaCluster
from chroma_operator.build.config import build_config_map
from chroma_operator.build.encoder import build_encoder_deployment, build_encoder_service
from chroma_operator.build.meta import Manifest, Owner, with_spec_hash
from chroma_operator.build.monitoring import build_monitoring
from chroma_operator.build.naming import TUNE_ANNOTATION
from chroma_operator.build.network import build_network_policies
from chroma_operator.build.service import build_front_service
from chroma_operator.build.shards import build_headless_service, build_pdb, build_statefulset
from chroma_operator.build.tuning import build_tuning_cronjob, build_tuning_job, build_verify_job

__all__ = ["Manifest", "Owner", "build_all", "owner_of"]


def owner_of(cluster: ChromaCluster, namespace: str = "default", uid: str | None = None) -> Owner:
    return Owner(name=cluster.name, namespace=cluster.namespace_or(namespace), uid=uid)


def build_all(
    cluster: ChromaCluster,
    owner: Owner,
    tuned_hnsw: dict[str, int] | None = None,
    restarts: dict[int, str] | None = None,
    verify: tuple[str, str] | None = None,
) -> list[Manifest]:
    """Every object the cluster should own, in apply order, each with its spec hash.

    `tuned_hnsw` (snake_case HNSW fields a tuning run applied, kept in status) overrides
    the spec's HNSW defaults for collections created from now on; the spec is untouched.
    `restarts` maps shard index to a restart token (a rolling restart, one shard at a time);
    `verify` (token, collection) asks for the Job that measures the result once loaded.
    """
    spec = cluster.spec
    topo_spec = spec
    if tuned_hnsw:
        topo_spec = spec.model_copy(update={"hnsw": spec.hnsw.model_copy(update=tuned_hnsw)})
    out: list[Manifest] = [build_config_map(owner, topo_spec)]
    for i in range(spec.shards):
        out.append(build_headless_service(owner, spec, i))
        out.append(build_statefulset(owner, spec, i, (restarts or {}).get(i)))
        pdb = build_pdb(owner, spec, i)
        if pdb is not None:
            out.append(pdb)
    out.append(build_front_service(owner, spec))
    if spec.encoder.enabled:
        out.append(build_encoder_deployment(owner, spec))
        out.append(build_encoder_service(owner, spec))
    extra = cluster.metadata.model_extra or {}
    cronjob = build_tuning_cronjob(owner, spec)
    if cronjob is not None:
        out.append(cronjob)
    request = (extra.get("annotations") or {}).get(TUNE_ANNOTATION)
    if request:
        out.append(build_tuning_job(owner, spec, str(request)))
    if verify is not None:
        out.append(build_verify_job(owner, spec, *verify))
    out += build_network_policies(owner, spec)
    out += build_monitoring(owner, spec, extra.get("labels") or {})
    return [with_spec_hash(m) for m in out]
