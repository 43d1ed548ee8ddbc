// The app page's panels: each a function from API data to DOM nodes (text via textContent).

import { empty, h } from "./dom.js";
import {
  ago,
  clock,
  duration,
  fullTime,
  ms,
  num,
  outcomeClass,
  pct,
  releaseColor,
  releaseOrder,
} from "./format.js";
import { chip, releaseTag, table } from "./parts.js";

// releases and deployments ---------------------------------------------------------------

export function releasesPanel(releases, app, focus) {
  if (!releases.length) return empty("No releases yet.");
  return h(
    "ol",
    { class: "timeline" },
    releases.slice(0, 15).map((r) =>
      h(
        "li",
        { class: `${r.current ? "current" : ""} ${focus === r.id ? "focus" : ""}`, style: { "--c": releaseColor(r.id) }, "data-release": r.id },
        h(
          "div",
          { class: "tl-head" },
          releaseTag(r.id, app),
          r.current ? chip("current", "ok") : null,
          r.warm_until && r.warm_until > Date.now() / 1000 ? chip(`warm ${duration(r.warm_until - Date.now() / 1000)}`, "info") : null,
          r.status !== "ready" ? chip(r.status, r.status === "failed" ? "bad" : "busy") : null,
          !r.on_disk ? chip("pruned", "") : null,
          h("span", { class: "muted right", title: fullTime(r.created_at) }, ago(r.created_at)),
        ),
        h(
          "div",
          { class: "tl-body muted" },
          r.git_sha ? `git ${r.git_sha.slice(0, 10)}` : r.source_kind,
          ` · config ${r.config_hash.slice(0, 8)}`,
          r.build_seconds !== null ? ` · built in ${duration(r.build_seconds)}` : "",
          r.deployed_at ? ` · deployed ${clock(r.deployed_at, false)}` : " · never deployed",
        ),
        r.error ? h("div", { class: "tl-error" }, r.error) : null,
      ),
    ),
  );
}

export function deploymentsPanel(deployments, app) {
  if (!deployments.length) return empty("No deployments yet.");
  const rows = [];
  for (const d of deployments.slice(0, 12)) {
    const what = d.kind === "deploy" ? d.strategy : d.kind;
    rows.push(
      h(
        "tr",
        { "data-deployment": String(d.id) },
        h("td", { class: "n muted" }, `#${d.id}`),
        h("td", {}, what),
        h("td", { class: "nowrap" }, d.from_release ? [releaseTag(d.from_release, app), " → "] : null, releaseTag(d.to_release, app)),
        h("td", {}, chip(d.finished_at ? d.outcome : d.state, outcomeClass(d))),
        h("td", { class: "nowrap", title: fullTime(d.started_at) }, clock(d.started_at, false), h("small", { class: "muted" }, ` ${ago(d.started_at)}`)),
        h("td", { class: "n" }, duration((d.finished_at || Date.now() / 1000) - d.started_at)),
        h("td", { class: "muted ellipsis", title: d.who }, d.who),
      ),
    );
    if (d.error) {
      rows.push(h("tr", { class: "row-error" }, h("td", {}), h("td", { colspan: "6" }, d.error.message || "failed")));
    }
  }
  return table(["#", "kind", "release", "outcome", "started", "#took", "by"], rows);
}

// instances and logs -----------------------------------------------------------------------

export function instancesPanel(instances, app, selected, onSelect) {
  if (!instances.length) return empty("No instances.");
  const order = { serving: 0, starting: 1, warm: 2, retiring: 3, worker: 4 };
  const sorted = [...instances].sort(
    (a, b) => releaseOrder(b.release, a.release) || (order[a.role] ?? 9) - (order[b.role] ?? 9) || a.id.localeCompare(b.id),
  );
  return table(
    ["instance", "role", "state", "HAProxy", "#traffic", "#restarts", "#uptime", "#pid:port"],
    sorted.map((i) => {
      const unwell = ["backoff", "crashloop", "gone"].includes(i.state);
      return h(
        "tr",
        {
          class: `clickable ${selected === i.id ? "selected" : ""} ${unwell ? "row-bad" : ""}`,
          "data-instance": i.id,
          title: i.last_exit ? `last exit: ${JSON.stringify(i.last_exit)}` : "show this instance's logs",
          onclick: () => onSelect(selected === i.id ? null : i.id),
        },
        h("td", { class: "nowrap" }, h("span", { class: "swatch", style: { background: releaseColor(i.release) } }), i.id),
        h("td", {}, h("span", { class: `role role-${i.role}` }, i.role)),
        h("td", {}, chip(i.state, { running: "ok", starting: "busy", backoff: "bad", crashloop: "bad", gone: "bad" }[i.state] || "")),
        h("td", {}, i.check ? chip(i.check, /^UP/.test(i.check) ? "ok" : /DOWN/.test(i.check) ? "bad" : "") : h("span", { class: "muted" }, "–")),
        h("td", { class: "n" }, i.traffic_percent === null ? "–" : trafficCell(i.traffic_percent, i.release)),
        h("td", { class: `n ${i.restarts ? "warn-text" : ""}` }, String(i.restarts)),
        h("td", { class: "n" }, duration(i.uptime_seconds)),
        h("td", { class: "n muted" }, `${i.pid ?? "–"}${i.port ? `:${i.port}` : ""}`),
      );
    }),
    { class: "grid instances" },
  );
}

function trafficCell(percent, release) {
  return h(
    "span",
    { class: "bar-cell" },
    h("span", { class: "bar", style: { width: `${Math.min(100, percent)}%`, background: releaseColor(release) } }),
    `${percent.toFixed(percent % 1 ? 1 : 0)}%`,
  );
}

export function logLines(lines) {
  if (!lines.length) return [empty("No log lines.")];
  return lines.map((l) =>
    h(
      "div",
      { class: `log ${l.stream === "stderr" || l.stream === "err" ? "stderr" : ""} ${l.stream === "slipway" ? "sys" : ""}` },
      h("span", { class: "log-time", title: fullTime(l.time) }, clock(l.time)),
      h("span", { class: "log-inst", style: { color: releaseColor(l.release) } }, l.instance),
      h("span", { class: "log-msg" }, l.message),
    ),
  );
}

// requests and alerts -------------------------------------------------------------------------

export function errorsPanel(answer, since, app) {
  const requests = [...((answer && answer.requests) || [])].reverse();
  if (!requests.length) return empty(`No 5xx answers in the last ${since}.`);
  return table(
    ["time", "release", "#status", "#time", "request", "instance"],
    requests.slice(0, 40).map((r) =>
      h(
        "tr",
        {},
        h("td", { title: fullTime(r.time) }, clock(r.time)),
        h("td", {}, r.release ? releaseTag(r.release, app) : "–"),
        h("td", { class: "n bad-text" }, String(r.status), r.termination && r.termination !== "--" ? h("small", { class: "muted" }, ` ${r.termination}`) : null),
        h("td", { class: "n" }, ms(r.ms)),
        h("td", { class: "mono ellipsis", title: `${r.method || ""} ${r.path || ""}` }, `${r.method || ""} ${r.path || ""}`),
        h("td", { class: "muted" }, r.instance || "–"),
      ),
    ),
  );
}

const ALERT_ORDER = { firing: 0, pending: 1, ok: 2 };

export function alertsPanel(answer, app) {
  if (!answer) return [empty("No alerts.")];
  const alerts = (answer.alerts || [])
    .filter((a) => a.app === app || !a.app)
    .sort((a, b) => (ALERT_ORDER[a.state] ?? 3) - (ALERT_ORDER[b.state] ?? 3) || a.rule.localeCompare(b.rule));
  const parts = [];
  const severity = (s) => h("span", { class: s === "critical" ? "bad-text" : "warn-text" }, s);
  const firing = alerts.filter((a) => a.state === "firing").length;
  parts.push(
    h(
      "p",
      { class: "all-clear" },
      firing ? chip(`${firing} firing`, "bad") : chip("all clear", "ok"),
      alerts.length ? h("span", { class: "muted" }, `${alerts.length} rule${alerts.length === 1 ? "" : "s"} watching`) : h("span", { class: "muted" }, "No alert rules."),
    ),
  );
  if (alerts.length) {
    parts.push(
      table(
        ["state", "rule", "severity", "now", "#since"],
        alerts.map((a) =>
          h(
            "tr",
            { class: a.state === "firing" ? "row-bad" : "", "data-alert": a.rule, "data-state": a.state },
            h("td", {}, chip(a.state, { firing: "bad", pending: "warn", ok: "ok" }[a.state] || "")),
            h("td", {}, a.rule),
            h("td", {}, severity(a.severity)),
            h("td", { class: "muted" }, a.summary || "", a.release ? [" ", releaseTag(a.release, app)] : null),
            h("td", { class: "n muted", title: fullTime(a.since) }, a.state === "ok" ? "–" : ago(a.since)),
          ),
        ),
      ),
    );
  }
  const events = (answer.events || []).filter((e) => e.app === app || !e.app).slice(-8).reverse();
  if (events.length) {
    parts.push(h("h3", {}, "recent"));
    parts.push(
      h(
        "ul",
        { class: "events" },
        events.map((e) =>
          h(
            "li",
            {},
            h("span", { class: "muted", title: fullTime(e.at) }, clock(e.at, false)),
            " ",
            chip(e.state, { firing: "bad", pending: "warn", resolved: "ok" }[e.state] || ""),
            " ",
            h("strong", {}, e.rule),
            " ",
            h("span", { class: "muted" }, e.summary || ""),
          ),
        ),
      ),
    );
  }
  const failed = (answer.notifications || []).filter((n) => (n.app === app || !n.app) && n.state === "failed");
  if (failed.length) {
    parts.push(
      h(
        "p",
        { class: "bad-text" },
        `${failed.length} notification${failed.length === 1 ? "" : "s"} failed to send: `,
        failed.slice(-3).map((n) => `${n.notifier} (${n.last_error || "?"}) `),
      ),
    );
  }
  return parts;
}

// totals -------------------------------------------------------------------------------------

export function totalsTable(metrics, app) {
  const totals = Object.entries(metrics.totals || {}).sort(([a], [b]) => releaseOrder(b, a));
  if (!totals.length) return empty("No requests in this range.");
  return table(
    ["release", "#requests", "#errors", "#error rate", "#p50", "#p90", "#p99"],
    totals.map(([release, t]) =>
      h(
        "tr",
        { "data-release": release, "data-requests": String(t.requests) },
        h("td", {}, releaseTag(release, app)),
        h("td", { class: "n", "data-testid": `total-requests-${release}` }, num(t.requests)),
        h("td", { class: `n ${t.errors ? "bad-text" : ""}` }, num(t.errors)),
        h("td", { class: "n" }, pct(t.error_rate)),
        h("td", { class: "n" }, ms(t.p50)),
        h("td", { class: "n" }, ms(t.p90)),
        h("td", { class: "n" }, ms(t.p99)),
      ),
    ),
    { class: "grid totals" },
  );
}
