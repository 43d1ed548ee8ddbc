"""Backups and verifications on a schedule: every few seconds the daemon asks, for each ready
database, what is due (databases/schedule.py decides) and runs one thing at a time, so a
fleet of databases never loads the control plane or a host with many restores at once.
A run that fails is recorded and alerted on by db_ops like a manual one; one that does not
happen at all (the daemon was down, the host cut off) shows as overdue in the alert."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from slipway.daemon import db_ops
from slipway.databases import schedule
from slipway.errors import SlipwayError
from slipway.store import databases as stored

if TYPE_CHECKING:
    from slipway.daemon.service import Service

log = logging.getLogger("slipway.daemon")
TICK = 5.0
WHO = "slipway (schedule)"


async def run(service: Service) -> None:
    while True:
        await asyncio.sleep(TICK)
        try:
            await tick(service, time.time())
        except Exception:  # one bad tick must not end the schedule
            log.exception("the database schedule failed")


async def tick(service: Service, now: float) -> None:
    for record in stored.every(service.store):
        if record.state != "ready":
            continue
        plan = schedule.Schedule.from_dict(record.schedule)
        kind = schedule.due(plan, db_ops.last(service, record.name), now, record.created_at)
        if kind is None:
            continue
        log.info("database %s: scheduled %s", record.name, kind)
        try:
            if kind == "verify":
                await db_ops.verify(service, record.name, None, WHO)
            else:
                await db_ops.backup(service, record.name, kind, WHO)
        except SlipwayError as exc:  # recorded and alerted on by db_ops
            log.warning("database %s: scheduled %s failed: %s", record.name, kind, exc.message)
        return  # one at a time; the next tick takes the next
