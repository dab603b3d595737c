"""`flask portus lockout list|clear`: the sign-in locks that hold now, and lifting them."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from portus_fab.audit.origin import acting, cli_origin
from portus_fab.core import portus
from portus_fab.models.transaction import transaction

lockout_cli = AppGroup("lockout", help="Sign-in locks after too many failed sign-ins.")

USER = click.option("--user", help="Only locks of this account (as signed in with).")
ADDRESS = click.option("--address", help="Only locks of this client address.")


@lockout_cli.command("list")
@USER
@ADDRESS
def list_locks(user: str | None, address: str | None) -> None:
    """One line per lock: account (`*`: every account), address, failures, until (UTC)."""
    core = portus()
    for lock in core.authentication.lockout.active(core.session, username=user, address=address):
        account = lock.username if lock.username is not None else "*"
        until = lock.until.strftime("%Y-%m-%dT%H:%M:%SZ")
        click.echo(f"{account}\t{lock.address}\t{lock.failures}\t{until}")


@lockout_cli.command("clear")
@USER
@ADDRESS
def clear_locks(user: str | None, address: str | None) -> None:
    """Lift the locks that hold now (all of them, or those of --user and --address)."""
    core = portus()
    lockout = core.authentication.lockout
    with acting(cli_origin()), transaction(core.session):
        locks = lockout.active(core.session, username=user, address=address)
        lockout.lift(core.session, locks)
    click.echo(f"lifted {len(locks)} lock{'' if len(locks) == 1 else 's'}")
