"""Post the evaluator's burn-rate alerts to an Alertmanager (`spec.slo.alertmanagerUrl`).

For clusters without Prometheus: the same alert (name, labels) the PrometheusRule would
raise, sent to Alertmanager's v2 API. Firing alerts are re-sent on every evaluation with
an `endsAt` a few intervals ahead, as Prometheus does, so they expire on their own if the
operator stops; an alert that stops firing is sent once more with `endsAt` = now.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from chroma_operator.slo.objectives import Severity
from chroma_operator.slo.results import ObjectiveResult, SloEvaluation
from chroma_operator.slo.rules import ALERT_NAME, alert_labels
from chroma_operator.slo.status import iso

AlertKey = tuple[str, Severity]


class AlertmanagerNotifier:
    """Keeps which alerts it has sent firing, to resolve them when they stop."""

    def __init__(
        self,
        url: str,
        *,
        cluster: str,
        namespace: str,
        cluster_labels: Mapping[str, str] | None = None,
        resend_for_s: float = 300.0,
        generator_url: str = "",
    ) -> None:
        self.endpoint = url.rstrip("/") + "/api/v2/alerts"
        self.cluster = cluster
        self.namespace = namespace
        self.labels = alert_labels(cluster, namespace, cluster_labels)
        self.resend_for_s = resend_for_s
        self.generator_url = generator_url
        self._firing: dict[AlertKey, float] = {}

    def _alert(
        self, o: ObjectiveResult, severity: Severity, starts: float, ends: float
    ) -> dict[str, Any]:
        pairs = [p for p in o.pairs if p.alert.severity == severity]
        burning = [p for p in pairs if p.firing] or pairs
        burn = max((p.long_burn_rate or 0.0) for p in burning) if burning else 0.0
        alert: dict[str, Any] = {
            "labels": {
                **self.labels,
                "alertname": ALERT_NAME,
                "severity": severity,
                "slo": o.name,
                "slo_type": o.objective.type,
            },
            "annotations": {
                "summary": f"ChromaCluster {self.namespace}/{self.cluster}: SLO {o.name} is "
                f"burning its error budget too fast ({severity})",
                "description": f"The error budget of {o.name} is being spent {burn:.3g}x "
                "faster than sustainable over the long window ("
                + ", ".join(f"{p.alert.name} >= {p.alert.factor:g}x" for p in pairs)
                + ").",
                "burn_rate": f"{burn:.4g}",
            },
            "startsAt": iso(starts),
            "endsAt": iso(ends),
        }
        if self.generator_url:
            alert["generatorURL"] = self.generator_url
        return alert

    def alerts(self, evaluation: SloEvaluation) -> list[dict[str, Any]]:
        """The payload for this evaluation (firing and newly resolved alerts); updates state."""
        now = evaluation.at
        out: list[dict[str, Any]] = []
        firing_now: dict[AlertKey, float] = {}
        by_name = {o.name: o for o in evaluation.objectives}
        for o in evaluation.objectives:
            for severity in sorted({p.alert.severity for p in o.pairs if p.firing}):
                key = (o.name, severity)
                starts = self._firing.get(key, now)
                firing_now[key] = starts
                out.append(self._alert(o, severity, starts, now + self.resend_for_s))
        for key, starts in self._firing.items():
            if key not in firing_now and key[0] in by_name:
                out.append(self._alert(by_name[key[0]], key[1], starts, now))
        self._firing = firing_now
        return out

    async def notify(self, evaluation: SloEvaluation, client: httpx.AsyncClient) -> int:
        """POST this evaluation's alerts (nothing when none fire or resolve); returns how many.

        Raises httpx.HTTPError when Alertmanager refuses or cannot be reached; the state is
        then rolled back so the next evaluation sends the same transitions again.
        """
        before = dict(self._firing)
        payload = self.alerts(evaluation)
        if not payload:
            return 0
        try:
            response = await client.post(self.endpoint, json=payload)
            response.raise_for_status()
        except httpx.HTTPError:
            self._firing = before
            raise
        return len(payload)
