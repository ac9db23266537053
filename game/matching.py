"""Finding the one thing a player means, with "which one?" when a name fits several.

`pick(caller, query, candidates)` returns the object or None after telling the caller
why. `2.apple` (or `apple-2`) picks the second of several apples, numbered as the
question listed them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from server.api import WorldObject

NUMBERED = re.compile(r"^(\d+)[.-](.+)$|^(.+)-(\d+)$")


def split_number(query: str) -> tuple[int | None, str]:
    """"2.apple" / "2-apple" / "apple-2" -> (2, "apple"); "apple" -> (None, "apple")."""
    m = NUMBERED.match(query.strip())
    if m is None:
        return None, query.strip()
    if m.group(1):
        return int(m.group(1)), m.group(2).strip()
    return int(m.group(4)), m.group(3).strip()


def names_of(obj: WorldObject) -> list[str]:
    return [obj.key.lower(), *(a.lower() for a in obj.aliases)]


def matches(query: str, candidates: Iterable[WorldObject]) -> list[WorldObject]:
    """Exact key or alias (any case) first; else names or words of them that begin
    with the query; `#12` is the object with that id."""
    want = query.strip().lower()
    pool = list(dict.fromkeys(candidates))
    if want.startswith("#") and want[1:].isascii() and want[1:].isdigit():
        return [o for o in pool if o.id == int(want[1:])]
    exact = [o for o in pool if want in names_of(o)]
    if exact:
        return exact
    return [o for o in pool if any(n.startswith(want) or any(w.startswith(want)
                                                             for w in n.split())
                                   for n in names_of(o))]


def pick(caller: WorldObject, query: str, candidates: Iterable[WorldObject],
         what: str = "") -> WorldObject | None:
    """The one object `query` means among `candidates`; None after telling `caller`
    (nothing found, or a numbered "which one?" list)."""
    number, name = split_number(query)
    if not name:
        caller.msg("Which one? Give a name.")
        return None
    if name.lower() in ("me", "self"):
        return caller
    found = matches(name, candidates)
    if number is not None:
        if 1 <= number <= len(found):
            return found[number - 1]
        caller.msg(f"There are not {number} of '{name}' here." if found
                   else f"You see no '{name}'{what}.")
        return None
    if found and (len(found) == 1 or alike(found)):
        return found[0]
    if not found:
        caller.msg(f"You see no '{name}'{what}.")
        return None
    lines = [f"Which one? '{name}' could be:"]
    lines += [f"  {n}.{name}  {o.key}{where(caller, o)}" for n, o in enumerate(found, 1)]
    lines.append(f"Type it with its number, as {len(found)}.{name}")
    caller.msg("\n".join(lines))
    return None


def alike(found: list[WorldObject]) -> bool:
    """Identical things side by side (three logs in a woodpile): any one will do."""
    first = found[0]
    return all(o.key == first.key and o.location is first.location
               and type(o) is type(first) for o in found)


def where(caller: WorldObject, obj: WorldObject) -> str:
    if obj.location is caller:
        return " (carried)"
    if obj.location is not None and obj.location is not caller.location:
        return f" (in {obj.location.key})"
    return ""
