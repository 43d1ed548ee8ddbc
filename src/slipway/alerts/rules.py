"""Alert rules: a metric's value from what the daemon knows, and the state machine of an alert
(ok → pending → firing → resolved). Pure: no I/O."""

from __future__ import annotations

from dataclasses import dataclass

from slipway.config.alerts import AlertRule
from slipway.judge.histogram import quantiles_ms
from slipway.metrics.ingest import Second

MIN_REQUESTS = 20  # an error rate or a quantile of fewer requests says nothing


@dataclass(frozen=True)
class Facts:
    """What an app's rules are judged on, gathered by the daemon."""

    traffic: dict[str, Second]  # per release, over the rule's window
    window: float
    instances_down: int
    restarts: int  # crash restarts within the window
    disk_free: float  # fraction
    log_lines_dropped: int = 0  # output lines the supervisors could not write, in the window
    hosts_down: tuple[str, ...] = ()  # hosts down that the app runs on or is routed through
    replica_behind: float | None = None  # the control plane's replica; None: not replicated
    fleet_full: str | None = None  # why the app's last deployment found no room, if it did
    databases_failing: tuple[str, ...] = ()  # its databases whose last backup/verify failed


@dataclass(frozen=True)
class Reading:
    value: float | None  # None: not enough data to say
    release: str | None  # the release most to blame, when one is
    text: str  # the value for people, e.g. "7.2% of 1,204 requests"


def read(rule: AlertRule, facts: Facts) -> Reading:
    if rule.metric in ("error_rate", "latency", "request_rate"):
        return _traffic(rule, facts)
    if rule.metric == "instances_down":
        return Reading(float(facts.instances_down), None, f"{facts.instances_down} down")
    if rule.metric == "hosts_down":
        names = facts.hosts_down
        text = f"host {names[0]} down" if len(names) == 1 else f"{len(names)} hosts down"
        if len(names) > 1:
            text += f" ({', '.join(names[:5])}{', …' if len(names) > 5 else ''})"
        return Reading(float(len(names)), None, text)
    if rule.metric == "restarts":
        return Reading(float(facts.restarts), None, f"{facts.restarts} restarts")
    if rule.metric == "log_lines_dropped":
        dropped = facts.log_lines_dropped
        return Reading(float(dropped), None, f"{dropped} output lines dropped (log not writable)")
    if rule.metric == "fleet_full":
        if facts.fleet_full is None:
            return Reading(0.0, None, "every instance found a host with room")
        return Reading(1.0, None, facts.fleet_full)
    if rule.metric == "control_replica_behind":
        behind = facts.replica_behind
        if behind is None:  # nothing to be behind: an alert that fired resolves
            return Reading(0.0, None, "the control plane is not replicated")
        return Reading(behind, None, f"the control plane's replica is {behind:.0f}s behind")
    if rule.metric == "databases_failing":
        names = facts.databases_failing
        what = "backup or verification failed or late"
        text = f"database {', '.join(names)}: {what}" if names else "ok"
        return Reading(float(len(names)), None, text)
    return Reading(facts.disk_free, None, f"{facts.disk_free:.1%} free")


def _traffic(rule: AlertRule, facts: Facts) -> Reading:
    total = Second()
    for data in facts.traffic.values():
        total.add(data)
    judged = total.requests - total.client_aborts
    if rule.metric == "request_rate":
        rate = total.requests / facts.window
        return Reading(rate, None, f"{rate:.1f} req/s")
    if judged < MIN_REQUESTS:
        return Reading(None, None, f"only {judged} requests")
    if rule.metric == "error_rate":
        rate = total.errors / judged
        failing = [r for r in facts.traffic if facts.traffic[r].errors]
        worst = max(failing, key=lambda r: facts.traffic[r].errors, default=None)
        return Reading(rate, worst, f"{rate:.2%} of {judged:,} requests")
    quantile = quantiles_ms(total.latency, (rule.quantile,))[0]
    if quantile is None:
        return Reading(None, None, "no successful requests")
    slowest = max(
        (r for r in facts.traffic if facts.traffic[r].latency),
        key=lambda r: quantiles_ms(facts.traffic[r].latency, (rule.quantile,))[0] or 0.0,
        default=None,
    )
    return Reading(quantile, slowest, f"p{rule.quantile * 100:g} {quantile:.0f} ms")


@dataclass(frozen=True)
class State:
    state: str  # ok | pending | firing
    since: float


def step(rule: AlertRule, current: State, reading: Reading, now: float) -> State:
    """The next state; unknown values (no data) never start or keep a pending alert, and
    leave a firing one firing (no data is not evidence it recovered)."""
    breached = reading.value is not None and rule.breached(reading.value)
    if current.state == "firing":
        if breached or reading.value is None:
            return current
        return State("ok", now)
    if not breached:
        return current if current.state == "ok" else State("ok", now)
    if current.state == "ok":
        current = State("pending", now)
    if now - current.since >= rule.for_:
        return State("firing", now)
    return current


def summary(rule: AlertRule, reading: Reading) -> str:
    relation = ">" if rule.above is not None else "<"
    where = f" (release {reading.release})" if reading.release else ""
    instant = (
        "instances_down",
        "hosts_down",
        "disk_free",
        "control_replica_behind",
        "fleet_full",
        "databases_failing",
    )
    window = "" if rule.metric in instant else f" over {_span(rule.window)}"
    return f"{reading.text}, alert {relation} {threshold_text(rule)}{window}{where}"


def threshold_text(rule: AlertRule) -> str:
    value = rule.threshold
    if rule.metric in ("error_rate", "disk_free"):
        return f"{value:.2%}".replace(".00%", "%")
    if rule.metric == "latency":
        return f"{value:g} ms"
    if rule.metric == "request_rate":
        return f"{value:g} req/s"
    return f"{value:g}"


def _span(seconds: float) -> str:
    if seconds % 3600 == 0:
        return f"{seconds / 3600:g}h"
    if seconds % 60 == 0:
        return f"{seconds / 60:g}m"
    return f"{seconds:g}s"
