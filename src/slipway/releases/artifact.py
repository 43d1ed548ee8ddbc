"""A release as one file to ship to other hosts: built once, on the control host, with a
digest; verified on each host before anything of it starts. The bytes that passed the gates
are the bytes that run everywhere.

It holds the release's files and the packages its build installed (the virtualenv's
site-packages); each host makes the virtualenv around them with its own Python, which must
be the version the release was built with. Standard library only: agents unpack it."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

from slipway.errors import BuildError, DeployError

MANIFEST = "slipway-artifact.json"
SITE = "site-packages"
DIGEST_FILE = ".slipway-digest"


def python_tag(release_dir: Path) -> str:
    """ "3.11": the Python version of a release's virtualenv."""
    lib = sorted((release_dir / ".venv" / "lib").glob("python3.*"))
    if not lib:
        raise BuildError(f"{release_dir} has no virtualenv", fix="build the release again")
    return lib[-1].name.removeprefix("python")


def build(release_dir: Path, dest: Path) -> str:
    """Pack the release into `dest` (unless it is there already); returns its sha256."""
    digest_file = dest.with_name(dest.name + ".sha256")
    if dest.exists() and digest_file.exists():
        return digest_file.read_text().strip()
    tag = python_tag(release_dir)
    site = release_dir / ".venv" / "lib" / f"python{tag}" / "site-packages"
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(".tmp")
    with tarfile.open(tmp, "w:gz") as archive:
        manifest = json.dumps({"python": tag}).encode()
        info = tarfile.TarInfo(MANIFEST)
        info.size = len(manifest)
        archive.addfile(info, io.BytesIO(manifest))
        for path in sorted(release_dir.iterdir()):
            if path.name != ".venv":
                archive.add(path, arcname=f"files/{path.name}")
        if site.is_dir():
            archive.add(site, arcname=SITE)
    digest = _sha256(tmp)
    tmp.replace(dest)
    digest_file.write_text(digest)
    return digest


def installed(release_dir: Path, digest: str) -> bool:
    try:
        return (release_dir / DIGEST_FILE).read_text().strip() == digest
    except OSError:
        return False


def install(archive: Path, digest: str, release_dir: Path) -> None:
    """On a host: verify the archive, unpack it and make its virtualenv with this Python."""
    if _sha256(archive) != digest:
        raise DeployError(
            f"{archive.name} does not match its digest: it was damaged on the way",
            where=str(archive),
            fix="deploy again: the release is shipped anew",
        )
    work = release_dir.with_name(release_dir.name + ".unpacking")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        with tarfile.open(archive) as tar:
            extract(tar, work)
        tag = json.loads((work / MANIFEST).read_text())["python"]
        mine = f"{sys.version_info[0]}.{sys.version_info[1]}"
        if tag != mine:
            raise DeployError(
                f"the release was built with Python {tag}; this host runs Python {mine}",
                where=sys.executable,
                fix=f"run the agent with a Python {tag} (slipway hosts add --python …)",
            )
        files = work / "files"
        made = subprocess.run(
            [sys.executable, "-m", "venv", "--without-pip", str(files / ".venv")],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if made.returncode != 0:
            raise DeployError(
                f"making the release's virtualenv failed: {made.stderr.strip()[-500:]}",
                where=sys.executable,
            )
        if (work / SITE).is_dir():
            target = files / ".venv" / "lib" / f"python{tag}" / SITE
            shutil.rmtree(target, ignore_errors=True)
            (work / SITE).rename(target)
        (files / DIGEST_FILE).write_text(digest)
        shutil.rmtree(release_dir, ignore_errors=True)
        release_dir.parent.mkdir(parents=True, exist_ok=True)
        files.rename(release_dir)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def extract(tar: tarfile.TarFile, dest: Path) -> None:
    """Unpack with the "data" filter where this Python has it (3.11.4+); on an older one
    (Debian 12 ships 3.11.2), refuse any member that would land outside `dest` or is not a
    plain file, folder or link inside it."""
    if hasattr(tarfile, "data_filter"):
        tar.extractall(dest, filter="data")
        return
    root = dest.resolve()
    for member in tar.getmembers():
        target = (root / member.name).resolve()
        link_ok = not member.issym() or (target.parent / member.linkname).resolve().is_relative_to(
            root
        )
        kind_ok = member.isfile() or member.isdir() or member.issym()
        if not target.is_relative_to(root) or not link_ok or not kind_ok or member.islnk():
            raise DeployError(f"the release archive holds {member.name!r}: refused")
    tar.extractall(dest)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
