"""The agent as one file: a zipapp of slipway's own modules, run by the host's Python with
nothing installed (hosts need no package index). The agent imports only the standard
library and these modules; `check_standalone` proves it by running the zipapp with `-I -S`
(no site-packages) before it is ever shipped."""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import zipfile
from pathlib import Path

import slipway
from slipway import __version__

PACKAGE = Path(slipway.__file__).parent
MAIN = "from slipway.agent.server import main\nmain()\n"
SKIP = ("dashboard/static/",)


def build(dest: Path) -> str:
    """Write the zipapp to `dest` (deterministic: same sources, same bytes); its sha256."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(_info("__main__.py"), MAIN)
        for path in sorted(PACKAGE.rglob("*.py")):
            name = "slipway/" + path.relative_to(PACKAGE).as_posix()
            if not name.startswith(tuple("slipway/" + s for s in SKIP)):
                archive.writestr(_info(name), path.read_bytes())
    data = b"#!/usr/bin/env python3\n" + buffer.getvalue()
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.replace(dest)
    return hashlib.sha256(data).hexdigest()


def _info(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


def check_standalone(zipapp: Path, python: str = sys.executable) -> None:
    """The zipapp answers `version` with no site-packages: it needs nothing installed."""
    out = subprocess.run(
        [python, "-I", "-S", str(zipapp), "--home", "/nonexistent", "version"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if out.returncode != 0 or out.stdout.strip() != __version__:
        raise RuntimeError(f"the agent zipapp does not run on its own: {out.stderr[-2000:]}")
