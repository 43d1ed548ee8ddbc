"""What shipping a release costs this machine, without the control plane: slipway's own
`artifact.build` (pack the release once, on the control host) and `artifact.install` (verify,
unpack, make the virtualenv: on each host) run directly, the installs N at once in N
processes with the hosts' Python, as N agents would. On real hosts each install has its own
CPUs; here N of them share two, and this reference shows how much of a deploy's growth with
N is that sharing rather than the control plane."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

from bench.zero_downtime.run import REPO
from slipway.releases import artifact

HOST_PYTHON = "/usr/bin/python3"  # what `slipway hosts add` runs the agent with by default
INSTALL = (
    "import json, sys, time; from pathlib import Path; "
    "from slipway.releases.artifact import install; began = time.monotonic(); "
    "install(Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])); "
    "print(json.dumps([began, time.monotonic()]))"
)


def pack(release_dir: Path, archive: Path) -> tuple[float, str]:
    """(seconds, digest) of packing the release, as the control host does once a deploy."""
    archive.unlink(missing_ok=True)
    archive.with_name(archive.name + ".sha256").unlink(missing_ok=True)
    began = time.monotonic()
    digest = artifact.build(release_dir, archive)
    return time.monotonic() - began, digest


def install_together(archive: Path, digest: str, folder: Path, count: int) -> float:
    """`count` installs at once, each in its own process: first start → last end, in
    seconds (each process times its own install, so Python's start-up is left out: an agent
    is already running)."""
    shutil.rmtree(folder, ignore_errors=True)
    env = dict(os.environ) | {"PYTHONPATH": str(REPO / "src")}
    procs = [
        subprocess.Popen(
            [HOST_PYTHON, "-c", INSTALL, str(archive), digest, str(folder / f"h{i}" / "release")],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(count)
    ]
    spans: list[tuple[float, float]] = []
    for proc in procs:
        out, _ = proc.communicate(timeout=300)
        if proc.returncode != 0:
            raise RuntimeError(f"a direct install exited {proc.returncode}")
        began, ended = json.loads(out.strip().splitlines()[-1])
        spans.append((float(began), float(ended)))
    shutil.rmtree(folder, ignore_errors=True)
    return max(end for _, end in spans) - min(began for began, _ in spans)
