"""The generated rules evaluated by Prometheus' own rule engine (`promtool test rules`).

The burn-rate worked examples again, but now through the recording rules and alerts as
Prometheus runs them, on synthetic series shaped like the router's. Skipped where
promtool is not installed (Debian/Ubuntu: `apt-get install prometheus`).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from chroma_operator.api.models import ChromaClusterSpec
from chroma_operator.build.meta import Owner
from chroma_operator.build.monitoring import build_monitoring
from chroma_operator.slo.sli import QUERY_ROUTE

PROMTOOL = shutil.which("promtool")
pytestmark = pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed")

OWNER = Owner(name="search", namespace="prod")
SPEC = ChromaClusterSpec.model_validate(
    {
        "monitoring": {"prometheusRule": True},
        "slo": {
            "objectives": [
                {"name": "availability", "type": "availability", "target": 0.999},
                {"name": "query-latency", "type": "latency", "thresholdMs": 50, "target": 0.99},
            ]
        },
    }
)
TARGET = 'namespace="prod", service="search", pod="search-shard-0-0"'
RECORD_LABELS = {
    "namespace": "prod",
    "service": "search",
    "chroma_cluster": "search",
    "team": "rag",
}


def _requests(status: str, values: str, route: str = QUERY_ROUTE) -> dict[str, str]:
    return {
        "series": f'chroma_router_requests_total{{{TARGET}, route="{route}", method="POST", status="{status}"}}',
        "values": values,
    }


def _latency(suffix: str, values: str, le: str | None = None) -> dict[str, str]:
    le_label = f', le="{le}"' if le is not None else ""
    return {
        "series": f'chroma_router_request_duration_seconds_{suffix}{{{TARGET}, route="{QUERY_ROUTE}", method="POST", status="200"{le_label}}}',
        "values": values,
    }


def _about(record: str, slo: str, value: float, slo_type: str = "availability") -> dict[str, Any]:
    """A promql_expr_test that `record{slo}` is `value` to 1e-12 (promtool compares floats
    exactly, and 144 / 10 000 is 0.014399999999999998 one way and 0.0144 another)."""
    return {
        "expr": f'abs({record}{{slo="{slo}"}} - {value!r}) < bool 1e-12',
        "eval_time": "",
        "exp_samples": [{"labels": f"{{{_labels(slo, slo_type)}}}", "value": 1}],
    }


def _alerts(slo: str) -> dict[str, dict[str, Any]]:
    rule = build_monitoring(OWNER, SPEC, {"team": "rag"})[0]
    return {
        r["labels"]["severity"]: r
        for g in rule["spec"]["groups"]
        for r in g["rules"]
        if "alert" in r and r["labels"]["slo"] == slo
    }


def _expected_alert(rule: dict[str, Any], value: str) -> dict[str, Any]:
    """What Prometheus should raise: the rule's labels on the series', templates filled."""
    annotations = {
        k: v.replace("{{ $value | humanize }}", value) for k, v in rule["annotations"].items()
    }
    return {"exp_labels": {**rule["labels"], "service": "search"}, "exp_annotations": annotations}


def _run(
    tmp_path: Path, tests: list[dict[str, Any]], spec: ChromaClusterSpec = SPEC
) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    rule = build_monitoring(OWNER, spec, {"team": "rag"})[0]
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    (tmp_path / "test.yaml").write_text(
        yaml.safe_dump(
            {"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": tests},
            sort_keys=False,
        )
    )
    return subprocess.run(
        [PROMTOOL, "test", "rules", "test.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_promtool_accepts_the_rules(tmp_path: Path) -> None:
    assert PROMTOOL is not None
    rule = build_monitoring(OWNER, SPEC)[0]
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    done = subprocess.run(
        [PROMTOOL, "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_fast_page_fires_at_1_44_percent_over_both_windows(tmp_path: Path) -> None:
    """1.44 % server errors against a 0.1 % budget for two hours: 14.4x on every window.

    Both page pairs and both ticket pairs hold; each alert's value is the burn rate of
    its first long window. Scrapes, probes and peer invalidations do not dilute the SLI.
    """
    alerts = _alerts("availability")
    test = {
        "interval": "1m",
        "input_series": [
            _requests("200", "0+9856x180"),
            _requests("500", "0+144x180"),
            _requests("200", "0+50000x180", route="/metrics"),
        ],
        "promql_expr_test": [
            {
                **_about(f"chroma_slo:sli_error:ratio_rate{w}", "availability", 0.0144),
                "eval_time": "150m",
            }
            for w in ("5m", "30m", "1h", "2h", "6h")
        ],
        "alert_rule_test": [
            {
                "eval_time": "150m",
                "alertname": "ChromaSLOBurnRateHigh",
                "exp_alerts": [
                    _expected_alert(alerts["page"], "14.4"),
                    _expected_alert(alerts["ticket"], "14.4"),
                ],
            }
        ],
    }
    done = _run(tmp_path, [test])
    assert done.returncode == 0, done.stdout + done.stderr


def test_short_window_alone_does_not_page(tmp_path: Path) -> None:
    """Clean for 2 h, then just over 1.44 % errors for the last 5 minutes: the 5m window
    burns at 14.5x (over the fast-page factor) but the hour at 1.5x: no alert at all."""
    clean = "0x114"
    test = {
        "interval": "1m",
        "input_series": [
            _requests("200", "0+10000x120"),
            _requests("500", f"{clean} 147+147x5"),
        ],
        "promql_expr_test": [
            {
                **_about("chroma_slo:sli_error:ratio_rate5m", "availability", _five_minute_ratio()),
                "eval_time": "120m",
            }
        ],
        "alert_rule_test": [
            {"eval_time": "120m", "alertname": "ChromaSLOBurnRateHigh", "exp_alerts": []},
        ],
    }
    done = _run(tmp_path, [test])
    assert done.returncode == 0, done.stdout + done.stderr


def _five_minute_ratio() -> float:
    """Prometheus' rate() over [5m] at 120m sees the error samples 147..882 at minutes
    115..120 (both ends inclusive in Prometheus 2) and the request samples there:
    increases of 735 and 50 000, extrapolated alike: 735 / 50 735 = 1.4487 %."""
    ratio = 735 / (50_000 + 735)
    assert ratio / 0.001 >= 14.4
    return ratio


def test_availability_without_any_5xx_series_is_zero_not_missing(tmp_path: Path) -> None:
    test = {
        "interval": "1m",
        "input_series": [_requests("200", "0+100x60")],
        "promql_expr_test": [
            {
                "expr": 'chroma_slo:sli_error:ratio_rate5m{slo="availability"}',
                "eval_time": "30m",
                "exp_samples": [
                    {
                        "labels": f"chroma_slo:sli_error:ratio_rate5m{{{_labels('availability')}}}",
                        "value": 0,
                    }
                ],
            }
        ],
    }
    done = _run(tmp_path, [test])
    assert done.returncode == 0, done.stdout + done.stderr


def test_latency_sli_from_the_threshold_bucket(tmp_path: Path) -> None:
    """2 % of queries slower than 50 ms (bucket le=0.05 gets 980 of 1000 a minute) against
    a 1 % budget: burn 2x. No page; after 6 hours the 3d/6h ticket pair (1x) fires."""
    alerts = _alerts("query-latency")
    test = {
        "interval": "1m",
        "input_series": [
            _latency("count", "0+1000x420"),
            _latency("bucket", "0+500x420", le="0.025"),
            _latency("bucket", "0+980x420", le="0.05"),
            _latency("bucket", "0+1000x420", le="+Inf"),
        ],
        "promql_expr_test": [
            {
                **_about("chroma_slo:sli_error:ratio_rate1h", "query-latency", 0.02, "latency"),
                "eval_time": "400m",
            }
        ],
        "alert_rule_test": [
            {
                "eval_time": "400m",
                "alertname": "ChromaSLOBurnRateHigh",
                "exp_alerts": [_expected_alert(alerts["ticket"], "2")],
            }
        ],
    }
    done = _run(tmp_path, [test])
    assert done.returncode == 0, done.stdout + done.stderr


def _labels(slo: str, slo_type: str = "availability") -> str:
    labels = {**RECORD_LABELS, "slo": slo, "slo_type": slo_type}
    return ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()))


@pytest.mark.parametrize("le", ["1.0", "1"])
def test_whole_second_threshold_matches_either_spelling(tmp_path: Path, le: str) -> None:
    """prometheus_client writes le="1.0"; Prometheus 3 stores it as le="1". Both match."""
    spec = ChromaClusterSpec.model_validate(
        {
            "monitoring": {"prometheusRule": True},
            "slo": {
                "objectives": [
                    {"name": "slow", "type": "latency", "thresholdMs": 1000, "target": 0.9}
                ]
            },
        }
    )
    test = {
        "interval": "1m",
        "input_series": [
            _latency("count", "0+100x60"),
            _latency("bucket", "0+75x60", le=le),
            _latency("bucket", "0+100x60", le="+Inf"),
        ],
        "promql_expr_test": [
            {
                **_about("chroma_slo:sli_error:ratio_rate30m", "slow", 0.25, "latency"),
                "eval_time": "50m",
            }
        ],
    }
    done = _run(tmp_path, [test], spec)
    assert done.returncode == 0, done.stdout + done.stderr


RECALL_SPEC = ChromaClusterSpec.model_validate(
    {
        "monitoring": {"prometheusRule": True},
        "slo": {"objectives": [{"name": "recall", "type": "recall", "target": 0.99, "k": 10}]},
    }
)


def _recall_series(name: str, values: str, collection: str) -> dict[str, str]:
    return {
        "series": f'chroma_router_{name}_total{{{TARGET}, collection="{collection}"}}',
        "values": values,
    }


def test_recall_objective_below_delivered_recall_pages(tmp_path: Path) -> None:
    """Sampled queries get 80 % of the exact top-10 (two collections, 0.7 and 0.9) against
    a 0.99 recall objective: 20 % misses on a 1 % budget, burn 20x: page and ticket fire,
    and the alert says to run tuning."""
    rule = build_monitoring(OWNER, RECALL_SPEC, {"team": "rag"})[0]
    alerts = {
        r["labels"]["severity"]: r
        for g in rule["spec"]["groups"]
        for r in g["rules"]
        if "alert" in r
    }
    assert "chroma.operator.dev/tune" in alerts["page"]["annotations"]["description"]
    test = {
        "interval": "1m",
        "input_series": [
            _recall_series("recall_relevant", "0+500x180", "docs"),
            _recall_series("recall_missed", "0+150x180", "docs"),
            _recall_series("recall_relevant", "0+500x180", "faq"),
            _recall_series("recall_missed", "0+50x180", "faq"),
        ],
        "promql_expr_test": [
            {
                **_about(f"chroma_slo:sli_error:ratio_rate{w}", "recall", 0.2, "recall"),
                "eval_time": "150m",
            }
            for w in ("5m", "1h", "2h")
        ],
        "alert_rule_test": [
            {
                "eval_time": "150m",
                "alertname": "ChromaSLOBurnRateHigh",
                "exp_alerts": [
                    _expected_alert(alerts["page"], "20"),
                    _expected_alert(alerts["ticket"], "20"),
                ],
            }
        ],
    }
    done = _run(tmp_path, [test], RECALL_SPEC)
    assert done.returncode == 0, done.stdout + done.stderr


def test_recall_meeting_its_objective_is_quiet(tmp_path: Path) -> None:
    test = {
        "interval": "1m",
        "input_series": [
            _recall_series("recall_relevant", "0+1000x180", "docs"),
            _recall_series("recall_missed", "0+5x180", "docs"),
        ],
        "alert_rule_test": [
            {"eval_time": "150m", "alertname": "ChromaSLOBurnRateHigh", "exp_alerts": []}
        ],
    }
    done = _run(tmp_path, [test], RECALL_SPEC)
    assert done.returncode == 0, done.stdout + done.stderr
