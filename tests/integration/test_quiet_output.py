"""Building the app - which `python run.py`, every CLI command and every Celery worker do first -
prints nothing but what matters: FAB's hint that no user exists yet, on a new database."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from flask_appbuilder.const import LOGMSG_WAR_SEC_NO_USER

from run import create_app
from tests.conftest import app_config
from tests.support.standalone import ROOT, UNSET


def test_building_the_app_warns_of_nothing_but_the_missing_first_user(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    create_app(app_config(tmp_path))
    warnings = [record.getMessage() for record in caplog.records]
    assert warnings == [LOGMSG_WAR_SEC_NO_USER]


@pytest.mark.parametrize("command", [["portus", "--help"], ["portus", "jwks"]])
def test_cli_commands_print_nothing_but_what_matters(tmp_path: Path, command: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "run", *command],
        env={**os.environ, **dict.fromkeys(UNSET, ""), "PORTUS_DATA_DIR": str(tmp_path / "data")},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [LOGMSG_WAR_SEC_NO_USER]
    assert result.stdout
