"""The daemon's `/metrics` in the Prometheus text format: per app, release and process type.

Built at scrape time from the daemon's own state (a custom collector), so a series never
outlives the instance or release it describes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import psutil
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from slipway.hosts.model import LOCAL
from slipway.judge.histogram import lower_edge, upper_edge
from slipway.metrics.ingest import Second
from slipway.store import traffic
from slipway.store.alerts import firing_alerts

if TYPE_CHECKING:
    from slipway.daemon.service import Service

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def histogram_buckets(latency: dict[int, int]) -> tuple[list[tuple[str, float]], float]:
    """Cumulative Prometheus buckets (le in seconds) and the sum, from a fine histogram of
    whole milliseconds (a value k lands in a bucket whose lower edge is ≤ k)."""
    ordered = sorted(latency.items())
    out: list[tuple[str, float]] = []
    seen, index = 0, 0
    for le in LATENCY_BUCKETS:
        while index < len(ordered) and lower_edge(ordered[index][0]) <= le * 1000:
            seen += ordered[index][1]
            index += 1
        out.append((str(le), float(seen)))
    out.append(("+Inf", float(sum(latency.values()))))
    total = sum((lower_edge(b) + upper_edge(b)) / 2 * n for b, n in ordered) / 1000
    return out, total


def resident_memory(pid: int | None) -> int | None:
    """Resident memory of a local instance's process and its children."""
    if not pid:
        return None
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return None
    rss = 0
    for proc in procs:
        try:
            rss += proc.memory_info().rss
        except psutil.Error:
            continue
    return rss


class SlipwayCollector(Collector):
    def __init__(self, service: Service) -> None:
        self.service = service

    def collect(self) -> Iterator[Metric]:
        yield from self.traffic()
        yield from self.instances()
        yield from self.autoscaling()
        yield from self.control_plane()

    def traffic(self) -> Iterator[Metric]:
        labels = ["app", "release", "process"]
        requests = CounterMetricFamily(
            "slipway_requests",
            "Requests HAProxy answered, by status class (conn: no answer from the instance; "
            "abort: the client went away)",
            labels=[*labels, "code"],
        )
        latency = HistogramMetricFamily(
            "slipway_request_duration_seconds",
            "Total time of requests answered without a server error (HAProxy %Ta)",
            labels=labels,
        )
        totals: dict[tuple[str, str], Second] = self.service.hub.totals
        for (app, release), data in sorted(totals.items()):
            for code, count in sorted(data.classes.items()):
                requests.add_metric([app, release, "web", code], count)
            buckets, total = histogram_buckets(data.latency)
            latency.add_metric([app, release, "web"], buckets, total)
        lost = CounterMetricFamily(
            "slipway_ingest_lost_lines", "Request log lines lost before the daemon counted them"
        )
        lost.add_metric([], self.service.hub.lost_total)
        yield from (requests, latency, lost)

    def instances(self) -> Iterator[Metric]:
        labels = ["app", "release", "process", "instance"]
        up = GaugeMetricFamily(
            "slipway_instance_up", "1 while the instance's process runs", labels=labels
        )
        restarts = CounterMetricFamily(
            "slipway_instance_restarts", "Crash restarts by the supervisor", labels=labels
        )
        cpu = CounterMetricFamily(
            "slipway_instance_cpu_seconds", "CPU time of the instance's processes", labels=labels
        )
        memory = GaugeMetricFamily(
            "slipway_instance_memory_bytes",
            "Resident memory of the instance's processes",
            labels=labels,
        )
        store, runtime = self.service.store, self.service.runtime
        for instance in store.instances():
            observed = runtime.cached(instance)  # housekeeping observes every second
            values = [instance.app, instance.release, instance.process, instance.id]
            up.add_metric(values, 1.0 if observed.state == "running" else 0.0)
            restarts.add_metric(values, observed.restarts)
            if observed.cpu_seconds is not None:  # read by the instance's own host
                cpu.add_metric(values, observed.cpu_seconds)
            # a pid is only meaningful on its own host: another host's would name some
            # unrelated process of this one
            local = instance.host == LOCAL and observed.state == "running"
            rss = resident_memory(observed.child_pid) if local else None
            if rss is not None:
                memory.add_metric(values, rss)
        yield from (up, restarts, cpu, memory)

    def autoscaling(self) -> Iterator[Metric]:
        labels = ["app", "process"]
        desired = GaugeMetricFamily(
            "slipway_autoscale_desired_instances",
            "Instances the autoscaler's latest decision wants",
            labels=labels,
        )
        current = GaugeMetricFamily(
            "slipway_autoscale_current_instances",
            "Instances the autoscaled process type has now (its formation)",
            labels=labels,
        )
        for app in self.service.store.apps():
            for view in self.service.autoscaler.view(app.name):
                values = [app.name, view["process"]]
                current.add_metric(values, view["current"])
                if view["last"] is not None:
                    desired.add_metric(values, view["last"]["desired"])
        yield from (desired, current)

    def control_plane(self) -> Iterator[Metric]:
        store = self.service.store
        current = GaugeMetricFamily(
            "slipway_app_release_info", "The release serving each app", labels=["app", "release"]
        )
        for record in store.apps():
            if record.current_release:
                current.add_metric([record.name, record.current_release], 1.0)
        deployments = CounterMetricFamily(
            "slipway_deployments",
            "Finished deployments by kind and outcome",
            labels=["app", "kind", "outcome"],
        )
        for d in store.finished_deployment_counts():
            deployments.add_metric([d.app, d.kind, d.outcome or "unknown"], d.count)
        verdicts = CounterMetricFamily(
            "slipway_judge_verdicts",
            "Canary judge verdicts by decision",
            labels=["app", "decision"],
        )
        for v in traffic.verdict_counts(store):
            verdicts.add_metric([v.app, v.decision], v.count)
        alerts = GaugeMetricFamily(
            "slipway_alert_firing",
            "1 while an alert rule fires",
            labels=["app", "alert", "severity"],
        )
        for alert in firing_alerts(store):
            alerts.add_metric([alert.app, alert.rule, alert.severity], 1.0)
        yield from (current, deployments, verdicts, alerts)


def registry(service: Service) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SlipwayCollector(service))
    return registry
