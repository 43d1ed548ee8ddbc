// Time-series charts of one app's metrics (GET /v1/apps/{app}/metrics), drawn with uPlot:
// one line per release in the release's colour, deploy and rollback markers on top.
/* global uPlot */

import { h } from "./dom.js";
import { clock, releaseColor, releaseOrder } from "./format.js";
import { KINDS, alpha, coarse, mean, niceMax, zeroFilled } from "./series.js";

const AXIS = {
  stroke: "#8b949e",
  grid: { stroke: "rgba(240,246,252,0.07)", width: 1 },
  ticks: { stroke: "rgba(240,246,252,0.12)", width: 1, size: 4 },
  font: "12px system-ui, sans-serif",
};

export function markerColor(marker) {
  if (marker.kind === "rollback") return "#f0883e";
  if (marker.outcome === "failed") return "#f85149";
  if (!marker.finished_at) return "#e3b341";
  return releaseColor(marker.release);
}

/** Deploy and rollback markers: a band over the deployment's duration, a line where traffic
 *  moved (its end), and a label. */
function drawMarkers(u, markers, withLabels) {
  const ctx = u.ctx;
  const { left, top, width, height } = u.bbox;
  const dpr = uPlot.pxRatio;
  const now = Date.now() / 1000;
  const rows = [];
  ctx.save();
  ctx.beginPath();
  ctx.rect(left, top, width, height);
  ctx.clip();
  ctx.font = `${600} ${11 * dpr}px system-ui, sans-serif`;
  ctx.textBaseline = "top";
  ctx.textAlign = "left";
  for (const marker of markers) {
    const color = markerColor(marker);
    const x0 = u.valToPos(marker.started_at, "x", true);
    const x1 = u.valToPos(marker.finished_at || now, "x", true);
    if (x1 < left || x0 > left + width) continue;
    ctx.fillStyle = alpha(color, marker.finished_at ? 0.1 : 0.16);
    ctx.fillRect(x0, top, Math.max(x1 - x0, 2 * dpr), height);
    ctx.strokeStyle = color;
    ctx.lineWidth = 1.5 * dpr;
    ctx.setLineDash([4 * dpr, 3 * dpr]);
    ctx.beginPath();
    ctx.moveTo(Math.round(x1) + 0.5, top);
    ctx.lineTo(Math.round(x1) + 0.5, top + height);
    ctx.stroke();
    ctx.setLineDash([]);
    if (!withLabels) continue;
    const sign = marker.kind === "rollback" ? "↩" : marker.outcome === "failed" ? "✗"
      : marker.kind === "scale" ? "⇅" : "▲";
    const text = `${sign} ${marker.short || marker.release}`;
    const tw = ctx.measureText(text).width + 8 * dpr;
    const lx = Math.min(Math.max(x1 - tw / 2, left), left + width - tw);
    let row = rows.findIndex((end) => end < lx);
    if (row < 0) row = rows.length;
    if (row > 2) continue;
    rows[row] = lx + tw + 2 * dpr;
    const ly = top + 2 * dpr + row * 17 * dpr;
    ctx.fillStyle = "rgba(13,17,23,0.85)";
    ctx.fillRect(lx, ly, tw, 15 * dpr);
    ctx.strokeStyle = color;
    ctx.lineWidth = 1 * dpr;
    ctx.strokeRect(lx + 0.5, ly + 0.5, tw - 1, 15 * dpr - 1);
    ctx.fillStyle = color;
    ctx.fillText(text, lx + 4 * dpr, ly + 2 * dpr);
  }
  ctx.restore();
}

/**
 * Charts that share a time axis: the cursor moves on all of them, a drag zooms all of them
 * (double-click resets), and they update in place from each new metrics answer.
 */
export class ChartGroup {
  constructor() {
    this.charts = [];
    this.zoom = null;
    this.onZoom = () => {};
    this.key = `sync-${Math.random().toString(36).slice(2)}`;
  }

  add(container, kind, opts = {}) {
    const chart = new TimeChart(container, kind, this, opts);
    this.charts.push(chart);
    return chart;
  }

  /** Update every chart; resolves to the ms from the start until the last one was drawn
   *  (uPlot draws in a microtask, so the time is taken in its draw hook). */
  async update(metrics) {
    const started = performance.now();
    for (const chart of this.charts) chart.update(metrics);
    await new Promise((resolve) => setTimeout(resolve, 0));
    const drawn = Math.max(started, ...this.charts.map((c) => c.drawnAt || 0));
    return drawn - started;
  }

  setZoom(zoom) {
    this.zoom = zoom;
    for (const chart of this.charts) chart.applyZoom();
    this.onZoom(zoom);
  }

  destroy() {
    for (const chart of this.charts) chart.destroy();
    this.charts = [];
  }
}

class TimeChart {
  constructor(container, kind, group, opts) {
    this.container = container;
    this.kind = KINDS[kind];
    this.group = group;
    this.height = opts.height || 220;
    this.labels = opts.labels !== false;
    this.plot = null;
    this.shape = null;
    this.markers = [];
    this.overlay = h("div", { class: "chart-empty" }, "no traffic in this range");
    this.target = h("div", { class: "chart-canvas" });
    container.replaceChildren(this.target, this.overlay);
    this.resize = new ResizeObserver(() => {
      if (this.plot) this.plot.setSize(this.size());
    });
    this.resize.observe(container);
  }

  size() {
    return { width: Math.max(200, this.container.clientWidth), height: this.height };
  }

  /** uPlot data and series from a metrics answer. */
  build(metrics) {
    const names = Object.keys(metrics.releases || {}).sort(releaseOrder);
    const data = [metrics.t];
    const series = [{ label: "time", value: (u, v) => (v === null ? "" : clock(v)) }];
    let points = 0;
    for (const name of names) {
      const color = releaseColor(name);
      for (const s of this.kind.series(name, metrics.releases[name], metrics.t, metrics.step)) {
        data.push(s.values);
        points += s.values.reduce((n, v) => n + (v === null ? 0 : 1), 0);
        series.push({
          label: s.label,
          stroke: color,
          width: s.width,
          dash: s.dash,
          fill: s.fill ? alpha(color, 0.12) : undefined,
          spanGaps: false,
          points: { show: false },
          value: (u, v) => this.kind.format(v),
        });
      }
    }
    return { data, series, points, names };
  }

  update(metrics) {
    const { data, series, points, names } = this.build(metrics);
    this.markers = metrics.markers || [];
    const shape = JSON.stringify(series.map((s) => s.label || ""));
    if (this.plot && shape === this.shape) {
      this.plot.setData(data, this.group.zoom === null);
      this.applyZoom();
    } else {
      this.destroy(false);
      this.shape = shape;
      this.plot = new uPlot(this.options(series), data, this.target);
      this.applyZoom();
    }
    this.container.dataset.points = String(points);
    this.container.dataset.releases = names.join(" ");
    this.overlay.hidden = points > 0;
  }

  applyZoom() {
    if (!this.plot) return;
    const data = this.plot.data[0];
    const zoom = this.group.zoom;
    if (zoom) this.plot.setScale("x", zoom);
    else if (data.length) this.plot.setScale("x", { min: data[0], max: data[data.length - 1] });
  }

  options(series) {
    const group = this.group;
    const format = this.kind.format;
    return {
      ...this.size(),
      series,
      cursor: {
        sync: { key: group.key },
        drag: { x: true, y: false, setScale: false },
        points: { size: 7 },
        bind: {
          dblclick: () => () => {
            group.setZoom(null);
            return null;
          },
        },
      },
      select: { show: true },
      legend: { show: true, live: true },
      scales: {
        x: { time: true },
        y: this.kind.log ? { distr: 3, log: 10, range: this.kind.range } : { range: this.kind.range },
      },
      axes: [
        { ...AXIS, space: 70, values: timeTicks },
        {
          ...AXIS,
          size: 64,
          values: (u, splits) => splits.map((v) => (this.kind.axis || format)(v)),
          splits: this.kind.log ? logSplits : undefined,
        },
      ],
      hooks: {
        draw: [
          (u) => {
            drawMarkers(u, this.markers, this.labels);
            this.drawnAt = performance.now();
          },
        ],
        setSelect: [
          (u) => {
            if (u.select.width < 5) return;
            const min = u.posToVal(u.select.left, "x");
            const max = u.posToVal(u.select.left + u.select.width, "x");
            u.setSelect({ left: 0, width: 0, top: 0, height: 0 }, false);
            group.setZoom({ min, max });
          },
        ],
      },
    };
  }

  destroy(all = true) {
    if (this.plot) this.plot.destroy();
    this.plot = null;
    this.shape = null;
    if (all) this.resize.disconnect();
  }
}

/** 1, 2, 5 × 10^k on a log axis (only powers of ten over a wide range): not 1…9 each. */
function logSplits(u, axisIdx, min, max) {
  const first = Math.floor(Math.log10(min));
  const last = Math.ceil(Math.log10(max));
  const steps = last - first > 3 ? [1] : [1, 2, 5];
  const out = [];
  for (let e = first; e <= last; e++) {
    for (const m of steps) {
      const v = m * 10 ** e;
      if (v >= min * 0.999 && v <= max * 1.001) out.push(v);
    }
  }
  return out;
}

function timeTicks(u, splits) {
  const span = u.scales.x.max - u.scales.x.min;
  return splits.map((t) => {
    const d = new Date(t * 1000);
    if (span > 2 * 86400) {
      return `${d.toLocaleDateString("en-GB", { weekday: "short" })} ${String(d.getHours()).padStart(2, "0")}:00`;
    }
    return clock(t, span < 600).replace(/^\d+ \w+ /, "");
  });
}

/** A small request-rate line per release, for the overview (no axes, no legend). */
export class Sparkline {
  constructor(container, height = 56) {
    this.container = container;
    this.height = height;
    this.plot = null;
    this.shape = null;
    this.resize = new ResizeObserver(() => {
      if (this.plot) this.plot.setSize(this.size());
    });
    this.resize.observe(container);
  }

  size() {
    return { width: Math.max(120, this.container.clientWidth), height: this.height };
  }

  update(metrics) {
    const names = Object.keys(metrics.releases || {}).sort(releaseOrder);
    this.markers = metrics.markers || [];
    const every = metrics.step === 1 ? 10 : 1; // 10 s averages: a calm line, not second jitter
    const data = [
      coarse(metrics.t, every, (v) => v[0]),
      ...names.map((n) => coarse(zeroFilled(metrics.releases[n].rps), every, mean)),
    ];
    const shape = names.join(",");
    let points = 0;
    for (const values of data.slice(1)) points += values.filter((v) => v !== null).length;
    this.container.dataset.points = String(points);
    if (this.plot && shape === this.shape) {
      this.plot.setData(data);
      return;
    }
    if (this.plot) this.plot.destroy();
    this.shape = shape;
    this.plot = new uPlot(
      {
        ...this.size(),
        legend: { show: false },
        cursor: { show: false },
        select: { show: false },
        axes: [{ show: false }, { show: false }],
        scales: { x: { time: true }, y: { range: (u, min, max) => [0, niceMax(max, 1)] } },
        series: [
          {},
          ...names.map((n) => ({
            stroke: releaseColor(n),
            width: 1.5,
            fill: alpha(releaseColor(n), 0.15),
            points: { show: false },
          })),
        ],
        hooks: { draw: [(u) => drawMarkers(u, this.markers, false)] },
      },
      data,
      this.container,
    );
  }
}
