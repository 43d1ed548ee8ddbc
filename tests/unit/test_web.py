"""Where the login sends a browser afterwards: only a plain path on this site, judged the way
browsers read URLs (a backslash is a slash; tabs and newlines are dropped)."""

from __future__ import annotations

import pytest

from slipway.daemon.web import MAX_NEXT, safe_next


@pytest.mark.parametrize(
    "target",
    [
        "/",
        "/apps/hello",
        "/apps/hello/releases/r3?range=24h#charts",
        "/apps/h%C3%A9llo?q=a%2Fb",
        "/apps/" + "a" * (MAX_NEXT - 6),
    ],
)
def test_paths_on_this_site_are_kept(target: str) -> None:
    assert safe_next(target) == target


@pytest.mark.parametrize(
    "target",
    [
        None,
        "",
        "apps/hello",  # relative: not a plain absolute path
        "//evil.example",
        "/\\evil.example",  # Chromium and Firefox read it as //evil.example
        "\\\\evil.example",
        "/\\/evil.example",
        "/apps\\..\\..\\evil",
        "/\t/evil.example",  # browsers drop tabs and newlines: //evil.example
        "/\n/evil.example",
        "/\r/evil.example",
        "/ /evil.example",
        "/\x00/evil.example",
        "/\u200b/evil.example",  # invisible
        "/\u3000/evil.example",  # ideographic space
        "https://evil.example/",
        "javascript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "/" + "a" * MAX_NEXT,  # longer than any page of ours
    ],
)
def test_anything_else_goes_home(target: str | None) -> None:
    assert safe_next(target) == "/"
