"""The explore and repository pages run as many statements with 300 repositories (or 10 tags)
as with 30 (or one)."""

from __future__ import annotations

import datetime as dt

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from portus_fab.models import Namespace, Repository, Tag
from tests.support.screens import (
    OWNER,
    T0,
    VISIBLE,
    World,
    body_of,
    digest,
    explore_repositories,
    explore_total,
    text_of,
)
from tests.support.statements import count_statements


def seed(app: Flask, start: int, count: int) -> None:
    """`count` repositories spread over two visible namespaces (public openhouse, devteam via
    the team) and one hidden (opsonly, every third); the first few with 10 tags each."""
    session = app.appbuilder.session
    namespaces = [world_namespace_id(app, name) for name in ("openhouse", "devteam", "opsonly")]
    for i in range(start, start + count):
        namespace_id = namespaces[i % 3]
        repository = Repository(
            name=f"{('openhouse', 'devteam', 'opsonly')[i % 3]}/bulk{i:04d}",
            namespace_id=namespace_id,
            last_pushed_at=T0 + dt.timedelta(seconds=i),
        )
        session.add(repository)
        for t in range(10 if i - start < 6 else 1):
            session.add(
                Tag(
                    repository=repository,
                    name=f"v{t}",
                    digest=digest(1000 + i),
                    pushed_at=T0 + dt.timedelta(seconds=i),
                    pushed_by=OWNER,
                )
            )
    session.commit()


def world_namespace_id(app: Flask, name: str) -> int:
    return app.appbuilder.session.scalar(select(Namespace.id).where(Namespace.name == name))


EXPLORE_URLS = ("/registry/", "/registry/?sort=pushed", "/registry/?q=bulk", "/registry/?page=2")


def statements_per_page(
    world: World, client: FlaskClient, urls: tuple[str, ...]
) -> list[tuple[int, int]]:
    """Per URL: (all statements, statements on portus_fab's own tables). The rest is FAB's:
    the user, their roles, and one permission check per menu entry."""
    counts = []
    for url in urls:
        client.get(url)  # warm: the first request of a login loads roles and permissions
        with count_statements(world.app) as statements:
            response = client.get(url)
        assert response.status_code == 200, url
        counts.append((len(statements), sum("portus_" in s for s in statements)))
    return counts


def test_explore_query_count_does_not_grow_with_rows(world: World) -> None:
    owner = world.client(OWNER)
    seed(world.app, 0, 30)
    small = statements_per_page(world, owner, EXPLORE_URLS)
    response = owner.get("/registry/?q=bulk")
    assert explore_total(response) == 20  # 2 of every 3 seeded: opsonly's are hidden
    assert not any("opsonly/" in name for name in explore_repositories(response))

    seed(world.app, 30, 270)
    large = statements_per_page(world, owner, EXPLORE_URLS)
    assert large == small, (small, large)
    response = owner.get("/registry/?q=bulk")
    assert explore_total(response) == 200
    assert len(explore_repositories(response)) == 50  # one page
    assert explore_total(owner.get("/registry/")) == 200 + len(VISIBLE[OWNER])
    assert "opsonly/" not in body_of(owner.get("/registry/?q=opsonly"))
    # portus_fab's own: the total, one page of rows (tag counts included), the namespaces.
    assert [own for _, own in large] == [3] * len(EXPLORE_URLS), large


def test_repository_page_query_count_does_not_grow_with_tags(world: World) -> None:
    seed(world.app, 0, 9)  # bulk0000..0005 have 10 tags; bulk0006..0008 have one
    owner = world.client(OWNER)
    many, one = "openhouse/bulk0000", "openhouse/bulk0006"
    assert "Tags 10" in text_of(owner.get(f"/registry/repositories/{many}"))
    counts = statements_per_page(
        world, owner, (f"/registry/repositories/{many}", f"/registry/repositories/{one}")
    )
    assert counts[0] == counts[1], counts
