"""Latency and availability SLOs: burn-rate maths shared by Prometheus rules and the operator.

- `objectives`: windows, error budgets, burn-rate alert pairs (scaled to the SLO window)
- `sli`: the router metric and label names the SLIs read (one place)
- `promql`, `rules`: SLI expressions, recording rules and multi-window burn-rate alerts
- `window.SloEvaluator`: the same burn rates from scrapes of the routers, no Prometheus
- `scrape.scrape_routers`: one timer tick's concurrent scrape into the evaluator
- `status.slo_update`: `status.slo`, the `SLOMet` condition and the Events to emit
- `alertmanager.AlertmanagerNotifier`: optional posting of the alerts to Alertmanager
"""
