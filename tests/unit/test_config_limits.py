"""slipway.toml values that would pass the config check and then fail later (at start, in a
timer, in a build) are refused when the config is loaded, with the key path and a fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from slipway.config.load import load_config, parse_config
from slipway.errors import ConfigError
from tests.unit.test_config import MINIMAL, config_error, line_of

# -- encoding ----------------------------------------------------------------------------


def test_a_non_utf8_config_file_names_the_file_the_byte_offset_and_the_fix(
    tmp_path: Path,
) -> None:
    text = MINIMAL + '\n[env]\nGREETING = "caf\xe9"\n'
    (tmp_path / "slipway.toml").write_bytes(text.encode("latin-1"))
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    error = info.value
    offset = text.encode("latin-1").index(b"\xe9")
    assert f"byte offset {offset}" in error.message and "0xe9" in error.message
    assert error.where == f"{tmp_path / 'slipway.toml'}:{line_of(text, 'GREETING')}"
    assert error.fix is not None and "UTF-8" in error.fix


def test_non_utf8_text_from_git_show_is_reported_as_bytes_not_a_crash() -> None:
    # build.git() decodes with surrogateescape: the bad byte arrives as a lone surrogate
    raw = (MINIMAL + '\n[env]\nGREETING = "caf\xe9"\n').encode("latin-1")
    error = config_error(raw.decode("utf-8", "surrogateescape"), "slipway.toml at HEAD")
    offset = raw.index(b"\xe9")
    assert "not valid UTF-8" in error.message and f"byte offset {offset}" in error.message
    assert error.where is not None and error.where.startswith("slipway.toml at HEAD:")


# -- [env] -------------------------------------------------------------------------------


def env_error(entries: str) -> ConfigError:
    return config_error(MINIMAL + "\n[env]\n" + entries)


def test_a_nul_in_an_env_value_is_refused_at_its_key() -> None:
    entries = 'OK = "fine"\nBAD = "a\\u0000b"\n'
    error = env_error(entries)
    line = line_of(MINIMAL + "\n[env]\n" + entries, "BAD")
    assert error.where is not None and error.where.endswith(f":{line}: env.BAD"), error.where
    assert "NUL character" in error.message


def test_an_env_value_over_linux_s_per_string_limit_is_refused_at_its_key() -> None:
    error = env_error(f'BIG = "{"x" * 131_072}"\n')
    assert error.where is not None and error.where.endswith(": env.BIG"), error.where
    assert "131072 bytes" in error.message and "file the app reads" in error.message


def test_an_env_string_just_over_the_limit_with_its_name_is_refused() -> None:
    # "AB=" + value + NUL: 131,073 bytes, one over MAX_ARG_STRLEN; the value alone fits
    error = env_error(f'AB = "{"x" * 131_069}"\n')
    assert '"AB" with its value: 131073 bytes is too long' in error.message
    assert parse_config(MINIMAL + f'\n[env]\nAB = "{"x" * 131_068}"\n').env["AB"]


def test_the_whole_env_is_bounded() -> None:
    entries = "".join(f'V{i} = "{"x" * 100_000}"\n' for i in range(11))
    error = env_error(entries)
    assert "[env] holds" in error.message and "at most 1048576" in error.message


@pytest.mark.parametrize("name", ["1ABC", "A-B", "A" * 256, "É"])
def test_env_names_must_be_valid_variable_names(name: str) -> None:
    error = env_error(f'"{name}" = "x"\n')
    assert "not a valid environment variable name" in error.message


def test_a_nul_in_a_process_command_is_refused() -> None:
    error = config_error('name = "shop"\n[processes]\nweb = "python app.py\\u0000"\n')
    assert "NUL character" in error.message and error.where is not None
    assert error.where.endswith(": processes")


# -- durations, sizes, counts ------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "key", "message"),
    [
        (
            '[[gates.test]]\nname = "unit"\ncommand = "pytest"\ntimeout = 0\n',
            "gates.test.0.timeout",
            "must be more than 0s",
        ),
        (
            '[[gates.test]]\nname = "unit"\ncommand = "pytest"\ntimeout = "2d"\n',
            "gates.test.0.timeout",
            "at most 24h",
        ),
        ('[build]\ntimeout = "0s"\n', "build.timeout", "must be more than 0s"),
        ("[build]\nmax_file_size = 0\n", "build.max_file_size", "greater than or equal to 1"),
        ('[build]\nmax_file_size = "9999GB"\n', "build.max_file_size", "at most 1024GB"),
        ("[deploy]\nhealth_timeout = 0\n", "deploy.health_timeout", "more than 0s"),
        ("[deploy]\nstep_timeout = 0\n", "deploy.step_timeout", "more than 0s"),
        ('[deploy]\nkeep_warm = "40d"\n', "deploy.keep_warm", "at most 30d"),
        ("[deploy]\nstop_grace = 1e300\n", "deploy.stop_grace", "at most"),
        ("[deploy]\nstep_min_requests = 1000000000000\n", "deploy.step_min_requests", "less"),
        ('[healthcheck]\ninterval = "2h"\n', "healthcheck.interval", "at most 60m"),
        ('[logs]\nmax_age = "1s"\n', "logs.max_age", "at least 60s"),
        ("[gates.secrets]\ntimeout = 0\n", "gates.secrets.timeout", "more than 0s"),
        ("[gates.code]\ntimeout = 0\n", "gates.code.timeout", "more than 0s"),
        ("[gates.dependencies]\ntimeout = 0\n", "gates.dependencies.timeout", "more than 0s"),
        ("[gates.dependencies]\nmax_age = 0\n", "gates.dependencies.max_age", "more than 0s"),
        ("[gates.performance]\ntimeout = 0\n", "gates.performance.timeout", "more than 0s"),
        ("[gates.performance]\nwarmup = 100000000\n", "gates.performance.warmup", "less"),
        ('[[alerts]]\nname = "x"\nmetric = "latency"\nabove = nan\n', "alerts.0.above", "finite"),
        (
            '[[alerts]]\nname = "x"\nmetric = "latency"\nabove = 1\nfor = "2d"\n',
            "alerts.0.for",
            "at most 24h",
        ),
        (
            '[[alerting.notify]]\ntype = "webhook"\nurl = "http://hooks.example"\ntimeout = 0\n',
            "alerting.notify.0.timeout",
            "more than 0s",
        ),
        (
            '[analysis]\nprometheus_url = "http://prom.example.com"\n'
            '[[analysis.prometheus]]\nname = "p"\nquery = "up"\nthreshold = 1\n'
            'direction = "below"\nevery = 0\n',
            "analysis.prometheus.0.every",
            "at least 1s",
        ),
    ],
)
def test_zero_negative_and_absurd_values_are_refused_at_their_key(
    entry: str, key: str, message: str
) -> None:
    error = config_error(MINIMAL + "\n" + entry)
    assert error.where is not None and error.where.endswith(f": {key}"), error.where
    assert message in error.message, error.message


def test_sane_values_at_the_bounds_are_accepted() -> None:
    cfg = parse_config(
        MINIMAL + '\n[build]\ntimeout = "24h"\nmax_file_size = "2GB"\n'
        "[deploy]\ndrain_timeout = 0\nstop_grace = 0\nkeep_warm = 0\n"
        '[[gates.test]]\nname = "unit"\ncommand = "pytest"\ntimeout = "100ms"\n'
    )
    assert cfg.build.timeout == 86400 and cfg.build.max_file_size == 2 * 1024**3
    assert (cfg.deploy.drain_timeout, cfg.deploy.stop_grace, cfg.deploy.keep_warm) == (0, 0, 0)
    assert cfg.gates.test[0].timeout == 0.1
    assert parse_config(MINIMAL).build.max_file_size == 1024**3


# -- alert notifiers ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://[fe80::1]/hook", "link-local"),
        ("http://127.0.0.1:9093", "loopback"),
        ("http://127.1/hook", "loopback"),
        ("http://2130706433/hook", "loopback"),
        ("http://[::1]:8080/", "loopback"),
        ("http://[::ffff:169.254.169.254]/", "link-local"),
        ("https://localhost/hook", "loopback"),
        ("http://0.0.0.0:9093", "unspecified"),
    ],
)
def test_a_notifier_url_on_loopback_or_link_local_is_refused_without_opt_in(
    url: str, kind: str
) -> None:
    entry = f'\n[[alerting.notify]]\ntype = "webhook"\nurl = "{url}?token=SECRET"\n'
    error = config_error(MINIMAL + entry)
    assert f"a {kind} address" in error.message or f"an {kind} address" in error.message
    assert "allow_loopback_and_link_local = true" in error.message
    assert "SECRET" not in error.message, "the URL's query may hold a token"
    assert error.where is not None and error.where.endswith(": alerting.notify.0")
    allowed = parse_config(MINIMAL + entry + "allow_loopback_and_link_local = true\n")
    assert allowed.alerting.notify[0].url == f"{url}?token=SECRET"


@pytest.mark.parametrize(
    "url", ["https://hooks.slack.com/services/T/B/x", "http://10.0.0.5:9093", "http://am.lan"]
)
def test_other_notifier_urls_need_no_opt_in(url: str) -> None:
    entry = f'\n[[alerting.notify]]\ntype = "alertmanager"\nurl = "{url}"\n'
    assert parse_config(MINIMAL + entry).alerting.notify[0].url == url
