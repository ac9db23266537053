"""The persistent world: typed objects that survive every reload, crash and restart.

A game uses it through `server.api` (everything below is exported there)::

    from server.api import Context, Room, Thing, command, create_object, schedule

    class Lamp(Thing):                          # a typeclass: code here, data in the store
        def at_object_creation(self) -> None:   # once, when made
            self.db.lit = False

        def return_appearance(self, looker=None, **kwargs) -> str:
            state = "lit" if self.db.lit else "dark"
            return f"{super().return_appearance(looker)}\\nIt is {state}."

    @command("lamp", perm="builder", help="lamp - make a lamp here.")
    def make_lamp(ctx: Context) -> None:
        here = ctx.caller.location                  # ctx.caller: the session's puppet
        lamp = create_object(Lamp, "lamp", location=here, aliases=["light"])
        lamp.db.lit = True                          # stored with this command's batch
        schedule(60, "hearth_game.lamps.go_out", lamp)   # runs once, even across reloads
        ctx.caller.msg(f"You make {lamp.key} ({lamp.dbref}).")

    def go_out(lamp: Lamp) -> None:                 # hearth_game.lamps.go_out
        lamp.db.lit = False
        lamp.location.msg_contents("The lamp goes out.")

API summary
-----------
Objects (`WorldObject`; bases `Room`, `Exit`, `Character`, `Thing`):
  `id` (never reused), `dbref` ("#12"), `key`, `aliases` (.add/.remove/.all),
  `typeclass_path`, `location`, `home`, `destination`, `contents`, `exits`, `sessions`;
  `db` (stored: values msgspec can encode, objects inside stored by id), `ndb` (memory
  only, gone on reload), `attributes` (.get/.add/.has/.remove/.all), `tags` (.add/.remove/
  .has/.all, with a category); `move_to(dest)`, `delete()`, `msg(text)`,
  `msg_contents(text, exclude=...)`, `search(query)`, `swap_typeclass(cls)`,
  `is_typeclass(cls)`, `return_appearance(looker)`, `get_display_name(looker)`.
Hooks (override in a typeclass): `at_object_creation`, `at_init`, `at_object_delete`,
  `at_pre_move`/`at_post_move`, `at_pre_object_leave`/`at_object_leave`,
  `at_pre_object_receive`/`at_object_receive`, `announce_move_from`/`_to`,
  `at_pre_get`/`at_get`, `at_pre_drop`/`at_drop`, `at_pre_give`/`at_give`,
  `at_traverse`/`at_post_traverse`/`at_failed_traverse`, `at_msg_receive`,
  `at_pre_puppet`/`at_post_puppet`/`at_post_unpuppet`.
Functions: `create_object(typeclass, key, location=, home=, destination=, aliases=,
  tags=, attributes=)`, `get_object(id)`, `search_object(query, location=, typeclass=)`
  (by key/alias, local or global, indexed), `objects_tagged(tag, category)`,
  `objects_of_type(typeclass)`, `schedule(delay_or_datetime, "dotted.path", obj, *args)`,
  `ticker(interval, "dotted.path", obj, *args)`, `cancel_timer(id)`,
  `typeclass_renamed(old_path, new_path)`, `current_world()` (the `World`: `.start_location`,
  `.characters_of(uid)`, `.puppet(session, obj)`, ...).
Sessions: `session.puppet` and `ctx.caller` are the character a session plays; logging in
  puppets the account's character where it last was (one is made at the first login, of
  `world.character_typeclass`, at `world.start_location`).

What is guaranteed
------------------
- Every write made while the server handles a batch of input is committed in ONE SQLite
  transaction before any output of that batch leaves the server: a `kill -9` at any
  moment loses no write whose answer a player saw.
- A command is atomic: if it raises, its writes are undone (memory included) and its
  output dropped; the player is told. (An `async` command's writes before an `await` are
  committed with the batch that ran them; a raise later undoes them in memory and that
  undo is committed.)
- After a reload every object is an instance of the class its path names in the new
  code. Module globals of the game are fresh after a reload: keep objects' ids (or look
  them up by tag) rather than the objects, and never keep state on `self` outside `db`.
- Writes are refused (`WorldReadOnly`) until the server is attached: a standby prepares
  the world while the old server still writes. Build in `at_server_cold_start`, commands
  or timers, not in `at_server_start`.
"""

from server.world.objects import ObjectDeleted, WorldObject
from server.world.timers import Timer, Timers
from server.world.typeclasses import Character, Exit, Room, Thing, typeclass_renamed
from server.world.world import World, WorldReadOnly, current_world

__all__ = [
    "Character",
    "Exit",
    "ObjectDeleted",
    "Room",
    "Thing",
    "Timer",
    "Timers",
    "World",
    "WorldObject",
    "WorldReadOnly",
    "current_world",
    "typeclass_renamed",
]
