"""A game's `settings.toml`, decoded into one small Struct per component.

This module sits in `ipc` because it is a contract between processes, like the frames:
the supervisor validates the file before it starts anything, and each child decodes the
same file and reads only its own section. A wrong key or value is a `SettingsError` whose
message names the key (msgspec's error path, e.g. `$.portal.telnet_port`).
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import ipaddress
import os
import re
import stat
import tempfile
import tomllib
import typing
from pathlib import Path
from typing import Any, Literal

import msgspec

SETTINGS_FILE = "settings.toml"
RUNTIME_DIR = ".hearth"
# sun_path is 108 bytes on Linux, including the terminating NUL.
MAX_SOCKET_PATH = 107


class SettingsError(ValueError):
    """settings.toml is missing, is not TOML, or has a wrong key or value."""


class GameSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: str = "Hearth"


class PortalSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    interface: str = "127.0.0.1"
    telnet_port: int = 4000  # 0: any free port (status shows which)
    telnet_ssl_port: int | None = None  # None: telnet over TLS is off; 0: any free port
    # Certificate and key for telnet/ssl, relative to the game directory. Empty: a
    # self-signed pair is made in the runtime keys folder on first start and reused.
    tls_cert: str = ""
    tls_key: str = ""
    ssh_port: int | None = None  # None: SSH is off; 0: any free port
    # The SSH host key (OpenSSH private key file, relative to the game directory). Empty:
    # an ed25519 key is made in the runtime keys folder on first start and reused.
    ssh_host_key: str = ""
    # How long an SSH login waits for the game server's answer (it waits through a reload
    # or a restart); past it the client is told and disconnected.
    ssh_auth_timeout: float = 30.0
    max_line: int = 4096
    listen_backlog: int = 4096  # connections the kernel queues for us in a burst
    # A player whose client stops reading is disconnected once this much output waits.
    max_output_buffer: int = 4 * 1024 * 1024
    negotiation_timeout: float = 1.0
    # Input held while no server is attached (or sent to it and not yet answered).
    input_buffer_per_session: int = 1000
    input_buffer_total: int = 200_000
    # Inputs sent to the server and not yet acknowledged; beyond it input waits in the portal.
    inflight_window: int = 4096
    handover_timeout: float = 10.0
    # Work done for one connection per loop turn (then the rest waits for the next turn,
    # so one client cannot hold the loop): bytes parsed, and steps (lines, telnet commands,
    # subnegotiations) taken.
    read_max_bytes: int = 65536
    read_max_steps: int = 512
    # The share of one core a connection's input may take on average (parsing and
    # handling it), after a burst of `read_cpu_burst` seconds; beyond it the connection
    # rests before its next slice. 0: no limit.
    read_cpu_share: float = 0.05
    read_cpu_burst: float = 0.25
    # Protections (README, "Limits"); 0 turns one off.
    max_connections_per_address: int = 20
    connection_rate: float = 2.0  # new connections per second per address, ...
    connection_burst: int = 20  # ... after a burst of this many
    commands_per_second: float = 50.0  # per session; faster input is slowed, not dropped
    command_burst: int = 200
    login_timeout: float = 300.0  # seconds a connection may stay without logging in
    # Once this many connections closed since the most open at once, the guard's sweep
    # rebuilds the portal's tables and hands freed memory back to the system. 0: never.
    memory_trim_after: int = 1000
    line_timeout: float = 120.0  # seconds to finish a line once its first byte arrived
    # Addresses (networks) the per-address limits do not apply to: the machine itself, and
    # a reverse proxy on it through which every web player would share one address.
    unlimited_addresses: list[str] = msgspec.field(
        default_factory=lambda: ["127.0.0.0/8", "::1/128"])

    # The web client (page, websocket and ajax) port; None: off, 0: any free port.
    web_port: int | None = None
    web_tls: bool = False  # serve the web port over TLS with the telnet/ssl certificate
    # Reverse proxies (addresses or networks) whose X-Forwarded-For header is believed.
    web_trusted_proxies: list[str] = msgspec.field(default_factory=list)
    # A web session whose browser went away (refresh, network drop) waits this long for
    # the same page (csessid) to come back before it is ended.
    web_linger: float = 60.0
    # Seconds of silence before a websocket is pinged; twice this and it is dropped.
    # An ajax poll is answered with a keepalive after this long.
    web_keepalive: float = 25.0
    # Browser origins (`https://mud.example.org`) whose pages may use the web sessions
    # besides the page's own host (the request's Host); `"*"`: any. A request from another
    # origin gets 403; one without `Origin` (not a browser) is let in.
    web_allowed_origins: list[str] = msgspec.field(default_factory=list)

    def __post_init__(self) -> None:
        for key in ("read_max_bytes", "read_max_steps"):
            if getattr(self, key) < 1:
                raise ValueError(f"`{key}` must be at least 1, not {getattr(self, key)}")
        if not 0 <= self.read_cpu_share <= 1 or self.read_cpu_burst < 0:
            raise ValueError("`read_cpu_share` must be 0 to 1 and `read_cpu_burst` not negative")
        for key in ("max_connections_per_address", "connection_rate", "connection_burst",
                    "commands_per_second", "command_burst", "login_timeout", "line_timeout",
                    "memory_trim_after"):
            if getattr(self, key) < 0:
                raise ValueError(f"`{key}` must not be negative (0 = off)")
        for network in self.unlimited_addresses:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise ValueError(f"`unlimited_addresses`: {network!r} is not an address "
                                 "or network") from None
        for key in ("telnet_port", "telnet_ssl_port", "ssh_port", "web_port"):
            port = getattr(self, key)
            if port is not None and not 0 <= port <= 65535:
                raise ValueError(f"`{key}` must be a port number (0-65535), not {port}")
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("set both `tls_cert` and `tls_key`, or neither")
        if self.max_line < 1:
            raise ValueError(f"`max_line` must be at least 1, not {self.max_line}")
        if self.ssh_auth_timeout <= 0:
            raise ValueError(f"`ssh_auth_timeout` must be positive, not {self.ssh_auth_timeout}")
        if self.input_buffer_per_session < 1 or self.input_buffer_total < 1:
            raise ValueError("input buffer limits must be at least 1")
        for proxy in self.web_trusted_proxies:
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError:
                raise ValueError(f"`web_trusted_proxies`: {proxy!r} is not an address "
                                 "or network") from None
        for origin in self.web_allowed_origins:
            if origin != "*" and not re.fullmatch(r"[a-z][a-z0-9+.-]*://[^/\s]+/?", origin,
                                                  re.IGNORECASE):
                raise ValueError(f"`web_allowed_origins`: {origin!r} is not an origin "
                                 "(scheme://host[:port]) or \"*\"")
        for key in ("web_linger", "web_keepalive"):
            if getattr(self, key) <= 0:
                raise ValueError(f"`{key}` must be positive")


class LoginSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """`[server.logins]`: login protection (see `server/logins.py` and the README's table).

    Failures are counted per address and per account name (existing or not). After
    `free_failures` of them each further one makes that address or name wait `delay`
    seconds, doubling up to `delay_max`; at `lockout_after` (address) or
    `account_lockout_after` (name) it is locked out for `lockout` seconds, and again after
    every further failure. Failures are forgotten after `forget_after` quiet seconds.
    """

    free_failures: int = 3
    delay: float = 2.0
    delay_max: float = 30.0
    lockout_after: int = 10
    # Higher than per address: anyone can fail logins to someone else's account.
    account_lockout_after: int = 20
    lockout: float = 900.0
    forget_after: float = 3600.0
    creations_per_address: int = 3  # accounts made from one address per `creation_window`
    creation_window: float = 3600.0
    queue_per_address: int = 4  # logins waiting for (or in) a password hash, per address
    queue_total: int = 512

    def __post_init__(self) -> None:
        for key in ("free_failures", "creations_per_address"):
            if getattr(self, key) < 0:
                raise ValueError(f"`{key}` must not be negative")
        for key in ("lockout_after", "account_lockout_after"):
            if getattr(self, key) <= self.free_failures:
                raise ValueError(f"`{key}` must be more than `free_failures` "
                                 f"({self.free_failures})")
        for key in ("delay", "delay_max", "lockout", "forget_after", "creation_window"):
            if getattr(self, key) < 0:
                raise ValueError(f"`{key}` must not be negative")
        for key in ("queue_per_address", "queue_total"):
            if getattr(self, key) < 1:
                raise ValueError(f"`{key}` must be at least 1")


Multisession = Literal["takeover", "allow", "refuse"]


class ServerSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    # How long a stopping server waits for running commands before it stops anyway.
    stop_grace: float = 5.0
    login_workers: int = 1  # scrypt threads: one core hashes, the other keeps playing
    # scrypt's N for new password hashes (a power of two; each account keeps its own cost,
    # and is rehashed at this one when it next logs in). 16384 takes ~40 ms a hash here.
    scrypt_n: int = 16384
    # An account logging in while already logged in: the new connection takes over (the
    # old one is told and closed), both stay ("allow"), or the new one is refused.
    multisession: Multisession = "takeover"
    logins: LoginSettings = msgspec.field(default_factory=LoginSettings)

    def __post_init__(self) -> None:
        n = self.scrypt_n
        if n < 1024 or n & (n - 1):
            raise ValueError(f"`scrypt_n` must be a power of two of at least 1024, not {n}")
        if self.login_workers < 1:
            raise ValueError("`login_workers` must be at least 1")


class HealthSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """`[supervisor.health]`: resource limits sampled with psutil; 0 turns a limit off.

    A server over a limit is recycled through the reload path (players stay connected).
    A portal over its limit is only reported, unless `portal_restart` is set: then it is
    replaced through `reload-portal` (plain telnet players stay, TLS players reconnect).
    """

    interval: float = 2.0  # seconds between samples; 0 turns the health watch off
    server_max_rss_mb: int = 1024
    server_max_cpu_percent: float = 0.0
    server_max_open_files: int = 0
    portal_max_rss_mb: int = 512
    portal_max_open_files: int = 0
    cpu_samples: int = 5  # consecutive samples over the CPU limit before it counts
    recycle_cooldown: float = 60.0  # at most one health recycle of the server this often
    portal_restart: bool = False  # reload-portal when the portal passes a limit

    def __post_init__(self) -> None:
        numbers = ("interval", "server_max_rss_mb", "server_max_cpu_percent",
                   "server_max_open_files", "portal_max_rss_mb", "portal_max_open_files",
                   "recycle_cooldown")
        for key in numbers:
            if getattr(self, key) < 0:
                raise ValueError(f"`{key}` must not be negative (0 = off)")
        if self.cpu_samples < 1:
            raise ValueError("`cpu_samples` must be at least 1")


class SupervisorSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    start_timeout: float = 30.0
    stop_timeout: float = 10.0
    reload_timeout: float = 30.0
    heartbeat_interval: float = 1.0
    hang_timeout: float = 10.0
    crash_loop_limit: int = 5  # 0: never give up
    backoff_max: float = 30.0
    log_max_bytes: int = 10 * 1024 * 1024
    log_backups: int = 5
    health: HealthSettings = msgspec.field(default_factory=HealthSettings)


class Settings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    game: GameSettings = msgspec.field(default_factory=GameSettings)
    portal: PortalSettings = msgspec.field(default_factory=PortalSettings)
    server: ServerSettings = msgspec.field(default_factory=ServerSettings)
    supervisor: SupervisorSettings = msgspec.field(default_factory=SupervisorSettings)


def load_settings(game_dir: Path) -> Settings:
    """Decode `game_dir/settings.toml`; raise SettingsError naming the bad key."""
    path = game_dir / SETTINGS_FILE
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError):
        raise SettingsError(f"{path} does not exist (is {game_dir} a game directory?)") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path} is not valid TOML: {exc}") from None
    try:
        return msgspec.convert(raw, Settings)
    except msgspec.ValidationError as exc:
        raise SettingsError(f"{path}: {_name_key(str(exc))}") from None


UNKNOWN_FIELD = re.compile(r"Object contains unknown field `(?P<name>[^`]*)`")
WRONG_TYPE = re.compile(r"Expected `(?P<want>[^`]*)`, got `(?P<got>[^`]*)`")
TYPE_WORDS = {"int": "a whole number", "float": "a number", "str": "a quoted string",
              "bool": "true or false", "object": "a table", "array": "a list",
              "null": "left out"}


def _name_key(message: str) -> str:
    """msgspec's `<error> - at `$.portal.port`` in the words of settings.toml.

    ``unknown setting `portal.max_lin` (did you mean `max_line`?)``, ``setting
    `portal.telnet_port` must be a whole number, not a quoted string``, ``[portal]: ...``.
    """
    text, sep, where = message.rpartition(" - at `$")
    if not sep:  # the top level: msgspec names no path
        text, where = message, ""
    path = where.rstrip("`").lstrip(".")
    if unknown := UNKNOWN_FIELD.fullmatch(text):
        return _unknown(path, unknown["name"])
    if wrong := WRONG_TYPE.fullmatch(text):
        want, got = (_type_words(wrong[key]) for key in ("want", "got"))
        return f"setting `{path}` must be {want}, not {got}"
    if not path:
        return text
    return f"[{path}]: {text}" if _table_at(path) else f"setting `{path}`: {text}"


def _type_words(name: str) -> str:
    return " or ".join(TYPE_WORDS.get(part.strip(), part.strip()) for part in name.split("|"))


def _unknown(path: str, name: str) -> str:
    """Name the unknown key in full, with the closest real key of that table, if any."""
    table = _table_at(path)
    key = f"{path}.{name}" if path else name
    what = "section" if not path else "setting"
    close = difflib.get_close_matches(name, table, n=1) if table else []
    hint = f" (did you mean `{close[0]}`?)" if close else ""
    return f"unknown {what} `{key}`{hint}"


def _table_at(path: str) -> list[str]:
    """The keys of the settings table at `path` (`portal`, `supervisor.health`, ...)."""
    struct: Any = Settings
    for part in filter(None, path.split(".")):
        struct = _field_types(struct).get(part)
        if struct is None:
            return []
    return list(_field_types(struct))


def _field_types(struct: Any) -> dict[str, Any]:
    if not (isinstance(struct, type) and issubclass(struct, msgspec.Struct)):
        return {}
    hints = typing.get_type_hints(struct)
    return {name: hints[name] for name in struct.__struct_fields__}


class RuntimePaths(msgspec.Struct, frozen=True, kw_only=True):
    """Where a game's runtime state lives (private folder, mode 0700)."""

    state: Path  # pid file, logs, database, keys
    sockets: Path  # control and ipc sockets (short fallback when paths are too long)

    @property
    def pid_file(self) -> Path:
        return self.state / "supervisor.pid"

    @property
    def logs(self) -> Path:
        return self.state / "logs"

    @property
    def control_socket(self) -> Path:
        return self.sockets / "supervisor.sock"

    @property
    def portal_socket(self) -> Path:
        return self.sockets / "portal.sock"

    @property
    def database(self) -> Path:
        return self.state / "game.db"

    @property
    def keys(self) -> Path:
        return self.state / "keys"


def runtime_paths(game_dir: Path) -> RuntimePaths:
    """The runtime folders of a game directory (not created here)."""
    state = game_dir.resolve() / RUNTIME_DIR
    sockets = state
    if len(str(state / "supervisor.sock")) > MAX_SOCKET_PATH:
        digest = hashlib.sha256(str(state).encode()).hexdigest()[:16]
        base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
        sockets = Path(base) / f"hearth-{os.getuid()}" / digest
    return RuntimePaths(state=state, sockets=sockets)


class UnsafeFolder(OSError):
    """A runtime folder Hearth would use is not private to this user (one line for the CLI)."""


def private_levels(paths: RuntimePaths) -> list[Path]:
    """Every folder Hearth creates for a game, parents first: the state folder and its
    `logs` and `keys`, and for a socket fallback `<base>/hearth-UID` and its folder per game
    (`<base>`, the system's temporary or runtime folder, is not ours to judge)."""
    levels = [paths.state, paths.logs, paths.keys]
    if paths.sockets != paths.state:
        levels += [paths.sockets.parent, paths.sockets]
    return levels


def check_private_dir(folder: Path) -> None:
    """UnsafeFolder unless `folder` is a real directory (not a symbolic link), owned by
    this user, that nobody else may enter (no group or other mode bits)."""
    info = os.lstat(folder)
    uid = os.getuid()
    if stat.S_ISLNK(info.st_mode):
        problem = "is a symbolic link"
    elif not stat.S_ISDIR(info.st_mode):
        problem = "is not a folder"
    elif info.st_uid != uid:
        problem = f"belongs to uid {info.st_uid}, not to this user ({uid})"
    elif stat.S_IMODE(info.st_mode) & 0o077:
        problem = f"has mode {stat.S_IMODE(info.st_mode):04o}, not 0700"
    else:
        return
    raise UnsafeFolder(f"refusing runtime folder {folder}: it {problem}; another user may "
                       "have made it to take the game's sockets. Remove it (or set "
                       "XDG_RUNTIME_DIR to a private folder) and start again")


def make_private_dirs(paths: RuntimePaths) -> None:
    """Create every runtime folder (`private_levels`) with mode 0700, parents first; an
    existing one must pass `check_private_dir` (UnsafeFolder otherwise: Hearth never
    takes over, widens or follows a folder someone else prepared)."""
    for folder in private_levels(paths):
        with contextlib.suppress(FileExistsError):  # then it is checked like any other
            os.mkdir(folder, 0o700)
        check_private_dir(folder)


def check_private_dirs(paths: RuntimePaths) -> None:
    """UnsafeFolder if any runtime folder that exists is not private (a client checks
    before it dials a socket there)."""
    for folder in private_levels(paths):
        if os.path.lexists(folder):
            check_private_dir(folder)
