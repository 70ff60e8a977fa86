"""The README documents what the code does."""

from dataclasses import fields

from core.config import Settings, env_name
from tests.stack import ROOT

README = (ROOT / "README.md").read_text()


def test_every_setting_is_in_the_configuration_table() -> None:
    for setting in fields(Settings):
        assert f"| `{env_name(setting.name)}` |" in README, setting.name


def test_the_two_commands_are_documented() -> None:
    assert "make run" in README
    assert "make test" in README
