"""The daemon's alerting: evaluates each app's rules every few seconds, keeps their states and
history in SQLite, and delivers notifications from a persistent outbox with backoff, so a
notifier that is down delays an alert but never loses it (and never blocks a deploy)."""

from __future__ import annotations

import asyncio
import itertools
import logging
import shutil
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import httpx

from slipway.alerts import rules
from slipway.alerts.notify import DeliveryError, Notice, deliver, safe_label, wants
from slipway.config.alerts import AlertRule, Notifier, effective_rules
from slipway.config.schema import AppConfig
from slipway.deploy.capacity import FleetFull
from slipway.metrics import history
from slipway.paths import Home
from slipway.runtime.base import Observed
from slipway.store import alerts
from slipway.store.records import Deployment, Instance
from slipway.store.store import Store

log = logging.getLogger("slipway.alerts")
EVALUATE_EVERY = 5.0
DELIVER_EVERY = 1.0
BACKOFF_MAX = 60.0
GIVE_UP_AFTER = 86400.0  # an undeliverable notice is marked failed after a day of retries
ALERTMANAGER_REFRESH = 60.0  # Alertmanager forgets alerts not re-sent (their endsAt passes)
MAX_ROUNDS = 10  # notices queued behind a delivered one go out in the same pass
DOWN_STATES = {"backoff", "blocked", "crashloop", "gone", "stopped"}

Observe = Callable[[Instance], Observed]
HostsDown = Callable[[AppConfig], list[str]]  # the hosts down that an app runs on or through


class Alerting:
    def __init__(
        self, home: Home, store: Store, observe: Observe, hosts_down: HostsDown | None = None
    ) -> None:
        self.home = home
        self.store = store
        self.observe = observe
        self.hosts_down = hosts_down or (lambda config: [])
        self.dashboard_url: str | None = None
        # the control plane's replica, seconds behind (None: not replicated); set by the daemon
        self.replica_behind: Callable[[], float | None] = lambda: None
        # what an app's autoscaling wants that the fleet has no room for (daemon/autoscaler.py)
        self.autoscale_short: Callable[[str], str | None] = lambda app: None
        # an app's databases whose newest backup or verification failed; set by the daemon
        self.databases_failing: Callable[[str], tuple[str, ...]] = lambda app: ()
        # (app, counter) -> (time, total over its instances): increases per window
        self.samples: dict[tuple[str, str], deque[tuple[float, int]]] = {}
        self._refreshed: dict[tuple[str, str], float] = {}

    # evaluation -----------------------------------------------------------------------

    def evaluate(self, now: float | None = None) -> None:
        moment = now if now is not None else time.time()
        self.sample_counters(moment)
        configs: dict[str, AppConfig] = {}
        configured: set[tuple[str, str]] = set()
        free = disk_free(self.home)
        behind = self.replica_behind()
        for app in self.store.apps():
            if app.current_release is None:
                continue
            config = configs[app.name] = self.store.release(app.name, app.current_release).config
            # what does not depend on a rule's window is read once per app, not per rule
            down = self.instances_down(app.name)
            hosts_down = tuple(self.hosts_down(config))
            full = fleet_full(self.store.deployments(app.name, limit=1))
            full = full or self.autoscale_short(app.name)
            databases_failing = self.databases_failing(app.name)
            for rule in effective_rules(config.alerts, config.alerting):
                configured.add((app.name, rule.name))
                facts = rules.Facts(
                    traffic=history.window(self.store, app.name, rule.window, moment),
                    window=rule.window,
                    instances_down=down,
                    restarts=self.increase_in(app.name, "restarts", rule.window, moment),
                    log_lines_dropped=self.increase_in(
                        app.name, "log_lines_dropped", rule.window, moment
                    ),
                    disk_free=free,
                    hosts_down=hosts_down,
                    replica_behind=behind,
                    fleet_full=full,
                    databases_failing=databases_failing,
                )
                self.evaluate_rule(app.name, config, rule, facts, moment)
        for app_name, rule_name in alerts.alerted_rules(self.store):
            if (app_name, rule_name) not in configured:
                notifiers = configs[app_name].alerting.notify if app_name in configs else []
                self.resolve_removed(app_name, rule_name, notifiers, moment)

    def evaluate_rule(
        self, app: str, config: AppConfig, rule: AlertRule, facts: rules.Facts, now: float
    ) -> None:
        reading = rules.read(rule, facts)
        text = rules.summary(rule, reading)
        row = alerts.alert(self.store, app, rule.name)
        current = rules.State(row.state, row.since) if row else rules.State("ok", now)
        new = rules.step(rule, current, reading, now)
        if row is not None and new.state == current.state:
            # the latest reading, for `slipway alerts`
            alerts.update_reading(
                self.store,
                app,
                rule.name,
                value=reading.value,
                summary=text,
                severity=rule.severity,
            )
            if new.state == "firing":
                self.refresh_alertmanager(app, config, rule, reading, row.release, new.since, now)
            return
        record = alerts.AlertRecord(
            app,
            rule.name,
            rule.severity,
            new.state,
            new.since,
            reading.value,
            text,
            reading.release,
        )
        alerts.put_alert(self.store, record)
        if row is None and new.state == "ok":
            return
        event = new.state
        if current.state == "firing":
            event = "resolved"
        elif current.state == "pending" and new.state == "ok":
            event = "cleared"
        self.record_event(app, rule.name, rule.severity, event, now, reading.value, text)
        if event in ("firing", "resolved"):
            log.warning("alert %s on %s: %s", event, app, text)
            notice = Notice(
                app=app,
                rule=rule.name,
                severity=rule.severity,
                state=event,
                metric=rule.metric,
                value=reading.value,
                threshold=rule.threshold,
                summary=text,
                started_at=new.since if event == "firing" else current.since,
                resolved_at=now if event == "resolved" else None,
                # the release the alert fired with: Alertmanager identifies alerts by labels
                release=row.release if event == "resolved" and row else reading.release,
                dashboard_url=self.app_url(app),
            )
            self.enqueue(config.alerting.notify, notice, now)

    def resolve_removed(self, app: str, rule: str, notifiers: list[Notifier], now: float) -> None:
        """A rule no longer in the app's config: its alert ends, and whoever was told it fired
        is told it resolved."""
        row = alerts.alert(self.store, app, rule)
        alerts.delete_alert(self.store, app, rule)
        if row is None or row.state != "firing":
            return
        text = f"{rule}: the rule was removed from the app's config"
        self.record_event(app, rule, row.severity, "resolved", now, None, text)
        notice = Notice(app, rule, row.severity, "resolved", "removed", None, 0.0, text, row.since,
                        now, row.release, self.app_url(app))  # fmt: skip
        self.enqueue(notifiers, notice, now)

    def record_event(
        self,
        app: str,
        rule: str,
        severity: str,
        state: str,
        at: float,
        value: float | None,
        summary: str,
    ) -> None:
        alerts.add_alert_event(self.store, app, rule, severity, state, at, value, summary)

    def instances_down(self, app: str) -> int:
        live = [i for i in self.store.instances(app) if i.status not in ("stopping", "stopped")]
        return sum(1 for i in live if self.observe(i).state in DOWN_STATES)

    def sample_counters(self, now: float) -> None:
        """Remember each app's total crash restarts and dropped log lines over time, to count
        their increase per window."""
        totals: dict[tuple[str, str], int] = {}
        for instance in self.store.instances():
            observed = self.observe(instance)
            for counter, value in (
                ("restarts", observed.restarts),
                ("log_lines_dropped", observed.log_dropped),
            ):
                key = (instance.app, counter)
                totals[key] = totals.get(key, 0) + value
        for key, total in totals.items():
            self.samples.setdefault(key, deque(maxlen=4000)).append((now, total))

    def increase_in(self, app: str, counter: str, window: float, now: float) -> int:
        """Only increases count: instances that go away take their counts out of the total."""
        samples = self.samples.get((app, counter), ())
        recent = [total for at, total in samples if at >= now - window]
        return sum(max(0, b - a) for a, b in itertools.pairwise(recent))

    def app_url(self, app: str) -> str | None:
        return f"{self.dashboard_url}apps/{app}" if self.dashboard_url else None

    # notifications --------------------------------------------------------------------

    def enqueue(self, notifiers: list[Notifier], notice: Notice, now: float) -> None:
        wanted = [n for n in notifiers if wants(n, notice)]
        alerts.add_notifications(self.store, wanted, notice, now)

    async def deliver_due(self, client: httpx.AsyncClient, now: float | None = None) -> int:
        """Try every notification that is due, in order per notifier and alert: a resolved
        notice never overtakes its firing one. Returns how many were sent."""
        moment = now if now is not None else time.time()
        sent = 0
        for _ in range(MAX_ROUNDS):
            delivered = await self._deliver_heads(client, moment)
            sent += delivered
            if not delivered:
                break
        return sent

    async def _deliver_heads(self, client: httpx.AsyncClient, moment: float) -> int:
        """The oldest pending notification of each (alert, notifier), when due."""
        sent = 0
        for head in alerts.due_notifications(self.store, moment):
            row_id, attempts, created = head.id, head.attempts, head.created_at
            notifier, notice = head.notifier(), head.notice()
            try:
                await deliver(notifier, notice, client)
            except Exception as exc:  # whatever fails, the notice is kept
                reason = exc.message if isinstance(exc, DeliveryError) else repr(exc)[:300]
                attempts += 1
                state = "failed" if moment - created > GIVE_UP_AFTER else "pending"
                delay = min(BACKOFF_MAX, 2.0**attempts)
                log.warning("notification %d failed (try %d): %s", row_id, attempts, reason)
                self._update(row_id, state, attempts, moment + delay, reason, None)
                continue
            sent += 1
            self._update(row_id, "sent", attempts + 1, moment, None, time.time())
            if notifier.type == "alertmanager" and notice.state == "firing":
                self._refreshed[(notice.app, notice.rule)] = moment
        return sent

    def _update(
        self,
        row_id: int,
        state: str,
        attempts: int,
        next_try: float,
        error: str | None,
        sent_at: float | None,
    ) -> None:
        alerts.record_attempt(
            self.store,
            row_id,
            state=state,
            attempts=attempts,
            next_try=next_try,
            error=error,
            sent_at=sent_at,
        )

    def refresh_alertmanager(
        self,
        app: str,
        config: AppConfig,
        rule: AlertRule,
        reading: rules.Reading,
        release: str | None,
        since: float,
        now: float,
    ) -> None:
        """Re-send a firing alert to Alertmanager now and then, as Prometheus does."""
        targets = [n for n in config.alerting.notify if n.type == "alertmanager"]
        key = (app, rule.name)
        if not targets or now - self._refreshed.get(key, now) < ALERTMANAGER_REFRESH:
            self._refreshed.setdefault(key, now)
            return
        self._refreshed[key] = now
        # a notice still waiting to reach a target will tell it the alert fires
        targets = alerts.without_pending(self.store, app, rule.name, targets)
        notice = Notice(
            app,
            rule.name,
            rule.severity,
            "firing",
            rule.metric,
            reading.value,
            rule.threshold,
            rules.summary(rule, reading),
            since,
            release=release,
            dashboard_url=self.app_url(app),
        )
        self.enqueue(targets, notice, now)

    # views ----------------------------------------------------------------------------

    def view(self, app: str | None, limit: int = 200) -> dict[str, Any]:
        states = [asdict(a) for a in alerts.alerts(self.store, app)]
        events = [asdict(e) for e in alerts.alert_events(self.store, app, limit)]
        notifications = [
            {
                "app": n.app,
                "rule": n.rule,
                "notifier": safe_label(n.notifier),
                "type": n.notifier.type,
                "event": n.event,
                "state": n.state,
                "attempts": n.attempts,
                "last_error": n.last_error,
                "created_at": n.created_at,
                "sent_at": n.sent_at,
            }
            for n in alerts.notifications(self.store, app, limit)
        ]
        return {"alerts": states, "events": events, "notifications": notifications}

    # the loop -------------------------------------------------------------------------

    async def run(self) -> None:
        last_evaluation = 0.0
        async with httpx.AsyncClient() as client:
            while True:
                await asyncio.sleep(DELIVER_EVERY)
                try:
                    if time.time() - last_evaluation >= EVALUATE_EVERY:
                        last_evaluation = time.time()
                        self.evaluate()
                    await self.deliver_due(client)
                except Exception:
                    log.exception("alerting failed")


def fleet_full(latest: list[Deployment]) -> str | None:
    """Why the app's latest deployment found no room, if it failed for that: until one of
    its deployments succeeds (a host added, room freed), the fleet is short for it."""
    if latest and latest[0].kind == "warm":  # no room to start the warm release again: no alarm
        return None
    error = latest[0].error if latest and latest[0].outcome == "failed" else None
    if error and error.get("kind") == FleetFull.kind:
        return str(error.get("message"))
    return None


def disk_free(home: Home) -> float:
    usage = shutil.disk_usage(home.root)
    return usage.free / usage.total if usage.total else 1.0
