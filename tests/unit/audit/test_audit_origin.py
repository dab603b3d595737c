"""Who a record names when nothing says otherwise, and what the CLI says about itself."""

from __future__ import annotations

import getpass
import os

import pytest

from portus_fab.audit.origin import SYSTEM, Origin, acting, cli_origin, current_origin


def test_acting_names_the_origin_inside_the_block_only() -> None:
    cli = Origin("cli:someone")
    with acting(cli):
        assert current_origin() == cli
        with acting(Origin("registry")):
            assert current_origin().actor == "registry"
        assert current_origin() == cli


def test_the_cli_is_its_operating_system_user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOGNAME", "ops")
    assert cli_origin() == Origin("cli:ops")


def test_a_uid_without_a_name_is_named_by_its_number(monkeypatch: pytest.MonkeyPatch) -> None:
    """A container run as an arbitrary uid, with no USER or LOGNAME: getpass has no name."""

    def nameless() -> str:
        raise KeyError("getpwuid(): uid not found")

    monkeypatch.setattr(getpass, "getuser", nameless)
    assert cli_origin() == Origin(f"cli:uid {os.getuid()}")


def test_outside_any_entry_point_the_change_is_portus_fabs_own() -> None:
    assert current_origin() == SYSTEM
