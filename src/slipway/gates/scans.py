"""The secret scan and the static security analysis as gates (the tools run in
gates/scanners.py, in a process of their own)."""

from __future__ import annotations

import os
from pathlib import Path

from slipway.config.gates import CodeGate, SecretsGate
from slipway.gates import scanners
from slipway.gates.base import GateContext, GateResult


class SecretScan:
    name = kind = "secrets"
    needs_running = False

    def __init__(self, spec: SecretsGate) -> None:
        self.spec = spec

    async def run(self, ctx: GateContext) -> GateResult:
        baseline = ctx.release_dir / self.spec.baseline
        return await scanners.scan_secrets(
            ctx.release_dir,
            baseline,
            ctx.log_path,
            self.spec.timeout,
        )


class CodeScan:
    name = kind = "code"
    needs_running = False

    def __init__(self, spec: CodeGate) -> None:
        self.spec = spec

    async def run(self, ctx: GateContext) -> GateResult:
        if not _has_python(ctx.release_dir):
            return GateResult("skipped", "not a Python app (no .py files): nothing to analyse")
        return await scanners.scan_code(
            ctx.release_dir,
            self.spec.severity,
            self.spec.confidence,
            ctx.log_path,
            self.spec.timeout,
            self.spec.exclude,
        )


def _has_python(root: Path) -> bool:
    for _, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in scanners.SKIPPED_DIRS]  # not the virtualenv
        if any(f.endswith(".py") for f in files):
            return True
    return False
