"""Burn-rate arithmetic against worked examples (Google SRE workbook, chapter 5)."""

from __future__ import annotations

import pytest

from chroma_operator.slo.objectives import (
    BASE_ALERTS,
    budget_remaining,
    burn_rate,
    burn_rate_alerts,
    error_budget,
    seconds,
    windows_for,
)


def _page_fast() -> tuple[float, str, str]:
    alert = burn_rate_alerts("30d")[0]
    return alert.factor, alert.long_window, alert.short_window


def test_durations() -> None:
    assert seconds("5m") == 300
    assert seconds("1h") == 3600
    assert seconds("30d") == 30 * 86_400
    assert seconds("1w") == 7 * 86_400
    for bad in ("", "1", "0m", "1.5h", "1h30m", "5y"):
        with pytest.raises(ValueError):
            seconds(bad)


def test_budget_is_exact_for_common_targets() -> None:
    assert error_budget(0.999) == 0.001
    assert error_budget(0.99) == 0.01
    assert error_budget(0.9995) == 0.0005
    with pytest.raises(ValueError):
        error_budget(1.0)


def test_thirty_day_pairs_are_the_workbook_ones() -> None:
    pairs = burn_rate_alerts("30d")
    assert [(p.severity, p.long_window, p.short_window, p.factor) for p in pairs] == [
        ("page", "1h", "5m", 14.4),
        ("page", "6h", "30m", 6.0),
        ("ticket", "1d", "2h", 3.0),
        ("ticket", "3d", "6h", 1.0),
    ]
    # Each factor spends a fixed share of the 30-day budget in its long window.
    shares = [p.factor * seconds(p.long_window) / seconds("30d") for p in pairs]
    assert shares == pytest.approx([0.02, 0.05, 0.10, 0.10])


def test_fast_page_fires_at_1_44_percent_over_both_windows() -> None:
    budget = error_budget(0.999)  # 0.1 %
    fast = burn_rate_alerts("30d")[0]
    long_burn = burn_rate(0.0144, budget)
    short_burn = burn_rate(0.0144, budget)
    assert long_burn == pytest.approx(14.4)
    assert fast.fires(long_burn, short_burn)
    assert fast.threshold(budget) == pytest.approx(0.0144)


def test_fast_page_does_not_fire_on_the_short_window_alone() -> None:
    budget = error_budget(0.999)
    fast = burn_rate_alerts("30d")[0]
    # 1.44 % over the last 5 minutes, but only 0.2 % over the hour: a blip, not a page.
    assert not fast.fires(burn_rate(0.002, budget), burn_rate(0.0144, budget))
    # ...nor on the long window alone (the problem has already stopped).
    assert not fast.fires(burn_rate(0.0144, budget), burn_rate(0.0005, budget))
    # just under the threshold on one window
    assert not fast.fires(burn_rate(0.0143, budget), burn_rate(0.0144, budget))
    # no data never fires
    assert not fast.fires(None, burn_rate(0.5, budget))


def test_seven_day_window_scales_factors() -> None:
    pairs = burn_rate_alerts("7d")
    scale = 7 / 30
    assert [p.factor for p in pairs] == pytest.approx(
        [14.4 * scale, 6 * scale, 3 * scale, 1 * scale]
    )
    assert [p.long_window for p in pairs] == ["1h", "6h", "1d", "3d"]
    # The share of the 7-day budget spent before the fast page fires is still 2 %.
    fast = pairs[0]
    assert fast.factor * seconds("1h") / seconds("7d") == pytest.approx(0.02)
    # With a 99.9 % target over 7 days, 1.44 % errors no longer merely page at 14.4x:
    # the threshold is 3.36x, i.e. 0.336 % errors over both 1h and 5m.
    budget = error_budget(0.999)
    assert fast.threshold(budget) == pytest.approx(0.00336)
    assert fast.fires(burn_rate(0.00336, budget), burn_rate(0.004, budget))
    assert not fast.fires(burn_rate(0.0033, budget), burn_rate(0.004, budget))


def test_short_slo_window_drops_pairs_longer_than_itself() -> None:
    pairs = burn_rate_alerts("1d")
    assert [p.long_window for p in pairs] == ["1h", "6h", "1d"]
    assert burn_rate_alerts("2h")[0].long_window == "1h"
    assert len(burn_rate_alerts("90d")) == len(BASE_ALERTS)
    assert burn_rate_alerts("90d")[0].factor == pytest.approx(43.2)


def test_budget_remaining() -> None:
    assert budget_remaining(0.0, 0.001) == 1.0
    assert budget_remaining(0.0005, 0.001) == pytest.approx(0.5)
    assert budget_remaining(0.002, 0.001) == pytest.approx(-1.0)
    assert budget_remaining(None, 0.001) is None


def test_windows_include_the_slo_window_once() -> None:
    assert windows_for(["30d"]) == ("5m", "30m", "1h", "2h", "6h", "1d", "3d", "30d")
    assert windows_for(["1d"]) == ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
    assert windows_for(["4h", "7d"]) == ("5m", "30m", "1h", "2h", "4h", "6h", "1d", "3d", "7d")
