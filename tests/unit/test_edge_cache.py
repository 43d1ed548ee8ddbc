"""[edge.cache] and [edge.compression]: validation with key paths and bounds, the routing
stored per app and sent to agents, and the HAProxy lines they become."""

from __future__ import annotations

import pytest

from slipway.agent import wire
from slipway.config.load import parse_config
from slipway.deploy.routing import backend_for, routing_of
from slipway.errors import ConfigError
from slipway.router.cache import (
    CACHE_NAME_MAX,
    EPOCH_PREFIX,
    CacheRules,
    cache_name,
    parse_epochs,
    render_epochs,
)
from slipway.router.config import Backend, EdgeRules, RouterState, render
from slipway.router.stats import parse_cache_counters

BASE = """\
name = "shop"

[processes]
web = "python app.py --port $PORT"

"""


def error_of(body: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(BASE + body, "slipway.toml")
    return str(info.value)


def test_off_unless_the_tables_are_there() -> None:
    edge = parse_config(BASE).edge
    assert edge.cache is None and edge.compression is None


def test_an_empty_table_turns_it_on_with_the_defaults() -> None:
    edge = parse_config(BASE + "[edge.cache]\n[edge.compression]\n").edge
    assert edge.cache is not None and edge.compression is not None
    assert edge.cache.size == 64 * 1024**2 and edge.cache.max_age == 60
    assert edge.cache.paths == ["/"] and "text/html" in edge.compression.types


@pytest.mark.parametrize(
    ("body", "where", "says"),
    [
        ('[edge.cache]\nsize = "5000MB"\n', "edge.cache.size", "4095MB"),
        ('[edge.cache]\nsize = "1500KB"\n', "edge.cache.size", "whole megabytes"),
        ('[edge.cache]\nsize = "4MB"\nmax_object = "3MB"\n', "edge.cache.max_object", "half"),
        ("[edge.cache]\nmax_object = 10\n", "edge.cache.max_object", "1KB"),
        ('[edge.cache]\nmax_age = "8d"\n', "edge.cache.max_age", "7d"),
        ('[edge.cache]\nmax_age = "1.5s"\n', "edge.cache.max_age", "whole seconds"),
        ("[edge.cache]\npaths = []\n", "edge.cache.paths", "at least one"),
        ('[edge.cache]\npaths = ["static/"]\n', "edge.cache.paths.0", "starts with"),
        ('[edge.cache]\npaths = ["/a b"]\n', "edge.cache.paths.0", "not a path prefix"),
        ('[edge.cache]\nskip_paths = ["/x\\"y"]\n', "edge.cache.skip_paths.0", "prefix"),
        ('[edge.cache]\nskip_paths = ["/${HOME}"]\n', "edge.cache.skip_paths.0", "prefix"),
        ("[edge.cache]\npaths = [" + '"/a",' * 51 + "]\n", "edge.cache.paths", "50"),
        ('[edge.cache]\npaths = ["/' + "a" * 200 + '"]\n', "edge.cache.paths.0", "200"),
        ("[edge.cache]\nsizee = 1\n", "edge.cache.sizee", "unknown key"),
        ('[edge.compression]\ntypes = ["text/html; q=1"]\n', "edge.compression.types.0", "MIME"),
        ('[edge.compression]\ntypes = ["Text/HTML"]\n', "edge.compression.types.0", "lowercase"),
        ("[edge.compression]\ntypes = []\n", "edge.compression.types", "at least 1"),
        ('[edge.compression]\nalgo = "br"\n', "edge.compression.algo", "unknown key"),
    ],
)
def test_bad_values_name_the_key_and_the_fix(body: str, where: str, says: str) -> None:
    message = error_of(body)
    assert f"{where}:" in message and says in message, message


def test_the_stored_routing_reads_back_and_crosses_the_wire() -> None:
    config = parse_config(
        BASE + '[edge.cache]\nsize = "8MB"\nmax_age = "5m"\nskip_paths = ["/api/"]\n'
        '[edge.compression]\ntypes = ["text/html"]\n'
    )
    routing = routing_of(config)
    assert routing is not None
    backend = backend_for("shop", routing, [])
    assert backend.edge.cache == CacheRules(
        size_mb=8, max_object=1024**2, max_age=300, skip_paths=("/api/",)
    )
    assert backend.edge.compression is not None
    assert backend.edge.compression.types == ("text/html",)
    assert wire.backend_in(wire.backend_out(backend)) == backend
    old = {k: v for k, v in routing["edge"].items() if k not in ("cache", "compression")}
    assert backend_for("shop", routing | {"edge": old}, []).edge.cache is None  # recorded before


def render_app(edge: EdgeRules, app: str = "shop") -> str:
    backend = Backend(app=app, address="127.0.0.1", port=8080, edge=edge)
    return render(RouterState(admin_socket="/h/haproxy/admin.sock", backends=(backend,)))


def test_the_cache_key_carries_the_epoch_and_the_path_is_put_back() -> None:
    text = render_app(EdgeRules(cache=CacheRules(skip_paths=("/api/",))))
    lines = [line.strip() for line in text.splitlines()]
    on = "{ var(txn.sw_cache) -m bool }"
    prefix = f"http-request set-path {EPOCH_PREFIX}%[be_name,map(/h/haproxy/cache-epochs.map,0)]"
    use = lines.index(f"http-request cache-use shop if {on}")
    assert lines[use - 1] == f"{prefix}%[path] if {on}"
    assert lines[use + 1] == f"http-request set-path %[var(txn.sw_path)] if {on}"
    eligible = next(line for line in lines if line.startswith("http-request set-var(txn.sw_cache)"))
    for needed in ("{ method GET }", "!{ req.hdr(authorization) -m found }", "!sw_cache_skip"):
        assert needed in eligible
    store = next(line for line in lines if "cache-store" in line)
    assert "{ status 200 }" in store and "!{ res.hdr(set-cookie) -m found }" in store
    assert "sw_cache_fresh !sw_cache_private" in store
    assert "cache shop" in lines and "total-max-size 64" in lines and "max-age 60" in lines


def test_the_cache_comes_after_every_rule_that_refuses_a_request() -> None:
    text = render_app(EdgeRules(cache=CacheRules(), deny=("10.0.0.0/8",), max_body=10))
    assert text.index("deny_status 413") < text.index("cache-use")
    assert text.index("deny_status 403") < text.index("cache-use")


def test_long_rule_lists_are_split_over_lines_haproxy_accepts() -> None:
    paths = tuple(f"/{'p' * 190}{i:02d}/" for i in range(50))
    text = render_app(EdgeRules(cache=CacheRules(paths=paths)))
    acls = [line for line in text.splitlines() if "acl sw_cache_path" in line]
    assert len(acls) == 5 and all(len(line) < 2048 for line in acls)
    assert all(p in text for p in paths)


def test_no_cache_no_compression_no_lines() -> None:
    text = render_app(EdgeRules())
    assert "cache" not in text and "compression" not in text


def test_compression_is_gzip_of_the_listed_types() -> None:
    from slipway.router.cache import CompressionRules

    text = render_app(EdgeRules(compression=CompressionRules(types=("text/html", "text/css"))))
    assert "    compression algo gzip\n    compression type text/html text/css\n" in text


def test_cache_names_fit_haproxys_32_characters_and_stay_distinct() -> None:
    long_a, long_b = "a" * 39 + "x", "a" * 39 + "y"
    assert cache_name("shop") == "shop"
    assert len(cache_name(long_a)) <= CACHE_NAME_MAX
    assert cache_name(long_a) != cache_name(long_b)


def test_the_epoch_map_has_a_line_per_cached_backend() -> None:
    epochs = parse_epochs(render_epochs(["app_b", "app_a"]))
    assert set(epochs) == {"app_a", "app_b"} and epochs["app_a"] != epochs["app_b"]


def test_cache_counters_come_from_the_backend_row() -> None:
    text = (
        "# pxname,svname,cache_lookups,cache_hits,\n"
        "app_shop,r1-web-1,,,\napp_shop,BACKEND,40,30,\napp_other,BACKEND,5,5,\n"
    )
    counters = parse_cache_counters(text, "app_shop")
    assert (counters.lookups, counters.hits, counters.ratio) == (40, 30, 0.75)
    assert parse_cache_counters(text, "app_none").ratio is None
