"""The canary step: the candidate meets a growing share of real traffic while the judge
compares it with the stable release every second, on the same traffic at the same time.

Its state (step, when it began, paused) is recorded with the deployment, and the traffic it
judges is recorded per second, so a restarted daemon resumes the judge where it was.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections import deque
from typing import TYPE_CHECKING, Any

import httpx

from slipway.deploy.planning import split_weights, thin_traffic
from slipway.errors import DeployError
from slipway.judge.histogram import Histogram
from slipway.judge.verdict import Arm, Evidence, Progress, Settings, Verdict, judge, unproven
from slipway.metrics import prometheus as prom
from slipway.metrics.ingest import Second
from slipway.runtime.fleet import UNREACHABLE
from slipway.store import traffic
from slipway.store.records import Deployment, Instance

if TYPE_CHECKING:
    from slipway.deploy.engine import Engine

LOOK_EVERY = 1.0
SETTLE = 1.5  # a second is judged once it ended this long ago (complete, checked for losses)
RECENT_SECONDS = 5  # the hard guard looks at the candidate's last seconds
LOSS_MARGIN = 2  # seconds around a recorded loss are left out, for both releases
COMMANDS = ("promote", "abort", "pause", "resume")
THIN_WINDOW = 60  # seconds of the stable's traffic that tell the app's rate
HISTORY_SECONDS = 120  # of the stable before the canary, for the judge


class CanaryRun:
    def __init__(self, engine: Engine, dep: Deployment) -> None:
        self.engine = engine
        self.store = engine.s.store
        self.dep = dep
        self.config = self.store.release(dep.app, dep.to_release).config
        analysis = self.config.analysis
        self.settings = Settings(
            alpha=analysis.alpha,
            max_error_rate_increase=analysis.max_error_rate_increase,
            max_latency_increase=analysis.max_latency_increase,
            latency_quantiles=tuple(analysis.latency_quantiles),
            abort_error_rate=analysis.abort_error_rate,
            warmup_seconds=round(analysis.warmup),
        )
        self.steps = [s for s in self.config.deploy.steps if s < 100]
        self.stable_release = dep.from_release or ""
        now = time.time()
        self.state: dict[str, Any] = {
            "index": 0,
            "started": now,
            "step_started": now,
            "paused": False,
        } | (dep.canary or {})
        # when each step began: a second is judged with the step it was served in
        self.state.setdefault("step_starts", [self.state["step_started"]])
        self.evidence = Evidence(self.settings)
        self.learn_before(int(self.state["started"]))
        self.recent: deque[tuple[Arm, Arm]] = deque(maxlen=RECENT_SECONDS)
        self.step_requests = 0
        self.seen = int(self.state["started"]) - 1  # the last second judged
        self.excluded: set[int] = set()
        self.prom_results: dict[str, prom.PromResult] = {}
        self.prom_due: dict[str, float] = {}

    @property
    def share(self) -> float:
        return float(self.steps[int(self.state["index"])])

    def save(self) -> None:
        self.store.update_deployment(self.dep.id, canary=self.state)

    async def run(self) -> str:
        if not self.steps:
            return "no partial steps configured: straight to 100%"
        self.save()
        await self.apply_share()
        self.note_step()
        self.warn_if_thin()
        async with httpx.AsyncClient() as client:
            while True:
                await asyncio.sleep(LOOK_EVERY)
                outcome = await self.look(client)
                if outcome is not None:
                    return outcome

    # each second -------------------------------------------------------------------------

    async def look(self, client: httpx.AsyncClient) -> str | None:
        command = self.engine.take_canary_command(self.dep.id)
        if command is not None:
            outcome = await self.obey(*command)
            if outcome is not None:
                return outcome
        await self.check_candidates()
        ongoing_loss = self.update_arms()
        progress = Progress(
            step_requests=self.step_requests,
            step_seconds=time.time() - self.state["step_started"],
            min_requests=self.config.deploy.step_min_requests,
            min_seconds=self.config.deploy.step_min_seconds,
            final_step=self.state["index"] + 1 >= len(self.steps),
            ingest_complete=not ongoing_loss,
            ingest_note=ongoing_loss,
        )
        verdict = judge(self.evidence, list(self.recent), progress)
        verdict = self.with_prometheus(verdict, await self.prometheus_checks(client))
        self.record(verdict)
        if verdict.decision == "rollback":
            raise DeployError(
                f"canary {self.dep.to_release} rolled back: {verdict.reason}",
                where=f"app {self.dep.app}, step {self.state['index'] + 1} ({self.share:g}%)",
                details=[c.text for c in verdict.checks],
                fix=f"see the evidence with `slipway analysis {self.dep.id}`",
                data={"verdict": verdict.to_dict()},
            )
        if self.state["paused"]:
            return None
        if verdict.decision == "promote":
            return await self.next_step()
        if verdict.decision == "inconclusive" and progress.step_seconds > (
            self.config.deploy.step_timeout
        ):
            return await self.inconclusive_for_too_long(verdict)
        return None

    async def obey(self, name: str, who: str) -> str | None:
        if name == "abort":
            raise DeployError(
                f"canary {self.dep.to_release} aborted by {who}",
                where=f"app {self.dep.app}",
                fix="the stable release took all traffic back",
            )
        if name == "promote":
            self.engine.event(self.dep, "canary", "info", f"promoted by {who}")
            return f"promoted by {who} at step {self.state['index'] + 1} ({self.share:g}%)"
        self.state["paused"] = name == "pause"
        self.save()
        self.engine.event(self.dep, "canary", "info", f"{name}d by {who} at {self.share:g}%")
        return None

    async def next_step(self) -> str | None:
        if self.state["index"] + 1 >= len(self.steps):
            return (
                f"no regression through {len(self.steps)} step(s) "
                f"({self.evidence.candidate.requests} candidate requests)"
            )
        self.state["index"] += 1
        self.state["step_started"] = time.time()
        self.state["step_starts"].append(self.state["step_started"])
        self.step_requests = 0
        self.save()
        await self.apply_share()
        self.note_step()
        return None

    async def inconclusive_for_too_long(self, verdict: Verdict) -> str | None:
        limit = self.config.deploy.step_timeout
        if self.config.deploy.on_inconclusive == "pause":
            self.state["paused"] = True
            self.save()
            self.engine.event(
                self.dep,
                "canary",
                "info",
                f"paused: still {verdict.reason} after {limit:g}s; "
                "`slipway promote` or `slipway abort` decides",
            )
            return None
        raise DeployError(
            f"canary {self.dep.to_release} aborted: still {verdict.reason} after {limit:g}s",
            where=f"app {self.dep.app}, step {self.state['index'] + 1} ({self.share:g}%)",
            fix="send it more traffic, lower step_min_requests, or set "
            'on_inconclusive = "pause" to decide by hand',
        )

    def note_step(self) -> None:
        self.engine.event(
            self.dep,
            "canary",
            "info",
            f"step {self.state['index'] + 1} of {len(self.steps)}: {self.share:g}% of traffic "
            f"on {self.dep.to_release}",
            {"share": self.share, "step": self.state["index"] + 1},
        )

    def learn_before(self, started: int) -> None:
        """The stable's seconds before the canary tell the judge how clustered its errors
        are (a restarted daemon reads the same seconds, and reaches the same state)."""
        since = started - HISTORY_SECONDS - 1
        for second, served in traffic.seconds_after(
            self.store, self.dep.app, self.stable_release, since
        ):
            if second < started:
                self.evidence.learn(_arm_of(served))

    def step_of(self, second: int) -> int:
        return max(0, bisect.bisect_right(self.state["step_starts"], second + 0.999) - 1)

    def warn_if_thin(self) -> None:
        """Say at once when the app's traffic cannot fill a step before its timeout, with
        the settings that would, rather than abort ten minutes later."""
        since = int(time.time()) - THIN_WINDOW
        served = traffic.seconds_after(self.store, self.dep.app, self.stable_release, since)
        rate = sum(second.requests for _, second in served) / THIN_WINDOW
        seen = Arm()
        for _, second in served:
            seen.add(_arm_of(second))
        deploy = self.config.deploy
        note = thin_traffic(
            rate, self.steps, deploy.step_min_requests, deploy.step_min_seconds,
            deploy.step_timeout,
            lambda plan: unproven(self.settings, plan, seen.error_rate, seen.latency),
        )  # fmt: skip
        if note is not None:
            self.engine.event(self.dep, "canary", "info", note, {"requests_per_second": rate})

    # traffic ------------------------------------------------------------------------------

    def candidates(self) -> list[Instance]:
        return [i for i in self.store.instances(self.dep.app) if i.id in self.dep.instances]

    def stables(self) -> list[Instance]:
        return [
            i
            for i in self.store.instances(self.dep.app)
            if i.release == self.stable_release and i.is_web and i.weight is not None
        ]

    async def apply_share(self) -> None:
        candidates = [i for i in self.candidates() if i.is_web]
        stables = self.stables()
        if not candidates or not stables:
            raise DeployError(
                "a canary needs web instances of both releases",
                where=f"app {self.dep.app}",
                fix='deploy with strategy = "bluegreen" instead',
            )
        stable_weight, candidate_weight = split_weights(self.share, len(stables), len(candidates))
        # one switch on every lb host, raises first (a step only ever moves weight to the
        # candidate, so its servers go first)
        weights = {c.id: candidate_weight for c in candidates} | {
            s.id: stable_weight for s in stables
        }
        before = {i.id: i.weight or 0 for i in [*candidates, *stables]}
        await self.engine.s.router.set_weights(self.dep.app, weights, before)
        for name, weight in weights.items():
            self.store.update_instance(self.dep.app, name, weight=weight)

    async def check_candidates(self) -> None:
        """A candidate instance that crashed is a failed canary, whatever the statistics say."""
        candidates = self.candidates()
        seen = await self.engine.s.runtime.observe(candidates)
        for instance in candidates:
            observed = seen[instance.id]
            if observed.state == UNREACHABLE:
                raise DeployError(
                    f"host {instance.host} of candidate instance {instance.id} does not answer; "
                    "the canary was stopped and the stable release takes all traffic back",
                    where=f"host {instance.host}",
                    fix="check the host with `slipway hosts`, then deploy again",
                )
            if not observed.alive or observed.restarts > 0 or observed.crashloop:
                raise await self.engine.instance_failure(
                    instance, "crashed during the canary", observed.last_exit
                )

    def update_arms(self) -> str:
        """Add the seconds that are complete; returns a note if request data is being lost
        right now (the seconds around a loss are left out for both releases)."""
        limit = int(time.time() - 1 - SETTLE)
        losses = traffic.losses_since(self.store, int(self.state["started"]) - LOSS_MARGIN)
        for second, _, _ in losses:
            self.excluded.update(range(second - LOSS_MARGIN, second + LOSS_MARGIN + 1))
        step_start = int(self.state["step_started"])
        app = self.dep.app
        stable = dict(traffic.seconds_after(self.store, app, self.stable_release, self.seen))
        candidate = dict(traffic.seconds_after(self.store, app, self.dep.to_release, self.seen))
        for second in range(self.seen + 1, limit + 1):  # in order: the evidence needs it
            self.seen = second
            if second in self.excluded:
                continue
            ours = candidate.get(second, Second())
            theirs = _arm_of(stable.get(second, Second()))
            step = self.step_of(second)
            self.evidence.add_second(theirs, _arm_of(ours), step)
            self.recent.append((theirs, _arm_of(ours)))
            if second >= step_start:
                self.step_requests += ours.requests
        latest = [lost for second, lost, _ in losses if second >= limit - RECENT_SECONDS]
        return f"{sum(latest)} request log lines lost in the last seconds" if latest else ""

    # prometheus ---------------------------------------------------------------------------

    async def prometheus_checks(self, client: httpx.AsyncClient) -> list[prom.PromResult]:
        analysis = self.config.analysis
        now = time.monotonic()
        for check in analysis.prometheus:
            if self.prom_due.get(check.name, 0.0) > now:
                continue
            self.prom_due[check.name] = now + check.every
            query = prom.expand(check.query, self.dep.app, self.dep.to_release, self.stable_release)
            url = check.url or analysis.prometheus_url or ""
            value, note = await prom.query_value(client, url, query)
            self.prom_results[check.name] = prom.evaluate(check, query, value, note)
        return [
            self.prom_results[c.name] for c in analysis.prometheus if c.name in self.prom_results
        ]

    @staticmethod
    def with_prometheus(verdict: Verdict, results: list[prom.PromResult]) -> Verdict:
        """A failed check rolls back; a check without data holds promotion like too little
        traffic does (inconclusive, never a failure by itself)."""
        failed = [r for r in results if r.failed]
        missing = [r for r in results if r.value is None]
        if failed and verdict.decision != "rollback":
            verdict.decision = "rollback"
            verdict.reason = "; ".join(r.describe() for r in failed)
        elif missing and verdict.decision == "promote":
            verdict.decision = "inconclusive"
            verdict.reason = "inconclusive: " + "; ".join(r.describe() for r in missing)
        return verdict

    def record(self, verdict: Verdict) -> None:
        evidence = {
            "verdict": verdict.to_dict(),
            "prometheus": [vars(r) for r in self.prom_results.values()],
            "stable_release": self.stable_release,
            "candidate_release": self.dep.to_release,
            "paused": self.state["paused"],
            "step_requests": self.step_requests,
            "excluded_seconds": len([s for s in self.excluded if s >= int(self.state["started"])]),
        }
        traffic.add_verdict(
            self.store,
            self.dep.id,
            self.state["index"] + 1,
            self.share,
            verdict.decision,
            verdict.reason,
            evidence,
        )


def _arm_of(second: Second) -> Arm:
    return Arm(second.requests, second.errors, Histogram.from_sparse(second.latency))
