"""A recoverable control plane, on a small fleet of network namespaces (one lb host, one
app host, one replica host; the control plane in the root namespace): it copies itself to
the replica host every second; it is killed (-9) and its home destroyed; `slipway control
restore --from` brings it back in another folder of the same machine (the same root
namespace, given another address the hosts then see it by, as a new machine would be); it
deploys and rolls back. The lb host serves throughout, the audit chain verifies, and what
was lost is measured."""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from slipway.cli.client import Client
from slipway.loadgen import BackgroundLoad
from slipway.paths import Home
from tests.integration.conftest import Slipway, stop_all, wait_for
from tests.integration.testbed import Bed, run

EVERY = 1.0  # the replica is at most this far behind (plus the time a copy takes)
SHIP_ALLOWANCE = 2.5  # the time one copy may take on a busy 2-core machine
FAST = {"health_timeout": "20s", "drain_timeout": "3s", "stop_grace": "3s", "keep_warm": "5m"}


def add(slipway: Slipway, bed: Bed, name: str, *roles: str) -> None:
    host = bed.hosts[name]
    slipway.run(
        "hosts", "add", name, "--address", host.address,
        *(a for role in roles for a in ("--role", role)),
        "--key", str(bed.key), "--remote-home", str(host.home),
        "--fingerprint", bed.fingerprint(name),
    )  # fmt: skip


def marks(home: Path, seconds: float) -> list[tuple[int, float]]:
    """Change a secret as fast as the API takes it for `seconds`: (value, when it was set)."""
    client = Client(Home(home))
    made, number, end = [], 0, time.time() + seconds
    while time.time() < end:
        number += 1
        client.request("PUT", "/apps/hello/secrets/MARK", {"value": str(number)})
        made.append((number, time.time()))
        time.sleep(0.05)
    return made


def test_the_control_plane_is_restored_on_another_home_while_the_fleet_serves() -> None:
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    bed = Bed(
        Path(tempfile.mkdtemp(prefix="swcr-", dir="/tmp")),
        subnet="10.206.0",
        prefix="swcr-",
        bridge="swcr0",
    )
    work = Path(tempfile.mkdtemp(prefix="swcrapp-", dir="/tmp"))
    old = Slipway(home=bed.folder / "control", workdir=work)
    new = Slipway(home=bed.folder / "restored", workdir=work)
    old_copy = bed.folder / "old-copy"
    try:
        bed.up(["lb1", "app1", "rep1"])
        old.run("up")
        old.run("hosts", "roles", "local")  # the control host serves nothing
        add(old, bed, "lb1", "lb")
        add(old, bed, "app1", "app")
        add(old, bed, "rep1")  # no roles: it only keeps the replica
        app = old.make_app()

        def configure(greeting: str) -> None:
            app.write_config(
                listen={"address": "0.0.0.0", "port": app.port},
                scale={"web": 2},
                deploy=FAST,
                env={"GREETING": greeting},
            )

        configure("one")
        old.deploy(app)
        first = old.app_status("hello")["current_release"]
        turned_on = old.json("control", "replicate", "--to", "rep1", "--every", f"{EVERY}s")
        assert turned_on["state"] == "ok" and turned_on["key"].startswith("swrk_")
        key_file = work / "replica.key"
        key_file.write_text(turned_on["key"])
        key_file.chmod(0o600)
        url = f"http://{bed.hosts['lb1'].address}:{app.port}/"
        with BackgroundLoad(url, concurrency=4) as load:
            configure("two")
            old.deploy(app)
            second = old.app_status("hello")["current_release"]
            old.run("tokens", "create", "--name", "ci", "--role", "deployer")
            hosts = {h["name"]: h for h in old.json("hosts")}
            assert hosts["rep1"]["replica"]["state"] == "ok", hosts["rep1"]
            refused = old.run("hosts", "remove", "rep1", check=False)
            assert "keeps the control plane's replica" in refused.stderr + refused.stdout
            made = marks(old.home, 3 * EVERY + SHIP_ALLOWANCE)
            copy = old.json("control", "status")
            pid = int((old.home / "daemon.pid").read_text())
            os.kill(pid, signal.SIGKILL)  # the control host is gone ...
            killed_at = time.time()
            wait_for(lambda: not Path(f"/proc/{pid}").exists(), 10, "the daemon to die")
            # (a copy of its disk, for the machine that comes back at the end)
            shutil.copytree(old.home, old_copy, ignore=shutil.ignore_patterns("*.sock"))
            shutil.rmtree(old.home)  # ... with its disk
            assert httpx.get(url, timeout=5).json()["release"] == second  # serving on
            # The new machine has another address: the hosts see the restored control plane
            # at .2 (new connections from here leave from it; the load's keep .1).
            moved = f"{bed.subnet}.2"
            run("ip", "addr", "add", f"{moved}/24", "dev", bed.bridge)
            run("ip", "route", "replace", f"{bed.subnet}.0/24", "dev", bed.bridge, "src", moved)

            began = time.monotonic()
            restored = new.json(
                "control", "restore", "--from", bed.hosts["rep1"].address,
                "--fingerprint", bed.fingerprint("rep1"), "--key", str(bed.key),
                "--remote-home", str(bed.hosts["rep1"].home), "--replica-key", str(key_file),
            )  # fmt: skip
            restore_seconds = time.monotonic() - began
            assert restored["audit_ok"] and restored["replicating_to"] == "rep1"
            assert restored["counts"]["apps"] == 1 and restored["counts"]["tokens"] == 1
            new.run("up")
            up_seconds = time.monotonic() - began

            # what was lost: the marks made after the last copy
            kept = int(new.run("secrets", "get", "MARK", "--app", "hello", "--reveal").stdout)
            kept_at = dict(made)[kept]
            lost = [n for n, _ in made if n > kept]
            window = killed_at - kept_at
            print(  # the measurement, shown with -s
                f"\nrestore: {restore_seconds:.1f}s, restore + up: {up_seconds:.1f}s; "
                f"{len(made)} changes in {made[-1][1] - made[0][1]:.1f}s, {len(lost)} lost: "
                f"the last {window:.2f}s before the kill (snapshot taken "
                f"{killed_at - restored['taken_at']:.2f}s before it; every = {EVERY}s); "
                f"a copy: {copy['bytes'] / 1024:.0f} KiB in {copy['took']:.2f}s"
            )
            assert window <= EVERY + SHIP_ALLOWANCE, (window, kept, len(made))
            status = new.app_status("hello")
            assert status["current_release"] == second
            names = {t["name"] for t in new.json("tokens", "list")}
            assert "ci" in names
            wait_for(
                lambda: all(h["reachable"] for h in new.json("hosts")), 30, "every host to answer"
            )
            # at its new address: the lb host's request logs reach it, the firewalls let it in
            app_host = {h["name"]: h for h in new.json("hosts")}["app1"]
            assert moved in app_host["firewall"]["allowed"], app_host["firewall"]

            def logged() -> bool:
                return bool(new.json("requests", "--app", "hello", "--since", "2s")["requests"])

            wait_for(logged, 20, "request logs from the lb host at the new address")
            bed.cut("rep1")  # a replica that does not answer never holds a deploy back
            try:
                configure("three")
                new.deploy(app)
            finally:
                bed.mend("rep1")
            third = new.app_status("hello")["current_release"]
            assert httpx.get(url, timeout=5).json()["release"] == third
            new.run("rollback", first, "--app", "hello")  # cold: from the restored archive
            assert new.app_status("hello")["current_release"] == first
            result = load.stop()
        assert result.failed == 0 and result.sent > 100, result.summary()
        # The old control host comes back with its disk (it was only cut off): the hosts the
        # restored one reached refuse it, so two control planes never drive one fleet.
        revenant = Slipway(home=old_copy, workdir=work)
        try:
            came_back = revenant.run("up", check=False)
            said = came_back.stdout + came_back.stderr
            assert came_back.returncode != 0 and "newer control plane" in said, said
            refused = revenant.run("deploy", "--app", str(app.dir), check=False)
            assert refused.returncode != 0, refused.stdout
        finally:
            revenant.run("down", check=False)
        assert new.app_status("hello")["current_release"] == first
        assert httpx.get(url, timeout=5).json()["release"] == first
        verified = json.loads(new.run("audit", "verify", "--json").stdout)
        assert verified["ok"], verified
        actions = [e["action"] for e in new.json("audit")]
        assert "control restore" in actions

        def copied() -> bool:  # copies go on once it answers again (after SSH's backoff)
            done = new.run("control", "ship", "--json", check=False)
            return done.returncode == 0 and json.loads(done.stdout)["state"] == "ok"

        wait_for(copied, 45, "a copy to the replica once it answers again", every=1.0)
    finally:
        leftovers = stop_all(new) if new.home.exists() else []
        if old_copy.exists():
            Slipway(home=old_copy, workdir=work).run("down", check=False)
        if old.home.exists():
            leftovers += stop_all(old)
        bed.down()
        shutil.rmtree(work, ignore_errors=True)
    assert not leftovers, leftovers
