"""The simulated day: 10 apps with a daily traffic curve, 2–3 releases each (canaries where
two releases share traffic, a failed canary, a manual rollback), errors and latency spread.

Everything is generated per simulated minute with numpy and handed out per second as the
daemon's `Second`s: request counts, error and status classes, and a sparse latency
histogram built like the daemon's (integer milliseconds, as HAProxy logs them, bucketed with
`slipway.judge.histogram.bucket_of`; 5xx, failed connections and client aborts carry no
latency)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from slipway.judge.histogram import BUCKETS, bucket_of
from slipway.metrics.ingest import Second

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]

# app name, peak requests/s, median latency (ms), latency sigma (lognormal)
APPS: tuple[tuple[str, float, float, float], ...] = (
    ("shop", 200, 45, 0.55),
    ("api", 170, 25, 0.6),
    ("search", 140, 80, 0.5),
    ("auth", 110, 12, 0.45),
    ("billing", 90, 60, 0.5),
    ("media", 70, 120, 0.7),
    ("notify", 50, 20, 0.4),
    ("reports", 40, 250, 0.6),
    ("admin", 30, 35, 0.5),
    ("chat", 20, 15, 0.5),
)
TROUGH = 0.25  # the quietest moment of the day (04:00 UTC) carries this share of the peak
PEAK_HOUR = 16.0
LOAD_SLOWDOWN = 0.3  # the median latency is this much higher at the peak than when idle
ABORT_RATE = 0.003  # client went away
CONN_RATE = 0.0002  # HAProxy could not get an answer
P4XX = 0.03
P3XX = 0.05
CANARY_STEPS = (0.05, 0.25, 0.5)
STEP_SECONDS = 180  # each canary step: 9 min in all where two releases share traffic
BAD_STEP_SECONDS = 45  # a bad candidate is rolled back during its first step
BAD_ERROR_RATE = 0.05
ROLLBACK_AFTER = 1800  # a manual rollback, half an hour after a blue-green deploy
MAX_MS = 120_000
# the daemon's own mapping of integer milliseconds to histogram buckets
BUCKET_OF_MS: Ints = np.array([bucket_of(float(ms)) for ms in range(MAX_MS + 1)], dtype=np.int64)


@dataclass(frozen=True)
class ReleaseModel:
    name: str
    median_ms: float
    sigma: float
    error_rate: float  # 5xx answered by the app


@dataclass(frozen=True)
class Deploy:
    at: int  # simulated unix second it starts
    kind: str  # "deploy" or "rollback"
    strategy: str  # "canary" or "bluegreen"
    from_release: str
    to_release: str
    steps: tuple[float, ...]  # the candidate's share per step; () for blue-green
    step_seconds: int
    outcome: str  # "succeeded" or "failed" (rolled back by the judge)

    @property
    def end(self) -> int:
        return self.at + max(2, len(self.steps) * self.step_seconds)


@dataclass
class AppModel:
    name: str
    peak_rps: float
    releases: list[ReleaseModel]
    deploys: list[Deploy] = field(default_factory=list)

    def index(self, release: str) -> int:
        return next(i for i, r in enumerate(self.releases) if r.name == release)

    @property
    def current(self) -> str:
        current = self.releases[0].name
        for d in self.deploys:
            if d.outcome == "succeeded":
                current = d.to_release
        return current

    def routing(self, t: Ints) -> tuple[Ints, Ints, Floats]:
        """Per second: the stable release's index, the candidate's (-1: none), its share."""
        stable = np.zeros(t.shape, dtype=np.int64)
        candidate = np.full(t.shape, -1, dtype=np.int64)
        share = np.zeros(t.shape)
        for d in self.deploys:
            if d.steps:
                during = (t >= d.at) & (t < d.end)
                step = np.clip((t - d.at) // d.step_seconds, 0, len(d.steps) - 1)
                candidate[during] = self.index(d.to_release)
                share[during] = np.asarray(d.steps)[step[during]]
            if d.outcome == "succeeded":
                stable[t >= d.end] = self.index(d.to_release)
        return stable, candidate, share


def load_curve(t: Ints) -> Floats:
    """Share of the peak rate at each unix second: a daily cosine, trough at 04:00 UTC."""
    hours = (t % 86400) / 3600.0
    day = 0.5 - 0.5 * np.cos(2 * math.pi * (hours - PEAK_HOUR + 12) / 24)
    curve: Floats = TROUGH + (1 - TROUGH) * day
    return curve


def build_apps(start: int, end: int, seed: int) -> list[AppModel]:
    """Each app gets r1 from the start and a canary of r2; some a third release: promoted by
    a canary, failed in its canary (5% errors), or deployed blue-green and rolled back by
    hand. Deploy times are spread over the simulated span, so any span works."""
    rng = np.random.default_rng(seed)
    span = end - start
    apps = []
    for i, (name, peak, median, sigma) in enumerate(APPS):

        def release(number: int, error_rate: float | None = None) -> ReleaseModel:
            return _release(rng, number, median, sigma, error_rate)  # noqa: B023 (called now)

        app = AppModel(name, peak, [release(1), release(2)])
        at = start + int(span * rng.uniform(0.1, 0.55))
        app.deploys.append(
            Deploy(at, "deploy", "canary", "r1", "r2", CANARY_STEPS, STEP_SECONDS, "succeeded")
        )
        later = max(start + int(span * rng.uniform(0.6, 0.9)), app.deploys[0].end + 60)
        match i % 5:
            case 0:  # a third release, promoted
                app.releases.append(release(3))
                app.deploys.append(
                    Deploy(
                        later,
                        "deploy",
                        "canary",
                        "r2",
                        "r3",
                        CANARY_STEPS,
                        STEP_SECONDS,
                        "succeeded",
                    )
                )
            case 1:  # a bad third release, rolled back by the judge during its first step
                app.releases.append(release(3, BAD_ERROR_RATE))
                app.deploys.append(
                    Deploy(
                        later,
                        "deploy",
                        "canary",
                        "r2",
                        "r3",
                        CANARY_STEPS[:1],
                        BAD_STEP_SECONDS,
                        "failed",
                    )
                )
            case 2:  # blue-green, then a manual rollback
                app.releases.append(release(3))
                back = max(min(later + ROLLBACK_AFTER, end - 60), later + 60)
                app.deploys.append(
                    Deploy(later, "deploy", "bluegreen", "r2", "r3", (), 0, "succeeded")
                )
                app.deploys.append(
                    Deploy(back, "rollback", "bluegreen", "r3", "r2", (), 0, "succeeded")
                )
        apps.append(app)
    return apps


def _release(
    rng: np.random.Generator, number: int, median: float, sigma: float, error_rate: float | None
) -> ReleaseModel:
    return ReleaseModel(
        f"r{number}",
        median * rng.uniform(0.85, 1.15),
        sigma,
        error_rate if error_rate is not None else rng.uniform(0.0005, 0.006),
    )


def minute(app: AppModel, rng: np.random.Generator, start: int) -> list[list[tuple[str, Second]]]:
    """The app's traffic in the 60 seconds from `start`: per second, (release, Second) for
    each release that answered at least one request."""
    t = start + np.arange(60, dtype=np.int64)
    curve = load_curve(t)
    total = rng.poisson(app.peak_rps * curve)
    stable, candidate, share = app.routing(t)
    to_candidate = rng.binomial(total, share)
    out: list[list[tuple[str, Second]]] = [[] for _ in range(60)]
    for index, release in enumerate(app.releases):
        counts = np.where(stable == index, total - to_candidate, 0)
        counts += np.where(candidate == index, to_candidate, 0)
        if counts.any():
            _seconds(release, rng, counts, curve, out)
    return out


def _seconds(
    release: ReleaseModel,
    rng: np.random.Generator,
    counts: Ints,
    curve: Floats,
    out: list[list[tuple[str, Second]]],
) -> None:
    aborts = rng.binomial(counts, ABORT_RATE)
    conn = rng.binomial(counts - aborts, CONN_RATE)
    answered = counts - aborts - conn
    e5 = rng.binomial(answered, release.error_rate)
    ok = answered - e5
    c4 = rng.binomial(ok, P4XX)
    c3 = rng.binomial(ok - c4, P3XX)
    c2 = ok - c4 - c3
    medians = release.median_ms * (1 + LOAD_SLOWDOWN * curve)
    n = int(ok.sum())
    ms = np.rint(np.repeat(medians, ok) * np.exp(rng.normal(0.0, release.sigma, n)))
    buckets = BUCKET_OF_MS[np.clip(ms, 0, MAX_MS).astype(np.int64)]
    keys = np.repeat(np.arange(60, dtype=np.int64), ok) * BUCKETS + buckets
    unique, tally = np.unique(keys, return_counts=True)
    bounds = np.searchsorted(unique // BUCKETS, np.arange(61)).tolist()
    bucket_list = (unique % BUCKETS).tolist()
    tally_list = tally.tolist()
    columns = zip(
        counts.tolist(),
        aborts.tolist(),
        conn.tolist(),
        e5.tolist(),
        c2.tolist(),
        c3.tolist(),
        c4.tolist(),
        strict=True,
    )
    for i, (requests, abort, failed, errors, n2, n3, n4) in enumerate(columns):
        if requests == 0:
            continue
        lo, hi = bounds[i], bounds[i + 1]
        classes = {
            k: v
            for k, v in (
                ("2xx", n2),
                ("3xx", n3),
                ("4xx", n4),
                ("5xx", errors),
                ("conn", failed),
                ("abort", abort),
            )
            if v
        }
        second = Second(
            requests=requests,
            errors=errors + failed,
            conn_failures=failed,
            client_aborts=abort,
            latency=dict(zip(bucket_list[lo:hi], tally_list[lo:hi], strict=True)),
            classes=classes,
        )
        out[i].append((release.name, second))
