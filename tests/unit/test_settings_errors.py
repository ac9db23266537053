"""Issue 10, item 4: settings errors speak of settings.toml, not of msgspec."""

from __future__ import annotations

from pathlib import Path

import pytest

from ipc.settings import SettingsError, load_settings

CASES = {
    "[portal]\nmax_lin = 3\n": "unknown setting `portal.max_lin` (did you mean `max_line`?)",
    "[portl]\n": "unknown section `portl` (did you mean `portal`?)",
    "[supervisor.health]\nintervl = 1\n":
        "unknown setting `supervisor.health.intervl` (did you mean `interval`?)",
    '[portal]\ntelnet_port = "4000"\n':
        "setting `portal.telnet_port` must be a whole number, not a quoted string",
    "[portal]\ntelnet_port = 99999\n":
        "[portal]: `telnet_port` must be a port number (0-65535), not 99999",
}


@pytest.mark.parametrize("text", list(CASES))
def test_settings_errors_name_the_setting(tmp_path: Path, text: str) -> None:
    (tmp_path / "settings.toml").write_text(text)
    with pytest.raises(SettingsError) as error:
        load_settings(tmp_path)
    message = str(error.value)
    assert message.endswith(CASES[text]), message
    assert "Object" not in message and "Expected" not in message and "\n" not in message


def test_a_file_as_game_directory_is_a_settings_error(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("")
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings(afile)
