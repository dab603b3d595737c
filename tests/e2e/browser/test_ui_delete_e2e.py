"""Deleting from the browse pages deletes in the real registry, by digest, and says who did it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from portus_fab.models import Activity, Repository, Tag
from tests.conftest import add_user
from tests.e2e.conftest import Stack, start_stack
from tests.support.oci import build_image_layout
from tests.support.routes import csrf_token
from tests.support.wait import wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(template_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """CSRF on, as in production: every form below posts its token, as the browser would."""
    yield from start_stack(template_dir, tmp_path_factory.mktemp("stack"), WTF_CSRF_ENABLED=True)


def _login(stack: Stack, username: str) -> FlaskClient:
    client = stack.app.test_client()
    token = csrf_token(client.get("/login/").get_data(as_text=True))
    answer = client.post(
        "/login/", data={"username": username, "password": "pw", "csrf_token": token}
    )
    assert answer.status_code == 302
    return client


def _tags(stack: Stack, repository: str) -> set[str]:
    with stack.app.app_context():
        session = stack.app.appbuilder.session
        names = session.scalars(
            select(Tag.name).join(Repository).where(Repository.name == repository)
        ).all()
        session.remove()
    return set(names)


def test_owner_deletes_a_tag_and_every_tag_on_its_digest(stack: Stack, tmp_path: Path) -> None:
    with stack.app.app_context():
        add_user(stack.app, "olga", "pw")
        add_user(stack.app, "pete", "pw")
        stack.app.appbuilder.session.remove()
    build_image_layout(tmp_path, "v1", files={"f": b"delete me"})
    client = stack.skopeo("olga")
    for tag in ("v1", "same"):
        pushed = client.copy(f"{tmp_path}:v1", f"olga/app:{tag}", creds=("olga", "pw"))
        assert pushed.returncode == 0, pushed.stderr
    build_image_layout(tmp_path, "keep", files={"f": b"keep me"})
    assert client.copy(f"{tmp_path}:keep", "olga/app:keep", creds=("olga", "pw")).returncode == 0
    # The registry notifies asynchronously, and portus_fab applies stored events moments later.
    wait_until(lambda: _tags(stack, "olga/app") == {"v1", "same", "keep"}, message="not notified")

    # Someone without delete rights gets no confirmation page at all.
    outsider = _login(stack, "pete")
    assert outsider.get("/registry/delete/olga/app?tag=v1").status_code == 404

    owner = _login(stack, "olga")
    confirmation = owner.get("/registry/delete/olga/app?tag=v1")
    assert confirmation.status_code == 200
    page = confirmation.get_data(as_text=True)
    assert "olga/app:v1" in page and "olga/app:same" in page and "olga/app:keep" not in page

    forged = owner.post("/registry/delete/olga/app", data={"tag": "v1"})
    assert forged.status_code == 400  # no CSRF token: nothing deleted
    assert _tags(stack, "olga/app") == {"v1", "same", "keep"}
    done = owner.post(
        "/registry/delete/olga/app", data={"tag": "v1", "csrf_token": csrf_token(page)}
    )
    assert done.status_code == 302
    listed = client.list_tags("olga/app", creds=("olga", "pw"))
    assert listed.returncode == 0
    assert '"keep"' in listed.stdout and '"v1"' not in listed.stdout
    assert '"same"' not in listed.stdout
    with stack.app.app_context():
        who = stack.app.appbuilder.session.scalars(
            select(Activity.actor).where(
                Activity.repository == "olga/app", Activity.kind == "delete requested"
            )
        ).all()
        stack.app.appbuilder.session.remove()
    assert who == ["olga"]
    repository_page = owner.get("/registry/repositories/olga/app").get_data(as_text=True)
    assert ">keep<" in repository_page and ">v1<" not in repository_page
