"""The secrets and code scanners, running the real detect-secrets and bandit on small folders."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
from pathlib import Path

from slipway.gates.base import GateResult
from slipway.gates.scanners import scan_code, scan_secrets

# Built from parts so that scanning this test file finds nothing.
AWS_KEY = "AKIA" + "Q7XJ2MZP4KD9RT3W"
KEY_HEADER = "-----BEGIN RSA " + "PRIVATE KEY-----"


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def clean_app(root: Path) -> Path:
    return write(
        root,
        {
            "app.py": """\
                import os

                def port() -> int:
                    return int(os.environ.get("PORT", "8080"))
                """,
            "worker.py": "def work(items):\n    return [i * 2 for i in items]\n",
            "config.toml": '[server]\nhost = "127.0.0.1"\nworkers = 4\n',
        },
    )


def leaky_app(root: Path) -> Path:
    return write(
        clean_app(root),
        {
            "settings.py": f'import os\n\naws_access_key_id = "{AWS_KEY}"\n',
            "deploy/id_rsa": f"# deploy key\n{KEY_HEADER}\nnot-a-real-key\n",
        },
    )


def secrets(root: Path, baseline: Path | None = None, timeout: float = 60) -> GateResult:
    log = root.parent / "secrets.log"
    return asyncio.run(scan_secrets(root, baseline, log, timeout))


def code(
    root: Path, severity: str = "medium", confidence: str = "medium", **kw: object
) -> GateResult:
    timeout = float(kw.get("timeout", 60))  # type: ignore[arg-type]
    exclude: list[str] = kw.get("exclude", [])  # type: ignore[assignment]
    log = root.parent / "code.log"
    return asyncio.run(scan_code(root, severity, confidence, log, timeout, exclude))


def detect_secrets_baseline(root: Path) -> Path:
    """A baseline as a person writes it, with the real CLI (never verifying over the network)."""
    cli = [sys.executable, "-m", "detect_secrets", "scan", "--all-files", "--no-verify"]
    out = subprocess.run(cli, cwd=root, capture_output=True, text=True, check=True).stdout
    baseline = root / ".secrets.baseline"
    baseline.write_text(out)
    return baseline


# --- secrets -------------------------------------------------------------------------------


def test_clean_app_has_no_secrets(tmp_path: Path) -> None:
    result = secrets(clean_app(tmp_path / "app"))
    assert result.status == "passed", result
    assert result.summary == "no secrets in 3 files"
    assert result.evidence["files_scanned"] == 3
    assert result.reproduce and "detect_secrets scan" in result.reproduce


def test_secrets_are_found_where_they_are_and_never_repeated(tmp_path: Path) -> None:
    result = secrets(leaky_app(tmp_path / "app"))
    assert result.status == "failed"
    assert {str(f) for f in result.findings} == {
        "settings.py:3: AWS Access Key",
        "deploy/id_rsa:2: Private Key",
    }
    assert result.summary == "2 possible secrets in 2 files"
    assert result.evidence["findings"] == 2
    serialized = json.dumps(result.to_dict())
    log = (tmp_path / "secrets.log").read_text()
    assert "settings.py:3: AWS Access Key" in log
    for text in (serialized, log):
        assert AWS_KEY not in text
        assert "BEGIN RSA" not in text
        assert "Q7XJ2MZP4KD9RT3W" not in text
    # nor its hash, as a baseline would hold it
    baseline = json.loads(detect_secrets_baseline(tmp_path / "app").read_text())
    hashes = [e["hashed_secret"] for entries in baseline["results"].values() for e in entries]
    assert hashes
    assert not any(h in serialized or h in log for h in hashes)


def test_baseline_allows_reviewed_findings_in_their_own_file_only(tmp_path: Path) -> None:
    root = leaky_app(tmp_path / "app")
    baseline = detect_secrets_baseline(root)
    result = secrets(root, baseline)
    assert result.status == "passed", result
    assert result.evidence["allowed"] == 2
    assert result.summary == "no secrets in 5 files (2 allowed by the baseline)"
    # The same key pasted into another file was never reviewed there.
    write(root, {"other.py": f'key = "{AWS_KEY}"\n'})
    result = secrets(root, baseline)
    assert result.status == "failed"
    assert [str(f) for f in result.findings] == ["other.py:1: AWS Access Key"]


def test_pragma_allowlist_secret_is_honoured(tmp_path: Path) -> None:
    pragma = "# pragma: allowlist " + "secret"
    root = write(clean_app(tmp_path / "app"), {"keys.py": f'key = "{AWS_KEY}"  {pragma}\n'})
    result = secrets(root)
    assert result.status == "passed", result


def test_skipped_dirs_are_not_scanned_but_big_files_are_listed(tmp_path: Path) -> None:
    root = clean_app(tmp_path / "app")
    for folder in (".venv/lib", "node_modules/x", "sub/__pycache__"):
        write(root, {f"{folder}/x.py": f'key = "{AWS_KEY}"\n'})
    (root / "big.txt").write_text("x" * (1024 * 1024 + 1))
    (root / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\0\0" + AWS_KEY.encode())
    result = secrets(root)
    assert result.status == "passed", result
    assert result.evidence["files_scanned"] == 3
    assert result.evidence["skipped_large"] == [{"file": "big.txt", "bytes": 1024 * 1024 + 1}]
    assert result.evidence["skipped_binary"] == 1


def test_malformed_baseline_fails_with_how_to_fix(tmp_path: Path) -> None:
    root = clean_app(tmp_path / "app")
    baseline = root / ".secrets.baseline"
    for text in ("{not json", '{"results": {"a.py": [{"filename": "a.py"}]}}', "[]"):
        baseline.write_text(text)
        result = secrets(root, baseline)
        assert result.status == "failed"
        assert str(baseline) in result.summary
        assert "detect-secrets scan --all-files" in result.summary


def test_detect_secrets_never_verifies(tmp_path: Path) -> None:
    """Plugins verify through call_function_with_arguments only when the verification filter
    is configured: make that call fatal and scan a folder a plugin would want to verify."""
    root = leaky_app(tmp_path / "app")
    script = textwrap.dedent(
        f"""
        import sys
        import detect_secrets.plugins.base as base

        def verify(*args, **kwargs):
            raise SystemExit("verification attempted")

        base.call_function_with_arguments = verify
        from slipway.gates.scanners import main
        sys.exit(main(["secrets", {str(root)!r}]))
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)["found"]) == 2


def test_secrets_scan_timeout_fails_closed(tmp_path: Path) -> None:
    result = secrets(clean_app(tmp_path / "app"), timeout=0.001)
    assert result.status == "failed"
    assert result.summary == "secrets scan timed out after 0.001s"


# --- code ----------------------------------------------------------------------------------

SHELL_APP = {
    "app.py": """\
        import subprocess


        def listing(user_input):
            return subprocess.run(f"ls {user_input}", shell=True)
        """
}


def test_clean_code_passes(tmp_path: Path) -> None:
    result = code(clean_app(tmp_path / "app"))
    assert result.status == "passed", result
    assert result.summary == "no issues at severity >= medium, confidence >= medium in 2 files"
    assert result.evidence["files_scanned"] == 2
    assert result.reproduce and "-m bandit -r ." in result.reproduce


def test_shell_injection_fails_at_its_line(tmp_path: Path) -> None:
    result = code(write(tmp_path / "app", SHELL_APP))
    assert result.status == "failed"
    assert [f.where for f in result.findings] == ["app.py:5"]
    assert result.findings[0].what.startswith("B602 subprocess call with shell=True")
    assert result.findings[0].what.endswith("(severity high, confidence high)")
    assert result.evidence["issues_by_severity"] == {"low": 1, "medium": 0, "high": 1}
    assert "app.py:5: B602" in (tmp_path / "code.log").read_text()


def test_severity_threshold(tmp_path: Path) -> None:
    root = write(tmp_path / "app", {"run.py": "import subprocess\n"})
    assert code(root, severity="high").status == "passed"
    low = code(root, severity="low")
    assert low.status == "failed"
    assert [str(f) for f in low.findings] == [
        "run.py:1: B404 Consider possible security implications associated with the "
        "subprocess module (severity low, confidence high)"
    ]


def test_hardcoded_password_is_not_repeated(tmp_path: Path) -> None:
    root = write(tmp_path / "app", {"db.py": 'password = "hunter2hunter2"\n'})
    result = code(root, severity="low")
    assert result.status == "failed"
    assert [f.where for f in result.findings] == ["db.py:1"]
    assert result.findings[0].what.startswith("B105")
    assert "hunter2" not in json.dumps(result.to_dict())
    assert "hunter2" not in (tmp_path / "code.log").read_text()


def test_skipped_dirs_and_excludes(tmp_path: Path) -> None:
    root = clean_app(tmp_path / "app")
    for name in (".venv/lib/x.py", "node_modules/x/x.py", "tests/test_x.py", "venvy/x.py"):
        write(root, {name: SHELL_APP["app.py"]})
    result = code(root, exclude=["tests/*"])
    assert [f.where for f in result.findings] == ["venvy/x.py:5"]  # "venv" is a name, not a part


def test_syntax_error_fails_closed_naming_the_file(tmp_path: Path) -> None:
    root = write(clean_app(tmp_path / "app"), {"broken/bad.py": "def f(:\n    pass\n"})
    result = code(root)
    assert result.status == "failed"
    assert "bandit could not read 1 file: broken/bad.py" in result.summary
    assert result.findings[0].where == "broken/bad.py"


def test_code_scan_timeout_fails_closed(tmp_path: Path) -> None:
    result = code(clean_app(tmp_path / "app"), timeout=0.001)
    assert result.status == "failed"
    assert result.summary == "code scan timed out after 0.001s"
    assert "timed out" in (tmp_path / "code.log").read_text()
