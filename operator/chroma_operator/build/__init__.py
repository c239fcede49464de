"""Pure builders: a validated ChromaCluster in, Kubernetes manifests (dicts) out. No I/O."""

from __future__ import annotations

from chroma_operator.api.models import ChromaCluster
from chroma_operator.build.config import build_config_map
from chroma_operator.build.encoder import build_encoder_deployment, build_encoder_service
from chroma_operator.build.meta import Manifest, Owner, with_spec_hash
from chroma_operator.build.monitoring import build_monitoring
from chroma_operator.build.service import build_front_service
from chroma_operator.build.shards import build_headless_service, build_pdb, build_statefulset

__all__ = ["Manifest", "Owner", "build_all", "owner_of"]


def owner_of(cluster: ChromaCluster, namespace: str = "default", uid: str | None = None) -> Owner:
    return Owner(name=cluster.name, namespace=cluster.namespace_or(namespace), uid=uid)


def build_all(cluster: ChromaCluster, owner: Owner) -> list[Manifest]:
    """Every object the cluster should own, in apply order, each with its spec hash."""
    spec = cluster.spec
    out: list[Manifest] = [build_config_map(owner, spec)]
    for i in range(spec.shards):
        out.append(build_headless_service(owner, spec, i))
        out.append(build_statefulset(owner, spec, i))
        pdb = build_pdb(owner, spec, i)
        if pdb is not None:
            out.append(pdb)
    out.append(build_front_service(owner, spec))
    if spec.encoder.enabled:
        out.append(build_encoder_deployment(owner, spec))
        out.append(build_encoder_service(owner, spec))
    labels = (cluster.metadata.model_extra or {}).get("labels") or {}
    out += build_monitoring(owner, spec, labels)
    return [with_spec_hash(m) for m in out]
