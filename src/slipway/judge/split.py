"""Whose are a moment's events? The test at the heart of the judge.

Both releases serve the same traffic at the same moments, so the judge compares them only
within a stratum (a second, or a few): whatever changes over time for both of them (a shared
dependency failing, latency creeping up, traffic ramping) changes both sides of every
comparison and cancels. Across strata it may change freely.

In a stratum the candidate served `n_c` requests (or trials) and the stable `n_s`, and each
had some events: errors, or requests slower than a threshold. Write t = n_c / (n_c + n_s)
for the candidate's share of the trials and, for an alternative in which the candidate's
events are ω times as frequent as the stable's, t1 = t·ω / (t·ω + 1 − t) for its expected
share of the events. The stratum's likelihood ratio of "ω" against "no difference" is

    LR = x^e_c · y^(e_s + λ),   x = t1 / t,   y = (1 − t1) / (1 − t)

with λ pseudo-events added to the stable's side to allow a margin δ per trial (below).
Under "the candidate's event rate is at most the stable's plus δ", E[LR] ≤ 1 whatever the
rates are in that stratum: for binomial (or Poisson) counts, E[x^e_c] ≤ exp(n_c·p_c·(x − 1))
and E[y^e_s] ≤ exp(n_s·p_s·(y − 1)), and with t·x + (1 − t)·y = 1 the exponent is
(t1 − t)·(n_c + n_s)·(p_c − p_s) + λ·log y, which λ = n_s·δ·(y − 1)/log y makes ≤ 0 when
p_c − p_s ≤ δ (and the same λ works for the opposite test, p_c − p_s ≥ δ, with t1 < t).
The rates p_c and p_s may differ from stratum to stratum as they like: they cancel. When the
events are defined by a threshold taken from both releases' requests together (latency),
the candidate's count given the stratum is hypergeometric under exchangeability, which is
smaller in convex order than binomial, so the same ratio is an e-value (Hoeffding 1963).

So each stratum's ratio is an e-value given the past, their running product is a test
supermartingale, and so is its average over a fixed grid of alternatives ω (a mixture).
By Ville's inequality, P(the mixture ever reaches 1/α) ≤ α: the judge may look after every
stratum, as often as it likes.

Overdispersion: errors that come in clusters (one hiccup failing several requests of one
release) carry less evidence than as many independent ones. Each stratum's log ratio is
divided by φ, the larger of the dispersion of the splits seen so far (their Pearson statistic
against the rate ratio seen so far, shrunk towards 1) and the stable release's own clustering
(a robust index of its consecutive strata, which a burst shared by both releases does not
inflate: see Clustering): for clusters of m events, φ ≈ m and the tempered ratio is exactly
the ratio of the m-times-fewer clusters.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]

# The alternatives the mixture averages over: rate ratios just above 1 to a broken release
# (worse), and down to a fifth (better, for the evidence that the candidate is no worse).
WORSE: Floats = np.geomspace(1.03, 400.0, 48)
BETTER: Floats = 1.0 / np.geomspace(1.03, 5.0, 32)
# Half the prior weight spread evenly (a broken release is caught within a few events), half
# ∝ (distance from 1)^-1.5, on small effects, which need every bit of evidence (bench/judge).
PRIOR_POWER = 1.5
DISPERSION_PRIOR = 8.0  # strata's worth of "no overdispersion" the estimate starts from
CLUSTER_WINDOW = 120  # pairs of consecutive stable strata the clustering is measured on
OUTLIER = 6.0  # a pair of strata this many times the clustering apart is a shared change
ROUNDS = 6  # of the robust clustering estimate (it settles within two or three)


@dataclass
class Clustering:
    """How clustered events are, from the stable release's own strata (it serves most of
    the traffic, and served before the canary began): for consecutive strata with x1, x2
    events among n1, n2 trials, d = (x1·n2 − x2·n1)² / (n1·n2·(x1 + x2)) is the Pearson
    statistic of x1 given x1 + x2, which averages 1 for independent events and m for
    clusters of m. Successive differences ignore a slow drift of the rate.

    A sudden change that both releases share (a dependency failing for a second, an outage
    starting or ending) makes one pair's d huge: 30% errors for a second against 1% around
    it gives d ≈ 50 at 200 requests/s, and such pairs, weighted by their many events, made
    the plain average the size of the bursts rather than of the clusters. The split test
    does not need that caution, as a shared change cancels within a stratum. So the index
    is a robust one: start from the median d (clusters of m put most pairs at about m, rare
    bursts do not move it), then average, weighted by events, only the pairs within
    OUTLIER times the estimate, and repeat. Since d ≤ x1 + x2, a pair of fewer than
    OUTLIER·φ events is never left out: with the few events a second of most services has,
    independent or clustered events lose nothing. With many events per pair d/φ is about
    χ²₁, P(χ²₁ > 6) = 1.4%, and the pairs left out carry at most 11% of its mean: the index
    may then be that much low, in the limit. A larger OUTLIER cuts that, but lets bursts
    back in where events are clustered too (with clusters of 5, a 30% burst against 1% is
    d ≈ 10·φ; at 12 the estimate settles at the bursts' size again). A shared change still
    counts where it is small (5% against 1%: d ≈ 5) or in most seconds (the rate changing
    all the time): that, and rare clusters far larger than the usual ones, only make the
    tests more cautious (φ larger); the split test stays valid for any φ ≥ 1 computed
    from earlier strata.

    Not used: splitting the stable's trials of a stratum into parts (by instance) would
    see a shared change on every part, but the judge gets each release's totals per
    second, not its instances'; and the splits' own dispersion (SplitTest) is too heavy-
    tailed at a 5% share (one candidate cluster moves it by ~100 strata's worth) to stand
    alone as the floor early in a canary."""

    last: tuple[float, float] | None = None
    pairs: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=CLUSTER_WINDOW))
    _index: float | None = field(default=None, repr=False)

    def add(self, events: float, trials: float) -> None:
        if trials <= 0:
            return
        if self.last is not None and events + self.last[0] > 0:
            x1, n1 = self.last
            spread = n1 * trials * (x1 + events)
            self.pairs.append(((x1 * trials - events * n1) ** 2, spread))
            self._index = None
        self.last = (events, trials)

    @property
    def index(self) -> float:
        if self._index is None:
            self._index = _robust_index(list(self.pairs))
        return self._index


def _robust_index(pairs: list[tuple[float, float]]) -> float:
    """The events-weighted mean d of the pairs within OUTLIER times it (see Clustering),
    shrunk towards 1 by DISPERSION_PRIOR pairs' worth; from the median d, a few rounds."""
    if not pairs:
        return 1.0
    deviation, spread = np.array(pairs).T
    ratio = deviation / spread
    index = max(1.0, float(np.median(ratio)))
    for _ in range(ROUNDS):
        kept = ratio <= OUTLIER * max(1.0, index)
        count = int(kept.sum())
        # shrunk towards 1 by DISPERSION_PRIOR pairs' worth, in the spread's own scale
        kept_spread = float(spread[kept].sum())
        prior = DISPERSION_PRIOR * (kept_spread / count if count else 1.0)
        fresh = (float(deviation[kept].sum()) + prior) / (kept_spread + prior)
        if math.isclose(fresh, index, rel_tol=1e-3):
            return fresh
        index = fresh
    return index


@dataclass
class SplitTest:
    """One one-sided test: `worse` (H0: the candidate's rate is at most the stable's + δ) or
    better (H0: at least the stable's + δ). Feed it strata in time order."""

    worse: bool
    # also temper by the stable's own clustering (errors; not latency events, whose counts
    # move with a threshold taken afresh in every stratum)
    stable_clustering: bool = True
    ratios: Floats = field(init=False)
    log_products: Floats = field(init=False)
    log_weights: Floats = field(init=False)
    pearson: float = 0.0  # sum over strata of the splits' Pearson statistics
    strata: int = 0  # strata with events, behind `pearson`
    # Mantel-Haenszel sums: each side's events weighted by the other's share
    mine_weighted: float = 0.0
    theirs_weighted: float = 0.0
    clustering: Clustering = field(default_factory=Clustering)

    def __post_init__(self) -> None:
        self.ratios = WORSE if self.worse else BETTER
        self.log_products = np.zeros(len(self.ratios))
        small = np.maximum(self.ratios, 1.0 / self.ratios) ** -PRIOR_POWER
        weights = 0.5 / len(self.ratios) + 0.5 * small / small.sum()
        self.log_weights = np.log(weights)

    @property
    def dispersion(self) -> float:
        """φ ≥ 1, from the strata before the next one (predictable, as validity needs): the
        larger of the splits' own dispersion and the stable's clustering."""
        splits = (self.pearson + DISPERSION_PRIOR) / (self.strata + DISPERSION_PRIOR)
        stable = self.clustering.index if self.stable_clustering else 1.0
        return max(1.0, splits, stable)

    @property
    def log_e(self) -> float:
        """log of the e-value: the mixture of the running products."""
        terms = self.log_weights + self.log_products
        top = float(terms.max())
        return top + math.log(float(np.exp(terms - top).sum()))

    def add(self, mine: float, theirs: float, n_c: float, n_s: float, delta: float) -> None:
        """One stratum: the candidate's and the stable's events among n_c and n_s trials;
        `delta` is the allowed difference in events per trial."""
        if n_c <= 0 or n_s <= 0:
            return
        t = n_c / (n_c + n_s)
        t1 = t * self.ratios / (t * self.ratios + 1.0 - t)
        log_x = np.log(t1 / t)
        log_y = np.log((1.0 - t1) / (1.0 - t))
        pseudo = n_s * delta * np.expm1(log_y) / log_y if delta > 0 else 0.0
        phi = self.dispersion
        self.log_products += (mine * log_x + (theirs + pseudo) * log_y) / phi
        self._note_split(mine, theirs, t)
        self.clustering.add(theirs, n_s)

    def _note_split(self, mine: float, theirs: float, t: float) -> None:
        events = mine + theirs
        if events >= 1:
            ratio = self.rate_ratio
            share = t * ratio / (t * ratio + 1.0 - t)
            spread = events * share * (1.0 - share)
            if spread > 0:
                self.pearson += (mine - events * share) ** 2 / spread
                self.strata += 1
        self.mine_weighted += mine * (1.0 - t)
        self.theirs_weighted += theirs * t

    @property
    def rate_ratio(self) -> float:
        """The candidate's event rate over the stable's in the same strata so far (the
        Mantel-Haenszel estimate), with half an event of prior on each side."""
        return (self.mine_weighted + 0.5) / (self.theirs_weighted + 0.5)


def passes(test: SplitTest, alpha: float) -> bool:
    """The test's null is rejected: its e-value reached 1/alpha."""
    return test.log_e >= math.log(1.0 / alpha)
