"""Hostile web clients on raw sockets, shared by `benchmarks.hostile` and the tests.

- `ws_flood`: one websocket (a hand-made handshake) that streams one frame pattern as
  fast as the portal takes it: empty non-final continuation frames, empty PINGs, or tiny
  `[]` messages (all masked with a zero key, which RFC 6455 allows).
- `ajax_pipeline`: one ajax session (`mode=init`), then `POST /webclientdata` requests
  pipelined on one connection (`keepalive` or `input`), answers read and discarded or
  left unread.
- `smuggle`: a request with both `Content-Length` and `Transfer-Encoding: chunked`
  hiding a second request; every byte the portal answered.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import time
import urllib.parse
from typing import Final

ZERO_MASK: Final = b"\x00\x00\x00\x00"


def masked(opcode: int, payload: bytes = b"", fin: bool = True) -> bytes:
    """One client frame (payload under 126 bytes), masked with the zero key."""
    assert len(payload) < 126
    return bytes(((0x80 if fin else 0) | opcode, 0x80 | len(payload))) + ZERO_MASK + payload


# Each pattern: (frames sent once after the handshake, the chunk then sent over and over)
WS_PATTERNS: Final[dict[str, tuple[bytes, bytes]]] = {
    "ws_continuation": (masked(0x1, fin=False), masked(0x0, fin=False) * 10000),
    "ws_ping": (b"", masked(0x9) * 10000),
    "ws_tiny": (b"", masked(0x1, b"[]") * 8000),
}


async def ws_open(port: int, query: str = "atk&atk&atk", origin: str | None = None,
                  extra: str = "") -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    """A websocket handshake on a raw socket: (reader, writer, the response head)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    head = (f"GET /ws?{query} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: v1.evennia.com\r\n")
    if origin is not None:
        head += f"Origin: {origin}\r\n"
    writer.write((head + extra + "\r\n").encode())
    response = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    return reader, writer, response


async def _stream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, chunk: bytes,
                  seconds: float, read: bool = True) -> int:
    """Write `chunk` over and over for `seconds`; the bytes the portal took."""
    async def discard() -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while await reader.read(65536):
                pass

    reading = asyncio.create_task(discard()) if read else None
    sent, end = 0, time.monotonic() + seconds
    try:
        while (left := end - time.monotonic()) > 0:
            writer.write(chunk)
            sent += len(chunk)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(writer.drain(), left)
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()
        if reading is not None:
            reading.cancel()
    return sent - writer.transport.get_write_buffer_size()


async def ws_flood(port: int, pattern: str, seconds: float) -> int:
    """Stream one of `WS_PATTERNS` on one websocket; the bytes the portal took."""
    first, chunk = WS_PATTERNS[pattern]
    reader, writer, response = await ws_open(port)
    if not response.startswith(b"HTTP/1.1 101"):
        raise ConnectionError(f"no websocket: {response[:80]!r}")
    writer.write(first)
    return await _stream(reader, writer, chunk, seconds)


def form_post(fields: dict[str, str], host: str = "127.0.0.1") -> bytes:
    body = urllib.parse.urlencode(fields).encode()
    return (b"POST /webclientdata HTTP/1.1\r\nHost: %s\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (host.encode(), len(body), body))


async def ajax_init(port: int, csessid: str, cuid: str) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(form_post({"mode": "init", "csessid": csessid, "cuid": cuid}))
    await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    writer.close()


async def ajax_pipeline(port: int, mode: str, seconds: float, read: bool = True,
                        csessid: str = "atk-ajax") -> int:
    """Pipeline `mode` requests (`keepalive` or `input`) on one connection."""
    await ajax_init(port, csessid, "u1")
    data = '["text", ["look"], {}]' if mode == "input" else ""
    one = form_post({"mode": mode, "csessid": csessid, "cuid": "u1", "data": data})
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    return await _stream(reader, writer, one * max(1, 65536 // len(one)), seconds, read)


SMUGGLE: Final = (b"POST /webclientdata HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
                  b"GET /static/client.js HTTP/1.1\r\nHost: x\r\n\r\n")


async def smuggle(port: int) -> bytes:
    """Send `SMUGGLE`; everything the portal answered before it closed (or 5 s passed)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(SMUGGLE)
    got = b""
    with contextlib.suppress(TimeoutError, ConnectionError):
        async with asyncio.timeout(5):
            while chunk := await reader.read(65536):
                got += chunk
    writer.close()
    return got
