"""The server's sessions: built from the portal's frames, running each player's input.

Input is run in order per session. A command may be `async` (a login hashing a
password); the session's next input waits for it while other sessions go on. When an
input is finished its `seq` is acknowledged to the portal, after the output it caused and
after any session data it changed, all in one write at the end of the loop turn: so the
portal never forgets an input whose effects it has not seen, and a crashed server's
unfinished input is replayed into the next one.

With a world (`server.world`), each input runs inside a savepoint: if it raises, its
world writes are undone (and, for a command that did not `await`, its output dropped)
before the player is told. `flush` commits the world's change buffer, in one transaction,
before the output, session data and acks of the batch are written: nothing a player is
told, and no input the portal forgets, can be lost by a crash.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol

from ipc.frames import (
    IDLE_ARGS,
    Ack,
    DataOut,
    Frame,
    InputItem,
    OutputItem,
    PSync,
    SDisconn,
    SessionData,
    SLogin,
    SSync,
    counts_as_command,
)
from ipc.marker import Slot
from server import oob
from server.api import Context, Game, Registry
from server.session import ASK_KEY, ServerSession
from server.world.undo import SYNC

if TYPE_CHECKING:
    from server.world.world import World

log = logging.getLogger(__name__)

NOT_AVAILABLE = "Command '{}' is not available. Type \"help\" for help."
ERROR_MESSAGE = ("|rAn error occurred while running that command; it was logged, and "
                 "nothing it changed was kept.|n")


class SeqMarker(Protocol):
    """Where the server notes the input it is running (so a hang names its culprit):
    `slot[0] = seq` (`ipc.marker.FileMarker`)."""

    slot: Slot


class NoMarker:
    def __init__(self) -> None:
        self.slot: Slot = [0]


class ServerSessionHandler:
    def __init__(
        self,
        registry: Registry,
        send: Callable[[Frame], None],
        marker: SeqMarker | None = None,
        flush_link: Callable[[], None] = lambda: None,
        send_now: Callable[[list[Frame]], None] | None = None,
    ) -> None:
        self.registry = registry
        self.game: Game | None = None
        # decides whether a session that arrives logged in (SSH) may play (multisession)
        self.admit_login: Callable[[ServerSession], bool] = lambda session: True
        self.sessions: dict[int, ServerSession] = {}
        self.run_id = ""
        self.world: World | None = None
        # a commit that fails: nothing of the batch may leave (the server exits, the
        # portal replays the unacknowledged input into the next one)
        self.commit_failed: Callable[[BaseException], None] = _reraise
        self._send = send
        self._flush_link = flush_link
        # the frames of a flush, written at once with everything sent before them (one
        # write, no loop turn); by default `send` each, then `flush_link`
        self._send_now = send_now
        self._holding = False  # in a read from the portal: its end flushes (`hold_flush`)
        self._marker: SeqMarker = marker or NoMarker()
        self._out: list[OutputItem] = []
        self._acks: list[int] = []
        self._dirty: dict[int, ServerSession] = {}
        self._flush_scheduled = False
        self._now = 0.0  # see `receive_input`
        self._loop: asyncio.AbstractEventLoop | None = None  # see `_schedule_flush`
        self._busy: dict[int, deque[InputItem]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._out_marks: list[int] = []  # where the running sync inputs' output starts
        self._sync_ids: set[int] = set()  # sessions named by the PSync frames so far
        self._sync_is_delta = False  # a presync came first: the attach lists changes only

    # ------------------------------------------------------------ from the portal

    def sync(self, frame: PSync) -> list[ServerSession]:
        """Rebuild every session from the portal's copy.

        A new run_id (the portal was killed and started again) ends every old session; a
        whole copy (no `presync` ahead of it: a cold attach, or a portal that took over
        from another) ends every session it does not name: the old portal closed them
        (TLS, SSH and web players cannot move) and could no longer tell us. Either way
        their disconnect hooks run, once; a standby's attach after its presync is a
        change list (`gone` names what closed)."""
        if frame.run_id != self.run_id:
            self.run_id = frame.run_id
            self._end_sessions(list(self.sessions))
        if frame.presync:
            self._sync_is_delta = True
        self._sync_ids.update(data.sessid for data in frame.sessions)
        if not frame.more and not frame.presync:
            if not self._sync_is_delta:
                self._end_sessions([sessid for sessid in self.sessions
                                    if sessid not in self._sync_ids])
            self._sync_ids, self._sync_is_delta = set(), False
        elif not frame.more:
            self._sync_ids = set()  # the presync is complete; its attach may list fewer
        for data in frame.sessions:
            session = self.sessions.get(data.sessid) or self._new_session(data)
            session.load_sync_data(data)
            session.dirty = False
            session.at_sync()
            if self.world is not None:
                self.world.bind(session)  # the puppet its data names, back after a reload
        for sessid in frame.gone:  # closed after they were sent ahead (their hooks ran)
            self.sessions.pop(sessid, None)
        for count in frame.counters:
            known = self.sessions.get(count.sessid)
            if known is not None:
                known.cmd_total, known.cmd_last = count.cmd_total, count.cmd_last
                known.cmd_last_visible = count.cmd_last_visible
        return list(self.sessions.values())

    def _end_sessions(self, sessids: list[int]) -> None:
        """Sessions the portal no longer has: each ends as if the portal said so."""
        if not sessids:
            return
        log.info("%d sessions the portal no longer has are ended", len(sessids))
        # all leave first: a hook telling the others must not reach one that is gone
        ended = [self.sessions.pop(sessid) for sessid in sessids]
        for session in ended:
            self._ended(session)

    def connect(self, data: SessionData) -> ServerSession:
        """A new session. One the portal authenticated (SSH) arrives logged in: the game
        runs its login hook at once, and never shows it the connection screen."""
        session = self._new_session(data)
        session.load_sync_data(data)
        self.run_hooks("at_session_connect", session)
        if session.logged_in and self.admit_login(session):
            self._puppet_at_login(session)
            self.run_hooks("at_session_login", session)
        return session

    def portal_disconnect(self, sessid: int) -> None:
        session = self.sessions.pop(sessid, None)
        if session is not None:
            self._ended(session)

    def _ended(self, session: ServerSession) -> None:
        """(`session` has left `sessions`) its disconnect hooks, and its puppet let go."""
        self._dirty.pop(session.sessid, None)
        self.run_hooks("at_session_disconnect", session)
        if self.world is not None:
            try:
                self.world.forget_session(session)
            except Exception:
                log.exception("unpuppeting session %d failed", session.sessid)

    def _puppet_at_login(self, session: ServerSession) -> None:
        """A session that arrives logged in (SSH) gets its puppet like a typed login."""
        if self.world is None or session.uid is None or session.protocol_flags.get("EXEC"):
            return
        try:
            self.world.login(session, session.uid, session.uname or f"player{session.uid}")
        except Exception:
            log.exception("puppeting session %d at login failed", session.sessid)

    def update_flags(self, sessid: int, flags: dict[str, Any]) -> None:
        session = self.sessions.get(sessid)
        if session is not None:
            dict.update(session.protocol_flags, flags)

    def receive_input(self, items: Iterable[InputItem]) -> None:
        busy, run = self._busy, self._run
        self._now = time.time()  # when these lines arrived: each command's `cmd_last`
        for item in items:
            queue = busy.get(item.sessid) if busy else None
            if queue is not None:
                queue.append(item)
            else:
                run(item)  # (it notes its seq in the marker, for the supervisor's hang watch)
        self._marker.slot[0] = 0  # no input runs now (once per read, not per command)

    # ------------------------------------------------------------ to the portal

    def data_out(self, session: ServerSession, **kwargs: Any) -> None:
        sessid = session.sessid
        if self.sessions.get(sessid) is not session:
            return  # a session that ended: its id may be another player's in a new run
        for cmdname, value in kwargs.items():
            args, cmd_kwargs = _split_output(value)
            self._out.append(OutputItem(sessid, cmdname, args, cmd_kwargs))
        self._schedule_flush()

    def text_out(self, session: ServerSession, text: str) -> None:
        """`data_out(session, text=text)`, the most common output, in one call."""
        sessid = session.sessid
        if self.sessions.get(sessid) is session:
            self._out.append(OutputItem(sessid, "text", [text], {}))
            if not self._flush_scheduled:
                self._schedule_flush()

    def take_back_echo_on(self, session: ServerSession) -> bool:
        """A hidden question follows a hidden answer (a password's confirmation): drop the
        echo-on queued for the answer, if it has not left yet, so echo stays off between
        the two; a client shown WONT and WILL ECHO in a row may echo the second password
        (TinTin++ did). True if it was taken back (echo is still off)."""
        for index in range(len(self._out) - 1, -1, -1):
            item = self._out[index]
            if item.sessid == session.sessid and item.cmdname == "echo":
                if item.kwargs.get("hidden") is False:
                    del self._out[index]
                    self._out_marks = [mark - (mark > index) for mark in self._out_marks]
                    return True
                return False
        return False

    def disconnect(self, session: ServerSession, reason: str) -> None:
        self.flush()
        self._send(SDisconn(sessid=session.sessid, reason=reason))
        self.portal_disconnect(session.sessid)

    def note_dirty(self, session: ServerSession) -> None:
        if session.sessid in self.sessions:
            self._dirty[session.sessid] = session
            self._schedule_flush()

    def flush(self) -> None:
        """Commit the world's writes, then send output, then changed session data, then
        acks: in that order, one write."""
        self._flush_scheduled = False
        self.commit()
        frames: list[Frame] = []
        if self._out:
            frames.append(DataOut(items=self._out))
            self._out = []
        if self._dirty:
            synced = self._sync_frame(self._dirty.values())
            if synced is not None:
                frames.append(synced)
            self._dirty = {}
        if self._acks:
            frames.append(Ack(seqs=self._acks))
            self._acks = []
        if self._send_now is not None:
            self._send_now(frames)  # written now, not one loop turn later
        else:
            for frame in frames:
                self._send(frame)
            self._flush_link()

    def hold_flush(self) -> None:
        """A read from the portal is being handled: what its input sends waits for
        `release_flush()` at the read's end (one write for the read, in the same loop
        turn), not for a scheduled flush."""
        self._holding = True

    def release_flush(self) -> None:
        self._holding = False
        if self._flush_scheduled:
            self.flush()

    def commit(self) -> None:
        """The world's change buffer, in one transaction (nothing to do: nothing done)."""
        world = self.world
        if world is not None and world.writable:
            try:
                world.commit()
            except Exception as exc:
                self.commit_failed(exc)
                raise

    def push_sessions(self, sessions: Iterable[ServerSession]) -> None:
        frame = self._sync_frame(sessions)
        if frame is not None:
            self._send(frame)

    def _sync_frame(self, sessions: Iterable[ServerSession]) -> SSync | None:
        data = []
        for session in sessions:
            session.dirty = False
            data.append(session.get_changed_data())
            session.note_synced()
        return SSync(sessions=data) if data else None

    def push_unsynced(self) -> None:
        """Push every session whose data differs from what the portal last saw, however
        it changed (a list inside `server_data` appended to marks nothing dirty)."""
        self.push_sessions([s for s in self.sessions.values() if not s.is_synced()])

    def notify_login(self, session: ServerSession) -> None:
        assert session.uid is not None and session.uname is not None
        self._send(SLogin(sessid=session.sessid, uid=session.uid, uname=session.uname))

    # ------------------------------------------------------------ running input

    def run_input(
        self, session: ServerSession, cmdname: str, args: list[Any], kwargs: dict[str, Any]
    ) -> None:
        """Run one input for a session outside the portal's flow (no ack)."""
        self._dispatch(session, InputItem(0, session.sessid, cmdname, args, kwargs))

    async def wait_idle(self, timeout: float) -> bool:
        """Wait until no command is running; False if some still ran after `timeout`."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def _run(self, item: InputItem) -> None:
        """One input, start to end. This runs for every line a player types, so what
        `_dispatch` and `_finish` do is written out here (one frame instead of five): the
        savepoint, the output mark, the command, the count and the ack."""
        session = self.sessions.get(item.sessid)
        seq = item.seq
        if session is None:
            self._ack(seq)
            return
        marks, text = self._out_marks, item.cmdname == "text"
        self._marker.slot[0] = seq
        SYNC.append(None)  # `World.begin_command`: the savepoint (a log at its first write)
        marks.append(len(self._out))
        try:
            pending = self._run_command(session, item) if text else self._call(session, item)
        except (Exception, SystemExit):  # a command calling sys.exit() ends only itself
            self._report_error(session, item)
            pending = None
        finally:
            marks.pop()
            undo = SYNC.pop()
            if undo is not None and self.world is not None:
                self.world.release_log(undo)
        if pending is not None:
            self._busy[item.sessid] = deque()
            self._idle.clear()
            task = asyncio.ensure_future(self._await(session, item, pending))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return
        if text and item.args != IDLE_ARGS:  # `counts_as_command`, inline
            session.cmd_total += 1
            session.cmd_last = session.cmd_last_visible = self._now
        if seq:
            self._acks.append(seq)
            if not self._flush_scheduled:
                self._schedule_flush()

    async def _await(
        self, session: ServerSession, item: InputItem, pending: Awaitable[None]
    ) -> None:
        world = self.world
        mark = None if world is None else world.begin_task()  # this task's own savepoint
        try:
            await pending
        except (Exception, SystemExit):  # a command calling sys.exit() ends only itself
            self._report_error(session, item, sync=False)
        finally:
            if world is not None and mark is not None:
                world.end_task(mark)
        self._finish(session, item)
        queue = self._busy.pop(item.sessid, deque())
        if not self._busy:
            self._idle.set()
        self.receive_input(queue)

    def _finish(self, session: ServerSession, item: InputItem) -> None:
        if counts_as_command(item.cmdname, item.args):
            session.cmd_total += 1
            session.cmd_last = session.cmd_last_visible = time.time()
        self._ack(item.seq)

    def _dispatch(self, session: ServerSession, item: InputItem) -> Awaitable[None] | None:
        mark = self._savepoint()
        marks = self._out_marks
        marks.append(len(self._out))
        try:
            if item.cmdname == "text":
                return self._run_command(session, item)
            return self._call(session, item)
        except (Exception, SystemExit):  # a command calling sys.exit() ends only itself
            self._report_error(session, item)
            return None
        finally:
            marks.pop()
            self._release(mark)

    def _call(self, session: ServerSession, item: InputItem) -> Awaitable[None] | None:
        """An out-of-band input: the game's inputfunc of that name, else a built-in one."""
        name = item.cmdname.lower()
        func = self.registry.inputfuncs.get(name)
        if func is not None:
            return func(session, item.args, item.kwargs)
        builtin = oob.INPUTS.get(name)  # Core.Supports.*, Char.Login, MSDP's commands
        if builtin is None:
            log.debug("no inputfunc for %r", item.cmdname)
            return None
        assert self.game is not None
        return builtin(self.game, session, item.args, item.kwargs)

    def _savepoint(self) -> Any:
        return None if self.world is None else self.world.begin_command()

    def _release(self, mark: Any) -> None:
        if mark is not None and self.world is not None:
            self.world.end_command(mark)

    def _undo(self, sync: bool) -> None:
        """The running input failed: its world writes are undone, and when it ran without
        awaiting, the output it made is dropped (its player is told instead)."""
        if self.world is not None:
            try:
                self.world.rollback_current()
            except Exception:
                log.exception("rolling back a failed command failed")
        if sync and self._out_marks and len(self._out) >= self._out_marks[-1]:
            del self._out[self._out_marks[-1]:]

    def _run_command(self, session: ServerSession, item: InputItem) -> Awaitable[None] | None:
        args = item.args
        line = (args[0] if args[0].__class__ is str else str(args[0])) if args else ""
        data = session.server_data
        if ASK_KEY in data:  # (most lines: nothing was asked)
            asked = data[ASK_KEY]
            if isinstance(asked, dict):
                return self._run_reply(session, asked, line)
        word, _, rest = line.strip().partition(" ")
        if not word:
            return None
        cmd = self.registry.find(word, session.logged_in)
        game = self.game
        assert game is not None
        if cmd is None:
            if not self._traverse(session, line.strip()):
                session.msg(NOT_AVAILABLE.format(word))
            return None
        if (cmd.admin or cmd.perm is not None) and not game.has_perm(session, cmd.needs):
            session.msg(NOT_AVAILABLE.format(word))
            return None
        return cmd.func(Context(session, game, word, rest.strip() if rest else rest, cmd))

    def _traverse(self, session: ServerSession, name: str) -> bool:
        """A line that names an exit where the session's puppet is (key or alias, any
        case) and no command: the exit is used (`at_traverse`), as in Evennia."""
        puppet = session.puppet
        here = None if puppet is None else puppet.location
        if here is None:
            return False
        want = name.lower()
        for exit_ in here.exits:
            if exit_.key.lower() == want or any(a.lower() == want for a in exit_.aliases):
                destination = exit_.destination
                assert puppet is not None and destination is not None
                exit_.at_traverse(puppet, destination)
                return True
        return False

    def _run_reply(self, session: ServerSession, asked: dict[str, Any],
                   line: str) -> Awaitable[None] | None:
        """The line the game asked for with `session.ask`: to its reply handler, unlogged."""
        del session.server_data[ASK_KEY]
        if asked.get("hidden"):
            session.data_out(echo=([], {"hidden": False}), text="")  # the Enter was not shown
        key = str(asked.get("to"))
        cmd = self.registry.replies.get(key)
        if cmd is None:
            log.warning("session %d answered %r, which no reply handler takes", session.sessid,
                        key)
            return None
        assert self.game is not None
        ctx = Context(session, self.game, key, line.strip(), cmd, dict(asked.get("data") or {}))
        try:
            pending = cmd.func(ctx)
        except (Exception, SystemExit):  # a command calling sys.exit() ends only itself
            self._report_reply_error(session, key, sync=True)
            return None
        return None if pending is None else self._guard_reply(session, key, pending)

    async def _guard_reply(self, session: ServerSession, key: str,
                           pending: Awaitable[None]) -> None:
        try:
            await pending
        except (Exception, SystemExit):  # a command calling sys.exit() ends only itself
            self._report_reply_error(session, key, sync=False)

    def _report_reply_error(self, session: ServerSession, key: str, sync: bool) -> None:
        log.exception("reply %r of session %d failed (its line is not logged)", key,
                      session.sessid)
        self._undo(sync)
        session.msg(ERROR_MESSAGE)

    def _report_error(self, session: ServerSession, item: InputItem, sync: bool = True) -> None:
        log.exception("input %r of session %d failed", self._loggable(item), session.sessid)
        self._undo(sync)
        session.msg(ERROR_MESSAGE)

    def _loggable(self, item: InputItem) -> Any:
        """The input as it may be logged: a connection-screen command (`connect NAME
        PASSWORD`) only by its first word, so no password reaches a log."""
        if item.cmdname != "text" or not item.args:
            return item.args or item.cmdname
        word = str(item.args[0]).strip().partition(" ")[0]
        if word.lower() not in self.registry.commands or self.registry.on_screen(word):
            return f"{word} ..."
        return item.args

    def _ack(self, seq: int) -> None:
        if seq:
            self._acks.append(seq)
            self._schedule_flush()

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            if self._holding:
                return  # the read's end flushes (`release_flush`)
            loop = self._loop
            if loop is None or loop.is_closed():  # (get_running_loop costs a getpid())
                loop = self._loop = asyncio.get_running_loop()
            loop.call_soon(self.flush)

    # ------------------------------------------------------------ helpers

    def _new_session(self, data: SessionData) -> ServerSession:
        session = ServerSession()
        session.sessionhandler = self
        session.sessid = data.sessid
        self.sessions[data.sessid] = session
        return session

    def run_hooks(self, name: str, *args: Any) -> None:
        """Run a game hook; an exception is logged, not raised (see `run_hooks_strict`)."""
        try:
            self.run_hooks_strict(name, *args)
        except (Exception, SystemExit):  # a command calling sys.exit() ends only itself
            log.exception("hook %s failed", name)

    def run_hooks_strict(self, name: str, *args: Any) -> None:
        for func in self.registry.hooks.get(name, []):
            func(self.game, *args)


def _reraise(exc: BaseException) -> None:
    raise exc


def _split_output(value: Any) -> tuple[list[Any], dict[str, Any]]:
    """Evennia's output forms: "text", ("text", {opts}), ([args], {kwargs}), [args]."""
    if isinstance(value, str):
        return [value], {}
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], dict):
        first = value[0]
        return (list(first) if isinstance(first, list | tuple) else [first]), dict(value[1])
    if isinstance(value, list | tuple):
        return list(value), {}
    if isinstance(value, dict):
        return [], dict(value)
    return [value], {}
