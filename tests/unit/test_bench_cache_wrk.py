"""bench/cache reads wrk's report: throughput, percentiles in any unit, and every error."""

from __future__ import annotations

import pytest
from bench.cache.wrk import parse

REPORT = """\
Running 5s test @ http://127.0.0.1:40123/edge/public
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   300.50us  120.10us   3.10ms   91.20%
    Req/Sec    58.10k     2.00k   61.00k    72.00%
  Latency Distribution
     50%  250.00us
     75%  310.00us
     90%  420.00us
     99%    2.50ms
  290500 requests in 5.00s, 580.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:  58100.00
Transfer/sec:    116.00MB
"""


def test_a_wrk_report_is_read_with_its_units_and_errors() -> None:
    run = parse(REPORT)
    assert (run.requests, run.seconds, run.rps) == (290500, 5.0, 58100.0)
    assert run.p50_ms == pytest.approx(0.25) and run.p99_ms == pytest.approx(2.5)
    assert run.errors == 7


def test_a_report_without_percentiles_is_refused() -> None:
    with pytest.raises(ValueError, match="99%"):
        parse(REPORT.replace("     99%    2.50ms\n", ""))
