"""The secrets and code scanners behind the security gates, each in a child process.

detect-secrets and bandit run in a child of the same Python, under `nice`, in their own
session: a crash, a hang, their global settings or their CPU use never reach the daemon,
and a timeout kills the whole process group. The secrets child (`python -m
slipway.gates.scanners secrets ROOT`) matches the baseline itself and prints one JSON
object without any secret value or hash; bandit is the child of the code scan directly."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import sys
from pathlib import Path
from typing import Any, NoReturn

from slipway.gates.base import Finding, GateResult

SKIPPED_DIRS = {".venv", "venv", "__pycache__", ".git", "node_modules", ".slipway",
                ".mypy_cache", ".pytest_cache", ".ruff_cache"}  # fmt: skip
MAX_FILE_BYTES = 1024 * 1024
VERIFY_FILTER = "detect_secrets.filters.common.is_ignored_due_to_verification_policies"
RANKS = {"low": 1, "medium": 2, "high": 3}
REGENERATE = "regenerate it in the app folder: detect-secrets scan --all-files --no-verify > "
# -P: the scanned folder is the child's cwd and must not shadow modules; -X utf8: a C locale
# must not turn UTF-8 files into "binary" ones that detect-secrets silently ignores.
PYTHON = [sys.executable, "-P", "-X", "utf8"]


class BaselineError(Exception):
    pass


# --- the secrets child ---------------------------------------------------------------------


def _load_baseline(path: Path | None) -> set[tuple[str, str]]:
    """(filename, hashed_secret) pairs a person reviewed. Both must match: the same key pasted
    into another file is a new finding. Entries audited as real secrets (is_secret: true)
    are not allowed. Only "results" is used: plugins and filters stay slipway's own."""
    if path is None or not path.exists():
        return set()
    reason = 'it has no "results" object'
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        data, reason = None, f"it is not readable JSON ({exc})"
    results = data.get("results") if isinstance(data, dict) else None
    if not isinstance(results, dict):
        raise BaselineError(f"malformed secrets baseline {path}: {reason}; {REGENERATE}{path.name}")
    pairs = set()
    for entries in results.values():
        for entry in entries if isinstance(entries, list) else [None]:
            if not isinstance(entry, dict) or not all(
                isinstance(entry.get(key), str) for key in ("filename", "hashed_secret")
            ):
                raise BaselineError(
                    f"malformed secrets baseline {path}: a result lacks filename or "
                    f"hashed_secret; {REGENERATE}{path.name}"
                )
            if entry.get("is_secret") is not True:
                pairs.add((entry["filename"].removeprefix("./"), entry["hashed_secret"]))
    return pairs


def _inventory(root: Path, skip: Path | None) -> tuple[list[str], dict[str, Any]]:
    """The UTF-8 text files under root (relative paths), and what was left out and why."""
    files: list[str] = []
    large: list[dict[str, Any]] = []
    unreadable: list[str] = []
    binary = links = 0
    for top, dirs, names in os.walk(root):
        links += sum(Path(top, d).is_symlink() for d in dirs)  # os.walk does not follow them
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS)
        for name in sorted(names):
            path = Path(top, name)
            rel = path.relative_to(root).as_posix()
            if path == skip or not path.is_file():
                continue
            if path.is_symlink():  # its target inside root is scanned as itself
                links += 1
                continue
            try:
                size = path.stat().st_size
                data = path.read_bytes() if size <= MAX_FILE_BYTES else b""
            except OSError:
                unreadable.append(rel)
                continue
            if size > MAX_FILE_BYTES:
                large.append({"file": rel, "bytes": size})
            elif b"\0" in data or not _is_utf8(data):
                binary += 1
            else:
                files.append(rel)
    skipped = {"skipped_large": large, "skipped_binary": binary, "symlinks_not_followed": links}
    return files, {**skipped, "unreadable": unreadable}


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _forbid_network() -> None:
    """Verification is off; should a plugin still phone home it would send the secret it
    found, so this process cannot resolve names or connect at all."""

    def refuse(*_args: object, **_kwargs: object) -> NoReturn:
        raise OSError("slipway: the secrets scan has no network access")

    socket.socket.connect = refuse  # type: ignore[method-assign]
    socket.socket.connect_ex = refuse  # type: ignore[method-assign]
    socket.getaddrinfo = refuse


def scan_secrets_here(root: Path, baseline: Path | None) -> dict[str, Any]:
    """The child's work: detect-secrets' default plugins and filters, never verifying."""
    from detect_secrets.core.scan import scan_file
    from detect_secrets.settings import default_settings, get_settings

    _forbid_network()
    reviewed = _load_baseline(baseline)
    files, report = _inventory(root, baseline)
    os.chdir(root)  # detect-secrets names files as given: relative to root, like a baseline
    found: set[tuple[str, int, str]] = set()
    allowed = 0
    with default_settings():
        # Plugins verify a secret over the network whenever this filter is configured.
        get_settings().disable_filters(VERIFY_FILTER)
        if VERIFY_FILTER in get_settings().filters:
            raise RuntimeError("detect-secrets verification is still on")
        for rel in files:
            for secret in scan_file(rel):
                if (rel, secret.secret_hash) in reviewed:
                    allowed += 1
                else:
                    found.add((rel, secret.line_number, secret.type))
    return {**report, "files_scanned": len(files), "allowed": allowed, "found": sorted(found)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m slipway.gates.scanners")
    command = parser.add_subparsers(dest="scanner", required=True)
    secrets = command.add_parser("secrets", help="print one JSON object: secrets under ROOT")
    secrets.add_argument("root", type=Path)
    secrets.add_argument("--baseline", type=Path)
    args = parser.parse_args(argv)
    out, sys.stdout = sys.stdout, sys.stderr  # a library's stray print must not break the JSON
    baseline = args.baseline.resolve() if args.baseline else None
    try:
        report = scan_secrets_here(args.root.resolve(), baseline)
    except BaselineError as exc:
        out.write(json.dumps({"error": str(exc)}) + "\n")
        return 2
    out.write(json.dumps(report) + "\n")
    return 0


# --- the daemon side -----------------------------------------------------------------------


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _failed(summary: str, reproduce: str, stderr: str = "", **evidence: Any) -> GateResult:
    tail = stderr.strip().splitlines()[-20:]
    evidence = {**evidence, "stderr_tail": tail} if tail else evidence
    return GateResult("failed", summary, evidence=evidence, reproduce=reproduce)


def _done(result: GateResult, log_path: Path) -> GateResult:
    with log_path.open("a", encoding="utf-8") as log:
        log.writelines(f"{finding}\n" for finding in result.findings)
        log.write(f"{result.status}: {result.summary}\n")
    return result


async def _run(
    what: str, cmd: list[str], cwd: Path, log_path: Path, timeout: float, reproduce: str
) -> tuple[int, str, str] | GateResult:
    """Runs cmd niced in its own session, its stderr into the log: (exit code, stdout, stderr),
    or a failed result. On timeout or cancellation its whole process group is killed."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("a", encoding="utf-8") as log:
        log.write(f"$ cd {shlex.quote(str(cwd))} && {shlex.join(cmd)}\n")
    nice = shutil.which("nice")
    try:
        proc = await asyncio.create_subprocess_exec(
            *([nice, "-n", "10"] if nice else []),
            *cmd,
            cwd=cwd,
            start_new_session=True,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as exc:
        return _done(_failed(f"could not start the {what}: {exc}", reproduce), log_path)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        return _done(_failed(f"{what} timed out after {timeout:g}s", reproduce), log_path)
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
    code, stderr = await proc.wait(), err.decode(errors="replace")
    with log_path.open("a", encoding="utf-8") as log:
        log.write(f"{stderr}(exit code {code})\n")
    return code, out.decode(errors="replace"), stderr


def _crashed(tool: str, ran: tuple[int, str, str], reproduce: str) -> GateResult:
    summary = f"{tool} crashed (exit code {ran[0]}); nothing was judged, so the gate fails"
    return _failed(summary, reproduce, ran[2], exit_code=ran[0])


def _files(findings: list[Finding]) -> str:
    return _plural(len({f.where.rsplit(":", 1)[0] for f in findings}), "file")


async def scan_secrets(
    root: Path, baseline: Path | None, log_path: Path, timeout: float
) -> GateResult:
    """Fails on any secret detect-secrets finds in root's text files, unless `baseline` (a
    .secrets.baseline file; none if missing) lists it for the same file and hash."""
    root = root.resolve()
    cmd = [*PYTHON, "-m", "slipway.gates.scanners", "secrets", str(root)]
    cmd += ["--baseline", str(baseline.resolve())] if baseline else []
    skipped = "|".join(re.escape(d) for d in sorted(SKIPPED_DIRS))
    reproduce = (
        f"cd {shlex.quote(str(root))} && {shlex.quote(sys.executable)} -m detect_secrets scan "
        f"--all-files --no-verify --exclude-files '(^|/)({skipped})/'"
    )
    if baseline:
        reproduce += f"  # results also in {baseline} (same file and hash) are allowed"
    ran = await _run("secrets scan", cmd, root, log_path, timeout, reproduce)
    if isinstance(ran, GateResult):
        return ran
    try:
        report = json.loads(ran[1])
        if ran[0] == 2 and isinstance(report.get("error"), str):
            return _done(_failed(report["error"], reproduce, baseline=str(baseline)), log_path)
        found = [Finding(f"{file}:{line}", kind) for file, line, kind in report.pop("found")]
        scanned, unreadable = report["files_scanned"], report["unreadable"]
        if ran[0] != 0:
            raise ValueError
    except (ValueError, KeyError, TypeError, AttributeError):
        return _done(_crashed("the secrets scanner", ran, reproduce), log_path)
    evidence = {**report, "findings": len(found), "baseline": str(baseline) if baseline else None}
    if unreadable:
        summary = f"could not read {_plural(len(unreadable), 'file')}: {', '.join(unreadable[:5])}"
        result = _failed(summary, reproduce, **evidence)
        result.findings = found
    elif found:
        summary = f"{_plural(len(found), 'possible secret')} in {_files(found)}"
        result = GateResult("failed", summary, found, evidence, reproduce)
    else:
        allowed = f" ({report['allowed']} allowed by the baseline)" if report["allowed"] else ""
        summary = f"no secrets in {_plural(scanned, 'file')}{allowed}"
        result = GateResult("passed", summary, [], evidence, reproduce)
    return _done(result, log_path)


def _rank(item: dict[str, Any], key: str) -> int:
    return RANKS.get(str(item[key]).lower(), 0)


def _issue(item: dict[str, Any]) -> Finding:
    # Quoted parts go: B105-B107 quote the hardcoded password itself.
    text = re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", str(item["issue_text"])).rstrip(".")
    severity, confidence = item["issue_severity"].lower(), item["issue_confidence"].lower()
    where = f"{item['filename'].removeprefix('./')}:{item['line_number']}"
    return Finding(
        where, f"{item['test_id']} {text} (severity {severity}, confidence {confidence})"
    )


async def scan_code(
    root: Path, severity: str, confidence: str, log_path: Path, timeout: float, exclude: list[str]
) -> GateResult:
    """Fails on bandit issues at or above both thresholds ("low", "medium", "high") in root's
    Python files. `exclude` globs are relative to root, `*` spans folders ("tests/*",
    "*/migrations/*.py"), a folder's path excludes that folder ("tests"). Raises ValueError
    for an unknown threshold."""
    if severity not in RANKS or confidence not in RANKS:
        raise ValueError(f"severity and confidence must each be one of {', '.join(RANKS)}")
    root = root.resolve()
    # bandit matches -x both as globs on "./path" and as plain substrings: "*/NAME/*" cannot
    # match inside a file name. --ini stops it from obeying a .bandit file in the release.
    skipped = [f"*/{d}/*" for d in sorted(SKIPPED_DIRS)]
    skipped += ["./" + glob.removeprefix("./") for glob in exclude]
    cmd = [*PYTHON, "-m", "bandit", "-r", ".", "-f", "json", "-q", "--ini", os.devnull]
    cmd += ["-x", ",".join(skipped)]
    reproduce = f"cd {shlex.quote(str(root))} && {shlex.join(cmd)}"
    ran = await _run("code scan", cmd, root, log_path, timeout, reproduce)
    if isinstance(ran, GateResult):
        return ran
    try:
        if ran[0] not in (0, 1):  # 1 only means "found issues"
            raise ValueError
        report = json.loads(ran[1])
        results = report["results"]
        kept = [
            _issue(item)
            for item in results
            if _rank(item, "issue_severity") >= RANKS[severity]
            and _rank(item, "issue_confidence") >= RANKS[confidence]
        ]
        errors = [(e["filename"].removeprefix("./"), e["reason"]) for e in report["errors"]]
        totals, files = report["metrics"]["_totals"], len(report["metrics"]) - 1
    except (ValueError, KeyError, TypeError, AttributeError):
        return _done(_crashed("bandit", ran, reproduce), log_path)
    evidence = {
        "files_scanned": files,
        "lines_of_code": totals.get("loc"),
        "nosec": totals.get("nosec"),
        "issues_by_severity": {
            s: sum(_rank(i, "issue_severity") == RANKS[s] for i in results) for s in RANKS
        },
        "reported": len(kept),
        "thresholds": {"severity": severity, "confidence": confidence},
        "excluded": exclude,
    }
    level = f"severity >= {severity}, confidence >= {confidence}"
    if errors:
        names = ", ".join(f"{name} ({reason})" for name, reason in errors[:5])
        summary = f"bandit could not read {_plural(len(errors), 'file')}: {names}"
        result = _failed(summary, reproduce, ran[2], **evidence)
        result.findings = [Finding(name, f"not scanned: {reason}") for name, reason in errors]
        result.findings += kept
    elif kept:
        summary = f"{_plural(len(kept), 'issue')} at {level} in {_files(kept)}"
        result = GateResult("failed", summary, kept, evidence, reproduce)
    else:
        summary = f"no issues at {level} in {_plural(files, 'file')}"
        result = GateResult("passed", summary, [], evidence, reproduce)
    return _done(result, log_path)


if __name__ == "__main__":
    sys.exit(main())
