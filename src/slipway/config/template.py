"""The commented slipway.toml that `slipway init` writes."""

from __future__ import annotations

TEMPLATE = """\
# slipway.toml — how slipway builds, runs and serves this app.
# Reference: docs/config.md. Check it with `slipway config check`.

name = "{name}"

[listen]
# Where HAProxy serves the app. Several apps may share one port if each lists its hosts.
address = "127.0.0.1"
port = {port}
# hosts = ["app.example.com"]

[processes]
# One command per process type. `web` receives HTTP and must listen on $PORT;
# others (workers) get no traffic.
web = "{web}"
# worker = "python worker.py"

[build]
# Runs in the release's own folder with its virtualenv active (pip installs into it).
command = "{build}"
timeout = "10m"

[healthcheck]
# A new release gets traffic only after every web instance answers here.
path = "/up"
interval = "1s"
timeout = "2s"
healthy_threshold = 2
unhealthy_threshold = 3

[scale]
web = 1

[env]
# GREETING = "hello"

[deploy]
strategy = "bluegreen"   # or "canary"; "rolling" (max_unavailable = 1) without room for two
health_timeout = "60s"   # how long new instances may take to become healthy
drain_timeout = "30s"    # how long in-flight requests may take to finish on the old release
stop_grace = "10s"       # SIGTERM, then SIGKILL after this long
keep_warm = "5m"         # the previous release keeps running this long: rollback is instant
keep_releases = 5        # releases kept on disk for rollback

[logs]
max_size = "10MB"        # instance output and the request log rotate at this size
keep = 3                 # rotated files kept

# Alerts: defaults watch the error rate, p99 latency, instances down, restart loops and
# disk space. Add your own, and say where notifications go (docs/config.md):
# [[alerts]]
# name = "errors"
# metric = "error_rate"
# above = 0.02
# window = "1m"
# for = "2m"
# severity = "critical"
#
# [[alerting.notify]]
# type = "webhook"       # or slack, email, alertmanager
# url = "http://127.0.0.1:9000/hooks/slipway"
"""


def render_template(name: str, web: str, build: str, port: int = 8080) -> str:
    return TEMPLATE.format(name=name, web=web, build=build, port=port)
