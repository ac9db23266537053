"""`python run.py ...`: the command line. Every command has a timeout and a one-line reason.

Exit codes: 0 success; 1 the command failed; 2 a usage or settings error; 3 not running.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import select
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ipc.connection import ForeignPeer, FrameConnection, connect_unix
from ipc.frames import Command, ControlFrame, Hello, Progress, Refused, Reply
from ipc.settings import (
    RuntimePaths,
    SettingsError,
    UnsafeFolder,
    check_private_dirs,
    load_settings,
    make_private_dirs,
    runtime_paths,
)
from supervisor import pidfile
from supervisor.process import REPO_ROOT

DEFAULT_GAME = REPO_ROOT / "game"
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NOT_RUNNING = 0, 1, 2, 3
ADMIN_TIMEOUT = 300.0  # `admin` waits this long for someone to type a password


class CliError(Exception):
    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


# ---------------------------------------------------------------- talking to the supervisor


async def request(paths: RuntimePaths, command: Command, timeout: float,
                on_progress: Callable[[str], None]) -> Reply:
    loop = asyncio.get_running_loop()
    reply: asyncio.Future[Reply] = loop.create_future()

    def on_frame(conn: FrameConnection, frame: Any) -> None:
        if isinstance(frame, Progress):
            on_progress(frame.message)
        elif isinstance(frame, Reply) and not reply.done():
            reply.set_result(frame)
        elif isinstance(frame, Refused) and not reply.done():
            reply.set_result(Reply(ok=False, message=f"refused: {frame.reason}"))

    def on_close(conn: FrameConnection, reason: str) -> None:
        if not reply.done():
            reply.set_result(Reply(ok=False, message=f"the supervisor closed the connection "
                                                     f"({reason})"))

    check_private_dirs(paths)  # never dial a socket in a folder someone else prepared
    try:
        conn = await connect_unix(str(paths.control_socket), ControlFrame, on_frame, on_close,
                                  name="cli", timeout=5.0)
    except ForeignPeer as exc:
        raise CliError(f"{exc}; not talking to it") from None
    except (FileNotFoundError, ConnectionRefusedError):
        raise _not_running(paths) from None
    conn.send(Hello(role="cli", pid=os.getpid()))
    conn.send(command)
    try:
        return await asyncio.wait_for(reply, timeout)
    except TimeoutError:
        raise CliError(f"no answer from the supervisor within {timeout:.0f}s") from None
    finally:
        conn.close("done")


def _not_running(paths: RuntimePaths) -> CliError:
    """Why the control socket does not answer; cleans up after a dead supervisor."""
    record = pidfile.running_supervisor(paths.pid_file)
    if record is not None:
        return CliError(f"supervisor {record.pid} runs but its control socket "
                        f"{paths.control_socket} is gone; `kill -USR1 {record.pid}` "
                        f"makes it listen again, `kill {record.pid}` stops it")
    notes = []
    stale = pidfile.read_pid_file(paths.pid_file)
    if stale is not None or paths.pid_file.exists():
        who = f"pid {stale.pid}, which is gone or now another process" if stale else "garbage"
        notes.append(f"removed a stale pid file naming {who}")
        paths.pid_file.unlink(missing_ok=True)
    # no supervisor runs, so any socket file left is a dead run's
    for path in (paths.control_socket, paths.portal_socket):
        if path.exists():
            path.unlink(missing_ok=True)
            notes.append(f"removed stale socket {path.name}")
    extra = f" ({'; '.join(notes)})" if notes else ""
    return CliError(f"Hearth is not running for {paths.state.parent}{extra}", EXIT_NOT_RUNNING)


def call(paths: RuntimePaths, name: str, timeout: float,
         on_progress: Callable[[str], None] = print) -> Reply:
    return asyncio.run(request(paths, Command(name=name), timeout, on_progress))


def wait_pid_gone(pid: int, timeout: float) -> bool:
    """Block until process `pid` has exited (pidfd: an event, not a poll)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        ready, _, _ = select.select([fd], [], [], timeout)
        return bool(ready)
    finally:
        os.close(fd)


# ---------------------------------------------------------------- commands


def cmd_init(args: argparse.Namespace) -> int:
    target = Path(args.directory)
    if target.exists() and any(target.iterdir()):
        raise CliError(f"{target} exists and is not empty", EXIT_USAGE)
    shutil.copytree(DEFAULT_GAME, target, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns(".hearth", "__pycache__", "*.pyc"))
    print(f"created game directory {target}; start it with: "
          f"{program()} --game-dir {target} start")
    return EXIT_OK


def cmd_start(args: argparse.Namespace) -> int:
    game_dir = args.game_dir
    try:
        settings = load_settings(game_dir)
    except SettingsError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    paths = runtime_paths(game_dir)
    running = pidfile.running_supervisor(paths.pid_file)
    if running is not None:
        raise CliError(f"Hearth is already running for {game_dir} (supervisor {running.pid})")
    if args.foreground:
        from supervisor.daemon import configure_logging, run_supervisor

        configure_logging()

        def finish(ok: bool, message: str) -> None:
            print(message if ok else f"error: {message}", flush=True)

        return run_supervisor(game_dir, lambda line: print(line, flush=True), finish)
    make_private_dirs(paths)
    return _start_background(game_dir, paths, settings.supervisor.start_timeout * 2 + 10)


def _start_background(game_dir: Path, paths: RuntimePaths, timeout: float) -> int:
    read_fd, write_fd = os.pipe()
    # only what bypasses logging lands here; the supervisor logs into supervisor.log
    logfile = open(paths.logs / "supervisor.out", "ab")  # noqa: SIM115 - handed to the child
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    proc = subprocess.Popen(
        [sys.executable, "-m", "supervisor", "--game-dir", str(game_dir.resolve()),
         "--progress-fd", str(write_fd)],
        stdin=subprocess.DEVNULL, stdout=logfile, stderr=subprocess.STDOUT,
        pass_fds=(write_fd,), start_new_session=True, cwd=str(REPO_ROOT), env=env,
    )
    os.close(write_fd)
    logfile.close()
    print(f"starting Hearth for {game_dir} (supervisor {proc.pid})", flush=True)
    result = _follow_progress(read_fd, timeout)
    if result is None:
        code = proc.poll()
        tail = "\n".join(_tail(paths.logs / name, 20) for name in ("supervisor.log",
                                                                   "supervisor.out"))
        raise CliError(f"the supervisor exited ({code}) without reporting:\n{tail}")
    ok, message = result
    if not ok:
        wait_pid_gone(proc.pid, 15)
        raise CliError(message)
    print(message)
    return EXIT_OK


def _follow_progress(fd: int, timeout: float) -> tuple[bool, str] | None:
    """Print `step` lines from the supervisor until `ok`/`error` (or EOF / timeout)."""
    deadline = time.monotonic() + timeout
    buffer = b""
    final: tuple[bool, str] | None = None
    with os.fdopen(fd, "rb", buffering=0) as pipe:
        while final is None or buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise CliError(f"start did not finish within {timeout:.0f}s")
            ready, _, _ = select.select([pipe], [], [], left)
            chunk = pipe.read(65536) if ready else b""
            if not chunk:
                break
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for raw in lines:
                line = raw.decode("utf-8", "replace")
                kind, _, text = line.partition(" ")
                if kind == "step":
                    print(f"  {text}", flush=True)
                elif kind in ("ok", "error"):
                    final = (kind == "ok", text)
                elif final is not None:
                    final = (final[0], f"{final[1]}\n{line}")
    return final


def _tail(path: Path, lines: int) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def cmd_simple(args: argparse.Namespace) -> int:
    paths = runtime_paths(args.game_dir)
    settings = _settings_or_default(args.game_dir)
    sup = settings.supervisor if settings else None
    timeouts = {
        "stop": (sup.stop_timeout * 3 if sup else 30.0) + 5,
        "reload": (sup.reload_timeout * 2 + sup.stop_timeout if sup else 70.0) + 5,
        "reboot": (sup.stop_timeout * 3 + sup.start_timeout * 2 if sup else 90.0) + 5,
    }
    timeouts["reset"] = timeouts["reload"]
    timeouts["reload-portal"] = timeouts["reload"]
    record = pidfile.running_supervisor(paths.pid_file)
    reply = call(paths, args.command, timeouts[args.command], lambda m: print(f"  {m}"))
    if not reply.ok:
        raise CliError(reply.message)
    if args.command == "stop" and record is not None and not wait_pid_gone(record.pid, 15):
        raise CliError(f"supervisor {record.pid} said it stopped but still runs")
    print(reply.message)
    return EXIT_OK


def _settings_or_default(game_dir: Path) -> Any:
    try:
        return load_settings(game_dir)
    except SettingsError:
        return None


def cmd_status(args: argparse.Namespace) -> int:
    paths = runtime_paths(args.game_dir)
    try:
        reply = call(paths, "status", 10.0, lambda m: None)
    except CliError as exc:
        if args.json:
            print(json.dumps({"running": False, "reason": str(exc)}))
            return exc.code
        raise
    data = dict(reply.data, running=True)
    if args.json:
        print(json.dumps(data, default=str))
    else:
        print(format_status(data))
    return EXIT_OK


STATUS_COLUMNS = ("process", "pid", "state", "uptime", "restarts", "rss", "cpu", "sessions",
                  "ports", "last exit")


def format_status(data: dict[str, Any]) -> str:
    """The `status` table: one row per process, then warnings and the game folder."""
    rows = [STATUS_COLUMNS]
    ports = ",".join(f"{k}:{v}" for k, v in data.get("ports", {}).items()) or "-"
    warnings = []
    for role in ("supervisor", "portal", "server"):
        info = data.get(role, {})
        portal = role == "portal"
        rows.append((
            role, str(info.get("pid") or "-"), str(info.get("state", "-")),
            _duration(info.get("uptime")), str(info.get("restarts", "-")),
            _megabytes(info.get("rss")), _percent(info.get("cpu_percent")),
            str(data.get("sessions", 0)) if portal else "-", ports if portal else "-",
            str(info.get("last_exit") or "-"),
        ))
        if info.get("over_limit"):
            warnings.append(f"warning: {role} {info.get('pid')} is over a health limit: "
                            f"{info['over_limit']}")
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
             for row in rows]
    lines.extend(warnings)
    lines.append(f"game: {data.get('game_dir', '')}")
    return "\n".join(lines)


def _duration(seconds: Any) -> str:
    if not isinstance(seconds, int | float):
        return "-"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def _megabytes(value: Any) -> str:
    return f"{value / 1048576:.1f} MB" if isinstance(value, int | float) else "-"


def _percent(value: Any) -> str:
    return f"{value:.1f}%" if isinstance(value, int | float) else "-"


def cmd_logs(args: argparse.Namespace) -> int:
    if args.lines < 0:
        raise CliError(f"-n takes a number of lines (0 or more), not {args.lines}", EXIT_USAGE)
    paths = runtime_paths(args.game_dir)
    names = [args.process] if args.process else ["supervisor", "portal", "server"]
    files = [paths.logs / f"{name}.log" for name in names]
    if not any(f.exists() for f in files):
        raise CliError(f"no log files in {paths.logs}")
    lines: list[str] = []
    for path in files:
        if path.exists() and args.lines:  # [-0:] would be every line
            lines.extend(path.read_text(errors="replace").splitlines()[-args.lines:])
    lines.sort(key=_stamp_of)
    for line in lines[-args.lines:] if args.lines else []:
        print(line)
    if args.follow:
        _follow(files)
    return EXIT_OK


def _stamp_of(line: str) -> str:
    return line[:23]  # "YYYY-mm-dd HH:MM:SS.mmm", the same in every file


class _Tail:
    """One followed file: `read_new()` gives the complete lines appended since last time.

    After a rotation (the path now names another file, or the file shrank) it finishes
    the old file and continues at the start of the new one.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.partial = ""
        self.handle = self._open()
        if self.handle is not None:
            self.handle.seek(0, os.SEEK_END)

    def _open(self) -> Any:
        try:
            return self.path.open(errors="replace", newline="")
        except FileNotFoundError:
            return None

    def read_new(self) -> list[str]:
        text = self.handle.read() if self.handle is not None else ""
        if self._replaced():
            if self.handle is not None:
                self.handle.close()
            self.handle = self._open()
            text += self.handle.read() if self.handle is not None else ""
        *lines, self.partial = (self.partial + text).split("\n")
        return lines

    def _replaced(self) -> bool:
        try:
            now = os.stat(self.path)
        except FileNotFoundError:
            return False
        if self.handle is None:
            return True
        mine = os.fstat(self.handle.fileno())
        return (now.st_ino, now.st_dev) != (mine.st_ino, mine.st_dev) or (
            now.st_size < self.handle.tell())


def _follow(files: list[Path]) -> None:
    """Print new lines, interleaved by time, as they are written; until Ctrl-C.

    Woken by inotify through watchfiles, not by polling the files.
    """
    import watchfiles

    tails = [_Tail(path) for path in files]
    names = {str(path) for path in files}
    for _ in watchfiles.watch(files[0].parent, watch_filter=lambda _c, p: p in names,
                              debounce=100, step=50, raise_interrupt=False):
        lines = sorted((line for tail in tails for line in tail.read_new()), key=_stamp_of)
        for line in lines:
            print(line, flush=True)


def cmd_reopen_logs(args: argparse.Namespace) -> int:
    reply = call(runtime_paths(args.game_dir), "reopen_logs", 10.0)
    if not reply.ok:
        raise CliError(reply.message)
    print(reply.message)
    return EXIT_OK


def cmd_dev(args: argparse.Namespace) -> int:
    from supervisor.dev import run_dev

    return run_dev(args.game_dir)


# ---------------------------------------------------------------- admin


def cmd_admin(args: argparse.Namespace) -> int:
    """Name an admin. The server's own tool does it: the supervisor never opens the game's
    database (and the password prompt, on this terminal, is the tool's)."""
    tool = [sys.executable, "-m", "server.admin", str(args.game_dir.resolve()), args.name]
    if args.revoke:
        tool.append("--revoke")
    if args.role != "admin":
        tool += ["--role", args.role]
    try:
        return subprocess.run(tool, cwd=REPO_ROOT, timeout=ADMIN_TIMEOUT).returncode
    except subprocess.TimeoutExpired:
        raise CliError(f"no password typed within {ADMIN_TIMEOUT:.0f}s; nothing changed") from None


def add_admin_parser(command: Callable[[str, str], argparse.ArgumentParser]) -> None:
    admin = command("admin", "make an account an admin (or a builder), creating it if "
                    "needed (asks for its password)")
    admin.add_argument("name")
    admin.add_argument("--revoke", action="store_true", help="take the role away instead")
    admin.add_argument("--role", choices=("builder", "admin"), default="admin",
                       help="the role to grant or revoke (default admin; an admin may do "
                            "what a builder may)")
    admin.set_defaults(func=cmd_admin)


# ---------------------------------------------------------------- parsing


def program() -> str:
    """How the user ran us, for messages: `hearth` or `python run.py`."""
    name = Path(sys.argv[0]).name
    return "python run.py" if name in ("run.py", "__main__.py", "-c", "") else name


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=program(), description=(
        "Hearth: a supervisor and connection portal for text games."))
    game_dir_help = "the game directory (default: the bundled game/)"
    parser.add_argument("--game-dir", type=Path, default=DEFAULT_GAME, help=game_dir_help)
    # `--game-dir` is also taken after the command; SUPPRESS keeps the one given before it
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--game-dir", type=Path, default=argparse.SUPPRESS, help=game_dir_help)
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=text, description=text, parents=[common])

    init = sub.add_parser("init", help="create a new game directory from the default game")
    init.add_argument("directory")
    init.set_defaults(func=cmd_init)
    start = command("start", "start supervisor, portal and server")
    start.add_argument("--foreground", action="store_true", help="stay attached (Ctrl-C stops)")
    start.set_defaults(func=cmd_start)
    for name, text in (("stop", "stop everything; players are told"),
                       ("reload", "replace the server with new code; players stay connected"),
                       ("reset", "as reload, with cold-start hooks"),
                       ("reload-portal", "replace the portal with a new one; plain telnet "
                        "players stay connected, web pages reconnect logged in, TLS and SSH "
                        "players are asked to reconnect"),
                       ("reboot", "restart portal and server; players are disconnected")):
        command(name, text).set_defaults(func=cmd_simple)
    status = command("status", "show processes, ports and sessions")
    status.add_argument("--json", action="store_true", help="machine-readable, with history")
    status.set_defaults(func=cmd_status)
    logs = command("logs", "show the logs of every process, interleaved by time")
    logs.add_argument("-f", "--follow", action="store_true",
                      help="keep printing new lines as they are written, until Ctrl-C")
    logs.add_argument("-n", "--lines", type=int, default=50, metavar="N",
                      help="show the last N lines first (default 50; 0: none)")
    logs.add_argument("--process", choices=("supervisor", "portal", "server"),
                      help="only this process's log (default: all three)")
    logs.set_defaults(func=cmd_logs)
    command("reopen-logs", "reopen the log files after an external rotation (as SIGUSR1 does)"
            ).set_defaults(func=cmd_reopen_logs)
    command("dev", "run in the foreground and reload on every saved change"
            ).set_defaults(func=cmd_dev)
    add_admin_parser(command)
    return parser


def check_game_dir(game_dir: Path) -> None:
    """A one-line usage error for a game directory that cannot be one."""
    if not game_dir.exists():
        raise CliError(f"game directory {game_dir} does not exist "
                       f"(`{program()} init {game_dir}` creates one)", EXIT_USAGE)
    if not game_dir.is_dir():
        raise CliError(f"--game-dir {game_dir} is a file, not a game directory", EXIT_USAGE)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command != "init":
            check_game_dir(args.game_dir)
        return int(args.func(args))
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.code
    except UnsafeFolder as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return EXIT_FAILED
