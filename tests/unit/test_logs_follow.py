"""Log files: the supervisor's own records, and following files across a rotation."""

from __future__ import annotations

import logging
from pathlib import Path

from supervisor.cli import _Tail
from supervisor.logs import LogFile, LogFileHandler


def test_tail_gives_complete_lines_only(tmp_path: Path) -> None:
    path = tmp_path / "server.log"
    path.write_text("old line\n")
    tail = _Tail(path)
    assert tail.read_new() == []
    with path.open("a") as out:
        out.write("one\ntw")
    assert tail.read_new() == ["one"]
    with path.open("a") as out:
        out.write("o\n")
    assert tail.read_new() == ["two"]


def test_tail_follows_a_rotation(tmp_path: Path) -> None:
    path = tmp_path / "server.log"
    path.write_text("")
    tail = _Tail(path)
    with path.open("a") as out:
        out.write("before\n")
    path.rename(tmp_path / "server.log.1")
    path.write_text("after\n")
    assert tail.read_new() == ["before", "after"]
    with path.open("a") as out:
        out.write("later\n")
    assert tail.read_new() == ["later"]


def test_tail_of_a_file_that_appears_later(tmp_path: Path) -> None:
    path = tmp_path / "portal.log"
    tail = _Tail(path)
    assert tail.read_new() == []
    path.write_text("first\n")
    assert tail.read_new() == ["first"]


def test_supervisor_records_are_stamped_per_line(tmp_path: Path) -> None:
    logfile = LogFile(tmp_path, "supervisor", max_bytes=1 << 20, backups=2)
    echoed: list[str] = []
    logfile.echo = lambda name, pid, line: echoed.append(f"{name} {line}")
    logger = logging.getLogger("test-supervisor-log")
    logger.propagate = False
    logger.addHandler(LogFileHandler(logfile))
    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception("it broke")
    logfile.close()
    lines = (tmp_path / "supervisor.log").read_text().splitlines()
    assert lines[0].endswith("ERROR test-supervisor-log: it broke")
    assert lines[-1].endswith("ValueError: boom")
    assert all(line[23:].startswith(" [supervisor ") for line in lines)  # every line stamped
    assert echoed[0] == "supervisor ERROR test-supervisor-log: it broke"


def test_files_rotate_at_the_size_cap(tmp_path: Path) -> None:
    logfile = LogFile(tmp_path, "server", max_bytes=2000, backups=2)
    for n in range(200):
        logfile.write(42, f"line {n:04d} " + "x" * 40)
    logfile.close()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["server.log", "server.log.1", "server.log.2"]
    assert all(p.stat().st_size <= 2000 for p in tmp_path.iterdir())
    assert (tmp_path / "server.log").read_text().splitlines()[-1].endswith("line 0199 " + "x" * 40)
