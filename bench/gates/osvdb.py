"""A synthetic OSV export the size of osv.dev's PyPI one: one JSON record per file, random
package names, plus one advisory for `pip` whose range does not match any pip a virtualenv
installs today (so the audit looks it up, and passes)."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from pathlib import Path

WORDS = ["auth", "cache", "http", "json", "yaml", "orm", "sql", "web", "crypto", "parse"]


def _version(rng: random.Random) -> str:
    return f"{rng.randint(0, 9)}.{rng.randint(0, 30)}.{rng.randint(0, 20)}"


def _key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def record(rng: random.Random, vid: str, package: str, modified: str) -> dict[str, object]:
    versions = sorted({_version(rng) for _ in range(rng.randint(3, 40))}, key=_key)
    fixed = versions.pop() if len(versions) > 1 else "99.0.0"
    details = " ".join(rng.choice(WORDS) for _ in range(rng.randint(60, 300)))
    return {
        "schema_version": "1.6.0",
        "id": vid,
        "modified": modified,
        "published": modified,
        "aliases": [f"CVE-2099-{rng.randint(10000, 99999)}"],
        "summary": f"Synthetic advisory for {package}",
        "details": details,
        "affected": [
            {
                "package": {"ecosystem": "PyPI", "name": package, "purl": f"pkg:pypi/{package}"},
                "ranges": [
                    {
                        "type": "ECOSYSTEM",
                        "events": [{"introduced": versions[0]}, {"fixed": fixed}],
                    }
                ],
                "versions": versions,
            }
        ],
        "references": [
            {"type": "WEB", "url": f"https://example.invalid/{vid}/{i}"} for i in range(3)
        ],
        "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],
    }


def generate(folder: Path, count: int, seed: int = 1) -> int:
    """Writes `count` records (modified = now) into `folder`; returns their total bytes."""
    rng = random.Random(seed)
    modified = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    names = [
        f"{rng.choice(WORDS)}-{''.join(rng.choices('abcdefghijklmnopqrstuvwxyz', k=8))}"
        for _ in range(max(1, count // 3))  # several advisories per package, as in real data
    ]
    folder.mkdir(parents=True)
    records = [record(rng, f"BENCH-{i:05d}", rng.choice(names), modified) for i in range(count)]
    pip = record(rng, "BENCH-PIP-0001", "pip", modified)
    pip["affected"] = [
        {
            "package": {"ecosystem": "PyPI", "name": "pip"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1.0"}]}],
            "versions": ["0.8", "0.9"],
        }
    ]
    total = 0
    for rec in [*records, pip]:
        data = json.dumps(rec, indent=1)
        (folder / f"{rec['id']}.json").write_text(data)
        total += len(data)
    return total
