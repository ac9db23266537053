"""The seq marker: what the server writes into its slot, the supervisor reads back."""

from __future__ import annotations

from pathlib import Path

from ipc.marker import FileMarker, marker_path, read_marker


def test_the_slot_is_read_back_and_a_closed_marker_leaves_no_file(tmp_path: Path) -> None:
    path = marker_path(tmp_path, 4242)
    marker = FileMarker(path)
    assert read_marker(path) == 0
    marker.slot[0] = 2**40 + 7  # a seq past 32 bits
    assert read_marker(path) == 2**40 + 7
    marker.slot[0] = 0
    assert read_marker(path) == 0
    marker.close()
    marker.slot[0] = 9  # a write after closing goes nowhere, and does not raise
    assert not path.exists() and read_marker(path) == 0
