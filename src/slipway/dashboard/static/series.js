// What the charts plot, from a metrics answer (GET /v1/apps/{app}/metrics): each kind's
// series per release, its axis and legend format, and the small data fixes behind them.

import { ms, pct, rate } from "./format.js";

/** What each chart plots: its series from one release's data, its axis and legend format. */
export const KINDS = {
  rps: {
    series: (name, data, t, step) => [
      { label: name, values: partialLast(zeroFilled(data.rps), t, step), width: 2, fill: true },
    ],
    format: rate,
    range: (u, min, max) => [0, niceMax(max, 1)],
  },
  errors: {
    series: (name, data, t, step) => [
      { label: name, values: errorPercent(data, step === 1 ? 5 : 1), width: 2 },
    ],
    format: (v) => (v === null || v === undefined ? "–" : pct(v / 100)),
    range: (u, min, max) => [0, niceMax(max, 1)],
  },
  latency: {
    series: (name, data) => [
      { label: `${name} p50`, values: data.p50, width: 2 },
      { label: `${name} p99`, values: data.p99, width: 1.5, dash: [6, 4] },
    ],
    format: ms,
    axis: (v) => {
      if (v === null || v === undefined) return "";
      return v >= 1000 ? `${+(v / 1000).toPrecision(3)} s` : `${+v.toPrecision(3)} ms`;
    },
    log: true, // p50 and p99 are often 10× apart; a log axis shows both
    range: (u, min, max) => {
      const low = min > 0 ? min : 0.5;
      const high = max > 0 ? max : 10;
      return [10 ** Math.floor(Math.log10(low)), 10 ** Math.ceil(Math.log10(high * 1.05))];
    },
  },
};

/** Error rate in %, over `window` points weighted by their requests: at 1 s steps a
 *  release with a few requests a second would swing between 0 and 100% otherwise. */
function errorPercent(data, window) {
  const rates = data.error_rate;
  const counts = data.rps;
  return rates.map((_, i) => {
    let errors = 0;
    let requests = 0;
    for (let j = Math.max(0, i - window + 1); j <= i; j++) {
      if (rates[j] === null || !counts[j]) continue;
      errors += rates[j] * counts[j];
      requests += counts[j];
    }
    return requests ? (100 * errors) / requests : null;
  });
}

export function niceMax(max, floor) {
  if (max === null || !Number.isFinite(max) || max <= 0) return floor;
  const padded = max * 1.15;
  const magnitude = 10 ** Math.floor(Math.log10(padded));
  for (const step of [1, 2, 2.5, 5, 10]) {
    if (step * magnitude >= padded) return step * magnitude;
  }
  return padded;
}

/** No row for a second means no requests: 0 between a release's first and last data point
 *  (a gap there is real silence); nothing before or after (it was not serving). */
export function zeroFilled(values) {
  const first = values.findIndex((v) => v !== null);
  if (first < 0) return values;
  let last = values.length - 1;
  while (last > first && values[last] === null) last--;
  return values.map((v, i) => (v === null && i >= first && i <= last ? 0 : v));
}

/** Minute buckets: the current one is still filling, so its rate is over the seconds it has
 *  had (with a second for the ingest), not the whole minute, or every chart would dip. */
function partialLast(values, t, step) {
  const last = values.length - 1;
  if (step <= 1 || last < 0 || values[last] === null) return values;
  const elapsed = Date.now() / 1000 - 1 - t[last];
  if (elapsed <= 0 || elapsed >= step) return values;
  const out = values.slice();
  out[last] = (values[last] * step) / Math.max(elapsed, 5);
  return out;
}

export function mean(values) {
  const known = values.filter((v) => v !== null);
  return known.length ? known.reduce((a, b) => a + b, 0) / known.length : null;
}

/** Every `every` points folded into one by `fold` (aligned on the grid's end). */
export function coarse(values, every, fold) {
  if (every <= 1) return values;
  const out = [];
  for (let end = values.length; end > 0; end -= every) {
    out.push(fold(values.slice(Math.max(0, end - every), end)));
  }
  return out.reverse();
}

export function alpha(hex, a) {
  const n = parseInt(hex.slice(1), 16);
  return `rgba(${(n >> 16) & 255},${(n >> 8) & 255},${n & 255},${a})`;
}
