"""Issue 10, item 6: DO LINEMODE keeps a plain telnet client editing whole lines."""

from __future__ import annotations

from portal.telnet import (
    DO,
    DONT,
    IAC,
    LINEMODE,
    SB,
    SE,
    WILL,
    WONT,
    ProtocolError,
    TelnetProtocol,
)

MODE, EDIT, TRAPSIG, SLC = 1, 1, 2, 3


def cmd(command: int, option: int) -> bytes:
    return bytes((IAC, command, option))


def sb(option: int, payload: bytes) -> bytes:
    return bytes((IAC, SB, option)) + payload + bytes((IAC, SE))


def started() -> TelnetProtocol:
    proto = TelnetProtocol()
    proto.initiate()
    assert cmd(DO, LINEMODE) in proto.data_to_send()
    return proto


def test_a_client_that_agrees_is_told_to_edit_lines_itself() -> None:
    proto = started()
    proto.receive_data(cmd(WILL, LINEMODE))
    assert proto.data_to_send() == sb(LINEMODE, bytes((MODE, EDIT | TRAPSIG)))
    # its MODE acknowledgement and its SLC table need nothing from us, and are no error
    proto.receive_data(sb(LINEMODE, bytes((MODE, EDIT | TRAPSIG | 4))))
    proto.receive_data(sb(LINEMODE, bytes((DO, SLC, 1, 2, 3))))
    proto.receive_data(b"look\r\n")
    events = proto.events_received()
    assert not [e for e in events if isinstance(e, ProtocolError)], events
    assert proto.data_to_send() == b""


def test_a_mud_client_that_refuses_changes_nothing() -> None:
    proto = started()
    proto.receive_data(cmd(WONT, LINEMODE))
    assert proto.data_to_send() == b""
    assert not [e for e in proto.events_received() if isinstance(e, ProtocolError)]
    proto.receive_data(cmd(WONT, LINEMODE))  # said again: no reply, no loop
    assert proto.data_to_send() == b""
    assert cmd(DONT, LINEMODE) not in proto.data_to_send()
