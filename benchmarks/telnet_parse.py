"""Speed of the sans-I/O telnet parser on its per-byte paths, in MiB/s of CPU time.

Feeds `--mib` MiB through `TelnetProtocol.receive_data()` in 64 KiB reads (the socket's
read size), draining `receive_more()` as the glue does, and prints MiB per CPU second
for each input: a run of `IAC IAC` (escaped 0xff bytes), plain text lines, and text with
an `IAC IAC` every 16 bytes. Run it on two checkouts in one run to compare them.

    python -m benchmarks.telnet_parse [--mib 64] [--repeat 5]
"""

from __future__ import annotations

import argparse
import time

from portal.telnet import TelnetProtocol

CHUNK = 65536
INPUTS = {
    "IAC IAC": b"\xff\xff" * (CHUNK // 2),
    "text lines": (b"say " + b"x" * 75 + b"\r\n") * (CHUNK // 81),
    "text + IAC IAC": (b"abcdefghijklmn\xff\xff" * (CHUNK // 16)),
}


def feed(data: bytes, total: int) -> float:
    """CPU seconds to parse `total` bytes of `data` repeated (a line past `max_line` is
    counted and dropped, as for a hostile client)."""
    proto = TelnetProtocol(max_bytes=CHUNK)
    done = 0
    start = time.process_time()
    while done < total:
        proto.receive_data(data)
        while proto.backlog:
            proto.receive_more()
        proto.events_received()
        done += len(data)
    return time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mib", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    total = args.mib << 20
    for name, data in INPUTS.items():
        best = min(feed(data, total) for _ in range(args.repeat))
        print(f"{name:>16}: {args.mib / best:8.1f} MiB/s (best of {args.repeat})")


if __name__ == "__main__":
    main()
