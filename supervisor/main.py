"""The supervisor: parent of the portal and the server, answering the CLI.

Theory of operation
-------------------
`Supervisor.run()` claims the game's pid file, opens the control socket, starts the
portal and then a server, and waits for each to send `Ready` over its control link
(`StartError`, with the child's traceback, when one does not). After that everything is
driven by events:

- a child's exit (awaited, never polled) goes through the restart policy: restart with
  back-off, or give up at the crash-loop limit;
- a child that sends no heartbeat from its event loop for `hang_timeout` gets a stack dump
  (SIGUSR1, faulthandler) and then SIGKILL, and is restarted like a crash;
- CLI commands, signals and in-game admin requests go through one queue, one at a time
  (`supervisor.control`, which speaks the control protocol), so two reloads never
  overlap and none is rejected; `status` is answered at once;
- a reload starts a standby server beside the running one and only asks the portal to hand
  over once the standby is ready; a standby that fails changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from ipc.child import ChildEnv
from ipc.connection import FrameConnection
from ipc.frames import (
    Announce,
    ChildRole,
    Command,
    Handover,
    Mode,
    PortalMove,
    Reply,
    ServerLost,
    Shutdown,
)
from ipc.marker import marker_path, read_marker
from ipc.settings import (
    RuntimePaths,
    Settings,
    SettingsError,
    load_settings,
    make_private_dirs,
    runtime_paths,
)
from supervisor import notify, pidfile
from supervisor.children import Child, Slot, StartError
from supervisor.control import ControlProtocol
from supervisor.healthwatch import HealthWatch, decide
from supervisor.lifecycle import Event, State
from supervisor.listeners import ListenError, Listeners
from supervisor.logs import LogFile, pump_output
from supervisor.policy import ExitKind, RestartPolicy, RestartSettings, classify_exit
from supervisor.process import (
    descendants,
    kill_survivors,
    signal_group,
    signal_process,
    spawn_child,
    sweep_descendants,
)
from supervisor.settings_change import after_reload, compare

log = logging.getLogger("supervisor")

GOODBYE = "The game is shutting down. Goodbye!"
REBOOTING = "The game is rebooting; please reconnect in a few seconds."


class AlreadyRunning(RuntimeError):
    pass


def restart_settings(settings: Settings) -> RestartSettings:
    sup = settings.supervisor
    return RestartSettings(crash_loop_limit=sup.crash_loop_limit, backoff_max=sup.backoff_max)


class Supervisor:
    def __init__(self, game_dir: Path, settings: Settings,
                 progress: Callable[[str], None] = lambda line: None) -> None:
        self.game_dir = game_dir.resolve()
        self.settings = settings
        self.paths: RuntimePaths = runtime_paths(self.game_dir)
        self.progress = progress
        self.secret = secrets.token_hex(16)
        self.started = time.time()
        sup = settings.supervisor
        self.slots = {role: Slot(role, RestartPolicy(restart_settings(settings)))
                      for role in ("portal", "server")}
        self.children: dict[int, Child] = {}
        self.logs = {name: LogFile(self.paths.logs, name, sup.log_max_bytes, sup.log_backups)
                     for name in ("supervisor", "portal", "server")}
        self.health = HealthWatch(sup.health)
        self.health.watch(os.getpid(), "supervisor")
        self.health_action_at: dict[str, float] = {}
        self.control = ControlProtocol(self, sup.heartbeat_interval)
        self.stopping = False
        self.finished = self.control.finished
        self.up = asyncio.Event()
        self.record: pidfile.PidRecord | None = None
        # the runtime folder's lock; only its holder may create or remove runtime files
        self.claim: int | None = None
        self.owns_files = False
        self.control_server: asyncio.AbstractServer | None = None
        self.tasks: set[asyncio.Task[Any]] = set()
        self.listeners = Listeners()

    # ------------------------------------------------------------ run

    async def run(self) -> None:
        """Start everything; return when stopped. Raises StartError / AlreadyRunning."""
        try:
            await self.open()
            await self.start_children()
        except BaseException:
            await self.shutdown_children(GOODBYE)
            self.close()
            raise
        self.up.set()
        notify.ready()
        self.spawn_task(self.control.worker())
        self.spawn_task(self.watchdog())
        self.spawn_task(self.health_loop())
        try:
            await self.finished.wait()
        finally:
            self.close()

    async def open(self) -> None:
        """Claim the game, then create its pid file and control socket.

        AlreadyRunning, before anything is created or removed, when another supervisor
        holds the game: a process that did not create a runtime file never removes it.
        """
        paths = self.paths
        make_private_dirs(paths)
        self.claim = pidfile.claim(paths.state)
        if self.claim is None:
            running = pidfile.running_supervisor(paths.pid_file)
            who = f"supervisor pid {running.pid}" if running else "another supervisor is starting"
            raise AlreadyRunning(f"Hearth is already running for {self.game_dir} ({who})")
        running = pidfile.running_supervisor(paths.pid_file)
        if running is not None:
            raise AlreadyRunning(f"Hearth is already running for {self.game_dir} "
                                 f"(supervisor pid {running.pid})")
        if pidfile.socket_answers(paths.control_socket):
            raise AlreadyRunning(f"a supervisor answers on {paths.control_socket} although "
                                 f"{paths.pid_file} names none; stop it first")
        self.owns_files = True
        for stale in (paths.control_socket, paths.portal_socket):
            stale.unlink(missing_ok=True)
        self.record = pidfile.own_record()
        pidfile.write_pid_file(paths.pid_file, self.record)
        self.open_listeners()
        loop = asyncio.get_running_loop()
        self.control_server = await loop.create_unix_server(
            self.control.connection, str(paths.control_socket))
        paths.control_socket.chmod(0o600)
        for sig, action in ((signal.SIGTERM, "stop"), (signal.SIGINT, "stop"),
                            (signal.SIGHUP, "reload"), (signal.SIGUSR1, "reopen_logs")):
            loop.add_signal_handler(sig, self.enqueue, Command(name=action))
        self.progress(f"supervisor {os.getpid()} running; runtime folder {paths.state}")

    def open_listeners(self) -> None:
        """Hold every player-facing port before any portal starts (see supervisor/listeners)."""
        taken = self.listeners.adopt_systemd(os.environ, os.getpid())
        if taken:
            self.progress(f"listening sockets from systemd: {', '.join(taken)}")
        try:
            self.listeners.open(self.settings.portal)
        except ListenError as exc:
            raise StartError(str(exc)) from None

    def close(self) -> None:
        """Remove every trace of this run: sockets and the pid file, if this run made them."""
        self.listeners.close()
        if self.control_server is not None:
            self.control_server.close()
        if self.owns_files:
            self.paths.control_socket.unlink(missing_ok=True)
            self.paths.portal_socket.unlink(missing_ok=True)
            if self.record is not None:
                pidfile.remove_pid_file(self.paths.pid_file, self.record)
            with contextlib.suppress(OSError):
                if self.paths.sockets != self.paths.state:
                    self.paths.sockets.rmdir()
        for logfile in self.logs.values():
            logfile.close()
        if self.claim is not None:
            pidfile.release(self.claim)
            self.claim = None

    async def start_children(self) -> None:
        timeout = self.settings.supervisor.start_timeout
        self.progress("starting portal")
        portal = await self.spawn("portal")
        info = await self.wait_ready(portal, timeout)
        ports = ", ".join(f"{k} {v}" for k, v in info.get("ports", {}).items())
        self.progress(f"portal {portal.pid} listening ({ports})")
        self.progress("starting server")
        server = await self.spawn("server")
        await self.wait_ready(server, timeout)
        self.progress(f"server {server.pid} attached")

    def spawn_task(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    # ------------------------------------------------------------ children

    async def spawn(self, role: ChildRole, *, mode: Mode = "start",
                    standby: bool = False, takeover: str = "") -> Child:
        env = ChildEnv(
            game_dir=self.game_dir, secret=self.secret,
            control_socket=self.paths.control_socket, portal_socket=self.paths.portal_socket,
            state_dir=self.paths.state, parent_pid=os.getpid(), mode=mode, standby=standby,
            listeners=self.listeners.fds() if role == "portal" else {}, takeover=takeover,
        )
        fds = tuple(env.listeners.values())
        proc = await spawn_child(role, env.to_environ(), pass_fds=fds)
        child = Child(role, proc, self.logs[role], standby=standby, mode=mode)
        self.children[child.pid] = child
        slot = self.slots[role]
        if not standby:
            slot.child = child
            slot.event(Event.BACKOFF_ELAPSED if slot.state is State.BACKOFF else Event.SPAWN)
        self.health.watch(child.pid, role)
        log.info("started %s %d (%s%s)", role, child.pid, mode, ", standby" if standby else "")
        self.spawn_task(self.watch(child))
        return child

    async def watch(self, child: Child) -> None:
        assert child.proc.stdout is not None
        await pump_output(child.proc.stdout, child.logfile, child.pid)
        code = await child.proc.wait()
        child.exited.set_result(code)
        self.children.pop(child.pid, None)
        self.health.forget(child.pid)
        marker = marker_path(self.paths.state, child.pid)
        child.running_seq = read_marker(marker)
        marker.unlink(missing_ok=True)
        self.on_exit(child, code)

    async def wait_ready(self, child: Child, timeout: float) -> dict[str, Any]:
        """The child's ready info; StartError if it exits or times out first."""
        either: set[asyncio.Future[Any]] = {child.ready, child.exited}
        done, _ = await asyncio.wait(either, timeout=timeout,
                                     return_when=asyncio.FIRST_COMPLETED)
        if child.ready in done:
            return child.ready.result()
        if child.exited in done:
            failure = child.failure.strip()
            if failure and "\n" not in failure:  # a reason in one line, not a traceback
                raise StartError(f"{child.role} could not start: {failure}")
            raise StartError(f"{child.role} {child.pid} exited with code "
                             f"{child.exited.result()}:\n{child.describe_failure()}")
        await self.kill(child)
        raise StartError(f"{child.role} {child.pid} was not ready within {timeout:.0f}s:\n"
                         f"{child.describe_failure()}")

    async def kill(self, child: Child, timeout: float = 5.0) -> None:
        """SIGKILL a child's whole group and wait (bounded) for it to be reaped."""
        child.stop_requested = True
        strays = descendants(child.pid)
        signal_group(child.pid, signal.SIGKILL)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(child.exited), timeout)
        self.sweep(child, strays)

    async def stop_child(self, child: Child, timeout: float) -> None:
        """Wait for a child that was asked to stop; then SIGTERM, then SIGKILL its group."""
        child.stop_requested = True
        strays = descendants(child.pid)
        for sig in (None, signal.SIGTERM):
            if sig is not None:
                signal_group(child.pid, sig)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(child.exited), timeout / 2)
                self.sweep(child, strays)
                return
        await self.kill(child)
        self.sweep(child, strays)

    def sweep(self, child: Child, strays: list[psutil.Process]) -> None:
        killed = kill_survivors(strays)
        if killed:
            log.warning("%s %d left processes behind; killed %s", child.role, child.pid,
                        ", ".join(map(str, killed)))

    def on_exit(self, child: Child, code: int) -> None:
        slot = self.slots[child.role]
        if slot.child is not child:
            log.info("%s %d exited with code %d", child.role, child.pid, code)
            return
        kind = classify_exit(was_ready=child.ready.done(), stop_requested=child.stop_requested,
                             killed_for_hang=child.killed_for_hang)
        slot.record_exit(child, code, str(kind))
        slot.event(Event.EXIT)
        level = logging.INFO if kind is ExitKind.REQUESTED else logging.WARNING
        log.log(level, "%s %d exited with code %d (%s)", child.role, child.pid, code, kind)
        if self.stopping or kind is ExitKind.REQUESTED:
            return
        if child.role == "server":
            self.tell_portal(self.server_lost(slot, child, kind))
        decision = slot.policy.on_exit(kind, time.monotonic())
        if decision.action == "give_up":
            slot.event(Event.GIVE_UP)
            log.error("%s: %s", child.role, decision.reason)
            if child.role == "server":
                self.tell_portal(ServerLost(pid=child.pid, reason="fatal",
                                            message=decision.reason))
            return
        if decision.action == "restart":
            loop = asyncio.get_running_loop()
            slot.restart_timer = loop.call_later(
                decision.delay, lambda: self.spawn_task(self.restart(slot)))

    def server_lost(self, slot: Slot, child: Child, kind: ExitKind) -> ServerLost:
        """Tell the portal the server is gone, naming the input to drop, if any.

        A hang names the input it was stuck in. A crash is replayed once: it may have been
        a `kill -9` from outside; but when the next server dies running the same input too,
        that input is what kills servers, and it is dropped instead of replayed again.
        """
        if kind is ExitKind.HANG:
            return ServerLost(pid=child.pid, reason="hang", poison_seq=child.poison_seq)
        seq = child.running_seq
        poison = seq if seq and seq == slot.last_crash_seq else 0
        slot.last_crash_seq = 0 if poison else seq
        return ServerLost(pid=child.pid, reason="crash", poison_seq=poison)

    async def restart(self, slot: Slot) -> None:
        slot.restart_timer = None
        if self.stopping or (slot.child is not None and slot.child.alive):
            return
        slot.restarts += 1
        if slot.role == "server" and not await self.portal_ready():
            log.error("portal is not ready; server restart waits for the next attempt")
        child = await self.spawn(slot.role, mode="crash")
        with contextlib.suppress(StartError):
            await self.wait_ready(child, self.settings.supervisor.start_timeout)

    async def portal_ready(self) -> bool:
        portal = self.slots["portal"].child
        if portal is None:
            return False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(portal.ready),
                                   self.settings.supervisor.start_timeout)
            return True
        return False

    def tell_portal(self, frame: Any, urgent: bool = True) -> bool:
        portal = self.slots["portal"].child
        if portal is None or portal.conn is None or portal.conn.is_closing():
            return False
        portal.conn.send(frame, urgent=urgent)
        return True

    async def hang_detected(self, child: Child) -> None:
        """No heartbeat from the child's loop: dump its stacks, then SIGKILL it."""
        if not child.alive or child.stop_requested:
            return
        log.error("%s %d sent no heartbeat for %.1fs: dumping its stacks and killing it",
                  child.role, child.pid, self.settings.supervisor.hang_timeout)
        child.killed_for_hang = True
        child.poison_seq = read_marker(marker_path(self.paths.state, child.pid))
        signal_process(child.pid, signal.SIGUSR1)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(child.exited), 0.1)  # time to dump
            return
        signal_group(child.pid, signal.SIGKILL)

    # ------------------------------------------------------------ for the control protocol

    def child_ready(self, child: Child, info: dict[str, Any], conn: FrameConnection) -> None:
        child.info.update(info)
        if not child.ready.done():
            child.ready.set_result(info)
            conn.set_heartbeat_timeout(self.settings.supervisor.hang_timeout)
            slot = self.slots[child.role]
            if slot.child is child:
                slot.event(Event.READY)
                slot.policy.on_ready(time.monotonic())

    def child_hangs(self, child: Child) -> None:
        self.spawn_task(self.hang_detected(child))

    def command_done(self, command: Command, reply: Reply, took: float) -> None:
        """A command nobody waits on ran (a signal, a health limit, an admin in the game)."""
        if command.args.get("sessid"):
            self.tell_requester(command.args["sessid"], reply, took)

    def enqueue(self, command: Command) -> None:
        """Queue a command nobody waits for (signals, health limits)."""
        self.control.enqueue(command, None)

    # ------------------------------------------------------------ commands

    def tell_requester(self, sessid: int, reply: Reply, took: float) -> None:
        """The in-game admin who asked hears the whole outcome; nobody else hears anything.

        A failed reload changed nothing for the players, so only the admin is told, with
        the new server's whole traceback (markup escaped, so it arrives as written).
        """
        first, _, rest = reply.message.replace("|", "||").partition("\n")
        if reply.ok:
            text = f"|g{first}; it took {took:.1f}s|n"
        else:
            text = f"|r{first}|n" + (f"\n{rest}" if rest else "")
        self.tell_portal(Announce(text=text, sessid=sessid))

    async def run_command(self, command: Command, report: Callable[[str], None]) -> Reply:
        name = command.name
        if name in ("reload", "reset"):
            return await self.reload("reload" if name == "reload" else "reset", report)
        if name == "reboot":
            return await self.reboot(report)
        if name == "reload-portal":
            return await self.reload_portal(report)
        if name in ("stop", "shutdown"):
            notify.stopping()  # not for a reboot: systemd would take the unit as going down
            await self.shutdown_children(GOODBYE)
            return Reply(ok=True, message="stopped")
        return Reply(ok=False, message=f"unknown command {name!r}")

    def adopt_settings(self, settings: Settings) -> None:
        """Take over an edited supervisor section in place, from now on."""
        self.settings = settings
        sup = settings.supervisor
        for slot in self.slots.values():
            slot.policy.settings = restart_settings(settings)
        for logfile in self.logs.values():
            logfile.resize(sup.log_max_bytes, sup.log_backups)
        self.health.configure(sup.health)

    async def reload(self, mode: Mode, report: Callable[[str], None]) -> Reply:
        """Hand over to a fresh server; apply edited settings, naming what needs `reboot`."""
        sup = self.settings.supervisor
        portal = self.slots["portal"].child
        if portal is None or not portal.ready.done() or not portal.alive:
            return Reply(ok=False, message=f"{mode} refused: the portal is not running")
        try:
            edited = load_settings(self.game_dir)
        except SettingsError as exc:
            return Reply(ok=False, message=f"{mode} refused: {exc}")
        change = compare(self.settings, edited)
        if change.waiting:
            report(change.describe().splitlines()[-1])
        slot = self.slots["server"]
        standby = await self.spawn("server", mode=mode, standby=True)
        report(f"new server {standby.pid} is starting beside the running one")
        try:
            await self.wait_ready(standby, sup.reload_timeout)
        except StartError as exc:
            await self.kill(standby)
            old = slot.child
            keeps = f"server {old.pid} keeps running" if old and old.alive else "no server runs"
            return Reply(ok=False, message=f"{mode} failed; {keeps}. The new server failed:\n{exc}")
        report(f"new server {standby.pid} is ready; handing over")
        old = slot.child
        if old is not None and old.alive:
            old.stop_requested = True
        loop = asyncio.get_running_loop()
        self.control.handover = handover = loop.create_future()
        self.tell_portal(Handover(mode=mode, standby_pid=standby.pid))
        try:
            ok, message = await asyncio.wait_for(handover, sup.reload_timeout)
        except TimeoutError:
            ok, message = False, f"the portal did not finish the hand-over in {sup.reload_timeout}s"
        finally:
            self.control.handover = None
        if not ok:
            await self.kill(standby)
            if old is not None and old.alive:
                old.stop_requested = False
            elif not self.stopping:
                self.spawn_task(self.restart(slot))
            return Reply(ok=False, message=f"{mode} failed: {message}")
        standby.standby = False
        slot.child = standby
        slot.adopt()
        slot.policy.reset()
        slot.policy.on_ready(time.monotonic())
        if old is not None and old.alive:
            await self.stop_child(old, sup.stop_timeout)
        self.adopt_settings(after_reload(self.settings, edited))
        took_over = f" from {old.pid}" if old is not None else ""
        notes = change.describe()
        return Reply(ok=True, message=f"{mode} done: server {standby.pid} took over{took_over}"
                     + (f"\n{notes}" if notes else ""), data={"pid": standby.pid})

    async def reload_portal(self, report: Callable[[str], None]) -> Reply:
        """Start a new portal beside the running one, on the same held listeners, and have
        the old one move its connections to it. A new portal that fails changes nothing."""
        sup = self.settings.supervisor
        slot = self.slots["portal"]
        old = slot.child
        if old is None or not old.ready.done() or not old.alive:
            return Reply(ok=False, message="reload-portal refused: the portal is not running")
        path = self.paths.sockets / "portal-handover.sock"
        new = await self.spawn("portal", standby=True, takeover=str(path))
        report(f"new portal {new.pid} is starting beside portal {old.pid}")
        try:
            await self.wait_ready(new, sup.reload_timeout)
        except StartError as exc:
            await self.kill(new)
            return Reply(ok=False, message=f"reload-portal failed; portal {old.pid} keeps "
                         f"serving. The new portal failed:\n{exc}")
        report(f"new portal {new.pid} is ready; moving the connections")
        ok, message = await self.move_portal(old, new, str(path))
        path.unlink(missing_ok=True)
        if not ok:
            await self.kill(new)
            if not old.alive and not self.stopping:  # it died meanwhile: start a fresh one
                self.spawn_task(self.restart(slot))
                return Reply(ok=False, message=f"reload-portal failed and portal {old.pid} "
                             f"died meanwhile; a new portal is starting: {message}")
            return Reply(ok=False, message=f"reload-portal failed; portal {old.pid} keeps "
                         f"serving: {message}")
        new.standby = False
        slot.child = new
        slot.adopt()
        slot.policy.reset()
        slot.policy.on_ready(time.monotonic())
        await self.stop_child(old, sup.stop_timeout)
        return Reply(ok=True, message=f"reload-portal done: portal {new.pid} took over from "
                     f"{old.pid} ({message})", data={"pid": new.pid})

    async def move_portal(self, old: Child, new: Child, path: str) -> tuple[bool, str]:
        """Ask `old` to move its connections to `new`; its HandoverResult, bounded."""
        timeout = self.settings.supervisor.reload_timeout
        self.control.handover = handover = asyncio.get_running_loop().create_future()
        old.stop_requested = True  # it exits by itself once the move is done
        try:
            if not self.tell_portal(PortalMove(path=path)):
                return False, "the running portal's control link is closed"
            either: set[asyncio.Future[Any]] = {handover, new.exited}
            done, _ = await asyncio.wait(either, timeout=timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
            if handover in done:
                result: tuple[bool, str] = handover.result()
                return result
            if new.exited in done:  # the old portal's own result follows, but it is a no
                return False, f"the new portal exited ({new.describe_failure()})"
            return False, f"the portal did not finish moving in {timeout:.0f}s"
        finally:
            self.control.handover = None
            if not (handover.done() and handover.result()[0]):
                old.stop_requested = False

    async def reboot(self, report: Callable[[str], None]) -> Reply:
        try:  # the new portal and server read the file too: refuse before anyone is dropped
            edited = load_settings(self.game_dir)
        except SettingsError as exc:
            return Reply(ok=False, message=f"reboot refused: {exc}")
        self.adopt_settings(edited)
        report("stopping portal and server; players are told and disconnected")
        await self.shutdown_children(REBOOTING)
        self.stopping = False
        try:  # a reboot applies changed ports: listeners follow the settings file
            self.listeners.open(edited.portal)
        except ListenError as exc:
            log.error("reboot keeps the old listeners: %s", exc)
        for slot in self.slots.values():
            slot.child = None
            slot.policy.reset()
            if slot.state is State.FATAL:
                slot.event(Event.RESET)
        try:
            await self.start_children()
        except StartError as exc:
            return Reply(ok=False, message=f"reboot failed: {exc}")
        return Reply(ok=True, message="rebooted")

    async def shutdown_children(self, reason: str) -> None:
        """Stop the portal (which stops the server first), then anything left."""
        self.stopping = True
        for child in self.children.values():  # the portal stops the server: not a crash
            child.stop_requested = True
        timeout = self.settings.supervisor.stop_timeout
        for slot in self.slots.values():
            slot.cancel_restart()
            slot.event(Event.STOP_REQUESTED)
        portal = self.slots["portal"].child
        if portal is not None and portal.alive:
            portal.stop_requested = True
            if self.tell_portal(Shutdown(reason=reason)):
                await self.stop_child(portal, timeout)
            else:
                await self.kill(portal)
        for child in list(self.children.values()):
            child.stop_requested = True
            if child.conn is not None and not child.conn.is_closing():
                child.conn.send(Shutdown(reason=reason))
            await self.stop_child(child, timeout)
        sweep_descendants(os.getpid())

    def reopen_logs(self) -> None:
        """Reopen every log file (after logrotate) and re-create a vanished control socket."""
        for logfile in self.logs.values():
            logfile.reopen()
        log.info("log files reopened")
        if self.control_server is not None and not self.paths.control_socket.exists():
            self.spawn_task(self.recreate_control_socket())

    async def recreate_control_socket(self) -> None:
        """A tmp cleaner removed our socket file: listen again, children keep running."""
        if self.control_server is not None:
            self.control_server.close()
        self.control_server = await asyncio.get_running_loop().create_unix_server(
            self.control.connection, str(self.paths.control_socket))
        self.paths.control_socket.chmod(0o600)
        log.warning("control socket %s was missing; listening on it again",
                    self.paths.control_socket)

    # ------------------------------------------------------------ health

    async def health_loop(self) -> None:
        while True:  # the interval is read each time: a reload may change it (0: off)
            interval = self.settings.supervisor.health.interval
            await asyncio.sleep(interval or 5.0)
            if not self.settings.supervisor.health.interval:
                continue
            try:
                self.check_health(time.monotonic())
            except Exception:  # a bug here must not end the health watch for good
                log.exception("health check failed")

    def check_health(self, now: float) -> None:
        """Sample every ready child once; act on the ones over a limit."""
        current = {slot.child.pid: slot for slot in self.slots.values()
                   if slot.child is not None and slot.child.alive and slot.child.ready.done()}
        over = self.health.tick([os.getpid(), *current], now)
        for pid, reason in over.items():
            if pid in current:
                self.over_limit(current[pid], reason, now)

    def over_limit(self, slot: Slot, reason: str, now: float) -> None:
        child = slot.child
        assert child is not None
        action = decide(slot.role, self.settings.supervisor.health, now,
                        self.health_action_at.get(slot.role))
        if action == "wait" or (action == "report" and child.health_reported):
            return
        child.health_reported = True
        if action == "report":
            log.error("PORTAL %d IS OVER ITS HEALTH LIMIT: %s. It is not replaced, because "
                      "TLS players would have to reconnect; `reload-portal` when it suits you "
                      "(or set supervisor.health.portal_restart)", child.pid, reason)
            return
        self.health_action_at[slot.role] = now
        slot.record_event(child.pid, "health", reason)
        if action == "recycle":
            log.warning("server %d: %s; recycling it through a reload (players stay connected)",
                        child.pid, reason)
            self.enqueue(Command(name="reload"))
        else:
            log.error("portal %d: %s; replacing it (reload-portal: plain telnet players "
                      "stay connected)", child.pid, reason)
            self.enqueue(Command(name="reload-portal"))

    # ------------------------------------------------------------ status

    async def status(self) -> dict[str, Any]:
        portal_info: dict[str, Any] = {}
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.control.status_waiters.append(waiter)
        if self.tell_portal(Command(name="status")):
            with contextlib.suppress(TimeoutError):
                portal_info = await asyncio.wait_for(waiter, 2.0)
        if waiter in self.control.status_waiters:
            self.control.status_waiters.remove(waiter)
        data: dict[str, Any] = {
            "game_dir": str(self.game_dir),
            "supervisor": {"pid": os.getpid(), "state": "stopping" if self.stopping else "running",
                           "uptime": time.time() - self.started,
                           **self.health.figures(os.getpid(), time.monotonic())},
            "ports": portal_info.get("ports", {}),
            "sessions": portal_info.get("sessions", 0),
            "portal_link": portal_info,
        }
        for role, slot in self.slots.items():
            data[role] = self.slot_status(slot)
        return data

    def slot_status(self, slot: Slot) -> dict[str, Any]:
        child = slot.child
        info: dict[str, Any] = {"state": str(slot.state), "pid": None, "restarts": slot.restarts,
                                "last_exit": slot.last_exit, "history": list(slot.history)}
        if child is not None and child.alive:
            info.update(pid=child.pid, uptime=time.time() - child.started,
                        **self.health.figures(child.pid, time.monotonic()))
        return info

    async def watchdog(self) -> None:
        interval = notify.watchdog_interval()
        if not interval:
            return
        while True:
            notify.watchdog()
            await asyncio.sleep(interval)
