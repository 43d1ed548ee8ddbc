"""`slipway control`: the control plane itself: its replica on another host (`replicate`,
`status`, `ship`) and its restore on a fresh machine (`restore --from`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from slipway.cli.client import Client
from slipway.cli.common import home_of, json_option
from slipway.cli.output import ago, emit_json, err, escape, out
from slipway.config.durations import parse_duration
from slipway.errors import UsageError

KEY_ENV = "SLIPWAY_REPLICA_KEY"


def _every(value: str | None) -> float | None:
    if value is None:
        return None
    if len(value) > 32:
        raise UsageError("--every is too long", where="--every", fix="e.g. 5s, 2s, 1m")
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise UsageError(str(exc), where="--every", fix="e.g. 5s, 2s, 1m") from None


def show_replica(view: dict[str, Any]) -> None:
    if view["state"] == "off":
        out.print("the control plane is [yellow]not replicated[/yellow]: "
                  "`slipway control replicate --to HOST`")  # fmt: skip
        return
    behind = "-" if view["behind"] is None else f"{view['behind']:.1f}s"
    style = {"ok": "green", "failing": "red"}.get(view["state"], "yellow")
    out.print(
        f"replica on [bold]{escape(view['host'])}[/bold]: [{style}]{view['state']}[/{style}], "
        f"{behind} behind (a copy every {view['every']:g}s when anything changed, "
        f"{view['keep']} kept)"
    )
    if view["seq"] is not None:
        size = (view["bytes"] or 0) / 1024
        took = "" if view.get("took") is None else f" in {view['took']:.2f}s"
        out.print(
            f"  last copy: snapshot {view['seq']}, {ago(view['shipped_at'])}, {size:.0f} KiB{took}"
        )
    if view["error"]:
        out.print(
            f"  [red]failing {ago(view['failing_since'])} ({view['failures']} tries): "
            f"{escape(view['error'])}[/red]"
        )


@click.group()
def control() -> None:
    """The control plane: its replica on another host, and restoring it."""


@control.command()
@click.option("--to", "host", metavar="HOST", help="A host of the fleet (`slipway hosts`).")
@click.option("--every", metavar="DURATION", help="At most this far behind (default 2s).")
@click.option("--keep", type=click.IntRange(1, 100), help="Snapshots kept there (default 3).")
@click.option("--off", is_flag=True, help="Stop replicating (the copies there stay).")
@json_option
@click.pass_context
def replicate(
    ctx: click.Context,
    host: str | None,
    every: str | None,
    keep: int | None,
    off: bool,
    as_json: bool,
) -> None:
    """Copy the control plane (state, keys, audit log) to HOST, encrypted, continuously."""
    client = Client(home_of(ctx), timeout=300)
    if off:
        done = client.request("DELETE", "/control/replica")
        emit_json(done) if as_json else out.print(f"not replicating any more (was: {done['was']})")
        return
    if not host:
        raise UsageError("which host?", where="--to", fix="slipway control replicate --to HOST")
    request = {"host": host, "every": _every(every), "keep": keep}
    view = client.request("PUT", "/control/replica", request)
    if as_json:
        emit_json(view)
        return
    show_replica(view)
    if view.get("key"):
        err.print(
            "\n[bold]The replica key[/bold] (printed once; a restore needs it, and the copies "
            "cannot be opened without it):\n"
        )
        out.print(view["key"], markup=False)
        err.print(
            f"\nSave it off this machine now (a password manager, a safe). It is also in "
            f"{view['key_file']}, which is lost with this machine."
        )


@control.command()
@json_option
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """The replica: where, how far behind, the last copy, a failure."""
    view = Client(home_of(ctx)).get("/control/replica")
    emit_json(view) if as_json else show_replica(view)


@control.command()
@json_option
@click.pass_context
def ship(ctx: click.Context, as_json: bool) -> None:
    """Copy the control plane to its replica now."""
    view = Client(home_of(ctx), timeout=300).post("/control/replica/ship")
    emit_json(view) if as_json else show_replica(view)


@control.command()
@click.option("--from", "address", required=True, metavar="ADDRESS", help="The replica host.")
@click.option("--fingerprint", required=True, help="Its SSH host key, SHA256:… (pinned).")
@click.option("--key", type=click.Path(dir_okay=False), help="SSH private key (default: agent).")
@click.option("--user", default="root", show_default=True, help="SSH user.")
@click.option("--port", type=click.IntRange(1, 65535), default=22, show_default=True)
@click.option(
    "--remote-home", default="/var/lib/slipway", show_default=True, help="Its agent's home."
)
@click.option(
    "--replica-key",
    "key_file",
    type=click.Path(dir_okay=False),
    help=f"The file holding the replica key (default: ${KEY_ENV}).",
)
@click.option("--seq", type=click.IntRange(1, 10**12 - 1), help="This snapshot, not the newest.")
@json_option
@click.pass_context
def restore(
    ctx: click.Context,
    address: str,
    fingerprint: str,
    key: str | None,
    user: str,
    port: int,
    remote_home: str,
    key_file: str | None,
    seq: int | None,
    as_json: bool,
) -> None:
    """Bring the control plane back into an empty home from its replica; then `slipway up`."""
    import asyncio  # `slipway status` shows the replica through this module: not on its path

    from slipway.control import restore as restoring  # asyncssh, cryptography: when needed
    from slipway.control.replica import SftpReplica
    from slipway.control.sealed import ReplicaKey, read_key
    from slipway.hosts.model import Host, SshTarget
    from slipway.hosts.ssh import SshTransport, require_asyncssh_key

    for value, name in ((address, "--from"), (remote_home, "--remote-home"), (user, "--user")):
        if len(value) > 255:
            raise UsageError(f"{name} is too long", where=name)
    if not fingerprint.startswith("SHA256:") or len(fingerprint) > 100:
        raise UsageError(
            "--fingerprint is not an SSH key fingerprint",
            where="--fingerprint",
            fix="SHA256:… as `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` prints it there",
        )
    require_asyncssh_key(key)
    if key_file:
        replica_key = read_key(Path(key_file))
    elif os.environ.get(KEY_ENV):
        replica_key = ReplicaKey.parse(os.environ[KEY_ENV], f"${KEY_ENV}")
    else:
        raise UsageError(
            "the replica key is needed to open the copies",
            where="--replica-key",
            fix=f"--replica-key FILE (the key saved when replication was turned on), or ${KEY_ENV}",
        )
    home = home_of(ctx)
    restoring.check_empty(home)
    target = SshTarget(address, fingerprint, port, user, key, remote_home)
    transport = SshTransport(Host("replica", address, frozenset(), target))
    replica = SftpReplica(transport.connection, remote_home, address)
    console = err if as_json else out

    async def run() -> dict[str, Any]:
        try:
            return await restoring.restore(home, replica, replica_key, seq, console.print)
        finally:
            await transport.close()

    done = asyncio.run(run())
    if as_json:
        emit_json(done)
        return
    counts = ", ".join(f"{n} {name}" for name, n in done["counts"].items())
    out.print(
        f"[green]restored[/green] snapshot {done['seq']} (taken {ago(done['taken_at'])}) "
        f"into {home.root}: {counts}; {done['audit_entries']} audit entries, chain verified"
    )
    if done["ssh_keys_restored"]:
        out.print(f"  SSH keys kept in the home for: {', '.join(done['ssh_keys_restored'])}")
    if done["secrets_key_in_env"]:
        out.print("  [yellow]the secrets key came from $SLIPWAY_SECRETS_KEY: set it here too")
    if done["replicating_to"]:
        out.print(f"  it goes on copying itself to {done['replicating_to']}")
    out.print("next: `slipway up` (the hosts kept serving; it adopts what runs there)")


COMMANDS = [control]
