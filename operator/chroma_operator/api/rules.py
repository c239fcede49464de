"""Cross-field rules, declared once: CEL for the CRD, a Python check for reconcile/render.

A test evaluates every rule's CEL with a real CEL implementation against the same
resources as the Python check, so the two spellings cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chroma_operator.api.models import Autoscaling, ChromaClusterSpec, Objective, Slo, Tuning
from chroma_operator.api.security import Auth, Tls


@dataclass(frozen=True)
class Rule:
    """One `x-kubernetes-validations` entry and its Python twin."""

    at: tuple[str, ...]
    """Where in the spec schema the rule sits (camelCase; "[]" = each list item)."""
    cel: str
    message: str
    field: str
    """The field the message is about, relative to `at` (the CRD's fieldPath)."""
    check: Callable[[Any], bool] | None
    """Python predicate over the model at `at`; None for transition rules (need oldSelf)."""


def _k_within_ef(t: Tuning) -> bool:
    return all(ef >= t.k for ef in t.grid.ef_search)


def _latency_has_threshold(o: Objective) -> bool:
    return o.type != "latency" or o.threshold_ms is not None


def _target_open_interval(o: Objective) -> bool:
    return 0.0 < o.target < 1.0


def _unique_objectives(s: Slo) -> bool:
    names = [o.name for o in s.objectives]
    return len(names) == len(set(names))


def _queries_below_sample(t: Tuning) -> bool:
    return t.queries < t.sample_size


def _monitoring_needs_objectives(s: ChromaClusterSpec) -> bool:
    return not s.monitoring.prometheus_rule or len(s.slo.objectives) > 0


def _router_port_free(s: ChromaClusterSpec) -> bool:
    return s.router.port != 8000


def _min_within_max(a: Autoscaling) -> bool:
    return a.min_replicas <= a.max_replicas


def _job_token_needs_auth(a: Auth) -> bool:
    return a.job_token is None or a.secret_name is not None


def _ca_config_map_needs_tls(t: Tls) -> bool:
    return t.ca_config_map is None or t.secret_name is not None


RULES: tuple[Rule, ...] = (
    Rule(
        at=("tuning",),
        cel="self.grid.efSearch.all(e, e >= self.k)",
        message="tuning.k must not be above any tuning.grid.efSearch value (HNSW needs ef >= k)",
        field=".k",
        check=_k_within_ef,
    ),
    Rule(
        at=("tuning",),
        cel="self.queries < self.sampleSize",
        message="tuning.queries must be fewer than tuning.sampleSize",
        field=".queries",
        check=_queries_below_sample,
    ),
    Rule(
        at=("slo", "objectives", "[]"),
        cel="self.type != 'latency' || has(self.thresholdMs)",
        message="thresholdMs is required for a latency objective",
        field=".thresholdMs",
        check=_latency_has_threshold,
    ),
    Rule(
        at=("slo", "objectives", "[]"),
        cel="self.target > 0.0 && self.target < 1.0",
        message="target must be strictly between 0 and 1",
        field=".target",
        check=_target_open_interval,
    ),
    Rule(
        at=("slo",),
        cel="self.objectives.all(o, self.objectives.exists_one(p, p.name == o.name))",
        message="objective names must be unique",
        field=".objectives",
        check=_unique_objectives,
    ),
    Rule(
        at=(),
        cel="!self.monitoring.prometheusRule || size(self.slo.objectives) > 0",
        message="monitoring.prometheusRule needs at least one slo objective",
        field=".monitoring.prometheusRule",
        check=_monitoring_needs_objectives,
    ),
    Rule(
        at=(),
        cel="self.router.port != 8000",
        message="router.port must differ from Chroma's port 8000 in the same pod",
        field=".router.port",
        check=_router_port_free,
    ),
    Rule(
        at=("auth",),
        cel="!has(self.jobToken) || has(self.secretName)",
        message="auth.jobToken needs auth.secretName (without a tokens file nothing checks it)",
        field=".jobToken",
        check=_job_token_needs_auth,
    ),
    Rule(
        at=("tls",),
        cel="!has(self.caConfigMap) || has(self.secretName)",
        message="tls.caConfigMap needs tls.secretName (without it the routers speak plain HTTP)",
        field=".caConfigMap",
        check=_ca_config_map_needs_tls,
    ),
    Rule(
        at=("encoder", "autoscaling"),
        cel="self.minReplicas <= self.maxReplicas",
        message="encoder.autoscaling.minReplicas must not be above encoder.autoscaling.maxReplicas",
        field=".minReplicas",
        check=_min_within_max,
    ),
)
