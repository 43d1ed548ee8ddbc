// Numbers, times and colours, the same everywhere on the dashboard.

const PALETTE = [
  "#58a6ff", // blue
  "#3fb950", // green
  "#d2a8ff", // violet
  "#f0883e", // orange
  "#39c5cf", // teal
  "#ff7b72", // salmon
  "#e3b341", // yellow
  "#db61a2", // pink
];

/** Each release keeps its colour on every chart and page: r1 blue, r2 green, … */
export function releaseColor(release) {
  const n = parseInt(String(release).replace(/^\D+/, ""), 10);
  return PALETTE[(Number.isFinite(n) ? n - 1 : 0) % PALETTE.length];
}

export function releaseOrder(a, b) {
  const na = parseInt(String(a).replace(/^\D+/, ""), 10) || 0;
  const nb = parseInt(String(b).replace(/^\D+/, ""), 10) || 0;
  return na - nb;
}

export function num(value, digits = 0) {
  if (value === null || value === undefined || !Number.isFinite(value)) return "–";
  return value.toLocaleString("en-US", {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  });
}

/** 0.0123 → "1.23%"; small rates keep two significant digits. */
export function pct(fraction, digits) {
  if (fraction === null || fraction === undefined || !Number.isFinite(fraction)) return "–";
  const p = fraction * 100;
  if (digits !== undefined) return `${p.toFixed(digits)}%`;
  if (p === 0) return "0%";
  if (p < 0.1) return `${p.toPrecision(2)}%`;
  if (p < 10) return `${p.toFixed(2)}%`;
  return `${p.toFixed(1)}%`;
}

export function ms(value) {
  if (value === null || value === undefined || !Number.isFinite(value)) return "–";
  if (value >= 10000) return `${(value / 1000).toFixed(1)} s`;
  if (value >= 1000) return `${(value / 1000).toFixed(2)} s`;
  if (value >= 100) return `${value.toFixed(0)} ms`;
  if (value >= 10) return `${value.toFixed(1)} ms`;
  return `${value.toFixed(2)} ms`;
}

export function rate(value) {
  if (value === null || value === undefined || !Number.isFinite(value)) return "–";
  if (value >= 100) return `${value.toFixed(0)}/s`;
  if (value >= 10) return `${value.toFixed(1)}/s`;
  return `${value.toFixed(2)}/s`;
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "–";
  const s = Math.max(0, seconds);
  if (s < 1) return `${(s * 1000).toFixed(0)} ms`;
  if (s < 60) return `${s < 10 ? s.toFixed(1) : s.toFixed(0)} s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${String(Math.floor(s % 60)).padStart(2, "0")}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}

export function ago(unixSeconds) {
  if (!unixSeconds) return "–";
  const s = Date.now() / 1000 - unixSeconds;
  if (s < 5) return "just now";
  if (s < 60) return `${Math.floor(s)}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m ago`;
  return `${Math.floor(s / 86400)}d ago`;
}

export function clock(unixSeconds, withSeconds = true) {
  if (!unixSeconds) return "–";
  const d = new Date(unixSeconds * 1000);
  const today = new Date();
  const time = d.toLocaleTimeString("en-GB", {
    hour: "2-digit",
    minute: "2-digit",
    second: withSeconds ? "2-digit" : undefined,
  });
  if (d.toDateString() === today.toDateString()) return time;
  return `${d.toLocaleDateString("en-GB", { day: "numeric", month: "short" })} ${time}`;
}

export function fullTime(unixSeconds) {
  return unixSeconds ? new Date(unixSeconds * 1000).toLocaleString("en-GB") : "";
}

/** Deployment outcome → a chip class: ok, bad, busy. */
export function outcomeClass(deployment) {
  if (!deployment) return "";
  if (!deployment.finished_at) return "busy";
  return deployment.outcome === "succeeded" ? "ok" : "bad";
}

export function decisionClass(decision) {
  return { promote: "ok", continue: "info", inconclusive: "warn", rollback: "bad" }[decision] || "";
}
