"""The decision: how many instances a process type should have. Pure.

The rule is Kubernetes' HorizontalPodAutoscaler's, the one most teams already trust:
desired = ceil(current × observed / target); no change while observed is within the
tolerance of the target; up at once (by at most `max_step_up`); down only to the highest
recommendation of the stabilization window (so a dip does not remove what the next minute
needs), by at most `max_step_down`; always within [min, max]."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from slipway.config.autoscale import Autoscale


@dataclass(frozen=True)
class Decision:
    at: float
    process: str
    signal: str
    observed: float | None  # None: the signal could not be read this time
    target: float
    current: int
    recommended: int  # what the rule says now, within [min, max]
    desired: int  # what the stabilization and step limits allow
    reason: str

    @property
    def changes(self) -> bool:
        return self.desired != self.current

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def recommend(policy: Autoscale, current: int, observed: float) -> int:
    """What the signal asks for now, within [min, max]."""
    ratio = observed / policy.target
    if current == 0 or abs(ratio - 1.0) <= policy.tolerance:
        wanted = max(current, 1)
    else:
        wanted = math.ceil(current * ratio - 1e-9)  # 2 × 1.5 is 3, not 4 by a float's error
    return min(policy.max, max(policy.min, wanted))


def decide(
    policy: Autoscale,
    process: str,
    current: int,
    observed: float | None,
    recent: Sequence[tuple[float, int]],
    now: float,
) -> Decision:
    """`recent`: earlier recommendations (time, count), any age: those within the
    stabilization window hold a scale-down back."""

    def decision(recommended: int, desired: int, reason: str) -> Decision:
        return Decision(now, process, policy.signal, observed, policy.target, current,
                        recommended, desired, reason)  # fmt: skip

    bounded = min(policy.max, max(policy.min, current))
    if observed is None:
        why = "no reading of the signal"
        if bounded != current:
            return decision(bounded, bounded, f"{why}; {current} is outside [{policy.min}, "
                            f"{policy.max}]")  # fmt: skip
        return decision(current, current, f"{why}: the count stays")
    recommended = recommend(policy, current, observed)
    shown = f"{observed:.3g} against a target of {policy.target:g} per instance"
    if recommended > current:
        desired = min(recommended, current + policy.max_step_up)
        if current < policy.min:
            desired = max(desired, policy.min)
        step = "" if desired == recommended else f" (at most {policy.max_step_up} at a time)"
        return decision(recommended, desired, f"up: {shown}{step}")
    if recommended == current:
        return decision(recommended, current, f"steady: {shown}")
    window_start = now - policy.scale_down_after
    held = max([r for at, r in recent if at >= window_start] + [recommended])
    if current > policy.max:  # the bound itself changed: no waiting for it
        held = min(held, policy.max)
    if held >= current:
        return decision(recommended, current, f"down later: {shown}; a higher count was "
                        f"wanted within the last {policy.scale_down_after:g}s")  # fmt: skip
    desired = max(held, current - policy.max_step_down)
    return decision(recommended, desired, f"down: {shown}")
