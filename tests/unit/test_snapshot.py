"""A release's snapshot of the app's files (a folder or a git revision), on a real file system
and a real git: sparse files stay sparse, big files and links out of the tree are refused by
name, and a failed snapshot leaves no folder behind."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from slipway.errors import BuildError, ConfigError
from slipway.releases.build import snapshot_dir, snapshot_git

CONFIG = 'name = "shop"\n[processes]\nweb = "python app.py --port $PORT"\n'
GiB = 1024**3


def app_folder(tmp_path: Path, extra: str = "") -> Path:
    source = tmp_path / "app"
    source.mkdir()
    (source / "slipway.toml").write_text(CONFIG + extra)
    (source / "app.py").write_text("print('hi')\n")
    return source


def sparse(path: Path, size: int, *writes: tuple[int, bytes]) -> None:
    with open(path, "wb") as handle:
        for offset, data in writes:
            handle.seek(offset)
            handle.write(data)
        handle.truncate(size)


def allocated(path: Path) -> int:
    return os.stat(path).st_blocks * 512


def commit_all(repo: Path) -> None:
    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)

    git("init", "-q")
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "app")


# -- folder ------------------------------------------------------------------------------


def test_a_sparse_file_stays_sparse_with_the_same_content(tmp_path: Path) -> None:
    source = app_folder(tmp_path, '[build]\nmax_file_size = "2GB"\n')
    big = source / "data.bin"
    sparse(big, GiB, (0, b"head"), (GiB // 2, b"middle"), (GiB - 4, b"tail"))
    assert allocated(big) < 1024 * 1024, "the test needs a file system with holes"
    dest = tmp_path / "release"
    seconds = snapshot_dir(source, dest)
    copy = dest / "data.bin"
    assert os.stat(copy).st_size == GiB
    assert allocated(copy) < 1024 * 1024, f"{allocated(copy)} bytes allocated for a sparse file"
    with open(copy, "rb") as handle:
        assert handle.read(4) == b"head"
        handle.seek(GiB // 2)
        assert handle.read(6) == b"middle"
        handle.seek(GiB // 4)
        assert handle.read(16) == bytes(16)  # a hole reads as zeros
        handle.seek(GiB - 4)
        assert handle.read() == b"tail"
    assert (dest / "app.py").read_text() == "print('hi')\n"
    assert os.stat(copy).st_mtime == os.stat(big).st_mtime, "metadata is kept"
    assert seconds > 0


def test_a_file_over_max_file_size_is_refused_by_name_and_nothing_is_left(
    tmp_path: Path,
) -> None:
    source = app_folder(tmp_path, '[build]\nmax_file_size = "1MB"\n')
    (source / "assets").mkdir()
    sparse(source / "assets" / "model.bin", 2 * 1024 * 1024, (0, b"x"))
    dest = tmp_path / "release"
    with pytest.raises(BuildError) as info:
        snapshot_dir(source, dest)
    assert "assets/model.bin is 2097152 bytes, over [build] max_file_size (1048576)" in str(
        info.value
    )
    assert info.value.fix is not None and ".slipwayignore" in info.value.fix
    assert not dest.exists(), "a failed snapshot left a partial release folder"
    # ignored, it is no problem
    (source / ".slipwayignore").write_text("assets/model.bin\n")
    snapshot_dir(source, dest)
    assert not (dest / "assets" / "model.bin").exists()


def test_the_default_limit_refuses_a_file_over_1gib(tmp_path: Path) -> None:
    source = app_folder(tmp_path)
    sparse(source / "huge.img", GiB + 1, (0, b"x"))
    with pytest.raises(BuildError, match=r"huge.img is 1073741825 bytes"):
        snapshot_dir(source, tmp_path / "release")


@pytest.mark.parametrize(
    ("link", "target", "kind"),
    [
        ("etc", "/etc", "an absolute path"),
        ("secret", "../../outside.txt", "a path outside the app folder"),
        ("lib/deep/esc", "up/../outside.txt", "a path outside the app folder"),  # via a link
    ],
)
def test_a_link_out_of_the_folder_is_refused_by_name(
    tmp_path: Path, link: str, target: str, kind: str
) -> None:
    source = app_folder(tmp_path)
    (tmp_path / "outside.txt").write_text("not the app's")
    (source / "lib" / "deep").mkdir(parents=True)
    (source / "lib" / "deep" / "up").symlink_to("../..")  # the app folder itself: fine
    (source / link).symlink_to(target)
    dest = tmp_path / "release"
    with pytest.raises(BuildError) as info:
        snapshot_dir(source, dest)
    assert f"the symbolic link {link} points to {kind} ({target})" in str(info.value)
    assert info.value.where == link
    assert not dest.exists()


def test_links_inside_the_folder_are_copied_as_links(tmp_path: Path) -> None:
    source = app_folder(tmp_path)
    (source / "static").mkdir()
    (source / "static" / "a.css").write_text("a{}")
    (source / "current.css").symlink_to("static/a.css")
    (source / "assets").symlink_to("static")
    (source / "dangling").symlink_to("not-built-yet")
    dest = tmp_path / "release"
    snapshot_dir(source, dest)
    assert os.readlink(dest / "current.css") == "static/a.css"
    assert os.readlink(dest / "assets") == "static"
    assert os.readlink(dest / "dangling") == "not-built-yet"


def test_a_fifo_is_refused_by_name_not_opened(tmp_path: Path) -> None:
    source = app_folder(tmp_path)
    os.mkfifo(source / "pipe")
    with pytest.raises(BuildError, match="pipe is not a regular file"):
        snapshot_dir(source, tmp_path / "release")
    assert not (tmp_path / "release").exists()


# -- git ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "kind"),
    [("/etc/passwd", "an absolute path"), ("../../outside", "a path outside the app folder")],
)
def test_a_git_tree_with_a_link_out_of_it_is_refused_by_name(
    tmp_path: Path, target: str, kind: str
) -> None:
    source = app_folder(tmp_path)
    (source / "conf").mkdir()
    (source / "conf" / "link").symlink_to(target)
    commit_all(source)
    dest = tmp_path / "releases" / "r1"
    with pytest.raises(BuildError) as info:
        snapshot_git(source, "HEAD", dest)
    assert f"the symbolic link conf/link points to {kind} ({target})" in str(info.value)
    assert info.value.fix is not None and "relative link inside" in info.value.fix
    assert not dest.exists(), "a failed snapshot left a partial release folder"


def test_a_git_file_over_max_file_size_is_refused_before_it_is_written(tmp_path: Path) -> None:
    source = app_folder(tmp_path, '[build]\nmax_file_size = "64KB"\n')
    (source / "blob.bin").write_bytes(os.urandom(100 * 1024))
    commit_all(source)
    dest = tmp_path / "releases" / "r1"
    with pytest.raises(BuildError, match=r"blob.bin is 102400 bytes, over \[build\]"):
        snapshot_git(source, "HEAD", dest)
    assert not dest.exists()


def test_a_git_snapshot_extracts_the_tree_and_says_how_long_it_took(tmp_path: Path) -> None:
    source = app_folder(tmp_path)
    (source / "lib").mkdir()
    (source / "lib" / "link").symlink_to("../app.py")
    commit_all(source)
    (source / "app.py").write_text("changed after the commit\n")
    dest = tmp_path / "releases" / "r1"
    seconds = snapshot_git(source, "HEAD", dest)
    assert (dest / "app.py").read_text() == "print('hi')\n"
    assert os.readlink(dest / "lib" / "link") == "../app.py"
    assert seconds > 0


def test_a_non_utf8_config_at_a_revision_is_a_config_error(tmp_path: Path) -> None:
    source = app_folder(tmp_path)
    (source / "slipway.toml").write_bytes((CONFIG + '[env]\nA = "\xe9"\n').encode("latin-1"))
    commit_all(source)
    with pytest.raises(ConfigError, match="not valid UTF-8: byte offset"):
        snapshot_git(source, "HEAD", tmp_path / "r1")
    assert not (tmp_path / "r1").exists()
