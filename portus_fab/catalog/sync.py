"""Catalog sync: make the stored picture match what the registry really holds.

It creates what is missing, moves tags that changed, and removes from portus_fab's database what
the registry no longer has. It never deletes anything in the registry, and never removes a
repository whose listing failed or when the catalog itself could not be read to the end.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from portus_fab import audit
from portus_fab.access.policy import namespace_name_of
from portus_fab.audit import Kind, Target, TargetType
from portus_fab.catalog import repositories
from portus_fab.models import Namespace, Repository, Tag
from portus_fab.models.namespaces import utcnow
from portus_fab.registry.client import RegistryClient
from portus_fab.registry.errors import RegistryError, RegistryUnavailable

log = logging.getLogger(__name__)


@dataclass
class SyncReport:
    repositories_added: list[str] = field(default_factory=list)
    repositories_removed: list[str] = field(default_factory=list)
    namespaces_adopted: list[str] = field(default_factory=list)
    tags_added: list[str] = field(default_factory=list)
    tags_moved: list[str] = field(default_factory=list)
    tags_removed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # repository -> why it was left alone
    to_enrich: set[tuple[str, str]] = field(default_factory=set)
    dry_run: bool = False

    def counts(self) -> dict[str, int]:
        return {
            "repositories_added": len(self.repositories_added),
            "repositories_removed": len(self.repositories_removed),
            "namespaces_adopted": len(self.namespaces_adopted),
            "tags_added": len(self.tags_added),
            "tags_moved": len(self.tags_moved),
            "tags_removed": len(self.tags_removed),
            "failed": len(self.failed),
        }

    @property
    def changed(self) -> bool:
        return any(count for name, count in self.counts().items() if name != "failed")


def _untracked(names: Iterable[str]) -> Iterable[str]:
    return names


def sync_catalog(
    session: Session,
    client: RegistryClient,
    *,
    dry_run: bool = False,
    track: Callable[[list[str]], Iterable[str]] = _untracked,
) -> SyncReport:
    """`track` wraps the iteration over repositories (the CLI shows a progress bar with it).
    Flushes only: the caller commits, or for a dry run (`dry_run` only empties `to_enrich`)
    rolls back, so that the report says exactly what a real run would do.
    """
    report = SyncReport(dry_run=dry_run)
    names = list(client.catalog())  # raises if the catalog cannot be read: then nothing changes
    known_namespaces = set(session.scalars(select(Namespace.name)))
    for name in track(names):
        try:
            _sync_repository(session, client, name, report, known_namespaces)
        except RegistryUnavailable:
            raise  # nothing is removed on a partial picture: the caller rolls back
        except RegistryError as error:
            report.failed[name] = str(error)
            log.warning("sync left %s alone: %s", name, error)
    listed = set(names)
    for repository in session.scalars(select(Repository)).all():
        if repository.name not in listed:
            report.repositories_removed.append(repository.name)
            report.tags_removed.extend(tag.reference for tag in repository.tags)
            audit.record(
                session,
                Kind.REPOSITORY_REMOVED,
                target=Target(TargetType.REPOSITORY, repository.name),
                repository=repository.name,
                detail="gone from the registry catalog (sync)",
            )
            session.delete(repository)
    session.flush()
    if dry_run:
        report.to_enrich.clear()
    return report


def _sync_repository(
    session: Session,
    client: RegistryClient,
    name: str,
    report: SyncReport,
    known_namespaces: set[str],
) -> None:
    tags = client.tags(name)  # a failure here leaves the stored repository untouched
    digests = {tag: client.manifest(name, tag)[1] for tag in tags}
    repository = session.scalar(select(Repository).where(Repository.name == name))
    if repository is None:
        if not tags:
            return  # an empty repository the registry still lists: nothing to show
        namespace = namespace_name_of(name)
        if namespace not in known_namespaces:
            report.namespaces_adopted.append(namespace)
            known_namespaces.add(namespace)
        repository = repositories.get_or_create_repository(session, name)
        report.repositories_added.append(name)
    stored = {
        tag.name: tag
        for tag in session.scalars(select(Tag).where(Tag.repository_id == repository.id))
    }
    now = utcnow()
    pushes = []
    for tag_name, digest in digests.items():
        current = stored.get(tag_name)
        if current is not None and current.digest == digest:
            if not current.enriched:
                report.to_enrich.add((name, digest))
            continue
        (report.tags_added if current is None else report.tags_moved).append(f"{name}:{tag_name}")
        pushes.append(repositories.Push(name, tag_name, digest, None, None, now))
    report.to_enrich |= repositories.record_pushes(session, pushes)
    for tag_name in sorted(set(stored) - set(digests)):
        report.tags_removed.append(f"{name}:{tag_name}")
        repositories.remove_tags(
            session, repository, tag_name=tag_name, reason="gone from the registry"
        )
    if repository not in session:  # its last tag went: the repository was dropped with it
        report.repositories_removed.append(name)
