// slipway's dashboard: plain ES modules, no build step. Picks the page from the path, keeps the
// header (HAProxy state, live indicator, clock) current.

import { link, onLinkChange } from "./api.js";
import { appPage } from "./apppage.js";
import { $, h } from "./dom.js";
import { ago, clock } from "./format.js";
import { overview } from "./overview.js";

const shell = {
  crumbs(parts) {
    $("#crumbs").replaceChildren(
      ...parts.flatMap((p, i) => [
        h("span", { class: "sep", "aria-hidden": "true" }, "/"),
        p.href && i < parts.length - 1 ? h("a", { href: p.href }, p.text) : h("span", {}, p.text),
      ]),
    );
  },
  status(state) {
    const router = $("#router-state");
    router.textContent = state.router.running ? "HAProxy up" : "HAProxy down";
    router.className = `chip ${state.router.running ? "ok" : "bad"}`;
    router.title = state.router.running
      ? `HAProxy pid ${state.router.pid}; daemon pid ${state.daemon.pid} since ${ago(state.daemon.started_at)}`
      : "HAProxy is not running: apps get no traffic. `slipway up` starts it.";
  },
};

function showLink() {
  const live = $("#live");
  const text = $("#live-text");
  document.body.classList.toggle("stale", link.ok === false);
  if (link.ok === false) {
    live.className = "live down";
    text.textContent = link.lastOk ? `daemon unreachable · last data ${ago(link.lastOk / 1000)}` : "daemon unreachable";
  } else if (link.ok) {
    live.className = "live up";
    text.textContent = "live";
  }
}

function tick() {
  $("#clock").textContent = clock(Date.now() / 1000);
  if (link.ok === false) showLink();
}

function route() {
  const main = $("#main");
  const parts = location.pathname.split("/").filter(Boolean).map(decodeURIComponent);
  if (parts[0] === "apps" && parts[1]) {
    return appPage(main, shell, parts[1], parts[2] === "releases" ? parts[3] || null : null);
  }
  return overview(main, shell);
}

onLinkChange(showLink);
tick();
setInterval(tick, 1000);
route();
