"""HAProxy's cache and compression for one app ([edge.cache], [edge.compression]). Pure: the
config lines, the epoch map and the admin-socket command that retires a cache's entries.

The problem: HAProxy 2.6 has no command to purge its cache, and slipway switches traffic
between releases through the admin socket (server weights), without a reload. An entry
stored from the old release would be served until it expires.

The answer: every entry's key carries the app's *epoch*, a token held in a map file that the
admin socket can change (`set map`). HAProxy's key is the Host header and the URI, so before
`cache-use` the path is prefixed with `/.slipway-epoch-<token>` (which reaches the key of both
HTTP/1 and HTTP/2 requests, whose key is the absolute URI), and put back right after it. A
new token on every traffic switch makes every earlier entry unreachable at once: none is
served again, and their memory is taken back as new entries need it (oldest first) or when
they expire. The token changes in the same admin-socket request as the switch's last weight
change, after it: a lookup that sees the new token is load-balanced after the switch, so only
the releases that now have traffic can fill the new epoch. A reload starts an empty cache."""

from __future__ import annotations

import hashlib
import posixpath
import secrets
from dataclasses import dataclass, field
from typing import Any

EPOCHS_FILE = "cache-epochs.map"
EPOCH_PREFIX = "/.slipway-epoch-"
PATHS_PER_LINE = 10  # path prefixes (at most 200 characters) per acl line: HAProxy's lines
TYPES_PER_LINE = 10  # are at most 2048 characters and 64 words
CACHE_NAME_MAX = 32  # HAProxy truncates longer cache names


@dataclass(frozen=True)
class CacheRules:
    """[edge.cache] as HAProxy applies it (see slipway.config.edge_cache.EdgeCache)."""

    size_mb: int = 64
    max_object: int = 1024 * 1024
    max_age: int = 60
    paths: tuple[str, ...] = ("/",)
    skip_paths: tuple[str, ...] = ()


@dataclass(frozen=True)
class CompressionRules:
    types: tuple[str, ...] = field(default_factory=tuple)


def cache_rules_in(data: dict[str, Any] | None) -> CacheRules | None:
    """Stored (or sent over the wire) [edge.cache]; None when off or recorded before it."""
    if data is None:
        return None
    return CacheRules(
        size_mb=int(data["size_mb"]),
        max_object=int(data["max_object"]),
        max_age=int(data["max_age"]),
        paths=tuple(data["paths"]),
        skip_paths=tuple(data["skip_paths"]),
    )


def compression_rules_in(data: dict[str, Any] | None) -> CompressionRules | None:
    return None if data is None else CompressionRules(types=tuple(data["types"]))


def epochs_path(admin_socket: str) -> str:
    """The epoch map lives beside the admin socket, in HAProxy's own folder."""
    return posixpath.join(posixpath.dirname(admin_socket), EPOCHS_FILE)


def cache_name(app: str) -> str:
    """An app's cache section: its name, or a shortened one with a digest (apps may have 40
    characters, HAProxy keeps 32)."""
    if len(app) <= CACHE_NAME_MAX:
        return app
    digest = hashlib.sha256(app.encode()).hexdigest()[:8]
    return f"{app[: CACHE_NAME_MAX - 9]}-{digest}"


def new_epoch() -> str:
    return secrets.token_hex(6)


def render_epochs(backends: list[str]) -> str:
    """The map file HAProxy loads: one line per cached backend. Its values only matter until
    the first switch: a (re)started HAProxy has an empty cache."""
    return "".join(f"{name} {new_epoch()}\n" for name in sorted(backends))


def parse_epochs(text: str) -> dict[str, str]:
    found = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and not parts[0].startswith("#"):
            found[parts[0]] = parts[1]
    return found


def epoch_command(map_file: str, backend: str, epoch: str) -> str:
    return f"set map {map_file} {backend} {epoch}"


def cache_section(app: str, rules: CacheRules) -> list[str]:
    return [
        f"cache {cache_name(app)}",
        f"    total-max-size {rules.size_mb}",
        f"    max-object-size {rules.max_object}",
        f"    max-age {rules.max_age}",
        # Vary: Accept-Encoding (an app that compresses) and Referer are kept apart; an answer
        # that varies on anything else is not cached.
        "    process-vary on",
        "",
    ]


def cache_rules(app: str, rules: CacheRules, map_file: str) -> tuple[list[str], list[str]]:
    """The backend's lines: (request side, response side). Eligibility is decided once, on
    the request as the client sent it, and kept in a variable for the response side."""
    name = cache_name(app)
    on = "{ var(txn.sw_cache) -m bool }"
    request = [
        *_chunked("acl sw_cache_path path_beg", rules.paths, PATHS_PER_LINE),
        *_chunked("acl sw_cache_skip path_beg", rules.skip_paths, PATHS_PER_LINE),
        "    http-request set-var(txn.sw_cache) bool(true) if { method GET } "
        "{ req.hdr(host) -m found } !{ req.hdr(authorization) -m found } sw_cache_path"
        + (" !sw_cache_skip" if rules.skip_paths else ""),
        f"    http-request set-var(txn.sw_path) path if {on}",
        f"    http-request set-path {EPOCH_PREFIX}%[be_name,map({map_file},0)]%[path] if {on}",
        f"    http-request cache-use {name} if {on}",
        f"    http-request set-path %[var(txn.sw_path)] if {on}",
    ]
    response = [
        # The answer says how long it may be kept; "private", "no-store" and "no-cache" win.
        "    acl sw_cache_fresh res.hdr(cache-control) -m reg -i ^(s-)?max-age=0*[1-9]",
        "    acl sw_cache_fresh res.fhdr(expires) -m found",
        "    acl sw_cache_private res.hdr(cache-control) -m reg -i ^(private|no-store|no-cache)",
        f"    http-response cache-store {name} if {on} {{ status 200 }} "
        "!{ res.hdr(set-cookie) -m found } sw_cache_fresh !sw_cache_private",
    ]
    return request, response


def compression_rules(rules: CompressionRules) -> list[str]:
    """gzip only: HAProxy itself skips clients that do not accept it, answers the app encoded
    (Content-Encoding), `Cache-Control: no-transform`, and statuses other than 200-203."""
    return ["    compression algo gzip", *_chunked("compression type", rules.types, TYPES_PER_LINE)]


def _chunked(head: str, words: tuple[str, ...], per_line: int) -> list[str]:
    """Lines of one setting that adds up over lines (acl, compression type)."""
    return [
        f"    {head} {' '.join(words[i : i + per_line])}" for i in range(0, len(words), per_line)
    ]
