"""The operator's own SLO evaluator: burn rates from successive scrapes, no Prometheus needed.

Feed it every router's `/metrics` text on a timer (`observe`), then ask for the result
(`evaluate`). Per router it turns the raw counters into reset-proof running totals of
events and bad events per objective, keeps them as timestamped samples, and answers
"how many events, how many bad, within the last W" for every alert window by
subtracting the sample at the window's start from the newest one, summed over routers.
A window longer than what has been seen uses what has been seen (as Prometheus' `rate`
does when a series is younger than its range), and says how much that was.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

from chroma_operator.api.models import Objective
from chroma_operator.slo.objectives import (
    burn_rate,
    burn_rate_alerts,
    error_budget,
    seconds,
    windows_for,
)
from chroma_operator.slo.results import ObjectiveResult, PairResult, SloEvaluation, WindowSli
from chroma_operator.slo.sli import SLI_METRICS, SliMetrics, threshold_seconds

SeriesKey = tuple[str, tuple[tuple[str, str], ...]]
Sample = tuple[float, float, float]
"""(unix time, running total of events, running total of bad events)."""

_FULL_RESOLUTION_S = 6 * 3600
_COMPACT_EVERY = 64


# --- per-router state --------------------------------------------------------------------


@dataclass
class _Router:
    last_value: dict[SeriesKey, float] = field(default_factory=dict)
    last_created: dict[SeriesKey, float] = field(default_factory=dict)
    running: dict[str, tuple[float, float]] = field(default_factory=dict)
    samples: dict[str, list[Sample]] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)
    last_seen: float = -math.inf
    appended: int = 0


def _strip(name: str, suffixes: Iterable[str]) -> str:
    for suffix in suffixes:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _time(sample: Sample) -> float:
    return sample[0]


def _compact(samples: list[Sample], now: float, horizon: float) -> list[Sample]:
    """Drop what no window reaches, and thin old samples (5 min after 6 h, 1 h after 3 d).

    The newest sample at or before `now - horizon` is kept: it is the longest window's start.
    """
    start = bisect_right(samples, now - horizon, key=_time)
    if start > 1:
        samples = samples[start - 1 :]
    out: list[Sample] = []
    last_bucket: tuple[int, int] | None = None
    for i, sample in enumerate(samples):
        age = now - sample[0]
        if age < _FULL_RESOLUTION_S or i == len(samples) - 1:
            out.append(sample)
            last_bucket = None
            continue
        resolution = 300 if age < 3 * 86_400 else 3600
        bucket = (resolution, int(sample[0] // resolution))
        if bucket != last_bucket:
            out.append(sample)
            last_bucket = bucket
    return out


class SloEvaluator:
    """Sliding-window SLO state for one cluster; drive it from an (async) timer.

    `observe()` and `evaluate()` are pure CPU work on in-memory state (no I/O), so an async
    handler scrapes the routers itself and hands the text over.
    """

    def __init__(
        self,
        objectives: Sequence[Objective],
        *,
        metrics: SliMetrics = SLI_METRICS,
        stale_after_s: float = 300.0,
    ) -> None:
        self.metrics = metrics
        self.stale_after_s = stale_after_s
        self._routers: dict[str, _Router] = {}
        self._objectives: dict[str, Objective] = {}
        self.configure(objectives)

    # -- configuration --

    @property
    def objectives(self) -> tuple[Objective, ...]:
        return tuple(self._objectives.values())

    def configure(self, objectives: Sequence[Objective]) -> None:
        """Adopt a (possibly changed) list of objectives; a changed one starts afresh."""
        new = {o.name: o for o in objectives}
        for name in set(new) | set(self._objectives):
            if new.get(name) == self._objectives.get(name):
                continue
            for router in self._routers.values():
                router.running.pop(name, None)
                router.problems.pop(name, None)
                router.samples.pop(name, None)
                if name in new:
                    # Counting starts at the router's last scrape, like a fresh baseline.
                    router.samples[name] = [(router.last_seen, 0.0, 0.0)]
        self._objectives = new

    @property
    def horizon_s(self) -> float:
        """The longest window any objective needs."""
        windows = [w for o in self._objectives.values() for w in windows_for([o.window])]
        return float(max((seconds(w) for w in windows), default=0))

    # -- input --

    def observe(self, router_url: str, metrics_text: str, now: float) -> None:
        """Take one scrape of one router's `/metrics` (Prometheus text format) taken at `now`.

        Raises ValueError when the text is not the exposition format.
        """
        values, created = self._parse(metrics_text)
        router = self._routers.get(router_url)
        first_scrape = router is None
        if router is None:
            router = self._routers[router_url] = _Router()

        deltas: dict[SeriesKey, float] = {}
        for key, value in values.items():
            prev = router.last_value.get(key)
            created_key = self._created_key(key)
            restarted = (
                created_key in created
                and created_key in router.last_created
                and created[created_key] != router.last_created[created_key]
            )
            if prev is None:
                # A series born since the last scrape counted from zero; on the first
                # scrape of a router its history before now is unknown: a baseline.
                deltas[key] = 0.0 if first_scrape else value
            elif value < prev or restarted:
                deltas[key] = value
            else:
                deltas[key] = value - prev
        router.last_value = values
        router.last_created = created
        router.last_seen = now

        for objective in self._objectives.values():
            total, bad, problem = self._objective_deltas(objective, values, deltas)
            if problem:
                router.problems[objective.name] = problem
            else:
                router.problems.pop(objective.name, None)
            run_total, run_bad = router.running.get(objective.name, (0.0, 0.0))
            run_total += total
            run_bad += bad
            router.running[objective.name] = (run_total, run_bad)
            samples = router.samples.setdefault(objective.name, [])
            if samples and now <= samples[-1][0]:
                samples[-1] = (samples[-1][0], run_total, run_bad)
            else:
                samples.append((now, run_total, run_bad))

        router.appended += 1
        if router.appended % _COMPACT_EVERY == 0:
            for name, samples in router.samples.items():
                router.samples[name] = _compact(samples, now, self.horizon_s)

    def forget(self, router_url: str) -> None:
        """Drop a router for good (scaled away); its past errors stop counting."""
        self._routers.pop(router_url, None)

    def _parse(self, text: str) -> tuple[dict[SeriesKey, float], dict[SeriesKey, float]]:
        m = self.metrics
        wanted = {
            m.requests_total,
            m.duration_bucket,
            m.duration_count,
            m.recall_relevant_total,
            m.recall_missed_total,
        }
        created_names = {
            _strip(m.requests_total, ["_total"]) + "_created",
            m.duration_histogram + "_created",
            _strip(m.recall_relevant_total, ["_total"]) + "_created",
            _strip(m.recall_missed_total, ["_total"]) + "_created",
        }
        values: dict[SeriesKey, float] = {}
        created: dict[SeriesKey, float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                key: SeriesKey = (sample.name, tuple(sorted(sample.labels.items())))
                if sample.name in wanted:
                    values[key] = values.get(key, 0.0) + float(sample.value)
                elif sample.name in created_names:
                    created[key] = float(sample.value)
        return values, created

    def _created_key(self, key: SeriesKey) -> SeriesKey:
        name, labels = key
        base = _strip(name, ["_total", "_bucket", "_count"])
        return (base + "_created", tuple((k, v) for k, v in labels if k != "le"))

    def _objective_deltas(
        self,
        objective: Objective,
        values: Mapping[SeriesKey, float],
        deltas: Mapping[SeriesKey, float],
    ) -> tuple[float, float, str | None]:
        """(events, bad events, problem) since the previous scrape of one router."""
        m = self.metrics
        total = bad = good = 0.0
        if objective.type == "availability":
            for (name, labels), d in deltas.items():
                lab = dict(labels)
                if name != m.requests_total or m.is_excluded_route(lab.get(m.route_label, "")):
                    continue
                total += d
                if m.is_server_error(lab.get(m.status_label, "")):
                    bad += d
            return total, bad, None
        if objective.type == "recall":
            for (name, _labels), d in deltas.items():
                if name == m.recall_relevant_total:
                    total += d
                elif name == m.recall_missed_total:
                    bad += d
            return total, min(bad, total), None

        threshold = threshold_seconds(objective.threshold_ms or 0.0)
        queries = has_bucket = False
        for (name, labels), d in deltas.items():
            lab = dict(labels)
            if lab.get(m.route_label) != m.query_route:
                continue
            if name == m.duration_count:
                total += d
                queries = True
            elif name == m.duration_bucket and _same_bound(lab.get("le", ""), threshold):
                good += d
                has_bucket = True
        if queries and not has_bucket:
            return (
                0.0,
                0.0,
                (
                    f"no histogram bucket le={threshold:g} in {m.duration_histogram}: "
                    "the router does not know this threshold yet"
                ),
            )
        return total, max(total - good, 0.0), None

    # -- output --

    def evaluate(self, now: float) -> SloEvaluation:
        """SLI, burn rates and firing pairs of every objective as of `now`."""
        live = tuple(
            sorted(u for u, r in self._routers.items() if now - r.last_seen <= self.stale_after_s)
        )
        for url in [u for u, r in self._routers.items() if now - r.last_seen > self.horizon_s]:
            del self._routers[url]
        results = tuple(self._evaluate_objective(o, now) for o in self._objectives.values())
        return SloEvaluation(at=now, routers=live, objectives=results)

    def _evaluate_objective(self, objective: Objective, now: float) -> ObjectiveResult:
        budget = error_budget(objective.target)
        windows = {
            w: self._window(objective.name, w, now, budget) for w in windows_for([objective.window])
        }
        pairs = []
        for alert in burn_rate_alerts(objective.window):
            long_burn = windows[alert.long_window].burn_rate
            short_burn = windows[alert.short_window].burn_rate
            pairs.append(
                PairResult(alert, long_burn, short_burn, alert.fires(long_burn, short_burn))
            )
        problems = tuple(
            f"{url}: {r.problems[objective.name]}"
            for url, r in sorted(self._routers.items())
            if objective.name in r.problems
        )
        return ObjectiveResult(objective, budget, windows, tuple(pairs), problems)

    def _window(self, name: str, window: str, now: float, budget: float) -> WindowSli:
        span = seconds(window)
        total = bad = covered = 0.0
        for router in self._routers.values():
            samples = router.samples.get(name)
            if not samples:
                continue
            end = bisect_right(samples, now, key=_time) - 1
            if end < 0:
                continue
            start = max(bisect_right(samples, now - span, key=_time) - 1, 0)
            t0, total0, bad0 = samples[start]
            t1, total1, bad1 = samples[end]
            total += total1 - total0
            bad += bad1 - bad0
            covered = max(covered, t1 - t0)
        ratio = bad / total if total > 0 else None
        return WindowSli(
            window=window,
            seconds=span,
            covered_seconds=covered,
            events=total,
            bad_events=bad,
            error_ratio=ratio,
            burn_rate=burn_rate(ratio, budget),
        )


def _same_bound(le: str, threshold: float) -> bool:
    try:
        bound = float(le)
    except ValueError:
        return False
    return math.isclose(bound, threshold, rel_tol=1e-12, abs_tol=0.0)
