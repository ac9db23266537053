"""Start-up: `run.py start` to the connection screen, and `reload` to the first answer.

Each figure is the median of `--repeats` runs, measured twice: as this machine runs Python
(`PYTHONDONTWRITEBYTECODE=1`: no `.pyc` cache is ever written) and with the bytecode cache
(the variable removed, after one warming run). The baseline is a bare Python process that
imports uvloop, msgspec, psutil, asyncssh and websockets and answers over a Unix socket:
the least any Hearth child could cost.

    python -m benchmarks.startup [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import uvloop

from benchmarks.client import GameRunner, PingClient, acli, free_port, run
from benchmarks.report import Checks, add_targets_option, table, temp_dir, write_json

REPO = Path(__file__).resolve().parent.parent
IMPORTS = {"full": "import asyncio, uvloop, msgspec, psutil, asyncssh, websockets",
           "minimal": "import asyncio, uvloop, msgspec"}


def python_to_first_pong(imports: str, env: dict[str, str]) -> float:
    """Seconds from spawning Python until it has imported `imports` and said so on a socket."""
    folder = temp_dir("hearth-start-")
    path = os.path.join(folder, "s.sock")
    code = (f"{imports}\nimport socket\ns = socket.socket(socket.AF_UNIX)\n"
            f"s.connect({path!r})\ns.sendall(b'pong')\ns.recv(1)\n")
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(path)
        server.listen(1)
        server.settimeout(30)
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-c", code], env=env)
        conn, _ = server.accept()
        with conn:
            conn.recv(4)
            took = time.perf_counter() - start
            conn.sendall(b"x")
        proc.wait(timeout=30)
    os.unlink(path)
    os.rmdir(folder)
    return took


async def first_answer(client: PingClient, timeout: float = 30.0) -> float:
    """Ping until one is answered; seconds until that answer."""
    start = time.monotonic()
    before = client.answered
    while client.answered == before and time.monotonic() - start < timeout:
        client.send_ping()
        await asyncio.sleep(0.005)
    return time.monotonic() - start


async def one_game() -> dict[str, float]:
    port = free_port()
    game = GameRunner(Path(temp_dir("hearth-startup-")),
                      {"portal": {"telnet_port": port}})
    loop = asyncio.get_running_loop()
    client = PingClient("s")
    try:
        start = time.monotonic()
        result = run([sys.executable, "run.py", "--game-dir", str(game.dir), "start"], 90)
        returned = time.monotonic() - start
        if result.returncode != 0:
            raise RuntimeError(f"start failed: {result.stdout}{result.stderr}")
        await loop.create_connection(lambda: client, "127.0.0.1", port)
        await client.expect("connect <username>")
        screen = time.monotonic() - start
        game.remember_pids()
        await first_answer(client)
        start = time.monotonic()
        reload = asyncio.ensure_future(acli(game, "reload"))
        code, _, reload_s = await reload
        answer = await first_answer(client)
        return {"start_returns_s": returned, "start_to_screen_s": screen,
                "reload_cli_s": reload_s, "reload_to_answer_s": time.monotonic() - start,
                "reload_exit": code, "answer_after_reload_s": answer}
    finally:
        client.close()
        game.cleanup()


async def series(repeats: int, cached: bool) -> dict[str, Any]:
    saved = os.environ.get("PYTHONDONTWRITEBYTECODE")
    if cached:
        os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
        await one_game()  # writes the cache
    else:
        os.environ["PYTHONDONTWRITEBYTECODE"] = "1"
    try:
        runs = [await one_game() for _ in range(repeats)]
        env = dict(os.environ)
        base = {name: statistics.median(python_to_first_pong(imports, env)
                                        for _ in range(repeats))
                for name, imports in IMPORTS.items()}
    finally:
        if saved is None:
            os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
        else:
            os.environ["PYTHONDONTWRITEBYTECODE"] = saved
    keys = runs[0].keys()
    return {"runs": runs, "median": {k: statistics.median(r[k] for r in runs) for k in keys},
            "baseline_s": base}


def report(data: dict[str, Any]) -> None:
    rows = []
    for label, key in (("no .pyc (machine default)", "nocache"), ("with .pyc cache", "cached")):
        if key not in data:
            continue
        s = data[key]
        m, base = s["median"], s["baseline_s"]["full"]
        rows += [
            [label, "run.py start returns", m["start_returns_s"], base,
             m["start_returns_s"] / base, ""],
            [label, "start -> connection screen", m["start_to_screen_s"], base,
             m["start_to_screen_s"] / base, "< 1.5 s"],
            [label, "reload -> first answer", m["reload_to_answer_s"], base,
             m["reload_to_answer_s"] / base, ""],
            [label, "  of which run.py reload", m["reload_cli_s"], "", "", ""],
            [label, "baseline: python + imports (minimal)", s["baseline_s"]["minimal"], base,
             s["baseline_s"]["minimal"] / base, ""],
        ]
    print(table("startup (seconds; baseline: bare Python importing uvloop, msgspec, psutil, "
                "asyncssh, websockets, to a first pong on a Unix socket)",
                ["python", "figure", "hearth s", "baseline s", "ratio", "target"], rows))


def checks(data: dict[str, Any]) -> Checks:
    out = Checks()
    for key in ("nocache", "cached"):
        if key in data:
            codes = [run["reload_exit"] for run in data[key]["runs"]]
            out.correct(f"every reload exits 0 ({key})", not any(codes), codes)
            screen = data[key]["median"]["start_to_screen_s"]
            out.target(f"start -> connection screen < 1.5 s ({key})", screen < 1.5,
                       f"{screen:.2f}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-cached", action="store_true",
                        help="skip the runs with a bytecode cache")
    add_targets_option(parser)
    args = parser.parse_args()
    data = {"nocache": uvloop.run(series(args.repeats, cached=False)),
            "settings": vars(args)}
    if not args.no_cached:
        data["cached"] = uvloop.run(series(args.repeats, cached=True))
    report(data)
    path = write_json("startup", data)
    print(f"\nJSON: {path}")
    checks(data).finish(args.targets)


if __name__ == "__main__":
    main()
