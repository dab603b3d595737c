"""One audit record per change, on every surface: the screens and the CLI make the same records
(kind, actor, address, target, details), in the transaction of the change, so a refused or
failed change records nothing."""

from __future__ import annotations

import getpass
import html
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from portus_fab.access import management
from portus_fab.audit import Kind
from portus_fab.catalog import repositories
from portus_fab.errors import Conflict
from portus_fab.models import (
    Activity,
    Grant,
    Namespace,
    Repository,
    Role,
    Team,
    TeamMember,
    Visibility,
)
from portus_fab.models.namespaces import utcnow
from portus_fab.models.transaction import transaction
from tests.conftest import add_user

PASSWORD = "secret"
ADMIN = "boss"
CLI_ACTOR = f"cli:{getpass.getuser()}"
SCREEN_ADDRESS = "127.0.0.1"  # Werkzeug's test client


@dataclass(frozen=True)
class Seen:
    kind: str
    actor: str | None
    address: str | None
    target_type: str | None
    target_name: str | None
    details: Any


@dataclass
class World:
    app: Flask
    mark: int = 0

    @property
    def session(self) -> Any:
        return self.app.appbuilder.session

    def id_of(self, model: Any, **where: Any) -> int:
        self.session.expire_all()
        found = self.session.scalar(select(model.id).filter_by(**where))
        assert found is not None, (model, where)
        return found

    def member_id(self, team: str, username: str) -> int:
        user = self.app.appbuilder.sm.find_user(username=username)
        return self.id_of(TeamMember, team_id=self.id_of(Team, name=team), user_id=user.id)

    def grant_id(self, namespace: str, team: str) -> int:
        return self.id_of(
            Grant,
            namespace_id=self.id_of(Namespace, name=namespace),
            team_id=self.id_of(Team, name=team),
        )

    def start(self) -> None:
        """Records made from now on are the test's."""
        self.session.expire_all()
        self.mark = self.session.scalar(select(func.max(Activity.id))) or 0

    def records(self) -> list[Seen]:
        self.session.expire_all()
        rows = self.session.scalars(
            select(Activity).where(Activity.id > self.mark).order_by(Activity.id)
        )
        return [
            Seen(r.kind, r.actor, r.address, r.target_type, r.target_name, r.details) for r in rows
        ]

    def admin(self) -> FlaskClient:
        client = self.app.test_client()
        response = client.post("/login/", data={"username": ADMIN, "password": PASSWORD})
        assert response.status_code == 302 and "/login" not in response.headers["Location"]
        return client


@pytest.fixture
def world(app: Flask) -> World:
    session = app.appbuilder.session
    add_user(app, ADMIN, PASSWORD, admin=True)
    olivia, carl = add_user(app, "olivia", PASSWORD), add_user(app, "carl", PASSWORD)
    add_user(app, "vera", PASSWORD)
    with transaction(session):
        devcrew = management.create_team(session, "devcrew")
        management.add_member(session, devcrew, olivia, Role.OWNER)
        management.add_member(session, devcrew, carl, Role.VIEWER)
        devteam = management.create_namespace(session, "devteam")
        management.set_grant(session, devteam, Role.OWNER, team=devcrew)
        management.create_namespace(session, "spare")
    return World(app)


def screen_post(world: World, url: str, data: dict[str, Any] | None = None) -> str:
    """Post as the admin; the page's text, where FAB shows a refusal as a flash."""
    response = world.admin().post(url, data=data or {}, follow_redirects=True)
    assert response.status_code == 200
    return html.unescape(response.get_data(as_text=True))


def cli(world: World, *args: str) -> Any:
    return world.app.test_cli_runner().invoke(args=["portus", *args])


def cli_ok(world: World, *args: str) -> None:
    result = cli(world, *args)
    assert result.exit_code == 0, (result.output, result.exception)


# Each change, as the screen makes it and as the CLI makes it, and the one record expected:
# (kind, target type, target name, details).
CHANGES: list[tuple[str, Callable[[World], None], Callable[[World], None], tuple[Any, ...]]] = [
    (
        "namespace created",
        lambda w: screen_post(
            w, "/namespaceview/add", {"name": "web", "visibility": "private", "description": ""}
        ),
        lambda w: cli_ok(w, "namespace", "create", "web"),
        (Kind.NAMESPACE_CREATED, "namespace", "web", {"kind": "team", "visibility": "private"}),
    ),
    (
        "visibility changed",
        lambda w: screen_post(
            w,
            f"/namespaceview/edit/{w.id_of(Namespace, name='devteam')}",
            {"visibility": "public", "description": ""},
        ),
        lambda w: cli_ok(w, "namespace", "set-visibility", "devteam", "public"),
        (Kind.VISIBILITY_CHANGED, "namespace", "devteam", {"visibility": ["private", "public"]}),
    ),
    (
        "namespace deleted",
        lambda w: screen_post(w, f"/namespaceview/delete/{w.id_of(Namespace, name='spare')}"),
        lambda w: cli_ok(w, "namespace", "delete", "spare"),
        (Kind.NAMESPACE_DELETED, "namespace", "spare", None),
    ),
    (
        "team created",
        lambda w: screen_post(w, "/teamview/add", {"name": "ops", "description": "the ops"}),
        lambda w: cli_ok(w, "team", "create", "ops"),
        (Kind.TEAM_CREATED, "team", "ops", None),
    ),
    (
        "member added",
        lambda w: screen_post(
            w,
            "/teammemberview/add",
            {"team": w.id_of(Team, name="devcrew"), "user": "vera", "role": "viewer"},
        ),
        lambda w: cli_ok(w, "team", "add-member", "devcrew", "vera", "--role", "viewer"),
        (Kind.MEMBER_ADDED, "team", "devcrew", {"user": "vera", "role": "viewer"}),
    ),
    (
        "member role changed",
        lambda w: screen_post(
            w,
            f"/teammemberview/edit/{w.member_id('devcrew', 'carl')}",
            {"team": w.id_of(Team, name="devcrew"), "user": "carl", "role": "contributor"},
        ),
        lambda w: cli_ok(w, "team", "set-role", "devcrew", "carl", "--role", "contributor"),
        (
            Kind.MEMBER_ROLE_CHANGED,
            "team",
            "devcrew",
            {"user": "carl", "role": "contributor", "previous_role": "viewer"},
        ),
    ),
    (
        "member removed",
        lambda w: screen_post(w, f"/teammemberview/delete/{w.member_id('devcrew', 'carl')}"),
        lambda w: cli_ok(w, "team", "remove-member", "devcrew", "carl"),
        (Kind.MEMBER_REMOVED, "team", "devcrew", {"user": "carl", "role": "viewer"}),
    ),
    (
        "grant added",
        lambda w: screen_post(
            w,
            "/grantview/add",
            {
                "namespace": w.id_of(Namespace, name="devteam"),
                "user": "vera",
                "team": "",
                "role": "viewer",
            },
        ),
        lambda w: cli_ok(w, "grant", "devteam", "--user", "vera", "--role", "viewer"),
        (Kind.GRANT_ADDED, "namespace", "devteam", {"user": "vera", "role": "viewer"}),
    ),
    (
        "grant changed",
        lambda w: screen_post(
            w,
            f"/grantview/edit/{w.grant_id('devteam', 'devcrew')}",
            {
                "namespace": w.id_of(Namespace, name="devteam"),
                "user": "",
                "team": "devcrew",
                "role": "contributor",
            },
        ),
        lambda w: cli_ok(w, "grant", "devteam", "--team", "devcrew", "--role", "contributor"),
        (
            Kind.GRANT_CHANGED,
            "namespace",
            "devteam",
            {"team": "devcrew", "role": "contributor", "previous_role": "owner"},
        ),
    ),
    (
        "grant removed",
        lambda w: screen_post(w, f"/grantview/delete/{w.grant_id('devteam', 'devcrew')}"),
        lambda w: cli_ok(w, "revoke", "devteam", "--team", "devcrew"),
        (Kind.GRANT_REMOVED, "namespace", "devteam", {"team": "devcrew", "role": "owner"}),
    ),
]


@pytest.mark.parametrize("surface", ["screen", "cli"])
@pytest.mark.parametrize(
    ("on_screen", "on_cli", "expected"),
    [change[1:] for change in CHANGES],
    ids=[change[0] for change in CHANGES],
)
def test_each_change_is_one_record_on_every_surface(
    world: World,
    surface: str,
    on_screen: Callable[[World], None],
    on_cli: Callable[[World], None],
    expected: tuple[Any, ...],
) -> None:
    world.start()
    (on_screen if surface == "screen" else on_cli)(world)
    kind, target_type, target_name, details = expected
    actor, address = (ADMIN, SCREEN_ADDRESS) if surface == "screen" else (CLI_ACTOR, None)
    assert world.records() == [Seen(kind, actor, address, target_type, target_name, details)]


# The same rule refuses the same change on both surfaces, with the same words.
REFUSED: list[tuple[str, Callable[[World], str], Callable[[World], Any], str]] = [
    (
        "a member added twice",
        lambda w: screen_post(
            w,
            "/teammemberview/add",
            {"team": w.id_of(Team, name="devcrew"), "user": "carl", "role": "owner"},
        ),
        lambda w: cli(w, "team", "add-member", "devcrew", "carl", "--role", "owner"),
        "carl is already in team devcrew",
    ),
    (
        "the last owner removed",
        lambda w: screen_post(w, f"/teammemberview/delete/{w.member_id('devcrew', 'olivia')}"),
        lambda w: cli(w, "team", "remove-member", "devcrew", "olivia"),
        "olivia is the last owner of team devcrew",
    ),
    (
        "the last owner demoted",
        lambda w: screen_post(
            w,
            f"/teammemberview/edit/{w.member_id('devcrew', 'olivia')}",
            {"team": w.id_of(Team, name="devcrew"), "user": "olivia", "role": "viewer"},
        ),
        lambda w: cli(w, "team", "set-role", "devcrew", "olivia", "--role", "viewer"),
        "olivia is the last owner of team devcrew",
    ),
    (
        "a namespace that holds repositories deleted",
        lambda w: screen_post(w, f"/namespaceview/delete/{w.id_of(Namespace, name='devteam')}"),
        lambda w: cli(w, "namespace", "delete", "devteam"),
        "namespace devteam still holds repositories",
    ),
    (
        "the global namespace made private",
        lambda w: screen_post(
            w,
            f"/namespaceview/edit/{w.id_of(Namespace, name='_global')}",
            {"visibility": "private", "description": ""},
        ),
        lambda w: cli(w, "namespace", "set-visibility", "_global", "private"),
        "the global namespace cannot be private",
    ),
    (
        "the global namespace deleted",
        lambda w: screen_post(w, f"/namespaceview/delete/{w.id_of(Namespace, name='_global')}"),
        lambda w: cli(w, "namespace", "delete", "_global"),
        "the global namespace cannot be deleted",
    ),
]


@pytest.mark.parametrize("surface", ["screen", "cli"])
@pytest.mark.parametrize(
    ("on_screen", "on_cli", "why"), [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED]
)
def test_a_refused_change_says_why_and_records_nothing(
    world: World,
    surface: str,
    on_screen: Callable[[World], str],
    on_cli: Callable[[World], Any],
    why: str,
) -> None:
    session = world.session
    with transaction(session):
        repositories.record_pushes(
            session,
            [
                repositories.Push(
                    "devteam/app", "v1", "sha256:" + "1" * 64, None, "olivia", utcnow()
                )
            ],
        )
    world.start()
    if surface == "screen":
        assert why in on_screen(world)
    else:
        result = on_cli(world)
        assert result.exit_code == 1
        lines = result.stderr.strip().splitlines()  # one line, and exit 1
        assert len(lines) == 1 and lines[0].startswith(f"Error: {why}"), result.stderr
    assert world.records() == []


def test_a_change_rolled_back_takes_its_record_with_it(world: World) -> None:
    session = world.session
    world.start()
    with pytest.raises(Conflict), transaction(session):
        management.create_namespace(session, "doomed", visibility=Visibility.PUBLIC)
        session.flush()  # the record is written with the change ...
        raise Conflict("... and goes with it")
    assert world.records() == []
    assert session.scalar(select(Namespace.id).where(Namespace.name == "doomed")) is None


def test_a_new_user_records_their_personal_namespace(world: World) -> None:
    world.start()
    add_user(world.app, "nina", PASSWORD)
    assert world.records() == [
        Seen(
            Kind.NAMESPACE_CREATED,
            "portus_fab",
            None,
            "namespace",
            "nina",
            {"kind": "personal", "visibility": "private", "owner": "nina"},
        )
    ]


def test_pushes_and_deletes_name_their_tag(world: World) -> None:
    session = world.session
    world.start()
    with transaction(session):
        repositories.record_pushes(
            session,
            [
                repositories.Push(
                    "devteam/app", "v1", "sha256:" + "2" * 64, None, "olivia", utcnow()
                )
            ],
        )
        repository = session.scalar(select(Repository).where(Repository.name == "devteam/app"))
        repositories.remove_tags(session, repository, tag_name="v1", actor="olivia")
    assert [(r.kind, r.actor, r.target_type, r.target_name) for r in world.records()] == [
        (Kind.PUSH, "olivia", "tag", "devteam/app:v1"),
        (Kind.DELETE, "olivia", "tag", "devteam/app:v1"),
        (Kind.REPOSITORY_REMOVED, "olivia", "repository", "devteam/app"),
    ]


def test_the_activity_screen_shows_who_from_where_on_what(world: World) -> None:
    world.start()
    screen_post(
        world,
        "/teammemberview/add",
        {"team": world.id_of(Team, name="devcrew"), "user": "vera", "role": "viewer"},
    )
    record = world.session.scalar(select(func.max(Activity.id)))
    assert record > world.mark
    admin = world.admin()
    listed = html.unescape(admin.get("/activityview/list/?_flt_0_kind=member+added").text)
    assert "member added" in listed and "devcrew" in listed
    shown = html.unescape(admin.get(f"/activityview/show/{record}").text)
    for text in (ADMIN, SCREEN_ADDRESS, "team", "devcrew", "vera", "viewer"):
        assert text in shown, text
