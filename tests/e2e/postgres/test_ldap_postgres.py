"""LDAP first sign-ins on a real PostgreSQL, where concurrent transactions do not queue behind
one writer as on SQLite: new people signing in at the same moment, several requests each (a
client asks for several scopes' tokens at once), all get their token, whoever creates the user
and the team their group gives."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from run import create_app
from tests.conftest import FAST_HASH, IsolatedClient
from tests.support.ldap_apps import GROUP_TEAMS, get_token, teams_of
from tests.support.services import Postgres
from tests.support.slapd import ALICE, BOB, DEVS_DN, Person, Slapd, ldap_settings

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    with Postgres() as server:
        yield server


def pg_ldap_app(
    url: str, data_dir: Path, directory: Slapd, group_teams: dict[str, Any] = GROUP_TEAMS
) -> Flask:
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "a-test-secret-key-of-at-least-32-bytes",
            "SQLALCHEMY_DATABASE_URI": url,
            "PORTUS_DATA_DIR": str(data_dir),
            "PORTUS_WEBHOOK_SECRET": "pg-secret",
            "PORTUS_BROKER_URL": "memory://",
            "PORTUS_LOGIN_RATE_LIMIT": "off",
            "PORTUS_GROUP_TEAMS": group_teams,
            "FAB_PASSWORD_HASH_METHOD": FAST_HASH,
            "WTF_CSRF_ENABLED": False,
            **ldap_settings(directory),
        }
    )
    app.test_client_class = IsolatedClient
    return app


def test_first_sign_ins_at_the_same_moment(
    postgres: Postgres, tmp_path: Path, slapd: Slapd
) -> None:
    app = pg_ldap_app(postgres.create_database("ldap_first_sign_ins"), tmp_path, slapd)
    people = (ALICE, BOB) * 4
    barrier = threading.Barrier(len(people))
    answers: dict[int, int] = {}

    def first_sign_in(number: int, person: Person) -> None:
        with app.app_context():
            client = app.test_client()
            barrier.wait(10)
            answers[number] = get_token(client, person.uid, person.password).status_code
            app.appbuilder.session.remove()

    with app.app_context():
        if app.appbuilder.sm.find_role("User") is None:
            app.appbuilder.sm.add_role("User")
        threads = [
            threading.Thread(target=first_sign_in, args=(number, person))
            for number, person in enumerate(people)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert answers == dict.fromkeys(range(len(people)), 200)
        assert teams_of(app, "alice") == {"devs": ("contributor", "ldap"), "ops": ("owner", "ldap")}
        assert teams_of(app, "bob") == {"devs": ("contributor", "ldap")}
        app.appbuilder.session.remove()
        app.extensions["sqlalchemy"].engine.dispose()


def test_people_new_to_a_mapped_group_at_the_same_moment(
    postgres: Postgres, tmp_path: Path, slapd: Slapd
) -> None:
    """Known users whose group gives a team that does not exist yet, signing in at once: one
    creates the team, the others find it."""
    url = postgres.create_database("ldap_new_team")
    before = pg_ldap_app(url, tmp_path / "before", slapd)
    with before.app_context():
        if before.appbuilder.sm.find_role("User") is None:
            before.appbuilder.sm.add_role("User")
        for person in (ALICE, BOB):
            assert get_token(before.test_client(), person.uid, person.password).status_code == 200
        before.appbuilder.session.remove()
        before.extensions["sqlalchemy"].engine.dispose()
    # The mapping gains a team: a new app (a restart), no cached sign-in.
    app = pg_ldap_app(
        url,
        tmp_path / "after",
        slapd,
        group_teams={**GROUP_TEAMS, DEVS_DN: [["devs", "contributor"], ["builders", "viewer"]]},
    )
    people = (ALICE, BOB) * 4
    barrier = threading.Barrier(len(people))
    answers: dict[int, int] = {}

    def sign_in(number: int, person: Person) -> None:
        with app.app_context():
            client = app.test_client()
            barrier.wait(10)
            answers[number] = get_token(client, person.uid, person.password).status_code
            app.appbuilder.session.remove()

    with app.app_context():
        threads = [
            threading.Thread(target=sign_in, args=(number, person))
            for number, person in enumerate(people)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert answers == dict.fromkeys(range(len(people)), 200)
        assert teams_of(app, "bob")["builders"] == ("viewer", "ldap")
        app.appbuilder.session.remove()
        app.extensions["sqlalchemy"].engine.dispose()
