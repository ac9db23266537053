"""The world in memory: every object, its indexes, the change buffer and the undo log.

Theory of operation. The server holds the whole world in memory; the database is its
durable copy. A write (a key, a location, `obj.db.x = ...`, a tag) changes the object at
once, notes it in the change buffer (`_dirty`), and, when a command is running, saves the
object's state from before the command's first write to it in that command's undo log.
`commit()` writes the buffer as ONE transaction; the server calls it before it lets the
output of a batch of input leave (`ServerSessionHandler.flush`), so nothing a player was
told can be lost by a crash. A command that raises is rolled back from its undo log, in
memory, before anything of it was written. A standby server `load`s the world while the
old one still serves, `catch_up`s on what was committed meanwhile (repeatedly, then once
more after the old one stopped), and only then `open`s it for writes.
"""

from __future__ import annotations

import gc
import logging
import sqlite3
from collections.abc import Generator, Iterable, Iterator
from contextvars import Token
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec

import server.world.codec as codec
import server.world.store as rows
from server.world.objects import ObjectDeleted, WorldObject, matches
from server.world.timers import Timers
from server.world.typeclasses import (
    RENAMES,
    Character,
    Exit,
    Room,
    Thing,
    Typeclasses,
    import_class,
    normalise,
)
from server.world.undo import SYNC, State, UndoLog, _undo, current

if TYPE_CHECKING:
    from server.session import ServerSession

log = logging.getLogger("server.world")

T = TypeVar("T", bound=WorldObject)

ACCOUNT_TAG = "_account"  # the tag category that says which account owns a character
PUPPET_KEY = "_puppet"  # in session.server_data: the id of the session's puppet
TYPECLASS_PACKAGES = ("hearth_game.", "server.world.")  # where a path given as text may point
LOAD_CHUNK = 20_000  # objects loaded between two turns of a server's event loop


class WorldReadOnly(RuntimeError):
    """The world takes writes once this server is attached (not in a standby preparing)."""


# An object's state as a rollback restores it:
# (alive, key, aliases, path, class, location, home, destination, tags, attrs blob)
_NOT_PENDING = object()


_current: list[World] = []


def current_world() -> World:
    """The world of this server (what `server.api`'s functions use)."""
    if not _current:
        raise RuntimeError("no world is open in this process")
    return _current[-1]


class World:
    """Every object of the game. Make one with `World.open(db)`; the server does.

    Example::

        world = World.open(db, writable=True)     # tests: a world in a temp database
        hall = world.create(Room, "Hall")
        sword = world.create(Thing, "sword", location=hall, aliases=["blade"])
        sword.db.damage = 4
        world.commit()                             # one transaction
        assert world.search("blade", scopes=[hall]) == [sword]
    """

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.typeclasses = Typeclasses()
        self.objects: dict[int, WorldObject] = {}
        self.writable = False
        self.seq = 0  # the change the memory is at
        self.loaded_seq = 0  # the change the first load was at
        self.commits = 0
        self.rows_written = 0
        self.character_typeclass: type[WorldObject] | str = Character
        self.timers: Timers | None = None
        self._next_id = 1
        self._names: dict[str, list[WorldObject]] = {}
        self._tagged: dict[tuple[str, str], dict[WorldObject, None]] = {}
        self._classes: dict[str, dict[WorldObject, None]] = {}
        self._leads_to: dict[WorldObject, dict[WorldObject, None]] = {}
        self._dirty: dict[int, WorldObject] = {}
        self._gone: set[int] = set()
        self._meta: dict[str, Any] = {}
        self._meta_dirty: dict[str, Any] = {}
        self._renames: dict[str, str] = {}
        self._puppets: dict[WorldObject, list[ServerSession]] = {}
        self._kv: dict[str, bytes | None] = {}  # the key-value table's pending writes
        self._decoder = codec.decoder(self._lookup)

    # ------------------------------------------------------------ opening

    @classmethod
    def open(cls, db: sqlite3.Connection, writable: bool = False) -> World:
        """Create the tables if needed and load everything; `writable` opens it at once
        (a server opens it when it attaches, see `open_for_writes`)."""
        steps = cls.opening(db, writable)
        while True:
            try:
                next(steps)
            except StopIteration as done:
                world: World = done.value
                return world

    @classmethod
    def opening(cls, db: sqlite3.Connection, writable: bool = False
                ) -> Generator[None, None, World]:
        """`open` in steps: it yields every 20,000 objects, so that a server can let its
        event loop run between them (heartbeats keep flowing during a long load)."""
        rows.create_tables(db)
        world = cls(db)
        Timers(world)
        yield from world.load_steps()
        _current.append(world)
        if writable:
            world.open_for_writes()
        return world

    def close(self) -> None:
        if self in _current:
            _current.remove(self)

    def load_steps(self, chunk: int = LOAD_CHUNK) -> Generator[None, None, None]:
        """Everything, from one consistent snapshot, with a yield every `chunk` objects.
        The cyclic collector is paused while the objects are made (a collection every
        700 allocations would double the time) and the loaded objects are moved out of
        its way afterwards (`gc.freeze`), so later collections do not walk the world."""
        made: list[WorldObject] = []
        links: list[tuple[int | None, int | None, int | None]] = []

        def header(snapshot: rows.Snapshot) -> None:
            self.typeclasses.known_bases.update(snapshot.bases)
            self._apply_meta(snapshot.meta)

        def take(batch: list[rows.ObjectRow]) -> None:
            for row in batch:
                made.append(self._materialise(row))
                links.append((row[3], row[4], row[5]))

        paused = gc.isenabled()
        gc.disable()
        try:
            snapshot = yield from rows.load_steps(self.db, header, take, chunk)
            get = self.objects.get
            for index, (obj, (loc, home, dest)) in enumerate(zip(made, links, strict=True)):
                self._place(obj, None if loc is None else get(loc))
                obj._home = None if home is None else get(home)
                self._lead(obj, None if dest is None else get(dest))
                if index % chunk == chunk - 1:
                    yield
        finally:
            if paused:
                gc.enable()
        gc.freeze()
        self.seq = self.loaded_seq = snapshot.seq
        if self.timers is not None:
            self.timers.load(snapshot.timers)
        self._run_at_init(made)

    def catch_up(self) -> int:
        """Apply what other servers committed since this one's `seq`; how many rows."""
        changes = rows.changes_since(self.db, self.seq)
        if changes.seq == self.seq:
            return 0
        self.typeclasses.known_bases.update(changes.bases)
        self._apply_meta(changes.meta)
        for oid in changes.gone_objects:
            obj = self.objects.get(oid)
            if obj is not None:
                self._unregister(obj)
        fresh: list[WorldObject] = []
        updated = [self._refresh(row, fresh) for row in changes.objects]
        for obj, row in zip(updated, changes.objects, strict=True):
            self._link(obj, row)
        self._run_at_init(fresh)
        if self.timers is not None:
            self.timers.catch_up(changes.timers, changes.gone_timers)
        self._gone.clear()
        self.seq = changes.seq
        return len(changes.objects) + len(changes.gone_objects) + len(changes.timers)

    def open_for_writes(self) -> None:
        """This server now owns the world: writes are taken (and renames applied)."""
        self.catch_up()
        self.writable = True
        rows.forget_tombstones(self.db, self.loaded_seq)
        self._renames = {old: new for old, new in RENAMES.items()}
        if self._renames:
            for obj in self.objects.values():
                if obj._path in self._renames:
                    obj._path = self._renames[obj._path]

    def _apply_meta(self, meta: dict[str, Any]) -> None:
        self._meta.update(meta)
        self._next_id = max(self._next_id, int(meta.get("next_id", 1)))

    def _materialise(self, row: rows.ObjectRow) -> WorldObject:
        oid, key, path, _, _, _, aliases, tags, attrs, _ = row
        cls = self.typeclasses.resolve(path, self._fallback(row))
        obj: WorldObject = cls.__new__(cls)
        obj.id = oid
        obj._world = self
        obj._key = key
        obj._aliases = tuple(codec.decode_plain(aliases)) if aliases else ()
        obj._path = path
        obj._location = obj._home = obj._destination = None
        obj._tags = tuple((t, c) for t, c in codec.decode_plain(tags)) if tags else None
        obj._attrs = None
        obj._raw = attrs
        obj._ndb = None
        obj._contents = None
        obj._alive = True
        self.objects[oid] = obj
        self._index(obj)
        if oid >= self._next_id:
            self._next_id = oid + 1
        return obj

    def _fallback(self, row: rows.ObjectRow) -> type[WorldObject]:
        """The class for a path with no importable base on record."""
        if row[5] is not None:
            return Exit
        if row[3] is None:
            return Room
        return Thing

    def _refresh(self, row: rows.ObjectRow, fresh: list[WorldObject]) -> WorldObject:
        """A catch-up row: the object updated in place (same instance), or made (and
        noted in `fresh`)."""
        obj = self.objects.get(row[0])
        if obj is None:
            obj = self._materialise(row)
            fresh.append(obj)
            return obj
        self._unindex(obj)
        _, key, path, _, _, _, aliases, tags, attrs, _ = row
        if path != obj._path:
            obj.__class__ = self.typeclasses.resolve(path, self._fallback(row))
        obj._key, obj._path = key, path
        obj._aliases = tuple(codec.decode_plain(aliases)) if aliases else ()
        obj._tags = tuple((t, c) for t, c in codec.decode_plain(tags)) if tags else None
        obj._attrs, obj._raw = None, attrs
        self._index(obj)
        return obj

    def _link(self, obj: WorldObject, row: rows.ObjectRow) -> None:
        get = self.objects.get
        self._place(obj, get(row[3]) if row[3] is not None else None)
        obj._home = get(row[4]) if row[4] is not None else None
        self._lead(obj, get(row[5]) if row[5] is not None else None)

    def _run_at_init(self, objs: Iterable[WorldObject]) -> None:
        for obj in objs:
            if type(obj).at_init is not WorldObject.at_init:
                try:
                    obj.at_init()
                except Exception:
                    log.exception("at_init of %r failed", obj)

    # ------------------------------------------------------------ making and finding

    def create(self, typeclass: type[T] | str, key: str, *, location: WorldObject | None = None,
               home: WorldObject | None = None, destination: WorldObject | None = None,
               aliases: Iterable[str] = (), tags: Iterable[str | tuple[str, str]] = (),
               attributes: dict[str, Any] | None = None) -> T:
        """A new object (a fresh id, never reused), stored with the current batch.

        `at_object_creation` runs once, after the fields and `attributes` are set, so it
        may read them. `home` defaults to `location`."""
        cls = self._class_of(typeclass)
        self._check_writable()
        oid = self._next_id
        self._next_id += 1
        self._meta_dirty["next_id"] = self._next_id
        obj = cls(self, oid, str(key), self.typeclasses.note(cls))
        self.objects[oid] = obj
        undo = current()
        if undo is not None:
            undo.saved[oid] = None
            undo.objects[oid] = obj
        self._dirty[oid] = obj
        obj._aliases = tuple(aliases)
        obj._attrs = {}
        for name, value in (attributes or {}).items():
            self._check_storable(value)
            obj._attrs[name] = value
        obj._tags = tuple(sorted({(t.lower(), "") if isinstance(t, str) else
                                  (t[0].lower(), t[1].lower()) for t in tags})) or None
        self._index(obj)
        self._place(obj, location)
        obj._home = home if home is not None else location
        self._lead(obj, destination)
        obj.at_object_creation()
        return obj

    def get(self, oid: int | str) -> WorldObject | None:
        """The object with id `oid` (an int or "#12"), or None."""
        if isinstance(oid, str):
            text = oid.lstrip("#")
            if not (text.isascii() and text.isdigit()):
                return None
            oid = int(text)
        return self.objects.get(oid)

    def __len__(self) -> int:
        return len(self.objects)

    def __iter__(self) -> Iterator[WorldObject]:
        return iter(list(self.objects.values()))

    def search(self, query: str, *, scopes: Iterable[WorldObject] | None = None,
               typeclass: type | str | None = None, exact: bool | None = None
               ) -> list[WorldObject]:
        """Objects whose key or an alias is `query` (any case), or `#id`.

        With `scopes`, only the contents of those objects (and the scopes themselves);
        else everywhere (indexed). Unless `exact`, when nothing is named exactly, names
        that begin with the query (or with a word of it) match too. `exact` defaults to
        False in scopes and True everywhere: a partial name over the whole world is a
        scan of every object (about 50 ms per 100,000), asked for with `exact=False`."""
        if exact is None:
            exact = scopes is None
        query = query.strip()
        if query.startswith("#") and query[1:].isascii() and query[1:].isdigit():
            obj = self.objects.get(int(query[1:]))
            found = [] if obj is None else [obj]
            if scopes is not None and obj is not None:
                allowed = list(scopes)
                found = [o for o in found if o in allowed or o._location in allowed]
            return self._of_type(found, typeclass)
        want = query.lower()
        if scopes is None:
            found = list(self._names.get(want, ()))
            if not found and not exact:
                found = [o for o in self.objects.values() if _begins(o, want)]
            return self._of_type(found, typeclass)
        candidates: list[WorldObject] = []
        for scope in scopes:
            candidates.append(scope)
            candidates.extend(scope._contents or ())
        found = [o for o in candidates if o._key.lower() == want
                 or any(a.lower() == want for a in o._aliases)]
        if not found and not exact:
            found = [o for o in candidates if _begins(o, want)]
        return self._of_type(list(dict.fromkeys(found)), typeclass)

    def tagged(self, tag: str, category: str = "") -> list[WorldObject]:
        """Objects with `tag` in `category` (indexed), in id order."""
        found = self._tagged.get((tag.lower(), category.lower()), {})
        return sorted(found, key=_by_id)

    def of_type(self, typeclass: type | str, exact: bool = False) -> list[WorldObject]:
        """Objects of a typeclass (and its subclasses, unless `exact`), in id order. A
        path that does not import finds the objects stored with exactly that path (they
        run as a fallback class meanwhile)."""
        wanted = self._class_or_path(typeclass)
        found: list[WorldObject] = []
        for path, members in self._classes.items():
            first = next(iter(members), None)
            if first is not None and matches(first, path, wanted, exact):
                found.extend(members)
        return sorted(found, key=_by_id)

    def _of_type(self, found: list[WorldObject], typeclass: type | str | None
                 ) -> list[WorldObject]:
        if typeclass is None:
            return found
        wanted = self._class_or_path(typeclass)
        return [o for o in found if matches(o, o._path, wanted, False)]

    def _class_or_path(self, typeclass: type | str) -> type | str:
        """A class as given; a path as its class, or (not importable) as the path."""
        if not isinstance(typeclass, str):
            return typeclass
        path = normalise(typeclass)
        try:
            return self._class_of(path)
        except ImportError:
            return path

    def _class_of(self, typeclass: type[T] | str) -> type[T]:
        """The class a `create` or `swap_typeclass` asks for; ImportError if a path does
        not import (a new object never falls back), or is outside the game package and
        `server.world` (a builder typing a path cannot make the server import any module
        it likes)."""
        if not isinstance(typeclass, str):
            return typeclass
        path = normalise(typeclass)
        path = RENAMES.get(path, path)
        if not path.startswith(TYPECLASS_PACKAGES):
            raise ImportError(f"{path}: typeclasses live in the game package "
                              f"({', '.join(TYPECLASS_PACKAGES)})")
        return import_class(path)  # type: ignore[return-value]

    def delete(self, obj: WorldObject) -> bool:
        """Delete `obj` (see `WorldObject.delete`)."""
        if not obj._alive:
            return False
        if not obj.at_object_delete():
            return False
        for exit_ in list(self._leads_to.get(obj, ())):
            self.delete(exit_)
        for inside in list(obj._contents or ()):
            home = inside._home
            usable = home is not None and home._alive and not _within(home, obj) \
                and not _within(home, inside)
            self._set_location(inside, home if usable else obj._location)
        for session in list(self._puppets.get(obj, ())):
            self.unpuppet(session)
        self._touch(obj)
        self._unregister(obj)
        self._gone.add(obj.id)
        return True

    @property
    def start_location(self) -> WorldObject | None:
        """Where new characters start: the object set here, else the first Room."""
        oid = self._meta.get("start")
        obj = self.objects.get(oid) if isinstance(oid, int) else None
        if obj is not None:
            return obj
        rooms = [o for o in self.objects.values() if isinstance(o, Room)]
        return min(rooms, key=_by_id) if rooms else None

    @start_location.setter
    def start_location(self, obj: WorldObject | None) -> None:
        self._check_writable()
        self._meta["start"] = self._meta_dirty["start"] = None if obj is None else obj.id

    # ------------------------------------------------------------ characters and sessions

    def characters_of(self, uid: int) -> list[WorldObject]:
        """The characters account `uid` owns, in id order."""
        return self.tagged(str(uid), ACCOUNT_TAG)

    def owner_of(self, obj: WorldObject) -> int | None:
        for tag, category in obj._tags or ():
            if category == ACCOUNT_TAG:
                return int(tag)
        return None

    def create_character(self, uid: int, key: str, typeclass: type[WorldObject] | str | None
                         = None, location: WorldObject | None = None) -> WorldObject:
        """A character owned by account `uid`, at `location` (default: `start_location`)."""
        start = location if location is not None else self.start_location
        return self.create(typeclass or self.character_typeclass, key, location=start,
                           home=start, tags=[(str(uid), ACCOUNT_TAG)])

    def puppet(self, session: ServerSession, obj: WorldObject) -> None:
        """`session` plays `obj` (kept in `server_data`, so it survives reload and crash)."""
        if session.puppet is not None:
            self.unpuppet(session)
        obj.at_pre_puppet(session)
        self._bind(session, obj)
        session.server_data[PUPPET_KEY] = obj.id
        obj.at_post_puppet()

    def unpuppet(self, session: ServerSession) -> None:
        obj: WorldObject | None = session.puppet
        session.puppet = None
        session.server_data.pop(PUPPET_KEY, None)
        if obj is None:
            return
        players = self._puppets.get(obj, [])
        if session in players:
            players.remove(session)
        if not players:
            self._puppets.pop(obj, None)
        obj.at_post_unpuppet(session)

    def bind(self, session: ServerSession) -> WorldObject | None:
        """After a reload or crash: give `session` back the puppet its data names (no
        puppet hooks run: for the player nothing changed)."""
        oid = session.server_data.get(PUPPET_KEY)
        obj = self.objects.get(oid) if isinstance(oid, int) else None
        old: WorldObject | None = session.puppet
        if old is not None and old is not obj:
            players = self._puppets.get(old, [])
            if session in players:
                players.remove(session)
        if obj is None:
            session.puppet = None
            return None
        self._bind(session, obj)
        return obj

    def _bind(self, session: ServerSession, obj: WorldObject) -> None:
        session.puppet = obj
        players = self._puppets.setdefault(obj, [])
        if session not in players:
            players.append(session)

    def forget_session(self, session: ServerSession) -> None:
        """The session closed: its puppet stays where it is, unpuppeted."""
        obj = session.puppet
        if obj is not None:
            players = self._puppets.get(obj, [])
            if session in players:
                players.remove(session)
            if not players:
                self._puppets.pop(obj, None)
            session.puppet = None
            obj.at_post_unpuppet(session)

    def forget_all_sessions(self) -> None:
        """Every session is gone (a new portal run): no object is puppeted any more."""
        for players in self._puppets.values():
            for session in players:
                session.puppet = None
        self._puppets.clear()

    def login(self, session: ServerSession, uid: int, name: str) -> WorldObject:
        """Puppet the account's first character where it last was (made if it has none)."""
        characters = self.characters_of(uid)
        obj = characters[0] if characters else self.create_character(uid, name)
        self.puppet(session, obj)
        return obj

    def sessions_of(self, obj: WorldObject) -> list[ServerSession]:
        return list(self._puppets.get(obj, ()))

    def sessions_in(self, place: WorldObject, exclude: WorldObject | None = None
                    ) -> list[ServerSession]:
        """The sessions puppeting anything in `place` (but `exclude`), in arrival order:
        whom a line to a room reaches, in one pass (a `say` to 100 players)."""
        get = self._puppets.get
        return [session for obj in place._contents or () if obj is not exclude
                for session in get(obj, ())]

    # ------------------------------------------------------------ commands and commits

    def begin_command(self) -> int:
        """A savepoint for a command that runs without awaiting: writes from now on can be
        undone by `rollback_command`. (Its log is made at its first write.)"""
        SYNC.append(None)
        return len(SYNC)

    def end_command(self, mark: int) -> None:
        """The savepoint is released; a command around it (an input run from inside
        another) can still undo these writes."""
        undo = _pop(mark)
        if undo is not None:
            self.release_log(undo)

    def rollback_command(self, mark: int) -> int:
        """Undo every write since `begin_command` and release it; objects put back."""
        undo = _pop(mark)
        return 0 if undo is None else self._rollback(undo)

    def begin_task(self) -> Token[UndoLog | None]:
        """A savepoint for a command that awaits: its task's own log (a context variable)."""
        # A new log every time, never a reused one: a task or a call_later the command
        # starts keeps this context, and may still write into its log later.
        return _undo.set(UndoLog())

    def end_task(self, mark: Token[UndoLog | None]) -> None:
        """`end_command` for `begin_task`'s savepoint."""
        undo = _undo.get()
        _undo.reset(mark)
        if undo is not None:
            self.release_log(undo)

    def release_log(self, undo: UndoLog) -> None:
        """A released savepoint's writes go to the one around it, which can still undo
        them (nothing to do without one)."""
        if not (undo.saved or undo.timers or undo.kv):
            return  # (most commands write nothing: nothing to hand to an outer savepoint)
        outer = current()
        if outer is not None:
            for oid, state in undo.saved.items():
                if oid not in outer.saved:
                    outer.saved[oid] = state
                    outer.objects[oid] = undo.objects[oid]
            for tid, before in undo.timers.items():
                outer.timers.setdefault(tid, before)
            for key, value in undo.kv.items():
                outer.kv.setdefault(key, value)

    def rollback_current(self) -> int:
        """Undo the writes of the savepoint this code runs in (it stays open, empty)."""
        undo = SYNC[-1] if SYNC else _undo.get()
        return 0 if undo is None else self._rollback(undo)

    def _rollback(self, undo: UndoLog) -> int:
        """Put every object the log saved back as it was (in memory; nothing of it was
        committed yet, unless the command awaited); how many."""
        count = len(undo.saved)
        for oid, state in undo.saved.items():
            obj = undo.objects[oid]
            if state is None:
                if obj._alive:
                    self._unregister(obj)
                self._dirty.pop(oid, None)
                self._gone.discard(oid)
            else:
                self._restore(obj, state)
        if self.timers is not None:
            self.timers.rollback(undo.timers)
        for key, before in undo.kv.items():
            if before is _NOT_PENDING:
                self._kv.pop(key, None)
            else:
                self._kv[key] = before
        undo.saved.clear()
        undo.objects.clear()
        undo.timers.clear()
        undo.kv.clear()
        return count

    # ------------------------------------------------------------ the key-value table

    def kv_pending(self, key: str) -> tuple[bool, bytes | None]:
        """Whether `key` has a write waiting for the commit, and its value (None: deleted)."""
        if key in self._kv:
            return True, self._kv[key]
        return False, None

    def kv_put(self, key: str, blob: bytes | None) -> bool:
        """Hold a write of the game's key-value table for the commit; False (the caller
        writes it at once) while this world takes no writes."""
        if not self.writable:
            return False
        undo = current()
        if undo is not None and key not in undo.kv:
            undo.kv[key] = self._kv.get(key, _NOT_PENDING)
        self._kv[key] = blob
        return True

    def commit(self) -> int:
        """Write every change since the last commit in one transaction; rows written."""
        timers = self.timers
        if not (self._dirty or self._gone or self._meta_dirty or self._renames or self._kv
                or self.typeclasses.new_bases or (timers is not None and timers.changed())):
            return 0
        seq = self.seq + 1
        batch = rows.Batch(
            objects=[self._row(obj, seq) for obj in self._dirty.values() if obj._alive],
            gone_objects=list(self._gone), meta=dict(self._meta_dirty),
            bases=dict(self.typeclasses.new_bases), renames=dict(self._renames),
            kv=dict(self._kv))
        if timers is not None:
            batch.timers, batch.gone_timers = timers.batch(seq)
        rows.write(self.db, batch, seq)
        self._dirty.clear()
        self._gone.clear()
        self._meta_dirty.clear()
        self._renames.clear()
        self._kv.clear()
        self.typeclasses.new_bases.clear()
        if timers is not None:
            timers.committed()
        self.seq = seq
        self.commits += 1
        written = len(batch.objects) + len(batch.gone_objects) + len(batch.timers)
        self.rows_written += written
        return written

    def pending(self) -> int:
        """Objects changed since the last commit."""
        return len(self._dirty) + len(self._gone)

    # ------------------------------------------------------------ writes (the objects call)

    def _check_writable(self) -> None:
        if not self.writable:
            raise WorldReadOnly("the world takes writes once the server is attached (make "
                                "objects in at_server_cold_start, a command or a timer, not "
                                "in at_server_start)")

    def _check_storable(self, value: Any) -> None:
        codec.encode(value)

    def _touch(self, obj: WorldObject) -> None:
        if not obj._alive:
            raise ObjectDeleted(f"{obj!r} was deleted")
        if not self.writable:
            self._check_writable()
        undo = current()
        if undo is not None and obj.id not in undo.saved:
            undo.saved[obj.id] = self._state(obj)
            undo.objects[obj.id] = obj
        self._dirty[obj.id] = obj

    def _attrs_of(self, obj: WorldObject) -> dict[str, Any]:
        attrs = obj._attrs
        if attrs is None:
            raw = obj._raw
            attrs = obj._attrs = dict(self._decoder.decode(raw)) if raw else {}
            obj._raw = None
        return attrs

    def _set_names(self, obj: WorldObject, key: str, aliases: tuple[str, ...]) -> None:
        self._touch(obj)
        self._unindex_names(obj)
        obj._key, obj._aliases = key, aliases
        self._index_names(obj)

    def _add_tag(self, obj: WorldObject, tag: str, category: str) -> None:
        if (tag, category) in (obj._tags or ()):
            return
        self._touch(obj)
        obj._tags = tuple(sorted((*(obj._tags or ()), (tag, category))))
        self._tagged.setdefault((tag, category), {})[obj] = None

    def _remove_tag(self, obj: WorldObject, tag: str, category: str) -> None:
        if (tag, category) not in (obj._tags or ()):
            return
        self._touch(obj)
        obj._tags = tuple(t for t in obj._tags or () if t != (tag, category)) or None
        self._drop(self._tagged, (tag, category), obj)

    def _set_location(self, obj: WorldObject, location: WorldObject | None) -> None:
        if location is not None:
            if not location._alive:
                raise ObjectDeleted(f"{location!r} was deleted")
            if _within(location, obj):
                raise ValueError(f"{obj!r} cannot be inside itself")
        self._touch(obj)
        self._place(obj, location)

    def _set_link(self, obj: WorldObject, slot: str, target: WorldObject | None) -> None:
        self._touch(obj)
        if slot == "_destination":
            self._lead(obj, target)
        else:
            obj._home = target

    def _swap_typeclass(self, obj: WorldObject, typeclass: type[WorldObject] | str) -> None:
        cls = self._class_of(typeclass)
        self._touch(obj)
        self._drop(self._classes, obj._path, obj)
        obj.__class__ = cls
        obj._path = self.typeclasses.note(cls)
        self._classes.setdefault(obj._path, {})[obj] = None

    # ------------------------------------------------------------ indexes

    def _place(self, obj: WorldObject, location: WorldObject | None) -> None:
        old = obj._location
        if old is location:
            return
        if old is not None and old._contents is not None:
            old._contents.pop(obj, None)
            if not old._contents:
                old._contents = None
        obj._location = location
        if location is not None:
            if location._contents is None:
                location._contents = {}
            location._contents[obj] = None

    def _lead(self, obj: WorldObject, target: WorldObject | None) -> None:
        old = obj._destination
        if old is not None:
            self._drop(self._leads_to, old, obj)
        obj._destination = target
        if target is not None:
            self._leads_to.setdefault(target, {})[obj] = None

    def _index(self, obj: WorldObject) -> None:
        self._index_names(obj)
        for tag in obj._tags or ():
            self._tagged.setdefault(tag, {})[obj] = None
        members = self._classes.get(obj._path)
        if members is None:
            members = self._classes[obj._path] = {}
        members[obj] = None

    def _unindex(self, obj: WorldObject) -> None:
        self._unindex_names(obj)
        for tag in obj._tags or ():
            self._drop(self._tagged, tag, obj)
        self._drop(self._classes, obj._path, obj)

    def _index_names(self, obj: WorldObject) -> None:
        names = self._names
        key = obj._key.lower()
        found = names.get(key)
        if found is None:
            names[key] = [obj]
        else:
            found.append(obj)
        if obj._aliases:
            for name in {a.lower() for a in obj._aliases} - {key}:
                found = names.get(name)
                if found is None:
                    names[name] = [obj]
                else:
                    found.append(obj)

    def _unindex_names(self, obj: WorldObject) -> None:
        for name in {obj._key.lower(), *(a.lower() for a in obj._aliases)}:
            found = self._names.get(name)
            if found is not None and obj in found:
                found.remove(obj)
                if not found:
                    del self._names[name]

    @staticmethod
    def _drop(index: dict[Any, dict[WorldObject, None]], key: Any, obj: WorldObject) -> None:
        members = index.get(key)
        if members is not None:
            members.pop(obj, None)
            if not members:
                del index[key]

    def _unregister(self, obj: WorldObject) -> None:
        self._unindex(obj)
        self._place(obj, None)
        self._lead(obj, None)
        self.objects.pop(obj.id, None)
        self._dirty.pop(obj.id, None)
        obj._alive = False

    def _register(self, obj: WorldObject) -> None:
        obj._alive = True
        self.objects[obj.id] = obj
        self._index(obj)

    # ------------------------------------------------------------ rows and states

    def _lookup(self, oid: int) -> WorldObject | None:
        return self.objects.get(oid)

    def _attrs_blob(self, obj: WorldObject) -> bytes | None:
        attrs = obj._attrs
        if attrs is None:
            return obj._raw
        if not attrs:
            return None
        try:
            return codec.encode(attrs)
        except TypeError:
            kept = {}
            for name, value in attrs.items():
                try:
                    codec.encode(value)
                except TypeError as exc:
                    log.error("%r: attribute %r is not stored (%s)", obj, name, exc)
                    continue
                kept[name] = value
            return codec.encode(kept)

    def _row(self, obj: WorldObject, seq: int) -> rows.ObjectRow:
        loc, home, dest = obj._location, obj._home, obj._destination
        return (obj.id, obj._key, obj._path, None if loc is None else loc.id,
                None if home is None or not home._alive else home.id,
                None if dest is None else dest.id,
                msgspec.msgpack.encode(obj._aliases) if obj._aliases else None,
                msgspec.msgpack.encode(obj._tags) if obj._tags else None,
                self._attrs_blob(obj), seq)

    def _state(self, obj: WorldObject) -> State:
        return (obj._alive, obj._key, obj._aliases, obj._path, type(obj), obj._location,
                obj._home, obj._destination, obj._tags, self._attrs_blob(obj))

    def _restore(self, obj: WorldObject, state: State) -> None:
        alive, key, aliases, path, cls, location, home, destination, tags, blob = state
        if obj._alive:
            self._unindex(obj)
        obj._key, obj._aliases, obj._path, obj._tags = key, aliases, path, tags
        if type(obj) is not cls:
            obj.__class__ = cls
        obj._attrs, obj._raw = None, blob
        obj._home = home
        if alive:
            self._register(obj)
            self._dirty[obj.id] = obj
            self._place(obj, location)
            self._lead(obj, destination)
            self._gone.discard(obj.id)
        else:
            obj._alive = False


def _pop(mark: int) -> UndoLog | None:
    """The log of the synchronous savepoint `mark` (`begin_command`), released with any
    left open inside it."""
    undo = SYNC[mark - 1] if len(SYNC) >= mark else None
    del SYNC[mark - 1:]
    return undo


def _within(place: WorldObject, container: WorldObject) -> bool:
    """Whether `place` is `container` or somewhere inside it."""
    here: WorldObject | None = place
    while here is not None:
        if here is container:
            return True
        here = here._location
    return False


def _by_id(obj: WorldObject) -> int:
    return obj.id


def _begins(obj: WorldObject, want: str) -> bool:
    for name in (obj._key, *obj._aliases):
        low = name.lower()
        if low.startswith(want) or any(word.startswith(want) for word in low.split()):
            return True
    return False


__all__ = ["World", "WorldReadOnly", "current_world"]
