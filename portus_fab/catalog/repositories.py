"""The stored picture of the registry: repositories and tags, kept in step by events and sync.

Both the webhook ingestion and the catalog sync change repositories and tags only through these
functions, so the two paths can never disagree on what a push or a deletion means.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, select, tuple_, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.selectable import ScalarSelect

from portus_fab import audit
from portus_fab.access.policy import namespace_name_of
from portus_fab.audit import Kind, Target, TargetType
from portus_fab.models import Namespace, NamespaceKind, Repository, Tag, Visibility
from portus_fab.models.namespaces import utcnow
from portus_fab.registry.client import RegistryClient
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


def tag_count() -> ScalarSelect[int]:
    """A repository's number of tags, as a correlated subquery (one query for a whole list)."""
    return select(func.count(Tag.id)).where(Tag.repository_id == Repository.id).scalar_subquery()


def get_or_create_repository(session: Session, name: str) -> Repository:
    repository = session.scalar(select(Repository).where(Repository.name == name))
    if repository is None:
        repository = Repository(name=name, namespace=namespace_for(session, name))
        session.add(repository)
        session.flush()
    return repository


@dataclass(frozen=True, slots=True)
class Push:
    """A manifest pushed by tag, as a notification or a sync found it (`at`: naive UTC)."""

    repository: str
    tag: str
    digest: str
    media_type: str | None
    actor: str | None
    at: dt.datetime


_TAGS = Tag.__table__
_NEW_TAG = insert(_TAGS)
_MOVE_TAG = (
    update(_TAGS)
    .where(_TAGS.c.id == bindparam("b_id"))
    .values(
        digest=bindparam("b_digest"),
        media_type=bindparam("b_media_type"),
        pushed_by=bindparam("b_pushed_by"),
        pushed_at=bindparam("b_pushed_at"),
    )
)
# Built once, so that SQLAlchemy compiles them once: the webhook runs them for every envelope.
_REPOSITORIES_NAMED = select(
    Repository.__table__.c.id, Repository.__table__.c.name, Repository.__table__.c.last_pushed_at
).where(Repository.__table__.c.name.in_(bindparam("b_names", expanding=True)))
_TAGS_KEYED = select(
    _TAGS.c.id,
    _TAGS.c.repository_id,
    _TAGS.c.name,
    _TAGS.c.digest,
    _TAGS.c.media_type,
    _TAGS.c.pushed_at,
    _TAGS.c.enriched_digest,
).where(tuple_(_TAGS.c.repository_id, _TAGS.c.name).in_(bindparam("b_keys", expanding=True)))
_LAST_PUSH = (
    update(Repository.__table__)
    .where(Repository.__table__.c.id == bindparam("b_id"))
    .values(last_pushed_at=bindparam("b_at"))
)


def _tag_target(repository: str, tag: str) -> Target:
    return Target(TargetType.TAG, f"{repository}:{tag}")


def record_pushes(session: Session, pushes: Sequence[Push]) -> set[tuple[str, str]]:
    """Point each tag at its digest, in order, with a constant number of statements per call
    (the webhook applies whole envelopes with it).

    A tag that moves keeps its history in the activity log; an older push of the digest a tag
    already holds (a redelivery, or events out of order) changes nothing. Returns the
    (repository, digest) pairs whose tags are not described yet (for the enrich workers).
    """
    if not pushes:
        return set()
    names = {push.repository for push in pushes}
    connection = session.connection()
    repositories = {
        name: (id_, last)
        for id_, name, last in connection.execute(_REPOSITORIES_NAMED, {"b_names": sorted(names)})
    }
    for name in sorted(names - repositories.keys()):
        repositories[name] = (get_or_create_repository(session, name).id, None)
    wanted = sorted({(repositories[p.repository][0], p.tag) for p in pushes})
    current = {
        (row.repository_id, row.name): dict(row._mapping)
        for row in connection.execute(_TAGS_KEYED, {"b_keys": wanted})
    }
    created: dict[tuple[int, str], dict[str, Any]] = {}
    moved: dict[int, dict[str, Any]] = {}
    last_push: dict[int, dt.datetime] = {}
    activities = []
    for push in pushes:
        repository_id, last = repositories[push.repository]
        key = (repository_id, push.tag)
        tag = current.get(key) or created.get(key)
        previous = None
        if tag is not None and tag["digest"] == push.digest:
            if tag["pushed_at"] is not None and tag["pushed_at"] >= push.at:
                continue
        elif tag is not None:
            previous = tag["digest"]
        values = {
            "digest": push.digest,
            "media_type": push.media_type or (tag or {}).get("media_type"),
            "pushed_by": push.actor,
            "pushed_at": push.at,
        }
        if tag is None or key in created:
            created[key] = {
                **(tag or {}),
                **values,
                "repository_id": repository_id,
                "name": push.tag,
                "pull_count": 0,
                "platforms": [],
                "labels": {},
                "details": {},
            }
        else:
            tag.update(values)
            moved[tag["id"]] = {f"b_{k}": v for k, v in values.items()} | {"b_id": tag["id"]}
        if (last is None or last < push.at) and last_push.get(repository_id, push.at) <= push.at:
            last_push[repository_id] = push.at
        activities.append(
            audit.entry(
                Kind.PUSH if previous is None else Kind.TAG_MOVED,
                target=_tag_target(push.repository, push.tag),
                actor=push.actor,
                repository=push.repository,
                tag=push.tag,
                digest=push.digest,
                previous_digest=previous,
                at=push.at,
            )
        )
    if created:
        connection.execute(_NEW_TAG, list(created.values()))
    if moved:
        connection.execute(_MOVE_TAG, list(moved.values()))
    if last_push:
        connection.execute(_LAST_PUSH, [{"b_id": k, "b_at": v} for k, v in last_push.items()])
    audit.record_many(session, activities)
    final = {**current, **created}
    return {
        (push.repository, push.digest)
        for push in pushes
        if (tag := final[(repositories[push.repository][0], push.tag)])["digest"] == push.digest
        and tag.get("enriched_digest") != push.digest
    }


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
    query = select(Tag.id, Tag.name, Tag.digest).where(Tag.repository_id == repository.id)
    query = query.where(Tag.digest == digest) if digest else query.where(Tag.name == tag_name)
    rows = session.execute(query).all()
    for _, name, tag_digest in rows:
        audit.record(
            session,
            Kind.DELETE,
            target=_tag_target(repository.name, name),
            actor=actor,
            repository=repository.name,
            tag=name,
            digest=tag_digest,
            detail=reason,
        )
    # By id, not through the ORM: the registry's own delete event may remove them concurrently.
    session.execute(delete(Tag).where(Tag.id.in_([row.id for row in rows])))
    session.flush()
    removed = [row.name for row in rows]
    drop_if_empty(session, repository, actor=actor)
    return removed


def drop_if_empty(session: Session, repository: Repository, *, actor: str | None = None) -> bool:
    remaining = session.scalar(
        select(func.count()).select_from(Tag).where(Tag.repository_id == repository.id)
    )
    if remaining:
        return False
    audit.record(
        session,
        Kind.REPOSITORY_REMOVED,
        target=Target(TargetType.REPOSITORY, repository.name),
        actor=actor,
        repository=repository.name,
    )
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
        tag.enrich_error = None  # the notes are in `details`
    session.flush()
    return len(tags)


def mark_failed(session: Session, repository_name: str, digest: str, why: str) -> None:
    """A digest that cannot be described: done with (the sweep leaves it alone), nothing shown
    but why; details of the digest the tags pointed at before go."""
    for tag in session.scalars(
        select(Tag).join(Repository).where(Repository.name == repository_name, Tag.digest == digest)
    ):
        tag.size = tag.created = None
        tag.platforms, tag.labels, tag.details = [], {}, {}
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
            ~Tag.enriched,
            (Tag.pushed_at.is_(None)) | (Tag.pushed_at < older_than),
        )
        .distinct()
        .limit(limit)
    ).all()
    return [(name, digest) for name, digest in rows]


def delete_digests(
    session: Session,
    client: RegistryClient,
    name: str,
    digests: list[str],
    *,
    actor: str | None,
) -> None:
    """Delete manifests of the repository `name` in the registry (by digest: every tag on one
    goes with it), as portus_fab's own identity, record who asked, and remove the tags here at
    once unless the registry's own delete events already did. Raises RegistryError, before any
    local change, if the registry refuses.

    The caller runs this in a fresh transaction (`transaction(session, fresh=True)`): the
    registry's own delete events land while we wait, and the removal must see them."""
    for digest in digests:
        client.delete_manifest(name, digest)
    for digest in digests:
        current = session.scalar(select(Repository).where(Repository.name == name))
        tags = (
            []
            if current is None
            else remove_tags(
                session, current, digest=digest, actor=actor, reason="deleted from portus_fab"
            )
        )
        audit.record(
            session,
            Kind.DELETE_REQUESTED,
            target=Target(TargetType.REPOSITORY, name),
            actor=actor,
            repository=name,
            digest=digest,
            detail=f"tags: {', '.join(tags)}",
            details={"tags": tags},
        )
    session.flush()
