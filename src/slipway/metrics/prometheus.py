"""Extra canary checks: PromQL queries against the user's Prometheus, for metrics only the
app knows. "No data" or an unreachable Prometheus is shown with the evidence but never
fails a release by itself (a frequent complaint about other canary tools)."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from slipway.config.schema import PrometheusCheck


@dataclass
class PromResult:
    name: str
    query: str
    value: float | None
    threshold: float
    direction: str
    failed: bool
    note: str

    def describe(self) -> str:
        if self.value is None:
            return f"prometheus check '{self.name}': {self.note}"
        relation = ">" if self.value > self.threshold else "≤"
        if self.direction == "below":
            relation = "<" if self.value < self.threshold else "≥"
        verdict = "fails" if self.failed else "passes"
        return (
            f"prometheus check '{self.name}': {self.value:g} {relation} threshold "
            f"{self.threshold:g} ({verdict}; fails when {self.direction})"
        )


def expand(query: str, app: str, candidate: str, stable: str) -> str:
    return query.replace("$APP", app).replace("$CANDIDATE", candidate).replace("$STABLE", stable)


def evaluate(check: PrometheusCheck, query: str, value: float | None, note: str = "") -> PromResult:
    if value is None:
        return PromResult(
            check.name, query, None, check.threshold, check.direction, False, note or "no data"
        )
    failed = value > check.threshold if check.direction == "above" else value < check.threshold
    return PromResult(check.name, query, value, check.threshold, check.direction, failed, "")


async def query_value(client: httpx.AsyncClient, url: str, query: str) -> tuple[float | None, str]:
    """The first sample of an instant query, or None with the reason."""
    try:
        response = await client.get(
            f"{url.rstrip('/')}/api/v1/query", params={"query": query}, timeout=5.0
        )
        body = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        return None, f"Prometheus unreachable at {url}: {type(exc).__name__}"
    if body.get("status") != "success":
        return None, f"query failed: {body.get('error', response.text[:200])}"
    result = body.get("data", {}).get("result", [])
    if not result:
        return None, "no data (the query matched no series)"
    sample = result[0].get("value") if isinstance(result, list) else result
    try:
        return float(sample[1]), ""
    except (TypeError, ValueError, IndexError):
        return None, f"unexpected answer: {str(result)[:200]}"
