// The judge's evidence on the app page: the canary's step, its latest verdict with every
// check's numbers, and all verdicts as a strip.

import { empty, h } from "./dom.js";
import { ago, clock, decisionClass, duration, ms, num, outcomeClass, pct } from "./format.js";
import { chip, releaseTag, table } from "./parts.js";

/** The judge's evidence: live during a canary (`canary` set), else the last canary's end. */
export function canaryPanel(canary, analysis, app) {
  const verdicts = (analysis && analysis.verdicts) || [];
  const latest = (canary && canary.verdict) || verdicts[verdicts.length - 1] || null;
  const deployment = analysis && analysis.deployment;
  const evidence = (latest && latest.evidence) || {};
  const verdict = evidence.verdict || {};
  const candidate = canary ? canary.candidate : deployment && deployment.to_release;
  const stable = canary ? canary.stable : deployment && deployment.from_release;
  const steps = canary ? canary.steps : null;
  const head = h(
    "div",
    { class: "canary-head" },
    h(
      "div",
      { class: "canary-title" },
      canary ? chip("canary live", "busy") : chip(`last canary #${deployment ? deployment.id : "?"}`, ""),
      " ",
      releaseTag(candidate || "?", app),
      h("span", { class: "muted" }, " vs stable "),
      stable ? releaseTag(stable, app) : "–",
      canary
        ? h("span", { class: "muted" }, ` · step ${canary.step} of ${canary.steps.length} · ${num(canary.share, canary.share % 1 ? 1 : 0)}% of traffic · step for ${duration(Date.now() / 1000 - canary.step_started)}`)
        : deployment
          ? h("span", { class: "muted" }, " · ", chip(deployment.outcome || deployment.state, outcomeClass(deployment)), ` ${ago(deployment.finished_at || deployment.started_at)}`)
          : null,
      canary && canary.paused ? chip("paused", "warn") : null,
    ),
    steps
      ? h(
          "ol",
          { class: "canary-steps" },
          [...steps, 100].map((share, i) =>
            h("li", { class: i + 1 < canary.step ? "done" : i + 1 === canary.step ? "now" : "" }, i === steps.length ? "100% promote" : `${num(share, share % 1 ? 1 : 0)}%`),
          ),
        )
      : null,
  );
  if (!latest) {
    return [head, empty("No verdict yet: the judge speaks once both releases have traffic.")];
  }
  const decision = h(
    "div",
    { class: "verdict" },
    h("span", { class: `decision ${decisionClass(latest.decision)}`, "data-decision": latest.decision }, latest.decision),
    h(
      "div",
      { class: "verdict-text" },
      h("p", { class: "reason" }, latest.reason),
      h(
        "p",
        { class: "muted" },
        `${clock(latest.at)} · step ${latest.step} at ${num(latest.share, latest.share % 1 ? 1 : 0)}% · ` +
          `${num(verdict.candidate_requests)} candidate vs ${num(verdict.stable_requests)} stable requests` +
          (evidence.step_requests !== undefined ? ` · ${num(evidence.step_requests)} in this step` : "") +
          (evidence.excluded_seconds ? ` · ${evidence.excluded_seconds} s excluded` : ""),
      ),
    ),
  );
  const checks = (verdict.checks || []).map(checkRow);
  const prom = (evidence.prometheus || []).map((p) =>
    h(
      "tr",
      { class: p.failed ? "row-bad" : "" },
      h("td", {}, `prometheus: ${p.name}`),
      h("td", { class: "n" }, p.value === null ? "no data" : num(p.value, 3)),
      h("td", { class: "n muted" }, "–"),
      h("td", { class: "n muted" }, "–"),
      h("td", { class: "n" }, `${p.direction === "below" ? "≥" : "≤"} ${num(p.threshold, 3)}`),
      h("td", { class: "n muted" }, "–"),
      h("td", { class: "n muted" }, "–"),
      h("td", {}, p.failed ? chip("fails", "bad") : p.value === null ? chip("no data", "warn") : chip("passes", "ok")),
    ),
  );
  return [
    head,
    decision,
    table(["check", "#candidate", "#stable, same moments", "#allowed", "#evidence: worse", "#evidence: no worse", "#samples", "result"], [...checks, ...prom], { class: "grid checks" }),
    verdictStrip(verdicts),
  ];
}

function checkRow(c) {
  const isError = c.metric === "error rate";
  const value = isError ? (v) => pct(v) : (v) => ms(v);
  const result = c.regression
    ? chip("regression", "bad")
    : c.no_worse
      ? chip("no worse", "ok")
      : chip("undecided", "warn");
  return h(
    "tr",
    { class: c.regression ? "row-bad" : "", title: c.text },
    h("td", {}, c.metric),
    h("td", { class: "n" }, value(c.candidate)),
    h("td", { class: "n" }, value(c.stable)),
    h("td", { class: "n" }, c.limit),
    h("td", { class: "n" }, evidenceOf(c.worse, c.needed)),
    h("td", { class: "n" }, evidenceOf(c.within, c.needed)),
    h("td", { class: "n" }, c.samples ? `${num(c.samples[0])} / ${num(c.samples[1])}` : "–"),
    h("td", {}, result),
  );
}

// An e-value against what it must reach: how far the evidence has come.
function evidenceOf(e, needed) {
  if (e === null || e === undefined) return "–";
  return `${e >= 100 ? num(e, 0) : num(e, 2)} of ${num(needed, 0)}`;
}

/** Every verdict of the canary as a tick coloured by its decision. */
function verdictStrip(verdicts) {
  if (verdicts.length < 2) return null;
  const shown = verdicts.slice(-180);
  return h(
    "div",
    { class: "strip-wrap" },
    h("span", { class: "muted" }, `${verdicts.length} verdicts`),
    h(
      "div",
      { class: "strip" },
      shown.map((v) => h("span", { class: `tick ${decisionClass(v.decision)}`, title: `${clock(v.at)} step ${v.step}: ${v.decision} — ${v.reason}` })),
    ),
  );
}
