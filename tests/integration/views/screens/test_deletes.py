"""Deleting a tag from the screens: the confirmation names every tag that goes, and an
unreachable registry is said so, with nothing removed."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from portus_fab.models import Tag
from portus_fab.models.activity import Activity
from tests.conftest import make_app
from tests.support.screens import (
    ADMIN,
    ALL_REPOSITORIES,
    CONTRIBUTOR,
    DEVAPP,
    OTHER,
    OWNER,
    VIEWER,
    World,
    body_of,
    build_world,
    count_rows,
    digest,
    flashes,
    text_of,
)
from tests.support.wait import free_port


@pytest.mark.parametrize(
    ("username", "status"),
    [(ADMIN, 200), (OWNER, 200), (CONTRIBUTOR, 403), (VIEWER, 403), (OTHER, 404)],
)
def test_delete_asks_for_confirmation_naming_every_tag_that_goes(
    world: World, username: str, status: int
) -> None:
    response = world.client(username).get(f"/registry/delete/{DEVAPP}?tag=latest")
    assert response.status_code == status
    if status != 200:
        assert "portus-confirm" not in body_of(response)
        return
    text = text_of(response)
    assert f"Delete {DEVAPP}:latest?" in text
    # v1 shares latest's digest: the registry deletes both.
    assert f"{DEVAPP}:latest" in text and f"{DEVAPP}:v1" in text
    assert digest(1) in text
    assert 'id="portus-confirm"' in body_of(response)


def test_delete_of_an_unknown_tag_is_404(world: World) -> None:
    response = world.client(OWNER).get(f"/registry/delete/{DEVAPP}?tag=nosuchtag")
    assert response.status_code == 404


def test_delete_with_the_registry_unreachable_says_so(template_dir: Path, tmp_path: Path) -> None:
    """Nothing listens on the registry URL: the user gets a clear message, not a 500, and
    nothing is removed from the catalog."""
    app = make_app(
        template_dir,
        tmp_path / "noregistry",
        PORTUS_REGISTRY_URL=f"http://127.0.0.1:{free_port()}",
    )
    with app.app_context():
        world = build_world(app)
        client = world.client(OWNER)
        response = client.post(f"/registry/delete/{DEVAPP}", data={"tag": "latest"})
        assert response.status_code == 302
        assert response.headers["Location"].endswith(f"/registry/repositories/{DEVAPP}")
        page = client.get(response.headers["Location"])
        assert page.status_code == 200
        # A non-admin is told what happened, not where the registry is (test_registry_failures).
        assert "The delete did not finish" in flashes(page)
        assert "the registry did not answer" in flashes(page)
        session = app.appbuilder.session
        session.expire_all()
        assert count_rows(app, Tag) == len(ALL_REPOSITORIES) + 1
        assert (
            session.scalar(
                select(func.count(Activity.id)).where(Activity.kind == "delete requested")
            )
            == 0
        )
        # Those the policy refuses never reach the registry.
        assert world.client(CONTRIBUTOR).post(f"/registry/delete/{DEVAPP}").status_code == 403
        assert world.client(OTHER).post(f"/registry/delete/{DEVAPP}").status_code == 404
        app.appbuilder.session.remove()
