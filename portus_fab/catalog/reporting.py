"""Plain-data views of repositories and tags, for the CLI's --json and for scripts."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from portus_fab.catalog import repositories
from portus_fab.models import Namespace, Repository, Tag


def _iso(moment: dt.datetime | None) -> str | None:
    return moment.replace(tzinfo=dt.UTC).isoformat() if moment else None


def repository_rows(session: Session) -> list[dict[str, Any]]:
    rows = session.execute(
        select(Repository.name, Namespace.name, repositories.tag_count())
        .join(Namespace, Namespace.id == Repository.namespace_id)
        .order_by(Repository.name)
    ).all()
    return [{"name": name, "namespace": ns, "tags": count} for name, ns, count in rows]


def tag_data(tag: Tag) -> dict[str, Any]:
    return {
        "name": tag.name,
        "digest": tag.digest,
        "media_type": tag.media_type,
        "size": tag.size,
        "platforms": list(tag.platforms or []),
        "created": _iso(tag.created),
        "labels": dict(tag.labels or {}),
        "pushed_by": tag.pushed_by,
        "pushed_at": _iso(tag.pushed_at),
        "pull_count": tag.pull_count,
        "last_pulled_at": _iso(tag.last_pulled_at),
        "enriched": tag.enriched,
        "enrich_failed": tag.enrich_failed,
        "enrich_error": tag.enrich_error if tag.enrich_failed else None,
        "enrich_notes": (tag.details or {}).get("skipped", []) if tag.enriched else [],
        "images": (tag.details or {}).get("images", []),
    }


def describe(session: Session, name: str, tag_name: str | None) -> dict[str, Any] | None:
    repository = session.scalar(
        select(Repository)
        .where(Repository.name == name)
        .options(selectinload(Repository.tags), selectinload(Repository.namespace))
    )
    if repository is None:
        return None
    if tag_name is not None:
        tag = next((t for t in repository.tags if t.name == tag_name), None)
        return None if tag is None else {"repository": name, **tag_data(tag)}
    return {
        "name": repository.name,
        "namespace": repository.namespace.name,
        "visibility": str(repository.namespace.visibility),
        "pull_count": repository.pull_count,
        "last_pulled_at": _iso(repository.last_pulled_at),
        "last_pushed_at": _iso(repository.last_pushed_at),
        "tags": [tag_data(tag) for tag in repository.tags],
    }
