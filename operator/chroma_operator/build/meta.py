"""Labels, owner references and the spec-hash annotation every child carries."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson

from chroma_operator import __version__
from chroma_operator.api.models import API_GROUP, API_VERSION, KIND
from chroma_operator.build.naming import SPEC_HASH_ANNOTATION

Manifest = dict[str, Any]


@dataclass(frozen=True)
class Owner:
    """The ChromaCluster that owns the children (uid known only inside a real cluster)."""

    name: str
    namespace: str
    uid: str | None = None


def selector_labels(owner: Owner, component: str) -> dict[str, str]:
    """The labels pods are selected by: never change them (selectors are immutable)."""
    return {
        "app.kubernetes.io/name": "chroma",
        "app.kubernetes.io/instance": owner.name,
        "app.kubernetes.io/component": component,
    }


def labels(owner: Owner, component: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    out = {
        **selector_labels(owner, component),
        "app.kubernetes.io/managed-by": "chroma-operator",
        "app.kubernetes.io/part-of": "chroma-operator",
        "app.kubernetes.io/version": __version__,
    }
    out.update(extra or {})
    return out


def metadata(
    owner: Owner,
    name: str,
    component: str,
    *,
    extra_labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
) -> Manifest:
    meta: Manifest = {
        "name": name,
        "namespace": owner.namespace,
        "labels": labels(owner, component, extra_labels),
    }
    if annotations:
        meta["annotations"] = dict(annotations)
    if owner.uid:
        meta["ownerReferences"] = [
            {
                "apiVersion": f"{API_GROUP}/{API_VERSION}",
                "kind": KIND,
                "name": owner.name,
                "uid": owner.uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    return meta


def content_hash(value: Any) -> str:
    """Short stable hash of JSON-able data (sorted keys: same content, same hash)."""
    raw = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(raw).hexdigest()[:16]


def with_spec_hash(manifest: Manifest) -> Manifest:
    """Stamp the hash of everything but itself, so reconcile patches only real drift."""
    meta = manifest["metadata"]
    annotations = {
        k: v for k, v in meta.get("annotations", {}).items() if k != SPEC_HASH_ANNOTATION
    }
    body = {**manifest, "metadata": {**meta, "annotations": annotations}}
    body["metadata"].pop("ownerReferences", None)
    annotations[SPEC_HASH_ANNOTATION] = content_hash(body)
    return {**manifest, "metadata": {**meta, "annotations": annotations}}
