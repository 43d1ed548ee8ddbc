"""The room on each host as the store says now: every app's instances, each taking what its
release's [resources] say. The read side of capacity.py."""

from __future__ import annotations

from collections.abc import Sequence

from slipway.config.schema import AppConfig, Resources
from slipway.deploy.capacity import Need, Room, used
from slipway.errors import SlipwayError
from slipway.hosts.model import Host
from slipway.store.records import Instance
from slipway.store.store import Store


def need_of(config: AppConfig | None, process: str) -> Need:
    """What one instance of `process` needs; the defaults when its config is gone."""
    wanted = config.needs(process) if config else Resources()
    return Need(wanted.cpu, wanted.memory)


def room(store: Store, hosts: Sequence[Host]) -> Room:
    configs: dict[tuple[str, str], AppConfig | None] = {}

    def need(instance: Instance) -> Need:
        key = (instance.app, instance.release)
        if key not in configs:
            try:
                configs[key] = store.release(*key).config
            except SlipwayError:  # its release is gone: it takes what a default one does
                configs[key] = None
        return need_of(configs[key], instance.process)

    return Room(hosts, used(store.instances(), need))
