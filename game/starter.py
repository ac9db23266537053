"""The starter area, Hearthstead: built once, on the first start, and never again.

`build()` runs from the `at_server_cold_start` hook (first start, reset, start after a
shutdown). It looks for the tag `hearthstead` (category `area`) first, so a restart, a
reload or a reset never makes a second copy; to build it afresh, delete its rooms
(`destroy`) and reset. New characters start in Hearth Hall (`world.start_location`).

The map (`u`/`d` lead to the gallery and the cellar)::

                          Riverbank
                              | ne/sw
                           Old Road
                              | n/s
                          Village Gate
                              | n/s
       Woodshed -in/out,w/e- Courtyard
                              | n/s (out/in)
     Library -w/e- Hearth Hall -e/w- Kitchen
                      | u/d        | d/u
                   Gallery       Cellar
                      | u/d
                  Bell Tower
"""

from __future__ import annotations

from server.api import WorldObject, create_object, current_world, objects_tagged

from .typeclasses import DIRECTIONS, Container, Exit, Fire, Readable, Room, Thing

AREA_TAG = ("hearthstead", "area")
AREA = "Hearthstead"

ROOMS: dict[str, tuple[str, str, str]] = {
    # key: (name, environment, description)
    "hall": ("Hearth Hall", "indoors",
             "A long, low hall of smoke-dark beams. At its far end a great stone hearth "
             "holds the fire that gives the house its name; benches worn smooth by a "
             "hundred years of travellers stand around it. Doors lead east to the kitchen "
             "and west to the library, a stair climbs to the gallery, another drops to "
             "the cellar, and the big door to the north opens on the courtyard."),
    "kitchen": ("Kitchen", "indoors",
                "Copper pans hang from hooks over a scrubbed oak table, and the air smells "
                "of bread and onions. A bowl of apples waits by the window. A trapdoor in "
                "the floor leads down to the cellar."),
    "library": ("Library", "indoors",
                "Shelves climb to the ceiling, crammed with ledgers, almanacs and books "
                "nobody has opened in years. A reading desk stands under the only lamp; "
                "on it lies a battered guidebook, left open for whoever comes next."),
    "cellar": ("Cellar", "underground",
               "Cool and dry, the cellar smells of earth and old wine. Barrels line one "
               "wall; against the other stands an iron-bound chest. Steps lead up to the "
               "hall and a ladder to the kitchen."),
    "gallery": ("Gallery", "indoors",
                "A narrow wooden gallery runs above the hall; from the railing you can see "
                "the fire below and feel its warmth rising. Portraits of stern innkeepers "
                "watch you pass. A ladder leads further up, into the bell tower."),
    "tower": ("Bell Tower", "indoors",
              "Wind whistles through the slats of the little tower. A bronze bell, green "
              "with age, hangs from a beam; its rope is frayed where countless hands have "
              "pulled it. Far below, the village roofs huddle together."),
    "courtyard": ("Courtyard", "outdoors",
                  "Cobbles wet with dew, a well with a wooden bucket, and the warm yellow "
                  "windows of the hall to the south. A woodshed leans against the east "
                  "wall, and the village gate stands open to the north."),
    "woodshed": ("Woodshed", "indoors",
                 "It is dim and smells of resin. Split logs are stacked to the roof in a "
                 "great woodpile; a hatchet is buried in the chopping block."),
    "gate": ("Village Gate", "outdoors",
             "Two weathered posts and a gate that has not been shut in living memory. "
             "A notice board is nailed to the left post. The courtyard lies south; north, "
             "the old road leaves the village."),
    "road": ("Old Road", "road",
             "The road runs between hedges heavy with blackberries. A fallen oak blocks "
             "the way onward, but a trodden path bends northeast towards the sound of "
             "water. The village gate is back to the south."),
    "river": ("Riverbank", "river",
              "The river slides by, brown and unhurried. Smooth stones line the bank, "
              "and a heron stands in the shallows, pretending not to see you. The path "
              "leads back southwest to the road."),
}

# (from, direction, to): each makes an exit both ways (the way back is the opposite)
LINKS: list[tuple[str, str, str]] = [
    ("hall", "east", "kitchen"), ("hall", "west", "library"), ("hall", "up", "gallery"),
    ("hall", "down", "cellar"), ("hall", "north", "courtyard"),
    ("kitchen", "down", "cellar"), ("gallery", "up", "tower"),
    ("courtyard", "east", "woodshed"), ("courtyard", "north", "gate"),
    ("gate", "north", "road"), ("road", "northeast", "river"),
]
# extra names for some exits: (room, direction) -> aliases beyond the short direction
EXTRA_ALIASES: dict[tuple[str, str], list[str]] = {
    ("hall", "north"): ["out"], ("courtyard", "south"): ["in"],
    ("woodshed", "west"): ["out"],
    ("kitchen", "down"): ["trapdoor"], ("cellar", "up"): ["stairs"],
}
REVERSE = {"north": "south", "south": "north", "east": "west", "west": "east",
           "northeast": "southwest", "southwest": "northeast", "up": "down", "down": "up"}

GUIDEBOOK = """\
  Welcome, traveller! A few words of the house:
    look, look AT THING       see where you are, or a thing
    n, s, e, w, u, d, go EXIT walk (or type an exit's name)
    get THING, drop THING     take and leave things; inventory (i) lists yours
    get 2.apple               when several things share a name, pick one by number
    put THING in THING        the chest in the cellar holds things; so does the fire
    give THING to PLAYER      share; say, pose, whisper, page, who: talk
    help                      everything else
  Mind the fire: it burns down unless someone brings a log from the woodshed."""

NOTICE = """\
  HEARTHSTEAD - NOTICES
  * The bell is rung at dawn and for fire. Not for fun, Tobin.
  * Logs for the hall's fire: the woodshed, east of the courtyard. Take one, put it in.
  * Lost: one copper coin. Probably in the cellar. Finder keeps it.
  * Builders wanted: ask the innkeeper (an admin) for the builder role, then try
      dig Kitchen Garden = east;e, west;w"""


def exists() -> bool:
    return bool(objects_tagged(*AREA_TAG))


def build() -> WorldObject | None:
    """Build Hearthstead unless it is there; the hall (the start location), or None if it
    was there already."""
    if exists():
        return None
    rooms: dict[str, WorldObject] = {key: create_object(Room, name, tags=[AREA_TAG],
                                attributes={"desc": desc, "area": AREA,
                                            "environment": env})
             for key, (name, env, desc) in ROOMS.items()}
    rooms["hall"].db.called = "the hall"
    for start, direction, end in LINKS:
        link(rooms, start, direction, end)
        link(rooms, end, REVERSE[direction], start)
    furnish(rooms)
    current_world().start_location = rooms["hall"]
    return rooms["hall"]


def link(rooms: dict[str, WorldObject], start: str, direction: str, end: str) -> None:
    aliases = [DIRECTIONS[direction], *EXTRA_ALIASES.get((start, direction), [])]
    aliases = [a for a in aliases if a != direction]
    create_object(Exit, direction, location=rooms[start], destination=rooms[end],
                  aliases=aliases, tags=[AREA_TAG])


def thing(cls: type[Thing], key: str, where: WorldObject, desc: str, *aliases: str,
          **attributes: object) -> Thing:
    return create_object(cls, key, location=where, aliases=aliases, tags=[AREA_TAG],
                         attributes={"desc": desc, **attributes})


def furnish(rooms: dict[str, WorldObject]) -> None:
    hall, kitchen, cellar = rooms["hall"], rooms["kitchen"], rooms["cellar"]
    fire = create_object(Fire, "fire", location=hall, aliases=["hearth"], tags=[AREA_TAG],
                         attributes={"desc": "Flames lick the soot-black stones of the "
                                             "hearth."})
    fire.kindle()
    thing(Thing, "iron poker", hall, "A heavy poker, its tip bent from years of use.",
          "poker")
    thing(Readable, "guidebook", rooms["library"],
          "A battered little book with a cracked green spine.", "book", "guide",
          text=GUIDEBOOK)
    thing(Thing, "red apple", kitchen, "A crisp red apple.", "apple")
    thing(Thing, "green apple", kitchen, "A sour-looking green apple.", "apple")
    thing(Thing, "loaf of bread", kitchen, "Still warm, with a crust that crackles.",
          "bread", "loaf")
    chest = thing(Container, "iron-bound chest", cellar,
                  "A heavy oak chest bound with iron bands. Its lid is not locked.",
                  "chest", fixed="The chest is far too heavy to lift.")
    thing(Thing, "brass lantern", chest, "A brass lantern with a little oil left in it.",
          "lantern", oil=3)
    thing(Thing, "copper coin", chest, "A worn copper coin; the king on it has no nose.",
          "coin")
    thing(Thing, "bronze bell", rooms["tower"], "The bell is taller than you are.", "bell",
          fixed="The bell weighs more than the tower it hangs in.")
    thing(Thing, "wooden bucket", rooms["courtyard"], "A bucket, a little leaky.", "bucket")
    woodpile = thing(Container, "woodpile", rooms["woodshed"],
                     "Logs stacked higher than your head.", "pile", "logs",
                     fixed="You would need a cart for that.")
    for _ in range(3):
        thing(Thing, "log", woodpile, "A split log of dry ash wood.", "wood")
    thing(Thing, "hatchet", rooms["woodshed"], "A small hatchet with a keen edge.", "axe")
    thing(Readable, "notice board", rooms["gate"], "A board of grey planks, thick with "
          "nails and old paper.", "notice", "board", "sign", fixed="It is nailed down.",
          text=NOTICE)
    thing(Thing, "smooth stone", rooms["river"], "Flat and grey: a good skimming stone.",
          "stone")
