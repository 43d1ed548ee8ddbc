"""Rows of the alerting tables: each rule's current state (alerts), its history of state
changes (alert_events) and the outbox of notices to deliver (notifications)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from slipway.alerts.notify import Notice
from slipway.config.alerts import Notifier
from slipway.store.store import Store

ALERT_COLUMNS = "app, rule, severity, state, since, value, summary, release"
EVENT_COLUMNS = "app, rule, severity, state, at, value, summary"


@dataclass(frozen=True)
class AlertRecord:
    """One rule's state for one app, with its latest reading."""

    app: str
    rule: str
    severity: str
    state: str  # ok | pending | firing
    since: float
    value: float | None
    summary: str
    release: str | None  # the release the reading blamed (the one the alert fired with)


@dataclass(frozen=True)
class AlertEventRecord:
    """One state change of one rule of one app."""

    app: str
    rule: str
    severity: str
    state: str  # pending | firing | resolved | cleared
    at: float
    value: float | None
    summary: str


@dataclass(frozen=True)
class DueNotification:
    """The oldest pending notification of one alert for one notifier, due now. Its notifier
    and notice are decoded when asked for, not when fetched: one stored by another version of
    slipway that no longer decodes raises only when its turn comes, after those before it."""

    id: int
    attempts: int
    created_at: float
    stored_notifier: str
    stored_notice: str

    def notifier(self) -> Notifier:
        return Notifier.model_validate_json(self.stored_notifier)

    def notice(self) -> Notice:
        return Notice(**json.loads(self.stored_notice))


@dataclass(frozen=True)
class NotificationRecord:
    """A notification as `slipway alerts` shows it."""

    app: str
    rule: str
    notifier: Notifier
    event: str | None  # the notice's state: firing | resolved
    state: str  # pending | sent | failed
    attempts: int
    last_error: str | None
    created_at: float
    sent_at: float | None


# alerts -----------------------------------------------------------------------------------


def alert(store: Store, app: str, rule: str) -> AlertRecord | None:
    row = store.fetch_one(
        f"SELECT {ALERT_COLUMNS} FROM alerts WHERE app = ? AND rule = ?", app, rule
    )
    return AlertRecord(*row) if row else None


def alerts(store: Store, app: str | None = None) -> list[AlertRecord]:
    """Every alert of the app (of every app when `app` is None or empty), by app and rule."""
    where, args = ("WHERE app = ?", (app,)) if app else ("", ())
    rows = store.fetch_all(f"SELECT {ALERT_COLUMNS} FROM alerts {where} ORDER BY app, rule", *args)
    return [AlertRecord(*r) for r in rows]


def alerted_rules(store: Store) -> list[tuple[str, str]]:
    """The (app, rule) of every alert kept, configured or not any more."""
    return [(r[0], r[1]) for r in store.fetch_all("SELECT app, rule FROM alerts")]


def firing_alerts(store: Store) -> list[AlertRecord]:
    rows = store.fetch_all(f"SELECT {ALERT_COLUMNS} FROM alerts WHERE state = 'firing'")
    return [AlertRecord(*r) for r in rows]


def put_alert(store: Store, record: AlertRecord) -> None:
    """Record the alert's new state, replacing the one it had."""
    with store.tx() as c:
        c.execute(
            f"INSERT OR REPLACE INTO alerts ({ALERT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                record.app,
                record.rule,
                record.severity,
                record.state,
                record.since,
                record.value,
                record.summary,
                record.release,
            ),
        )


def update_reading(
    store: Store, app: str, rule: str, *, value: float | None, summary: str, severity: str
) -> None:
    """The latest reading of an alert whose state did not change (its state, start and
    release stay)."""
    with store.tx() as c:
        c.execute(
            "UPDATE alerts SET value = ?, summary = ?, severity = ? WHERE app = ? AND rule = ?",
            (value, summary, severity, app, rule),
        )


def delete_alert(store: Store, app: str, rule: str) -> None:
    with store.tx() as c:
        c.execute("DELETE FROM alerts WHERE app = ? AND rule = ?", (app, rule))


# alert events -----------------------------------------------------------------------------


def add_alert_event(
    store: Store,
    app: str,
    rule: str,
    severity: str,
    state: str,
    at: float,
    value: float | None,
    summary: str,
) -> None:
    with store.tx() as c:
        c.execute(
            f"INSERT INTO alert_events ({EVENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (app, rule, severity, state, at, value, summary),
        )


def alert_events(store: Store, app: str | None, limit: int) -> list[AlertEventRecord]:
    """The `limit` latest state changes of the app (of every app when `app` is None or
    empty), newest first."""
    where, args = ("WHERE app = ?", (app,)) if app else ("", ())
    rows = store.fetch_all(
        f"SELECT {EVENT_COLUMNS} FROM alert_events {where} ORDER BY id DESC LIMIT ?", *args, limit
    )
    return [AlertEventRecord(*r) for r in rows]


# notifications ----------------------------------------------------------------------------


def _stored(notifier: Notifier) -> str:
    """How a notifier is stored, and so compared with the stored ones."""
    return notifier.model_dump_json(by_alias=True)


def add_notifications(
    store: Store, notifiers: Iterable[Notifier], notice: Notice, now: float
) -> None:
    """Queue the notice for each notifier, due now, in one transaction."""
    with store.tx() as c:
        for notifier in notifiers:
            c.execute(
                "INSERT INTO notifications (app, rule, notifier, notice, state, next_try, "
                "created_at) VALUES (?, ?, ?, ?, 'pending', ?, ?)",
                (notice.app, notice.rule, _stored(notifier), json.dumps(asdict(notice)), now, now),
            )


def due_notifications(store: Store, now: float) -> list[DueNotification]:
    """The oldest pending notification of each (app, rule, notifier), of those due by `now`,
    oldest first: a later notice of an alert never overtakes an earlier one."""
    rows = store.fetch_all(
        "SELECT id, attempts, created_at, notifier, notice FROM notifications WHERE id IN "
        "(SELECT MIN(id) FROM notifications WHERE state = 'pending' "
        "GROUP BY app, rule, notifier) AND next_try <= ? ORDER BY id",
        now,
    )
    return [DueNotification(*r) for r in rows]


def record_attempt(
    store: Store,
    notification_id: int,
    *,
    state: str,
    attempts: int,
    next_try: float,
    error: str | None,
    sent_at: float | None,
) -> None:
    """The outcome of a delivery attempt: sent, pending until `next_try`, or failed."""
    with store.tx() as c:
        c.execute(
            "UPDATE notifications SET state = ?, attempts = ?, next_try = ?, last_error = ?, "
            "sent_at = ? WHERE id = ?",
            (state, attempts, next_try, error, sent_at, notification_id),
        )


def without_pending(
    store: Store, app: str, rule: str, notifiers: Iterable[Notifier]
) -> list[Notifier]:
    """Those of `notifiers` with no notification of the alert still pending."""
    rows = store.fetch_all(
        "SELECT notifier FROM notifications WHERE app = ? AND rule = ? AND state = 'pending'",
        app,
        rule,
    )
    waiting = {r[0] for r in rows}
    return [n for n in notifiers if _stored(n) not in waiting]


def notifications(store: Store, app: str | None, limit: int) -> list[NotificationRecord]:
    """The `limit` latest notifications of the app (of every app when `app` is None or
    empty), newest first."""
    where, args = ("WHERE app = ?", (app,)) if app else ("", ())
    rows = store.fetch_all(
        "SELECT app, rule, notifier, notice, state, attempts, last_error, created_at, "
        f"sent_at FROM notifications {where} ORDER BY id DESC LIMIT ?",
        *args,
        limit,
    )
    return [_notification(r) for r in rows]


def _notification(row: sqlite3.Row) -> NotificationRecord:
    return NotificationRecord(
        app=row[0],
        rule=row[1],
        notifier=Notifier.model_validate_json(row[2]),
        event=json.loads(row[3]).get("state"),
        state=row[4],
        attempts=row[5],
        last_error=row[6],
        created_at=row[7],
        sent_at=row[8],
    )
