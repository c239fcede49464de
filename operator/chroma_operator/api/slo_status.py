"""status.slo: the operator's own evaluation of the service-level objectives."""

from __future__ import annotations

from pydantic import Field

from chroma_operator.api.base import Observed


class SloAlertStatus(Observed):
    """One burn-rate window pair of an objective."""

    severity: str
    windows: str = Field(description="The pair's name, e.g. 1h/5m")
    factor: float = Field(description="Burn rate both windows must reach to fire")
    firing: bool = False


class ObjectiveStatus(Observed):
    """One objective as last measured."""

    name: str
    type: str
    target: float
    window: str
    threshold_ms: float | None = None
    observed_seconds: int = Field(default=0, description="Seconds of the window with data")
    events: int = 0
    bad_events: int = 0
    burn_rates: dict[str, float] = Field(default_factory=dict, description="By window")
    alerts: list[SloAlertStatus] = Field(default_factory=list)
    firing: list[str] = Field(default_factory=list, description="Severities firing now")
    sli: float | None = Field(default=None, description="Good fraction over the SLO window")
    error_budget_remaining: float | None = None
    problems: list[str] | None = Field(default=None, description="Why it cannot be measured")


class SloStatus(Observed):
    """The last evaluation: which objectives page, and each objective's numbers."""

    evaluated_at: str | None = None
    routers: int = Field(default=0, description="Routers that answered on /metrics")
    paging: list[str] = Field(default_factory=list, description="Objectives paging now")
    objectives: list[ObjectiveStatus] = Field(default_factory=list)
