"""What a reload can do with an edited settings.toml: apply it, or name what waits.

A reload starts a fresh server, which reads its own sections (`game`, `server`) anew, and
the supervisor takes over its own section in place. The running portal cannot rebind its
ports or change its limits under connected players, so each changed `portal` key (and the
heartbeat interval the portal beats at) waits for a `reboot`. Pure: no I/O.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ipc.settings import Settings

# keys (or sections, ending in ".") that the running portal holds until it restarts
NEEDS_REBOOT = ("portal.", "supervisor.heartbeat_interval")


class SettingsChange(msgspec.Struct, frozen=True, kw_only=True):
    applied: list[str]  # changed keys a reload applies
    waiting: list[str]  # changed keys that need `reboot`, as "key (old -> new)"

    def describe(self) -> str:
        """Lines for the reload's reply; empty when nothing changed."""
        lines = []
        if self.applied:
            lines.append(f"settings applied: {', '.join(self.applied)}")
        if self.waiting:
            lines.append("settings that need `reboot` (players are disconnected), not applied: "
                         + ", ".join(self.waiting))
        return "\n".join(lines)


def flatten(settings: Settings) -> dict[str, Any]:
    """Every setting as `section.key` (nested tables as `section.table.key`)."""
    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else key, inner)
        else:
            flat[prefix] = value

    walk("", msgspec.to_builtins(settings))
    return flat


def needs_reboot(key: str) -> bool:
    return any(key.startswith(p) if p.endswith(".") else key == p for p in NEEDS_REBOOT)


def compare(running: Settings, edited: Settings) -> SettingsChange:
    """Which changed keys a reload applies, and which wait for `reboot`."""
    old, new = flatten(running), flatten(edited)
    changed = sorted(key for key in old.keys() | new.keys() if old.get(key) != new.get(key))
    return SettingsChange(
        applied=[key for key in changed if not needs_reboot(key)],
        waiting=[f"{key} ({old.get(key)!r} -> {new.get(key)!r})"
                 for key in changed if needs_reboot(key)],
    )


def after_reload(running: Settings, edited: Settings) -> Settings:
    """The settings in force after a reload: the edited ones, but the portal's unchanged."""
    supervisor = msgspec.structs.replace(
        edited.supervisor, heartbeat_interval=running.supervisor.heartbeat_interval)
    return msgspec.structs.replace(edited, portal=running.portal, supervisor=supervisor)
