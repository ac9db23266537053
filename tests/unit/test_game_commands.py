"""The default game's commands through the test kit (`server.testkit`): a world in a
temporary database, players that collect output, no processes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from server.testkit import TestGame


@pytest.fixture
def hearth(tmp_path: Path) -> Iterator[TestGame]:
    kit = TestGame(tmp_path / "game.db")
    yield kit
    kit.close()


# ---------------------------------------------------------------- the starter area


def test_the_starter_area_is_built_once(hearth: TestGame) -> None:
    rooms = [o for o in hearth.world.tagged("hearthstead", "area") if o.location is None
             and o.destination is None]
    assert 8 <= len(rooms) <= 12
    count = len(hearth.world)
    hearth.reload()
    hearth.handler.run_hooks_strict("at_server_cold_start")  # a reset, a restart
    assert len(hearth.world) == count
    assert hearth.world.start_location is hearth.find("Hearth Hall")


def test_a_new_player_starts_in_the_hall_and_sees_it(hearth: TestGame) -> None:
    alice = hearth.player("alice")
    assert "Hearth Hall" in alice.text() and "Exits:" in alice.text()
    assert alice.character.location is hearth.find("Hearth Hall")
    bob = hearth.player("bob")
    assert "bob has entered the hall." in alice.text()
    assert "Characters: alice" in bob.do("look")


def test_walking_by_direction_alias_go_and_exit_name(hearth: TestGame) -> None:
    alice = hearth.player("alice")
    assert alice.do("n").startswith("Courtyard")
    assert alice.do("south").startswith("Hearth Hall")
    assert alice.do("go east").startswith("Kitchen")
    assert alice.do("trapdoor").startswith("Cellar")  # an exit's alias, no command
    assert alice.do("u").startswith("Hearth Hall")
    assert alice.do("out").startswith("Courtyard")
    assert "You cannot go that way." in alice.do("sw")
    assert alice.gmcp("Room.WrongDir") == "sw"
    assert "north" in alice.do("exits") and "Village Gate" in alice.do("exits")


def test_others_see_arrivals_and_departures(hearth: TestGame) -> None:
    alice, bob = hearth.player("alice"), hearth.player("bob")
    alice.do("n")
    assert "alice leaves north." in bob.text()
    bob.do("n")
    assert "bob arrives from the south." in alice.text()


def test_get_drop_give_inventory_and_which_one(hearth: TestGame) -> None:
    alice, bob = hearth.player("alice"), hearth.player("bob")
    alice.do("e")
    bob.do("e")
    question = alice.do("get apple")
    assert "Which one?" in question and "1.apple" in question and "2.apple" in question
    assert alice.do("get 2.apple") == "You pick up green apple."
    assert "alice picks up green apple." in bob.text()
    assert alice.do("take bread") == "You pick up loaf of bread."
    assert alice.do("i") == "You are carrying:\n  green apple\n  loaf of bread"
    assert alice.do("give apple to bob") == "You give green apple to bob."
    assert "alice gives you green apple." in bob.text()
    assert hearth.find("green apple").location is bob.character
    assert alice.do("drop bread") == "You drop loaf of bread."
    assert hearth.find("loaf of bread").location is hearth.find("Kitchen")
    assert "You see no 'sword'" in alice.do("get sword")
    assert alice.do("inventory") == "You are not carrying anything."


def test_containers_fixed_things_and_reading(hearth: TestGame) -> None:
    alice = hearth.player("alice")
    alice.do("d")
    assert "iron-bound chest" in alice.do("look")
    assert "In it: brass lantern, copper coin." in alice.do("look chest")
    assert "far too heavy" in alice.do("get chest")
    assert alice.do("get coin from chest") == "You pick up copper coin from iron-bound chest."
    assert alice.do("put coin in chest") == "You put copper coin in iron-bound chest."
    alice.do("u")
    alice.do("w")
    assert "Welcome, traveller!" in alice.do("read book")


def test_the_fire_burns_down_on_a_stored_timer_through_a_reload(hearth: TestGame) -> None:
    alice = hearth.player("alice")
    fire = hearth.find("fire")
    assert "roaring blaze" in alice.do("look")
    hearth.advance(float(fire.db.burn_every))
    assert "The fire burns down: now it is a steady, crackling fire." in alice.text()
    hearth.reload()  # a reload keeps the fire's state and its timer
    fire = hearth.find("fire")
    assert fire.db.level == 3 and "steady, crackling fire" in alice.do("look")
    for _ in range(3):  # each step schedules the next one, burn_every from then
        hearth.advance(float(fire.db.burn_every))
    assert "cold, grey ashes" in alice.do("look")
    alice.do("n")
    alice.do("e")
    alice.do("get log from woodpile")
    alice.do("w")
    alice.do("s")
    assert "The log catches" in alice.do("put log in fire")
    assert "roaring blaze" in alice.do("look")


# ---------------------------------------------------------------- talking


def test_say_pose_whisper_reach_the_room_page_reaches_anywhere(hearth: TestGame) -> None:
    alice, bob, carol = (hearth.player(n) for n in ("alice", "bob", "carol"))
    carol.do("n")
    assert alice.do("say hello") == 'You say, "hello"'
    assert 'alice says, "hello"' in bob.text() and "hello" not in carol.text()
    assert alice.gmcp("Comm.Channel.Text") == {"channel": "say", "talker": "alice",
                                               "text": 'You say, "hello"'}
    assert alice.do("pose waves.") == "alice waves."
    assert "alice waves." in bob.text()
    assert alice.do("whisper bob = psst") == 'You whisper to bob, "psst"'
    assert 'alice whispers, "psst"' in bob.text()
    assert alice.do("page carol = up here?") == "You paged carol with: 'up here?'"
    assert "alice pages: up here?" in carol.text()
    assert carol.gmcp("Comm.Channel.Text")["channel"] == "page"
    assert "Nobody called 'dave'" in alice.do("tell dave hi")
    assert alice.do("who") == "Players online (3): alice, bob, carol"


def test_help_lists_categories_and_explains_a_command(hearth: TestGame) -> None:
    alice = hearth.player("alice")
    listing = alice.do("help")
    assert "Things:" in listing and "Talking:" in listing and "Building:" not in listing
    assert "get 2.apple" in alice.do("help get")
    assert "No help found for 'dig'." in alice.do("help dig")
    builder = hearth.player("bea", role="builder")
    assert "Building:" in builder.do("help") and "dig ROOM" in builder.do("help @dig")


def test_leaving_is_heard_once(hearth: TestGame) -> None:
    alice, bob = hearth.player("alice"), hearth.player("bob")
    hearth.disconnect(bob)
    assert alice.text().count("bob has left the hall.") == 1


# ---------------------------------------------------------------- out-of-band data


def test_gmcp_on_login_and_every_move(hearth: TestGame) -> None:
    alice = hearth.player("alice")
    assert alice.gmcp("Char.Name") == {"name": "alice", "fullname": "alice"}
    assert alice.gmcp("Char.Vitals")["maxhp"] == "20"
    assert alice.gmcp("Char.Status")["level"] == 1
    hall = hearth.find("Hearth Hall")
    info = alice.gmcp("Room.Info")
    assert info["num"] == hall.id and info["name"] == "Hearth Hall"
    assert info["area"] == "Hearthstead" and info["exits"]["n"] == hearth.find("Courtyard").id
    alice.do("n")
    assert alice.gmcp("Room.Info")["name"] == "Courtyard"
    items = alice.gmcp("Char.Items.List")
    assert items["location"] == "room" and [i["name"] for i in items["items"]] == [
        "wooden bucket"]
    alice.do("get bucket")
    assert alice.gmcp("Char.Items.Remove")["location"] == "room"
    assert alice.gmcp("Char.Items.Add") == {"location": "inv", "item": {
        "id": str(hearth.find("wooden bucket").id), "name": "wooden bucket", "attrib": "t"}}


def test_the_room_panel_follows_who_comes_and_goes(hearth: TestGame) -> None:
    alice, bob = hearth.player("alice"), hearth.player("bob")
    bob_item = {"id": str(bob.character.id), "name": "bob"}
    bob.do("n")
    assert alice.gmcp("Char.Items.Remove") == {"location": "room", "item": bob_item}
    bob.do("s")
    assert alice.gmcp("Char.Items.Add") == {"location": "room", "item": bob_item}
    hearth.disconnect(bob)
    assert len(alice.gmcp_all("Char.Items.Remove")) == 2


def test_a_late_core_supports_set_gets_the_room_at_once(hearth: TestGame) -> None:
    web = hearth.player("web", oob=False, protocol="webclient/websocket")
    hearth.handler.update_flags(web.session.sessid, {"OOB": True})  # as the portal does
    hearth.send_oob(web, "core.supports.set", "Room 1", "Char.Items 1")
    assert web.gmcp("Room.Info")["name"] == "Hearth Hall"
    assert web.gmcp("Char.Items.List")["location"] == "room"


def test_a_client_that_asked_nothing_gets_no_gmcp(hearth: TestGame) -> None:
    plain = hearth.player("plain", oob=False)
    plain.do("n")
    assert plain.oob == []


# ---------------------------------------------------------------- building


def test_a_builder_builds_a_house(hearth: TestGame) -> None:
    bea = hearth.player("bea", role="builder")
    said = bea.do("dig Cottage = south;s, north;n")
    assert "Created room Cottage" in said and "Exit south" in said and "Exit north" in said
    bea.do("w")
    bea.do("tunnel s = Garden")
    assert bea.do("s").startswith("Garden")
    assert bea.do("open door;dr, door;dr = Cottage").count("Exit door") == 2
    assert bea.do("door").startswith("Cottage")
    assert bea.do("create lantern;lamp").startswith("Created lantern")
    assert bea.do("desc lantern = A brass lantern.").startswith("The description")
    assert bea.do("set lamp/oil = 7") .endswith("oil = 7")
    assert bea.do("set lamp/oil") .endswith("= 7")
    lantern = hearth.find("lantern")
    assert lantern.db.oil == 7 and lantern.location is bea.character
    shown = bea.do("examine lantern")
    assert "Typeclass: hearth_game.typeclasses.Thing" in shown and "oil = 7" in shown
    assert bea.do("@desc here = A snug cottage.").startswith("The description")
    assert "A snug cottage." in bea.do("look")
    assert "lantern(#" in bea.do("find lant")
    hearth.reload()
    again = hearth.find("lantern")
    assert again.db.desc == "A brass lantern." and again.db.oil == 7


def test_name_typeclass_sethome_teleport(hearth: TestGame) -> None:
    bea = hearth.player("bea", role="builder")
    bea.do("create box")
    assert "is now called crate" in bea.do("name box = crate;box")
    assert "hearth_game.typeclasses.Container" in bea.do("typeclass crate = Container")
    crate = hearth.find("crate")
    assert type(crate).__name__ == "Container"
    assert "No typeclass" in bea.do("typeclass crate = Nonsense")
    assert bea.do(f"tel #{hearth.find('Riverbank').id}").startswith("Riverbank")
    assert "home of bea" in bea.do("sethome")
    assert bea.character.home is hearth.find("Riverbank")
    assert "Teleported crate" in bea.do("teleport crate to Hearth Hall")
    assert crate.location is hearth.find("Hearth Hall")


def test_destroy_asks_first(hearth: TestGame) -> None:
    bea = hearth.player("bea", role="builder")
    bea.do("create/drop vase")
    assert "for good? [y/N]" in bea.do("destroy vase")
    assert bea.do("n") == "Nothing was destroyed."  # any other answer keeps it
    assert hearth.find("vase")
    bea.do("s")
    bea.do("destroy vase")
    assert "was destroyed" in bea.do("yes")
    assert hearth.world.search("vase") == []
    bea.do("create/drop urn")
    assert "was destroyed" in bea.do("@destroy/force urn")


def test_create_makes_an_account_at_the_screen_and_a_thing_in_the_game(
        hearth: TestGame) -> None:
    guest = hearth.visitor()
    assert "connect <username> <password>" in guest.text()
    said = guest.do("create zed secret12")
    assert "A new account 'zed' was created." in said and "Hearth Hall" in said
    assert hearth.find("zed").location is hearth.find("Hearth Hall")
    bea = hearth.player("bea", role="builder")
    assert bea.do("create box").startswith("Created box")


def test_players_cannot_build(hearth: TestGame) -> None:
    alice = hearth.player("alice")
    assert "not available" in alice.do("dig Den")
    assert "not available" in alice.do("@create sword")
