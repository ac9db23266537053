"""Issue 23: after a storm of connections, the portal's memory comes back.

3,000 telnet connections are opened (each waits for the portal's greeting) and all closed;
the portal must then hand its freed memory back (its log says so) and its RSS fall back
near where it was. Before, every closed telnet session stayed referenced (about 12 KB
each) and the C heap kept its freed pages: the RSS stayed at its peak.
"""

from __future__ import annotations

import asyncio
import re
import time

from benchmarks.client import GameRunner, PingClient, raise_fd_limit, rss_of

CONNECTIONS = 3000
MB = 2 ** 20
RELEASED = re.compile(r"gave -?[0-9.]+ MB back to the system")


async def open_all(port: int, count: int) -> list[PingClient]:
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(256)
    clients: list[PingClient] = []

    async def one(n: int) -> None:
        async with gate:
            client = PingClient(f"c{n}")
            await loop.create_connection(lambda: client, "127.0.0.1", port)
            await asyncio.wait_for(client.first_data, 20)
            clients.append(client)

    await asyncio.gather(*(one(n) for n in range(count)))
    return clients


def wait_for_release(game: GameRunner, timeout: float) -> bool:
    log = game.dir / ".hearth" / "logs" / "portal.log"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if RELEASED.search(log.read_text(errors="replace")):
            return True
        time.sleep(0.2)  # (a log line has no event to wait on)
    return False


def test_portal_rss_comes_back_after_a_connection_storm(game_factory: type[GameRunner]
                                                         ) -> None:
    raise_fd_limit()
    # login_timeout 4 s: the guard sweeps every second, so the release comes within one
    game = game_factory({"portal": {"login_timeout": 4.0}})
    game.start()
    portal = game.pid_of("portal")
    before = rss_of(portal)

    async def storm() -> int:
        clients = await open_all(game.port, CONNECTIONS)
        peak = rss_of(portal)
        for client in clients:
            client.close()
        return peak

    peak = asyncio.run(storm())
    released = wait_for_release(game, 8.0)
    after = rss_of(portal)
    figures = (f"portal RSS {before / MB:.1f} MB before, {peak / MB:.1f} at the peak, "
               f"{after / MB:.1f} after {CONNECTIONS} connections closed")
    print(figures)
    assert released, f"the portal did not hand memory back within 8 s; {figures}"
    # generous: the peak is about 35 MB over `before`; pymalloc arenas pinned by a few
    # live objects keep a few MB (see portal/memory.py)
    assert after - before < 15 * MB, figures
    assert game.pid_of("portal") == portal
