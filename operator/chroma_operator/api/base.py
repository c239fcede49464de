"""Shared pieces of the API models: the camelCase base model, field patterns, resources."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

QUANTITY_PATTERN = r"^[0-9]+(\.[0-9]+)?(m|k|Ki|Mi|Gi|Ti|Pi|Ei|M|G|T|P|E)?$"
DURATION_PATTERN = r"^[1-9][0-9]*(m|h|d|w)$"
CRON_PATTERN = r"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|(\S+\s+){4}\S+)$"
LABEL_KEY_PATTERN = r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"

DNS_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
"""A Kubernetes object name (Secrets and the like)."""


class Model(BaseModel):
    """Base for every spec group: camelCase aliases, unknown fields refused."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        validate_default=True,
        use_attribute_docstrings=False,
    )


class Observed(Model):
    """Base for status parts the operator writes: unknown fields are kept, not refused, so
    an object written by an older or newer operator still parses and nothing is pruned."""

    model_config = ConfigDict(
        extra="allow", json_schema_extra={"x-kubernetes-preserve-unknown-fields": True}
    )

    def wire(self) -> dict[str, Any]:
        """The camelCase object written into status (unknown values left out, not null:
        a JSON merge patch reads null as "delete")."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


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


def resources_of(cpu: str, memory: str, memory_limit: str) -> Resources:
    return Resources(
        requests=ResourceList(cpu=cpu, memory=memory), limits=ResourceList(memory=memory_limit)
    )
