"""Names, ports and DNS of everything a ChromaCluster owns: one place, so nothing guesses."""

from __future__ import annotations

CHROMA_PORT = 8000
"""Chroma's own port in a shard pod; the front Service also serves on it (the client default)."""

LABEL_PREFIX = "app.kubernetes.io"
ANNOTATION_PREFIX = "chroma.operator.dev"
SPEC_HASH_ANNOTATION = f"{ANNOTATION_PREFIX}/spec-hash"
CONFIG_HASH_ANNOTATION = f"{ANNOTATION_PREFIX}/chroma-config-hash"
RESTARTED_AT_ANNOTATION = f"{ANNOTATION_PREFIX}/restarted-at"
TUNE_ANNOTATION = f"{ANNOTATION_PREFIX}/tune"
SHARD_LABEL = f"{ANNOTATION_PREFIX}/shard"
CLUSTER_DOMAIN = "cluster.local"

CONFIG_DIR = "/etc/chroma-operator"
CHROMA_CONFIG_DIR = "/etc/chroma"
DATA_DIR = "/data"
AUTH_DIR = "/etc/chroma-auth"
"""The auth Secret, mounted whole in the router (so rotations reach the file)."""
TLS_DIR = "/etc/chroma-tls"
TOKENS_KEY = "tokens.yaml"
TLS_CA_KEY = "ca.crt"
CA_FILE_ENV = "CHROMA_CA_FILE"
"""Where a Job finds the TLS Secret's CA (trusted when present: `cli.trust_cluster_ca`)."""


def router_scheme(tls: bool) -> str:
    return "https" if tls else "http"


HINTS_DIR = "/var/lib/chroma-router/hints"
HINTS_SUBPATH = "router-hints"  # on the pod's data volume: hints live as long as the pod's PVC


def config_map(cluster: str) -> str:
    return f"{cluster}-config"


def shard(cluster: str, index: int) -> str:
    return f"{cluster}-shard-{index}"


def encoder(cluster: str) -> str:
    return f"{cluster}-encoder"


def front_service(cluster: str) -> str:
    return cluster


def pod_host(cluster: str, namespace: str, index: int, replica: int) -> str:
    """Stable DNS name of one shard pod (StatefulSet pod behind its headless Service)."""
    name = shard(cluster, index)
    return f"{name}-{replica}.{name}.{namespace}.svc.{CLUSTER_DOMAIN}"


def service_host(service: str, namespace: str) -> str:
    return f"{service}.{namespace}.svc.{CLUSTER_DOMAIN}"
