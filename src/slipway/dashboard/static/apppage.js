// One app (or one of its releases): live split, canary evidence, charts per release with
// deploy markers, releases, deployments, instances with logs, recent 5xx, alerts.

import { ApiError, appPath, getJSON, getLines, getOptional, repeat } from "./api.js";
import { ChartGroup } from "./charts.js";
import { fill, h, panel } from "./dom.js";
import { num } from "./format.js";
import { canaryPanel } from "./canary.js";
import {
  alertsPanel,
  deploymentsPanel,
  errorsPanel,
  instancesPanel,
  logLines,
  releasesPanel,
  totalsTable,
} from "./panels.js";
import { cacheRow, chip, deploymentInFlight, instanceHealth, lastDeployment, nowRows, releaseTag, splitBar } from "./parts.js";

const RANGES = ["15m", "1h", "6h", "24h", "7d"];

export function appPage(main, shell, app, release) {
  const base = `/apps/${encodeURIComponent(app)}`;
  shell.crumbs([
    { text: app, href: base },
    ...(release ? [{ text: release }] : []),
  ]);
  document.title = `${release ? `${release} · ` : ""}${app} · slipway`;
  const params = new URLSearchParams(location.search);
  let range = RANGES.includes(params.get("range")) ? params.get("range") : "15m";
  let selected = null; // instance whose logs are shown
  const filter = release ? `&release=${encodeURIComponent(release)}` : "";

  // layout ---------------------------------------------------------------------------------
  const title = h("div", { class: "app-title" });
  const picker = h("div", { class: "ranges", role: "group", "aria-label": "time range" });
  const flight = h("div", { id: "flight" });
  const [canaryEl, canaryBody] = panel("Canary", { name: "canary", class: "canary" });
  canaryEl.hidden = true;
  const split = h("div", { class: "app-split" });
  const now = h("div", { class: "now wide", id: "now" });
  const health = h("div", { id: "health" });
  const chartInfo = h("span", { class: "muted chart-info", id: "chart-info" });
  const zoomReset = h("button", { class: "link-button", hidden: true }, "reset zoom");
  const rpsBox = h("div", { class: "chart", id: "chart-rps", "data-chart": "rps" });
  const errBox = h("div", { class: "chart", id: "chart-errors", "data-chart": "errors" });
  const latBox = h("div", { class: "chart", id: "chart-latency", "data-chart": "latency" });
  const [totalsEl, totalsBody] = panel("Per release, over the range", { name: "totals" });
  const [releasesEl, releasesBody] = panel("Releases", { name: "releases" });
  const [deploysEl, deploysBody] = panel("Deployments", { name: "deployments" });
  const logFilter = h("span", { class: "muted", id: "log-filter" });
  const [instancesEl, instancesBody] = panel("Instances", { name: "instances", extra: h("span", { class: "muted" }, "click one for its logs") });
  const [logsEl, logsBody] = panel("Logs", { name: "logs", extra: logFilter });
  logsBody.classList.add("logs");
  const [errorsEl, errorsBody] = panel("Recent 5xx", { name: "errors" });
  const [alertsEl, alertsBody] = panel("Alerts", { name: "alerts" });

  const charts = new ChartGroup();
  const chartPanel = (name, titleText, unit, box) =>
    h(
      "section",
      { class: "panel chart-panel", "data-panel": `chart-${name}` },
      h("header", { class: "panel-head" }, h("h2", {}, titleText), h("span", { class: "muted" }, unit)),
      box,
    );

  main.replaceChildren(
    h("div", { class: "app-head" }, title, picker),
    flight,
    canaryEl,
    h(
      "section",
      { class: "panel now-panel", "data-panel": "now" },
      h("header", { class: "panel-head" }, h("h2", {}, "Live traffic"), h("span", { class: "muted" }, "split from HAProxy's weights · numbers over the last minute")),
      h("div", { class: "panel-body" }, split, now, health),
    ),
    h("div", { class: "chart-bar" }, chartInfo, zoomReset),
    chartPanel("rps", "Request rate", "requests per second, per release", rpsBox),
    h(
      "div",
      { class: "two" },
      chartPanel("errors", "Error rate", "5xx and failed connections, share of requests", errBox),
      chartPanel("latency", "Latency", "p50 solid · p99 dashed", latBox),
    ),
    totalsEl,
    h("div", { class: "two right-wide" }, releasesEl, deploysEl),
    h("div", { class: "two left-wide" }, instancesEl, alertsEl),
    h("div", { class: "two" }, logsEl, errorsEl),
  );
  charts.add(rpsBox, "rps", { height: 240 });
  charts.add(errBox, "errors", { height: 200 });
  charts.add(latBox, "latency", { height: 200 });
  charts.onZoom = (zoom) => {
    zoomReset.hidden = zoom === null;
  };
  zoomReset.addEventListener("click", () => charts.setZoom(null));

  // the time range ----------------------------------------------------------------------------
  const drawPicker = () =>
    picker.replaceChildren(
      ...RANGES.map((r) =>
        h(
          "button",
          {
            class: r === range ? "on" : "",
            "aria-pressed": r === range ? "true" : "false",
            "data-range": r,
            onclick: () => {
              if (r === range) return;
              range = r;
              const url = new URL(location.href);
              url.searchParams.set("range", r);
              history.replaceState(null, "", url);
              drawPicker();
              charts.setZoom(null);
              metrics.now();
              errors.now();
            },
          },
          r,
        ),
      ),
    );
  drawPicker();

  // polling -------------------------------------------------------------------------------
  let lastInstances = [];
  const renderInstances = () =>
    fill(instancesBody, [lastInstances, selected], () =>
      instancesPanel(lastInstances, app, selected, (id) => {
        selected = id;
        renderInstances();
        logs.now();
      }),
    );

  const state = repeat(async () => {
    const [view, instances, minute, releases, deployments, status] = await Promise.all([
      getJSON(appPath(app)),
      getJSON(appPath(app, "/instances")),
      getJSON(appPath(app, `/metrics?since=60s${filter}`)),
      getJSON(appPath(app, "/releases")),
      getJSON(appPath(app, "/deployments")),
      getJSON("/v1/status"),
    ]);
    shell.status(status);
    const shown = release ? instances.filter((i) => i.release === release) : instances;
    fill(title, [view.name, view.current_release, view.url, view.formation, release], () => [
      h("h1", {}, view.name, release ? [h("span", { class: "muted" }, " · "), releaseTag(release, app)] : null),
      view.current_release
        ? h("span", { class: "current", "data-current": view.current_release, title: "the release serving now" }, "serving ", releaseTag(view.current_release, app))
        : chip("no release", "warn"),
      view.url ? h("a", { class: "url", href: view.url, target: "_blank", rel: "noopener" }, view.url) : null,
      h("span", { class: "muted formation" }, Object.entries(view.formation).map(([p, n]) => `${p}×${n}`).join("  ")),
      release ? h("a", { href: `${base}${location.search}`, class: "muted" }, "all releases →") : null,
    ]);
    const d = view.deployment;
    const c = view.canary;
    fill(flight, [d && d.id, d && d.state, c && [c.step, c.paused], Math.floor(Date.now() / 1000)], () =>
      d ? deploymentInFlight(d, c, app) : null,
    );
    fill(split, shown.map((i) => [i.release, i.traffic_percent]), () => splitBar(shown, app));
    fill(now, [minute.totals, minute.cache], () => [
      ...(Object.keys(minute.totals).length
        ? nowRows(minute, app)
        : [h("div", { class: "muted" }, "no requests in the last minute")]),
      cacheRow(minute.cache),
    ]);
    fill(health, [shown.map((i) => [i.role, i.state, i.check]), view.last_deployment], () =>
      h("div", { class: "card-row" }, instanceHealth(shown), lastDeployment(view.last_deployment, app)),
    );
    fill(releasesBody, [releases, release, Math.floor(Date.now() / 30000)], () => releasesPanel(releases, app, release));
    const involved = release
      ? deployments.filter((x) => x.to_release === release || x.from_release === release)
      : deployments;
    fill(deploysBody, [involved, Math.floor(Date.now() / 5000)], () => deploymentsPanel(involved, app));
    lastInstances = shown;
    renderInstances();
    await showCanary(view, deployments);
  }, 2000);

  // The judge's evidence: the latest verdict comes with the app's view every poll; the full
  // list (for the strip of verdicts) is heavier and fetched every 10 s during a canary.
  let analysis = null;
  let analysisKey = null;
  let analysisAt = 0;

  async function showCanary(view, deployments) {
    const ours = (...names) => !release || names.includes(release);
    const live = view.canary && ours(view.canary.candidate, view.canary.stable) ? view.canary : null;
    const last = deployments.find(
      (d) => d.strategy === "canary" && d.kind === "deploy" && ours(d.to_release),
    );
    if (!live && !last) {
      canaryEl.hidden = true;
      return;
    }
    const id = live ? live.deployment : last.id;
    const key = `${id}-${live ? "live" : last.finished_at}`;
    if (analysisKey !== key || (live && Date.now() - analysisAt > 10000)) {
      analysis = await getOptional(`/v1/deployments/${id}/analysis`);
      analysisKey = key;
      analysisAt = Date.now();
    }
    canaryEl.hidden = false;
    canaryEl.classList.toggle("canary-live", !!live);
    const latest = live && live.verdict ? live.verdict.id : null;
    fill(canaryBody, [key, live, latest, analysis && analysis.verdicts.length, Math.floor(Date.now() / 5000)], () =>
      canaryPanel(live, analysis, app),
    );
  }

  const metrics = repeat(
    async () => {
      const want = range;
      const started = performance.now();
      const answer = await getJSON(appPath(app, `/metrics?since=${want}${filter}`));
      if (want !== range) return; // the range changed meanwhile: the next run fetches it
      const fetched = performance.now() - started;
      const drawn = await charts.update(answer);
      const points = answer.t.length;
      chartInfo.textContent =
        `${want} · ${answer.step === 1 ? "1-second" : `${answer.step / 60}-minute`} steps · ` +
        `${num(points)} points · fetched in ${fetched.toFixed(0)} ms, drawn in ${drawn.toFixed(0)} ms`;
      rpsBox.dataset.range = want;
      rpsBox.dataset.renderMs = String(Math.round(fetched + drawn));
      fill(totalsBody, [answer.totals], () => totalsTable(answer, app));
    },
    () => (range === "15m" ? 2000 : range === "1h" ? 5000 : 15000),
  );

  const logs = repeat(async () => {
    const instance = selected ? `&instance=${encodeURIComponent(selected)}` : "";
    const lines = await getLines(appPath(app, `/logs?lines=80${filter}${instance}`)).catch((exc) => {
      if (exc instanceof ApiError && exc.status === 404 && selected) {
        selected = null; // the instance is gone
        return [];
      }
      throw exc;
    });
    logFilter.textContent = selected ? `instance ${selected} · ` : release ? `release ${release} · ` : "all instances · ";
    logFilter.appendChild(h("span", {}, `last ${lines.length} lines`));
    const atBottom = logsBody.scrollHeight - logsBody.scrollTop - logsBody.clientHeight < 24;
    if (fill(logsBody, lines.length ? [lines[lines.length - 1], lines.length, selected] : [selected], () => logLines(lines)) && atBottom) {
      logsBody.scrollTop = logsBody.scrollHeight;
    }
  }, 2000);

  const errors = repeat(async () => {
    const since = range === "15m" ? "15m" : "1h";
    const answer = await getJSON(appPath(app, `/requests?since=${since}&status=5xx&limit=100${filter}`));
    fill(errorsBody, [answer.requests.length && answer.requests[answer.requests.length - 1], answer.requests.length, since], () =>
      errorsPanel(answer, since, app),
    );
  }, 5000);

  const alerts = repeat(async () => {
    const answer = await getOptional(appPath(app, "/alerts"), null);
    fill(alertsBody, [answer, Math.floor(Date.now() / 30000)], () => alertsPanel(answer, app));
  }, 5000);

  return () => {
    for (const task of [state, metrics, logs, errors, alerts]) task.stop();
    charts.destroy();
  };
}

