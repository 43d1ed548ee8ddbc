"""The dashboard in headless Chromium (Debian's package) driven by Playwright, against the real
daemon, HAProxy and examples/hello: real traffic in the charts, a deploy from the CLI seen
live, and clean 404 pages."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote, urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from slipway.loadgen import BackgroundLoad
from tests.integration.conftest import Slipway, wait_for

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed: `make test` installs it (apt-get install chromium)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield chromium
        finally:
            chromium.close()


def dashboard(slipway: Slipway) -> str:
    url: str = wait_for(
        lambda: (slipway.home / "http.url").exists() and (slipway.home / "http.url").read_text(),
        10,
        "the daemon to write its dashboard URL",
    )
    return url.strip()


def logged_in(slipway: Slipway, page: Page, base: str, role: str = "viewer") -> str:
    """Log in through the login page with a new token, as a person would; returns it."""
    token: str = slipway.json("tokens", "create", "--name", f"browser-{role}", "--role", role)[
        "token"
    ]
    page.goto(f"{base}login?next=/")
    page.fill("#token", token)
    page.click("button[type=submit]")
    page.wait_for_url(base, timeout=10_000)
    return token


def open_page(browser: Browser) -> tuple[Page, list[str]]:
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    # A 404 the page expects (e.g. alerts on a daemon without them) is logged by Chromium
    # as a failed resource; only other console errors are problems.
    page.on(
        "console",
        lambda msg: problems.append(f"console: {msg.text}")
        if msg.type == "error" and not msg.text.startswith("Failed to load resource")
        else None,
    )
    return page, problems


def number(text: str) -> int:
    return int(text.replace(",", "").strip() or 0)


def shoot(page: Page, tmp_path: Path, name: str) -> None:
    """A full-page screenshot in the test's tmp dir, for people to look at."""
    page.screenshot(path=str(tmp_path / f"{name}.png"), full_page=True)


def test_dashboard_shows_real_traffic_and_a_cli_deploy_live(
    running: Slipway, browser: Browser, tmp_path: Path
) -> None:
    app = running.make_app()
    running.deploy(app)
    base = dashboard(running)
    page, problems = open_page(browser)
    logged_in(running, page, base)

    # The overview: the app, its release and URL.
    answer = page.goto(base)
    assert answer is not None and answer.status == 200
    card = page.locator('[data-app="hello"]')
    expect(card.locator("[data-current]")).to_have_attribute("data-current", "r1", timeout=10_000)
    expect(card).to_contain_text(app.url)
    expect(card.locator(".split")).to_contain_text("r1")

    # Real traffic, then the app page: the charts and totals show it.
    with httpx.Client(timeout=5) as client:
        for _ in range(150):
            assert client.get(app.url).status_code == 200
    card.get_by_role("link", name="hello", exact=True).click()
    page.wait_for_url("**/apps/hello")
    requests = page.get_by_test_id("total-requests-r1")
    expect(requests).to_be_visible(timeout=15_000)
    # (HAProxy's log lines travel over UDP: allow for a rare lost one)
    wait_for(lambda: number(requests.inner_text()) >= 140, 15, "the requests in the totals")
    for chart in ("rps", "errors", "latency"):
        box = page.locator(f'[data-chart="{chart}"]')
        expect(box).to_have_attribute("data-releases", "r1", timeout=10_000)
        assert int(box.get_attribute("data-points") or 0) > 0, chart
        expect(box.locator("canvas")).to_have_count(1)
    expect(page.locator('[data-panel="instances"] [data-instance]')).to_have_count(2)
    expect(page.locator('[data-panel="logs"] .log').first).to_be_visible(timeout=10_000)
    shoot(page, tmp_path, "app-r1")

    # A deploy started from the CLI shows up while the page stays open, without a reload.
    page.evaluate("window.__sameDocument = true")
    app.write_config(env={"GREETING": "two", "BOOT_SECONDS": "3"})  # a slow boot: seen in flight
    with BackgroundLoad(app.url, concurrency=2, rate=40):
        running.run("deploy", "--app", str(app.dir), "--detach")
        flight = page.locator("#flight [data-deployment]")
        expect(flight).to_be_visible(timeout=20_000)
        expect(flight).to_contain_text("r2")
        current = page.locator(".app-title [data-current]")
        expect(current).to_have_attribute("data-current", "r2", timeout=60_000)
        expect(page.locator('[data-chart="rps"]')).to_have_attribute(
            "data-releases", "r1 r2", timeout=20_000
        )
        expect(page.locator('[data-panel="deployments"] [data-deployment="2"]')).to_contain_text(
            "succeeded", timeout=20_000
        )
        expect(flight).to_have_count(0, timeout=20_000)
        expect(page.get_by_test_id("total-requests-r2")).to_be_visible(timeout=10_000)
    assert page.evaluate("window.__sameDocument") is True, "the page was reloaded"
    shoot(page, tmp_path, "app-r2-deployed")

    # A release's own page, and a long range: charts drawn well under a second.
    answer = page.goto(f"{base}apps/hello/releases/r2?range=24h")
    assert answer is not None and answer.status == 200
    rps = page.locator('[data-chart="rps"]')
    expect(rps).to_have_attribute("data-range", "24h", timeout=10_000)
    assert int(rps.get_attribute("data-render-ms") or 0) < 1000
    expect(rps).to_have_attribute("data-releases", "r2")
    assert not problems, problems


def test_unknown_app_or_release_is_a_clean_404(
    running: Slipway, browser: Browser, tmp_path: Path
) -> None:
    base = dashboard(running)
    page, _ = open_page(browser)
    token = logged_in(running, page, base)
    answer = page.goto(f"{base}apps/nope")
    assert answer is not None and answer.status == 404
    expect(page.locator("h1")).to_contain_text("no app named 'nope'")
    expect(page.locator("a", has_text="all apps")).to_have_attribute("href", "/")
    shoot(page, tmp_path, "404")
    answer = page.goto(f"{base}apps/nope/releases/r1")
    assert answer is not None and answer.status == 404
    bearer = {"Authorization": f"Bearer {token}"}
    answer_api = httpx.get(f"{base}v1/apps/nope/metrics", headers=bearer, timeout=5)
    assert answer_api.status_code == 404

    # An unknown release of a known app.
    app = running.make_app()
    running.deploy(app)
    answer = page.goto(f"{base}apps/hello/releases/r9")
    assert answer is not None and answer.status == 404
    expect(page.locator("h1")).to_contain_text("no release 'r9'")
    expect(page.locator(".fix")).to_contain_text("r1")
    answer = page.goto(f"{base}apps/hello/releases/r1")
    assert answer is not None and answer.status == 200


def test_the_dashboard_needs_a_login_and_a_revoked_token_ends_the_session(
    running: Slipway, browser: Browser
) -> None:
    base = dashboard(running)
    page, _ = open_page(browser)
    page.goto(base)
    page.wait_for_url(f"{base}login?next=%2F", timeout=10_000)  # the API said 401
    page.fill("#token", "swt_00000000_not-a-real-token")
    page.click("button[type=submit]")
    expect(page.locator("#error")).to_contain_text("invalid token")

    token = logged_in(running, page, base)
    cookies = {c["name"]: c for c in page.context.cookies()}
    session = cookies["slipway_session"]
    assert session["httpOnly"] and session["secure"] and session["sameSite"] == "Strict"
    assert page.evaluate("document.cookie") == "", "the script cannot read the session"

    # No side effects on GET, and a POST with the cookie but without the CSRF header fails.
    status = page.evaluate(
        "async () => (await fetch('/v1/apps/hello/rollback', {method: 'POST'})).status"
    )
    assert status == 403

    token_id = token.split("_")[1]
    running.run("tokens", "revoke", token_id)
    page.goto(base)
    page.wait_for_url(f"{base}login?next=%2F", timeout=10_000)


def arrived_at(expected: str) -> Callable[[str], bool]:
    """A matcher for exactly this URL (Playwright reads a string as a glob pattern)."""
    return lambda url: url == expected


def test_the_login_goes_only_to_paths_on_this_site(running: Slipway, browser: Browser) -> None:
    """`next` is followed by the login page's script: checked the way Chromium reads a URL
    (`\\` is `/`, tabs and newlines are dropped), never to another host. And a browser
    without a session, sent to /login by a few page loads, is not throttled for it."""
    base = dashboard(running)
    token: str = running.json("tokens", "create", "--name", "browser", "--role", "viewer")["token"]
    page, problems = open_page(browser)
    hosts: set[str] = set()
    page.on("request", lambda request: hosts.add(urlsplit(request.url).netloc))
    for _ in range(5):  # each page load's API calls get 401 before the page goes to /login
        page.goto(f"{base}apps/hello")
        page.wait_for_url(f"{base}login?next=%2Fapps%2Fhello", timeout=10_000)
    elsewhere = [
        "/\\evil.example",
        "/\\/evil.example",
        "\\\\evil.example",
        "//evil.example",
        "/\t/evil.example",
        "/.//evil.example",
        "https://evil.example/",
        "javascript:alert(1)",
    ]
    for target, expected in [
        *((t, base) for t in elsewhere),
        ("/apps/nope?range=1h#charts", f"{base}apps/nope?range=1h#charts"),
    ]:
        page.goto(f"{base}login?next={quote(target, safe='')}")
        page.fill("#token", token)
        page.click("button[type=submit]")
        page.wait_for_url(arrived_at(expected), timeout=10_000)
    assert hosts == {urlsplit(base).netloc}, hosts
    assert not problems, problems


def test_the_app_page_shows_the_edge_cache_hit_ratio(
    running: Slipway, browser: Browser, tmp_path: Path
) -> None:
    app = running.make_app("hello", scale={"web": 1}, edge_cache="[edge.cache]")
    running.deploy(app)
    for _ in range(4):  # one miss, three hits
        assert httpx.get(f"{app.url}edge/public", timeout=5).status_code == 200
    base = dashboard(running)
    page, problems = open_page(browser)
    logged_in(running, page, base)
    page.goto(f"{base}apps/hello")
    ratio = page.get_by_test_id("cache-hit-ratio")
    expect(ratio).to_contain_text("75", timeout=10_000)
    expect(ratio).to_have_attribute("title", "3 hits of 4 lookups since HAProxy last started")
    shoot(page, tmp_path, "cache")
    assert not problems, problems
