"""Virtualenvs reused across releases (releases/venvs.py): the key follows exactly the build's
inputs, a release with the same inputs gets the earlier virtualenv without a build, one with
other inputs gets a new one, a half-built one is built again, and unused ones are pruned."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from slipway.config.load import parse_config
from slipway.config.schema import AppConfig
from slipway.releases import venvs
from slipway.releases.build import build

BASE = 'name = "a"\n[processes]\nweb = "python app.py $PORT"\n'
WITH_COMMAND = BASE + '[build]\ncommand = "echo built >> build-ran.txt"\n'


def release(app_dir: Path, name: str, requirements: str = "flask==3.0\n") -> Path:
    folder = app_dir / "releases" / name
    folder.mkdir(parents=True)
    (folder / "app.py").write_text(f"print({name!r})\n")  # code differs in every release
    (folder / "requirements.txt").write_text(requirements)
    return folder


def config(text: str = WITH_COMMAND) -> AppConfig:
    return parse_config(text)


def test_the_key_follows_the_builds_inputs_and_nothing_else(tmp_path: Path) -> None:
    one, two = release(tmp_path, "r1"), release(tmp_path, "r2")
    assert venvs.key(one, config()) == venvs.key(two, config())  # only app.py differs
    (two / "requirements.txt").write_text("flask==3.1\n")
    assert venvs.key(one, config()) != venvs.key(two, config())
    other_command = WITH_COMMAND.replace("echo built", "echo other")
    assert venvs.key(one, config()) != venvs.key(one, config(other_command))
    with_env = WITH_COMMAND + '[env]\nPIP_INDEX_URL = "http://mirror"\n'
    assert venvs.key(one, config()) != venvs.key(one, config(with_env))
    greeting = WITH_COMMAND + '[env]\nGREETING = "hi"\n'  # not the build's business
    assert venvs.key(one, config()) == venvs.key(one, config(greeting))
    named = greeting.replace("echo built", "echo $GREETING")
    assert venvs.key(one, config(named)) != venvs.key(one, config(named.replace('"hi"', '"yo"')))
    (one / "assets").mkdir()
    (one / "assets" / "site.css").write_text("a{}")
    declared = WITH_COMMAND + 'inputs = ["assets/*"]\n'
    before = venvs.key(one, config(declared))
    (one / "assets" / "site.css").write_text("b{}")
    assert venvs.key(one, config(declared)) != before
    assert venvs.key(one, config(WITH_COMMAND + "reuse = false\n")) is None


def built(folder: Path, text: str = WITH_COMMAND) -> str:
    log = folder.parent.parent / "logs" / f"{folder.name}.log"
    asyncio.run(build(folder, config(text), log, folder.name))
    return log.read_text()


def test_a_release_with_the_same_inputs_gets_the_earlier_virtualenv_without_a_build(
    tmp_path: Path,
) -> None:
    first = release(tmp_path, "r1")
    assert "$ echo built" in built(first)
    second = release(tmp_path, "r2")
    said = built(second)
    assert "reusing the virtualenv" in said and "$ virtualenv" not in said
    assert os.path.realpath(first / ".venv") == os.path.realpath(second / ".venv")
    assert (second / ".venv" / "bin" / "python").exists()
    third = release(tmp_path, "r3", requirements="flask==3.1\n")
    assert "$ virtualenv" in built(third)
    assert os.path.realpath(third / ".venv") != os.path.realpath(first / ".venv")
    assert (third / "build-ran.txt").exists() and not (second / "build-ran.txt").exists()


def test_a_half_built_virtualenv_is_built_again(tmp_path: Path) -> None:
    first = release(tmp_path, "r1")
    venv_key = venvs.key(first, config())
    assert venv_key is not None
    half = venvs.folder(tmp_path, venv_key)
    (half / "bin").mkdir(parents=True)  # a build killed midway: never marked complete
    assert "$ virtualenv" in built(first)
    assert venvs.complete(half) and (half / "bin" / "python").exists()


def test_unlinked_virtualenvs_are_pruned_and_linked_ones_kept(tmp_path: Path) -> None:
    first = release(tmp_path, "r1")
    built(first)
    second = release(tmp_path, "r2", requirements="other\n")
    built(second)
    kept = Path(os.path.realpath(second / ".venv")).name
    (first / ".venv").unlink()  # r1 deleted
    removed = venvs.prune(tmp_path)
    assert len(removed) == 1 and kept not in removed
    assert sorted(p.name for p in (tmp_path / "venvs").iterdir()) == [kept]


def test_an_editable_install_of_the_release_is_never_given_to_another(tmp_path: Path) -> None:
    editable = BASE + (  # what `pip install -e .` leaves: a .pth naming the folder
        '[build]\ncommand = \'echo "$PWD" > '
        '"$VIRTUAL_ENV"/lib/python3.11/site-packages/__editable__.app.pth\'\n'
    )
    first = release(tmp_path, "r1")
    assert "not reused" in built(first, editable)
    second = release(tmp_path, "r2")
    assert "$ virtualenv" in built(second, editable)  # built anew, for its own folder
