"""The daemon's alerting: evaluates each app's rules every few seconds, keeps their states and
history in SQLite, and delivers notifications from a persistent outbox with backoff, so a
notifier that is down delays an alert but never loses it (and never blocks a deploy)."""

from __future__ import annotations

import asyncio
import itertools
import json
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
from slipway.metrics import history
from slipway.paths import Home
from slipway.runtime.base import Observed
from slipway.store.records import Instance
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


class Alerting:
    def __init__(self, home: Home, store: Store, observe: Observe) -> None:
        self.home = home
        self.store = store
        self.observe = observe
        self.dashboard_url: str | None = None
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
        for app in self.store.apps():
            if app.current_release is None:
                continue
            config = configs[app.name] = self.store.release(app.name, app.current_release).config
            # what does not depend on a rule's window is read once per app, not per rule
            down = self.instances_down(app.name)
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
                )
                self.evaluate_rule(app.name, config, rule, facts, moment)
        for app_name, rule_name in self.store.conn.execute(
            "SELECT app, rule FROM alerts"
        ).fetchall():
            if (app_name, rule_name) not in configured:
                notifiers = configs[app_name].alerting.notify if app_name in configs else []
                self.resolve_removed(app_name, rule_name, notifiers, moment)

    def evaluate_rule(
        self, app: str, config: AppConfig, rule: AlertRule, facts: rules.Facts, now: float
    ) -> None:
        reading = rules.read(rule, facts)
        text = rules.summary(rule, reading)
        row = self.store.conn.execute(
            "SELECT state, since, release FROM alerts WHERE app = ? AND rule = ?",
            (app, rule.name),
        ).fetchone()
        current = rules.State(row[0], row[1]) if row else rules.State("ok", now)
        new = rules.step(rule, current, reading, now)
        if row is not None and new.state == current.state:
            with self.store.tx() as c:  # the latest reading, for `slipway alerts`
                c.execute(
                    "UPDATE alerts SET value = ?, summary = ?, severity = ? "
                    "WHERE app = ? AND rule = ?",
                    (reading.value, text, rule.severity, app, rule.name),
                )
            if new.state == "firing":
                self.refresh_alertmanager(app, config, rule, reading, row[2], new.since, now)
            return
        with self.store.tx() as c:
            c.execute(
                "INSERT OR REPLACE INTO alerts (app, rule, severity, state, since, value, summary, "
                "release) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (app, rule.name, rule.severity, new.state, new.since, reading.value, text,
                 reading.release),
            )  # fmt: skip
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
                release=row[2] if event == "resolved" and row else reading.release,
                dashboard_url=self.app_url(app),
            )
            self.enqueue(config.alerting.notify, notice, now)

    def resolve_removed(self, app: str, rule: str, notifiers: list[Notifier], now: float) -> None:
        """A rule no longer in the app's config: its alert ends, and whoever was told it fired
        is told it resolved."""
        row = self.store.conn.execute(
            "SELECT severity, state, since, release FROM alerts WHERE app = ? AND rule = ?",
            (app, rule),
        ).fetchone()
        with self.store.tx() as c:
            c.execute("DELETE FROM alerts WHERE app = ? AND rule = ?", (app, rule))
        if row is None or row[1] != "firing":
            return
        text = f"{rule}: the rule was removed from the app's config"
        self.record_event(app, rule, row[0], "resolved", now, None, text)
        notice = Notice(app, rule, row[0], "resolved", "removed", None, 0.0, text, row[2], now,
                        row[3], self.app_url(app))  # fmt: skip
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
        with self.store.tx() as c:
            c.execute(
                "INSERT INTO alert_events (app, rule, severity, state, at, value, summary) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (app, rule, severity, state, at, value, summary),
            )

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
        with self.store.tx() as c:
            for notifier in notifiers:
                if not wants(notifier, notice):
                    continue
                c.execute(
                    "INSERT INTO notifications (app, rule, notifier, notice, state, next_try, "
                    "created_at) VALUES (?, ?, ?, ?, 'pending', ?, ?)",
                    (
                        notice.app,
                        notice.rule,
                        notifier.model_dump_json(by_alias=True),
                        json.dumps(asdict(notice)),
                        now,
                        now,
                    ),
                )

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
        heads = self.store.conn.execute(
            "SELECT id, notifier, notice, attempts, created_at FROM notifications WHERE id IN "
            "(SELECT MIN(id) FROM notifications WHERE state = 'pending' "
            "GROUP BY app, rule, notifier) AND next_try <= ? ORDER BY id",
            (moment,),
        ).fetchall()
        sent = 0
        for row_id, notifier_json, notice_json, attempts, created in heads:
            notifier = Notifier.model_validate_json(notifier_json)
            notice = Notice(**json.loads(notice_json))
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
        with self.store.tx() as c:
            c.execute(
                "UPDATE notifications SET state = ?, attempts = ?, next_try = ?, last_error = ?, "
                "sent_at = ? WHERE id = ?",
                (state, attempts, next_try, error, sent_at, row_id),
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
        waiting = {
            row[0]
            for row in self.store.conn.execute(
                "SELECT notifier FROM notifications WHERE app = ? AND rule = ? "
                "AND state = 'pending'",
                key,
            )
        }
        targets = [n for n in targets if n.model_dump_json(by_alias=True) not in waiting]
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
        where, args = ("WHERE app = ?", (app,)) if app else ("", ())
        alerts = [
            dict(
                zip(
                    ("app", "rule", "severity", "state", "since", "value", "summary", "release"),
                    row,
                    strict=True,
                )
            )
            for row in self.store.conn.execute(
                "SELECT app, rule, severity, state, since, value, summary, release FROM alerts "
                f"{where} ORDER BY app, rule",
                args,
            )
        ]
        events = [
            dict(
                zip(
                    ("app", "rule", "severity", "state", "at", "value", "summary"), row, strict=True
                )
            )
            for row in self.store.conn.execute(
                "SELECT app, rule, severity, state, at, value, summary FROM alert_events "
                f"{where} ORDER BY id DESC LIMIT ?",
                (*args, limit),
            )
        ]
        notifications = []
        for row in self.store.conn.execute(
            "SELECT app, rule, notifier, notice, state, attempts, last_error, created_at, "
            f"sent_at FROM notifications {where} ORDER BY id DESC LIMIT ?",
            (*args, limit),
        ):
            notifier = Notifier.model_validate_json(row[2])
            notifications.append(
                {
                    "app": row[0],
                    "rule": row[1],
                    "notifier": safe_label(notifier),
                    "type": notifier.type,
                    "event": json.loads(row[3]).get("state"),
                    "state": row[4],
                    "attempts": row[5],
                    "last_error": row[6],
                    "created_at": row[7],
                    "sent_at": row[8],
                }
            )
        return {"alerts": alerts, "events": events, "notifications": notifications}

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


def disk_free(home: Home) -> float:
    usage = shutil.disk_usage(home.root)
    return usage.free / usage.total if usage.total else 1.0
