"""Out-of-band data (`server.oob`, `server.oob_state`): what a client asked for, and what
reaches it, through the real session handler with its frames collected."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from ipc.frames import DataOut, Frame, InputItem, OutputItem, SessionData
from portal.oob import _gmcp_cmdname, _gmcp_package
from server import oob
from server.accounts import Account, AccountError
from server.api import Registry
from server.oob_state import MAX_SUPPORTS, MSDP_VARIABLES, OobState, parse_support
from server.session import ServerSession
from server.sessions import ServerSessionHandler

# ---------------------------------------------------------------- the state machine


def test_a_parent_package_enables_its_children_and_core_is_always_on() -> None:
    state = OobState()
    assert state.supports_set(["Char 1", "Room.Info 2", "IRE.Rift 1"]) == [
        "char", "room.info", "ire.rift"]
    assert state.supports == {"char": 1, "room.info": 2, "ire.rift": 1}
    for package in ("Char.Vitals", "Char.Items.List", "char.status", "Room.Info",
                    "Core.Goodbye", "IRE.Rift.List"):
        assert state.wants(package), package
    for package in ("Room.WrongDir", "Comm.Channel.Text", "Characters", "Client.Media"):
        assert not state.wants(package), package


def test_supports_add_and_remove() -> None:
    state = OobState()
    state.supports_set(["Char.Items 1"])
    assert state.supports_add(["Room 1", "Char.Items 1"]) == ["room"]
    assert state.wants("Room.WrongDir") and state.wants("Char.Items.Add")
    state.supports_add(["Char 1"])
    state.supports_remove(["Char"])  # the explicitly named child stays
    assert state.wants("Char.Items.Remove") and not state.wants("Char.Vitals")
    state.supports_remove(["Char.Items 1", "Nothing.Here"])
    assert not state.wants("Char.Items.List") and state.supports == {"room": 1}
    state.supports_set([])
    assert state.supports == {} and state.announced


def test_support_items_are_parsed_leniently_and_bounded() -> None:
    assert parse_support("Char.Items 3") == ("char.items", 3)
    assert parse_support("Room") == ("room", 1)
    assert parse_support("Room x") == ("room", 1)
    assert parse_support(7) is None and parse_support("") is None
    state = OobState()
    state.supports_set([f"Pkg{i} 1" for i in range(10_000)])
    assert len(state.supports) == MAX_SUPPORTS
    state.supports_add([f"More{i} 1" for i in range(10)])
    assert len(state.supports) == MAX_SUPPORTS


def test_status_goes_whole_first_then_only_changes() -> None:
    state = OobState()
    assert state.diff("Char.Status", {"level": 1, "race": "elf"}) == {"level": 1, "race": "elf"}
    assert state.diff("Char.Status", {"level": 1, "race": "elf"}) == {}
    assert state.diff("Char.Status", {"level": 2, "race": "elf", "city": "Ashtan"}) == {
        "level": 2, "city": "Ashtan"}
    state.supports_set(["Char 1"])  # the client starts afresh: whole again
    assert state.diff("Char.Status", {"level": 2}) == {"level": 2}


def test_msdp_report_and_unreport() -> None:
    state = OobState()
    assert state.report(["room_name", "NOT_A_VARIABLE", "ROOM_VNUM"]) == [
        "ROOM_NAME", "ROOM_VNUM"]
    state.report(["ROOM_NAME"])
    assert state.reported == ["ROOM_NAME", "ROOM_VNUM"]
    state.unreport(["ROOM_NAME"])
    assert state.reported == ["ROOM_VNUM"]


def test_the_state_survives_its_data_form_and_malformed_data_gives_a_fresh_one() -> None:
    state = OobState()
    state.supports_set(["Char 1"])
    state.report(["HEALTH"])
    state.receive_hello({"client": "Mudlet", "version": "4.17.2"})
    state.diff("Char.Status", {"level": 3})
    data = msgspec.msgpack.decode(msgspec.msgpack.encode(state.to_data()))  # as synced
    assert OobState.from_data(data) == state
    bad: Any
    for bad in (None, [], {"supports": 3}, {"supports": {"a": "x"}, "reported": []}):
        assert OobState.from_data(bad) == OobState()


@settings(max_examples=200, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=5)
                    | st.dictionaries(st.text(max_size=8), inner, max_size=5),
                    max_leaves=30))
def test_any_client_data_is_taken_without_raising(value: Any) -> None:
    state = OobState()
    items = value if isinstance(value, list) else [value]
    state.supports_set(items)
    state.supports_add(items)
    state.supports_remove(items)
    state.report(items)
    state.unreport(items)
    state.receive_hello(value if isinstance(value, dict) else {})
    assert OobState.from_data(state.to_data()) == state
    assert OobState.from_data(value) is not None


# ---------------------------------------------------------------- names on the wire

PACKAGES = ["Room.Info", "Room.WrongDir", "Char.Name", "Char.Vitals", "Char.Status",
            "Char.StatusVars", "Char.Items.List", "Char.Items.Add", "Char.Items.Remove",
            "Char.Items.Update", "Comm.Channel.Text", "Char.Login.Default",
            "Char.Login.Result", "Core.Goodbye", "Core.Supports.Set", "IRE.Rift.List"]


def test_every_package_name_reaches_the_client_exactly() -> None:
    """What the portal's rule spells back is sent by its short name; what it cannot spell
    goes by its dotted name, which the portal passes unchanged (see README: OOB)."""
    for package in PACKAGES:
        name = oob.wire_name(package)
        if name == package:
            assert "." in name
        assert _gmcp_package(name) == package, package  # dotted names pass unchanged


def test_the_clients_messages_are_found_under_the_portals_names() -> None:
    for package in ("Core.Hello", "Core.Supports.Set", "Core.Supports.Add",
                    "Core.Supports.Remove", "Char.Login.Credentials"):
        assert _gmcp_cmdname(package) in oob.INPUTS
        assert package.lower() in oob.INPUTS  # as a v1 web client names it


def test_plain_removes_colour_markup() -> None:
    assert oob.plain("|rRed|n and |[bblue|n, |123x, a || pipe") == "Red and blue, x, a | pipe"


# ---------------------------------------------------------------- through the handler


class FakeLogins:
    def __init__(self) -> None:
        self.checked: list[tuple[str, str, str]] = []

    async def check_password(self, name: str, password: str, address: str) -> Account:
        self.checked.append((name, password, address))
        if password != "right-password":
            raise AccountError("Wrong name or password.")
        return Account(uid=7, name=name.capitalize())


class FakeGame:
    def __init__(self) -> None:
        self.logins = FakeLogins()

    def is_admin(self, session: Any) -> bool:
        return False

    async def login(self, session: ServerSession, uid: int, name: str) -> None:
        session.login(uid, name)


def make_handler(**flags: Any) -> tuple[ServerSessionHandler, ServerSession, list[Frame]]:
    sent: list[Frame] = []
    handler = ServerSessionHandler(Registry(), sent.append)
    handler.game = FakeGame()  # type: ignore[assignment]
    session = handler.connect(SessionData(sessid=1, protocol_key="telnet", address="10.0.0.1",
                                          protocol_flags=flags))
    return handler, session, sent


def outputs(sent: list[Frame]) -> list[tuple[str, list[Any], dict[str, Any]]]:
    items: list[OutputItem] = [i for f in sent if isinstance(f, DataOut) for i in f.items]
    sent.clear()
    return [(i.cmdname, i.args, i.kwargs) for i in items]


def run(handler: ServerSessionHandler, cmdname: str, *args: Any, **kwargs: Any) -> None:
    handler.receive_input([InputItem(0, 1, cmdname, list(args), kwargs)])


ROOM = {"num": 12, "name": "Hall", "area": "Hearth", "environment": "indoors",
        "exits": {"n": 13}}


def room(session: ServerSession, **changes: Any) -> bool:
    return oob.room_info(session, **{**ROOM, **changes})


def test_gmcp_goes_only_to_a_client_that_asked() -> None:
    async def scenario() -> None:
        handler, session, sent = make_handler(GMCP=True, OOB=True)
        assert not room(session) and not oob.char_name(session, "Ann")
        run(handler, "hello", client="Mudlet", version="4.17")
        run(handler, "supports_set", "Room 1", "Char.Items 1")
        assert room(session) and oob.room_wrongdir(session, "ne")
        assert not oob.char_name(session, "Ann")  # Char itself was not asked for
        assert oob.items_list(session, "inv", [oob.item(5, "a lamp", "t")])
        await asyncio.sleep(0)
        assert outputs(sent) == [
            ("room_info", [], ROOM),
            ("Room.WrongDir", ["ne"], {}),
            ("char_items_list", [], {"location": "inv",
                                     "items": [{"id": "5", "name": "a lamp", "attrib": "t"}]}),
        ]
        assert session.oob.state.hello == {"client": "Mudlet", "version": "4.17"}

    asyncio.run(scenario())


def test_without_gmcp_or_msdp_nothing_is_sent() -> None:
    async def scenario() -> None:
        handler, session, sent = make_handler()  # plain telnet: no OOB at all
        run(handler, "supports_set", "Room 1")
        assert not room(session) and not oob.comm_channel_text(session, "say", "a", "hi")
        session.disconnect("bye")
        await asyncio.sleep(0)
        assert [o for o in outputs(sent) if o[0] != "text"] == []

    asyncio.run(scenario())


def test_char_status_diffs_and_what_the_client_asked_survives_a_reload() -> None:
    async def scenario() -> None:
        handler, session, sent = make_handler(GMCP=True, OOB=True)
        run(handler, "supports_set", "Char 1")
        oob.char_statusvars(session, level="Level", race="Race")
        oob.char_status(session, level=1, race="elf")
        oob.char_status(session, level=2, race="elf")
        assert not oob.char_status(session, level=2, race="elf")
        await asyncio.sleep(0)
        assert outputs(sent) == [
            ("Char.StatusVars", [], {"level": "Level", "race": "Race"}),
            ("char_status", [], {"level": 1, "race": "elf"}),
            ("char_status", [], {"level": 2}),
        ]
        # a new server process gets the session from the portal's copy
        data = msgspec.msgpack.decode(msgspec.msgpack.encode(session.get_sync_data()),
                                      type=SessionData)
        reloaded, _, sent2 = make_handler()
        fresh = reloaded.connect(data)
        assert oob.char_status(fresh, level=3, race="elf")
        assert oob.char_vitals(fresh, hp=90, maxhp=100)
        await asyncio.sleep(0)
        assert [o for o in outputs(sent2) if o[0] != "text"] == [
            ("char_status", [], {"level": 3}),
            ("char_vitals", [], {"hp": "90", "maxhp": "100", "string": "H:90/100"}),
        ]

    asyncio.run(scenario())


def test_msdp_reports_only_what_the_client_asked_when_it_changes() -> None:
    async def scenario() -> None:
        handler, session, sent = make_handler(MSDP=True, OOB=True)
        room(session)  # before any REPORT: remembered, not sent
        run(handler, "msdp_report", "ROOM_NAME", "ROOM_EXITS")  # sent at once
        room(session, num=13)  # same name and exits: nothing
        room(session, num=14, name="Kitchen")
        oob.char_name(session, "Ann")  # not reported
        run(handler, "msdp_send", "ROOM_VNUM", "CHARACTER_NAME")
        run(handler, "msdp_list", "REPORTED_VARIABLES")
        run(handler, "msdp_unreport", "ROOM_NAME")
        room(session, name="Cellar")
        await asyncio.sleep(0)
        assert outputs(sent) == [
            ("ROOM_NAME", ["Hall"], {}), ("ROOM_EXITS", [], {"n": 13}),
            ("ROOM_NAME", ["Kitchen"], {}),
            ("ROOM_VNUM", [14], {}), ("CHARACTER_NAME", ["Ann"], {}),
            ("REPORTED_VARIABLES", [["ROOM_NAME", "ROOM_EXITS"]], {}),
        ]
        run(handler, "msdp_list", "REPORTABLE_VARIABLES", "COMMANDS")
        await asyncio.sleep(0)
        listed = outputs(sent)
        assert listed[0] == ("REPORTABLE_VARIABLES", [list(MSDP_VARIABLES)], {})
        assert listed[1] == ("COMMANDS", [["LIST", "REPORT", "RESET", "SEND", "UNREPORT"]], {})

    asyncio.run(scenario())


def test_msdp_room_table() -> None:
    async def scenario() -> None:
        handler, session, sent = make_handler(MSDP=True, OOB=True)
        run(handler, "msdp_report", "ROOM")
        room(session)
        await asyncio.sleep(0)
        assert outputs(sent) == [("ROOM", [], {"VNUM": 12, "NAME": "Hall", "AREA": "Hearth",
                                              "TERRAIN": "indoors", "EXITS": {"n": 13}})]

    asyncio.run(scenario())


def test_gmcp_login_goes_through_logins_and_logs_in() -> None:
    async def scenario() -> None:
        handler, session, sent = make_handler(GMCP=True, OOB=True)
        run(handler, "supports_set", "Char 1", "Char.Login 1")
        run(handler, "char_login_credentials", account="ann", password="wrong")
        await asyncio.sleep(0.01)
        assert not session.logged_in
        run(handler, "char_login_credentials", account="ann", password="right-password")
        await asyncio.sleep(0.01)
        assert session.logged_in and session.uname == "Ann"
        run(handler, "char_login_credentials", account="ann", password="right-password")
        await asyncio.sleep(0.01)
        assert outputs(sent) == [
            ("char_login_default", [], {"type": ["password-credentials"]}),
            ("char_login_result", [], {"success": False, "message": "Wrong name or password."}),
            ("char_login_result", [], {"success": True, "message": "Logged in as Ann."}),
            ("char_login_result", [], {"success": False,
                                       "message": "You are already logged in."}),
        ]
        game = handler.game
        assert isinstance(game, FakeGame)
        assert game.logins.checked == [
            ("ann", "wrong", "10.0.0.1"), ("ann", "right-password", "10.0.0.1")]

    asyncio.run(scenario())


def test_goodbye_before_a_close_to_a_client_that_announced_itself() -> None:
    async def scenario() -> None:
        handler, session, sent = make_handler(GMCP=True, OOB=True)
        run(handler, "supports_set", "Room 1")
        session.disconnect("|rBye now.|n")
        await asyncio.sleep(0)
        assert ("goodbye", ["Bye now."], {}) in outputs(sent)

    asyncio.run(scenario())


def test_a_web_client_with_oob_gets_gmcp_by_dotted_input_names() -> None:
    async def scenario() -> None:
        sent: list[Frame] = []
        handler = ServerSessionHandler(Registry(), sent.append)
        handler.game = FakeGame()  # type: ignore[assignment]
        session = handler.connect(SessionData(sessid=1, protocol_key="webclient/websocket",
                                              address="::1", protocol_flags={"OOB": True}))
        run(handler, "Core.Supports.Set", "Room 1")
        assert session.oob.mode == "gmcp" and room(session)

    asyncio.run(scenario())


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=12),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=20)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(sorted(oob.INPUTS)), st.lists(JSON, max_size=4),
       st.dictionaries(st.sampled_from(["account", "character", "password", "client", "x"]),
                       JSON, max_size=4),
       st.sampled_from([{"GMCP": True, "OOB": True}, {"MSDP": True, "OOB": True}, {}]))
def test_any_client_message_is_handled_without_raising(
        name: str, args: list[Any], kwargs: dict[str, Any], flags: dict[str, Any]) -> None:
    async def scenario() -> None:
        handler, session, _ = make_handler(**flags)
        result = oob.INPUTS[name](handler.game, session, args, kwargs)  # type: ignore[arg-type]
        if result is not None:
            await result
        room(session)
        oob.char_status(session, level=1)
        assert OobState.from_data(session.server_data.get(oob.OOB_KEY)) == session.oob.state

    asyncio.run(scenario())
