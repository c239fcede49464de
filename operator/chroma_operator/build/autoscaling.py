"""The encoder's autoscaler: an HPA on a Pods metric, or a KEDA ScaledObject.

Both scale on `chroma_encoder_queue_depth` (texts waiting for a forward pass, per pod):
for GPU inference the queue grows long before CPU use says anything. The HPA reads it
through prometheus-adapter (`prometheus_adapter_rules()` is the rule it needs); KEDA
queries Prometheus itself. While either is on, the encoder Deployment carries no
`replicas` (see `build_encoder_deployment`), so the operator never undoes a scaling.
"""

from __future__ import annotations

from typing import Any

from chroma_operator.api.models import Autoscaling, ChromaClusterSpec
from chroma_operator.build import naming
from chroma_operator.build.encoder import COMPONENT
from chroma_operator.build.meta import Manifest, Owner, metadata
from chroma_operator.slo.promql import selector

QUEUE_METRIC = "chroma_encoder_queue_depth"
HPA_API = "autoscaling/v2"
KEDA_GROUP = "keda.sh"
KEDA_API = f"{KEDA_GROUP}/v1alpha1"
SCALED_OBJECT_CRD = f"scaledobjects.{KEDA_GROUP}"
SCALE_DOWN_WINDOW_SECONDS = 300
"""Bulk ingests come in waves: keep the pods through a short lull."""


def required_crd(manifest: Manifest) -> str | None:
    """The CRD a manifest of this module needs (KEDA's), None for the HPA."""
    if manifest.get("apiVersion") == KEDA_API and manifest.get("kind") == "ScaledObject":
        return SCALED_OBJECT_CRD
    return None


def _behavior() -> dict[str, Any]:
    """Up at once (double, or +4 pods, per 15 s); down one pod a minute after a calm window."""
    return {
        "scaleUp": {
            "stabilizationWindowSeconds": 0,
            "selectPolicy": "Max",
            "policies": [
                {"type": "Percent", "value": 100, "periodSeconds": 15},
                {"type": "Pods", "value": 4, "periodSeconds": 15},
            ],
        },
        "scaleDown": {
            "stabilizationWindowSeconds": SCALE_DOWN_WINDOW_SECONDS,
            "selectPolicy": "Max",
            "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}],
        },
    }


def _target(owner: Owner) -> dict[str, str]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "name": naming.encoder(owner.name)}


def queue_query(owner: Owner) -> str:
    """Texts waiting over all of this cluster's encoder pods (KEDA divides by the pods)."""
    scope = {"namespace": owner.namespace, "service": naming.encoder(owner.name)}
    return f"sum({selector(QUEUE_METRIC, scope)})"


def build_hpa(owner: Owner, auto: Autoscaling) -> Manifest:
    return {
        "apiVersion": HPA_API,
        "kind": "HorizontalPodAutoscaler",
        "metadata": metadata(owner, naming.encoder(owner.name), COMPONENT),
        "spec": {
            "scaleTargetRef": _target(owner),
            "minReplicas": auto.min_replicas,
            "maxReplicas": auto.max_replicas,
            "metrics": [
                {
                    "type": "Pods",
                    "pods": {
                        "metric": {"name": QUEUE_METRIC},
                        "target": {
                            "type": "AverageValue",
                            "averageValue": str(auto.target_queue_per_replica),
                        },
                    },
                }
            ],
            "behavior": _behavior(),
        },
    }


def build_scaled_object(owner: Owner, auto: Autoscaling) -> Manifest:
    return {
        "apiVersion": KEDA_API,
        "kind": "ScaledObject",
        "metadata": metadata(owner, naming.encoder(owner.name), COMPONENT),
        "spec": {
            "scaleTargetRef": _target(owner),
            "minReplicaCount": auto.min_replicas,
            "maxReplicaCount": auto.max_replicas,
            "pollingInterval": 15,
            "cooldownPeriod": SCALE_DOWN_WINDOW_SECONDS,
            "advanced": {"horizontalPodAutoscalerConfig": {"behavior": _behavior()}},
            "triggers": [
                {
                    "type": "prometheus",
                    "name": "queue-depth",
                    "metricType": "AverageValue",
                    "metadata": {
                        "serverAddress": auto.prometheus_url,
                        "query": queue_query(owner),
                        "threshold": str(auto.target_queue_per_replica),
                        "ignoreNullValues": "true",
                    },
                }
            ],
        },
    }


def build_encoder_autoscaler(owner: Owner, spec: ChromaClusterSpec) -> Manifest | None:
    """The autoscaler the spec asks for; None when the encoder is off or scaled by hand."""
    auto = spec.encoder.autoscaling
    if not spec.encoder.enabled or not auto.enabled:
        return None
    if auto.provider == "keda":
        return build_scaled_object(owner, auto)
    return build_hpa(owner, auto)


def prometheus_adapter_rules() -> dict[str, Any]:
    """prometheus-adapter's config: serve the queue depth as a per-pod custom metric.

    Averaged over a minute, so one scrape of a momentary burst does not add pods.
    """
    return {
        "rules": [
            {
                "seriesQuery": f'{QUEUE_METRIC}{{namespace!="",pod!=""}}',
                "resources": {
                    "overrides": {
                        "namespace": {"resource": "namespace"},
                        "pod": {"resource": "pod"},
                    }
                },
                "name": {"matches": f"^{QUEUE_METRIC}$", "as": QUEUE_METRIC},
                "metricsQuery": (
                    "sum(avg_over_time(<<.Series>>{<<.LabelMatchers>>}[1m])) by (<<.GroupBy>>)"
                ),
            }
        ]
    }
