"""HAProxy configuration, built from the desired routing state. Pure: no I/O.

Runtime-added servers do not inherit `default-server`, so every server line (in the file
and in `add server` commands) is built by `server_options` from the same backend settings.

Apps share a frontend per address:port (routed by host name), so each app's edge rules
([edge] in slipway.toml: rate limit, IP lists, size limits, headers, HTTPS redirect) live in
its own backend; only the listeners (TLS, PROXY protocol) are per frontend (docs/edge.md).
"""

from __future__ import annotations

import hashlib
import math
import posixpath
from collections import defaultdict
from dataclasses import dataclass, field

from slipway.errors import ConfigError
from slipway.router.cache import (
    CacheRules,
    CompressionRules,
    cache_rules,
    cache_section,
    compression_rules,
    epochs_path,
)

SERVING_WEIGHT = 100
# One line per request to the daemon: backend, server, status, TR, Tw, Tc, Tr, Ta, bytes,
# termination state (parsed by slipway.metrics.ingest).
# The path comes last: it is the only field that may hold odd characters.
LOG_FORMAT = "slipway %b %s %ST %TR %Tw %Tc %Tr %Ta %B %ts %ci %HM %HP"
HOST = "req.hdr(host),field(1,:)"  # the Host header without its port
WILDCARD_ADDRESSES = {"0.0.0.0", "::"}
LOCALHOST = "127.0.0.1"

# TLS: 1.2 and 1.3 only, AEAD ciphers with forward secrecy (Mozilla's "intermediate" profile
# without the DHE suites, which would need DH parameters).
TLS_CIPHERS = ":".join(
    [
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
    ]
)
TLS_CIPHERSUITES = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
TLS_OPTIONS = "ssl-min-ver TLSv1.2 no-tls-tickets"
ALPN = "h2,http/1.1"
# Request headers must fit in HAProxy's buffer less its rewrite reserve (default 16384 - 1024).
DEFAULT_BUFSIZE = 16384
MAXREWRITE = 1024
# Added to responses that lack them, when [edge] security_headers is on (the default).
SECURITY_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "SAMEORIGIN"),
    ("Referrer-Policy", "strict-origin-when-cross-origin"),
)
# Headers a client could forge to pose as someone else (or as HTTPS), removed unless the
# request comes from a trusted proxy. X-Forwarded-For and X-Real-IP are always rewritten.
SPOOFABLE = "^(forwarded|x-forwarded-host|x-forwarded-port)$"
ACL_CHUNK = 20  # addresses per acl line (HAProxy allows 64 words per line)


@dataclass(frozen=True)
class Server:
    name: str
    port: int
    weight: int
    address: str = LOCALHOST  # the private address of the instance's host


@dataclass(frozen=True)
class EdgeRules:
    """An app's [edge] settings, as HAProxy applies them (see slipway.config.edge.Edge)."""

    tls_cert: str | None = None  # None: no HTTPS listener
    tls_key: str | None = None
    https_port: int = 443
    hsts: int = 365 * 86400  # seconds; 0: no Strict-Transport-Security
    rate_limit: int = 0  # requests per rate_window per client IP; 0: no limit
    rate_window: float = 10.0
    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()
    max_body: int | None = None
    max_header: int | None = None
    security_headers: bool = True
    proxy_protocol: bool = False
    trusted_proxies: tuple[str, ...] = ()
    # A digest of the installed certificate (filled in by the router from the files), so
    # that a renewed certificate changes the configuration and gets reloaded.
    tls_digest: str | None = None
    cache: CacheRules | None = None  # None: no cache
    compression: CompressionRules | None = None  # None: no compression

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None


@dataclass(frozen=True)
class Backend:
    app: str
    address: str
    port: int
    hosts: tuple[str, ...] = ()
    check_path: str = "/up"
    check_interval: float = 1.0
    check_timeout: float = 2.0
    rise: int = 2
    fall: int = 3
    servers: tuple[Server, ...] = ()
    edge: EdgeRules = field(default_factory=EdgeRules)

    @property
    def name(self) -> str:
        return backend_name(self.app)


@dataclass(frozen=True)
class RouterState:
    admin_socket: str
    backends: tuple[Backend, ...] = field(default_factory=tuple)
    log_target: str | None = None  # host:port of the daemon's UDP request-log receiver
    # Where each TLS app's combined PEM (certificate chain + key) is installed, as
    # `<certs_dir>/app_<name>.pem`; None: a `certs` folder beside the admin socket.
    certs_dir: str | None = None


@dataclass(frozen=True)
class Listener:
    """One address:port HAProxy binds for an app: its plain HTTP port or its HTTPS port."""

    address: str
    port: int
    tls: bool
    backend: Backend

    @property
    def key(self) -> tuple[str, int]:
        return (self.address, self.port)

    @property
    def kind(self) -> str:
        return "HTTPS" if self.tls else "HTTP"

    @property
    def setting(self) -> str:
        return "edge.https_port" if self.tls else "listen.port"


def listeners_of(backends: tuple[Backend, ...]) -> list[Listener]:
    found = []
    for backend in sorted(backends, key=lambda b: b.app):
        found.append(Listener(backend.address, backend.port, False, backend))
        if backend.edge.tls:
            found.append(Listener(backend.address, backend.edge.https_port, True, backend))
    return found


def listen_addresses(state: RouterState) -> set[tuple[str, int]]:
    """Every address:port HAProxy must be able to bind for this state."""
    return {listener.key for listener in listeners_of(state.backends)}


def certs_dir(state: RouterState) -> str:
    if state.certs_dir is not None:
        return state.certs_dir
    return posixpath.join(posixpath.dirname(state.admin_socket), "certs")


def pem_path(state: RouterState, backend: Backend) -> str:
    return posixpath.join(certs_dir(state), f"{backend.name}.pem")


def backend_name(app: str) -> str:
    return f"app_{app}"


def ms(seconds: float) -> str:
    return f"{max(1, round(seconds * 1000))}ms"


def server_options(backend: Backend, weight: int) -> str:
    """Options of one server. While a server is down (booting), check often so it joins fast.
    Connection errors of real traffic count too: a few in a row mark the server down at once
    (the requests themselves are retried on another server), not after `fall` checks.
    Layer 4 on purpose: `observe layer7` would count the app's own 5xx answers, so three in a
    row (a canary that fails, one bad endpoint) would take a healthy server out of traffic."""
    down = min(backend.check_interval, 0.25)
    return (
        f"weight {weight} check inter {ms(backend.check_interval)} fastinter {ms(down)} "
        f"downinter {ms(down)} rise {backend.rise} fall {backend.fall} "
        "observe layer4 error-limit 3 on-error mark-down"
    )


def check_listeners(backends: tuple[Backend, ...]) -> None:
    """Apps may share an address:port only when every one of them names its hosts and they
    agree on what the port speaks (HTTP or HTTPS, PROXY protocol or not); a wildcard address
    (0.0.0.0) overlaps every other address on the same port."""
    listeners = listeners_of(backends)
    for a in listeners:
        for b in listeners:
            if (
                a.backend.app < b.backend.app
                and a.port == b.port
                and a.address != b.address
                and (a.address in WILDCARD_ADDRESSES or b.address in WILDCARD_ADDRESSES)
            ):
                tls = a.tls or b.tls
                raise ConfigError(
                    f"apps {a.backend.app} ({a.address}:{a.port}{' HTTPS' if a.tls else ''}) "
                    f"and {b.backend.app} ({b.address}:{b.port}{' HTTPS' if b.tls else ''}) "
                    "overlap: a wildcard address takes the port on every address",
                    where="listen.address / " + ("edge.https_port" if tls else "listen.port"),
                    fix="give both apps the same [listen] address (and hosts), or different ports",
                )
    by_listener: dict[tuple[str, int], list[Listener]] = defaultdict(list)
    for listener in listeners:
        by_listener[listener.key].append(listener)
    for (address, port), group in by_listener.items():
        _check_kinds(address, port, group)
        if len(group) < 2:
            continue
        without_hosts = [x.backend.app for x in group if not x.backend.hosts]
        if without_hosts:
            others = [x.backend.app for x in group if x.backend.app not in without_hosts[:1]]
            raise ConfigError(
                f"apps {', '.join(sorted({without_hosts[0], *others}))} both listen on "
                f"{address}:{port} and '{without_hosts[0]}' names no hosts",
                where=f"{group[0].setting} / listen.hosts",
                fix="give each app its own [listen] port, or list [listen] hosts in every app "
                "that shares the port",
            )
        seen: dict[str, str] = {}
        for listener in group:
            for host in listener.backend.hosts:
                if host in seen:
                    raise ConfigError(
                        f"host '{host}' on {address}:{port} is claimed by both '{seen[host]}' "
                        f"and '{listener.backend.app}'",
                        where="listen.hosts",
                        fix="each host name may route to one app only",
                    )
                seen[host] = listener.backend.app


def _check_kinds(address: str, port: int, group: list[Listener]) -> None:
    plain = [x for x in group if not x.tls]
    tls = [x for x in group if x.tls]
    if plain and tls:
        a, b = plain[0].backend.app, tls[0].backend.app
        who = (
            f"app '{a}' uses it as both [listen] port and [edge] https_port"
            if a == b
            else f"'{a}' serves plain HTTP there ([listen] port) and '{b}' HTTPS "
            "([edge] https_port)"
        )
        raise ConfigError(
            f"{address}:{port} cannot speak both HTTP and HTTPS: {who}",
            where="listen.port / edge.https_port",
            fix="give HTTPS its own port (e.g. [listen] port = 80 and [edge] https_port = 443)",
        )
    proxied = {x.backend.app for x in group if x.backend.edge.proxy_protocol}
    direct = {x.backend.app for x in group} - proxied
    if proxied and direct:
        raise ConfigError(
            f"apps on {address}:{port} disagree on the PROXY protocol: "
            f"on for {', '.join(sorted(proxied))}, off for {', '.join(sorted(direct))}",
            where="edge.proxy_protocol",
            fix="a listener either expects a PROXY header on every connection or on none: "
            "set the same [edge] proxy_protocol in every app sharing the port",
        )


def render(state: RouterState, *, with_servers: bool = True) -> str:
    check_listeners(state.backends)
    backends = sorted(state.backends, key=lambda b: b.app)
    tls = any(b.edge.tls for b in backends)
    lines = [
        "# Generated by slipway: do not edit, it is rewritten before every reload.",
        "global",
        f"    stats socket {state.admin_socket} mode 600 level admin expose-fd listeners",
        "    stats timeout 30s",
        "    maxconn 4096",
        "    hard-stop-after 5m",
        *(
            [f"    log {state.log_target} len 2048 format raw local0 info"]
            if state.log_target
            else []
        ),
        *(
            [
                f"    ssl-default-bind-ciphers {TLS_CIPHERS}",
                f"    ssl-default-bind-ciphersuites {TLS_CIPHERSUITES}",
                f"    ssl-default-bind-options {TLS_OPTIONS}",
            ]
            if tls
            else []
        ),
        *_bufsize(backends),
        "",
        "defaults",
        "    mode http",
        *(["    log global", f'    log-format "{LOG_FORMAT}"'] if state.log_target else []),
        "    option dontlognull",
        "    option forwardfor",
        "    option idle-close-on-response",  # clean reloads under load
        # A request that could not reach its server goes to another one (redispatch on
        # every retry). On a LAN a connect takes well under a millisecond, so 1 s without an
        # answer means a host gone silent (its link down): each request that meets it is
        # retried elsewhere after 1 s, until the checks (or 3 failed connects in a row, see
        # server_options) mark it down on every lb host.
        "    option redispatch 1",
        "    retries 3",
        "    retry-on conn-failure empty-response junk-response",
        "    timeout connect 1s",
        "    timeout client 60s",
        "    timeout server 60s",
        "    timeout http-request 10s",
        "    timeout http-keep-alive 10s",
        "    timeout queue 30s",
        "    timeout tunnel 1h",
        "",
    ]
    by_listener: dict[tuple[str, int], list[Listener]] = defaultdict(list)
    for listener in listeners_of(state.backends):
        by_listener[listener.key].append(listener)
    for (address, port), group in sorted(by_listener.items()):
        lines.extend(_frontend(state, address, port, group))
    epochs = epochs_path(state.admin_socket)
    for backend in backends:
        lines.extend(_backend(backend, with_servers, epochs))
    if any(all(x.backend.hosts for x in group) for group in by_listener.values()):
        lines.extend(_no_host_backend())
    for backend in backends:
        if backend.edge.cache is not None:
            lines.extend(cache_section(backend.app, backend.edge.cache))
    return "\n".join(lines) + "\n"


def structure_hash(state: RouterState) -> str:
    """What a reload is needed for: everything but the servers (changed at runtime)."""
    return hashlib.sha256(render(state, with_servers=False).encode()).hexdigest()[:16]


def _bufsize(backends: list[Backend]) -> list[str]:
    """HAProxy's buffer is global: grown when an app allows headers larger than it holds."""
    largest = max((b.edge.max_header or 0 for b in backends), default=0)
    if largest + MAXREWRITE <= DEFAULT_BUFSIZE:
        return []
    return [f"    tune.bufsize {math.ceil((largest + MAXREWRITE + 1) / 4096) * 4096}"]


def _frontend(state: RouterState, address: str, port: int, group: list[Listener]) -> list[str]:
    bind = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
    tls = group[0].tls  # check_listeners: one kind per address:port
    lines = [f"frontend fe_{port}_{address.replace(':', '_').replace('.', '_')}"]
    options = ""
    if tls:
        for listener in group:
            edge = listener.backend.edge
            source = " + ".join(p for p in (edge.tls_cert, edge.tls_key) if p)
            digest = f" (sha256 {edge.tls_digest})" if edge.tls_digest else ""
            lines.append(f"    # {listener.backend.name}: {source}{digest}")
        crts = " ".join(f"crt {pem_path(state, x.backend)}" for x in group)
        options += f" ssl {crts} alpn {ALPN}"
    if group[0].backend.edge.proxy_protocol:  # check_listeners: the group agrees
        options += " accept-proxy"
    lines.append(f"    bind {bind}{options}")
    default = "no_app_for_host"
    for listener in group:
        backend = listener.backend
        exact = [h for h in backend.hosts if not h.startswith("*.")]
        suffixes = [h[1:] for h in backend.hosts if h.startswith("*.")]  # "*.a.b" -> ".a.b"
        if exact:
            lines.append(f"    use_backend {backend.name} if {{ {HOST} -i {' '.join(exact)} }}")
        if suffixes:
            lines.append(
                f"    use_backend {backend.name} if {{ {HOST} -m end -i {' '.join(suffixes)} }}"
            )
        if not backend.hosts:
            default = backend.name
    lines.extend([f"    default_backend {default}", ""])
    return lines


def _backend(backend: Backend, with_servers: bool, epochs: str) -> list[str]:
    host = next((h for h in backend.hosts if not h.startswith("*.")), "localhost")
    lines = [
        f"backend {backend.name}",
        "    balance roundrobin",  # the only algorithm that splits weights exactly
        "    option httpchk",
        f"    http-check send meth GET uri {backend.check_path} ver HTTP/1.1 hdr Host {host}",
        "    http-check expect status 200-399",
        f"    timeout check {ms(backend.check_timeout)}",
        # HAProxy replays a request on an empty or junk answer whatever its method: only the
        # safe ones may be (a POST its server crashed on may have done its work). A request
        # that never reached a server (a connect failure) is retried whatever its method.
        "    http-request disable-l7-retry unless METH_GET || METH_OPTIONS",
        *edge_rules(backend.edge, backend.app, epochs),
    ]
    if with_servers:
        for server in backend.servers:
            lines.append(
                f"    server {server.name} {server.address}:{server.port} "
                f"{server_options(backend, server.weight)}"
            )
    lines.append("")
    return lines


def edge_rules(edge: EdgeRules, app: str = "", epochs: str = "") -> list[str]:
    """An app's [edge] rules, in its backend, in the order HAProxy applies them: the client's
    real address first (everything after judges it), then who may come in, how often, the
    redirect to HTTPS, size limits, the cache (last: a refused request never reaches it),
    compression, and the headers added to every answer (the app's and HAProxy's own: 403,
    429, redirects, cached ones)."""
    lines = [*_forwarding(edge)]
    if edge.deny:
        lines += _acl("edge_deny", edge.deny)
        lines.append("    http-request deny deny_status 403 if edge_deny")
    if edge.allow:
        lines += _acl("edge_allow", edge.allow)
        lines.append("    http-request deny deny_status 403 unless edge_allow")
    if edge.rate_limit:
        window = ms(edge.rate_window)
        lines += [
            f"    stick-table type ipv6 size 100k expire {window} store http_req_rate({window})",
            "    http-request track-sc0 src",
            "    http-request return status 429 content-type text/plain string "
            f'"too many requests\\n" hdr Retry-After {math.ceil(edge.rate_window)} '
            f"if {{ sc_http_req_rate(0) gt {edge.rate_limit} }}",
        ]
    if edge.tls:
        port = "" if edge.https_port == 443 else f":{edge.https_port}"
        location = f"https://%[req.hdr(host),regsub(:[0-9]+$,)]{port}%[pathq]"
        lines += [
            # 301 for GET/HEAD (cached by browsers); 308 keeps the method and body of a POST
            f"    http-request redirect location {location} code 301 "
            "if !{ ssl_fc } { method GET HEAD }",
            f"    http-request redirect location {location} code 308 unless {{ ssl_fc }}",
        ]
    if edge.max_header is not None:
        lines.append(
            "    http-request deny deny_status 431 content-type text/plain string "
            f'"request header fields too large\\n" if {{ req.hdrs,length gt {edge.max_header} }}'
        )
    if edge.max_body is not None:
        lines.append(
            "    http-request deny deny_status 413 "
            f"if {{ req.hdr_val(content-length) gt {edge.max_body} }}"
        )
    if edge.cache is not None:
        request, response = cache_rules(app, edge.cache, epochs)
        lines += request + response
    if edge.compression is not None:
        lines += compression_rules(edge.compression)
    if edge.security_headers:
        lines += [
            f"    http-after-response set-header {name} {value} "
            f"unless {{ res.hdr({name}) -m found }}"
            for name, value in SECURITY_HEADERS
        ]
    if edge.tls and edge.hsts > 0:
        lines.append(
            f'    http-after-response set-header Strict-Transport-Security "max-age={edge.hsts}" '
            "if { ssl_fc } !{ res.hdr(Strict-Transport-Security) -m found }"
        )
    return lines


def _forwarding(edge: EdgeRules) -> list[str]:
    """The app learns the client's address from X-Forwarded-For (`option forwardfor` appends
    it) and X-Real-IP. A client's own X-Forwarded-For is dropped first, so an app that reads
    the first value cannot be fooled; from a trusted proxy, its last value is the client."""
    if not edge.trusted_proxies:
        return [
            "    http-request set-header X-Forwarded-Proto %[ssl_fc,iif(https,http)]",
            f"    http-request del-header {SPOOFABLE} -m reg",
            "    http-request del-header X-Forwarded-For",
            "    http-request set-header X-Real-IP %[src]",
        ]
    return [
        *_acl("edge_trusted", edge.trusted_proxies),
        "    http-request set-header X-Forwarded-Proto %[ssl_fc,iif(https,http)] "
        "unless edge_trusted { req.hdr(X-Forwarded-Proto) -m found }",
        f"    http-request del-header {SPOOFABLE} -m reg unless edge_trusted",
        "    http-request set-src req.hdr_ip(X-Forwarded-For,-1) "
        "if edge_trusted { req.hdr_ip(X-Forwarded-For,-1) -m found }",
        "    http-request del-header X-Forwarded-For",
        "    http-request set-header X-Real-IP %[src]",
    ]


def _acl(name: str, networks: tuple[str, ...]) -> list[str]:
    """Lines of one ACL (lines with the same name add up): HAProxy caps words per line."""
    return [
        f"    acl {name} src {' '.join(networks[i : i + ACL_CHUNK])}"
        for i in range(0, len(networks), ACL_CHUNK)
    ]


def _no_host_backend() -> list[str]:
    return [
        "backend no_app_for_host",
        '    http-request return status 404 content-type text/plain string "no app serves this '
        'host name\\n"',
        "",
    ]
