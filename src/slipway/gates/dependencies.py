"""The dependency audit: every package installed in the release's virtualenv (what will run,
transitive dependencies included) against an OSV vulnerability database the user keeps
offline, or an OSV-compatible server.

It fails closed: no database, an unreadable or too old one, an unreachable server or a
package it cannot check fail the gate unless `on_unavailable = "warn"`, and then the gate is
recorded as skipped, never as passed."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path

from slipway.config.gates import DependenciesGate
from slipway.gates import osv
from slipway.gates.base import Finding, GateContext, GateResult


class Unavailable(Exception):
    """The audit could not be done; the message says why and how to fix it."""


class DependencyAudit:
    name = kind = "dependencies"
    needs_running = False

    def __init__(self, spec: DependenciesGate) -> None:
        self.spec = spec

    async def run(self, ctx: GateContext) -> GateResult:
        venv = ctx.release_dir / ".venv"
        if not venv.is_dir():
            return GateResult("skipped", "not a Python release (no virtualenv): nothing to audit")
        try:
            packages = await asyncio.to_thread(osv.installed_packages, venv)
            ctx.progress(f"checking {len(packages)} installed package(s)")
            found, source = await asyncio.wait_for(self.lookup(packages, ctx), self.spec.timeout)
        except (Unavailable, osv.OsvError, osv.CouldNotCheck, TimeoutError) as exc:
            reason = str(exc) or f"the audit did not finish within {self.spec.timeout:g}s"
            if self.spec.on_unavailable == "warn":
                return GateResult("skipped", f"not checked (on_unavailable = warn): {reason}")
            return GateResult(
                "failed",
                f"could not audit the dependencies: {reason}",
                evidence={
                    "fix": 'configure a database, or accept the risk: on_unavailable = "warn"'
                },
            )
        return self.verdict(packages, found, source)

    async def lookup(
        self, packages: list[tuple[str, str]], ctx: GateContext
    ) -> tuple[dict[tuple[str, str], list[osv.Vulnerability]], str]:
        spec = self.spec
        if spec.url is not None:
            return await osv.query_server(spec.url, packages, spec.timeout), spec.url
        if spec.database is None:
            raise Unavailable(
                "no vulnerability database is configured: set [gates.dependencies] "
                'database = "/path/to/osv" (an OSV export, e.g. PyPI/all.zip from osv.dev) '
                'or url = "https://api.osv.dev"'
            )
        path = Path(spec.database).expanduser()
        if not path.is_absolute():
            path = ctx.release_dir / path
        db = await asyncio.to_thread(osv.load_database, path)
        self.check_age(db)
        found: dict[tuple[str, str], list[osv.Vulnerability]] = {}
        for name, version in packages:
            try:
                found[(name, version)] = db.vulnerabilities(name, version)
            except osv.CouldNotCheck as exc:
                raise osv.CouldNotCheck(f"{name} {version}: {exc}") from None
        return found, str(path)

    def check_age(self, db: osv.OsvDatabase) -> None:
        if db.newest_modified is None:
            raise Unavailable(f"{db.source} has no dated records, so its age is unknown")
        age = time.time() - db.newest_modified.timestamp()
        if age > self.spec.max_age:
            newest = db.newest_modified.astimezone(UTC).strftime("%Y-%m-%d")
            raise Unavailable(
                f"{db.source} is {age / 86400:.0f} days old (newest record {newest}; "
                f"max_age {self.spec.max_age / 86400:g} days): download a fresh export"
            )

    def verdict(
        self,
        packages: list[tuple[str, str]],
        found: dict[tuple[str, str], list[osv.Vulnerability]],
        source: str,
    ) -> GateResult:
        ignored = set(self.spec.ignore)
        findings, accepted = [], 0
        for (name, version), vulns in sorted(found.items()):
            for vuln in vulns:
                if ignored & {vuln.id, *vuln.aliases}:
                    accepted += 1
                    continue
                fix = f"; fixed in {', '.join(vuln.fixed)}" if vuln.fixed else "; no fix yet"
                findings.append(Finding(f"{name} {version}", f"{vuln.id}: {vuln.summary}{fix}"))
        evidence = {
            "packages": len(packages),
            "database": source,
            "checked_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "vulnerable": len(findings),
            "ignored": accepted,
        }
        if findings:
            packages_hit = len({f.where for f in findings})
            return GateResult(
                "failed",
                f"{len(findings)} known vulnerabilit{'y' if len(findings) == 1 else 'ies'} in "
                f"{packages_hit} package(s)",
                findings,
                evidence
                | {
                    "fix": "upgrade to a fixed version, or list a reviewed id in "
                    "[gates.dependencies] ignore"
                },
            )
        note = f" ({accepted} ignored as reviewed)" if accepted else ""
        return GateResult(
            "passed", f"no known vulnerabilities in {len(packages)} packages{note}", [], evidence
        )
