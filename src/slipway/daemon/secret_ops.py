"""Secrets as the API sees them: set, unset, list, reveal, rotate the key.

Setting or unsetting a secret the serving release uses makes a new release (Heroku-style):
the same built files and config, the new secret versions. It is deployed like a rollback
(start, health, shift), so the previous release stays warm and `slipway rollback` returns to
the previous values too."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from slipway.config import APP_NAME
from slipway.config.schema import ENV_NAME
from slipway.deploy.planning import first_step, rolled_or_not
from slipway.errors import UsageError
from slipway.store import security
from slipway.store.records import Deployment

if TYPE_CHECKING:
    from slipway.daemon.service import Service


def check_place(app: str, name: str) -> None:
    if not APP_NAME.match(app):
        raise UsageError(f'"{app}" is not a valid app name', fix="use the name in slipway.toml")
    if not ENV_NAME.match(name):
        raise UsageError(
            f'"{name}" is not a valid secret name: it becomes an environment variable',
            fix="use letters, digits and _, not starting with a digit, e.g. DATABASE_URL",
        )


def set_secret(service: Service, app: str, name: str, value: str, who: str) -> dict[str, Any]:
    check_place(app, name)
    if "\0" in value:
        raise UsageError(f"the value of {name} contains a NUL byte", fix="env vars cannot hold it")
    if service.store.find_app(app):
        service.refuse_if_locked(app)
    version = service.secrets.set(app, name, value, who)
    deployment = release_with_new_secrets(service, app, name, who)
    return {"name": name, "version": version, "deployment": deployment}


def unset_secret(service: Service, app: str, name: str, who: str) -> dict[str, Any]:
    check_place(app, name)
    found = service.store.find_app(app)
    if found and found.current_release:
        service.refuse_if_locked(app)
        config = service.store.release(app, found.current_release).config
        if name in config.secrets:
            raise UsageError(
                f"{found.current_release} of app '{app}' runs with secret {name}",
                where=f"slipway.toml: secrets = {config.secrets}",
                fix=f"remove {name} from `secrets` in slipway.toml and deploy, then unset it",
            )
    version = service.secrets.unset(app, name, who)
    return {"name": name, "version": version, "deployment": None}


def release_with_new_secrets(
    service: Service, app_name: str, name: str, who: str
) -> Deployment | None:
    """A new release of the serving one with the current secret versions, deployed."""
    app = service.store.find_app(app_name)
    if app is None or app.current_release is None:
        return None
    current = service.store.release(app_name, app.current_release)
    if name not in current.config.secrets:
        return None
    release = service.store.new_release(
        app_name,
        source=f"{current.id} with {name} changed",
        source_kind=current.source_kind,
        git_sha=current.git_sha,
        config_json=current.config_json,
        config_hash=current.config_hash,
        secrets=security.current_versions(service.store, app_name),
        folder=current.folder_id,
        status="ready",
    )
    service.store.update_release(app_name, release.id, build_seconds=0.0)
    strategy = rolled_or_not(current.config)
    deployment = service.store.start_deployment(
        app_name,
        kind="config",
        from_release=current.id,
        to_release=release.id,
        formation=app.formation,
        who=who,
        state=first_step("config", strategy),
        strategy=strategy,
    )
    service.engine.event(deployment, "start", "info", f"secret {name} changed: {release.id}")
    service.launch(deployment)
    return deployment


def list_secrets(service: Service, app: str) -> list[dict[str, Any]]:
    return [
        {
            "name": s.name,
            "version": s.version,
            "set": s.set,
            "created_at": s.created_at,
            "created_by": s.created_by,
        }
        for s in service.secrets.listing(app)
    ]


def rotate_key(service: Service) -> dict[str, Any]:
    started = time.monotonic()
    old, new, count = service.secrets.rotate()
    return {
        "old_key": old,
        "new_key": new,
        "reencrypted": count,
        "seconds": round(time.monotonic() - started, 3),
    }
