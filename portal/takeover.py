"""The new portal's side of a live hand-over: read the old portal's connections on the
event loop and hand each to `adopt` as soon as its message is in (see
portal/handover_frames for the exchange).

Reading on the loop, not in a worker thread, lets adoption overlap the old portal's
sending: each message is adopted while the next is on its way, and there is no thread
to wake for every message.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

from portal.handover_frames import MoveDone, MoveHello, SessionBatch, SessionMove, receive_move

Adopt = Callable[[SessionMove, socket.socket], None]


class MoveReceiver:
    """Receive `MoveHello`, the connections (`SessionBatch`, or one `SessionMove` a message
    from a version-1 portal), then `MoveDone`. `adopt(move, sock)` owns each socket it is
    given; a socket received with a message that fails is closed here."""

    PER_TURN = 4  # messages read per loop turn: the loop goes on heartbeating

    def __init__(self, channel: socket.socket, adopt: Adopt) -> None:
        self.channel = channel
        self.adopt = adopt
        self.hello = False
        self.moved = 0  # connections handed to `adopt`
        self._done: asyncio.Future[MoveDone] | None = None

    async def receive(self, timeout: float) -> MoveDone:
        """Every connection, adopted; the counters. TimeoutError past `timeout`,
        ConnectionError / ValueError for a channel that closes or sends nonsense."""
        loop = asyncio.get_running_loop()
        self._done = loop.create_future()
        self.channel.setblocking(False)
        fd = self.channel.fileno()
        loop.add_reader(fd, self._readable)
        try:
            async with asyncio.timeout(timeout):
                return await self._done
        except TimeoutError:
            raise TimeoutError(f"the old portal sent {self.moved} connections in "
                               f"{timeout:.0f}s and stopped") from None
        finally:
            loop.remove_reader(fd)
            self.channel.setblocking(True)

    def _readable(self) -> None:
        done = self._done
        assert done is not None
        if done.done():
            return
        try:
            for _ in range(self.PER_TURN):
                try:
                    frame, fds = receive_move(self.channel)  # fds match the frame
                except BlockingIOError:
                    return
                finished = self._frame(frame, fds)
                if finished is not None:
                    done.set_result(finished)
                    return
        except Exception as exc:  # ConnectionError, ValueError, or adopt's own error
            done.set_exception(exc)

    def _frame(self, frame: object, fds: list[int]) -> MoveDone | None:
        if not self.hello:
            if not isinstance(frame, MoveHello):
                close_all(fds)
                raise ValueError(f"expected MoveHello, got {type(frame).__name__}")
            self.hello = True
            return None
        match frame:
            case MoveDone():
                return frame
            case SessionMove():
                moves = [frame]
            case SessionBatch(moves=moves):
                pass
            case _:
                close_all(fds)
                raise ValueError(f"unexpected {type(frame).__name__} in a hand-over")
        if len(moves) != len(fds):
            close_all(fds)
            raise ValueError(f"{len(moves)} connections came with {len(fds)} descriptors")
        for index, move in enumerate(moves):
            try:
                self.adopt(move, socket.socket(fileno=fds[index]))
            except BaseException:
                close_all(fds[index + 1:])
                raise
            self.moved += 1
        return None


def close_all(fds: list[int]) -> None:
    for fd in fds:
        socket.close(fd)
