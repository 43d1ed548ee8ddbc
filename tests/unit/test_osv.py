"""OSV matching, loading and the server client, against the small data set in tests/data/osv."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from slipway.gates.osv import (
    CouldNotCheck,
    OsvDatabase,
    OsvError,
    Vulnerability,
    installed_packages,
    load_database,
    query_server,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "osv"


@pytest.fixture(scope="module")
def db() -> OsvDatabase:
    return load_database(DATA)


def ids(db: OsvDatabase, name: str, version: str) -> list[str]:
    return [v.id for v in db.vulnerabilities(name, version)]


def record(vid: str, **fields: Any) -> dict[str, Any]:
    return {"id": vid, "modified": "2026-01-01T00:00:00Z", **fields}


def pypi(name: str, *events: dict[str, str], versions: list[str] | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"package": {"ecosystem": "PyPI", "name": name}}
    if events:
        entry["ranges"] = [{"type": "ECOSYSTEM", "events": list(events)}]
    if versions is not None:
        entry["versions"] = versions
    return entry


# --- matching -------------------------------------------------------------------------------


def test_shipped_record_for_integration_tests(db: OsvDatabase) -> None:
    vulns = db.vulnerabilities("slipway-test-vulnpkg", "1.0.0")
    assert vulns == [
        Vulnerability(
            id="TEST-2026-0001",
            aliases=("TEST-ALIAS-0001",),
            summary="Test advisory: remote code execution in slipway-test-vulnpkg",
            fixed=("1.0.1",),
        )
    ]
    # the withdrawn TEST-2026-0004 and npm TEST-2026-0005 would match every version
    assert ids(db, "slipway-test-vulnpkg", "1.0.1") == []
    assert ids(db, "slipway-test-vulnpkg", "0.0.1.dev0") == ["TEST-2026-0001"]


def test_introduced_fixed_and_last_affected_in_several_ranges(db: OsvDatabase) -> None:
    assert ids(db, "demo-lib", "0.9") == []
    assert ids(db, "demo-lib", "1.0") == ["TEST-2026-0002"]
    assert ids(db, "demo-lib", "1.2.2") == ["TEST-2026-0002"]
    assert ids(db, "demo-lib", "1.2.3") == []
    assert ids(db, "demo-lib", "1.9") == []
    assert ids(db, "demo-lib", "2.0") == ["TEST-2026-0002"]
    assert ids(db, "demo-lib", "2.1") == ["TEST-2026-0002"]  # last_affected is inclusive
    assert ids(db, "demo-lib", "2.1.post1") == []
    assert ids(db, "demo-lib", "2.2") == []


def test_overlapping_records_both_reported_with_their_own_fixes(db: OsvDatabase) -> None:
    vulns = db.vulnerabilities("demo-lib", "1.1.0")
    assert [(v.id, v.fixed) for v in vulns] == [
        ("TEST-2026-0002", ("1.2.3",)),
        ("TEST-2026-0007", ("1.1.5",)),
    ]
    assert vulns[0].aliases == ("TEST-ALIAS-0002", "TEST-ALIAS-0002B")
    # a last_affected range has nothing to upgrade to
    assert db.vulnerabilities("demo-lib", "2.0")[0].fixed == ()


@pytest.mark.parametrize("name", ["Demo_Lib", "demo-lib", "DEMO.LIB", "demo__lib", "Demo-Lib"])
def test_names_compare_per_pep_503(db: OsvDatabase, name: str) -> None:
    assert ids(db, name, "1.1.0") == ["TEST-2026-0002", "TEST-2026-0007"]


def test_versions_list_compares_parsed_versions(db: OsvDatabase) -> None:
    assert ids(db, "listpkg", "1.0") == ["TEST-2026-0003"]
    assert ids(db, "listpkg", "1.0.0") == ["TEST-2026-0003"]
    assert ids(db, "listpkg", "0.9.0") == ["TEST-2026-0003"]
    assert ids(db, "listpkg", "0.95") == []
    assert ids(db, "listpkg", "2.0.0") == []  # only the npm package of that name has 2.0.0
    (vuln,) = db.vulnerabilities("listpkg", "1.0")
    assert vuln.summary == "Test advisory: listed versions of listpkg leak tokens."
    assert vuln.fixed == () and vuln.aliases == ()


def test_limits_and_unreadable_versions_in_records(db: OsvDatabase) -> None:
    assert ids(db, "limitpkg", "1.5") == ["TEST-2026-0006"]  # introduced 0, limit 2.0
    assert ids(db, "limitpkg", "2.5") == []
    assert db.vulnerabilities("limitpkg", "3.0.5")[0].fixed == ("3.1.0",)  # limit "*": none
    assert ids(db, "limitpkg", "3.1.0") == []
    # an unreadable "fixed" is skipped, so the range stays open (fails closed) ...
    assert ids(db, "limitpkg", "5.5") == ["TEST-2026-0006"]
    # ... and an unreadable "introduced" opens nothing
    assert ids(db, "limitpkg", "4.0") == []


def test_unknown_package_is_clean(db: OsvDatabase) -> None:
    assert db.vulnerabilities("not-in-the-database", "1.0") == []


@pytest.mark.parametrize("version", ["not-a-version", "", "1.0-foo-bar"])
def test_a_version_pep_440_cannot_read_cannot_be_checked(db: OsvDatabase, version: str) -> None:
    with pytest.raises(CouldNotCheck, match="slipway-test-vulnpkg.*PEP 440"):
        db.vulnerabilities("slipway-test-vulnpkg", version)


def test_spec_event_semantics(tmp_path: Path) -> None:
    records = [
        # events out of order are sorted first
        record("T-1", affected=[pypi("a", {"fixed": "2.0"}, {"introduced": "1.0"})]),
        # introduced and fixed at the same version: nothing affected
        record("T-2", affected=[pypi("b", {"introduced": "1.0"}, {"fixed": "1.0"})]),
        # re-introduced after a fix, in one range
        record(
            "T-3",
            affected=[
                pypi("c", {"introduced": "0"}, {"fixed": "1.0"}, {"introduced": "2.0"}),
            ],
        ),
        # the same id twice: the newer "modified" wins
        record("T-4", affected=[pypi("d", {"introduced": "0"})]),
        {**record("T-4", affected=[pypi("d", {"introduced": "9.0"})]), "modified": "2026-03-01"},
    ]
    (tmp_path / "all.json").write_text(json.dumps(records))
    db = load_database(tmp_path / "all.json")
    assert db.records == 4
    assert [ids(db, "a", v) for v in ("0.9", "1.0", "1.9", "2.0")] == [[], ["T-1"], ["T-1"], []]
    assert ids(db, "b", "1.0") == []
    assert [ids(db, "c", v) for v in ("0.1", "1.5", "2.0", "99")] == [
        ["T-3"],
        [],
        ["T-3"],
        ["T-3"],
    ]
    assert ids(db, "d", "1.0") == [] and ids(db, "d", "9.0") == ["T-4"]
    assert db.newest_modified == datetime(2026, 3, 1, tzinfo=UTC)


def test_one_record_listing_a_package_twice_is_reported_once(tmp_path: Path) -> None:
    both = [pypi("dup", {"introduced": "0"}), pypi("DUP", versions=["1.0"])]
    (tmp_path / "r.json").write_text(json.dumps(record("T-9", affected=both)))
    assert ids(load_database(tmp_path / "r.json"), "dup", "1.0") == ["T-9"]


# --- loading --------------------------------------------------------------------------------


def test_folder_counts_records_and_newest_modified(db: OsvDatabase) -> None:
    assert db.source == str(DATA)
    assert db.records == 7  # the withdrawn one is a record too, just never matched
    assert db.newest_modified == datetime(2026, 2, 10, 16, 45, tzinfo=UTC)
    assert db.newest_modified.tzinfo is not None


def test_folder_is_searched_recursively(tmp_path: Path) -> None:
    (tmp_path / "PyPI" / "deep").mkdir(parents=True)
    for file in DATA.glob("*.json"):
        (tmp_path / "PyPI" / "deep" / file.name).write_bytes(file.read_bytes())
    (tmp_path / "README.txt").write_text("not a record")
    assert ids(load_database(tmp_path), "slipway-test-vulnpkg", "1.0.0") == ["TEST-2026-0001"]


def test_zip_export(tmp_path: Path) -> None:
    archive = tmp_path / "all.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for file in sorted(DATA.glob("*.json")):
            zf.write(file, file.name)
        zf.writestr("notes.txt", "ignored")
    db = load_database(archive)
    assert db.records == 7 and db.source == str(archive)
    assert ids(db, "slipway-test-vulnpkg", "1.0.0") == ["TEST-2026-0001"]


def test_single_record_file() -> None:
    db = load_database(DATA / "TEST-2026-0001.json")
    assert db.records == 1
    assert db.newest_modified == datetime(2026, 1, 15, 10, tzinfo=UTC)
    assert ids(db, "slipway-test-vulnpkg", "1.0.0") == ["TEST-2026-0001"]


def test_list_file(tmp_path: Path) -> None:
    records = [json.loads(f.read_text()) for f in sorted(DATA.glob("*.json"))]
    (tmp_path / "list.json").write_text(json.dumps(records))
    db = load_database(tmp_path / "list.json")
    assert db.records == 7
    assert ids(db, "demo-lib", "1.1") == ["TEST-2026-0002", "TEST-2026-0007"]


def test_offsets_become_utc(tmp_path: Path) -> None:
    (tmp_path / "r.json").write_text(json.dumps({"id": "T", "modified": "2026-01-01T02:00+02:00"}))
    assert load_database(tmp_path / "r.json").newest_modified == datetime(2026, 1, 1, tzinfo=UTC)


GOOD = json.dumps(record("T-OK"))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "invalid JSON"),
        (b"\xff\xfe\x00garbage", "invalid JSON"),
        ('"a string"', "expected an OSV record, got a JSON str"),
        ("[1, 2]", r"\[0\]: expected an OSV record, got a JSON int"),
        (json.dumps({"modified": "2026-01-01T00:00:00Z"}), "without 'id'"),
        (json.dumps({"id": "T-1"}), "without 'modified'"),
        (json.dumps({"id": "T-1", "modified": 5}), "without 'modified'"),
        (json.dumps({"id": "T-1", "modified": "yesterday"}), "not an RFC 3339 timestamp"),
        (json.dumps([record("T-2"), {"id": "T-3"}]), r"\[1\]: OSV record without 'modified'"),
    ],
)
def test_malformed_files_name_the_file(tmp_path: Path, content: str | bytes, message: str) -> None:
    folder = tmp_path / "db"
    folder.mkdir()
    (folder / "good.json").write_text(GOOD)
    bad = folder / "sub" / "bad.json"
    bad.parent.mkdir()
    if isinstance(content, bytes):
        bad.write_bytes(content)
    else:
        bad.write_text(content)
    for path in (folder, bad):
        with pytest.raises(OsvError, match=message) as raised:
            load_database(path)
        assert str(bad) in str(raised.value)
    archive = tmp_path / "db.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("good.json", GOOD)
        zf.writestr("PyPI/bad.json", content)
    with pytest.raises(OsvError, match=message) as raised:
        load_database(archive)
    assert f"{archive} (member PyPI/bad.json)" in str(raised.value)


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(OsvError, match="does not exist; point database at an OSV export"):
        load_database(tmp_path / "nowhere")


def test_not_a_zip(tmp_path: Path) -> None:
    (tmp_path / "all.zip").write_text("<html>an error page saved by mistake</html>")
    with pytest.raises(OsvError, match=r"all\.zip: not a readable zip file"):
        load_database(tmp_path / "all.zip")


def test_unreadable_file(tmp_path: Path) -> None:
    (tmp_path / "good.json").write_text(GOOD)
    (tmp_path / "dir.json").mkdir()  # a folder named *.json is not a record: skipped
    bad = tmp_path / "gone.json"
    bad.symlink_to(tmp_path / "deleted-target.json")  # works as root too, unlike chmod 0
    with pytest.raises(OsvError, match="cannot read it.*you may read it") as raised:
        load_database(tmp_path)
    assert str(bad) in str(raised.value)


@pytest.mark.parametrize("kind", ["folder", "zip", "list"])
def test_empty_database(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "db"
    if kind == "folder":
        path.mkdir()
        (path / "README.md").write_text("no records here")
    elif kind == "zip":
        path = tmp_path / "all.zip"
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("README.md", "no records here")
    else:
        path = tmp_path / "all.json"
        path.write_text("[]")
    with pytest.raises(OsvError, match="is empty.*point database at an OSV export") as raised:
        load_database(path)
    assert str(path) in str(raised.value)


def test_a_large_export_loads_quickly(tmp_path: Path) -> None:
    for i in range(5000):
        affected = [
            pypi(f"Pkg_{i % 700}", {"introduced": "0"}, {"fixed": f"{i % 9}.{i % 7}.1"}),
            {"package": {"ecosystem": "npm", "name": f"pkg-{i}"}, "versions": ["1.0.0"]},
        ]
        versions_entry = pypi(f"pkg-{i % 700}", versions=[f"0.{n}" for n in range(40)])
        rec = record(f"GEN-{i:05}", summary=f"generated {i}", affected=[*affected, versions_entry])
        (tmp_path / f"GEN-{i:05}.json").write_text(json.dumps(rec))
    started = time.monotonic()
    db = load_database(tmp_path)
    assert db.records == 5000
    assert all(isinstance(db.vulnerabilities(f"pkg-{n}", "0.0.1"), list) for n in range(700))
    assert time.monotonic() - started < 30  # generous: seconds in practice, not minutes
    assert "GEN-00007" in ids(db, "pkg-7", "0.5")


# --- installed packages ---------------------------------------------------------------------


def _dist_info(site: Path, folder: str, name: str, version: str | None) -> None:
    info = site / folder
    info.mkdir()
    lines = ["Metadata-Version: 2.1", f"Name: {name}"]
    if version is not None:
        lines.append(f"Version: {version}")
    (info / "METADATA").write_text("\n".join(lines) + "\n")


def test_installed_packages_in_a_real_virtualenv(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    (site,) = venv.glob("lib/python*/site-packages")
    _dist_info(site, "slipway_test_vulnpkg-1.0.0.dist-info", "slipway-test-vulnpkg", "1.0.0")
    _dist_info(site, "Demo_Lib-1.1.dist-info", "Demo_Lib", "1.1")
    _dist_info(site, "demo_lib-1.1.dist-info", "demo-lib", "1.1")  # a stale duplicate
    _dist_info(site, "aaa-2.0.dist-info", "AAA", "2.0")
    _dist_info(site, "odd-0.dist-info", "odd", None)
    packages = installed_packages(venv)
    assert packages == [
        ("AAA", "2.0"),
        ("Demo_Lib", "1.1"),
        ("odd", ""),
        ("slipway-test-vulnpkg", "1.0.0"),
    ]


def test_installed_packages_needs_a_virtualenv(tmp_path: Path) -> None:
    with pytest.raises(OsvError, match="no lib/python.*/site-packages.*virtualenv") as raised:
        installed_packages(tmp_path)
    assert str(tmp_path) in str(raised.value)


# --- server ---------------------------------------------------------------------------------


class FakeOsv:
    """An OSV API on 127.0.0.1 answering from the test data set, one vuln per page.

    The first path segment picks a failure: /broken (HTTP 500), /garbage (not JSON),
    /short (too few results), /slow (answers after a second)."""

    def __init__(self) -> None:
        self.db = load_database(DATA)
        self.records = {f.stem: json.loads(f.read_text()) for f in DATA.glob("*.json")}
        self.batches: list[int] = []
        self.fetched: list[str] = []

    def answer(self, method: str, path: str, body: Any) -> tuple[int, bytes]:
        mode, _, rest = path.partition("/v1/")
        mode = mode.strip("/")
        if mode == "broken":
            return 500, b"{}"
        if mode == "garbage":
            return 200, b"<html>hello</html>"
        if mode == "slow":
            time.sleep(1.0)
        if method == "POST" and rest == "querybatch":
            self.batches.append(len(body["queries"]))
            results = [self.query(q) for q in body["queries"]]
            return 200, json.dumps(
                {"results": results[:-1] if mode == "short" else results}
            ).encode()
        if method == "GET" and rest.startswith("vulns/") and rest[6:] in self.records:
            self.fetched.append(rest[6:])
            return 200, json.dumps(self.records[rest[6:]]).encode()
        return 404, b'{"code": 5, "message": "Not found"}'

    def query(self, query: dict[str, Any]) -> dict[str, Any]:
        assert query["package"]["ecosystem"] == "PyPI"
        found = self.db.vulnerabilities(query["package"]["name"], query["version"])
        page = int(query.get("page_token", "0"))
        result: dict[str, Any] = {}
        if page < len(found):
            result["vulns"] = [{"id": found[page].id, "modified": "2026-01-01T00:00:00Z"}]
        if page + 1 < len(found):
            result["next_page_token"] = str(page + 1)
        return result


@pytest.fixture
def server() -> Iterator[tuple[str, FakeOsv]]:
    fake = FakeOsv()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            self.reply(*fake.answer("POST", self.path, json.loads(self.rfile.read(length))))

        def do_GET(self) -> None:
            self.reply(*fake.answer("GET", self.path, None))

        def reply(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # client timed out
                self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", fake
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def test_query_server_matches_the_offline_answer(server: tuple[str, FakeOsv]) -> None:
    url, fake = server
    packages = [
        ("slipway-test-vulnpkg", "1.0.0"),
        ("Demo_Lib", "1.1.0"),  # two advisories: needs the second page
        ("listpkg", "1.0"),
        ("clean-package", "3.0"),
        ("slipway-test-vulnpkg", "1.0.1"),
    ]
    db = load_database(DATA)
    found = asyncio.run(query_server(url + "/", packages, timeout=5))
    assert list(found) == packages
    for name, version in packages:
        assert found[(name, version)] == db.vulnerabilities(name, version)
    assert [v.id for v in found[("Demo_Lib", "1.1.0")]] == ["TEST-2026-0002", "TEST-2026-0007"]
    assert found[("slipway-test-vulnpkg", "1.0.0")][0].fixed == ("1.0.1",)
    assert sorted(fake.fetched) == [
        "TEST-2026-0001",
        "TEST-2026-0002",
        "TEST-2026-0003",
        "TEST-2026-0007",
    ]


def test_query_server_batches_of_at_most_1000(server: tuple[str, FakeOsv]) -> None:
    url, fake = server
    packages = [(f"filler-{i}", "1.0") for i in range(1500)] + [("slipway-test-vulnpkg", "1.0")]
    found = asyncio.run(query_server(url, packages, timeout=10))
    assert fake.batches == [1000, 501]
    assert [v.id for v in found[("slipway-test-vulnpkg", "1.0")]] == ["TEST-2026-0001"]
    assert sum(1 for vulns in found.values() if vulns) == 1


def test_query_server_with_nothing_to_ask(server: tuple[str, FakeOsv]) -> None:
    url, fake = server
    assert asyncio.run(query_server(url, [], timeout=5)) == {}
    assert fake.batches == []


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("broken", "HTTP 500"),
        ("garbage", "not JSON"),
        ("short", "lacks one result per query"),
        ("slow", "no answer in time"),
    ],
)
def test_query_server_failures_name_the_url(
    server: tuple[str, FakeOsv], mode: str, message: str
) -> None:
    url = f"{server[0]}/{mode}"
    with pytest.raises(OsvError, match=message) as raised:
        asyncio.run(query_server(url, [("slipway-test-vulnpkg", "1.0.0")], timeout=0.3))
    assert f"{url}/v1/querybatch" in str(raised.value)


def test_query_server_missing_advisory_is_an_error(server: tuple[str, FakeOsv]) -> None:
    url, fake = server
    del fake.records["TEST-2026-0002"]
    with pytest.raises(OsvError, match="HTTP 404") as raised:
        asyncio.run(query_server(url, [("demo-lib", "1.1")], timeout=5))
    assert f"{url}/v1/vulns/TEST-2026-0002" in str(raised.value)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_query_server_unreachable() -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    with pytest.raises(OsvError, match="check the URL and that the OSV server is running") as e:
        asyncio.run(query_server(url, [("slipway-test-vulnpkg", "1.0.0")], timeout=5))
    assert url in str(e.value)


def test_query_server_refuses_unreadable_versions_before_asking() -> None:
    url = f"http://127.0.0.1:{_closed_port()}"  # nothing listens: no request may be made
    with pytest.raises(CouldNotCheck, match="weird 'banana'"):
        asyncio.run(query_server(url, [("ok", "1.0"), ("weird", "banana")], timeout=5))
