"""`flask portus ...` and FAB's own user commands, through Flask's CLI runner."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from flask import Flask
from flask.cli import FlaskGroup
from flask_appbuilder.security.sqla.models import User
from sqlalchemy import select

from portus_fab.core import portus
from portus_fab.models import (
    GLOBAL_NAMESPACE,
    Grant,
    Namespace,
    NamespaceKind,
    Role,
    Team,
    TeamMember,
    Visibility,
)
from tests.conftest import add_user, make_app


def portus_cmd(runner: Any, *args: str) -> Any:
    return runner.invoke(args=["portus", *args])


def ok(result: Any) -> str:
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def fails(result: Any, fragment: str) -> str:
    """A rule broken: exit 1 and exactly one line, 'Error: ...', saying what is wrong."""
    assert result.exit_code == 1, (result.output, result.exception)
    assert not isinstance(result.exception, Exception) or isinstance(
        result.exception, SystemExit
    ), result.exception
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    assert fragment in lines[0], lines[0]
    return lines[0]


def usage_error(result: Any, fragment: str) -> None:
    """Bad option values are refused by click itself (exit 2) naming the allowed choices."""
    assert result.exit_code == 2, result.output
    assert fragment in result.stderr


def namespace(app: Flask, name: str) -> Namespace | None:
    session = app.appbuilder.session
    session.expire_all()
    return session.scalar(select(Namespace).where(Namespace.name == name))


# --- namespaces ---------------------------------------------------------------------------------


def test_namespace_create(app: Flask, runner: Any) -> None:
    out = ok(portus_cmd(runner, "namespace", "create", "devs"))
    assert "devs" in out
    created = namespace(app, "devs")
    assert (created.visibility, created.kind) == (Visibility.PRIVATE, NamespaceKind.TEAM)

    ok(
        portus_cmd(
            runner,
            "namespace",
            "create",
            "web-team",
            "--visibility",
            "public",
            "--description",
            "The web people",
        )
    )
    created = namespace(app, "web-team")
    assert created.visibility == Visibility.PUBLIC
    assert created.description == "The web people"


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("Devs", "invalid namespace name 'Devs'"),
        ("my.team", "no dots"),
        ("-devs", "invalid namespace name"),
        ("devs-", "invalid namespace name"),
        ("a/b", "invalid namespace name"),
        ("_global", "invalid namespace name"),
        ("x" * 201, "at most 200 characters"),
    ],
)
def test_namespace_create_invalid_name(app: Flask, runner: Any, name: str, fragment: str) -> None:
    fails(portus_cmd(runner, "namespace", "create", "--", name), fragment)
    assert namespace(app, name) is None or name == GLOBAL_NAMESPACE


def test_namespace_create_duplicate(app: Flask, runner: Any) -> None:
    ok(portus_cmd(runner, "namespace", "create", "devs"))
    fails(portus_cmd(runner, "namespace", "create", "devs"), "already exists")
    add_user(app, "alice")
    fails(portus_cmd(runner, "namespace", "create", "alice"), "already exists")


def test_namespace_create_bad_visibility(app: Flask, runner: Any) -> None:
    usage_error(
        portus_cmd(runner, "namespace", "create", "devs", "--visibility", "secret"), "private"
    )
    assert namespace(app, "devs") is None


def test_set_visibility(app: Flask, runner: Any) -> None:
    ok(portus_cmd(runner, "namespace", "create", "devs"))
    out = ok(portus_cmd(runner, "namespace", "set-visibility", "devs", "protected"))
    assert "protected" in out
    assert namespace(app, "devs").visibility == Visibility.PROTECTED

    ok(portus_cmd(runner, "namespace", "set-visibility", GLOBAL_NAMESPACE, "protected"))
    assert namespace(app, GLOBAL_NAMESPACE).visibility == Visibility.PROTECTED
    fails(
        portus_cmd(runner, "namespace", "set-visibility", GLOBAL_NAMESPACE, "private"),
        "cannot be private",
    )
    assert namespace(app, GLOBAL_NAMESPACE).visibility == Visibility.PROTECTED

    fails(portus_cmd(runner, "namespace", "set-visibility", "nope", "public"), "'nope'")
    usage_error(portus_cmd(runner, "namespace", "set-visibility", "devs", "open"), "public")


def test_personal_namespace_can_go_public(app: Flask, runner: Any) -> None:
    add_user(app, "alice")
    ok(portus_cmd(runner, "namespace", "set-visibility", "alice", "public"))
    assert namespace(app, "alice").visibility == Visibility.PUBLIC


# --- teams and grants --------------------------------------------------------------------------


def test_team_create_and_add_member(app: Flask, runner: Any) -> None:
    alice, bob = add_user(app, "alice"), add_user(app, "bob")
    ok(portus_cmd(runner, "team", "create", "Web Team", "--description", "web"))
    fails(portus_cmd(runner, "team", "create", "Web Team"), "already exists")
    fails(portus_cmd(runner, "team", "create", "--", "-bad"), "invalid team name")

    out = ok(portus_cmd(runner, "team", "add-member", "Web Team", "alice", "--role", "owner"))
    assert "alice is owner in team Web Team" in out
    ok(portus_cmd(runner, "team", "add-member", "Web Team", "bob", "--role", "viewer"))
    # Adding is adding, as on the member screen: a member's role changes with set-role.
    fails(
        portus_cmd(runner, "team", "add-member", "Web Team", "bob", "--role", "contributor"),
        "bob is already in team Web Team",
    )
    ok(portus_cmd(runner, "team", "set-role", "Web Team", "bob", "--role", "contributor"))

    session = app.appbuilder.session
    session.expire_all()
    team = session.scalar(select(Team).where(Team.name == "Web Team"))
    roles = {m.user_id: m.role for m in team.members}
    assert roles == {alice.id: Role.OWNER, bob.id: Role.CONTRIBUTOR}

    # the last owner cannot step down
    fails(
        portus_cmd(runner, "team", "set-role", "Web Team", "alice", "--role", "viewer"),
        "last owner",
    )
    fails(portus_cmd(runner, "team", "remove-member", "Web Team", "alice"), "last owner")


def test_add_member_errors(app: Flask, runner: Any) -> None:
    add_user(app, "alice")
    ok(portus_cmd(runner, "team", "create", "devs"))
    fails(
        portus_cmd(runner, "team", "add-member", "devs", "ghost", "--role", "viewer"),
        "no user named 'ghost'",
    )
    fails(
        portus_cmd(runner, "team", "add-member", "nope", "alice", "--role", "viewer"),
        "no team named 'nope'",
    )
    usage_error(
        portus_cmd(runner, "team", "add-member", "devs", "alice", "--role", "boss"), "viewer"
    )
    usage_error(portus_cmd(runner, "team", "add-member", "devs", "alice"), "--role")
    session = app.appbuilder.session
    assert session.scalar(select(TeamMember.id)) is None


def test_grant_to_user_and_team(app: Flask, runner: Any) -> None:
    alice = add_user(app, "alice")
    ok(portus_cmd(runner, "namespace", "create", "devs"))
    ok(portus_cmd(runner, "team", "create", "ops"))
    out = ok(portus_cmd(runner, "grant", "devs", "--user", "alice", "--role", "contributor"))
    assert "user alice is contributor on devs" in out
    out = ok(portus_cmd(runner, "grant", "devs", "--team", "ops", "--role", "viewer"))
    assert "team ops is viewer on devs" in out
    ok(portus_cmd(runner, "grant", "devs", "--user", "alice", "--role", "owner"))  # changes it

    session = app.appbuilder.session
    session.expire_all()
    grants = session.scalars(
        select(Grant).join(Namespace).where(Namespace.name == "devs").order_by(Grant.id)
    ).all()
    assert [(g.user_id, g.team.name if g.team else None, g.role) for g in grants] == [
        (alice.id, None, Role.OWNER),
        (None, "ops", Role.VIEWER),
    ]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["devs", "--role", "viewer"], "exactly one of --user or --team"),
        (["devs", "--user", "alice", "--team", "ops", "--role", "viewer"], "exactly one"),
        (["nope", "--user", "alice", "--role", "viewer"], "no namespace named 'nope'"),
        (["devs", "--user", "ghost", "--role", "viewer"], "no user named 'ghost'"),
        (["devs", "--team", "ghosts", "--role", "viewer"], "no team named 'ghosts'"),
    ],
)
def test_grant_errors(app: Flask, runner: Any, args: list[str], fragment: str) -> None:
    add_user(app, "alice")
    ok(portus_cmd(runner, "namespace", "create", "devs"))
    ok(portus_cmd(runner, "team", "create", "ops"))
    fails(portus_cmd(runner, "grant", *args), fragment)
    session = app.appbuilder.session
    assert session.scalar(select(Grant.id).join(Namespace).where(Namespace.name == "devs")) is None


def test_grant_bad_role(app: Flask, runner: Any) -> None:
    add_user(app, "alice")
    ok(portus_cmd(runner, "namespace", "create", "devs"))
    usage_error(portus_cmd(runner, "grant", "devs", "--user", "alice", "--role", "admin"), "owner")


# --- explain -------------------------------------------------------------------------------------


def test_explain(app: Flask, runner: Any) -> None:
    add_user(app, "alice")
    add_user(app, "bob")
    ok(portus_cmd(runner, "namespace", "create", "devs"))
    ok(portus_cmd(runner, "team", "create", "ops"))
    ok(portus_cmd(runner, "team", "add-member", "ops", "bob", "--role", "viewer"))
    ok(portus_cmd(runner, "grant", "devs", "--team", "ops", "--role", "owner"))

    out = ok(portus_cmd(runner, "explain", "bob", "devs/app"))
    assert "bob on devs/app: namespace devs (private)" in out
    assert "effective role: viewer" in out
    assert "team ops" in out
    assert "pull: allowed" in out
    assert "push: denied - role viewer may not push: needs contributor or owner" in out
    assert "delete: denied" in out

    out = ok(portus_cmd(runner, "explain", "bob", "alice/app"))
    assert "effective role: none" in out
    assert "pull: denied - no role on private namespace" in out

    out = ok(portus_cmd(runner, "explain", "alice", "alice/app/sub"))
    assert "effective role: owner" in out
    assert "push: allowed" in out

    out = ok(portus_cmd(runner, "explain", "alice", "nowhere/app"))
    assert "does not exist" in out

    fails(portus_cmd(runner, "explain", "ghost", "alice/app"), "no user named 'ghost'")
    fails(portus_cmd(runner, "explain", "alice", "Alice/App"), "invalid")


# --- registry configuration ----------------------------------------------------------------------


def test_registry_config(app: Flask, runner: Any) -> None:
    config = yaml.safe_load(ok(portus_cmd(runner, "registry-config")))
    settings = portus().settings
    token = config["auth"]["token"]
    assert token["realm"] == settings.token_realm
    assert token["realm"].endswith("/v2/token")
    assert token["service"] == settings.registry_service == "127.0.0.1:5000"
    assert token["issuer"] == settings.token_issuer
    bundle = Path(token["rootcertbundle"])
    assert bundle.is_absolute()
    assert bundle.read_bytes() == portus().signing_key.certificate_pem

    (endpoint,) = config["notifications"]["endpoints"]
    assert endpoint["url"] == settings.webhook_url
    assert endpoint["url"].endswith("/v2/webhooks/events")
    assert endpoint["headers"]["Authorization"] == ["Bearer test-webhook-secret"]
    assert endpoint["ignoredmediatypes"] == ["application/octet-stream"]
    assert set(config) == {"auth", "notifications"}


def test_registry_config_write_cert(app: Flask, runner: Any, tmp_path: Path) -> None:
    path = tmp_path / "certs" / "portus.crt"
    config = yaml.safe_load(ok(portus_cmd(runner, "registry-config", "--write-cert", str(path))))
    assert Path(config["auth"]["token"]["rootcertbundle"]) == path.resolve()
    pem = path.read_bytes()
    assert pem.startswith(b"-----BEGIN CERTIFICATE-----")
    certificate = x509.load_pem_x509_certificate(pem)
    assert certificate.public_key() == portus().signing_key.private_key.public_key()


def test_registry_config_full(app: Flask, runner: Any, tmp_path: Path) -> None:
    storage = tmp_path / "storage"
    out = ok(
        portus_cmd(
            runner, "registry-config", "--full", "--storage", str(storage), "--listen", ":5001"
        )
    )
    config = yaml.safe_load(out)
    assert config["version"] == 0.1
    assert config["storage"]["filesystem"]["rootdirectory"] == str(storage)
    assert config["storage"]["delete"]["enabled"] is True
    assert config["http"]["addr"] == ":5001"
    assert config["auth"]["token"]["service"] == "127.0.0.1:5000"
    assert config["notifications"]["endpoints"][0]["url"].endswith("/v2/webhooks/events")

    default = yaml.safe_load(ok(portus_cmd(runner, "registry-config", "--full")))
    assert default["http"]["addr"] == "127.0.0.1:5000"


def test_jwks(app: Flask, runner: Any) -> None:
    keys = json.loads(ok(portus_cmd(runner, "jwks")))
    (jwk,) = keys["keys"]
    key = portus().signing_key
    assert jwk["kid"] == key.kid
    assert jwk["alg"] == key.algorithm
    assert jwk["kty"] in {"RSA", "EC"}
    assert "d" not in jwk


# --- FAB's own commands --------------------------------------------------------------------------


def fab(runner: Any, *args: str) -> Any:
    """As `flask --app run fab ...`: a FlaskGroup loads FAB's `fab` group from its entry point
    (the app's own `app.cli`, which the runner uses by default, does not hold it)."""
    return runner.invoke(FlaskGroup(), args=["fab", *args])


def fab_create_user(runner: Any, username: str, role: str = "User") -> Any:
    return fab(
        runner,
        *[
            "create-user",
            "--role",
            role,
            "--username",
            username,
            "--firstname",
            "z",
            "--lastname",
            "z",
            "--email",
            f"{username.lower()}-{len(username)}-{username.encode().hex()}@x.y",
            "--password",
            "pw",
        ],
    )


def personal_namespace_of(app: Flask, username: str) -> Namespace:
    session = app.appbuilder.session
    session.expire_all()
    user = session.scalar(select(User).where(User.username == username))
    assert user is not None, f"{username} was not created"
    return session.scalar(select(Namespace).where(Namespace.user_id == user.id))


def test_fab_create_user_gets_personal_namespace(app: Flask, runner: Any) -> None:
    assert "created" in ok(fab_create_user(runner, "zed"))
    namespace = personal_namespace_of(app, "zed")
    assert (namespace.name, namespace.kind, namespace.visibility) == (
        "zed",
        NamespaceKind.PERSONAL,
        Visibility.PRIVATE,
    )
    grant = app.appbuilder.session.scalar(select(Grant).where(Grant.namespace_id == namespace.id))
    assert grant.role == Role.OWNER


def test_fab_create_admin_gets_personal_namespace(app: Flask, runner: Any) -> None:
    result = fab(
        runner,
        *[
            "create-admin",
            "--username",
            "Boss.Man",
            "--firstname",
            "b",
            "--lastname",
            "m",
            "--email",
            "boss@x.y",
            "--password",
            "pw",
        ],
    )
    ok(result)
    assert personal_namespace_of(app, "Boss.Man").name == "boss-man"


def test_case_clash_under_fab_default_is_refused_by_fab(app: Flask, runner: Any) -> None:
    """FAB compares usernames case-insensitively by default: 'bob' after 'Bob' is a duplicate."""
    ok(fab_create_user(runner, "Bob"))
    assert "already exists" in fab_create_user(runner, "bob").output
    assert personal_namespace_of(app, "Bob").name == "bob"


def test_clashing_usernames_get_deterministic_suffixes(template_dir: Path, tmp_path: Path) -> None:
    app = make_app(template_dir, tmp_path / "cs", AUTH_USERNAME_CI=False)
    with app.app_context():
        runner = app.test_cli_runner()
        for username in ("Bob", "bob", "BOB", "b.o.b"):
            ok(fab_create_user(runner, username))
        assert personal_namespace_of(app, "Bob").name == "bob"
        assert personal_namespace_of(app, "bob").name == "bob-2"
        assert personal_namespace_of(app, "BOB").name == "bob-3"
        assert personal_namespace_of(app, "b.o.b").name == "b-o-b"
        app.appbuilder.session.remove()
