"""SSH beside telnet, in the same run: idle memory, logins per second, round trips per second.

1. **Idle sessions**: `--sessions` (1,000) SSH sessions (a pty and a shell, at the connection
   screen) held open on a fresh game, then the same number of telnet sessions on another
   fresh game; RSS per session of the portal and the server for each.
2. **Logins/s**: `--logins` SSH logins (key exchange, then authentication of an account,
   then a shell that shows the room), `--login-concurrency` at a time, by public key and by
   password (scrypt in the server), beside telnet `connect` logins of the same account
   typed by clients already at the connection screen.
3. **Round trips/s**: `--clients` (100) closed-loop clients (send `ping`, wait for its
   `pong`, send the next) over SSH with a pty, then over telnet, on the same game, like
   against like: the game runs with no command rate and no input CPU share, so neither
   door measures its limits; printed with the portal's CPU µs per round trip.

Exits non-zero when a correctness check fails (a session or login that did not complete,
a ping not answered exactly once, a connection dropped) or, unless `--targets report`, a
target is missed (the portal's RSS per idle SSH session, the SSH/telnet round-trip ratio).

    python -m benchmarks.ssh [--sessions 1000] [--logins 50] [--clients 100] [--duration 3]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path
from typing import Any

import asyncssh
import uvloop

from benchmarks.client import (
    GameRunner,
    MudClient,
    PingClient,
    PongCounter,
    closed_loop,
    open_clients,
    raise_fd_limit,
    rss_of,
)
from benchmarks.report import Checks, add_targets_option, table, temp_dir, write_json

PASSWORD = "benchpass1"
ACCOUNT = "bencher"


class SshPinger(PongCounter, asyncssh.SSHClientSession[str]):
    """A lean SSH client: counts `pong <tag>-<n>` answers, in closed loop if asked.

    Counts as every `PongCounter` does, so one closed-loop driver measures both protocols."""

    def __init__(self, tag: str, marker: str) -> None:
        PongCounter.__init__(self)
        self.tag = tag
        self.chan: asyncssh.SSHClientChannel[str] | None = None
        self._prefix = f"pong {tag}-"
        self.closed_loop = True
        self.closed = False
        self._partial = ""
        self._screen: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._marker = marker  # the text that says the shell is ready

    def connection_made(self, chan: asyncssh.SSHClientChannel[str]) -> None:
        self.chan = chan

    def data_received(self, data: str, datatype: asyncssh.DataType) -> None:
        text = self._partial + data
        *lines, self._partial = text.split("\n")
        now = time.monotonic()
        for line in lines:
            line = line.rstrip("\r")
            if line.startswith(self._prefix):
                self._got_pong(int(line[len(self._prefix):]), now)
            elif self._marker in line and not self._screen.done():
                self._screen.set_result(None)

    def send_ping(self) -> None:
        if self.chan is not None and not self.closed:
            self._sent_at = time.monotonic()
            self.chan.write(f"ping {self.tag}-{self.sent}\r")
            self.sent += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self._screen.done():
            self._screen.set_exception(ConnectionError(f"{self.tag}: closed"))

    async def ready(self, timeout: float) -> None:
        await asyncio.wait_for(asyncio.shield(self._screen), timeout)


def options(port: int, username: str, **kwargs: Any) -> dict[str, Any]:
    return {"host": "127.0.0.1", "port": port, "username": username, "known_hosts": None,
            "agent_path": None, "client_keys": None, "password_auth": False, **kwargs}


async def open_ssh(port: int, count: int, username: str, marker: str, concurrency: int,
                   timeout: float = 300.0, **kwargs: Any
                   ) -> list[tuple[asyncssh.SSHClientConnection, SshPinger]]:
    """`count` SSH shells with a pty, each waited for until `marker` shows."""
    gate = asyncio.Semaphore(concurrency)

    async def one(index: int) -> tuple[asyncssh.SSHClientConnection, SshPinger]:
        async with gate:
            conn = await asyncssh.connect(**options(port, username, **kwargs))
            pinger = SshPinger(f"s{index}", marker)
            await conn.create_session(lambda: pinger, term_type="xterm", term_size=(80, 24))
            await pinger.ready(60)
            return conn, pinger

    return list(await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(count))),
                                       timeout))


def close_ssh(pairs: list[tuple[asyncssh.SSHClientConnection, SshPinger]]) -> None:
    for conn, _ in pairs:
        conn.close()


def pids_of(game: GameRunner) -> dict[str, int]:
    status = game.status()
    return {"portal": int(status["portal"]["pid"]), "server": int(status["server"]["pid"])}


def rss(pids: dict[str, int]) -> dict[str, int]:
    return {role: rss_of(pid) for role, pid in pids.items()}


def per_session(before: dict[str, int], after: dict[str, int], n: int) -> dict[str, float]:
    return {role: (after[role] - before[role]) / n for role in before}


# ---------------------------------------------------------------- parts


async def idle(args: argparse.Namespace) -> dict[str, Any]:
    """RSS per idle session: SSH on one fresh game, telnet on another."""
    n = args.sessions
    out: dict[str, Any] = {"sessions": n}
    ssh_game = GameRunner(Path(temp_dir("hearth-ssh-idle-")), {"portal": {"ssh_port": 0}})
    try:
        ssh_game.start()
        pids, port = pids_of(ssh_game), int(ssh_game.status()["ports"]["ssh"])
        before = rss(pids)
        start = time.monotonic()
        pairs = await open_ssh(port, n, "new", "connect <username>", args.concurrency)
        out["ssh_open_s"] = time.monotonic() - start
        await asyncio.sleep(0.5)
        out["ssh"] = per_session(before, rss(pids), n)
        out["ssh_dropped"] = sum(1 for _, p in pairs if p.closed)
        close_ssh(pairs)
    finally:
        ssh_game.cleanup()
    tel_game = GameRunner(Path(temp_dir("hearth-telnet-idle-")))
    try:
        tel_game.start()
        pids = pids_of(tel_game)
        before = rss(pids)
        clients = await open_clients(tel_game.port, n, prefix="t", concurrency=args.concurrency)
        await asyncio.gather(*(c.expect("connect <username>", 120) for c in clients))
        await asyncio.sleep(1.0)  # negotiation settles
        out["telnet"] = per_session(before, rss(pids), n)
        out["telnet_dropped"] = sum(1 for c in clients if c.closed_at is not None)
        for client in clients:
            client.close()
    finally:
        tel_game.cleanup()
    return out


async def logins(game: GameRunner, key: asyncssh.SSHKey, args: argparse.Namespace
                 ) -> dict[str, Any]:
    """SSH logins/s by key and by password, and telnet `connect` logins/s."""
    port = int(game.status()["ports"]["ssh"])
    m, c = args.logins, args.login_concurrency
    out: dict[str, Any] = {"logins": m, "concurrency": c}
    for method, kwargs in (("key", {"client_keys": [key]}),
                           ("password", {"password": PASSWORD, "password_auth": True})):
        start = time.monotonic()
        pairs = await open_ssh(port, m, ACCOUNT, "Hearth Hall", c, **kwargs)
        out[f"ssh_{method}_per_s"] = m / (time.monotonic() - start)
        close_ssh(pairs)
        await asyncio.sleep(0.3)
    # telnet players are at the connection screen before the clock starts: simultaneous
    # telnet connects get their screens one by one (see the report), which is not the
    # login path being compared
    clients = [MudClient(f"t{i}") for i in range(m)]
    await asyncio.gather(*(client.connect(game.port) for client in clients))
    await asyncio.gather(*(client.expect("connect <username>", 120) for client in clients))
    gate = asyncio.Semaphore(c)

    async def telnet_login(client: MudClient) -> None:
        async with gate:
            client.send(f"connect {ACCOUNT} {PASSWORD}")
            await client.expect("Hearth Hall", 120)
            client.close()

    start = time.monotonic()
    await asyncio.wait_for(asyncio.gather(*(telnet_login(cl) for cl in clients)), 300)
    out["telnet_per_s"] = m / (time.monotonic() - start)
    return out


async def round_trips(game: GameRunner, args: argparse.Namespace) -> dict[str, Any]:
    """Closed loop at `--clients`, SSH then telnet, on the same game."""
    n = args.clients
    pids = {**pids_of(game)}
    port = int(game.status()["ports"]["ssh"])
    pairs = await open_ssh(port, n, "new", "connect <username>", args.concurrency)
    pingers = [p for _, p in pairs]
    ssh = await closed_loop(pingers, args.duration, args.warmup, pids)
    ssh["dropped"] = sum(1 for p in pingers if p.closed)
    close_ssh(pairs)
    clients: list[PingClient] = await open_clients(game.port, n, prefix="tl")
    await asyncio.gather(*(c.expect("connect <username>") for c in clients))
    telnet = await closed_loop(clients, args.duration, args.warmup, pids)
    telnet["dropped"] = sum(1 for c in clients if c.closed_at is not None)
    for client in clients:
        client.close()
    return {"clients": n, "ssh": ssh, "telnet": telnet}


async def amain(args: argparse.Namespace) -> dict[str, Any]:
    raise_fd_limit()
    data: dict[str, Any] = {"settings": vars(args)}
    data["idle"] = await idle(args)
    # like against like (see the docstring): the limits are lifted for both doors
    game = GameRunner(Path(temp_dir("hearth-ssh-bench-")),
                      {"portal": {"ssh_port": 0, "commands_per_second": 0,
                                  "read_cpu_share": 0}})
    try:
        game.start()
        key = asyncssh.generate_private_key("ssh-ed25519")
        owner = MudClient("owner")
        await owner.connect(game.port)
        await owner.login(ACCOUNT, PASSWORD)
        owner.send("sshkey add " + key.export_public_key().decode().strip())
        await owner.expect("Key 1 added")
        owner.close()
        data["logins"] = await logins(game, key, args)
        data["round_trips"] = await round_trips(game, args)
    finally:
        data["leftovers"] = game.cleanup()
    return data


def checks(data: dict[str, Any]) -> Checks:
    idle_, trips = data["idle"], data["round_trips"]
    out = Checks()
    for proto in ("ssh", "telnet"):
        out.correct(f"idle {proto} sessions dropped", not idle_[f"{proto}_dropped"],
                    idle_[f"{proto}_dropped"])
        for key in ("dropped", "unanswered", "lost", "duplicated", "wrong_number"):
            out.correct(f"{proto} round trips: {key.replace('_', ' ')}",
                        trips[proto][key] == 0, trips[proto][key])
        out.correct(f"{proto} round trips completed", trips[proto]["round_trips"] > 0,
                    trips[proto]["round_trips"])
    out.correct("no process left behind", not data["leftovers"], len(data["leftovers"]))
    portal = idle_["ssh"]["portal"]
    out.target("RSS per idle SSH session, portal <= 64 KB", portal <= 64 * 1024,
               f"{portal:,.0f} B")
    tel = trips["telnet"]["per_s"]
    ratio = trips["ssh"]["per_s"] / tel if tel else 0.0
    out.target(f"{trips['clients']} clients: SSH/telnet round trips/s >= 0.10", ratio >= 0.10,
               f"{ratio:.2f}")
    return out


def _ratio(value: float, baseline: float) -> float | str:
    return value / baseline if baseline else "n/a"


def report(data: dict[str, Any]) -> None:
    idle_, log, trips = data["idle"], data["logins"], data["round_trips"]
    ssh_rss, tel_rss = idle_["ssh"], idle_["telnet"]
    rows = [
        ["RSS/idle session, portal (bytes)", ssh_rss["portal"], tel_rss["portal"],
         _ratio(ssh_rss["portal"], tel_rss["portal"]), "≤ 64 KB"],
        ["RSS/idle session, server (bytes)", ssh_rss["server"], tel_rss["server"],
         _ratio(ssh_rss["server"], tel_rss["server"]), ""],
        [f"logins/s, {log['concurrency']} at a time (key)", log["ssh_key_per_s"],
         log["telnet_per_s"], _ratio(log["ssh_key_per_s"], log["telnet_per_s"]),
         "telnet: connect typed at the screen"],
        ["logins/s (password: scrypt)", log["ssh_password_per_s"], log["telnet_per_s"],
         _ratio(log["ssh_password_per_s"], log["telnet_per_s"]), "≈ 1"],
        [f"round trips/s, {trips['clients']} clients", trips["ssh"]["per_s"],
         trips["telnet"]["per_s"], _ratio(trips["ssh"]["per_s"], trips["telnet"]["per_s"]),
         "≥ 0.10"],
        ["p99 round trip (µs)", trips["ssh"]["p99_us"], trips["telnet"]["p99_us"],
         _ratio(trips["ssh"]["p99_us"], trips["telnet"]["p99_us"]), ""],
        ["portal CPU µs per round trip", trips["ssh"]["cpu_us_per_rt"]["portal"],
         trips["telnet"]["cpu_us_per_rt"]["portal"],
         _ratio(trips["ssh"]["cpu_us_per_rt"]["portal"],
                trips["telnet"]["cpu_us_per_rt"]["portal"]), ""],
    ]
    print(table(f"ssh beside telnet ({idle_['sessions']:,} idle sessions, "
                f"{log['logins']} logins, {trips['clients']} closed-loop clients)",
                ["figure", "ssh", "telnet", "ratio", "target"], rows))
    print(f"\nopening {idle_['sessions']:,} SSH sessions took {idle_['ssh_open_s']:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--logins", type=int, default=50)
    parser.add_argument("--login-concurrency", type=int, default=10)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--warmup", type=float, default=0.5)
    add_targets_option(parser)
    args = parser.parse_args()
    data = uvloop.run(amain(args))
    report(data)
    path = write_json("ssh", data)
    print(f"\nJSON: {path}")
    checks(data).finish(args.targets)


if __name__ == "__main__":
    main()
