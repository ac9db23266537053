"""The server process: imports the game, dials the portal, runs commands.

Start-up, in order (a failure at any step before "ready" is sent to the supervisor as
`StartFailed` with the traceback, and the process exits non-zero):

1. dial the supervisor's control socket (heartbeats flow from this event loop from now on);
2. import the game package, open the database and load the world (read-only), then run
   `at_server_start`;
3. dial the portal. A normal server is attached at once (`PSync`); a *standby* (started
   for a reload or reset) waits, reports ready, and is attached once the old server has
   stopped and the portal sends `PSync`. While it waits it catches up on the world's
   changes every `CATCH_UP_EVERY` seconds, so that at the attach only the last few
   milliseconds of the old server's writes remain to read;
4. at the attach the world catches up a last time and opens for writes (and its timers
   start); sessions are bound to their puppets again;
5. on `StopServer` it finishes running commands, runs the stop hooks, commits and pushes
   every session to the portal, says `ServerStopped`, and exits.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
import traceback
from collections.abc import Iterable
from typing import Any

from ipc.child import ChildEnv, ChildProcess, run_child
from ipc.connection import FrameConnection, connect_unix
from ipc.frames import (
    AdminRequest,
    AuthRequest,
    ControlFrame,
    DataIn,
    Detach,
    Frame,
    GameFrame,
    Heartbeat,
    Hello,
    Mode,
    PConn,
    PConnSync,
    PDisconn,
    PSync,
    Ready,
    Refused,
    ServerStopped,
    Shutdown,
    StartFailed,
    StopServer,
    SyncDone,
    Welcome,
)
from ipc.marker import FileMarker, marker_path
from ipc.settings import ServerSettings, Settings
from server import auth
from server.accounts import AccountError, AccountStore, ScryptCost
from server.api import Command, registry
from server.keys import PublicKeyStore
from server.loader import load_game
from server.logins import Logins
from server.session import ServerSession
from server.sessions import ServerSessionHandler
from server.store import KeyValueStore, open_database
from server.world import World

log = logging.getLogger("server")

EXIT_START_FAILED = 3
EXIT_REFUSED = 4
EXIT_PORTAL_GONE = 75
EXIT_COMMIT_FAILED = 5
CATCH_UP_EVERY = 0.02  # a standby reads the world's new changes this often
HOLD_MAX_FRAMES = 10_000  # output held while the portal moves; beyond it, dropped (logged)
TAKEN_OVER = ("|rYour account was just logged in from another connection ({address}); "
              "this one is closed.|n")

START_HOOKS = {"reload": "at_server_reload_start", "reset": "at_server_cold_start",
               "start": "at_server_cold_start"}
STOP_HOOKS = {"reload": "at_server_reload_stop", "reset": "at_server_cold_stop",
              "shutdown": "at_server_cold_stop"}


class ServerGame:
    """The running server as the game sees it (`server.api.Game`)."""

    def __init__(self, name: str, accounts: AccountStore, store: KeyValueStore,
                 handler: ServerSessionHandler, request: Any, keys: PublicKeyStore,
                 settings: ServerSettings | None = None, world: World | None = None,
                 unlimited_addresses: Iterable[str] = ()) -> None:
        self._name = name
        self._world = world
        self._accounts = accounts
        self._settings = settings or ServerSettings()
        self._logins = Logins(accounts, self._settings.logins, self._settings.login_workers,
                              unlimited=unlimited_addresses)
        self._store = store
        self._keys = keys
        self._handler = handler
        self._request = request

    @property
    def name(self) -> str:
        return self._name

    @property
    def accounts(self) -> AccountStore:
        return self._accounts

    @property
    def logins(self) -> Logins:
        return self._logins

    @property
    def store(self) -> KeyValueStore:
        return self._store

    @property
    def keys(self) -> PublicKeyStore:
        return self._keys

    @property
    def world(self) -> World:
        if self._world is None:
            raise RuntimeError("this server has no world")
        return self._world

    def sessions(self) -> Iterable[ServerSession]:
        return list(self._handler.sessions.values())

    def logged_in(self) -> Iterable[ServerSession]:
        return [s for s in self._handler.sessions.values() if s.logged_in]

    def broadcast(self, text: str) -> None:
        for session in self._handler.sessions.values():
            session.msg(text)

    def request(self, action: str, session: ServerSession | None = None) -> None:
        self._request(action, session.sessid if session else 0)

    async def login(self, session: ServerSession, uid: int, name: str) -> None:
        self.apply_multisession(session, uid, name)
        session.login(uid, name)
        if self._world is not None:
            self._world.login(session, uid, name)
        self._handler.run_hooks("at_session_login", session)

    def apply_multisession(self, session: ServerSession, uid: int, name: str) -> None:
        """`server.multisession` for `session` logging in as `uid`: AccountError when the
        account plays elsewhere and that is refused; with takeover, the others are closed."""
        others = [s for s in self.logged_in() if s.uid == uid and s is not session]
        mode = self._settings.multisession
        if others and mode == "refuse":
            raise AccountError(f"{name} is already playing from another connection.",
                               "in_use")
        if mode == "takeover":
            for other in others:
                other.disconnect(TAKEN_OVER.format(address=session.address))

    def arrived_logged_in(self, session: ServerSession) -> bool:
        """A session the portal authenticated (SSH) arrives logged in: the same
        multisession rule as a typed login. False when refused (the session is closed)."""
        if session.uid is None or session.protocol_flags.get("EXEC"):
            return True  # a one-shot `ssh host cmd` runs beside the account's live session
        try:
            self.apply_multisession(session, session.uid, session.uname or "")
        except AccountError as exc:
            session.disconnect(f"|r{exc}|n")
            return False
        return True

    def is_admin(self, session: ServerSession) -> bool:
        uid = session.uid
        return session.logged_in and uid is not None and self._accounts.is_admin(uid)

    def has_perm(self, session: ServerSession, perm: str | None) -> bool:
        if perm is None:
            return True
        uid = session.uid
        return session.logged_in and uid is not None and self._accounts.has_role(uid, perm)

    def commands(self) -> Iterable[Command]:
        return registry.unique_commands()


class ServerProcess(ChildProcess):
    def __init__(self, env: ChildEnv, settings: Settings) -> None:
        super().__init__()
        self.env = env
        self.settings = settings
        self.control: FrameConnection | None = None
        self.link: FrameConnection | None = None
        self.marker = FileMarker(marker_path(env.state_dir, os.getpid()))
        self.handler = ServerSessionHandler(registry, self._send, self.marker, self._flush,
                                            self._send_now)
        self.stopping = False
        self.ready_sent = False
        self.attached_before = False  # a re-attach (after a portal restart) runs no start hook
        # while the portal moves (Detach): frames for the portal, and the run they belong to
        self.held: list[Frame] | None = None
        self.held_run = ""
        self.held_dropped = 0
        self.world: World | None = None
        self.timer_handle: asyncio.TimerHandle | None = None

    async def main(self) -> int:
        env = self.env
        self.control = await connect_unix(
            str(env.control_socket), ControlFrame, self.on_control, self.on_control_closed,
            name="server-control", heartbeat=self.settings.supervisor.heartbeat_interval,
        )
        hello = Hello(role="server", pid=os.getpid(), secret=env.secret, standby=env.standby)
        self.control.send(hello)
        self.control.flush()  # before anything else: a heartbeat (urgent) must not pass it
        try:
            await self.load()
        except BaseException:
            return self.fail(traceback.format_exc())
        await self.dial_portal()
        try:
            return await self.done
        finally:
            self.marker.close()

    async def dial_portal(self) -> None:
        """Open the game link and say hello (OSError when the portal does not answer)."""
        env = self.env
        # A portal that stops reading stops us reading its input: no command runs whose
        # output could not be written, so our memory stays bounded (ipc.connection).
        self.link = await connect_unix(
            str(env.portal_socket), GameFrame, self.on_frame, self.on_link_closed,
            name="server-link", pause_reading_when_full=True,
            on_read_done=lambda conn: self.handler.release_flush(),
        )
        standby = env.standby and not self.attached_before
        self.link.send(Hello(role="server", pid=os.getpid(), secret=env.secret,
                             standby=standby))

    async def load(self) -> None:
        load_game(self.env.game_dir)
        db = open_database(self.env.state_dir / "game.db")
        server = self.settings.server
        accounts = AccountStore(db, server.login_workers, ScryptCost(n=server.scrypt_n))
        started = time.perf_counter()
        steps = World.opening(db)
        while True:  # in steps: the loop (heartbeats) runs between them
            try:
                next(steps)
            except StopIteration as done:
                self.world = world = done.value
                break
            await asyncio.sleep(0)
        log.info("world loaded: %d objects in %.3fs", len(world), time.perf_counter() - started)
        game = ServerGame(self.settings.game.name, accounts, KeyValueStore(db, world),
                          self.handler, self.request, PublicKeyStore(db), server, world,
                          self.settings.portal.unlimited_addresses)
        self.handler.world = world
        self.handler.commit_failed = self.commit_failed
        self.handler.game = game
        self.handler.admit_login = game.arrived_logged_in
        self.handler.run_hooks_strict("at_server_start")

    def fail(self, message: str) -> int:
        print(message, file=sys.stderr, flush=True)
        if self.control is not None:
            self.control.send(StartFailed(message=message))
            self.control.flush()
        self.marker.close()
        return EXIT_START_FAILED

    def request(self, action: str, sessid: int) -> None:
        self._send(AdminRequest(action=action, sessid=sessid))

    def _send(self, frame: Any) -> None:
        if self.held is not None:  # until the sync is done, even on a new link: in order
            if len(self.held) < HOLD_MAX_FRAMES:
                self.held.append(frame)
            else:
                self.held_dropped += 1
        elif self.link is not None:
            self.link.send(frame)

    def _flush(self) -> None:
        if self.link is not None:
            self.link.flush()

    def _send_now(self, frames: list[Frame]) -> None:
        """The handler's flush: its frames and everything before them, in one write."""
        if self.held is not None or self.link is None:
            for frame in frames:
                self._send(frame)
        else:
            self.link.send_now(*frames)

    # ------------------------------------------------------------ game link

    def on_frame(self, conn: FrameConnection, frame: Any) -> None:
        handler = self.handler
        match frame:
            case DataIn(items=items):
                handler.hold_flush()  # released at the end of this read
                handler.receive_input(items)
            case PConn(session=data):
                handler.connect(data)
            case PConnSync(sessid=sessid, protocol_flags=flags):
                handler.update_flags(sessid, flags)
            case PDisconn(sessid=sessid):
                handler.portal_disconnect(sessid)
            case PSync():
                self.attach(frame)
            case AuthRequest():
                self.spawn(self.answer_auth(frame))
            case StopServer(mode=mode):
                self.spawn(self.stop(mode))
            case Detach():
                self.detach()
            case Welcome():
                if self.env.standby and not self.attached_before:
                    self.spawn(self.keep_caught_up())
                    self.report_ready({"standby": True})
            case Refused(reason=reason):
                log.error("portal refused this server: %s", reason)
                self.finish(EXIT_REFUSED)
            case Heartbeat():
                pass
            case _:
                log.warning("unexpected frame from the portal: %s", type(frame).__name__)

    def attach(self, frame: PSync) -> None:
        world = self.world
        if world is not None and not world.writable:  # the old server has stopped
            started = time.perf_counter()
            rows = world.catch_up()
            world.open_for_writes()
            self.arm_timers()
            log.info("world caught up on %d rows in %.1f ms and open for writes", rows,
                     (time.perf_counter() - started) * 1000)
        sessions = self.handler.sync(frame)
        if frame.more or frame.presync:
            return  # more sessions follow, or these came ahead of a hand-over
        log.info("attached to portal run %s in mode %s with %d sessions",
                 frame.run_id, frame.mode, len(sessions))
        hook = START_HOOKS.get(frame.mode)
        if hook and not self.attached_before:
            self.handler.run_hooks(hook)
        self.attached_before = True
        held, self.held = self.held, None
        self._send(SyncDone())
        if held is not None:
            self.send_held(held, frame.run_id)
        self.report_ready({"attached": True, "sessions": len(sessions)})

    def detach(self) -> None:
        """The portal moves its players to a new portal: send what we have, close the
        link, hold what the game sends until a portal has synced with us again (even on
        the new link, so nothing overtakes it), and dial until a portal answers."""
        if self.link is None or self.stopping:  # (a stop under way keeps its link)
            return
        self.handler.flush()
        link, self.link = self.link, None
        self.held, self.held_run, self.held_dropped = [], self.handler.run_id, 0
        link.close("the portal is moving")
        log.info("the portal is moving; holding output until it is back")
        self.spawn(self.redial())

    def send_held(self, held: list[Frame], run_id: str) -> None:
        """Attached again (SyncDone sent): what was held goes out, in order, if this
        portal has the same sessions."""
        if run_id != self.held_run:
            log.warning("a portal of another run attached; %d held frames dropped", len(held))
            return
        for frame in held:
            self._send(frame)
        self._flush()
        if self.held_dropped:
            log.warning("%d frames of output were dropped while the portal moved (over %d)",
                        self.held_dropped, HOLD_MAX_FRAMES)
        log.info("%d held frames sent to the portal", len(held))

    async def answer_auth(self, request: AuthRequest) -> None:
        """An SSH login question from the portal (it resends it if we die first)."""
        game = self.handler.game
        assert game is not None and isinstance(game, ServerGame)
        try:
            result = await auth.answer(request, game.accounts, game.keys, game.logins)
        except Exception:
            log.exception("ssh login %s of %r failed", request.method, request.username)
            return  # unanswered: the portal's bounded wait tells the player
        self._send(result)
        self._flush()

    async def keep_caught_up(self) -> None:
        """A standby: read what the serving server commits, until this one is attached."""
        world = self.world
        while world is not None and not world.writable and not self.done.done():
            try:
                world.catch_up()
            except Exception:
                log.exception("catching up on the world failed; trying again")
            await asyncio.sleep(CATCH_UP_EVERY)

    def commit_failed(self, exc: BaseException) -> None:
        """Nothing of this batch may leave: exit at once, so the portal replays the input
        it has no ack for into the next server (which loads what was committed)."""
        log.critical("committing the world failed (%r); exiting without sending the batch",
                     exc, exc_info=exc)
        logging.shutdown()
        os._exit(EXIT_COMMIT_FAILED)

    # ------------------------------------------------------------ timers

    def arm_timers(self) -> None:
        """Wake up when the next stored call is due (again after every change)."""
        world = self.world
        if world is None or world.timers is None:
            return
        world.timers.on_change = self.arm_timers
        if self.timer_handle is not None:
            self.timer_handle.cancel()
            self.timer_handle = None
        due = world.timers.next_due()
        if due is None or self.stopping or not world.writable:
            return
        loop = asyncio.get_running_loop()
        self.timer_handle = loop.call_later(max(0.0, due - time.time()), self.fire_timers)

    def fire_timers(self) -> None:
        """Run every due call, each as a command of its own; commit with their output."""
        self.timer_handle = None
        world = self.world
        if world is None or world.timers is None or self.stopping or not world.writable:
            return
        timers = world.timers
        timers.on_change = lambda: None  # re-armed once, below
        try:
            for timer in timers.due():
                timers.consume(timer)
                self.run_timer(world, timer)
        finally:
            timers.on_change = self.arm_timers
        self.handler.flush()
        self.arm_timers()

    def run_timer(self, world: World, timer: Any) -> None:
        assert world.timers is not None
        mark = world.begin_command()
        try:
            result = world.timers.call(timer)
            if asyncio.iscoroutine(result):
                self.spawn(result)
        except Exception:
            log.exception("timer %r failed; its writes were undone", timer)
            world.rollback_current()
        finally:
            world.end_command(mark)

    def report_ready(self, info: dict[str, Any]) -> None:
        if self.control is not None:
            self.control.send(Ready(info=info))

    async def stop(self, mode: Mode) -> None:
        if self.stopping:
            return
        self.stopping = True
        log.info("stopping for %s", mode)
        handler = self.handler
        if not await handler.wait_idle(self.settings.server.stop_grace):
            log.warning("commands still running after %.1fs; stopping anyway",
                        self.settings.server.stop_grace)
        for hook in (STOP_HOOKS.get(mode), "at_server_stop"):
            if hook:
                handler.run_hooks(hook)
        if mode == "shutdown":  # the portal closes every connection next
            for session in handler.sessions.values():
                session.oob.goodbye("The game is shutting down.")
        handler.flush()
        if self.world is not None:  # the next server owns it from now on
            self.world.writable = False
        handler.push_unsynced()  # what changed unseen (a nested server_data change, ...)
        self._send(ServerStopped(mode=mode))
        if self.link is not None:
            self.link.close("server stopped")
            try:  # the final sessions can be megabytes: let them reach the portal
                await self.link.wait_closed(self.settings.server.stop_grace)
            except TimeoutError:
                log.error("the portal did not take the final session data in time")
        self.finish(0)

    def on_link_closed(self, conn: FrameConnection, reason: str) -> None:
        if self.stopping or self.done.done() or conn is not self.link:
            return
        self.link = None
        if not self.attached_before:
            log.error("portal link lost (%s); exiting so the supervisor starts a fresh server",
                      reason)
            self.finish(EXIT_PORTAL_GONE)
            return
        log.warning("portal link lost (%s); waiting for the portal to come back", reason)
        self.spawn(self.redial())

    async def redial(self) -> None:
        """The portal died or moves: dial its socket again until a portal answers (bounded
        by `start_timeout`). One that moved keeps the run_id and so our sessions; the
        supervisor's next portal after a crash sends a new run_id, and the old ones go."""
        timeout = self.settings.supervisor.start_timeout
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        started = loop.time()
        while not self.stopping and not self.done.done() and loop.time() < deadline:
            try:
                await self.dial_portal()
            except OSError:  # soon at first: a moving portal is back within milliseconds
                await asyncio.sleep(0.002 if loop.time() - started < 1.0 else 0.2)
                continue
            log.info("portal link open again")
            return
        if not self.done.done():
            log.error("the portal did not come back within %.0fs; exiting", timeout)
            self.finish(EXIT_PORTAL_GONE)

    # ------------------------------------------------------------ control link

    def on_control(self, conn: FrameConnection, frame: Any) -> None:
        match frame:
            case Shutdown():
                if self.handler.run_id and not self.stopping:
                    self.spawn(self.stop("shutdown"))
                else:
                    self.finish(0)
            case Refused(reason=reason):
                log.error("supervisor refused this server: %s", reason)
                self.finish(EXIT_REFUSED)
            case _:
                pass

    def on_control_closed(self, conn: FrameConnection, reason: str) -> None:
        if not self.done.done():
            log.error("supervisor link lost (%s); exiting", reason)
            self.finish(0)



def main() -> None:
    run_child(ServerProcess)


if __name__ == "__main__":
    main()
