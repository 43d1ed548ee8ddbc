"""The performance gate's statistics: paired measurements, judged sequentially. Pure: no I/O.

The design (docs/config.md, `[gates.performance]`, says the same for users):

- **Pairs.** The load generator sends each round one request to the candidate and one to
  the stable release, back to back, in random order (gates/loadrun.py). Consecutive pairs,
  in the order they completed, form *blocks* of K pairs: both releases' K latencies in a
  block were measured in the same few milliseconds, so a burst of noise from the machine
  (another service, a build, a cron job) lands on both.
- **Blocks.** For each watched quantile p (p50, p95, p99: those with a `max_pNN_increase`)
  a block is *slower* when the candidate's p-quantile in the block exceeds what is allowed
  from the stable's in the same block: max((1 + increase) × stable, stable +
  min_latency_increase). θ is the chance that a block is slower. The verdict is about θ:
  *slower than allowed* means θ > 1/2 (in most moments the candidate's quantile is above the
  allowed), *within* means θ < 1/2. It is a sign test on blocks: it needs no model of the
  latency distribution, heavy tails included.
- **Sequential.** Two e-processes per quantile, each a mixture of likelihood ratios of
  Bernoulli alternatives on one side of 1/2 (closed form, below). Each is a nonnegative
  supermartingale under its null, so by Ville's inequality it ever reaches 1/α with
  probability at most α: the gate may look after every batch and stop whenever either
  decides, and may measure again after a budget ran out ("retry"), without losing that
  guarantee.
- **Errors.** The candidate's failed requests (5xx or no answer) with the same kind of
  e-process against the allowed rate: failing needs confidence. Passing needs the observed
  rate at or below the allowed rate after at least 1/rate pairs (fewer cannot tell the rate
  from zero); proving a rate of 0.1% *confidently* would take several thousand requests,
  more than a gate can spend.

Assumptions, each checked by the design or stated:
1. Identical releases see the same machine: with the order inside each pair random, the
   candidate's and the stable's latencies in a block are exchangeable given the past. Then
   θ ≤ 1/2 (indeed < 1/2: the allowed is above the stable's own quantile), so an identical
   release fails with probability ≤ α / (number of fail tests), whatever the noise. This
   holds for any latency distribution and any noise that both releases share; it does not
   hold if something slows only one release's processes (e.g. the stable's instances also
   serve users, which makes the stable slower: a bias *towards* passing, never failing).
2. The sign test's null for a *different* release: θ ≤ 1/2 means the block ratio
   (candidate's block quantile over what is allowed) has median ≤ 1. A candidate slower
   than allowed in most moments fails; one slower only in rare moments does not.
3. Given the past, each block is judged as a fresh Bernoulli: blocks may depend on each
   other through the machine's state, as long as the conditional chance of a slower block
   stays on its side of 1/2 (what the supermartingale needs), not that blocks are
   independent.
4. Errors: each request fails with conditional probability at most the true rate, given
   the past (bursts of failures that both releases share are not cancelled here: they are
   failures all the same).

The false-failure budget α is split evenly (union bound) between the fail tests: one per
watched quantile and one for errors. A pass needs every check within (an intersection of
tests, so each pass test gets the whole α)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

# Alternatives each e-process bets on, equally weighted: strong regressions (θ near 1) are
# decided in about 11 blocks, weaker ones (θ near 0.6) need more; log(5) nats is the price.
SLOWER_GRID = (0.55, 0.65, 0.75, 0.85, 0.95)
WITHIN_GRID = tuple(1 - t for t in SLOWER_GRID)
ERROR_FACTORS = (1.5, 3.0, 10.0, 50.0)  # alternatives for the error rate, × the allowed
ERROR_FLOOR = 0.01  # alternatives at least this high: an allowed rate of 0 still has some

MIN_BLOCK = 20  # pairs per block, at least


def block_pairs(p: float) -> int:
    """Pairs per block for quantile p: small blocks keep both releases' numbers close in time
    and give many blocks (power); a block needs about two requests above its p-quantile for
    that quantile to mean something (p95: 40 pairs, p99: 200, p50: 20)."""
    return max(MIN_BLOCK, round(2 / (1 - p)))


def quantile(values: Sequence[float], q: float) -> float:
    """The nearest-rank quantile: an observed latency, never an interpolated one."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def log_mixture_e(k: int, n: int, p0: float, alternatives: Sequence[float]) -> float:
    """log of the e-value for "P(event) is on the other side of p0 than `alternatives`":
    the equally weighted average over q of the likelihood ratio (q/p0)^k ((1−q)/(1−p0))^(n−k)
    after k events in n trials. For q > p0 each term is a supermartingale whenever the
    chance of an event is ≤ p0 at every trial given the past (and for q < p0 when it is
    ≥ p0): its expected factor per trial, p·q/p0 + (1−p)(1−q)/(1−p0), is linear in p and 1
    at p = p0."""
    if n == 0:
        return 0.0
    logs = [
        _xlogy(k, q / p0) + _xlogy(n - k, (1 - q) / (1 - p0)) - math.log(len(alternatives))
        for q in alternatives
    ]
    top = max(logs)
    if math.isinf(top):
        return top
    return top + math.log(sum(math.exp(v - top) for v in logs))


def _xlogy(x: int, y: float) -> float:
    if x == 0:
        return 0.0
    return -math.inf if y <= 0 else x * math.log(y)


Verdict = Literal["slower", "within", "undecided"]


@dataclass(frozen=True)
class LatencyCheck:
    """The sequential test of one watched quantile, and the numbers behind it."""

    name: str  # "p95"
    p: float
    increase: float  # allowed, relative (0.2 = +20%)
    floor_ms: float  # allowed, absolute: whichever is larger
    block: int  # pairs per block
    blocks: int
    slower_blocks: int
    candidate_ms: float  # the quantile over every pair used, for people
    stable_ms: float
    ratio_median: float  # median over blocks of candidate / stable block quantiles
    ratio_bounds: tuple[float, float]  # an anytime (1 − alpha) interval for that median
    log_e_slower: float  # evidence the candidate is slower than allowed in most blocks
    log_e_within: float  # evidence it is within the allowed in most blocks
    fail_at: float  # log(1/alpha_part): the e-value the evidence must reach
    pass_at: float
    verdict: Verdict

    @property
    def text(self) -> str:
        allowed = f"+{self.increase:.0%} or +{self.floor_ms:g} ms, whichever is larger"
        lo, hi = self.ratio_bounds
        return (
            f"{self.name} {self.candidate_ms:.1f} ms vs {self.stable_ms:.1f} ms; "
            f"{self.slower_blocks} of {self.blocks} blocks of {self.block} pairs slower than "
            f"allowed ({allowed}); block ratio median ×{self.ratio_median:.2f} "
            f"[{lo:.2f}, {_num(hi)}]; e-value slower {e_text(self.log_e_slower)} "
            f"(fails at {e_text(self.fail_at)}), within {e_text(self.log_e_within)} "
            f"(passes at {e_text(self.pass_at)})"
        )


@dataclass(frozen=True)
class ErrorCheck:
    allowed: float
    requests: int
    errors: int
    log_e_above: float  # evidence the candidate's error rate is above the allowed
    fail_at: float
    verdict: Verdict

    @property
    def rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def text(self) -> str:
        return (
            f"errors {self.errors} of {self.requests} ({self.rate:.2%}; allowed "
            f"{self.allowed:.2%}); e-value above allowed {e_text(self.log_e_above)} "
            f"(fails at {e_text(self.fail_at)})"
        )


@dataclass(frozen=True)
class Limits:
    """What the config allows, as the tests need it."""

    increases: dict[str, float]  # "p95" -> 0.2, only the watched quantiles
    floor_ms: float
    max_error_rate: float
    alpha: float
    # Errors are "within" only after this many pairs: fewer requests than 1/rate cannot tell
    # a rate from zero (set by the gate: min(budget, 1 / max_error_rate)).
    min_error_pairs: int = 0

    @property
    def fail_parts(self) -> int:
        return len(self.increases) + 1


QUANTILE_OF = {"p50": 0.50, "p95": 0.95, "p99": 0.99}


@dataclass
class Pairs:
    """What was measured, in the order the pairs completed. A latency is None when that
    side got no answer (its pair is left out of the latency tests, counted as an error)."""

    candidate: list[float | None] = field(default_factory=list)
    stable: list[float | None] = field(default_factory=list)
    candidate_failed: list[bool] = field(default_factory=list)  # 5xx or no answer
    stable_failed: list[bool] = field(default_factory=list)

    def add(self, c_ms: float | None, s_ms: float | None, c_failed: bool, s_failed: bool) -> None:
        self.candidate.append(c_ms)
        self.stable.append(s_ms)
        self.candidate_failed.append(c_failed)
        self.stable_failed.append(s_failed)

    def __len__(self) -> int:
        return len(self.candidate)

    def answered(self) -> tuple[list[float], list[float]]:
        """Both sides' latencies of the pairs where both got an answer, in order."""
        both = [
            (c, s) for c, s in zip(self.candidate, self.stable, strict=True) if c is not None
            and s is not None
        ]  # fmt: skip
        return [c for c, _ in both], [s for _, s in both]


def check_latency(name: str, pairs: Pairs, limits: Limits) -> LatencyCheck:
    p, increase = QUANTILE_OF[name], limits.increases[name]
    size = block_pairs(p)
    cand, stab = pairs.answered()
    ratios: list[float] = []
    slower = 0
    for start in range(0, len(cand) - size + 1, size):
        qc = quantile(cand[start : start + size], p)
        qs = quantile(stab[start : start + size], p)
        allowed = max((1 + increase) * qs, qs + limits.floor_ms)
        slower += qc > allowed
        ratios.append(qc / qs if qs > 0 else math.inf)
    n = len(ratios)
    fail_at = math.log(limits.fail_parts / limits.alpha)
    pass_at = math.log(1 / limits.alpha)
    e_slower = log_mixture_e(slower, n, 0.5, SLOWER_GRID)
    e_within = log_mixture_e(slower, n, 0.5, WITHIN_GRID)
    verdict: Verdict = (
        "slower" if e_slower >= fail_at else "within" if e_within >= pass_at else "undecided"
    )
    return LatencyCheck(
        name=name,
        p=p,
        increase=increase,
        floor_ms=limits.floor_ms,
        block=size,
        blocks=n,
        slower_blocks=slower,
        candidate_ms=quantile(cand, p),
        stable_ms=quantile(stab, p),
        ratio_median=quantile(ratios, 0.5),
        ratio_bounds=median_bounds(ratios, limits.alpha),
        log_e_slower=e_slower,
        log_e_within=e_within,
        fail_at=fail_at,
        pass_at=pass_at,
        verdict=verdict,
    )


def median_bounds(values: Sequence[float], alpha: float) -> tuple[float, float]:
    """An anytime-valid (1 − alpha) interval for the median of the distribution the values
    come from, by inverting the two sign-test e-processes (alpha/2 each): ρ is out when the
    count of values above ρ is evidence that the median is above ρ, or below it."""
    ordered = sorted(values)
    n = len(ordered)
    at = math.log(2 / alpha)
    kept = [
        i  # ρ between ordered[i-1] and ordered[i]: n - i values above it
        for i in range(n + 1)
        if log_mixture_e(n - i, n, 0.5, SLOWER_GRID) < at
        and log_mixture_e(n - i, n, 0.5, WITHIN_GRID) < at
    ]
    if not kept:  # cannot happen (the middle is never rejected), but never claim more
        return 0.0, math.inf
    low = ordered[kept[0] - 1] if kept[0] > 0 else 0.0
    high = ordered[kept[-1]] if kept[-1] < n else math.inf
    return low, high


def check_errors(pairs: Pairs, limits: Limits) -> ErrorCheck:
    n, k = len(pairs), sum(pairs.candidate_failed)
    allowed = limits.max_error_rate
    fail_at = math.log(limits.fail_parts / limits.alpha)
    if allowed >= 1:
        return ErrorCheck(allowed, n, k, 0.0, fail_at, "within")
    base = max(allowed, 1e-9)
    alternatives = sorted({min(0.999, max(ERROR_FLOOR, base * f)) for f in ERROR_FACTORS} - {base})
    alternatives = [q for q in alternatives if q > base] or [min(0.999, (1 + base) / 2)]
    e_above = log_mixture_e(k, n, base, alternatives)
    enough = n >= limits.min_error_pairs and k <= allowed * n
    verdict: Verdict = "slower" if e_above >= fail_at else "within" if enough else "undecided"
    return ErrorCheck(allowed, n, k, e_above, fail_at, verdict)


Decision = Literal["pass", "fail", "inconclusive", "continue"]


@dataclass(frozen=True)
class Judgement:
    decision: Decision
    reason: str
    latency: list[LatencyCheck]
    errors: ErrorCheck


def decide(pairs: Pairs, limits: Limits, exhausted: bool, compare: bool = True) -> Judgement:
    """The decision after the pairs so far. `exhausted`: the budget is spent, so an
    undecided test is inconclusive rather than a reason to measure more. `compare`: there is
    a stable release to compare latency with (a first deploy has none)."""
    errors = check_errors(pairs, limits)
    latency = [check_latency(name, pairs, limits) for name in limits.increases] if compare else []
    failing = [c.text for c in latency if c.verdict == "slower"]
    if errors.verdict == "slower":
        failing.insert(0, errors.text)
    if failing:
        return Judgement("fail", "slower than allowed: " + "; ".join(failing), latency, errors)
    undecided = [c.text for c in latency if c.verdict == "undecided"]
    if errors.verdict == "undecided":
        undecided.insert(0, errors.text)
    if not undecided:
        why = "; ".join([c.text for c in latency] + [errors.text])
        return Judgement("pass", "within the allowed: " + why, latency, errors)
    if not exhausted:
        return Judgement("continue", "undecided: " + "; ".join(undecided), latency, errors)
    return Judgement(
        "inconclusive",
        f"inconclusive after {len(pairs)} pairs: " + "; ".join(undecided),
        latency,
        errors,
    )


def min_pairs_to_decide(p: float, alpha: float, fail_parts: int) -> int:
    """The fewest pairs after which quantile p can be decided either way (every block on
    one side): a budget below this can only ever be inconclusive."""
    fail_at, pass_at = math.log(fail_parts / alpha), math.log(1 / alpha)
    n = 1
    while (
        log_mixture_e(n, n, 0.5, SLOWER_GRID) < fail_at
        or log_mixture_e(0, n, 0.5, WITHIN_GRID) < pass_at
    ):
        n += 1
    return n * block_pairs(p)


def e_text(log_e: float) -> str:
    if math.isinf(log_e):
        return "∞" if log_e > 0 else "0"
    value = math.exp(log_e)
    return f"{value:.3g}" if value < 1e6 else f"{value:.1e}"


def _num(value: float) -> str:
    return "∞" if math.isinf(value) else f"{value:.2f}"
