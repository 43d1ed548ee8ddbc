"""Pure parts of the gates: the performance verdict, the [gates] config, result records."""

from __future__ import annotations

from typing import Any

import pytest

from slipway.config.gates import PerformanceGate
from slipway.config.load import parse_config
from slipway.errors import ConfigError
from slipway.gates.base import Finding, GateResult
from slipway.gates.performance import judge, quantile

MINIMAL = 'name = "app"\n[processes]\nweb = "python app.py --port $PORT"\n'


def side(latencies: list[float], statuses: dict[str, int] | None = None) -> dict[str, Any]:
    return {
        "latencies_ms": latencies,
        "statuses": statuses or {"200": len(latencies)},
        "errors": {},
        "sent": len(latencies),
    }


def measured(candidate: list[float], stable: list[float] | None, **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"seconds": 1.0, "rate": 2000.0, "cpu": 0.5}
    data["candidate"] = extra.get("candidate_side") or side(candidate)
    if stable is not None:
        data["stable"] = side(stable)
    return data


def ramp(base: float, n: int = 1000) -> list[float]:
    """n latencies from base to 2×base: p95 is 1.95×base."""
    return [base * (1 + i / n) for i in range(n)]


def test_quantile_is_an_observed_value_by_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert quantile(values, 0.95) == 95.0
    assert quantile(values, 0.5) == 50.0
    assert quantile([7.0], 0.99) == 7.0


def test_a_candidate_three_times_slower_fails_with_its_numbers() -> None:
    result = judge(PerformanceGate(), measured(ramp(30), ramp(10)))
    assert result.status == "failed"
    assert result.findings[0].where == "latency p95"
    assert "×3.00" in result.findings[0].what and "allowed +20%" in result.findings[0].what
    assert result.evidence["ratios"]["p95"] == pytest.approx(3.0, abs=0.01)


def test_within_the_tolerance_passes() -> None:
    result = judge(PerformanceGate(), measured(ramp(11.5), ramp(10)))
    assert result.status == "passed", result.summary
    assert "p95 22.4 ms vs 19.5 ms stable" in result.summary


def test_a_difference_below_the_noise_floor_never_fails() -> None:
    # +50% but only 1 ms: noise on a busy machine, not a regression
    spec = PerformanceGate(min_latency_increase=0.002)
    assert judge(spec, measured(ramp(1.5), ramp(1.0))).status == "passed"
    spec = PerformanceGate(min_latency_increase=0.0)
    assert judge(spec, measured(ramp(1.5), ramp(1.0))).status == "failed"


def test_each_watched_quantile_has_its_own_limit() -> None:
    stable = ramp(10)
    candidate = stable[:-20] + [200.0] * 20  # only the slowest 2% got slower
    assert judge(PerformanceGate(), measured(candidate, stable)).status == "passed"
    strict = PerformanceGate(max_p99_increase=0.5)
    result = judge(strict, measured(candidate, stable))
    assert result.status == "failed" and result.findings[0].where == "latency p99"


def test_errors_above_the_allowed_rate_fail_even_without_a_stable_release() -> None:
    statuses = {"200": 990, "500": 10}
    candidate = side(ramp(10), statuses)
    result = judge(PerformanceGate(), measured([], None, candidate_side=candidate))
    assert result.status == "failed"
    assert "1.00% of 1000 requests failed" in result.findings[0].what
    assert result.evidence["stable"] is None


def test_without_a_stable_release_latency_is_recorded_not_compared() -> None:
    result = judge(PerformanceGate(), measured(ramp(50), None))
    assert result.status == "passed"
    assert "no stable release to compare with" in result.summary


def test_no_answer_counts_as_an_error() -> None:
    candidate = side(ramp(10, 998))
    candidate["errors"] = {"ConnectionResetError": 2}
    candidate["latencies_ms"] += [1.0, 1.0]
    spec = PerformanceGate(max_error_rate=0.001)
    result = judge(spec, measured([], ramp(10), candidate_side=candidate))
    assert result.status == "failed"
    assert result.evidence["candidate"]["errors"] == 2


def test_gate_results_round_trip_through_their_stored_form() -> None:
    result = GateResult("failed", "1 finding", [Finding("a.py:3", "AWS Access Key")], {"n": 1})
    assert GateResult.from_dict(result.to_dict()) == result


# config ----------------------------------------------------------------------------------


def gates_of(text: str) -> Any:
    return parse_config(MINIMAL + text).gates


def config_error(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_config(MINIMAL + text)
    return info.value


def test_scans_are_on_by_default_and_the_performance_gate_is_not() -> None:
    gates = gates_of("")
    assert gates.names() == ["secrets", "code", "dependencies"]
    assert gates.performance is None
    assert gates.dependencies.on_unavailable == "fail", "fails closed unless told otherwise"


def test_gates_run_cheap_ones_first() -> None:
    text = '[[gates.test]]\nname = "integration"\ncommand = "pytest"\n[gates.performance]\n'
    assert gates_of(text).names() == [
        "secrets",
        "code",
        "dependencies",
        "integration",
        "performance",
    ]


def test_test_gates_need_unique_names_that_are_not_built_in() -> None:
    twice = '[[gates.test]]\nname = "a"\ncommand = "x"\n[[gates.test]]\nname = "a"\ncommand = "y"\n'
    assert "given twice: a" in config_error(twice).message
    built_in = '[[gates.test]]\nname = "secrets"\ncommand = "x"\n'
    error = config_error(built_in)
    assert "built-in gate" in error.message
    assert error.where is not None and "gates.test.0.name" in error.where


def test_bad_gate_settings_name_the_key_and_the_line() -> None:
    error = config_error('[gates.performance]\npaths = ["api"]\n')
    assert error.where == "slipway.toml:5: gates.performance.paths"
    assert 'must be a URL path starting with "/"' in error.message
    error = config_error('[gates.dependencies]\ndatabase = "/x"\nurl = "https://osv.example"\n')
    assert "either database" in error.message
    error = config_error('[gates.code]\nseverity = "severe"\n')
    assert "gates.code.severity" in (error.where or "")
    error = config_error("[gates.performance]\nrequestz = 10\n")
    assert "unknown key 'requestz'" in error.message
    assert error.fix is not None and "concurrency" in error.fix
