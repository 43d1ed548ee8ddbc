"""Gates end to end: the real daemon runs each gate on a real release (the app's own tests,
detect-secrets, bandit, the OSV audit, the load on real instances) and a failing gate stops
the deploy with the stable release serving and the candidate stopped."""

from __future__ import annotations

import base64
import hashlib
import json
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psutil

from slipway.loadgen import BackgroundLoad
from tests.integration.conftest import App, Slipway, wait_for

ROOT = Path(__file__).resolve().parents[2]
OSV_DATA = ROOT / "tests" / "data" / "osv"
SCANS_ON: dict[str, Any] = {
    "gates.secrets": {"enabled": True},
    "gates.code": {"enabled": True},
}
# Built from pieces so that this file itself holds no credential-shaped string.
FAKE_AWS_KEY = "AKIA" + "Z7QW3RT5YU8IOP2A"
UNIT_GATE = '[[gates.test]]\nname = "unit"\ncommand = "python -m unittest discover -s tests -q"\n'


def release_serving(app: App) -> str:
    answer: dict[str, Any] = httpx.get(app.url, timeout=5).json()
    return str(answer["release"])


def running_releases(slipway: Slipway, app: App) -> set[str]:
    return {i["release"] for i in slipway.ps(app.name) if i["state"] != "stopped"}


def osv_database(folder: Path, age: timedelta = timedelta(0)) -> Path:
    """The test OSV data set, dated `age` ago (the gate judges a database's age by its
    newest record)."""
    folder.mkdir(parents=True)
    modified = (datetime.now(UTC) - age).strftime("%Y-%m-%dT%H:%M:%SZ")
    for path in OSV_DATA.glob("*.json"):
        record = json.loads(path.read_text())
        record["modified"] = modified
        (folder / path.name).write_text(json.dumps(record))
    return folder


def vulnerable_wheel(folder: Path) -> None:
    """slipway-test-vulnpkg 1.0.0 as a wheel in `folder`, so a build installs the pinned
    vulnerable version without any network."""
    folder.mkdir()
    name, version = "slipway_test_vulnpkg", "1.0.0"
    info = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": b'VERSION = "1.0.0"\n',
        f"{info}/METADATA": (
            f"Metadata-Version: 2.1\nName: slipway-test-vulnpkg\nVersion: {version}\n"
        ).encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\n"
        b"Tag: py3-none-any\n",
    }
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{info}/RECORD,,")
    files[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    with zipfile.ZipFile(folder / f"{name}-{version}-py3-none-any.whl", "w") as wheel:
        for path, data in files.items():
            wheel.writestr(path, data)


def check(slipway: Slipway, app: App, ok: bool) -> dict[str, Any]:
    """`slipway check --json`; its gate results by name."""
    proc = slipway.run("check", "--app", str(app.dir), "--json", check=False)
    assert (proc.returncode == 0) is ok, proc.stdout + proc.stderr
    gates = slipway.json("gates", "--app", app.name)
    return {g["gate"]: g for g in gates}


# the app's own tests ---------------------------------------------------------------------


def break_the_test(app: App) -> None:
    test = app.dir / "tests" / "test_app.py"
    expected = 'self.assertEqual(body["greeting"], "hi from a test")'
    assert expected in test.read_text()
    test.write_text(test.read_text().replace(expected, expected.replace("hi", "bye")))


def test_a_failing_test_gate_stops_the_deploy_and_the_stable_release_keeps_serving(
    running: Slipway,
) -> None:
    app = running.make_app(extra=UNIT_GATE)
    running.deploy(app)
    assert release_serving(app) == "r1"

    break_the_test(app)
    proc = running.deploy(app, check=False)
    assert proc.returncode == 1
    said = proc.stdout + proc.stderr
    assert "gate 'unit' failed" in said
    assert "exit code 1" in said
    assert "AssertionError" in said  # the test's own output is the evidence
    assert "--skip-gate unit" in said

    assert release_serving(app) == "r1"
    assert running_releases(running, app) == {"r1"}, "the candidate never started"
    gates = {g["gate"]: g for g in running.json("gates", "r2", "--app", app.name)}
    assert gates["unit"]["status"] == "failed"
    assert Path(gates["unit"]["log_path"]).read_text().count("FAILED") == 1
    releases = {r["id"]: r for r in running.json("releases", "--app", app.name)}
    assert releases["r2"]["gates"] == {"unit": "failed"}


def test_a_skipped_gate_is_recorded_with_its_reason_and_shown(running: Slipway) -> None:
    app = running.make_app(extra=UNIT_GATE)
    break_the_test(app)

    refused = running.deploy(app, "--skip-gate", "unit", check=False)
    assert refused.returncode != 0 and "needs a reason" in refused.stdout + refused.stderr
    unknown = running.deploy(app, "--skip-gate", "nope", "--reason", "x", check=False)
    assert unknown.returncode != 0
    assert "no gate by that name" in unknown.stdout + unknown.stderr
    assert "unit" in unknown.stdout + unknown.stderr  # lists the gates there are
    assert running.json("status")["apps"] == [], "nothing was built"

    running.deploy(app, "--skip-gate", "unit", "--reason", "flaky test, tracked in #12")
    assert release_serving(app) == "r1"
    gate = running.json("gates", "--app", app.name)[0]
    assert gate["status"] == "skipped"
    assert gate["reason"] == "flaky test, tracked in #12"
    assert gate["who"]
    release = running.json("releases", "--app", app.name)[0]
    assert release["skipped_gates"] == {"unit": "flaky test, tracked in #12"}
    assert "flaky test, tracked in #12" in running.run("releases", "--app", app.name).stdout
    assert running.json("status")["apps"][0]["last_deployment"]["skip_gates"] == {
        "unit": "flaky test, tracked in #12"
    }


def test_a_test_gate_that_hangs_fails_closed_at_its_timeout(running: Slipway) -> None:
    hang = '[[gates.test]]\nname = "hangs"\ncommand = "sleep 600"\ntimeout = "1s"\n'
    app = running.make_app(extra=hang)
    gates = check(running, app, ok=False)
    assert gates["hangs"]["status"] == "failed"
    assert "timed out after 1s" in gates["hangs"]["summary"]
    assert not [p for p in running.our_processes() if "sleep 600" in " ".join(p.cmdline())]


# scans -----------------------------------------------------------------------------------


def test_the_scans_pass_on_the_example_and_fail_on_a_leaked_key_and_unsafe_code(
    running: Slipway, tmp_path: Path
) -> None:
    database = osv_database(tmp_path / "osv")
    dependencies: dict[str, Any] = {"enabled": True, "database": str(database)}
    sections: dict[str, Any] = SCANS_ON | {"gates.dependencies": dependencies}
    app = running.make_app(**sections)
    gates = check(running, app, ok=True)
    assert {name: g["status"] for name, g in gates.items()} == {
        "secrets": "passed",
        "code": "passed",
        "dependencies": "passed",
    }
    assert gates["dependencies"]["evidence"]["packages"] >= 1
    assert running.json("status")["apps"][0]["current_release"] is None, "a check deploys nothing"

    (app.dir / "settings.py").write_text(
        f'AWS_ACCESS_KEY_ID = "{FAKE_AWS_KEY}"\n'
        "DEPLOY_KEY = '''\n-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n'''\n"
    )
    (app.dir / "run.py").write_text(
        "import subprocess\n\n\ndef listing(user_input):\n"
        '    return subprocess.run(f"ls {user_input}", shell=True)\n'
    )
    proc = running.run("check", "--app", str(app.dir), check=False)
    assert proc.returncode == 1
    gates = {g["gate"]: g for g in running.json("gates", "--app", app.name)}
    assert gates["secrets"]["status"] == "failed"
    assert gates["code"]["status"] == "failed"
    found = {(f["where"], f["what"]) for f in gates["secrets"]["findings"]}
    assert ("settings.py:1", "AWS Access Key") in found
    assert ("settings.py:3", "Private Key") in found
    assert any(
        f["where"] == "run.py:5" and f["what"].startswith("B602") for f in gates["code"]["findings"]
    )
    # The secret's value is nowhere: not in the output, the results, the logs, the state.
    everything = [proc.stdout, proc.stderr, json.dumps(gates)]
    everything += [p.read_text(errors="replace") for p in running.home.rglob("*.log")]
    everything.append((running.home / "state.db").read_bytes().decode(errors="replace"))
    assert not [text for text in everything if FAKE_AWS_KEY in text]


def test_the_dependency_audit_fails_on_a_vulnerable_pin_and_closed_on_a_bad_database(
    running: Slipway, tmp_path: Path
) -> None:
    fresh = osv_database(tmp_path / "fresh")
    dependencies: dict[str, Any] = {"enabled": True, "database": str(fresh)}
    sections: dict[str, Any] = {
        "gates.dependencies": dependencies,
        "build": {"command": "pip install -q -r requirements.txt"},
    }
    app = running.make_app(**sections)
    vulnerable_wheel(app.dir / "wheels")
    (app.dir / "requirements.txt").write_text(
        "--no-index\n--find-links ./wheels\nslipway-test-vulnpkg==1.0.0\n"
    )
    gate = check(running, app, ok=False)["dependencies"]
    assert gate["status"] == "failed"
    assert gate["findings"][0]["where"] == "slipway-test-vulnpkg 1.0.0"
    assert gate["findings"][0]["what"].startswith("TEST-2026-0001")
    assert "fixed in 1.0.1" in gate["findings"][0]["what"]

    cases = {
        "too old": {"database": str(osv_database(tmp_path / "old", timedelta(days=30)))},
        "missing": {"database": str(tmp_path / "nowhere")},
        "none set": {},
        "server down": {"url": "http://127.0.0.1:9"},
    }
    reasons = {
        "too old": "30 days old",
        "missing": "nowhere",
        "none set": "no vulnerability database is configured",
        "server down": "127.0.0.1:9",
    }
    for case, settings in cases.items():
        app.write_config(**{"gates.dependencies": {"enabled": True, **settings}})
        gate = check(running, app, ok=False)["dependencies"]
        assert gate["status"] == "failed", case
        assert gate["summary"].startswith("could not audit the dependencies"), case
        assert reasons[case] in gate["summary"], (case, gate["summary"])

    app.write_config(**{"gates.dependencies": {"enabled": True, "on_unavailable": "warn"}})
    gate = check(running, app, ok=True)["dependencies"]
    assert gate["status"] == "skipped", "not checked is never passed"
    assert "not checked" in running.run("releases", "--app", app.name).stdout


# the performance gate --------------------------------------------------------------------


def public_requests(slipway: Slipway, app: App) -> int:
    totals = slipway.json("metrics", "--app", app.name, "--since", "1h")["totals"]
    return sum(int(t["requests"]) for t in totals.values())


def test_the_performance_gate_fails_a_slower_candidate_without_touching_the_public_listener(
    running: Slipway,
) -> None:
    perf: Any = {"requests": 1000, "warmup": 20, "concurrency": 8, "max_p95_increase": 0.2}
    app = running.make_app(**{"gates.performance": perf}, env={"EXTRA_LATENCY_MS": "10"})
    running.deploy(app)
    for _ in range(5):
        httpx.get(app.url, timeout=5)
    wait_for(lambda: public_requests(running, app) == 5, 20, "5 public requests counted")

    app.write_config(**{"gates.performance": perf}, env={"EXTRA_LATENCY_MS": "30"})
    proc = running.deploy(app, check=False)
    assert proc.returncode == 1
    assert "gate 'performance' failed" in proc.stderr
    assert "latency p95" in proc.stderr and "e-value" in proc.stderr
    gate = running.json("gates", "--app", app.name)[0]
    evidence = gate["evidence"]
    assert evidence["decision"] == "fail"
    # 30 ms against 10 ms: about 3x on a quiet machine; a busy one adds the same delay to
    # both releases, which shrinks the ratio (1.7x seen in CI beside the fleet tests)
    assert 1.4 < evidence["ratios"]["p95"] < 4.0, evidence
    p95 = evidence["checks"][0]
    assert p95["metric"] == "latency p95" and p95["verdict"] == "slower"
    assert p95["e_slower"] >= p95["fail_at"]
    # It stopped once decided: about 11 blocks of 40 pairs, far from the budget.
    assert evidence["candidate"]["requests"] == evidence["stable"]["requests"] == evidence["pairs"]
    assert 440 <= evidence["pairs"] < 1000
    assert release_serving(app) == "r1"
    assert running_releases(running, app) == {"r1"}
    shown = running.run("gates", "--app", app.name).stdout
    assert "latency p95" in shown and "decision: fail after" in shown

    # An identical release passes (the same load, the same latency).
    app.write_config(**{"gates.performance": perf}, env={"EXTRA_LATENCY_MS": "10"})
    running.deploy(app)
    assert release_serving(app) == "r3"
    gate = running.json("gates", "--app", app.name)[0]
    assert gate["status"] == "passed"
    assert gate["evidence"]["decision"] == "pass"

    # A check measures a new build the same way, then stops it: nothing else changes.
    before = {i["id"]: i["weight"] for i in running.ps(app.name)}
    gates = check(running, app, ok=True)
    used = gates["performance"]["evidence"]["stable"]["requests"]
    # One budget, or two: on a busy machine (CI runs other tests beside this one) an
    # identical release can be undecided after 1000 pairs, and on_inconclusive = "retry"
    # (the default) measures once more (1100 pairs seen in CI).
    assert 0 < used <= 2 * 1000
    assert {i["id"]: i["weight"] for i in running.ps(app.name)} == before
    assert running.app_status(app.name)["current_release"] == "r3"

    # The gates' requests (a few thousand) went straight to the instances: the public
    # listener counted only the 5 sent above, the 2 of release_serving() and the one sent
    # now (which proves the log was read up to here).
    httpx.get(app.url, timeout=5)
    wait_for(lambda: public_requests(running, app) >= 8, 20, "the 8th public request counted")
    assert public_requests(running, app) == 8


def test_the_performance_gate_under_a_saturating_load_passes_an_identical_release(
    running: Slipway,
) -> None:
    """The host at peak: a neighbour app behind the same HAProxy takes as much load as the
    machine can serve while hello is checked. An identical release is never judged slower
    (the noise lands on both releases): it passes on a busy host; under CI's extra load
    (another test worker on the same 2 cores: p95 32 ms, p99 102 ms, 18 of 50 blocks over
    +20%) +20% on p95 cannot be shown within 2000 pairs either way, and "warn" lets that
    through with a warning. A slower release still fails."""
    neighbour = running.make_app("neighbour")
    running.deploy(neighbour)
    perf: Any = {"requests": 2000, "warmup": 100, "on_inconclusive": "warn"}
    app = running.make_app(**{"gates.performance": perf})
    running.deploy(app)
    with BackgroundLoad(neighbour.url, concurrency=32, client="raw") as load:
        wait_for(lambda: load.result is None and psutil.cpu_percent(0.5) > 80, 10, "a busy CPU")
        gates = check(running, app, ok=True)
        slower = {"EXTRA_LATENCY_MS": "20"}
        app.write_config(**{"gates.performance": perf}, env={"GREETING": "hello"} | slower)
        failed = check(running, app, ok=False)
    served = load.result
    assert served is not None and served.sent > 1000, "the neighbour was under load"
    evidence = gates["performance"]["evidence"]
    assert gates["performance"]["status"] == "passed", gates["performance"]["summary"]
    assert evidence["decision"] in ("pass", "inconclusive"), evidence
    assert failed["performance"]["status"] == "failed"
    assert failed["performance"]["evidence"]["decision"] == "fail"
