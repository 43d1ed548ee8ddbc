// The login form sends the token as a bearer token; the daemon answers with the session
// cookie (HttpOnly: this script never sees it again) and the page goes where it was asked.
const form = document.getElementById("login");
const error = document.getElementById("error");
const next = sameOrigin(new URLSearchParams(location.search).get("next"));

// `raw` as a path on this site, or "/". Checked the way the browser will read it: it treats
// `\` as `/` and drops tabs and newlines, so `/\evil.example` is another host, which a
// check of the text ("starts with one slash") lets through. Resolved against our origin,
// anything elsewhere (another host, javascript:, data:) has another origin.
function sameOrigin(raw) {
  if (!raw) return "/";
  let url;
  try {
    url = new URL(raw, location.origin);
  } catch {
    return "/";
  }
  if (url.origin !== location.origin) return "/";
  const path = url.pathname + url.search + url.hash;
  // a path can still start with "//" (from "/.//evil.example"), which alone names a host
  return path.startsWith("/") && !path.startsWith("//") ? path : "/";
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  error.textContent = "";
  const token = document.getElementById("token").value.trim();
  const response = await fetch(`/login?next=${encodeURIComponent(next)}`, {
    method: "POST",
    headers: { Authorization: `Bearer ${token}` },
    redirect: "manual",
    credentials: "same-origin",
  });
  if (response.type === "opaqueredirect" || response.ok) {
    location.assign(new URL(next, location.origin).href);
    return;
  }
  const body = await response.json().catch(() => null);
  error.textContent = (body && body.error && body.error.message) || `HTTP ${response.status}`;
});
