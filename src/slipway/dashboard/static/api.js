// The daemon's read-only API, as the dashboard uses it. Tracks whether the daemon answers, for
// the "live" indicator in the header.

const listeners = new Set();
export const link = { ok: null, lastOk: 0, error: null };

export function onLinkChange(fn) {
  listeners.add(fn);
}

function report(ok, error) {
  const changed = link.ok !== ok;
  link.ok = ok;
  link.error = error;
  if (ok) link.lastOk = Date.now();
  if (changed) for (const fn of listeners) fn(link);
}

export class ApiError extends Error {
  constructor(status, body) {
    const err = (body && body.error) || {};
    super(err.message || `HTTP ${status}`);
    this.status = status;
    this.fix = err.fix || null;
  }
}

async function get(path) {
  let response;
  try {
    response = await fetch(path, { headers: { Accept: "application/json" }, cache: "no-store" });
  } catch (exc) {
    report(false, "the daemon does not answer");
    throw exc;
  }
  report(true, null);
  if (response.status === 401) {
    // no session, or its token was revoked or expired: log in, then come back here
    location.href = `/login?next=${encodeURIComponent(location.pathname)}`;
  }
  return response;
}

/** JSON of a GET; an ApiError for an error status. */
export async function getJSON(path) {
  const response = await get(path);
  const body = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, body);
  return body;
}

/** JSON of a GET, or `fallback` when the route answers 404 (e.g. a feature this daemon
 *  does not have yet, or an app with no canary so far). */
export async function getOptional(path, fallback = null) {
  try {
    return await getJSON(path);
  } catch (exc) {
    if (exc instanceof ApiError && exc.status === 404) return fallback;
    throw exc;
  }
}

/** Newline-delimited JSON (logs). */
export async function getLines(path) {
  const response = await get(path);
  if (!response.ok) {
    throw new ApiError(response.status, await response.json().catch(() => null));
  }
  const text = await response.text();
  return text
    .split("\n")
    .filter((line) => line.trim())
    .map((line) => JSON.parse(line));
}

export function appPath(app, rest = "") {
  return `/v1/apps/${encodeURIComponent(app)}${rest}`;
}

/** An unreachable daemon is shown in the header; only other failures go to the console. */
function quiet(exc) {
  if (link.ok !== false) console.warn(exc);
}

/**
 * Run `task` now and again `every()` ms after each run ends (never two at once). Errors are
 * reported to `onError` and the task keeps its schedule. Returns {now(), stop()}.
 */
export function repeat(task, every, onError = quiet) {
  let timer = null;
  let stopped = false;
  let running = false;
  let again = false; // asked for while running: run once more right after
  const run = async () => {
    clearTimeout(timer);
    if (stopped) return;
    if (running) {
      again = true;
      return;
    }
    running = true;
    try {
      await task();
    } catch (exc) {
      onError(exc);
    } finally {
      running = false;
      if (again && !stopped) {
        again = false;
        run();
      } else if (!stopped) {
        const wait = typeof every === "function" ? every() : every;
        timer = setTimeout(run, document.hidden ? Math.max(wait, 10000) : wait);
      }
    }
  };
  run();
  return {
    now: run,
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
