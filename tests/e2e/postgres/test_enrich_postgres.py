"""Enrichment isolation on a real PostgreSQL, which (unlike SQLite) enforces column types and
constraints: a hostile digest between good ones fails alone; a row the database itself refuses
fails that digest alone, in the database's words; doctor's failure check runs there too."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import text

from portus_fab.catalog import repositories
from portus_fab.ops.diagnostics import check_events
from portus_fab.tasks.catalog import enrich_digests
from tests.conftest import make_app
from tests.integration.catalog.test_enrich_isolation import (  # noqa: F401 - `hostile` is the fixture
    GOOD,
    LONG_AGO,
    POISONS,
    Hostile,
    assert_good_described,
    batch_around,
    hostile,
    hostile_repository,
    tag_of,
)
from tests.support.services import Postgres

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    with Postgres() as server:
        yield server


@pytest.fixture
def pg_app(
    postgres: Postgres,
    hostile: Hostile,  # noqa: F811
    template_dir: Path,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> Iterator[Flask]:
    """The template's signing key (the registry trusts it) over a PostgreSQL database of its own,
    with a tag on every digest of the registry."""
    app = make_app(
        template_dir,
        tmp_path / "data",
        SQLALCHEMY_DATABASE_URI=postgres.create_database(request.node.name.lower()[:60]),
        PORTUS_REGISTRY_URL=hostile.registry.url,
    )
    with app.app_context():
        session = app.appbuilder.session
        pushes = [
            repositories.Push(name, "v1", digest, None, "root", LONG_AGO)
            for name, digest in hostile.digests.items()
        ]
        repositories.record_pushes(session, pushes)
        session.commit()
        yield app
        session.remove()
        app.extensions["sqlalchemy"].engine.dispose()


@pytest.mark.parametrize("case", ["huge-sizes", "index-over-a-bad-child", "too-much-text"])
def test_a_hostile_digest_fails_alone(pg_app: Flask, hostile: Hostile, case: str) -> None:  # noqa: F811
    session = pg_app.appbuilder.session
    name = hostile_repository(case)
    assert enrich_digests.apply(args=(batch_around(hostile, name),)).get() == len(GOOD)
    assert_good_described(session)
    failed = tag_of(session, name)
    assert failed.enrich_failed and POISONS[case][1] in (failed.enrich_error or "")

    (check,) = [c for c in check_events(session, 60) if c.name == "enrichment failures"]
    assert not check.ok
    assert check.detail.startswith(f"1 tags could not be described, latest: {name}:v1")


def test_a_row_the_database_refuses_fails_that_digest_alone(
    pg_app: Flask,
    hostile: Hostile,  # noqa: F811
) -> None:
    session = pg_app.appbuilder.session
    refused = hostile.digests[GOOD[1]]  # a digest: hex only, safe inside the statement
    session.execute(
        text(
            "ALTER TABLE portus_tag ADD CONSTRAINT refuse_one "
            f"CHECK (digest <> '{refused}' OR size IS NULL)"
        )
    )
    session.commit()
    batch = [[GOOD[1], refused], [GOOD[0], hostile.digests[GOOD[0]]]]
    assert enrich_digests.apply(args=(batch,)).get() == 1
    assert tag_of(session, GOOD[0]).enriched and not tag_of(session, GOOD[0]).enrich_failed
    failed = tag_of(session, GOOD[1])
    assert failed.enrich_failed
    assert (failed.enrich_error or "").startswith(
        "the database refused its details: CheckViolation: "
    )
