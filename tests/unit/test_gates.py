"""Pure parts of the gates: the performance verdict, the [gates] config, result records."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import pytest

from slipway.config.gates import PerformanceGate
from slipway.config.load import parse_config
from slipway.errors import ConfigError
from slipway.gates import performance
from slipway.gates.base import Finding, GateContext, GateResult, Targets
from slipway.gates.performance import Measurement, PerformanceCheck, judge, result_of

MINIMAL = 'name = "app"\n[processes]\nweb = "python app.py --port $PORT"\n'


def batch(candidate: list[float], stable: list[float] | None, failed: int = 0) -> dict[str, Any]:
    """A line of loadrun's output: pairs; the first `failed` candidate answers are 500."""
    none: list[float | int | None] = [None, None]
    rows = [
        [c, 500 if i < failed else 200, *(none if stable is None else [stable[i], 200])]
        for i, c in enumerate(candidate)
    ]
    return {"pairs": rows, "no_answer": {}}


def measured(candidate: list[float], stable: list[float] | None, failed: int = 0) -> Measurement:
    data = Measurement(compare=stable is not None)
    data.add_batch(batch(candidate, stable, failed))
    data.runs.append({"done": True, "seconds": 1.0, "rate": 2000.0, "cpu": 0.5})
    return data


def jitter(base: float, n: int, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [base * rng.lognormvariate(0, 0.2) for _ in range(n)]


def result(spec: PerformanceGate, data: Measurement, exhausted: bool = True) -> GateResult:
    return result_of(spec, data, judge(spec, data, spec.requests, exhausted), attempts=1)


def test_a_slower_candidate_fails_with_the_numbers_behind_it() -> None:
    spec = PerformanceGate()
    failed = result(spec, measured(jitter(30, 1000, 1), jitter(10, 1000, 2)), exhausted=False)
    assert failed.status == "failed"
    assert failed.findings[0].where == "latency p95"
    assert "slower than allowed" in failed.summary or "×" in failed.summary
    assert "e-value" in failed.summary and "against" in failed.summary
    evidence = failed.evidence
    assert evidence["decision"] == "fail"
    check = evidence["checks"][0]
    assert check["metric"] == "latency p95" and check["verdict"] == "slower"
    assert check["slower_blocks"] == check["blocks"] >= 11
    assert 2.5 < check["block_ratio_median"] < 3.5
    assert check["e_slower"] >= check["fail_at"]
    assert evidence["ratios"]["p95"] == pytest.approx(3.0, rel=0.15)
    assert evidence["candidate"]["requests"] == evidence["stable"]["requests"] == 1000


def test_an_identical_release_passes_with_its_evidence() -> None:
    spec = PerformanceGate()
    passed = result(spec, measured(jitter(10, 1000, 3), jitter(10, 1000, 4)), exhausted=False)
    assert passed.status == "passed", passed.summary
    assert "within the allowed; 1000 pairs" in passed.summary
    check = passed.evidence["checks"][0]
    assert check["verdict"] == "within" and check["e_within"] >= check["pass_at"]
    low, high = check["block_ratio_bounds"]
    assert low <= 1.0 <= high
    assert passed.evidence["checks"][1]["metric"] == "error rate"


def inconclusive_data() -> Measurement:
    """×1.2: exactly what is allowed, so neither side can be shown."""
    return measured(jitter(12, 1000, 5), jitter(10, 1000, 6))


@pytest.mark.parametrize(
    ("policy", "status"), [("fail", "failed"), ("warn", "passed"), ("retry", "failed")]
)
def test_an_inconclusive_test_is_never_a_silent_pass(policy: str, status: str) -> None:
    spec = PerformanceGate(on_inconclusive=policy)  # type: ignore[arg-type]
    data = inconclusive_data()
    judged = judge(spec, data, 1000, exhausted=True)
    assert judged.decision == "inconclusive"
    outcome = result_of(spec, data, judged, attempts=2 if policy == "retry" else 1)
    assert outcome.status == status
    assert outcome.evidence["decision"] == "inconclusive"
    assert "inconclusive after 1000 pairs" in outcome.summary
    if policy == "warn":
        assert outcome.summary.startswith("WARNING")
        assert "on_inconclusive" in outcome.evidence["warning"]
    else:
        assert outcome.findings[0].where == "latency p95"
        assert "raise [gates.performance] requests" in outcome.evidence["fix"]
    if policy == "retry":
        assert "after measuring once more" in outcome.summary


def test_retry_measures_once_more_and_goes_on_with_the_same_test(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The first budget ends undecided; the second continues the same e-processes (they
    are valid under optional continuation) and decides."""
    spec = PerformanceGate(requests=500, on_inconclusive="retry")
    calls: list[int] = []

    async def fake_measure(
        spec: PerformanceGate, targets: Targets, data: Measurement, attempt: int, progress: Any
    ) -> Any:
        calls.append(attempt)
        n = 200 if attempt == 1 else 800  # too few to decide, then the rest of the budget
        data.add_batch(batch(jitter(10, n, attempt), jitter(10, n, 10 + attempt)))
        return judge(spec, data, spec.requests * attempt, exhausted=True)

    monkeypatch.setattr(performance, "measure", fake_measure)
    monkeypatch.setattr(performance, "RETRY_AFTER", 0.0)
    ctx = GateContext(
        "app",
        "r2",
        tmp_path,
        {},
        tmp_path / "log",
        lambda line: None,
        Targets(["127.0.0.1:1"], ["127.0.0.1:2"]),
    )
    outcome = asyncio.run(PerformanceCheck(spec).run(ctx))
    assert calls == [1, 2]
    assert outcome.status == "passed", outcome.summary
    assert outcome.evidence["pairs"] == 1000 and outcome.evidence["attempts"] == 2
    assert "in 2 measurements" in outcome.summary


def test_errors_above_the_allowed_rate_fail_even_without_a_stable_release() -> None:
    outcome = result(PerformanceGate(), measured(jitter(10, 1000, 7), None, failed=30))
    assert outcome.status == "failed"
    assert outcome.findings[0].where == "error rate"
    assert "3.00% (30 of 1000) above the allowed 0.10%" in outcome.summary
    assert outcome.evidence["stable"] is None


def test_without_a_stable_release_latency_is_recorded_not_compared() -> None:
    outcome = result(PerformanceGate(), measured(jitter(50, 1000, 8), None))
    assert outcome.status == "passed"
    assert "no stable release to compare with" in outcome.summary
    assert outcome.evidence["checks"][0]["metric"] == "error rate"


def test_no_answer_counts_as_an_error() -> None:
    data = measured(jitter(10, 1000, 9), jitter(10, 1000, 10))
    data.add_batch(
        {
            "pairs": [[None, 0, 5.0, 200]] * 40,
            "no_answer": {"candidate": {"ConnectionResetError": 40}},
        }
    )
    outcome = result(PerformanceGate(), data)
    assert outcome.status == "failed"
    assert outcome.evidence["candidate"]["errors"] == 40
    assert outcome.evidence["candidate"]["no_answer"] == {"ConnectionResetError": 40}


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


def test_bad_performance_settings_name_the_key_path() -> None:
    error = config_error('[gates.performance]\non_inconclusive = "pass"\n')
    assert error.where == "slipway.toml:5: gates.performance.on_inconclusive"
    assert "'fail', 'warn' or 'retry'" in error.message
    error = config_error("[gates.performance]\nalpha = 0.5\n")
    assert error.where == "slipway.toml:5: gates.performance.alpha"
    error = config_error("[gates.performance]\nrequests = 400\n")
    assert error.where == "slipway.toml:5: gates.performance.requests"
    assert "400 requests can never decide on p95 at alpha 0.01: at least 440" in error.message
    error = config_error("[gates.performance]\nmax_p99_increase = 0.5\n")
    assert error.where is not None and error.where.endswith("gates.performance.requests")
    assert "on p99" in error.message and "remove max_p99_increase" in error.message
    assert gates_of("[gates.performance]\nmax_p99_increase = 0.5\nrequests = 3000\n").performance


def test_the_performance_gate_defaults() -> None:
    spec = gates_of("[gates.performance]\n").performance
    assert spec.on_inconclusive == "retry" and spec.alpha == 0.01
    assert spec.watched() == {"p95": 0.2}
    assert (spec.requests, spec.warmup, spec.min_latency_increase) == (2000, 300, 0.002)
