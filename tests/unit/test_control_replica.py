"""The recoverable control plane's pure parts and its shipping, on fakes: sealing, the
snapshot (state, keys, audit chain, blobs), the replicator's cycle, and a restore."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

from slipway.audit.log import AuditLog
from slipway.control import replica as names
from slipway.control import sealed, snapshot
from slipway.control.replicator import KEY_FILE, Replicator, Settings, load_settings, ship
from slipway.control.restore import restore
from slipway.control.sealed import ReplicaError, ReplicaKey, read_key
from slipway.daemon.secrets import SecretKeeper
from slipway.errors import Conflict
from slipway.paths import Home
from slipway.store import backup
from slipway.store import hosts as stored_hosts
from slipway.store.store import Store
from tests.fakes import FakeReplica


def roundtrip(tmp_path: Path, data: bytes, key: ReplicaKey) -> bytes:
    (tmp_path / "plain").write_bytes(data)
    sealed.seal(key, tmp_path / "plain", tmp_path / "sealed")
    assert len(data) < 16 or data[:64] not in (tmp_path / "sealed").read_bytes()
    sealed.unseal(key, tmp_path / "sealed", tmp_path / "opened")
    return (tmp_path / "opened").read_bytes()


@pytest.mark.parametrize("size", [0, 1, 1000, 4096, 4097, 10_000])
def test_sealing_round_trips_in_chunks(
    tmp_path: Path, size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sealed, "CHUNK", 4096)
    data = os.urandom(size)
    assert roundtrip(tmp_path, data, ReplicaKey.generate()) == data


def test_a_sealed_file_cut_short_changed_or_under_another_key_does_not_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sealed, "CHUNK", 1024)
    key = ReplicaKey.generate()
    (tmp_path / "plain").write_bytes(os.urandom(5000))
    sealed.seal(key, tmp_path / "plain", tmp_path / "sealed")
    whole = (tmp_path / "sealed").read_bytes()
    chunk = 4 + 1024 + 16
    cut = whole[: sealed.HEADER + 2 * chunk]  # whole chunks, the last one missing
    flipped = bytearray(whole)
    flipped[-5] ^= 1
    for damaged in (cut, bytes(flipped), whole[:-3]):
        (tmp_path / "bad").write_bytes(damaged)
        with pytest.raises(ReplicaError, match="damaged|cut short"):
            sealed.unseal(key, tmp_path / "bad", tmp_path / "out")
        assert not (tmp_path / "out").exists()
    with pytest.raises(ReplicaError, match="another replica key"):
        sealed.unseal(ReplicaKey.generate(), tmp_path / "sealed", tmp_path / "out")


def test_the_replica_key_as_text_and_its_file(tmp_path: Path) -> None:
    key = ReplicaKey.generate()
    assert ReplicaKey.parse(key.text, "x") == key and key.text.startswith("swrk_")
    assert key.raw.hex() not in repr(key)
    for bad in ("", "swrk_", "swrk_!!!", "abc", "swrk_" + "A" * 200):
        with pytest.raises(ReplicaError):
            ReplicaKey.parse(bad, "x")
    sealed.write_key(tmp_path / "k", key)
    assert sealed.read_key(tmp_path / "k") == key
    (tmp_path / "k").chmod(0o644)
    with pytest.raises(ReplicaError, match="read by others"):
        sealed.read_key(tmp_path / "k")


# a home with something in it ---------------------------------------------------------------


def populated(root: Path) -> tuple[Home, Store, AuditLog, SecretKeeper]:
    home = Home(root)
    home.ensure()
    store = Store(home.db)
    audit = AuditLog(home.root, segment_bytes=600)  # rotates: archived segments are blobs
    keeper = SecretKeeper(home.secrets_key, store)
    store.ensure_app("shop", "/src/shop")
    keeper.set("shop", "DATABASE_URL", "postgres://secret", "tester")
    for n in range(8):
        audit.append(who="t", role="admin", action=f"act {n}", target="x", source="unit",
                     outcome="ok")  # fmt: skip
    artifacts = home.app_dir("shop") / "artifacts"
    artifacts.mkdir(parents=True)
    (artifacts / "r1.tar.gz").write_bytes(b"release one" * 100)
    (artifacts / "r1.tar.gz.sha256").write_text(snapshot.sha256(artifacts / "r1.tar.gz"))
    (home.root / "certs").mkdir()
    (home.root / "certs" / "app_shop.pem").write_text("cert and key")
    return home, store, audit, keeper


T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def test_a_snapshot_holds_the_state_keys_audit_chain_and_blobs(tmp_path: Path) -> None:
    home, store, audit, _ = populated(tmp_path / "home")
    taken = snapshot.take(home, audit, tmp_path / "snap", {}, 1, {"host": "r", "every": 1.0,
                                                                 "keep": 2})  # fmt: skip
    files = taken.manifest["files"]
    assert {"state.db", "secrets.key", "audit.key", "audit.head", "audit.log"} <= set(files)
    assert "certs/app_shop.pem" in files
    blob_paths = {b["path"] for b in taken.manifest["blobs"]}
    assert "apps/shop/artifacts/r1.tar.gz" in blob_paths
    assert any(p.startswith("audit.log.") for p in blob_paths)
    assert backup.integrity(tmp_path / "snap" / "state.db") == []
    found = snapshot.verify(tmp_path / "snap")
    assert found["counts"]["apps"] == 1 and found["counts"]["secrets"] == 1
    assert found["audit_entries"] >= 8
    store.close()


def test_ship_then_restore_brings_back_everything_and_the_chain_verifies(tmp_path: Path) -> None:
    home, store, audit, keeper = populated(tmp_path / "home")
    key, replica, known = ReplicaKey.generate(), FakeReplica(), set[str]()
    settings = Settings("rep1", 1.0, 2)
    for seq in (1, 2, 3):
        shipped = run(ship(home, audit, replica, key, seq, settings, {}, known))
        assert shipped.seq == seq
    assert names.seqs(list(replica.files)) == [2, 3]  # keep = 2
    assert all(b"postgres://secret" not in v and b"act 1" not in v for v in replica.files.values())
    blob_puts = [p for p in replica.puts if p.startswith("blobs/")]
    assert len(blob_puts) == len(set(blob_puts))  # each blob once
    keeper.set("shop", "DATABASE_URL", "postgres://newer", "tester")  # after the last copy
    store.close()

    new = Home(tmp_path / "new")
    done = run(restore(new, replica, key))
    assert done["seq"] == 3 and done["audit_ok"] and done["counts"]["secrets"] == 1
    assert load_settings(new) == settings and (new.root / KEY_FILE).exists()
    restored = Store(new.db)
    assert SecretKeeper(new.secrets_key, restored).reveal("shop", "DATABASE_URL") == (
        "postgres://secret"  # the change after the last copy is what is lost
    )
    # one generation newer than the copied one: the hosts will refuse the old control plane
    assert done["generation"] == stored_hosts.generation(restored) == 2
    restored.close()
    artifact = new.app_dir("shop") / "artifacts" / "r1.tar.gz"
    assert artifact.read_bytes() == b"release one" * 100
    assert (new.root / "certs" / "app_shop.pem").read_text() == "cert and key"
    checked = AuditLog(new.root).verify()
    assert checked.ok and checked.entries == done["audit_entries"]
    assert AuditLog(new.root).entries()[-1].action == "control restore"
    with pytest.raises(Conflict, match="already holds a control plane"):
        run(restore(new, replica, key))


def test_a_damaged_newest_snapshot_falls_back_and_a_wrong_key_is_named(tmp_path: Path) -> None:
    home, store, audit, _ = populated(tmp_path / "home")
    key, replica = ReplicaKey.generate(), FakeReplica()
    for seq in (1, 2):
        run(ship(home, audit, replica, key, seq, Settings("rep1"), {}, set()))
    store.close()
    newest = names.snapshot_name(2)
    replica.files[newest] = replica.files[newest][:-10]
    assert run(restore(Home(tmp_path / "a"), replica, key))["seq"] == 1
    with pytest.raises(ReplicaError, match="another replica key"):
        run(restore(Home(tmp_path / "b"), replica, ReplicaKey.generate()))
    with pytest.raises(ReplicaError, match="no snapshot"):
        run(restore(Home(tmp_path / "c"), FakeReplica(), key))


def test_the_replicator_ships_changes_only_and_shows_a_failure(tmp_path: Path) -> None:
    home, store, audit, keeper = populated(tmp_path / "home")
    sealed.write_key(home.root / KEY_FILE, ReplicaKey.generate())
    replica = FakeReplica()

    async def scenario() -> None:
        rep = Replicator(home, store, audit, lambda host: replica, dict)
        rep.configure(Settings("rep1", 1.0, 3))
        assert (await rep.cycle()) is not None and rep.view()["state"] == "ok"
        assert (await rep.cycle()) is None  # nothing changed: nothing sent
        assert rep.view()["behind"] < 1
        keeper.set("shop", "TOKEN", "v", "tester")
        replica.is_cut = True
        with pytest.raises(ReplicaError):
            await rep.cycle()
        view = rep.view()
        assert view["state"] == "failing" and "does not answer" in view["error"]
        replica.is_cut = False
        shipped = await rep.cycle()
        assert shipped is not None and shipped.seq == 2 and rep.view()["state"] == "ok"
        rep.confirmed_at = 0.0  # time to ask whether the replica still holds the copy
        replica.files.clear()  # the replica host lost its folder
        again_shipped = await rep.cycle()
        assert again_shipped is not None and again_shipped.seq == 3
        done = await restore(Home(tmp_path / "copy"), replica, read_key(home.root / KEY_FILE))
        assert done["seq"] == 3  # with every blob sent again
        replica.is_cut = True
        rep.confirmed_at = 0.0
        with pytest.raises(ReplicaError):  # nothing changed, but the replica is gone
            await rep.cycle()
        assert rep.view()["state"] == "failing"
        replica.is_cut = False
        again = Replicator(home, store, audit, lambda host: replica, dict)  # a restart
        shipped = await again.cycle(force=True)
        assert shipped is not None and shipped.seq == 4  # after the replica's newest

    run(scenario())
    store.close()


def test_settings_and_paths_out_of_bounds_are_refused() -> None:
    from slipway.daemon.replica_ops import check_settings
    from slipway.errors import UsageError

    assert check_settings("rep1", None, None) == Settings("rep1", 2.0, 3)
    for every, keep in ((0.1, 3), (float("nan"), 3), (float("inf"), 3), (5.0, 0), (5.0, 101)):
        with pytest.raises(UsageError):
            check_settings("rep1", every, keep)
    for bad in ("../etc/passwd", "/etc/passwd", "apps/../../x", ""):
        with pytest.raises(ReplicaError, match="outside the home"):
            snapshot.blob_path(bad)
    assert snapshot.blob_path("apps/shop/artifacts/r1.tar.gz") == Path(
        "apps/shop/artifacts/r1.tar.gz"
    )


def test_blobs_no_kept_snapshot_needs_are_removed_once_every_kept_one_is_known(
    tmp_path: Path,
) -> None:
    home, store, audit, _ = populated(tmp_path / "home")
    key, replica, known = ReplicaKey.generate(), FakeReplica(), set[str]()
    referenced: dict[int, set[str]] = {}
    settings = Settings("rep1", 1.0, 2)
    archive = home.app_dir("shop") / "artifacts" / "r1.tar.gz"
    r1 = names.blob_name(names.blob_id(key, snapshot.sha256(archive)))
    stray = names.blob_name("f" * 64)
    replica.files[names.snapshot_name(1)] = b"made by a daemon before a restart"
    replica.files[stray] = b"a blob only it knew"

    def shipped(seq: int) -> None:
        run(ship(home, audit, replica, key, seq, settings, {}, known, referenced))

    shipped(2)
    assert r1 in replica.files and stray in replica.files  # snapshot 1's blobs are unknown
    shipped(3)  # every kept snapshot is known now: the stray blob goes
    assert stray not in replica.files and r1 in replica.files
    archive.unlink()  # the release was pruned
    archive.with_name("r1.tar.gz.sha256").unlink()
    shipped(4)
    assert r1 in replica.files  # snapshot 3 still needs it
    shipped(5)
    assert r1 not in replica.files
    store.close()
    assert run(restore(Home(tmp_path / "new"), replica, key))["seq"] == 5


def test_a_replica_far_behind_is_an_alert_and_none_is_not() -> None:
    from slipway.alerts import rules
    from slipway.config.alerts import DEFAULT_RULES

    [rule] = [r for r in DEFAULT_RULES if r.metric == "control_replica_behind"]

    def facts(behind: float | None) -> rules.Facts:
        return rules.Facts({}, 60.0, 0, 0, 0.5, replica_behind=behind)

    assert rule.breached(rules.read(rule, facts(120.0)).value or 0)
    assert "120s behind" in rules.summary(rule, rules.read(rule, facts(120.0)))
    assert not rule.breached(rules.read(rule, facts(2.0)).value or 0)
    assert rules.read(rule, facts(None)).value == 0.0  # not replicated: resolves


def test_behind_counts_from_the_start_until_a_first_copy(tmp_path: Path) -> None:
    home, store, audit, _ = populated(tmp_path / "home")
    rep = Replicator(home, store, audit, lambda host: FakeReplica(is_cut=True), dict)
    assert rep.behind() is None
    rep.configure(Settings("rep1"))
    assert rep.behind(rep.started_at + 90) == 90  # never copied: as far behind as it runs
    store.close()


def test_the_replica_as_the_cli_shows_it(capsys: pytest.CaptureFixture[str]) -> None:
    from slipway.cli.control_cmds import show_replica
    from slipway.cli.host_cmds import replica_note

    home_view = {
        "state": "failing", "host": "rep1", "every": 5.0, "keep": 3, "behind": 42.0,
        "seq": 7, "shipped_at": 1.0, "bytes": 26_000, "took": 0.24,
        "error": "host rep1 does not answer", "failing_since": 2.0, "failures": 4,
    }  # fmt: skip
    show_replica(home_view)
    show_replica({"state": "off"})
    shown = capsys.readouterr().out
    assert "replica on rep1" in shown and "42.0s behind" in shown and "snapshot 7" in shown
    assert "does not answer" in shown and "not replicated" in shown
    assert "failing" in replica_note(home_view)
    assert "(1.5s behind)" in replica_note(home_view | {"state": "ok", "behind": 1.5})
