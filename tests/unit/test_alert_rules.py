"""Alert rules: readings from the daemon's facts, and the ok → pending → firing → ok machine."""

from __future__ import annotations

from typing import Any

import pytest

from slipway.alerts.rules import (
    MIN_REQUESTS,
    Facts,
    Reading,
    State,
    read,
    step,
    summary,
    threshold_text,
)
from slipway.config.alerts import AlertRule
from slipway.judge.histogram import bucket_of
from slipway.metrics.ingest import Second


def rule(metric: str = "error_rate", **keys: Any) -> AlertRule:
    if "above" not in keys and "below" not in keys:
        keys["above"] = 0.05
    return AlertRule.model_validate({"name": "r", "metric": metric, **keys})


def sec(
    requests: int = 0, errors: int = 0, aborts: int = 0, latencies: tuple[float, ...] = ()
) -> Second:
    latency: dict[int, int] = {}
    for ms in latencies:
        latency[bucket_of(ms)] = latency.get(bucket_of(ms), 0) + 1
    return Second(requests, errors, 0, aborts, latency, {})


def facts(
    traffic: dict[str, Second] | None = None,
    window: float = 60.0,
    down: int = 0,
    restarts: int = 0,
    disk_free: float = 0.5,
) -> Facts:
    return Facts(traffic or {}, window, down, restarts, disk_free)


def close_to(value: float | None, expected: float, rel: float = 0.01) -> bool:
    return value is not None and abs(value - expected) <= rel * expected


# -- readings --------------------------------------------------------------------------


def test_error_rate_excludes_client_aborts_and_names_the_worst_release() -> None:
    reading = read(rule(), facts({"r1": sec(100, 2, 10), "r2": sec(50, 9)}))
    assert reading.value == pytest.approx(11 / 140)
    assert reading.release == "r2"
    assert reading.text == "7.86% of 140 requests"


def test_error_rate_of_too_few_requests_is_unknown() -> None:
    few = MIN_REQUESTS - 1
    reading = read(rule(), facts({"r1": sec(few + 50, few, 50)}))  # aborts do not count
    assert reading.value is None
    assert reading.text == f"only {few} requests"
    enough = read(rule(), facts({"r1": sec(MIN_REQUESTS, MIN_REQUESTS)}))
    assert enough.value == 1.0


def test_no_traffic_at_all_is_unknown_not_zero_errors() -> None:
    reading = read(rule(), facts({}))
    assert reading.value is None
    assert reading.release is None


def test_latency_quantile_of_all_releases_and_the_slowest_one() -> None:
    traffic = {
        "r1": sec(100, latencies=(10.0,) * 100),
        "r2": sec(100, latencies=(10.0,) * 90 + (800.0,) * 10),
    }
    reading = read(rule("latency", above=500, quantile=0.99), facts(traffic))
    # 10 of 200 are slow: the 99th percentile of both together is slow
    assert close_to(reading.value, 800.0)
    assert reading.release == "r2"
    assert reading.text == f"p99 {reading.value:.0f} ms"
    median = read(rule("latency", above=500, quantile=0.5), facts(traffic))
    assert close_to(median.value, 10.0)
    assert median.text.startswith("p50 ")


def test_latency_of_only_failed_requests_is_unknown() -> None:
    reading = read(rule("latency", above=500), facts({"r1": sec(50, 50)}))
    assert reading.value is None
    assert reading.text == "no successful requests"


def test_request_rate_counts_everything_per_second_of_the_window() -> None:
    reading = read(
        rule("request_rate", below=1), facts({"r1": sec(90, 5, 5), "r2": sec(30)}, window=60)
    )
    assert reading.value == 2.0
    assert reading.text == "2.0 req/s"
    # no traffic is a rate of zero: a "below" rule can see traffic stop
    assert read(rule("request_rate", below=1), facts({}, window=60)).value == 0.0


def test_instance_restart_and_disk_readings() -> None:
    assert read(rule("instances_down", above=0), facts(down=2)) == Reading(2.0, None, "2 down")
    assert read(rule("restarts", above=3), facts(restarts=4)) == Reading(4.0, None, "4 restarts")
    assert read(rule("disk_free", below=0.1), facts(disk_free=0.075)) == Reading(
        0.075, None, "7.5% free"
    )


def test_breached_is_strict_in_both_directions() -> None:
    above = rule(above=0.05)
    assert above.breached(0.051) and not above.breached(0.05) and not above.breached(0.0)
    below = rule("disk_free", below=0.1)
    assert below.breached(0.099) and not below.breached(0.1) and not below.breached(0.5)
    assert below.threshold == 0.1 and above.threshold == 0.05


# -- the state machine -----------------------------------------------------------------

HIGH = Reading(0.5, "r2", "50%")
LOW = Reading(0.01, "r2", "1%")
UNKNOWN = Reading(None, None, "only 3 requests")


def test_a_breach_without_for_fires_at_once() -> None:
    assert step(rule(), State("ok", 0.0), HIGH, 100.0) == State("firing", 100.0)


def test_a_breach_must_hold_for_its_duration_before_firing() -> None:
    slow = rule(**{"for": "1m"})
    state = step(slow, State("ok", 0.0), HIGH, 100.0)
    assert state == State("pending", 100.0)
    state = step(slow, state, HIGH, 159.9)
    assert state == State("pending", 100.0)  # pending keeps its start
    state = step(slow, state, HIGH, 160.0)
    assert state == State("firing", 160.0)
    assert step(slow, state, HIGH, 500.0) == state  # firing keeps its start


def test_a_pending_alert_clears_when_the_breach_ends_or_data_goes_missing() -> None:
    slow = rule(**{"for": "60s"})
    pending = step(slow, State("ok", 0.0), HIGH, 100.0)
    assert step(slow, pending, LOW, 130.0) == State("ok", 130.0)
    assert step(slow, pending, UNKNOWN, 130.0) == State("ok", 130.0)
    # and a new breach starts counting again from its own start
    again = step(slow, State("ok", 130.0), HIGH, 140.0)
    assert step(slow, again, HIGH, 190.0) == State("pending", 140.0)


def test_a_firing_alert_resolves_only_on_evidence() -> None:
    firing = State("firing", 100.0)
    # no data is not evidence that it recovered
    assert step(rule(), firing, UNKNOWN, 200.0) == firing
    assert step(rule(), firing, HIGH, 200.0) == firing
    assert step(rule(), firing, LOW, 200.0) == State("ok", 200.0)


def test_ok_stays_ok_and_keeps_its_start() -> None:
    ok = State("ok", 5.0)
    assert step(rule(), ok, LOW, 100.0) is ok
    assert step(rule(), ok, UNKNOWN, 100.0) is ok


def test_unknown_never_starts_an_alert_even_for_below_rules() -> None:
    below = rule("disk_free", below=0.1)
    assert step(below, State("ok", 0.0), Reading(None, None, "?"), 10.0) == State("ok", 0.0)
    assert step(below, State("ok", 0.0), Reading(0.05, None, "5%"), 10.0).state == "firing"


# -- summaries -------------------------------------------------------------------------


def test_summary_reads_as_a_sentence() -> None:
    error_rate = rule(above=0.05, window="1m")
    reading = Reading(0.072, "r4", "7.20% of 1,204 requests")
    assert summary(error_rate, reading) == (
        "7.20% of 1,204 requests, alert > 5% over 1m (release r4)"
    )
    latency = rule("latency", above=2000, window=300)
    assert summary(latency, Reading(2400.0, None, "p99 2400 ms")) == (
        "p99 2400 ms, alert > 2000 ms over 5m"
    )
    disk = rule("disk_free", below=0.1)
    assert summary(disk, Reading(0.05, None, "5.0% free")) == "5.0% free, alert < 10%"
    down = rule("instances_down", above=0)
    assert summary(down, Reading(1.0, None, "1 down")) == "1 down, alert > 0"
    rate = rule("request_rate", below=0.5, window="2h")
    assert summary(rate, Reading(0.1, None, "0.1 req/s")) == "0.1 req/s, alert < 0.5 req/s over 2h"
    restarts = rule("restarts", above=3, window=45)
    assert summary(restarts, Reading(4.0, None, "4 restarts")) == "4 restarts, alert > 3 over 45s"


def test_threshold_text_keeps_needed_decimals() -> None:
    assert threshold_text(rule(above=0.055)) == "5.50%"
    assert threshold_text(rule(above=0.5)) == "50%"
    assert threshold_text(rule("latency", above=250.5)) == "250.5 ms"


def test_hosts_down_counts_and_names_them() -> None:
    down = rule("hosts_down", above=0)
    one = Facts({}, 60.0, 0, 0, 0.5, hosts_down=("app3",))
    assert read(down, one) == Reading(1.0, None, "host app3 down")
    assert summary(down, read(down, one)) == "host app3 down, alert > 0"
    two = Facts({}, 60.0, 0, 0, 0.5, hosts_down=("app2", "app3"))
    assert read(down, two).text == "2 hosts down (app2, app3)"
    assert read(down, facts()).value == 0.0
