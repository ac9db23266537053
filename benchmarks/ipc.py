"""Frames per second through Hearth's ipc connection class, against a bare socket.

Four runs, each pushing `--frames` small `DataIn` frames (one input line each) one way over
a Unix socket into a receiver process that decodes and counts them:

- `FrameConnection`, batched: the sender queues `--batch` frames per loop turn (one write);
- `FrameConnection`, unbatched: one frame per loop turn;
- bare socket, batched and unbatched: a blocking socket and the same codec (4-byte length
  prefix, msgspec MessagePack of the same Struct), no asyncio, no classes: the limit.

It also times one encode + decode of the frame with Hearth's codec, with msgspec alone and
with pickle.

    python -m benchmarks.ipc [--frames 200000] [--batch 256]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pickle
import signal
import socket
import subprocess
import sys
import time
import timeit
from pathlib import Path
from typing import Any

import msgspec
import uvloop

from benchmarks.report import Checks, add_targets_option, table, temp_dir, write_json
from ipc.child import die_with_parent
from ipc.codec import FrameDecoder, FrameEncoder
from ipc.connection import FrameConnection, connect_unix
from ipc.frames import DataIn, GameFrame, InputItem

REPO = Path(__file__).resolve().parent.parent


def sample_frame(seq: int = 1) -> DataIn:
    return DataIn(items=[InputItem(seq, 17, "text", [f"ping c17-{seq}"], {})])


# ---------------------------------------------------------------- receivers (child process)


async def receive_conn(path: str, count: int) -> tuple[int, float]:
    loop = asyncio.get_running_loop()
    done: asyncio.Future[tuple[int, float]] = loop.create_future()
    state = {"n": 0, "t0": 0.0}

    def on_frame(conn: FrameConnection, frame: Any) -> None:
        if not state["n"]:
            state["t0"] = time.perf_counter()
        state["n"] += 1
        if state["n"] >= count and not done.done():
            done.set_result((state["n"], time.perf_counter() - state["t0"]))

    def factory() -> FrameConnection:
        conn = FrameConnection(GameFrame, on_frame, lambda c, r: None, name="bench-recv",
                               hello_timeout=0)
        conn.trusted = True
        return conn

    await loop.create_unix_server(factory, path)
    print("READY", flush=True)
    return await done


def receive_bare(path: str, count: int) -> tuple[int, float]:
    decoder = msgspec.msgpack.Decoder(GameFrame)
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(path)
        server.listen(1)
        print("READY", flush=True)
        sock, _ = server.accept()
    buf = bytearray()
    n, t0 = 0, 0.0
    with sock:
        while n < count:
            data = sock.recv(1 << 18)
            if not data:
                break
            if not t0:
                t0 = time.perf_counter()
            buf += data
            pos, end = 0, len(buf)
            while end - pos >= 4:
                size = int.from_bytes(buf[pos:pos + 4], "big")
                if end - pos - 4 < size:
                    break
                decoder.decode(memoryview(buf)[pos + 4:pos + 4 + size])
                n += 1
                pos += 4 + size
            del buf[:pos]
    return n, time.perf_counter() - t0


# ---------------------------------------------------------------- senders (this process)


async def send_conn(path: str, count: int, batch: int) -> None:
    writable = asyncio.Event()
    writable.set()

    def flow(conn: FrameConnection, ok: bool) -> None:
        if ok:
            writable.set()
        else:
            writable.clear()

    conn = await connect_unix(path, GameFrame, lambda c, f: None, lambda c, r: None,
                              name="bench-send", on_writable=flow)
    frames = [sample_frame(i) for i in range(batch)]
    sent = 0
    while sent < count:
        for frame in frames[: min(batch, count - sent)]:
            conn.send(frame)
        sent += min(batch, count - sent)
        await asyncio.wait_for(writable.wait(), 30)  # flow control: the reader keeps up
        await asyncio.sleep(0)  # end of the loop turn: the connection writes once
    conn.flush()
    await asyncio.sleep(0.05)


def send_bare(path: str, count: int, batch: int) -> None:
    encoder = msgspec.msgpack.Encoder()
    frames = [sample_frame(i) for i in range(batch)]
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(path)
        buf = bytearray()
        sent = 0
        while sent < count:
            buf.clear()
            for frame in frames[: min(batch, count - sent)]:
                start = len(buf)
                encoder.encode_into(frame, buf, start + 4)
                buf[start:start + 4] = (len(buf) - start - 4).to_bytes(4, "big")
            sock.sendall(buf)
            sent += min(batch, count - sent)


def one_run(kind: str, count: int, batch: int, timeout: float) -> dict[str, Any]:
    folder = temp_dir("hearth-ipc-")
    path = os.path.join(folder, "ipc.sock")
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.ipc", "--receive", kind,
                             "--path", path, "--frames", str(count)],
                            cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "READY":
            raise RuntimeError(f"receiver {proc.pid} did not start")
        start = time.perf_counter()
        try:
            if kind == "conn":
                uvloop.run(asyncio.wait_for(send_conn(path, count, batch), timeout))
            else:
                send_bare(path, count, batch)
        except Exception as exc:  # report it as this run's result, run the others
            return {"frames": 0, "seconds": 0.0, "per_s": 0.0, "error": repr(exc)}
        line = proc.stdout.readline().split()
        wall = time.perf_counter() - start
        frames, seconds = int(line[1]), float(line[2])
        return {"frames": frames, "seconds": seconds, "per_s": frames / seconds,
                "sender_wall_s": wall}
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        Path(path).unlink(missing_ok=True)
        os.rmdir(folder)


def codec_micro() -> dict[str, float]:
    frame = sample_frame(12345)
    enc, dec = FrameEncoder(), FrameDecoder(GameFrame)
    raw_enc, raw_dec = msgspec.msgpack.Encoder(), msgspec.msgpack.Decoder(GameFrame)
    buf = bytearray()

    def hearth() -> None:
        buf.clear()
        enc.encode_into(frame, buf)
        dec.receive_data(buf)
        dec.frames_received()

    def bare() -> None:
        raw_dec.decode(raw_enc.encode(frame))

    def pickled() -> None:
        pickle.loads(pickle.dumps(frame, protocol=pickle.HIGHEST_PROTOCOL))

    out = {}
    for name, func in (("hearth codec", hearth), ("msgspec alone", bare), ("pickle", pickled)):
        number = 50_000
        best = min(timeit.repeat(func, number=number, repeat=5))
        out[name] = best / number * 1e6
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=200_000)
    parser.add_argument("--unbatched-frames", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--ratio-target", type=float, default=0.60,
                        help="batched frames/s of our connection against bare sockets")
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--receive", choices=["conn", "bare"], help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    add_targets_option(parser)
    args = parser.parse_args()
    if args.receive:
        die_with_parent(os.getppid())
        if args.receive == "conn":
            n, seconds = uvloop.run(receive_conn(args.path, args.frames))
        else:
            n, seconds = receive_bare(args.path, args.frames)
        print("DONE", n, seconds, flush=True)
        return
    runs = {}
    for name, kind, count, batch in (
        ("batched", "conn", args.frames, args.batch),
        ("batched", "bare", args.frames, args.batch),
        ("unbatched", "conn", args.unbatched_frames, 1),
        ("unbatched", "bare", args.unbatched_frames, 1),
    ):
        runs[f"{name} {kind}"] = one_run(kind, count, batch, args.timeout)
    micro = codec_micro()
    rows = []
    for name in ("batched", "unbatched"):
        conn, bare = runs[f"{name} conn"], runs[f"{name} bare"]
        shown = conn.get("error", conn["per_s"])
        rows.append([f"frames/s, {name}", shown, bare["per_s"],
                     conn["per_s"] / bare["per_s"] if bare["per_s"] else 0.0,
                     "≥ 0.60" if name == "batched" else ""])
    rows.append(["encode+decode µs/frame", micro["hearth codec"], micro["msgspec alone"],
                 micro["hearth codec"] / micro["msgspec alone"], ""])
    rows.append(["  (pickle, for scale)", micro["pickle"], micro["msgspec alone"],
                 micro["pickle"] / micro["msgspec alone"], ""])
    print(table(f"ipc: FrameConnection vs a bare socket with the same codec "
                f"(batch {args.batch})", ["figure", "hearth", "bare", "ratio", "target"], rows))
    path = write_json("ipc", {"runs": runs, "codec_us": micro, "settings": vars(args)})
    print(f"\nJSON: {path}")
    checks(runs, args).finish(args.targets)


def checks(runs: dict[str, dict[str, Any]], args: argparse.Namespace) -> Checks:
    out = Checks()
    for name, run in runs.items():
        want = args.frames if name.startswith("batched") else args.unbatched_frames
        out.correct(f"{name}: every frame received", run.get("frames") == want and
                    "error" not in run, run.get("error", f"{run.get('frames')} of {want}"))
    conn, bare = runs["batched conn"], runs["batched bare"]
    ratio = conn["per_s"] / bare["per_s"] if bare["per_s"] else 0.0
    want_ratio = args.ratio_target
    out.target(f"batched frames/s ratio >= {want_ratio:.2f}", ratio >= want_ratio,
               f"{ratio:.2f}")
    return out


if __name__ == "__main__":
    main()
