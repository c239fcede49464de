"""Windows, error budgets and burn-rate thresholds: the arithmetic of multi-window alerts.

The factors of the Google SRE workbook (14.4x, 6x, 3x, 1x) are defined for a 30-day SLO:
each is the burn rate that spends a fixed share of the budget within its long window
(2% in 1h, 5% in 6h, 10% in 1d, 10% in 3d). For another SLO window we keep the alert
windows (so the same recording rules serve every objective) and scale the factor by
`window / 30d`, which keeps the share of budget spent before the alert fires the same.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Severity = Literal["page", "ticket"]

_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400}
_DURATION = re.compile(r"^([1-9][0-9]*)([smhdw])$")

BASE_SLO_WINDOW = "30d"
RELATIVE_TOLERANCE = 1e-9
"""Burn rates are compared with `>=` and this slack, so a ratio of exactly factor x budget
(1.44% against 0.1%) fires despite binary floating point (0.0144 / 0.001 = 14.3999...)."""
RULE_WINDOWS: tuple[str, ...] = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
"""Every window the recording rules (and the operator's own evaluator) compute."""


def seconds(duration: str) -> int:
    """Seconds in a Prometheus-style duration with one unit (`5m`, `1h`, `30d`, `1w`)."""
    match = _DURATION.match(duration)
    if match is None:
        raise ValueError(f"not a duration with one unit: {duration!r}")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def error_budget(target: float) -> float:
    """The share of events allowed to be bad: 1 - target (0.001 for 99.9%)."""
    if not 0.0 < target < 1.0:
        raise ValueError(f"target must be strictly between 0 and 1, got {target}")
    return round(1.0 - target, 12)  # 1 - 0.999 is 0.0010000000000000009 otherwise


@dataclass(frozen=True)
class BurnRateAlert:
    """One window pair: fires when the burn rate exceeds `factor` over both windows."""

    severity: Severity
    long_window: str
    short_window: str
    factor: float

    @property
    def name(self) -> str:
        return f"{self.long_window}/{self.short_window}"

    def threshold(self, budget: float) -> float:
        """The error ratio both windows must exceed (factor x budget)."""
        return self.factor * budget

    def fires(self, long_burn: float | None, short_burn: float | None) -> bool:
        """Both windows burn at least `factor`; a window without data never fires."""
        if long_burn is None or short_burn is None:
            return False
        limit = self.factor * (1.0 - RELATIVE_TOLERANCE)
        return long_burn >= limit and short_burn >= limit


BASE_ALERTS: tuple[BurnRateAlert, ...] = (
    BurnRateAlert("page", "1h", "5m", 14.4),
    BurnRateAlert("page", "6h", "30m", 6.0),
    BurnRateAlert("ticket", "1d", "2h", 3.0),
    BurnRateAlert("ticket", "3d", "6h", 1.0),
)


def burn_rate_alerts(slo_window: str) -> tuple[BurnRateAlert, ...]:
    """The four pairs with factors scaled to `slo_window`.

    A pair whose long window is longer than the SLO window is dropped: it would look at
    errors that no longer count against the budget.
    """
    scale = seconds(slo_window) / seconds(BASE_SLO_WINDOW)
    return tuple(
        BurnRateAlert(a.severity, a.long_window, a.short_window, a.factor * scale)
        for a in BASE_ALERTS
        if seconds(a.long_window) <= seconds(slo_window)
    )


def burn_rate(error_ratio: float | None, budget: float) -> float | None:
    """How many times faster than sustainable the budget is spent (1.0 = exactly on budget)."""
    if error_ratio is None:
        return None
    return error_ratio / budget


def budget_remaining(error_ratio: float | None, budget: float) -> float | None:
    """Share of the window's budget left: 1 - ratio/budget (negative once overspent)."""
    if error_ratio is None:
        return None
    return 1.0 - error_ratio / budget


def windows_for(slo_windows: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Rule windows plus every SLO window, shortest first, no duplicates."""
    return tuple(sorted(set(RULE_WINDOWS) | set(slo_windows), key=seconds))
