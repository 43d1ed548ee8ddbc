"""slipway.toml: schema, loading, error messages that name the file, line, key path and fix."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from slipway.config import CONFIG_FILE
from slipway.config.load import config_hash, load_config, locate, parse_config
from slipway.config.schema import AppConfig
from slipway.config.template import render_template
from slipway.errors import ConfigError

MINIMAL = """\
name = "shop"

[processes]
web = "python app.py --port $PORT"
"""


def config_error(text: str, source: str = CONFIG_FILE) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_config(text, source)
    return info.value


def line_of(text: str, fragment: str) -> int:
    """1-based number of the first line containing `fragment` (the test's own locator)."""
    for number, line in enumerate(text.splitlines(), start=1):
        if fragment in line:
            return number
    raise AssertionError(f"{fragment!r} not in the text")


# -- valid configs ---------------------------------------------------------------------


def test_minimal_config_gets_documented_defaults() -> None:
    cfg = parse_config(MINIMAL)
    assert cfg.name == "shop"
    assert cfg.processes == {"web": "python app.py --port $PORT"}
    assert (cfg.listen.address, cfg.listen.port, cfg.listen.hosts) == ("127.0.0.1", 8080, [])
    assert cfg.healthcheck.path == "/up"
    assert cfg.deploy.strategy == "bluegreen"
    assert cfg.deploy.keep_releases == 5
    assert cfg.has_web
    assert cfg.initial_scale() == {"web": 1}
    assert cfg.warnings() == []


def test_full_config_parses_durations_hosts_scale_and_env() -> None:
    text = """\
name = "shop-api"

[listen]
address = "0.0.0.0"
port = 443
hosts = ["Shop.Example.com", "*.shop.example.com"]

[processes]
web = "gunicorn app:app -b 127.0.0.1:$PORT"
worker_1 = "python worker.py"

[build]
command = "pip install -r requirements.txt"
timeout = "10m"

[healthcheck]
path = "/healthz"
interval = "500ms"
timeout = 3
healthy_threshold = 1
unhealthy_threshold = 5

[scale]
web = 3
worker_1 = 0

[env]
GREETING = "hello"
WORKERS = 4
RATIO = 0.5
DEBUG = false

[deploy]
health_timeout = "1m30s"
drain_timeout = "45s"
stop_grace = "1500ms"
keep_warm = "1h"
keep_releases = 10
"""
    cfg = parse_config(text)
    assert cfg.listen.address == "0.0.0.0"
    assert cfg.listen.port == 443
    assert cfg.listen.hosts == ["shop.example.com", "*.shop.example.com"]  # lowercased
    assert cfg.build.timeout == 600.0
    assert cfg.healthcheck.interval == 0.5
    assert cfg.healthcheck.timeout == 3.0
    assert cfg.scale == {"web": 3, "worker_1": 0}
    assert cfg.initial_scale() == {"web": 3, "worker_1": 0}
    # env values become the strings the process will see
    assert cfg.env == {"GREETING": "hello", "WORKERS": "4", "RATIO": "0.5", "DEBUG": "false"}
    assert cfg.deploy.health_timeout == 90.0
    assert cfg.deploy.drain_timeout == 45.0
    assert cfg.deploy.stop_grace == 1.5
    assert cfg.deploy.keep_warm == 3600.0
    assert cfg.deploy.keep_releases == 10


def test_ipv6_listen_address_is_accepted() -> None:
    cfg = parse_config(MINIMAL + '\n[listen]\naddress = "::1"\n')
    assert cfg.listen.address == "::1"


def test_initial_scale_defaults_unscaled_processes_to_one() -> None:
    cfg = parse_config(MINIMAL + 'worker = "python w.py"\n\n[scale]\nworker = 4\n')
    assert cfg.initial_scale() == {"web": 1, "worker": 4}


def test_worker_only_app_has_no_web() -> None:
    cfg = parse_config('name = "jobs"\n[processes]\nworker = "python worker.py"\n')
    assert not cfg.has_web
    assert cfg.warnings() == []


def test_warning_when_web_process_ignores_port() -> None:
    cfg = parse_config('name = "shop"\n[processes]\nweb = "python app.py --port 5000"\n')
    warnings = cfg.warnings()
    assert len(warnings) == 1
    assert "processes.web" in warnings[0] and "$PORT" in warnings[0]


# -- error messages --------------------------------------------------------------------


def test_unknown_top_level_key_names_line_and_lists_valid_keys() -> None:
    text = 'nmae = "typo"\n' + MINIMAL
    err = config_error(text)
    assert err.where == f"{CONFIG_FILE}:1: nmae"
    assert "unknown key 'nmae'" in err.message
    assert err.fix is not None
    assert "edge, env, gates, healthcheck, listen, logs, name, placement, processes" in err.fix


def test_unknown_key_in_table_names_key_path_line_and_that_tables_keys() -> None:
    text = MINIMAL + '\n[healthcheck]\npath = "/up"\nintervall = "1s"\n'
    err = config_error(text)
    assert err.where == f"{CONFIG_FILE}:{line_of(text, 'intervall')}: healthcheck.intervall"
    assert "unknown key 'intervall'" in err.message
    assert err.fix is not None
    assert (
        "valid keys here: healthy_threshold, interval, path, restart_after, timeout, "
        "unhealthy_threshold" in err.fix
    )


def test_error_uses_the_given_source_name() -> None:
    err = config_error("bogus = 1\n" + MINIMAL, source="/srv/shop/slipway.toml")
    assert err.where == "/srv/shop/slipway.toml:1: bogus"


def test_missing_required_keys_say_what_to_add() -> None:
    err = config_error('[processes]\nweb = "python app.py $PORT"\n')
    assert err.where == f"{CONFIG_FILE}: name"
    assert err.message == "required key is missing"
    assert err.fix is not None and "name = " in err.fix


def test_several_problems_are_reported_together() -> None:
    text = """\
nmae = "shop"

[listen]
port = 70000
adress = "127.0.0.1"

[processes]
web = "python app.py --port $PORT"
"""
    err = config_error(text)
    assert err.message == "4 problems in the config"
    assert err.where == CONFIG_FILE
    assert err.fix is not None and "fix each problem" in err.fix
    wheres = {p["where"] for p in err.data["problems"]}
    assert wheres == {
        f"{CONFIG_FILE}: name",
        f"{CONFIG_FILE}:1: nmae",
        f"{CONFIG_FILE}:4: listen.port",
        f"{CONFIG_FILE}:5: listen.adress",
    }
    assert len(err.details) == 4
    rendered = str(err)
    for where in wheres:
        assert where in rendered
    assert "less than or equal to 65535" in rendered
    assert "valid keys here: address, hosts, port" in rendered


def test_toml_syntax_error_gives_line_and_column() -> None:
    text = 'name = "shop"\n[processes]\nweb "python app.py"\n'
    err = config_error(text)
    assert err.message.startswith("not valid TOML")
    assert "line 3" in err.message
    assert err.where == CONFIG_FILE
    assert err.fix is not None and "toml.io" in err.fix


@pytest.mark.parametrize("name", ["PORT", "SLIPWAY_HOME", "SLIPWAY_RELEASE"])
def test_reserved_env_names_are_rejected(name: str) -> None:
    text = MINIMAL + f'\n[env]\nGREETING = "hi"\n{name} = "x"\n'
    err = config_error(text)
    assert f'"{name}" is set by slipway itself' in err.message
    assert err.where == f"{CONFIG_FILE}:{line_of(text, '[env]')}: env"


def test_lowercase_env_name_is_not_reserved() -> None:
    cfg = parse_config(MINIMAL + '\n[env]\nport_name = "x"\n')
    assert cfg.env == {"port_name": "x"}


def test_invalid_env_name_is_rejected() -> None:
    err = config_error(MINIMAL + '\n[env]\n"MY-VAR" = "x"\n')
    assert "not a valid environment variable name" in err.message


def test_env_value_of_wrong_type_names_the_variable() -> None:
    text = MINIMAL + "\n[env]\nLIST = [1, 2]\n"
    err = config_error(text)
    assert "env values must be strings, numbers or booleans" in err.message
    assert err.where == f"{CONFIG_FILE}:{line_of(text, 'LIST')}: env.LIST"


def test_scale_naming_unknown_process_lists_defined_ones() -> None:
    text = MINIMAL + 'worker = "python w.py"\n\n[scale]\nwbe = 2\n'
    err = config_error(text)
    assert "wbe" in err.message
    assert "[scale]" in err.message
    assert "web, worker" in err.message


def test_scale_naming_unknown_process_names_scale_key_and_line() -> None:
    text = MINIMAL + "\n[scale]\nwbe = 2\n"
    err = config_error(text)
    assert err.where is not None
    assert re.match(rf"{CONFIG_FILE}:\d+: scale", err.where), err.where


def test_scale_out_of_range_points_at_the_scale_line_not_processes() -> None:
    text = MINIMAL + "\n[scale]\nweb = 65\n"
    err = config_error(text)
    # `web = ` appears in [processes] first; the error must point into [scale]
    assert err.where == f"{CONFIG_FILE}:{line_of(text, 'web = 65')}: scale.web"
    assert err.fix == "use a whole number of instances between 0 and 64"


def test_negative_scale_is_rejected() -> None:
    err = config_error(MINIMAL + "\n[scale]\nweb = -1\n")
    assert err.where is not None and err.where.endswith("scale.web")


@pytest.mark.parametrize(
    "name", ["Shop", "1shop", "shop_api", "-shop", "", "a" * 41, "shop api", "shöp"]
)
def test_bad_app_names_are_rejected_at_the_name_line(name: str) -> None:
    text = f'# my app\nname = "{name}"\n[processes]\nweb = "python app.py $PORT"\n'
    err = config_error(text)
    assert err.where == f"{CONFIG_FILE}:2: name"
    assert "not a valid app name" in err.message
    assert "lowercase letters" in err.message


@pytest.mark.parametrize("name", ["a", "shop", "shop-api-2", "a" * 40])
def test_good_app_names_are_accepted(name: str) -> None:
    assert parse_config(f'name = "{name}"\n[processes]\nweb = "x $PORT"\n').name == name


@pytest.mark.parametrize(
    "host", ["bad host", "exa_mple.com", "-shop.example.com", "shop..example.com", "a.*.com", ""]
)
def test_bad_hosts_are_rejected(host: str) -> None:
    text = MINIMAL + f'\n[listen]\nport = 80\nhosts = ["ok.example.com", "{host}"]\n'
    err = config_error(text)
    assert f'"{host}" is not a host name' in err.message
    assert err.where == f"{CONFIG_FILE}:{line_of(text, 'hosts =')}: listen.hosts"


@pytest.mark.parametrize("host", ["localhost", "shop.example.com", "*.example.com", "x1.io"])
def test_good_hosts_are_accepted(host: str) -> None:
    cfg = parse_config(MINIMAL + f'\n[listen]\nhosts = ["{host}"]\n')
    assert cfg.listen.hosts == [host]


@pytest.mark.parametrize("address", ["localhost", "127.0.0.300", "0.0.0.0:80", ""])
def test_bad_listen_address_is_rejected(address: str) -> None:
    text = MINIMAL + f'\n[listen]\naddress = "{address}"\n'
    err = config_error(text)
    assert "is not an IP address" in err.message
    assert err.where == f"{CONFIG_FILE}:{line_of(text, 'address =')}: listen.address"


@pytest.mark.parametrize("port", [0, 65536])
def test_listen_port_out_of_range_is_rejected(port: int) -> None:
    err = config_error(MINIMAL + f"\n[listen]\nport = {port}\n")
    assert err.where is not None and err.where.endswith("listen.port")


def test_bad_healthcheck_duration_names_key_line_and_duration_fix() -> None:
    # `timeout` also exists in [build]: the line must be the healthcheck one
    text = MINIMAL + '\n[build]\ntimeout = "5m"\n\n[healthcheck]\ntimeout = "soon"\n'
    err = config_error(text)
    assert err.where == f"{CONFIG_FILE}:{line_of(text, 'soon')}: healthcheck.timeout"
    assert 'invalid duration "soon"' in err.message
    assert err.fix is not None and "duration" in err.fix and '"10s"' in err.fix


def test_healthcheck_interval_below_100ms_is_rejected() -> None:
    text = MINIMAL + '\n[healthcheck]\ninterval = "50ms"\n'
    err = config_error(text)
    assert err.where == f"{CONFIG_FILE}:{line_of(text, 'interval')}: healthcheck.interval"
    assert "at least 100ms" in err.message


@pytest.mark.parametrize("path", ["up", "/health check", ""])
def test_healthcheck_path_must_be_a_url_path(path: str) -> None:
    err = config_error(MINIMAL + f'\n[healthcheck]\npath = "{path}"\n')
    assert "must be a URL path" in err.message


@pytest.mark.parametrize("key", ["health_timeout", "drain_timeout", "stop_grace", "keep_warm"])
def test_bad_deploy_durations_name_key_and_line(key: str) -> None:
    text = MINIMAL + f'\n[deploy]\nstrategy = "bluegreen"\n{key} = "forever"\n'
    err = config_error(text)
    assert err.where == f"{CONFIG_FILE}:{line_of(text, 'forever')}: deploy.{key}"
    assert 'invalid duration "forever"' in err.message
    assert err.fix is not None and "duration" in err.fix


def test_unknown_deploy_strategy_is_rejected() -> None:
    err = config_error(MINIMAL + '\n[deploy]\nstrategy = "yolo"\n')
    assert err.where is not None and err.where.endswith("deploy.strategy")
    assert "bluegreen" in err.message


def test_empty_processes_table_is_rejected() -> None:
    err = config_error('name = "shop"\n[processes]\n')
    assert "define at least one process" in err.message


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('Web = "x"', "is not a valid process type"),
        ('my-web = "x"', "is not a valid process type"),
        ('web = "   "', 'the command of process "web" is empty'),
    ],
)
def test_bad_process_definitions_are_rejected(line: str, message: str) -> None:
    err = config_error(f'name = "shop"\n[processes]\n{line}\n')
    assert message in err.message
    assert err.where == f"{CONFIG_FILE}:2: processes"


def test_inline_table_error_points_at_the_inline_table_line() -> None:
    text = 'name = "shop"\nlisten = { port = 0 }\n[processes]\nweb = "x $PORT"\n'
    err = config_error(text)
    assert err.where == f"{CONFIG_FILE}:2: listen.port"


# -- locate ----------------------------------------------------------------------------


def test_locate_finds_keys_tables_and_dotted_keys() -> None:
    text = """\
name = "shop"           # 1
listen.port = 80        # 2

[processes]             # 4
web = "x"               # 5

[ "deploy" ]            # 7
keep_warm = "5m"        # 8
"""
    assert locate(text, ["name"]) == 1
    assert locate(text, ["listen", "port"]) == 2
    assert locate(text, ["processes"]) == 4
    assert locate(text, ["processes", "web"]) == 5
    assert locate(text, ["deploy", "keep_warm"]) == 8
    assert locate(text, ["deploy", "stop_grace"]) == 7  # falls back to its table
    assert locate(text, ["healthcheck", "path"]) is None


# -- config_hash -----------------------------------------------------------------------


def test_config_hash_is_stable_and_short() -> None:
    digest = config_hash(parse_config(MINIMAL))
    assert re.fullmatch(r"[0-9a-f]{12}", digest)
    assert config_hash(parse_config(MINIMAL)) == digest


def test_config_hash_ignores_spelling_of_equal_values() -> None:
    a = parse_config(MINIMAL + '\n[healthcheck]\ntimeout = "2s"\n[env]\nA = "1"\nB = "2"\n')
    b = parse_config(MINIMAL + "\n[env]\nB = 2\nA = 1\n[healthcheck]\ntimeout = 2\n")
    assert config_hash(a) == config_hash(b)


@pytest.mark.parametrize(
    "extra",
    [
        "\n[scale]\nweb = 2\n",
        '\n[env]\nA = "1"\n',
        '\n[healthcheck]\npath = "/health"\n',
        "\n[listen]\nport = 8081\n",
    ],
)
def test_config_hash_changes_with_the_config(extra: str) -> None:
    assert config_hash(parse_config(MINIMAL + extra)) != config_hash(parse_config(MINIMAL))


# -- load_config -----------------------------------------------------------------------


def test_load_config_reads_slipway_toml(tmp_path: Path) -> None:
    (tmp_path / CONFIG_FILE).write_text(MINIMAL, encoding="utf-8")
    assert load_config(tmp_path).name == "shop"


def test_load_config_errors_name_the_file_path(tmp_path: Path) -> None:
    (tmp_path / CONFIG_FILE).write_text("bogus = 1\n" + MINIMAL, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    assert info.value.where == f"{tmp_path / CONFIG_FILE}:1: bogus"


def test_load_config_without_slipway_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    err = info.value
    assert err.message == "no slipway.toml in this folder"
    assert err.where == str(tmp_path)
    assert err.fix is not None and "slipway init" in err.fix


def test_load_config_on_missing_folder(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(ConfigError) as info:
        load_config(missing)
    err = info.value
    assert err.message == "the app folder does not exist"
    assert err.where == str(missing)
    assert err.fix is not None and "--app" in err.fix


# -- template --------------------------------------------------------------------------


def test_rendered_template_is_a_valid_config() -> None:
    text = render_template("shop", "python app.py --port $PORT", "pip install -r requirements.txt")
    cfg = parse_config(text)
    assert isinstance(cfg, AppConfig)
    assert cfg.name == "shop"
    assert cfg.listen.port == 8080
    assert cfg.processes == {"web": "python app.py --port $PORT"}
    assert cfg.build.command == "pip install -r requirements.txt"
    assert cfg.build.timeout == 600.0
    assert cfg.scale == {"web": 1}
    assert cfg.deploy.keep_warm == 300.0
    assert cfg.warnings() == []


def test_rendered_template_uses_the_given_port_and_empty_build() -> None:
    cfg = parse_config(render_template("api", "python main.py --port $PORT", "", port=9000))
    assert cfg.listen.port == 9000
    assert cfg.build.command == ""


# -- [[alerts]], [alerting] and [logs] -------------------------------------------------

ALERTS = """
[[alerts]]
name = "errors"
metric = "error_rate"
above = 0.02
window = "2m"
for = "5m"
severity = "critical"

[[alerts]]
name = "latency p99"
metric = "latency"
quantile = 0.95
above = 800

[alerting]
defaults = true

[[alerting.notify]]
type = "slack"
url = "https://hooks.slack.com/services/T000/B000/XXXX"
severities = ["critical"]

[[alerting.notify]]
type = "email"
from = "slipway@example.com"
to = ["ops@example.com"]
username = "alerts"
password_env = "SMTP_PASSWORD"
timeout = "10s"

[logs]
max_size = "5MB"
keep = 2
max_age = "1d"
"""


def test_alerts_notifiers_and_logs_parse_with_units_and_aliases() -> None:
    cfg = parse_config(MINIMAL + ALERTS)
    errors, latency = cfg.alerts
    assert (errors.name, errors.metric, errors.above, errors.below) == (
        "errors",
        "error_rate",
        0.02,
        None,
    )
    assert (errors.window, errors.for_, errors.severity) == (120.0, 300.0, "critical")
    assert (latency.quantile, latency.window, latency.for_, latency.severity) == (
        0.95,
        60.0,
        0.0,
        "warning",
    )
    slack, email = cfg.alerting.notify
    assert slack.severities == ["critical"] and slack.send_resolved
    assert (email.from_, email.to, email.timeout) == (
        "slipway@example.com",
        ["ops@example.com"],
        10.0,
    )
    assert (email.smtp_host, email.smtp_port) == ("127.0.0.1", 25)
    assert (cfg.logs.max_size, cfg.logs.keep, cfg.logs.max_age) == (5 * 1024**2, 2, 86400.0)
    # a release stores its config as JSON: it must read back the same
    assert AppConfig.model_validate_json(cfg.model_dump_json()) == cfg


def test_logs_defaults() -> None:
    logs = parse_config(MINIMAL).logs
    assert (logs.max_size, logs.keep, logs.max_age) == (10 * 1024**2, 3, 7 * 86400.0)


def test_effective_rules_replace_defaults_by_name_or_drop_them() -> None:
    from slipway.config.alerts import DEFAULT_RULES, effective_rules

    default_names = [r.name for r in DEFAULT_RULES]
    assert default_names == [
        "error rate",
        "latency p99",
        "instances down",
        "host down",
        "restart loop",
        "disk free",
        "logs dropped",
        "control replica behind",
        "fleet full",
        "database backup failing",
    ]
    plain = parse_config(MINIMAL)
    assert effective_rules(plain.alerts, plain.alerting) == list(DEFAULT_RULES)

    cfg = parse_config(MINIMAL + ALERTS)
    rules = effective_rules(cfg.alerts, cfg.alerting)
    names = [r.name for r in rules]
    assert sorted(names) == sorted({*default_names, "errors"})
    assert len(names) == len(set(names))
    [latency] = [r for r in rules if r.name == "latency p99"]
    assert (latency.above, latency.quantile) == (800, 0.95)  # the app's, not the default

    off = parse_config(MINIMAL + ALERTS.replace("defaults = true", "defaults = false"))
    assert [r.name for r in effective_rules(off.alerts, off.alerting)] == [
        "errors",
        "latency p99",
    ]


def test_default_rules_are_what_the_docs_promise() -> None:
    from slipway.config.alerts import DEFAULT_RULES

    rules = {r.name: r for r in DEFAULT_RULES}
    error_rate = rules["error rate"]
    assert (error_rate.above, error_rate.window, error_rate.for_, error_rate.severity) == (
        0.05,
        60.0,
        60.0,
        "critical",
    )
    assert (rules["latency p99"].above, rules["latency p99"].quantile) == (2000, 0.99)
    assert (rules["instances down"].above, rules["instances down"].for_) == (0, 30.0)
    assert (rules["restart loop"].above, rules["restart loop"].window) == (3, 300.0)
    assert (rules["disk free"].below, rules["disk free"].above) == (0.1, None)


def alert_error(entry: str) -> tuple[str, ConfigError]:
    text = MINIMAL + '\n[[alerts]]\nname = "errors"\n' + entry
    return text, config_error(text)


@pytest.mark.parametrize("thresholds", ["", "above = 0.1\nbelow = 0.01\n"])
def test_alert_needs_exactly_one_threshold_and_says_in_what_unit(thresholds: str) -> None:
    text, err = alert_error('metric = "error_rate"\n' + thresholds)
    assert err.where == f"{CONFIG_FILE}:{line_of(text, '[[alerts]]')}: alerts.0"
    assert "alert 'errors' needs exactly one of `above` or `below`" in err.message
    assert "a fraction of requests, e.g. 0.05 for 5%" in err.message


def test_alert_with_unknown_metric_lists_the_metrics() -> None:
    _, err = alert_error('metric = "errors"\nabove = 1\n')
    assert err.where is not None and err.where.endswith(": alerts.0.metric")
    for metric in ("error_rate", "latency", "request_rate", "instances_down", "restarts"):
        assert metric in err.message


@pytest.mark.parametrize(
    ("entry", "key", "message"),
    [
        ('window = "soon"\n', "alerts.0.window", 'invalid duration "soon"'),
        ('for = "a while"\n', "alerts.0.for", 'invalid duration "a while"'),
        ('window = "500ms"\n', "alerts.0.window", "must be at least 1s"),
        ("quantile = 1\n", "alerts.0.quantile", "less than 1"),
        ('severity = "page"\n', "alerts.0.severity", "'critical', 'warning' or 'info'"),
    ],
)
def test_bad_alert_values_name_the_key_and_the_fix(entry: str, key: str, message: str) -> None:
    _, err = alert_error('metric = "error_rate"\nabove = 0.1\n' + entry)
    assert err.where is not None and err.where.endswith(f": {key}"), err.where
    assert message in err.message
    assert err.fix


def test_bad_alert_duration_says_how_to_write_one() -> None:
    _, err = alert_error('metric = "error_rate"\nabove = 0.1\nwindow = "1 minute"\n')
    assert '"10s"' in err.message and '"5m"' in err.message


def test_alert_names_must_be_unique() -> None:
    rule = '\n[[alerts]]\nname = "errors"\nmetric = "error_rate"\nabove = 0.1\n'
    err = config_error(MINIMAL + rule + rule)
    assert err.where is not None and err.where.endswith(": alerts")
    assert "alert names must be unique; given twice: errors" in err.message


def test_unknown_key_in_an_alert_is_named() -> None:
    text, err = alert_error('metric = "error_rate"\nabove = 0.1\nsevrity = "critical"\n')
    assert err.where is not None and err.where.endswith(": alerts.0.sevrity")
    assert "unknown key 'sevrity'" in err.message
    assert err.fix is not None and "spelling" in err.fix


@pytest.mark.parametrize(
    ("extra", "valid"),
    [
        (
            '\n[[alerts]]\nname = "e"\nmetric = "error_rate"\nabove = 0.1\nsevrity = "x"\n',
            "above, below, for, metric, name, quantile, severity, window",
        ),
        ('\n[[alerting.notify]]\ntype = "webhook"\nurl = "http://x"\nuri = "x"\n', "url"),
    ],
    ids=["alerts", "alerting.notify"],
)
def test_unknown_key_in_an_array_of_tables_lists_its_valid_keys(extra: str, valid: str) -> None:
    err = config_error(MINIMAL + extra)
    assert err.fix is not None and "valid keys here" in err.fix and valid in err.fix


@pytest.mark.parametrize(
    ("second", "key"),
    [
        ('[[alerts]]\nname = "b"\nmetric = "latency"\n', "alerts.1"),
        ('[[alerts]]\nname = "b"\nmetric = "latency"\nabove = 1\nfor = "x"\n', "alerts.1.for"),
    ],
    ids=["entry", "key"],
)
def test_an_error_in_the_second_alert_points_into_the_second_alert(second: str, key: str) -> None:
    first = '\n[[alerts]]\nname = "a"\nmetric = "error_rate"\nabove = 0.1\n\n'
    text = MINIMAL + first + second
    err = config_error(text)
    assert err.where is not None and err.where.endswith(f": {key}")
    line = int(err.where.split(":")[1])
    assert line >= line_of(text, 'name = "b"') - 1  # the second [[alerts]] or below


def notifier_error(entry: str, index: int = 0) -> ConfigError:
    before = '\n[[alerting.notify]]\ntype = "webhook"\nurl = "http://10.0.0.9:9000/"\n' * index
    return config_error(MINIMAL + before + "\n[[alerting.notify]]\n" + entry)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ('type = "webhook"\n', 'a webhook notifier needs `url = "http(s)://host…"`'),
        (
            'type = "slack"\nurl = "hooks.slack.com/x"\n',
            'a slack notifier needs `url = "http(s)://',
        ),
        ('type = "alertmanager"\nurl = "ftp://am:9093"\n', 'alertmanager notifier needs `url = "'),
        ('type = "email"\nto = ["ops@example.com"]\n', "an email notifier needs `from` and `to"),
        ('type = "email"\nfrom = "s@example.com"\n', "an email notifier needs `from` and `to"),
        (
            'type = "email"\nfrom = "s@example.com"\nto = ["o@example.com"]\nurl = "http://x"\n',
            "takes smtp_host/smtp_port, not `url`",
        ),
        (
            'type = "webhook"\nurl = "http://x"\npassword_env = "MY-PASSWORD"\n',
            'password_env "MY-PASSWORD" is not a variable name',
        ),
    ],
)
def test_incomplete_notifiers_say_what_they_need(entry: str, message: str) -> None:
    err = notifier_error(entry, index=1)
    assert err.where is not None and err.where.endswith(": alerting.notify.1"), err.where
    assert message in err.message


@pytest.mark.parametrize(
    ("entry", "key"),
    [
        ('type = "pagerduty"\nurl = "http://x"\n', "alerting.notify.0.type"),
        ('type = "webhook"\nurl = "http://x"\nsmtp_port = 0\n', "alerting.notify.0.smtp_port"),
        (
            'type = "webhook"\nurl = "http://x"\nseverities = ["page"]\n',
            "alerting.notify.0.severities.0",
        ),
        ('type = "webhook"\nurl = "http://x"\ntimeout = "never"\n', "alerting.notify.0.timeout"),
    ],
)
def test_bad_notifier_values_name_their_key(entry: str, key: str) -> None:
    err = notifier_error(entry)
    assert err.where is not None and err.where.endswith(f": {key}"), err.where


def test_bad_notifier_timeout_gets_the_duration_fix() -> None:
    err = notifier_error('type = "webhook"\nurl = "http://x"\ntimeout = "never"\n')
    assert err.fix is not None and '"10s"' in err.fix


@pytest.mark.parametrize("url", ["http://", "https://", "http://[::1"])
def test_a_notifier_url_must_name_a_host(url: str) -> None:
    err = notifier_error(f'type = "webhook"\nurl = "{url}"\n')
    assert err.where is not None and err.where.endswith(": alerting.notify.0")


def test_unknown_key_in_alerting_lists_its_keys() -> None:
    err = config_error(MINIMAL + "\n[alerting]\ndefualts = false\n")
    assert err.where is not None and err.where.endswith(": alerting.defualts")
    assert err.fix is not None and "valid keys here: defaults, notify" in err.fix


@pytest.mark.parametrize(
    ("entry", "key", "message"),
    [
        ('max_size = "10 parsecs"', "logs.max_size", 'invalid size "10 parsecs"'),
        ('max_size = "1KB"', "logs.max_size", "greater than or equal to 65536"),
        ("max_size = -1", "logs.max_size", "invalid size"),
        ("keep = -1", "logs.keep", "greater than or equal to 0"),
        ("keep = 101", "logs.keep", "less than or equal to 100"),
        ('max_age = "forever"', "logs.max_age", 'invalid duration "forever"'),
        ('max_sise = "1MB"', "logs.max_sise", "unknown key 'max_sise'"),
    ],
)
def test_bad_logs_values_name_key_and_line(entry: str, key: str, message: str) -> None:
    text = MINIMAL + f"\n[logs]\n{entry}\n"
    err = config_error(text)
    assert err.where == f"{CONFIG_FILE}:{line_of(text, entry)}: {key}"
    assert message in err.message


def test_bad_size_says_how_to_write_one() -> None:
    err = config_error(MINIMAL + '\n[logs]\nmax_size = "big"\n')
    assert '"10MB"' in err.message and '"512KB"' in err.message


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1048576, 1048576),
        (0, 0),
        ("65536", 65536),
        ("512KB", 512 * 1024),
        ("512k", 512 * 1024),
        ("10MB", 10 * 1024**2),
        ("10mb", 10 * 1024**2),
        (" 10 MB ", 10 * 1024**2),
        ("1.5GB", int(1.5 * 1024**3)),
        ("2g", 2 * 1024**3),
        ("100b", 100),
    ],
)
def test_parse_size_reads_bytes_and_units(value: object, expected: int) -> None:
    from slipway.config.durations import parse_size

    assert parse_size(value) == expected


@pytest.mark.parametrize("value", [-1, True, 1.5, "", "MB", "10 MiB", "10TB", "ten MB", None])
def test_parse_size_rejects_other_values(value: object) -> None:
    from slipway.config.durations import parse_size

    with pytest.raises(ValueError, match="invalid size"):
        parse_size(value)
