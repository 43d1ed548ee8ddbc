"""shell_command: simple commands replace the shell so signals reach the app itself."""

from __future__ import annotations

import pytest

from slipway.runtime.shim import shell_command


@pytest.mark.parametrize(
    "command",
    [
        "python app.py --port $PORT",
        "gunicorn app:app -b 127.0.0.1:$PORT",
        "./bin/server",
        "python app.py --opt=1",  # '=' outside the first word is an argument
        "python app.py > out.log",
        "python app.py # comment",
    ],
)
def test_simple_commands_get_exec(command: str) -> None:
    assert shell_command(command) == "exec " + command


@pytest.mark.parametrize(
    "command",
    [
        "python migrate.py; python app.py",
        "python migrate.py && python app.py",
        "python app.py &",
        "python app.py | tee log",
        "python app.py || true",
        "(cd src && python app.py)",
        "python app.py --port $(cat port)",
        "python app.py --port `cat port`",
        "python migrate.py\npython app.py",
        "FOO=bar python app.py",
        "PYTHONUNBUFFERED=1 python app.py",
    ],
)
def test_compound_commands_and_env_prefixes_are_left_alone(command: str) -> None:
    assert shell_command(command) == command


def test_command_that_already_execs_is_not_prefixed_again() -> None:
    assert not shell_command("exec gunicorn app:app").startswith("exec exec")
