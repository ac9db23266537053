"""How attribute values, aliases and tags are stored: MessagePack, objects as their ids.

A value is anything msgspec encodes (None, bool, int, float, str, bytes, lists, dicts,
...), plus world objects anywhere inside it: an object is written as a MessagePack
extension holding its id and read back as the object (None once it was deleted).
Tuples and sets read back as lists.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

OBJECT_EXT = 1  # MessagePack extension code of an object reference: its id, 8 bytes


# The class stored as a reference; `server.world.objects` names it when it loads (the
# codec sits below the objects and must not import them).
REFERENCE: list[type] = []


def _is_world_object(value: Any) -> bool:
    return bool(REFERENCE) and isinstance(value, REFERENCE[0])


def _enc_hook(value: Any) -> Any:
    if _is_world_object(value):
        return msgspec.msgpack.Ext(OBJECT_EXT, int(value.id).to_bytes(8, "little", signed=True))
    raise TypeError(f"a {type(value).__name__} cannot be stored (msgspec types and world "
                    "objects can)")


ENCODER = msgspec.msgpack.Encoder(enc_hook=_enc_hook)
_PLAIN = msgspec.msgpack.Decoder()


def encode(value: Any) -> bytes:
    """The stored form of `value`; TypeError (naming the type) if it cannot be stored."""
    try:
        return ENCODER.encode(value)
    except (TypeError, msgspec.EncodeError) as exc:
        raise TypeError(str(exc)) from None


def decoder(lookup: Callable[[int], Any]) -> msgspec.msgpack.Decoder[Any]:
    """A decoder that turns object references back into objects through `lookup(id)`."""

    def ext_hook(code: int, data: memoryview) -> Any:
        if code == OBJECT_EXT:
            return lookup(int.from_bytes(data, "little", signed=True))
        return msgspec.msgpack.Ext(code, bytes(data))

    return msgspec.msgpack.Decoder(ext_hook=ext_hook)


def decode_plain(blob: bytes) -> Any:
    """Decode a blob with no object references (aliases, tags)."""
    return _PLAIN.decode(blob)
