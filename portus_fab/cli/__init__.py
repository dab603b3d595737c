"""`flask portus ...`: admin and automation commands. Thin: parse, call the core, print."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click
import yaml
from flask.cli import AppGroup

from portus_fab.access import management
from portus_fab.access.policy import INTERNAL
from portus_fab.audit.origin import acting, cli_origin
from portus_fab.auth import access_tokens, robots
from portus_fab.auth.authenticate import principal_named
from portus_fab.auth.scopes import ScopeError, judged_repository
from portus_fab.catalog import reporting
from portus_fab.cli.db import db_cli
from portus_fab.cli.lockout import lockout_cli
from portus_fab.cli.tokens import token_cli
from portus_fab.core import portus
from portus_fab.errors import Invalid, PortusError
from portus_fab.models import Role, Visibility
from portus_fab.models.namespaces import utcnow
from portus_fab.models.transaction import transaction
from portus_fab.registry.config import auth_and_notifications, complete_config
from portus_fab.registry.errors import RegistryError

portus_cli = AppGroup("portus", help="portus_fab administration.")
portus_cli.add_command(db_cli)
portus_cli.add_command(lockout_cli)
portus_cli.add_command(token_cli)
F = TypeVar("F", bound=Callable[..., Any])

VISIBILITIES = click.Choice([v.value for v in Visibility])
ROLES = click.Choice([r.value for r in Role])


def committing(func: F) -> F:
    """Run a command in one transaction, recorded as the operating system user's; a refusal
    (portus_fab.errors) becomes a one-line error and exit 1, and changes nothing."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with acting(cli_origin()), transaction(portus().session):
                return func(*args, **kwargs)
        except PortusError as error:
            raise click.ClickException(str(error)) from None

    return wrapper  # type: ignore[return-value]


@portus_cli.command("registry-config")
@click.option(
    "--write-cert",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the token certificate bundle to this path (rootcertbundle points to it).",
)
@click.option("--full", is_flag=True, help="Print a complete config.yml ready to run.")
@click.option(
    "--storage",
    default="/var/lib/docker-registry",
    show_default=True,
    help="With --full: the registry's storage directory.",
)
@click.option(
    "--listen", default=None, help="With --full: http.addr (default: the registry URL's)."
)
def registry_config(write_cert: Path | None, full: bool, storage: str, listen: str | None) -> None:
    """Print the registry's auth and notifications sections for this instance (YAML)."""
    core = portus()
    bundle = write_cert or core.settings.data_dir / "token_signing.crt"
    if write_cert:
        write_cert.parent.mkdir(parents=True, exist_ok=True)
        write_cert.write_bytes(core.signing_key.certificate_pem)
        # For the registry, often another user; the standalone app's umask would keep it private.
        write_cert.chmod(0o644)
    settings = core.settings
    if full:
        config = complete_config(
            settings, bundle.resolve(), storage, listen or settings.registry_host
        )
    else:
        config = auth_and_notifications(settings, bundle.resolve())
    click.echo(yaml.safe_dump(config, sort_keys=False), nl=False)


@portus_cli.command("jwks")
def jwks() -> None:
    """Print the token key set, for registry v3's auth.token.jwks."""
    click.echo(json.dumps(portus().signing_key.jwks(), indent=2))


@portus_cli.command("explain")
@click.argument("username")
@click.argument("repository")
@click.option("--token", "token_name", help="As USERNAME's access token of this name.")
def explain(username: str, repository: str, token_name: str | None) -> None:
    """Say what USERNAME may do on REPOSITORY, and why, as the token service decides it."""
    try:
        host, judged = judged_repository(repository)
    except ScopeError as error:
        raise click.ClickException(str(error)) from None
    core = portus()
    principal = principal_named(core.authentication, core.session, username)
    if principal is None:
        raise click.ClickException(f"no user named {username!r}")
    if token_name is not None:
        try:
            user = management.find_user(core.session, username)
            token = access_tokens.find_token(core.session, user, token_name)
        except PortusError as error:
            raise click.ClickException(str(error)) from None
        principal = access_tokens.principal_of(token, core.admin_role)
        state = access_tokens.state_of(token, utcnow())
        if state != "active":
            click.echo(f"the token is {state}: the token service refuses it")
    if host is not None:
        click.echo(
            f"{host!r} is a registry host as docker reads it: the token service judges {judged!r}"
        )
    click.echo("\n".join(core.policy().explain(principal, judged).lines()))


@portus_cli.group("namespace")
def namespace_group() -> None:
    """Namespaces."""


@namespace_group.command("create")
@click.argument("name")
@click.option("--visibility", type=VISIBILITIES, default="private", show_default=True)
@click.option("--description", default="")
@committing
def namespace_create(name: str, visibility: str, description: str) -> None:
    """Create a team namespace."""
    management.create_namespace(
        portus().session, name, visibility=visibility, description=description
    )
    click.echo(f"namespace {name} created ({visibility})")


@namespace_group.command("set-visibility")
@click.argument("name")
@click.argument("visibility", type=VISIBILITIES)
@committing
def namespace_set_visibility(name: str, visibility: str) -> None:
    """Make a namespace public, protected or private."""
    management.set_visibility(portus().session, name, visibility)
    click.echo(f"namespace {name} is now {visibility}")


@namespace_group.command("delete")
@click.argument("name")
@committing
def namespace_delete(name: str) -> None:
    """Delete a namespace that holds no repository (its grants go with it)."""
    management.delete_namespace(portus().session, name)
    click.echo(f"namespace {name} deleted")


@portus_cli.group("team")
def team_group() -> None:
    """Teams."""


@team_group.command("create")
@click.argument("name")
@click.option("--description", default="")
@committing
def team_create(name: str, description: str) -> None:
    """Create a team."""
    management.create_team(portus().session, name, description)
    click.echo(f"team {name} created")


@team_group.command("add-member")
@click.argument("team")
@click.argument("username")
@click.option("--role", type=ROLES, required=True)
@committing
def team_add_member(team: str, username: str, role: str) -> None:
    """Add USERNAME to TEAM with a role; refused if they are in it (see set-role)."""
    session = portus().session
    management.add_member(
        session,
        management.find_team(session, team),
        management.find_user(session, username),
        role,
    )
    click.echo(f"{username} is {role} in team {team}")


@team_group.command("set-role")
@click.argument("team")
@click.argument("username")
@click.option("--role", type=ROLES, required=True)
@committing
def team_set_role(team: str, username: str, role: str) -> None:
    """Change the role of USERNAME, a member of TEAM."""
    session = portus().session
    management.set_member_role(
        session,
        management.find_team(session, team),
        management.find_user(session, username),
        role,
    )
    click.echo(f"{username} is {role} in team {team}")


@team_group.command("remove-member")
@click.argument("team")
@click.argument("username")
@committing
def team_remove_member(team: str, username: str) -> None:
    """Take USERNAME out of TEAM (a team keeps at least one owner)."""
    session = portus().session
    management.remove_member(
        session, management.find_team(session, team), management.find_user(session, username)
    )
    click.echo(f"{username} is no longer in team {team}")


@portus_cli.command("grant")
@click.argument("namespace")
@click.option("--user", "username", help="Grant to this user.")
@click.option("--team", "team_name", help="Grant to this team.")
@click.option("--robot", "robot_name", help="Grant to this robot (NAMESPACE+NAME).")
@click.option("--role", type=ROLES, required=True)
@committing
def grant(
    namespace: str, username: str | None, team_name: str | None, robot_name: str | None, role: str
) -> None:
    """Give a user, a team or a robot a role on NAMESPACE, or change the role it has there."""
    session = portus().session
    target = management.find_namespace(session, namespace)
    if robot_name is not None:
        if username is not None or team_name is not None:
            raise Invalid("give exactly one of --user, --team or --robot")
        robot = robots.find_robot(session, robot_name)
        robots.set_robot_grant(session, INTERNAL, target, robot, role)
        click.echo(f"robot {robot_name} is {role} on {namespace}")
        return
    user, team = _grantee(username, team_name)
    management.set_grant(session, target, role, user=user, team=team)
    click.echo(
        f"{'user ' + username if username else 'team ' + str(team_name)} is {role} on {namespace}"
    )


@portus_cli.command("revoke")
@click.argument("namespace")
@click.option("--user", "username", help="Revoke this user's grant.")
@click.option("--team", "team_name", help="Revoke this team's grant.")
@click.option("--robot", "robot_name", help="Revoke this robot's grant (NAMESPACE+NAME).")
@committing
def revoke(
    namespace: str, username: str | None, team_name: str | None, robot_name: str | None
) -> None:
    """Take away the role a user, a team or a robot has on NAMESPACE."""
    session = portus().session
    target = management.find_namespace(session, namespace)
    if robot_name is not None:
        if username is not None or team_name is not None:
            raise Invalid("give exactly one of --user, --team or --robot")
        robots.remove_robot_grant(session, INTERNAL, target, robots.find_robot(session, robot_name))
        click.echo(f"robot {robot_name} has no role on {namespace}")
        return
    user, team = _grantee(username, team_name)
    management.remove_grant(session, target, user=user, team=team)
    click.echo(
        f"{'user ' + username if username else 'team ' + str(team_name)} has no role on {namespace}"
    )


def _grantee(username: str | None, team_name: str | None) -> tuple[Any, Any]:
    """The user or the team (exactly one) named by --user or --team."""
    if (username is None) == (team_name is None):
        raise Invalid("give exactly one of --user or --team")
    session = portus().session
    user = management.find_user(session, username) if username else None
    team = management.find_team(session, team_name) if team_name else None
    return user, team


@portus_cli.group("robot")
def robot_group() -> None:
    """Robot accounts: machines that sign in as NAMESPACE+NAME with a secret."""


@robot_group.command("create")
@click.argument("namespace")
@click.argument("name")
@click.option("--access", required=True, help="read (pull) or write (pull, push) in NAMESPACE.")
@click.option("--expires-days", help="Refused after this many days (default: never).")
@click.option("--description", default="")
@committing
def robot_create(
    namespace: str, name: str, access: str, expires_days: str | None, description: str
) -> None:
    """Create a robot of NAMESPACE; prints its username and secret (shown once) last."""
    core = portus()
    created = robots.create_robot(
        core.session,
        core.authentication.hasher,
        INTERNAL,
        namespace,
        name,
        access,
        expires_days=_days(expires_days),
        description=description,
    )
    click.echo(f"robot created ({access}); the secret is shown this once:")
    click.echo(created.robot.full_name)
    click.echo(created.secret)


def _days(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        raise Invalid(f"--expires-days is a whole number of days, not {text[:20]!r}") from None


@robot_group.command("rotate")
@click.argument("full_name")
@committing
def robot_rotate(full_name: str) -> None:
    """Give the robot NAMESPACE+NAME a new secret (printed alone last); the old one stops."""
    core = portus()
    robot = robots.find_robot(core.session, full_name)
    rotated = robots.rotate_secret(core.session, core.authentication.hasher, INTERNAL, robot)
    click.echo(f"robot {full_name}: new secret, shown this once:")
    click.echo(rotated.secret)


@robot_group.command("disable")
@click.argument("full_name")
@committing
def robot_disable(full_name: str) -> None:
    """Refuse the robot NAMESPACE+NAME from its next token request on (see enable)."""
    session = portus().session
    robots.set_disabled(session, INTERNAL, robots.find_robot(session, full_name), True)
    click.echo(f"robot {full_name} disabled")


@robot_group.command("enable")
@click.argument("full_name")
@committing
def robot_enable(full_name: str) -> None:
    """Accept the disabled robot NAMESPACE+NAME again."""
    session = portus().session
    robots.set_disabled(session, INTERNAL, robots.find_robot(session, full_name), False)
    click.echo(f"robot {full_name} enabled")


@robot_group.command("delete")
@click.argument("full_name")
@committing
def robot_delete(full_name: str) -> None:
    """Delete the robot NAMESPACE+NAME and its grants."""
    session = portus().session
    robots.delete_robot(session, INTERNAL, robots.find_robot(session, full_name))
    click.echo(f"robot {full_name} deleted")


@robot_group.command("list")
@click.argument("namespace", required=False)
@committing
def robot_list(namespace: str | None) -> None:
    """One line per robot: username, status, expiry, last use, grants."""
    for robot in robots.list_robots(portus().session, namespace):
        grants = ",".join(f"{g.namespace.name}:{g.role}" for g in robot.grants)
        expires = robot.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ") if robot.expires_at else "-"
        used = robot.last_used_at.strftime("%Y-%m-%dT%H:%M:%SZ") if robot.last_used_at else "-"
        click.echo(f"{robot.full_name}\t{robots.status(robot)}\t{expires}\t{used}\t{grants}")


@portus_cli.command("sync")
@click.option("--dry-run", is_flag=True, help="Show what would change, change nothing.")
def sync_command(dry_run: bool) -> None:
    """Make portus_fab's repositories and tags match the registry's catalog."""
    from portus_fab.catalog.sync import sync_catalog
    from portus_fab.tasks import enqueue_enrich

    core = portus()

    def track(names: list[str]) -> Iterator[str]:
        with click.progressbar(names, label="repositories", file=sys.stderr) as bar:
            yield from bar

    try:
        # A dry run makes every change and rolls them back: the report is exactly a real run's.
        with acting(cli_origin()), transaction(core.session, commit=not dry_run) as session:
            report = sync_catalog(session, core.registry_client(), dry_run=dry_run, track=track)
    except RegistryError as error:
        raise click.ClickException(f"cannot read the registry catalog: {error}") from None
    prefix = "would " if dry_run else ""
    for label, items in (
        ("adopt namespace", report.namespaces_adopted),
        ("add repository", report.repositories_added),
        ("remove repository", report.repositories_removed),
        ("add tag", report.tags_added),
        ("move tag", report.tags_moved),
        ("remove tag", report.tags_removed),
    ):
        for item in items:
            click.echo(f"{prefix}{label} {item}")
    for name, why in report.failed.items():
        click.echo(f"left alone {name}: {why}", err=True)
    counts = ", ".join(
        f"{count} {name.replace('_', ' ')}" for name, count in report.counts().items()
    )
    click.echo(f"{'dry run: ' if dry_run else ''}{counts}")
    if not dry_run:
        enqueue_enrich(report.to_enrich)


@portus_cli.group("repo")
def repo_group() -> None:
    """Repositories and tags as portus_fab knows them."""


@repo_group.command("list")
@click.option("--json", "as_json", is_flag=True)
def repo_list(as_json: bool) -> None:
    """Every repository with its namespace and tag count."""
    rows = reporting.repository_rows(portus().session)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        click.echo(f"{row['name']}\t{row['namespace']}\t{row['tags']} tags")


@repo_group.command("show")
@click.argument("reference")
@click.option("--json", "as_json", is_flag=True)
def repo_show(reference: str, as_json: bool) -> None:
    """What is stored about REPOSITORY or REPOSITORY:TAG."""
    name, _, tag = reference.partition(":")
    found = reporting.describe(portus().session, name, tag or None)
    if found is None:
        raise click.ClickException(f"no repository or tag {reference!r} is known")
    if as_json:
        click.echo(json.dumps(found, indent=2))
    else:
        click.echo(yaml.safe_dump(found, sort_keys=False), nl=False)


@portus_cli.command("doctor")
def doctor() -> None:
    """Check the wiring: database, registry (address, realm, service, trust), broker, events,
    and the directory when AUTH_TYPE is AUTH_LDAP."""
    from portus_fab.ops.diagnostics import run_checks

    core = portus()
    checks = run_checks(core, timeout=core.settings.registry_timeout)
    for check in checks:
        click.echo(f"{'ok  ' if check.ok else 'FAIL'} {check.name}: {check.detail}")
    if not all(check.ok for check in checks):
        sys.exit(1)
