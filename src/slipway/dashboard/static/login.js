// The login form sends the token as a bearer token; the daemon answers with the session
// cookie (HttpOnly: this script never sees it again) and the page goes where it was asked.
const form = document.getElementById("login");
const error = document.getElementById("error");
const next = new URLSearchParams(location.search).get("next") || "/";

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
    location.href = next.startsWith("/") && !next.startsWith("//") ? next : "/";
    return;
  }
  const body = await response.json().catch(() => null);
  error.textContent = (body && body.error && body.error.message) || `HTTP ${response.status}`;
});
