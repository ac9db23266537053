"""GMCP package names out of the shared codec: Evennia's short names and exact dotted ones."""

from __future__ import annotations

import pytest

from portal.oob import decode_gmcp, encode_gmcp


@pytest.mark.parametrize(
    ("cmdname", "package"),
    [
        ("ping", "Core.Ping"),
        ("char_echo", "Char.Echo"),
        ("Room.WrongDir", "Room.WrongDir"),  # an inner capital cannot come from a_b names
        ("Char.StatusVars", "Char.StatusVars"),
        ("Char.Items.List", "Char.Items.List"),
    ],
)
def test_package_names_leave_as_gmcp_spells_them(cmdname: str, package: str) -> None:
    wire = encode_gmcp(cmdname, [], {"a": 1})
    assert wire.split(b" ", 1)[0].decode() == package
    assert decode_gmcp(wire) is not None
