"""The walks over every FAB route (bad parameters) and every form field (text limits) again, on a
real PostgreSQL. SQLite lets a non-numeric id and a too-long VARCHAR through; PostgreSQL refuses
them with an error, which the app turns into a 500 unless it checks first."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from run import create_app
from tests.conftest import FAST_HASH, USER_ROLE, IsolatedClient
from tests.integration.views.test_fab_parameters import (  # noqa: F401 - collected here, on PostgreSQL
    clients,
    test_api_bad_queries_and_ids,
    test_bad_ids_are_404,
    test_bad_list_parameters_are_400,
    test_good_list_parameters_and_filters_answer_200,
    test_normal_pages_answer_200,
    test_unknown_actions_and_rows_are_404,
)
from tests.integration.views.test_text_limits import (  # noqa: F401
    test_a_2mb_namespace_description_is_refused_and_the_limit_accepted,
    test_every_text_field_of_every_form_is_limited,
)
from tests.support import fab_world
from tests.support.services import Postgres

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    with Postgres() as server:
        yield server


@pytest.fixture
def app(postgres: Postgres, tmp_path: Path) -> Iterator[Flask]:
    """The walks' world on a database of its own in the module's PostgreSQL server (named at
    random: test names with parameters are no URL path, and longer than PostgreSQL's 63)."""
    config = {
        "TESTING": True,
        "SECRET_KEY": "a-test-secret-key-of-at-least-32-bytes",
        "SQLALCHEMY_DATABASE_URI": postgres.create_database(f"walk_{uuid.uuid4().hex}"),
        "PORTUS_DATA_DIR": str(tmp_path),
        "PORTUS_WEBHOOK_SECRET": "pg-secret",
        "PORTUS_BROKER_URL": "memory://",
        "FAB_PASSWORD_HASH_METHOD": FAST_HASH,
        "AUTH_USER_REGISTRATION_ROLE": USER_ROLE,
        "WTF_CSRF_ENABLED": False,
        **fab_world.WITH_REGISTRATION,
    }
    # Built twice, as tests/conftest.py's template: the first app makes the schema and the user
    # role, the second gives that role portus_fab's permissions as it starts.
    first = create_app(config)
    with first.app_context():
        first.appbuilder.sm.add_role(USER_ROLE)
        first.appbuilder.session.remove()
        first.extensions["sqlalchemy"].engine.dispose()
    app = create_app(config)
    app.test_client_class = IsolatedClient
    with app.app_context():
        fab_world.populate(app)
        yield app
        app.appbuilder.session.remove()
        app.extensions["sqlalchemy"].engine.dispose()
