"""Read-only views of what production did: metrics history, the request log, alerts.
Shared by the API, the CLI and the dashboard."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any

import re2

from slipway.api.params import MAX_LIMIT, int_param
from slipway.config.durations import parse_duration
from slipway.errors import NotFound, UsageError
from slipway.judge.histogram import quantiles_ms
from slipway.metrics import history, requestlog
from slipway.paths import Home
from slipway.store.store import Store

MAX_SINCE = 30 * 86400


def since_of(params: Mapping[str, str], default: str = "1h") -> float:
    """`since` as an age ("15m", "24h", or seconds) → the unix time it starts at."""
    text = params.get("since") or default
    try:
        age = parse_duration(text)
    except ValueError as exc:
        raise UsageError(str(exc), where="since", fix="e.g. --since 15m, 1h, 24h or 7d") from None
    if age <= 0 or age > MAX_SINCE:
        raise UsageError(
            f"since {text} is out of range",
            where="since",
            fix="use 1s up to 30d (the history kept)",
        )
    return time.time() - age


MAX_PATTERN = 512  # characters of a --grep pattern: longer ones are programs, not searches
_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # a bad pattern is the caller's 400, not a line in the daemon log
_OPTIONS.max_mem = 8 << 20  # RE2's memory for one compiled pattern: a bound, not a hope
# RE2 runs in time linear in the text (no backtracking), so it has no constructs that need
# backtracking: these are what its errors mean.
_UNSUPPORTED = (
    ("(?=", "lookahead (?=…)"),
    ("(?!", "negative lookahead (?!…)"),
    ("(?<=", "lookbehind (?<=…)"),
    ("(?<!", "negative lookbehind (?<!…)"),
    ("(?P=", "backreferences (?P=name)"),
    ("(?>", "atomic groups (?>…)"),
)


def pattern(text: str | None) -> re2._Regexp[str] | None:
    """A --grep pattern compiled with RE2, so no pattern can make the scan of the logs
    backtrack for minutes: what Python's `re` supports but RE2 does not is refused by name."""
    if not text:
        return None
    if len(text) > MAX_PATTERN:
        raise UsageError(
            f"--grep pattern is {len(text)} characters; at most {MAX_PATTERN}",
            where="grep",
            fix="search for a shorter, more specific pattern",
        )
    try:
        return re2.compile(text, _OPTIONS)
    except re2.error as exc:
        reason = exc.args[0].decode(errors="replace") if exc.args else str(exc)
        feature = _unsupported_feature(text, reason)
        if feature is not None:
            raise UsageError(
                f"--grep '{text}' uses {feature}, which slipway's regular expressions (RE2, "
                "linear-time) do not support",
                where="grep",
                fix="rewrite it without that construct, e.g. --grep 'error' then filter "
                "the output with grep -P",
            ) from None
        raise UsageError(
            f"--grep '{text}' is not a valid regular expression: {reason}",
            where="grep",
            fix="escape special characters, e.g. --grep 'GET /items\\?'",
        ) from None


def _unsupported_feature(text: str, reason: str) -> str | None:
    if re.search(r"invalid escape sequence: \\[1-9]", reason):
        return "backreferences (\\1)"
    for prefix, feature in _UNSUPPORTED:
        if f"invalid perl operator: {prefix}" in reason or (
            "invalid perl operator" in reason and prefix in text
        ):
            return feature
    if "bad repetition operator" in reason and re.search(r"[*+?}][+]", text):
        return "possessive quantifiers (a*+)"
    return None


def check_release(store: Store, app: str, release: str | None) -> None:
    if release is not None:
        store.release(app, release)  # NotFound with its fix


def metrics(store: Store, app: str, params: Mapping[str, str]) -> dict[str, Any]:
    store.app(app)
    release = params.get("release")
    check_release(store, app, release)
    since = since_of(params)
    now = time.time()
    series = history.series(store, app, since, now, release, step_of(params, since, now))
    body = series.to_json()
    body["app"] = app
    body["markers"] = markers(store, app, since)
    body["totals"] = {
        name: {
            "requests": total.requests,
            "errors": total.errors,
            "error_rate": round(total.errors / total.requests, 5) if total.requests else None,
            **dict(zip(("p50", "p90", "p99"), quantiles_ms(total.latency), strict=True)),
        }
        for name, total in series.totals.items()
    }
    return body


def step_of(params: Mapping[str, str], since: float, now: float) -> int | None:
    """A requested resolution, made one the history has: whole minutes beyond the last hour."""
    text = params.get("step")
    if not text:
        return None
    try:
        step = max(1, int(parse_duration(text)))
    except ValueError as exc:
        raise UsageError(str(exc), where="step", fix="e.g. step=10s or step=5m") from None
    if step > MAX_SINCE:
        raise UsageError(
            f"step {text} is longer than the history kept", where="step", fix="e.g. step=1h"
        )
    if step >= 60 or since < now - history.SECONDS_KEPT - 60:  # a minute's grace: "1h"
        step = max(60, step // 60 * 60)
    return step


def markers(store: Store, app: str, since: float) -> list[dict[str, Any]]:
    """Deployments, rollbacks and canary steps in the window, for the charts."""
    out = []
    for d in store.deploys_and_rollbacks_since(app, since):
        kind = "rollback" if d.kind == "rollback" else f"deploy ({d.strategy})"
        outcome = d.outcome or "in progress"
        short = d.to_release
        if d.kind == "scale":  # the autoscaler's
            short = " ".join(f"{p} {n}" for p, n in sorted(d.formation.items()))
            kind = f"autoscale to {short}"
        out.append(
            {
                "deployment": d.id,
                "kind": d.kind,
                "release": d.to_release,
                "from_release": d.from_release,
                "started_at": d.started_at,
                "finished_at": d.finished_at,
                "outcome": outcome,
                "label": f"{kind} {d.to_release}: {outcome}",
                "short": short,
            }
        )
    return out


def requests(home: Home, store: Store, app: str, params: Mapping[str, str]) -> dict[str, Any]:
    store.app(app)
    release = params.get("release")
    check_release(store, app, release)
    status = params.get("status")
    if status is not None and not requestlog.valid_status(status):
        raise UsageError(
            f"unknown status filter '{status}'",
            where="status",
            fix="use a class (2xx, 4xx, 5xx), a code (404) or 'error'",
        )
    limit = int_param(params, "limit", 100, 1, MAX_LIMIT, f"e.g. --limit 50 (1 to {MAX_LIMIT})")
    query = requestlog.Query(
        since=since_of(params, "10m"),
        status=status,
        release=release,
        path=params.get("path"),
        limit=limit,
    )
    entries = requestlog.read(home.app_dir(app), query)
    return {
        "app": app,
        "requests": [
            {
                "time": e.time,
                "release": e.request.release,
                "instance": e.request.instance,
                "status": e.request.status,
                "ms": e.request.total_ms,
                "bytes": e.request.bytes_sent,
                "client": e.request.client,
                "method": e.request.method,
                "path": e.request.path,
                "termination": e.request.termination,
            }
            for e in entries
        ],
    }


def require_app(store: Store, app: str | None) -> None:
    if app is not None and store.find_app(app) is None:
        raise NotFound(f"no app named '{app}'", fix="`slipway status` lists the apps")
