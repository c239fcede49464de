"""Who may reach a cluster: router tokens, TLS and NetworkPolicies (spec.auth, tls, network)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from chroma_operator.api.base import DNS_NAME_PATTERN, LABEL_KEY_PATTERN, Model

KEY_PATTERN = r"^[-._a-zA-Z0-9]+$"
"""A Secret or ConfigMap data key."""


class SecretKeyRef(Model):
    """One key of a Secret in the cluster's namespace."""

    name: str = Field(pattern=DNS_NAME_PATTERN, max_length=253, description="Secret name")
    key: str = Field(
        default="token",
        pattern=KEY_PATTERN,
        max_length=253,
        description="Key in the Secret",
    )


class ConfigMapKeyRef(Model):
    """One key of a ConfigMap in the cluster's namespace."""

    name: str = Field(pattern=DNS_NAME_PATTERN, max_length=253, description="ConfigMap name")
    key: str = Field(
        default="ca.crt",
        pattern=KEY_PATTERN,
        max_length=253,
        description="Key in the ConfigMap",
    )


class Auth(Model):
    """Token auth at the router (Chroma 1.x servers have none of their own)."""

    secret_name: str | None = Field(
        default=None,
        pattern=DNS_NAME_PATTERN,
        max_length=253,
        description="Secret whose key tokens.yaml lists the tokens: name, token (or sha256 "
        "of it), tenant, databases, role (read, write or admin); unset: no auth",
    )
    job_token: SecretKeyRef | None = Field(
        default=None,
        description="The token the operator's Jobs (tuning, repair, backup, restore) present "
        'to the routers, as a key of a Secret. List it in tokens.yaml as tenant "*", role '
        "admin (a sha256 entry will do). Unset with auth on: the routers refuse those Jobs",
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
    ca_config_map: ConfigMapKeyRef | None = Field(
        default=None,
        description="ConfigMap key with the PEM CA bundle the operator verifies the routers "
        "with (SLO scrape, replica states, resharding), e.g. a trust-manager Bundle; the "
        "operator reads no Secrets. Unset: the operator's own trust store",
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
