"""`[autoscale.PROCESS]`: how many instances follow the load. Pure schema.

The defaults are Kubernetes' HorizontalPodAutoscaler's where it has one, for the reasons it
has them: a 10% tolerance (a signal that wobbles around its target does not flap the count),
scale up at once (late capacity is felt by every user), scale down only when every
recommendation of the last 5 minutes agreed (load comes back; an instance is cheap to keep
and slow to get back)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from slipway.config.types import Duration, Strict, within

Signal = Literal["inflight", "p95", "cpu"]
# What each signal's target is in, for errors and docs.
TARGET_UNITS: dict[str, str] = {
    "inflight": "requests in flight per instance (HAProxy's live counters), e.g. 8",
    "p95": "milliseconds of the process's 95th-percentile response time, e.g. 250",
    "cpu": "cores per instance, e.g. 0.6",
}
WEB_ONLY = ("inflight", "p95")  # measured at HAProxy: only a process with a port has them


class Autoscale(Strict):
    min: int = Field(default=1, ge=1, le=64)
    max: int = Field(ge=1, le=64)
    signal: Signal = "inflight"
    target: float = Field(gt=0, le=1e6, allow_inf_nan=False)
    tolerance: float = Field(default=0.1, ge=0, le=0.9)  # no change within ±10% of the target
    every: Annotated[Duration, within(1, 300)] = 5.0  # one decision per this
    # the signal is averaged (inflight, cpu) or its percentile taken (p95) over this
    window: Annotated[Duration, within(1, 600)] = 15.0
    scale_down_after: Annotated[Duration, within(0, 3600)] = 300.0  # stabilization window
    max_step_up: int = Field(default=4, ge=1, le=64)  # instances added per decision, at most
    max_step_down: int = Field(default=64, ge=1, le=64)  # instances removed per decision

    @model_validator(mode="after")
    def _bounds(self) -> Autoscale:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) is above max ({self.max})")
        return self
