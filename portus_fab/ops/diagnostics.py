"""portus_fab checks its own wiring and says what is wrong (Portus's users were left guessing why
pushes did not show up or were denied). Used by `flask portus doctor` and `GET /health`."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

from celery import Celery
from flask import current_app
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from portus_fab import migrations
from portus_fab.auth.directory import Directory, DirectoryUnreachable
from portus_fab.models import EventStatus, RegistryEventRecord, Repository, Tag
from portus_fab.models.namespaces import utcnow
from portus_fab.registry.client import RegistryClient
from portus_fab.registry.errors import RegistryError
from portus_fab.settings import Settings

if TYPE_CHECKING:
    from portus_fab.core import Portus


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str


def check_database(session: Session) -> Check:
    try:
        session.execute(text("SELECT 1"))
        return Check("database", True, "reachable")
    except Exception as error:  # noqa: BLE001 - any failure is the answer
        session.rollback()
        return Check("database", False, f"unreachable: {error}")


def check_schema(engine: Engine) -> Check:
    """The schema is the code's (behind it only when PORTUS_AUTO_MIGRATE is off)."""
    try:
        schema = migrations.status(engine)
    except Exception as error:  # noqa: BLE001 - any failure is the answer
        return Check("database schema", False, f"unreadable: {error}")
    if schema.state is migrations.State.BEHIND:
        return Check("database schema", False, f"{schema}: run `flask --app run portus db upgrade`")
    return Check("database schema", True, str(schema))


def check_registry(settings: Settings, client: RegistryClient) -> list[Check]:
    try:
        challenge = client.challenge()
    except RegistryError as error:
        return [Check("registry", False, f"unreachable at {settings.registry_url}: {error}")]
    checks = []
    if not challenge:
        checks.append(
            Check(
                "registry auth",
                False,
                "the registry does not ask for a bearer token: its auth.token "
                "section is missing (see `flask portus registry-config`)",
            )
        )
    else:
        for key, ours in (("realm", settings.token_realm), ("service", settings.registry_service)):
            theirs = challenge.get(key)
            checks.append(
                Check(
                    f"registry {key}",
                    theirs == ours,
                    f"{theirs!r}"
                    if theirs == ours
                    else f"the registry says {theirs!r}, portus_fab expects {ours!r}",
                )
            )
    try:
        client.ping()
        checks.append(Check("registry trusts our tokens", True, "GET /v2/ accepted"))
    except RegistryError as error:
        checks.append(
            Check(
                "registry trusts our tokens",
                False,
                f"{error} - check the registry's rootcertbundle (`registry-config --write-cert`) "
                "and its issuer and service",
            )
        )
    return checks


def check_broker(celery_app: Celery, timeout: float) -> Check:
    try:
        with celery_app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=timeout)
        return Check("broker", True, "reachable")
    except Exception as error:  # noqa: BLE001 - any failure is the answer
        return Check("broker", False, f"unreachable: {error} (tags are enriched once it is back)")


def check_directory(directory: Directory, timeout: float) -> Check:
    """The directory (AUTH_LDAP) answers a bind within `timeout`. Down, only the sign-ins it
    must check fail: cached credentials, access tokens and robots keep working."""
    try:
        return Check("directory", True, directory.ping(timeout))
    except DirectoryUnreachable as error:
        return Check(
            "directory",
            False,
            f"unreachable: {error.detail} (new sign-ins with a directory password fail meanwhile)",
        )


def check_events(session: Session, sweep_interval: int) -> list[Check]:
    last = session.scalar(select(func.max(RegistryEventRecord.received_at)))
    day_ago = utcnow() - dt.timedelta(days=1)
    rejected = session.scalar(
        select(func.count())
        .select_from(RegistryEventRecord)
        .where(
            RegistryEventRecord.status == EventStatus.REJECTED,
            RegistryEventRecord.received_at >= day_ago,
        )
    )
    # The web process applies stored events within moments; ones it left behind wait for the
    # sweep, which takes events older than its interval and runs once per interval.
    stranded_after = dt.timedelta(seconds=2 * sweep_interval + 60)
    stranded_minutes = int(stranded_after.total_seconds()) // 60
    unapplied = session.scalar(
        select(func.count())
        .select_from(RegistryEventRecord)
        .where(
            RegistryEventRecord.status == EventStatus.PENDING,
            RegistryEventRecord.received_at < utcnow() - stranded_after,
        )
    )
    stale = session.scalar(
        select(func.count())
        .select_from(Tag)
        .where(
            ~Tag.enriched,
            Tag.pushed_at < utcnow() - dt.timedelta(seconds=3 * sweep_interval),
        )
    )
    failed = session.execute(
        select(Repository.name, Tag.name, Tag.enrich_error, func.count().over())
        .join(Repository)
        .where(Tag.enrich_failed)
        .order_by(Tag.enriched_at.desc())
        .limit(3)
    ).all()
    return [
        Check(
            "notifications",
            last is not None,
            f"last event received {last:%Y-%m-%d %H:%M:%S} UTC"
            if last
            else "no event ever received: is the registry's notifications endpoint configured?",
        ),
        Check("rejected events", not rejected, f"{rejected} in the last 24 hours"),
        Check(
            "event backlog",
            not unapplied,
            f"{unapplied} events stored over {stranded_minutes} minutes ago and not applied yet "
            "(the sweep applies them: is a worker with the beat scheduler running?)"
            if unapplied
            else "none",
        ),
        Check(
            "enrichment backlog",
            not stale,
            f"{stale} tags waiting for a worker" if stale else "none",
        ),
        # Pushed content, not the wiring: it never turns /health red, but an admin should see it.
        Check(
            "enrichment failures",
            not failed,
            f"{failed[0][3]} tags could not be described, latest: "
            + "; ".join(f"{repo}:{tag} ({why})" for repo, tag, why, _ in failed)
            if failed
            else "none",
        ),
    ]


def run_checks(core: Portus, timeout: float) -> list[Check]:
    """Every self-check, in the order an admin would fix them. `timeout` bounds each request to
    the registry and each attempt to reach the broker."""
    return [
        check_database(core.session),
        schema := check_schema(core.session.get_bind()),
        *check_registry(core.settings, core.registry_client(timeout=timeout)),
        check_broker(current_app.extensions["celery"], timeout),
        *(
            [check_directory(directory.directory, timeout)]
            if (directory := core.authentication.directory) is not None
            else []
        ),
        # Behind the code's schema, the tables the event checks count may not exist yet.
        *(check_events(core.session, core.settings.sweep_interval) if schema.ok else []),
    ]
