"""Issue 23: runtime folders only the game's uid owns; nothing someone else prepared is used."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from ipc.settings import RuntimePaths, UnsafeFolder, check_private_dirs, make_private_dirs

NOBODY = 65534


def paths_in(tmp_path: Path, fallback: bool = True) -> RuntimePaths:
    state = tmp_path / "game" / ".hearth"
    state.parent.mkdir()
    sockets = tmp_path / "run" / f"hearth-{os.getuid()}" / "0123abcd" if fallback else state
    (tmp_path / "run").mkdir(mode=0o1777)
    return RuntimePaths(state=state, sockets=sockets)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_every_level_is_made_0700_and_made_again_without_complaint(tmp_path: Path) -> None:
    paths = paths_in(tmp_path)
    old = os.umask(0)  # a permissive umask must not widen them
    try:
        make_private_dirs(paths)
        make_private_dirs(paths)
    finally:
        os.umask(old)
    for folder in (paths.state, paths.logs, paths.keys, paths.sockets.parent, paths.sockets):
        assert mode(folder) == 0o700, folder
    check_private_dirs(paths)


@pytest.mark.parametrize("level", ["parent", "sockets", "state", "logs"])
def test_a_folder_of_another_user_is_refused(tmp_path: Path, level: str) -> None:
    paths = paths_in(tmp_path)
    folder = {"parent": paths.sockets.parent, "sockets": paths.sockets,
              "state": paths.state, "logs": paths.logs}[level]
    make_private_dirs(paths)  # the levels above are fine; this one is then taken over
    os.chown(folder, NOBODY, NOBODY)
    with pytest.raises(UnsafeFolder, match=rf"{folder}: it belongs to uid {NOBODY}"):
        make_private_dirs(paths)
    with pytest.raises(UnsafeFolder):
        check_private_dirs(paths)
    assert os.lstat(folder).st_uid == NOBODY  # not taken over


def test_a_folder_with_a_wider_mode_is_refused_not_narrowed(tmp_path: Path) -> None:
    paths = paths_in(tmp_path)
    paths.sockets.parent.mkdir()
    paths.sockets.parent.chmod(0o777)
    with pytest.raises(UnsafeFolder, match="has mode 0777, not 0700"):
        make_private_dirs(paths)
    assert mode(paths.sockets.parent) == 0o777
    assert not paths.sockets.exists()  # nothing made inside it


def test_a_planted_symbolic_link_is_never_followed(tmp_path: Path) -> None:
    paths = paths_in(tmp_path)
    elsewhere = tmp_path / "attacker"
    elsewhere.mkdir(mode=0o700)  # even a private folder of ours: the link is refused
    paths.sockets.parent.symlink_to(elsewhere)
    with pytest.raises(UnsafeFolder, match="is a symbolic link"):
        make_private_dirs(paths)
    assert list(elsewhere.iterdir()) == []


def test_a_file_where_a_folder_belongs_is_refused(tmp_path: Path) -> None:
    paths = paths_in(tmp_path, fallback=False)
    paths.state.write_text("")
    with pytest.raises(UnsafeFolder, match="is not a folder"):
        make_private_dirs(paths)
