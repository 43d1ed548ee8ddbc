"""Prometheus file-based service discovery: one JSON file per app listing its running web
instances, labelled with app, release and instance, so a user's Prometheus scrapes the
right processes across deploys (`file_sd_configs` pointing at HOME/prometheus/*.json)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from slipway.store.records import Instance


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
    directory.mkdir(parents=True, exist_ok=True)
    for app in apps:
        path = directory / f"{app}.json"
        text = json.dumps(targets([i for i in instances if i.app == app]), indent=1) + "\n"
        try:
            if path.read_text() == text:
                continue
        except OSError:
            pass
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
