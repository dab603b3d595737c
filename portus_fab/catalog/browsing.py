"""What the browse pages show, already filtered by the policy: plain data, constant queries.

Every query here is restricted by `visible_namespace_ids(principal)`, so lists, pages, search and
counts can never show a repository the principal may not pull.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from portus_fab.access.policy import Explanation, Policy, Principal, visible_namespace_ids
from portus_fab.catalog import repositories
from portus_fab.models import Namespace, NamespaceKind, Repository, Tag, Visibility

PAGE_SIZE = 50
SORTS = {"name": "name", "pushed": "last pushed"}


@dataclass(frozen=True, slots=True)
class RepositoryRow:
    name: str
    namespace: str
    visibility: Visibility
    tag_count: int
    last_pushed_at: dt.datetime | None
    pull_count: int


@dataclass(frozen=True, slots=True)
class NamespaceRow:
    name: str
    kind: NamespaceKind
    visibility: Visibility
    description: str
    repository_count: int


@dataclass(frozen=True, slots=True)
class ExplorePage:
    repositories: list[RepositoryRow]
    namespaces: list[NamespaceRow]
    total: int
    page: int
    pages: int
    query: str
    sort: str


@dataclass(frozen=True, slots=True)
class RepositoryPage:
    repository: Repository
    namespace: Namespace
    tags: list[Tag]  # most recently pushed first
    access: Explanation

    @property
    def pull_tag(self) -> str | None:
        """The tag the pull command shows: `latest` if there is one, else the newest push."""
        names = [tag.name for tag in self.tags]
        return "latest" if "latest" in names else (names[0] if names else None)


def explore(
    session: Session,
    principal: Principal,
    *,
    query: str = "",
    sort: str = "name",
    page: int = 1,
    per_page: int = PAGE_SIZE,
) -> ExplorePage:
    visible = Repository.namespace_id.in_(visible_namespace_ids(principal))
    matching = [visible]
    query = query.strip()
    if query:
        matching.append(Repository.name.contains(query.lower(), autoescape=True))
    total = session.scalar(select(func.count(Repository.id)).where(*matching)) or 0
    pages = max(1, -(-total // per_page))
    page = min(max(1, page), pages)
    order = (
        (Repository.last_pushed_at.desc(), Repository.name)
        if sort == "pushed"
        else (Repository.name,)
    )
    rows = session.execute(
        select(
            Repository.name,
            Namespace.name,
            Namespace.visibility,
            repositories.tag_count(),
            Repository.last_pushed_at,
            Repository.pull_count,
        )
        .join(Namespace, Namespace.id == Repository.namespace_id)
        .where(*matching)
        .order_by(*order)
        .limit(per_page)
        .offset((page - 1) * per_page)
    ).all()
    repository_count = (
        select(func.count(Repository.id))
        .where(Repository.namespace_id == Namespace.id)
        .scalar_subquery()
    )
    namespaces = session.execute(
        select(
            Namespace.name,
            Namespace.kind,
            Namespace.visibility,
            Namespace.description,
            repository_count,
        )
        .where(Namespace.id.in_(visible_namespace_ids(principal)))
        .where(Namespace.name.contains(query.lower(), autoescape=True) if query else True)
        .order_by(Namespace.name)
        .limit(per_page)
    ).all()
    return ExplorePage(
        repositories=[RepositoryRow(*row) for row in rows],
        namespaces=[NamespaceRow(*row) for row in namespaces],
        total=total,
        page=page,
        pages=pages,
        query=query,
        sort=sort if sort in SORTS else "name",
    )


def repository_page(
    session: Session, policy: Policy, principal: Principal, name: str
) -> RepositoryPage | None:
    """None when the repository does not exist OR the principal may not pull it: a hidden
    repository and a missing one look the same."""
    row = session.execute(
        select(Repository, Namespace)
        .join(Namespace, Namespace.id == Repository.namespace_id)
        .where(Repository.name == name, Namespace.id.in_(visible_namespace_ids(principal)))
    ).one_or_none()
    if row is None:
        return None
    repository, namespace = row
    tags = list(
        session.scalars(
            select(Tag)
            .where(Tag.repository_id == repository.id)
            .order_by(Tag.pushed_at.desc(), Tag.name)
        )
    )
    return RepositoryPage(repository, namespace, tags, policy.explain(principal, name))
