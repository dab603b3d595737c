"""`flask portus token create|list|revoke`: personal access tokens for automation."""

from __future__ import annotations

import datetime as dt

import click
from flask.cli import AppGroup

from portus_fab.access import management
from portus_fab.audit.origin import acting, cli_origin
from portus_fab.auth import access_tokens
from portus_fab.core import portus
from portus_fab.errors import PortusError
from portus_fab.models import AccessLevel
from portus_fab.models.namespaces import utcnow
from portus_fab.models.transaction import transaction

token_cli = AppGroup("token", help="Personal access tokens (passwords for docker login).")

LEVELS = click.Choice([level.value for level in AccessLevel])


def _when(moment: dt.datetime | None) -> str:
    return "-" if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@token_cli.command("create")
@click.argument("username")
@click.argument("name")
@click.option("--access", type=LEVELS, required=True, help="read: pull; write: push; delete.")
@click.option("--namespace", "namespaces", multiple=True, help="Limit it to this namespace.")
@click.option("--expires-days", type=int, help="Days until it expires (default: the setting).")
@click.option("--no-expiry", is_flag=True, help="Never expires (if the admin setting allows).")
def create(
    username: str,
    name: str,
    access: str,
    namespaces: tuple[str, ...],
    expires_days: int | None,
    no_expiry: bool,
) -> None:
    """Create a token of USERNAME named NAME; its secret is printed once, alone on the last
    line (`... | tail -n1 | docker login -u USERNAME --password-stdin HOST`)."""
    core = portus()
    try:
        with acting(cli_origin()), transaction(core.session):
            user = management.find_user(core.session, username)
            created = access_tokens.create_token(
                core.session,
                core.authentication.hasher,
                access_tokens.ExpiryRules.from_settings(core.settings),
                user,
                name,
                access,
                namespaces=namespaces,
                expires_days=expires_days,
                never_expires=no_expiry,
            )
            token = created.token
    except PortusError as error:
        raise click.ClickException(str(error)) from None
    ceiling = access_tokens.ceiling_of(token).describe()
    expires = _when(token.expires_at) if token.expires_at else "never"
    click.echo(f"token {token.name!r} of {user.username}: {ceiling}, expires {expires}")
    click.echo(created.secret)


@token_cli.command("list")
@click.argument("username")
def list_tokens(username: str) -> None:
    """One line per token: name, access, namespaces, expires, last used (UTC) and from where,
    state. Never the secret: it is not stored."""
    core = portus()
    try:
        user = management.find_user(core.session, username)
    except PortusError as error:
        raise click.ClickException(str(error)) from None
    now = utcnow()
    for token in access_tokens.list_tokens(core.session, user):
        namespaces = ",".join(token.namespaces) if token.namespaces is not None else "*"
        click.echo(
            "\t".join(
                [
                    token.name,
                    token.access.value,
                    namespaces,
                    _when(token.expires_at),
                    _when(token.last_used_at),
                    token.last_used_from or "-",
                    access_tokens.state_of(token, now),
                ]
            )
        )


@token_cli.command("revoke")
@click.argument("username")
@click.argument("name")
def revoke(username: str, name: str) -> None:
    """Revoke USERNAME's token NAME: refused from the next token request on, in every process."""
    core = portus()
    try:
        with acting(cli_origin()), transaction(core.session):
            user = management.find_user(core.session, username)
            access_tokens.revoke_token(core.session, user, name)
    except PortusError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"revoked the token {name!r} of {username}")
