"""What the SLO evaluator answers: per objective, each window's SLI and burn rate, and
which burn-rate alert pairs fire. Plain values, read by status and alerting alike."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from chroma_operator.api.models import Objective
from chroma_operator.slo.objectives import BurnRateAlert, Severity, budget_remaining


@dataclass(frozen=True)
class WindowSli:
    """One objective over one window."""

    window: str
    seconds: int
    covered_seconds: float
    """How much of the window the samples span (less than `seconds` early on)."""
    events: float
    bad_events: float
    error_ratio: float | None
    burn_rate: float | None

    @property
    def sli(self) -> float | None:
        """Share of good events (None without events)."""
        return None if self.error_ratio is None else 1.0 - self.error_ratio


@dataclass(frozen=True)
class PairResult:
    alert: BurnRateAlert
    long_burn_rate: float | None
    short_burn_rate: float | None
    firing: bool


@dataclass(frozen=True)
class ObjectiveResult:
    objective: Objective
    budget: float
    windows: Mapping[str, WindowSli]
    pairs: tuple[PairResult, ...]
    problems: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.objective.name

    @property
    def slo_window(self) -> WindowSli:
        return self.windows[self.objective.window]

    @property
    def sli(self) -> float | None:
        return self.slo_window.sli

    @property
    def budget_remaining(self) -> float | None:
        return budget_remaining(self.slo_window.error_ratio, self.budget)

    def firing(self, severity: Severity | None = None) -> bool:
        return any(p.firing and severity in (None, p.alert.severity) for p in self.pairs)

    @property
    def has_data(self) -> bool:
        return self.slo_window.error_ratio is not None


@dataclass(frozen=True)
class SloEvaluation:
    at: float
    routers: tuple[str, ...]
    """Routers seen within the staleness limit."""
    objectives: tuple[ObjectiveResult, ...]

    def firing(self, severity: Severity | None = None) -> tuple[ObjectiveResult, ...]:
        return tuple(o for o in self.objectives if o.firing(severity))

    @property
    def has_data(self) -> bool:
        return any(o.has_data for o in self.objectives)
