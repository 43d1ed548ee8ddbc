// The overview: one card per app with its release, URL, live split, instance health, alerts,
// the last minute's numbers and 15 minutes of request rate.

import { appPath, getJSON, getOptional, repeat } from "./api.js";
import { Sparkline } from "./charts.js";
import { empty, fill, h } from "./dom.js";
import {
  activeAlerts,
  chip,
  deploymentInFlight,
  instanceHealth,
  lastDeployment,
  nowRows,
  releaseTag,
  splitBar,
} from "./parts.js";

export function overview(main, shell) {
  shell.crumbs([]);
  document.title = "slipway";
  const grid = h("div", { class: "cards", id: "apps" });
  const note = h("div", { id: "overview-note" });
  main.replaceChildren(h("h1", { class: "page-title" }, "Apps"), note, grid);
  const cards = new Map();
  let alerts = null;
  let instances = [];

  const status = repeat(async () => {
    const [state, all] = await Promise.all([getJSON("/v1/status"), getJSON("/v1/instances")]);
    instances = all;
    shell.status(state);
    fill(note, state.apps.length, () =>
      state.apps.length ? null : empty("No apps yet: `slipway deploy` in an app's folder."),
    );
    const names = new Set(state.apps.map((a) => a.name));
    for (const [name, card] of cards) {
      if (!names.has(name)) {
        card.stop();
        card.el.remove();
        cards.delete(name);
      }
    }
    state.apps.forEach((app, index) => {
      let card = cards.get(app.name);
      if (!card) {
        card = new AppCard(app.name);
        cards.set(app.name, card);
      }
      if (grid.children[index] !== card.el) grid.insertBefore(card.el, grid.children[index] || null);
      card.render(app, instances.filter((i) => i.app === app.name), alerts);
    });
  }, 2000);

  const alertTask = repeat(async () => {
    alerts = await getOptional("/v1/alerts", null);
  }, 5000);

  return () => {
    status.stop();
    alertTask.stop();
    for (const card of cards.values()) card.stop();
  };
}

class AppCard {
  constructor(name) {
    this.name = name;
    const href = `/apps/${encodeURIComponent(name)}`;
    this.head = h("div", { class: "card-head" });
    this.flight = h("div", { class: "card-flight" });
    this.split = h("div", { class: "card-split" });
    this.now = h("div", { class: "now" });
    this.sparkBox = h("div", { class: "spark" });
    this.foot = h("div", { class: "card-foot" });
    this.el = h(
      "article",
      { class: "card", "data-app": name },
      h("a", { class: "card-link", href, tabindex: "-1", "aria-hidden": "true" }),
      this.head,
      this.flight,
      this.split,
      h("div", { class: "card-label" }, "last minute"),
      this.now,
      h("div", { class: "card-label" }, "request rate, 15 min"),
      this.sparkBox,
      this.foot,
    );
    this.spark = new Sparkline(this.sparkBox);
    this.lastMinute = null;
    this.metrics = repeat(async () => {
      const path = appPath(name, "/metrics");
      const [minute, quarter] = await Promise.all([
        getJSON(`${path}?since=60s`),
        getJSON(`${path}?since=15m`),
      ]);
      this.lastMinute = minute;
      fill(this.now, minute.totals, () =>
        Object.keys(minute.totals).length
          ? nowRows(minute, name)
          : h("div", { class: "muted" }, "no requests in the last minute"),
      );
      this.spark.update(quarter);
    }, 3000);
  }

  render(app, instances, alerts) {
    const firing = activeAlerts(alerts, app.name);
    this.el.classList.toggle("busy", !!app.deployment);
    this.el.classList.toggle("alerting", firing.some((a) => a.state === "firing"));
    fill(this.head, [app.name, app.url, app.current_release, app.warm_release], () => [
      h(
        "div",
        { class: "card-title" },
        h("h2", {}, h("a", { href: `/apps/${encodeURIComponent(app.name)}` }, app.name)),
        app.current_release
          ? h("span", { class: "current", "data-current": app.current_release }, h("small", { class: "muted" }, "serving "), releaseTag(app.current_release))
          : chip("no release", "warn"),
      ),
      h(
        "div",
        { class: "card-sub" },
        app.url ? h("a", { class: "url", href: app.url, target: "_blank", rel: "noopener" }, app.url) : h("span", { class: "muted" }, "no web process"),
        app.warm_release ? h("span", { class: "muted" }, " · warm: ", releaseTag(app.warm_release)) : null,
      ),
    ]);
    const d = app.deployment;
    const canary = app.canary;
    fill(this.flight, [d && d.id, d && d.state, canary && [canary.step, canary.paused], Math.floor(Date.now() / 5000)], () =>
      d ? deploymentInFlight(d, canary, null) : null,
    );
    fill(this.split, instances.map((i) => [i.release, i.traffic_percent]), () => splitBar(instances));
    fill(this.foot, [instances.map((i) => [i.role, i.state, i.check]), firing.map((a) => [a.rule, a.state]), app.last_deployment, Math.floor(Date.now() / 10000)], () => [
      instanceHealth(instances),
      h(
        "div",
        { class: "card-row" },
        firing.length
          ? h(
              "span",
              { class: "alerts-mini" },
              firing.map((a) => chip(`${a.state === "firing" ? "🔥" : "…"} ${a.rule}`, a.state === "firing" ? "bad" : "warn", a.summary)),
            )
          : h("span", { class: "muted" }, "no alerts firing"),
        lastDeployment(app.last_deployment, null),
      ),
    ]);
  }

  stop() {
    this.metrics.stop();
  }
}
