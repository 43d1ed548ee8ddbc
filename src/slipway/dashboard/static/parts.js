// Small pieces shared by the overview and the app page.

import { h } from "./dom.js";
import { ago, duration, ms, outcomeClass, pct, rate, releaseColor, releaseOrder } from "./format.js";

export function chip(text, cls = "", title = null) {
  return h("span", { class: `chip ${cls}`, title }, text);
}

/** A release id in its colour, linking to its page when `app` is given. */
export function releaseTag(release, app = null) {
  const style = { "--c": releaseColor(release) };
  if (!app) return h("span", { class: "rel", style }, release);
  const href = `/apps/${encodeURIComponent(app)}/releases/${encodeURIComponent(release)}`;
  return h("a", { class: "rel", style, href }, release);
}

/** The share of traffic each release gets now, from HAProxy's weights of web instances. */
export function trafficSplit(instances) {
  const shares = {};
  for (const i of instances) {
    if (i.traffic_percent) shares[i.release] = (shares[i.release] || 0) + i.traffic_percent;
  }
  return Object.entries(shares)
    .filter(([, share]) => share > 0)
    .sort(([a], [b]) => releaseOrder(a, b));
}

export function splitBar(instances, app = null) {
  const split = trafficSplit(instances);
  if (!split.length) {
    return h("div", { class: "split" }, h("div", { class: "split-none" }, "no traffic routed"));
  }
  const total = split.reduce((n, [, s]) => n + s, 0);
  return h(
    "div",
    { class: "split", "data-split": split.map(([r, s]) => `${r}=${s.toFixed(1)}`).join(" ") },
    split.map(([release, share]) => {
      const percent = (100 * share) / total;
      return h(
        "div",
        {
          class: "split-part",
          style: { flexGrow: String(percent), "--c": releaseColor(release) },
          title: `${release}: ${percent.toFixed(1)}% of traffic`,
        },
        h("span", { class: "split-label" }, releaseTag(release, app), ` ${percent < 99.95 ? percent.toFixed(percent < 10 ? 1 : 0) : "100"}%`),
      );
    }),
  );
}

const ROLE_ORDER = ["serving", "starting", "warm", "retiring", "worker"];

/** "2 serving · 1 warm · 1 worker", and the instances that are unwell. */
export function instanceHealth(instances) {
  const roles = {};
  for (const i of instances) roles[i.role] = (roles[i.role] || 0) + 1;
  const unwell = instances.filter((i) => ["backoff", "crashloop", "gone"].includes(i.state));
  const down = instances.filter((i) => i.check && /DOWN/.test(i.check) && i.role === "serving");
  const parts = ROLE_ORDER.filter((r) => roles[r]).map((r) =>
    h("span", { class: `role role-${r}` }, `${roles[r]} ${r}`),
  );
  if (!parts.length) parts.push(h("span", { class: "muted" }, "no instances"));
  const bad = [...new Set([...unwell, ...down])];
  return h(
    "div",
    { class: "health" },
    parts,
    bad.length
      ? h("span", { class: "chip bad", title: bad.map((i) => `${i.id}: ${i.state} ${i.check || ""}`).join("\n") }, `${bad.length} unhealthy`)
      : instances.length
        ? h("span", { class: "chip ok" }, "healthy")
        : null,
  );
}

export function stepsOf(deployment) {
  const canary = deployment.strategy === "canary" && deployment.kind === "deploy";
  const steps = ["build", "start", "health", ...(canary ? ["canary"] : []), "shift", "drain", "retire"];
  return deployment.kind === "deploy" ? steps : steps.slice(1);
}

/** "deploying r4 (canary, step 2 of 3 at 25%)" with the engine's steps as a progress line. */
export function deploymentInFlight(deployment, canary, app) {
  const steps = stepsOf(deployment);
  const at = steps.indexOf(deployment.state);
  const verb = { deploy: "deploying", rollback: "rolling back to", scale: "scaling" }[deployment.kind] || deployment.kind;
  const detail = canary
    ? `canary step ${canary.step} of ${canary.steps.length}: ${num1(canary.share)}% of traffic${canary.paused ? " (paused)" : ""}`
    : deployment.strategy;
  return h(
    "div",
    { class: "inflight", "data-deployment": String(deployment.id) },
    h(
      "div",
      { class: "inflight-head" },
      h("span", { class: "spinner", "aria-hidden": "true" }),
      h("strong", {}, verb, " ", releaseTag(deployment.to_release, app)),
      deployment.from_release ? h("span", { class: "muted" }, "from ", releaseTag(deployment.from_release, app)) : null,
    ),
    h(
      "div",
      { class: "inflight-meta muted" },
      `#${deployment.id} · ${detail} · ${duration(Date.now() / 1000 - deployment.started_at)} so far · by ${deployment.who}`,
    ),
    h(
      "ol",
      { class: "steps" },
      steps.map((step, i) =>
        h("li", { class: i < at ? "done" : i === at ? "now" : "" }, step),
      ),
    ),
  );
}

function num1(v) {
  return Number.isInteger(v) ? String(v) : v.toFixed(1);
}

export function lastDeployment(d, app) {
  if (!d) return h("span", { class: "muted" }, "never deployed");
  const what = { deploy: "deploy", rollback: "rollback to", scale: "scale of" }[d.kind] || d.kind;
  return h(
    "span",
    { class: "last-deploy", title: d.error ? d.error.message : null },
    `last: ${what} `,
    releaseTag(d.to_release, app),
    " ",
    chip(d.outcome || d.state, outcomeClass(d)),
    ` ${ago(d.finished_at || d.started_at)}`,
  );
}

/** Per release, over the last minute: rate, error rate, p50, p99 (from a metrics answer). */
export function nowRows(metrics, app) {
  const totals = Object.entries((metrics && metrics.totals) || {}).sort(([a], [b]) => releaseOrder(b, a));
  const seconds = metrics ? Math.max(1, metrics.t.length * metrics.step) : 60;
  return totals.map(([release, t]) =>
    h(
      "div",
      { class: "now-row", "data-release": release, "data-requests": String(t.requests) },
      releaseTag(release, app),
      h("span", { class: "big" }, rate(t.requests / seconds)),
      h("span", { class: t.error_rate > 0.01 ? "bad-text" : t.error_rate > 0 ? "warn-text" : "" }, pct(t.error_rate || 0), h("small", {}, " err")),
      h("span", {}, ms(t.p50), h("small", {}, " p50")),
      h("span", {}, ms(t.p99), h("small", {}, " p99")),
    ),
  );
}

/** The edge cache's hit ratio (HAProxy's counters since it last started); null without one. */
export function cacheRow(cache) {
  if (!cache) return null;
  const title = `${cache.hits} hits of ${cache.lookups} lookups since HAProxy last started`;
  return h(
    "div",
    { class: "now-row cache", "data-testid": "cache-hit-ratio", title },
    h("span", { class: "muted" }, "edge cache"),
    h("span", { class: "big" }, cache.hit_ratio === null ? "–" : pct(cache.hit_ratio)),
    h("small", {}, " hits"),
  );
}

/** Alerts of one app (or all) that are firing or pending. */
export function activeAlerts(alerts, app = null) {
  return ((alerts && alerts.alerts) || []).filter(
    (a) => (app === null || a.app === app) && (a.state === "firing" || a.state === "pending"),
  );
}

/** A table with a header row; a column named "#x" is numeric (right-aligned). */
export function table(head, rows, attrs = {}) {
  return h(
    "table",
    { class: "grid", ...attrs },
    h("thead", {}, h("tr", {}, head.map((c) => h("th", { class: c.startsWith("#") ? "n" : "" }, c.replace(/^#/, ""))))),
    h("tbody", {}, rows),
  );
}
