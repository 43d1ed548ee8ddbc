"""HAProxy request log lines (LOG_FORMAT): parsing, counting each request into its second, and
the latency histogram as Prometheus buckets."""

from __future__ import annotations

import math

import pytest

from slipway.judge.histogram import bucket_of
from slipway.metrics.exposition import LATENCY_BUCKETS, histogram_buckets
from slipway.metrics.ingest import Aggregator, Request, Second, classify, parse
from slipway.router.config import LOG_FORMAT

LINE = "slipway app_hello r3-web-1 200 0 0 0 1 2 150 ---- 127.0.0.1 GET /items"


def line(
    status: int | str = 200,
    total: int | str = 12,
    termination: str = "----",
    backend: str = "app_hello",
    server: str = "r3-web-1",
    path: str = "/items",
) -> str:
    return (
        f"slipway {backend} {server} {status} 0 0 0 1 {total} 150 {termination} 10.0.0.7 GET {path}"
    )


def counted(*lines: str) -> Second:
    second = Second()
    for text in lines:
        request = parse(text)
        assert request is not None, text
        classify(request, second)
    return second


# -- parse -----------------------------------------------------------------------------


def test_log_format_has_the_fields_parse_reads() -> None:
    # parse() splits LOG_FORMAT positionally: a changed format must change parse too
    fields = LOG_FORMAT.split(" ")
    assert len(fields) == 14
    assert fields[0] == "slipway"
    assert (fields[1], fields[2], fields[3]) == ("%b", "%s", "%ST")
    assert (fields[8], fields[9], fields[10]) == ("%Ta", "%B", "%ts")
    assert (fields[11], fields[12], fields[13]) == ("%ci", "%HM", "%HP")


def test_parse_reads_every_field_of_a_line() -> None:
    assert parse(LINE) == Request(
        app="hello",
        release="r3",
        instance="r3-web-1",
        status=200,
        total_ms=2,
        termination="----",
        bytes_sent=150,
        client="127.0.0.1",
        method="GET",
        path="/items",
    )


def test_parse_handles_dashed_app_names_and_multi_digit_releases() -> None:
    request = parse(line(backend="app_shop-api", server="r12-worker_1-30"))
    assert request is not None
    assert (request.app, request.release, request.instance) == (
        "shop-api",
        "r12",
        "r12-worker_1-30",
    )


def test_parse_keeps_the_whole_path_and_drops_the_newline() -> None:
    request = parse(line(path="/search?q=a b&page=2") + "\n")
    assert request is not None
    assert request.path == "/search?q=a b&page=2"
    assert request.method == "GET"


def test_parse_accepts_failed_connections_with_negative_status_and_times() -> None:
    request = parse(line(status=-1, total=-1, termination="SC--"))
    assert request is not None
    assert (request.status, request.total_ms, request.termination) == (-1, -1, "SC--")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "hello world",
        LINE.replace("slipway ", "haproxy ", 1),  # not our log format
        LINE.replace("app_hello", "stats"),  # not an app backend
        line(server="<NOSRV>"),  # HAProxy answered itself
        line(server="web1"),  # not one of our instances
        line(server="x3-web-1"),
        line(status="abc"),
        line(total="-"),
        "slipway app_hello r3-web-1 200 0 0 0 1 2",  # truncated datagram
    ],
)
def test_parse_ignores_lines_that_are_not_requests_to_an_instance(text: str) -> None:
    assert parse(text) is None


# -- classify --------------------------------------------------------------------------


def test_successful_and_client_error_requests_count_latency_not_errors() -> None:
    second = counted(line(200, 12), line(201, 12), line(404, 3), line(301, 7))
    assert second.requests == 4
    assert second.errors == 0
    assert second.classes == {"2xx": 2, "4xx": 1, "3xx": 1}
    assert second.latency == {bucket_of(12): 2, bucket_of(3): 1, bucket_of(7): 1}
    assert sum(second.latency.values()) == 4


def test_server_errors_count_as_errors_without_latency() -> None:
    second = counted(line(500, 40), line(503, 1), line(200, 40))
    assert (second.requests, second.errors, second.conn_failures) == (3, 2, 0)
    assert second.classes == {"5xx": 2, "2xx": 1}
    # the latency histogram describes requests answered without a server error
    assert second.latency == {bucket_of(40): 1}


def test_failed_connections_are_errors_and_conn_failures() -> None:
    second = counted(line(503, 3000, "SC--"), line(-1, -1, "----"))
    assert (second.requests, second.errors, second.conn_failures) == (2, 2, 2)
    assert second.classes == {"conn": 2}
    assert second.latency == {}


def test_client_aborts_are_nobodys_fault() -> None:
    second = counted(line(200, 900, "CD--"), line(503, 900, "CH--"), line(-1, -1, "CC--"))
    assert (second.requests, second.client_aborts, second.errors) == (3, 3, 0)
    assert second.classes == {"abort": 3}
    assert second.latency == {}


def test_unknown_total_time_is_not_a_latency_sample() -> None:
    second = counted(line(200, -1))
    assert (second.requests, second.errors, second.classes) == (1, 0, {"2xx": 1})
    assert second.latency == {}


def test_seconds_add_up() -> None:
    a = counted(line(200, 10), line(500, 10))
    b = counted(line(200, 10), line(200, 20, "CD--"))
    a.add(b)
    assert (a.requests, a.errors, a.client_aborts) == (4, 1, 1)
    assert a.classes == {"2xx": 2, "5xx": 1, "abort": 1}
    assert a.latency == {bucket_of(10): 2}


# -- aggregation -----------------------------------------------------------------------


def test_aggregator_hands_over_only_complete_seconds_per_release() -> None:
    clock = [100.2]
    aggregator = Aggregator(clock=lambda: clock[0])
    aggregator.feed(line(200, server="r3-web-1"))
    aggregator.feed(line(500, server="r4-web-2"))
    aggregator.feed("garbage")
    clock[0] = 101.5
    aggregator.feed(line(200, server="r3-web-1"))
    assert (aggregator.lines, aggregator.ignored) == (4, 1)

    # second 100 ends at 101; with 1 s grace it is complete at 102
    assert aggregator.take_complete(now=101.9, grace=1.0) == []
    done = aggregator.take_complete(now=102.0, grace=1.0)
    assert sorted((app, rel, sec, s.requests, s.errors) for app, rel, sec, s in done) == [
        ("hello", "r3", 100, 1, 0),
        ("hello", "r4", 100, 1, 1),
    ]
    # handed over once only; second 101 follows when it is complete
    assert aggregator.take_complete(now=102.5, grace=1.0) == []
    [(_, _, sec, data)] = aggregator.take_complete(now=103.0, grace=1.0)
    assert (sec, data.requests) == (101, 1)


# -- to Prometheus buckets -------------------------------------------------------------


def test_prometheus_buckets_of_no_requests() -> None:
    buckets, total = histogram_buckets({})
    assert [le for le, _ in buckets] == [*(str(le) for le in LATENCY_BUCKETS), "+Inf"]
    assert all(count == 0.0 for _, count in buckets)
    assert total == 0.0


def test_prometheus_buckets_are_cumulative_counts_with_a_sum_in_seconds() -> None:
    second = counted(
        *(line(200, ms) for ms in (3, 3, 40, 90, 700, 1200, 30000)),
        line(500, 5),  # a server error has no latency sample
    )
    buckets, total = histogram_buckets(second.latency)
    counts = dict(buckets)
    assert counts["0.005"] == 2.0
    assert counts["0.05"] == 3.0
    assert counts["0.1"] == 4.0
    assert counts["1.0"] == 5.0
    assert counts["2.5"] == 6.0
    assert counts["10.0"] == 6.0
    assert counts["+Inf"] == 7.0
    values = [count for _, count in buckets]
    assert values == sorted(values)
    assert math.isclose(total, (3 + 3 + 40 + 90 + 700 + 1200 + 30000) / 1000, rel_tol=0.01)


@pytest.mark.parametrize("le", LATENCY_BUCKETS)
def test_a_request_exactly_at_a_bucket_edge_is_counted_in_it(le: float) -> None:
    edge_ms = round(le * 1000)
    at_edge = counted(line(200, edge_ms))
    assert dict(histogram_buckets(at_edge.latency)[0])[str(le)] == 1.0
    # the fine histogram is 1% wide: anything further above the edge is not in it
    above = counted(line(200, math.ceil(edge_ms * 1.01) + 1))
    assert dict(histogram_buckets(above.latency)[0])[str(le)] == 0.0
