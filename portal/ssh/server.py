"""SSH sessions: asyncssh's server, with authentication asked of the game server.

One `SshServer` per TCP connection (asyncssh's connection owner) and one `SshSession`
(a `PortalSession`) for its session channel. Theory of operation:

- Accept: `handler.admit(address)` first; a refusal is sent as the SSH disconnect reason.
- Authentication (asyncssh drives it; every callback asks the server, never a database):
  the one name `GUEST_NAME` ("new") needs none and lands on the connection screen, as on
  telnet (to create an account or `connect`). Every other name, an account or not, must
  give a password or a registered public key: the same methods offered, the same steps,
  and from the server the same answer after the same work, so SSH tells no name apart.
  Each question is an `AuthRequest` held by the handler's `AuthRequests` through reloads
  and crashes, bounded by `ssh_auth_timeout`.
  Wrong passwords are delayed by the server and counted here: `MAX_FAILURES` close the
  connection. Public keys the account does not have are not counted: OpenSSH offers every
  key of the agent in turn, which is not an attack.
- Session: with a pty, asyncssh's line editor gives history, cursor keys, Ctrl-C (clears
  the line), Ctrl-D (quits) and Ctrl-L (clears the screen); the game's `echo` OOB turns
  its echo off for passwords. `ssh host cmd` (exec) runs that one command and exits once
  the server has answered it.
- The game hears of the session (`handler.connect`) when the shell or command starts; an
  authenticated session arrives already logged in (uid, name and `logged_in` set).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import asyncssh

from ipc.frames import AuthMethod, AuthResult
from ipc.settings import PortalSettings
from portal.colour import render
from portal.guard import WorkBudget
from portal.session import PortalSession
from portal.sessions import PortalSessionHandler
from portal.ssh import editor
from portal.ssh.input import (
    InputEvent,
    Line,
    LineCut,
    LineExpired,
    LineGate,
    LineSplitter,
    LineTooLong,
    size_flags,
    terminal_flags,
)
from portal.tls import write_private

log = logging.getLogger(__name__)
# asyncssh logs every connection, channel and auth step at INFO: far too much for a portal
logging.getLogger("asyncssh").setLevel(logging.WARNING)

HOST_KEY_FILE = "ssh_host_ed25519_key"
GUEST_NAME = "new"  # the SSH user name that gets the connection screen without a login
MAX_FAILURES = 3
CLEAR_SCREEN = "\x1b[H\x1b[2J"
# asyncssh builds chacha20-poly1305 from six cipher contexts per packet: it costs twice the
# CPU per round trip of AES (one OpenSSL call; AES-NI), measured in benchmarks/ssh.py. The
# client's order picks among what we offer, and every client OpenSSH 6.2 or PuTTY 0.76 and
# later has AES-GCM and AES-CTR with SHA-2 MACs, so chacha20 (and umac) are not offered.
ENCRYPTION_ALGS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com",
                   "aes128-ctr", "aes192-ctr", "aes256-ctr")
MAC_ALGS = ("hmac-sha2-256-etm@openssh.com", "hmac-sha2-512-etm@openssh.com",
            "hmac-sha2-256", "hmac-sha2-512")
MSG_TOO_MANY = "Too many failed logins; goodbye."
MSG_TIMEOUT = ("The game did not answer the login in time (it may be restarting); "
               "please try again in a moment.")


class SshKeyError(RuntimeError):
    """The host key cannot be made or loaded; the message names the file."""


# ---------------------------------------------------------------- host key


def host_key(game_dir: Path, keys_dir: Path, named: str) -> asyncssh.SSHKey:
    """The game's own host key if `named`, else an ed25519 key made once in `keys_dir`."""
    path = game_dir / named if named else keys_dir / HOST_KEY_FILE
    if not named and not path.is_file():
        keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = asyncssh.generate_private_key("ssh-ed25519", comment="hearth host key")
        write_private(path, key.export_private_key())
        return key
    try:
        return asyncssh.read_private_key(path)
    except (OSError, asyncssh.KeyImportError) as exc:
        raise SshKeyError(f"cannot load the SSH host key {path}: {exc}") from None


async def listen(handler: PortalSessionHandler, settings: PortalSettings,
                 key: asyncssh.SSHKey, where: socket.socket | dict[str, Any]
                 ) -> asyncssh.SSHAcceptor:
    """Start the SSH listener on `where`: the listening socket the supervisor holds, or
    `host`, `port` and `backlog` to bind here."""
    editor.install()  # a line editor per session costs microseconds, not 30 ms
    address = ({"sock": where, "backlog": settings.listen_backlog}  # (listen() again)
               if isinstance(where, socket.socket) else where)
    return await asyncssh.listen(
        server_factory=lambda: SshServer(handler, settings), **address,
        server_host_keys=[key], line_editor=True, line_history=100,
        # one more than the limit: a longer line reaches `LineSplitter` too long, and is
        # dropped there with a word to the player, as telnet does, instead of cut short
        max_line_length=settings.max_line + 1, encoding="utf-8", errors="replace",
        login_timeout=settings.ssh_auth_timeout * 2 + 30, allow_scp=False,
        agent_forwarding=False, x11_forwarding=False,
        keepalive_interval=60, keepalive_count_max=3,
        encryption_algs=list(ENCRYPTION_ALGS), mac_algs=list(MAC_ALGS),
    )


# ---------------------------------------------------------------- reads, charged

READ_SLICE = 16384  # bytes of a read handed to asyncssh per loop turn


class ChargedReads(asyncio.Protocol):
    """Stands between an SSH connection's socket and asyncssh, and charges each read's
    whole cost (decryption, packets, the line editor, our session) to that connection:
    `read_cpu_share` of the loop on average after `read_cpu_burst`, as telnet's reads are.
    A connection that used more rests, its socket not read, before the next one; its
    client is held back by TCP, so a flood of any kind (a line that never ends, key
    exchanges, window adjusts) costs the portal a bounded share of a core.

    A read is handed on `READ_SLICE` bytes per loop turn (the socket paused until the
    read is used up), so one large read (a backlog the kernel held while the session
    started) cannot hold the loop for its whole length in one turn.

    asyncssh does not pause its socket itself, so the rest is ours alone."""

    def __init__(self, inner: asyncio.Protocol, transport: asyncio.Transport,
                 share: float, burst: float) -> None:
        self._inner = inner
        self._transport = transport
        self._work = WorkBudget.full(share, burst, time.monotonic())
        self._resting = False
        self._left = memoryview(b"")  # what of the last read is not handed on yet

    def data_received(self, data: bytes) -> None:
        if len(data) > READ_SLICE:
            self._left = memoryview(data)[READ_SLICE:]
            data = data[:READ_SLICE]
            self._transport.pause_reading()
            asyncio.get_running_loop().call_soon(self._next_slice)
        self._feed(data)

    def _next_slice(self) -> None:
        left = self._left
        if not left or self._transport.is_closing():
            self._left = memoryview(b"")
            return
        if self._resting:  # `_rested` goes on from here
            return
        data, self._left = bytes(left[:READ_SLICE]), left[READ_SLICE:]
        if self._left:
            asyncio.get_running_loop().call_soon(self._next_slice)
        else:
            self._transport.resume_reading()
        self._feed(data)

    def _feed(self, data: bytes) -> None:
        start = time.perf_counter()
        try:
            self._inner.data_received(data)
        finally:
            self._work.spend(time.perf_counter() - start, time.monotonic())
        rest = self._work.delay(time.monotonic())
        if rest > 0 and not self._resting and not self._transport.is_closing():
            self._resting = True
            self._transport.pause_reading()
            asyncio.get_running_loop().call_later(rest, self._rested)

    def _rested(self) -> None:
        self._resting = False
        if self._transport.is_closing():
            return
        if self._left:
            self._next_slice()
        else:
            self._transport.resume_reading()

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


def charge_reads(conn: asyncssh.SSHServerConnection, settings: PortalSettings) -> None:
    """Put `ChargedReads` between `conn` and its socket (call from `connection_made`).

    asyncssh (pinned in pyproject.toml) keeps its transport in `_transport` and offers no
    hook on its reads; `set_protocol` is asyncio's (and uvloop's) own way to interpose."""
    transport = cast(asyncio.Transport | None, getattr(conn, "_transport", None))
    if settings.read_cpu_share <= 0 or transport is None:  # uvloop's are not subclasses
        return
    transport.set_protocol(ChargedReads(cast(asyncio.Protocol, conn), transport,
                                        settings.read_cpu_share, settings.read_cpu_burst))


# ---------------------------------------------------------------- the connection


class SshServer(asyncssh.SSHServer):
    """One SSH connection: admission and authentication; makes its `SshSession`."""

    def __init__(self, handler: PortalSessionHandler, settings: PortalSettings) -> None:
        self._handler = handler
        self._settings = settings
        self._conn: asyncssh.SSHServerConnection | None = None
        self.address = ""
        self._admitted = False
        self._failures = 0
        self.account: tuple[int, str] | None = None  # (uid, name) once authenticated
        self._session: SshSession | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn
        peer = conn.get_extra_info("peername")
        self.address = str(peer[0]) if isinstance(peer, tuple) else str(peer)
        refusal = self._handler.admit(self.address)
        if refusal is not None:
            # asyncssh sends its version right after this callback: disconnect after it
            asyncio.get_running_loop().call_soon(
                conn.disconnect, asyncssh.DISC_TOO_MANY_CONNECTIONS, refusal)
            return
        self._admitted = True
        charge_reads(conn, self._settings)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._admitted:
            self._admitted = False
            self._handler.release(self.address)

    def begin_auth(self, username: str) -> bool:
        """False for `GUEST_NAME` only (in, unauthenticated, to the connection screen);
        every other name must authenticate. The server is not asked: whether a name is an
        account shows in nothing SSH says."""
        self.account = None
        return username != GUEST_NAME

    def password_auth_supported(self) -> bool:
        return True

    def public_key_auth_supported(self) -> bool:
        return True

    async def validate_password(self, username: str, password: str) -> bool:
        result = await self._ask("password", username, password=password,
                                 failures=self._failures)
        if result is not None and result.ok:
            self.account = (result.uid, result.uname)
            return True
        if result is not None:
            self._failures += 1
            if self._failures >= MAX_FAILURES and self._conn is not None:
                log.info("ssh %s: %d failed logins as %r; closing", self.address,
                         self._failures, username)
                self._conn.disconnect(asyncssh.DISC_NO_MORE_AUTH_METHODS_AVAILABLE,
                                      MSG_TOO_MANY)
        return False

    async def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        line = key.export_public_key("openssh").decode("ascii", "replace").strip()
        result = await self._ask("publickey", username, public_key=line)
        if result is not None and result.ok:
            # asyncssh checks the signature after this; auth completes only if it holds
            self.account = (result.uid, result.uname)
            return True
        return False

    async def _ask(self, method: AuthMethod, username: str, **fields: Any) -> AuthResult | None:
        """The server's answer, or None (and the client told, and disconnected) when it
        does not come within `ssh_auth_timeout`."""
        try:
            return await self._handler.auth.ask(method, username, self._settings.ssh_auth_timeout,
                                                address=self.address, **fields)
        except TimeoutError:
            log.warning("ssh %s: no answer from the game to a %s login of %r within %.0fs",
                        self.address, method, username, self._settings.ssh_auth_timeout)
            if self._conn is not None:
                self._conn.disconnect(asyncssh.DISC_BY_APPLICATION, MSG_TIMEOUT)
            return None

    def session_requested(self) -> SshSession | bool:
        if self._session is not None:
            return False  # one session per connection, as a MUD has one player per socket
        self._session = SshSession(self._handler, self._conn, self.address, self.account)
        return self._session


# ---------------------------------------------------------------- the session


class SshSession(asyncssh.SSHServerSession[str], PortalSession):
    """One player on an SSH session channel (shell or a single command)."""

    def __init__(self, handler: PortalSessionHandler, conn: asyncssh.SSHServerConnection | None,
                 address: str, account: tuple[int, str] | None) -> None:
        PortalSession.__init__(self)
        self._handler = handler
        self._conn = conn
        self._peer = address
        self._account = account
        self.chan: Any = None  # SSHServerChannel, or asyncssh's line-editor wrapper of it
        self._term: str | None = None
        self._size = (0, 0)
        self._command: str | None = None  # exec: the one command to run
        self._splitter = LineSplitter(handler.settings.max_line)
        self._gate = LineGate(handler.settings.max_line, handler.settings.line_timeout)
        # Lines wait here while input is paused (the command rate, held input, output
        # backed up): pausing the channel stops asyncssh's deliveries, not what the line
        # editor already split from a packet. At most one window's worth.
        self._pending: deque[InputEvent] = deque()
        self._draining = False
        self._reading_paused = False
        self._out: list[str] = []
        self._write_scheduled = False
        self._started = False
        self._unanswered = 0  # inputs sent to the game and not yet answered
        self._close_when_answered = False
        self._discard_output = False  # exec: the login's own output is not the command's
        self._exec_steps: list[Callable[[], None]] = []

    # ------------------------------------------------------------ asyncssh callbacks

    def connection_made(self, chan: Any) -> None:
        self.chan = chan
        self.gone = asyncio.get_running_loop().create_future()

    def pty_requested(self, term_type: str, term_size: tuple[int, int, int, int],
                      term_modes: Any) -> bool:
        self._term = term_type
        self._size = (term_size[0], term_size[1])
        return True

    def shell_requested(self) -> bool:
        return True

    def exec_requested(self, command: str) -> bool:
        self._command = command
        return True

    def subsystem_requested(self, subsystem: str) -> bool:
        return False  # no sftp or other subsystems: this is a game

    def session_started(self) -> None:
        chan = self.chan
        version = self._conn.get_extra_info("client_version", "") if self._conn else ""
        self.init_session("ssh", self._peer, self._handler)
        self.protocol_flags = terminal_flags(self._term, chan.get_environment(), *self._size,
                                             client_version=str(version))
        if self._command is not None:
            self.protocol_flags["EXEC"] = True  # `ssh host cmd`: one command, then gone
        if self._account is not None:
            self.uid, self.uname = self._account
            self.logged_in = True
        if self._term and hasattr(chan, "register_key"):
            chan.register_key("\x0c", self._clear_screen)
        self._gate_editor()
        self._started = True
        self._handler.connect(self)
        if self._command is not None:
            self._run_command(self._command)

    def data_received(self, data: str, datatype: Any) -> None:
        if datatype is not None:
            return  # stderr-type data from a client means nothing here
        if getattr(self.chan, "_editor", None) is None:  # no pty: keys come here
            data = self._gated(data)
        self._splitter.receive_data(data)
        self._take_input()

    def _gate_editor(self) -> None:
        """With a pty, asyncssh's line editor takes the keys before us: put `LineGate` in
        front of it, so an unfinished line never costs it more than `max_line` (asyncssh,
        pinned in pyproject.toml, keeps the editor in `_editor` and reads its
        `process_input` at every packet)."""
        editor = getattr(self.chan, "_editor", None)
        if editor is None:
            return
        to_editor = editor.process_input

        def process_input(data: str, datatype: Any) -> None:
            if datatype is None:
                data = self._gated(data)
                self._take_input()
            if data:
                to_editor(data, datatype)

        editor.process_input = process_input

    def _gated(self, data: str) -> str:
        return self._gate.receive_data(data, time.monotonic())

    def eof_received(self) -> bool:
        """The client closed its input (`echo look | ssh -T host`): answer what it sent,
        then close."""
        self._splitter.receive_eof()
        self._take_input()
        self._close_when_answered = True
        self._close_if_answered()
        return True  # keep the channel open for the answers

    def soft_eof_received(self) -> None:
        """Ctrl-D on an empty line: the player quits."""
        self.disconnect("Goodbye!")

    def break_received(self, msec: int) -> bool:
        """Ctrl-C: forget the line being typed, as a shell does."""
        if hasattr(self.chan, "clear_input"):
            self.chan.clear_input()
        return True

    def terminal_size_changed(self, width: int, height: int, pixwidth: int,
                              pixheight: int) -> None:
        changed = {k: v for k, v in size_flags(width, height).items()
                   if self.protocol_flags.get(k) != v}
        if changed:
            self.protocol_flags.update(changed)
            if self._started:
                self._handler.flags_changed(self)

    def pause_writing(self) -> None:
        """The client reads slower than we write: stop taking its commands meanwhile."""
        self._set_paused("output", True)

    def resume_writing(self) -> None:
        self._set_paused("output", False)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.gone is not None and not self.gone.done():
            self.gone.set_result(None)
        if self._started:
            self._handler.disconnect(self, "connection lost")
        if self._conn is not None:  # the session was the connection's reason to exist
            conn, self._conn = self._conn, None
            try:
                conn.close()
            except (asyncssh.Error, OSError) as exc:
                log.debug("closing ssh connection of %s: %r", self._peer, exc)

    # ------------------------------------------------------------ input

    def _take_input(self) -> None:
        for event in self._gate.events_received():
            if isinstance(event, LineCut):  # the line being typed now: cut it now
                self._cut_line()
            else:
                self._pending.append(event)
        self._pending.extend(self._splitter.events_received())
        self._drain()

    def _drain(self) -> None:
        """Hand on the waiting lines while nothing pauses input (the guard's rate limit
        pauses it as soon as a line must wait, so no more than the rate passes)."""
        if self._draining:
            return
        self._draining = True
        try:
            while self._pending and not self._paused:
                self._handle_input(self._pending.popleft())
        finally:
            self._draining = False
        self._close_if_answered()

    def _handle_input(self, event: InputEvent) -> None:
        match event:
            case Line(text=text):
                self._send_line(text)
            case LineTooLong(limit=limit):
                self.send_text(f"|rThat line was longer than {limit} bytes; "
                               "it was dropped.|n")
            case LineExpired(seconds=seconds):
                self.send_text(f"|rYour unfinished line was dropped: finish a line "
                               f"within {seconds:g} seconds.|n")

    def _cut_line(self) -> None:
        self._splitter.clear()
        if hasattr(self.chan, "clear_input") and getattr(self.chan, "_editor", None):
            self.chan.clear_input()

    def _send_line(self, text: str) -> None:
        if not self._started:
            return
        self._unanswered += 1
        self.data_in("text", [text], {})

    def input_answered(self) -> None:
        self._unanswered = max(0, self._unanswered - 1)
        if self._exec_steps and self._unanswered == 0:
            self._exec_steps.pop(0)()
        self._close_if_answered()

    def _run_command(self, command: str) -> None:
        """exec: a first empty input is answered after the login's own output (the room,
        the greeting), which is dropped; then the command runs, and its answer is all the
        client gets before the channel closes."""
        self._discard_output = True
        self._exec_steps = [lambda: self._exec_send(command)]
        self._send_line("")

    def _exec_send(self, command: str) -> None:
        self._discard_output = False
        self._send_line(command)
        self._close_when_answered = True

    def _close_if_answered(self) -> None:
        if (self._close_when_answered and self._unanswered == 0 and not self._exec_steps
                and not self._pending):
            self._close_when_answered = False
            self.flush_output()
            self._end(0)

    def _clear_screen(self, line: str, pos: int) -> tuple[str, int]:
        """Ctrl-L: clear the screen; the editor redraws the line being typed."""
        self.chan.write(CLEAR_SCREEN)
        return line, pos

    # ------------------------------------------------------------ output

    def send_text(self, text: str, **kwargs: Any) -> None:
        self._queue(render(text, self.protocol_flags) + "\n")

    def send_prompt(self, text: str, **kwargs: Any) -> None:
        self._queue(render(text, self.protocol_flags))

    def send_default(self, cmdname: str, args: list[Any], kwargs: dict[str, Any]) -> None:
        if cmdname == "echo" and hasattr(self.chan, "set_echo") and self._term:
            hidden = bool(kwargs.get("hidden", args[0] if args else False))
            self.chan.set_echo(not hidden)  # the line editor stops echoing a password

    def _queue(self, text: str) -> None:
        if self._discard_output:
            return
        self._out.append(text)
        if not self._write_scheduled:
            self._write_scheduled = True
            self._handler.write_soon(self)

    def flush_output(self) -> None:
        """Write what the game sent this turn in one piece; cut off a client that stopped
        reading once `max_output_buffer` waits for it."""
        self._write_scheduled = False
        if not self._out or self.chan is None:
            return
        data, self._out = "".join(self._out), []
        try:
            self.chan.write(data)
        except (asyncssh.Error, OSError, BrokenPipeError):
            return  # the channel is closing; connection_lost follows
        waiting = self.chan.get_write_buffer_size()
        if waiting > self._handler.settings.max_output_buffer:
            log.warning("session %d (%s): client stopped reading; %d bytes of output wait; "
                        "disconnecting it", self.sessid, self.address, waiting)
            if self._conn is not None:
                self._conn.abort()

    def disconnect(self, reason: str = "") -> None:
        if reason:
            self._discard_output = False
            self.send_text(reason)
        self.flush_output()
        self._end(0)
        self._handler.disconnect(self, reason)

    def _end(self, status: int) -> None:
        if self.chan is not None:
            try:
                self.chan.exit(status)
            except (asyncssh.Error, OSError):
                self.chan.close()

    def _pause_changed(self, paused: bool, flipped: bool) -> None:
        if self.chan is None:
            return
        if not self._paused:
            self._drain()  # the lines that waited go first, in order
        want = bool(self._paused)
        if want != self._reading_paused:
            self._reading_paused = want
            if want:
                self.chan.pause_reading()
            else:
                self.chan.resume_reading()  # delivers what asyncssh held, at once
