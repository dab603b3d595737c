"""What portus_fab itself writes into the data dir is its owner's only, whatever the process
umask (an existing FAB application that hosts the add-on sets none)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from portus_fab.auth.keys import load_or_generate
from portus_fab.settings import make_data_dir, persistent_secret


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.usefixtures("permissive_umask")
def test_the_data_dir_and_what_portus_fab_writes_there_are_private(tmp_path: Path) -> None:
    secrets_dir, keys_dir, plain_dir = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    persistent_secret(secrets_dir, "secret_key")
    load_or_generate(keys_dir, "portus.test")
    make_data_dir(plain_dir)
    for directory in (secrets_dir, keys_dir, plain_dir):
        assert mode(directory) == 0o700, directory
    files = [*secrets_dir.iterdir(), *keys_dir.iterdir()]
    assert {path.name for path in files} == {"secret_key", "token_signing.key", "token_signing.crt"}
    assert {path.name: mode(path) for path in files} == dict.fromkeys(
        ("secret_key", "token_signing.key", "token_signing.crt"), 0o600
    )


@pytest.mark.usefixtures("permissive_umask")
def test_an_existing_data_dir_keeps_its_mode(tmp_path: Path) -> None:
    """The administrator's choice (a group that makes backups, say) is not undone."""
    directory = tmp_path / "data"
    directory.mkdir(mode=0o750)
    persistent_secret(directory, "webhook_secret")
    assert mode(directory) == 0o750
    assert mode(directory / "webhook_secret") == 0o600
