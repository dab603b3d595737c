"""The stored picture of the registry: repositories and tags, kept in step by events and sync.

Both the webhook ingestion and the catalog sync change repositories and tags only through these
functions, so the two paths can never disagree on what a push or a deletion means.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from portus_fab.models import Activity, Namespace, NamespaceKind, Repository, Tag, Visibility
from portus_fab.models.namespaces import utcnow
from portus_fab.policy import namespace_name_of
from portus_fab.registry.manifests import ManifestDetails


def namespace_for(session: Session, repository: str) -> Namespace:
    """The repository's namespace; one portus_fab does not know yet is adopted as private, owned by
    admins only, so that an admin can hand it to a team later (Portus skipped these)."""
    name = namespace_name_of(repository)
    namespace = session.scalar(select(Namespace).where(Namespace.name == name))
    if namespace is None:
        namespace = Namespace(
            name=name,
            kind=NamespaceKind.ADOPTED,
            visibility=Visibility.PRIVATE,
            description="Found in the registry; adopted by portus_fab. Grant it to a team.",
        )
        session.add(namespace)
        session.flush()
    return namespace


def get_or_create_repository(session: Session, name: str) -> Repository:
    repository = session.scalar(select(Repository).where(Repository.name == name))
    if repository is None:
        repository = Repository(name=name, namespace=namespace_for(session, name))
        session.add(repository)
        session.flush()
    return repository


def record_push(
    session: Session,
    repository: Repository,
    tag_name: str,
    digest: str,
    *,
    media_type: str | None,
    actor: str | None,
    at: dt.datetime,
) -> Tag:
    """Point the tag at the digest. A tag that moves keeps its history in the activity log."""
    tag = session.scalar(
        select(Tag).where(Tag.repository_id == repository.id, Tag.name == tag_name)
    )
    previous = None
    if tag is None:
        tag = Tag(repository=repository, name=tag_name, digest=digest)
        session.add(tag)
    elif tag.digest != digest:
        previous = tag.digest
    elif tag.pushed_at is not None and tag.pushed_at >= at:
        return tag  # an older, redelivered or out-of-order push of the same digest
    tag.digest = digest
    tag.media_type = media_type or tag.media_type
    tag.pushed_by = actor
    tag.pushed_at = at
    if repository.last_pushed_at is None or repository.last_pushed_at < at:
        repository.last_pushed_at = at
    session.add(
        Activity(
            kind="push" if previous is None else "tag moved",
            actor=actor,
            repository=repository.name,
            tag=tag_name,
            digest=digest,
            previous_digest=previous,
            at=at,
        )
    )
    session.flush()
    return tag


def remove_tags(
    session: Session,
    repository: Repository,
    *,
    digest: str | None = None,
    tag_name: str | None = None,
    actor: str | None = None,
    reason: str = "deleted in the registry",
) -> list[str]:
    """Remove the tags on a digest (the registry deletes by digest) or one tag by name; then the
    repository itself if it has no tag left. Returns the removed tag names."""
    query = select(Tag).where(Tag.repository_id == repository.id)
    query = query.where(Tag.digest == digest) if digest else query.where(Tag.name == tag_name)
    removed = []
    for tag in session.scalars(query):
        removed.append(tag.name)
        session.add(
            Activity(
                kind="delete",
                actor=actor,
                repository=repository.name,
                tag=tag.name,
                digest=tag.digest,
                detail=reason,
            )
        )
        session.delete(tag)
    session.flush()
    drop_if_empty(session, repository, actor=actor)
    return removed


def drop_if_empty(session: Session, repository: Repository, *, actor: str | None = None) -> bool:
    remaining = session.scalar(
        select(func.count()).select_from(Tag).where(Tag.repository_id == repository.id)
    )
    if remaining:
        return False
    session.add(Activity(kind="repository removed", actor=actor, repository=repository.name))
    session.execute(delete(Repository).where(Repository.id == repository.id))
    session.expunge(repository)
    return True


def details_json(details: ManifestDetails) -> dict[str, Any]:
    return {
        "images": [
            {
                "digest": image.digest,
                "media_type": image.media_type,
                "platform": str(image.platform) if image.platform else None,
                "size": image.size,
                "created": image.created.isoformat() if image.created else None,
                "config_digest": image.config_digest,
                "layers": [
                    {"digest": layer.digest, "size": layer.size, "media_type": layer.media_type}
                    for layer in image.layers
                ],
                "history": image.history,
                "labels": image.labels,
            }
            for image in details.images
        ],
        "skipped": details.skipped,
    }


def store_details(session: Session, repository_name: str, details: ManifestDetails) -> int:
    """Write what the worker learned about a digest onto every tag of the repository that still
    points at it (a tag that moved meanwhile is left for its own enrichment)."""
    tags = session.scalars(
        select(Tag)
        .join(Repository)
        .where(Repository.name == repository_name, Tag.digest == details.digest)
    ).all()
    created = details.created.astimezone(dt.UTC).replace(tzinfo=None) if details.created else None
    for tag in tags:
        tag.media_type = details.media_type
        tag.size = details.size
        tag.created = created
        tag.platforms = [str(platform) for platform in details.platforms]
        tag.labels = details.labels
        tag.details = details_json(details)
        tag.enriched_digest = details.digest
        tag.enriched_at = utcnow()
        tag.enrich_error = "; ".join(details.skipped) or None
    session.flush()
    return len(tags)


def mark_unenrichable(session: Session, repository_name: str, digest: str, why: str) -> None:
    """A digest the registry no longer has: stop retrying, say why."""
    for tag in session.scalars(
        select(Tag).join(Repository).where(Repository.name == repository_name, Tag.digest == digest)
    ):
        tag.enriched_digest = digest
        tag.enriched_at = utcnow()
        tag.enrich_error = why
    session.flush()


def unenriched(
    session: Session, older_than: dt.datetime, limit: int = 500
) -> list[tuple[str, str]]:
    """(repository, digest) pairs whose tags were never described, pushed before `older_than`."""
    rows = session.execute(
        select(Repository.name, Tag.digest)
        .join(Repository)
        .where(
            (Tag.enriched_digest.is_(None)) | (Tag.enriched_digest != Tag.digest),
            (Tag.pushed_at.is_(None)) | (Tag.pushed_at < older_than),
        )
        .distinct()
        .limit(limit)
    ).all()
    return [(name, digest) for name, digest in rows]


def remove_tags_by_digests(
    session: Session, repository: Repository, digests: list[str], *, actor: str | None
) -> list[str]:
    """Remove the tags on each digest (a delete from the UI); the repository goes with its last
    tag. Returns the removed tag names."""
    removed: list[str] = []
    for digest in digests:
        removed += remove_tags(
            session, repository, digest=digest, actor=actor, reason="deleted from portus_fab"
        )
        if repository not in session:  # its last tag went: the repository was dropped
            break
    return removed
