"""PORTUS_CONFIG_FILE: a Python file of settings read after config.py's defaults, as Superset's
SUPERSET_CONFIG_PATH is - FAB's settings are Python values, and PORTUS_* settings in it win over
the environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support.standalone import ROOT, UNSET

# Prints what the standalone app's configuration came to, as `python run.py` would load it.
SHOW_CONFIG = """
import json
from run import create_app
app = create_app()
with app.app_context():
    from portus_fab.core import portus
    core = portus()
    print(json.dumps({
        "AUTH_TYPE": app.config["AUTH_TYPE"],
        "AUTH_ROLES_MAPPING": app.config.get("AUTH_ROLES_MAPPING"),
        "database": app.config["SQLALCHEMY_DATABASE_URI"],
        "token_ttl": core.settings.token_ttl,
        "group_teams": {g: dict(t) for g, t in core.group_teams.items()},
    }))
"""


def run_show_config(tmp_path: Path, environment: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", SHOW_CONFIG],
        env={
            **os.environ,
            **dict.fromkeys(UNSET, ""),
            "PORTUS_DATA_DIR": str(tmp_path / "data"),
            **environment,
        },
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def show_config(tmp_path: Path, **environment: str) -> dict[str, object]:
    result = run_show_config(tmp_path, environment)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def test_the_file_sets_fab_and_portus_settings_over_the_environment(tmp_path: Path) -> None:
    config_file = tmp_path / "portus_config.py"
    config_file.write_text(
        "from flask_appbuilder.const import AUTH_LDAP\n"
        "AUTH_TYPE = AUTH_LDAP\n"
        'AUTH_LDAP_SERVER = "ldap://127.0.0.1:1"\n'
        'AUTH_ROLES_MAPPING = {"cn=admins,ou=groups,dc=example,dc=org": ["Admin"]}\n'
        f'PORTUS_DATA_DIR = "{tmp_path / "elsewhere"}"\n'
        "PORTUS_TOKEN_TTL = 600\n"
        'PORTUS_GROUP_TEAMS = {"cn=devs,ou=groups,dc=example,dc=org": ("devs", "owner")}\n'
        "lower_case_names = 'are not settings'\n"
    )
    shown = show_config(tmp_path, PORTUS_CONFIG_FILE=str(config_file), PORTUS_TOKEN_TTL="120")
    assert shown == {
        "AUTH_TYPE": 2,  # AUTH_LDAP
        "AUTH_ROLES_MAPPING": {"cn=admins,ou=groups,dc=example,dc=org": ["Admin"]},
        # The database follows the data dir the file gives, not the environment's.
        "database": f"sqlite:///{tmp_path / 'elsewhere' / 'portus.db'}",
        "token_ttl": 600,
        "group_teams": {"cn=devs,ou=groups,dc=example,dc=org": {"devs": "owner"}},
    }


def test_without_a_file_the_environment_decides(tmp_path: Path) -> None:
    teams = {"Platform": [["platform", "viewer"]]}
    shown = show_config(tmp_path, PORTUS_TOKEN_TTL="120", PORTUS_GROUP_TEAMS=json.dumps(teams))
    assert shown["AUTH_TYPE"] == 1  # AUTH_DB, config.py's default
    assert shown["token_ttl"] == 120
    assert shown["group_teams"] == {"platform": {"platform": "viewer"}}


def test_a_missing_file_or_a_bad_mapping_stops_the_app_with_its_name(tmp_path: Path) -> None:
    for environment, message in (
        ({"PORTUS_CONFIG_FILE": str(tmp_path / "absent.py")}, "PORTUS_CONFIG_FILE names no file"),
        ({"PORTUS_GROUP_TEAMS": '{"devs": ["devs", "admin"]}'}, "unknown role 'admin'"),
    ):
        result = run_show_config(tmp_path, environment)
        assert result.returncode != 0
        assert message in result.stderr
