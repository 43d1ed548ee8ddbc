"""Prometheus file-based service discovery: one JSON file per app listing its running web
instances, labelled with app, release and instance, so a user's Prometheus scrapes the
right processes across deploys (`file_sd_configs` pointing at HOME/prometheus/*.json).
The daemon's own /metrics is listed too, in `_slipway.json` (no app name starts with "_")."""

from __future__ import annotations

import json
import os
from pathlib import Path

from slipway.store.records import Instance

DAEMON_FILE = "_slipway.json"


def targets(instances: list[Instance]) -> list[dict[str, object]]:
    """Pure: file_sd entries. `instance` is Prometheus's own label, hence `slipway_instance`."""
    return [
        {
            "targets": [f"127.0.0.1:{i.port}"],
            "labels": {
                "app": i.app,
                "release": i.release,
                "slipway_instance": i.id,
                "process": i.process,
            },
        }
        for i in sorted(instances, key=lambda i: i.id)
        if i.is_web and i.live and i.port is not None
    ]


def write_targets(directory: Path, apps: list[str], instances: list[Instance]) -> None:
    """Rewrite a file only when its content changes (Prometheus watches them)."""
    for app in apps:
        _write(directory / f"{app}.json", targets([i for i in instances if i.app == app]))


def write_daemon_target(directory: Path, address: str | None) -> None:
    """The daemon's /metrics (host:port), or no target while it is not served."""
    entries: list[dict[str, object]] = (
        [{"targets": [address], "labels": {"job": "slipway"}}] if address else []
    )
    _write(directory / DAEMON_FILE, entries)


def _write(path: Path, entries: list[dict[str, object]]) -> None:
    text = json.dumps(entries, indent=1) + "\n"
    try:
        if path.read_text() == text:
            return
    except OSError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
