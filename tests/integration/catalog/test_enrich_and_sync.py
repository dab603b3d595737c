"""Enrichment, the sweep and the catalog sync against a real `docker-registry` (token auth from
`portus registry-config`, images pushed with real skopeo): as plain functions and via the CLI.

One registry per module holds every image; each test gets a fresh database pointing at it (all
test apps share the template's signing key, so the registry trusts their tokens).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from portus_fab.catalog import enrichment, repositories
from portus_fab.catalog.sync import sync_catalog
from portus_fab.core import portus
from portus_fab.models import Namespace, NamespaceKind, Repository, Tag, Visibility
from portus_fab.models.namespaces import utcnow
from portus_fab.models.transaction import transaction
from portus_fab.registry.client import RegistryClient
from portus_fab.registry.errors import RegistryError, RegistryUnavailable
from portus_fab.registry.manifests import DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST
from tests.conftest import add_user, make_app
from tests.e2e.conftest import ServedApp, registry_config
from tests.support.oci import build_image_layout, build_index_layout
from tests.support.services import Registry
from tests.support.skopeo import Skopeo
from tests.support.wait import free_port

pytestmark = pytest.mark.e2e

ADMIN = ("root", "root-pw")
GRACE = dt.timedelta(seconds=20)  # the sweep leaves younger pushes to their own task
CREATED = dt.datetime(2024, 2, 3, 4, 5, 6, tzinfo=dt.UTC)
LABELS = {"org.opencontainers.image.title": "app", "maintainer": "team1"}
HISTORY = ["ENV A=1", "LABEL maintainer=team1", "COPY app.txt /"]
TAG_KEYS = {
    "digest",
    "media_type",
    "size",
    "platforms",
    "created",
    "labels",
    "pushed_by",
    "pushed_at",
    "pull_count",
    "last_pulled_at",
    "enriched",
}


@dataclass
class Images:
    """What the module's registry holds: repository -> {tag: digest}, plus layout facts."""

    registry: Registry
    registry_config: str
    public_url: str
    tags: dict[str, dict[str, str]]
    image_size: int  # config + layer of team1/app

    @property
    def repositories(self) -> set[str]:
        return set(self.tags)


def _blob_size(layout: Path, digest: str) -> int:
    return (layout / "blobs" / "sha256" / digest.removeprefix("sha256:")).stat().st_size


def _image_size(layout: Path, manifest_digest: str) -> int:
    manifest = json.loads((layout / "blobs" / "sha256" / manifest_digest[7:]).read_bytes())
    return manifest["config"]["size"] + sum(layer["size"] for layer in manifest["layers"])


def _registry_config(app: Flask, workdir: Path, port: int) -> str:
    """`portus registry-config --full` for `app`, without notifications (no webhook listens)."""
    output = registry_config(app, workdir, "--listen", f"127.0.0.1:{port}")
    config = yaml.safe_load(output)
    assert config["auth"]["token"]["realm"].endswith("/v2/token")
    del config["notifications"]
    return yaml.safe_dump(config)


@pytest.fixture(scope="module")
def images(template_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Images]:
    workdir = tmp_path_factory.mktemp("enrich")
    app_port, registry_port = free_port(), free_port()
    public_url = f"http://127.0.0.1:{app_port}"
    app = make_app(
        template_dir,
        workdir / "data",
        PORTUS_PUBLIC_URL=public_url,
        PORTUS_REGISTRY_URL=f"http://127.0.0.1:{registry_port}",
    )
    with app.app_context():
        add_user(app, ADMIN[0], ADMIN[1], admin=True)
        add_user(app, "alice")
        for namespace in ("team1", "multi"):
            result = app.test_cli_runner().invoke(args=["portus", "namespace", "create", namespace])
            assert result.exit_code == 0, result.output
        app.appbuilder.session.remove()
    config = _registry_config(app, workdir / "registry", registry_port)

    image = workdir / "image"
    image_digest = build_image_layout(
        image,
        "v1",
        files={"app.txt": b"team1 app\n"},
        labels=LABELS,
        created=CREATED,
        history=HISTORY,
    )
    other = workdir / "other"
    build_image_layout(other, "v1", files={"other.txt": b"another image\n"})
    index = workdir / "index"
    index_digest = build_index_layout(
        index,
        "1.0",
        [("linux", "amd64", None), ("linux", "arm64", "v8")],
        files={"tool": b"#!/bin/sh\n"},
        labels={"org.opencontainers.image.title": "tool"},
    )

    registry = Registry(config, workdir / "registry")
    with ServedApp(app, app_port), registry:
        skopeo = Skopeo(registry.host, workdir / "skopeo")

        def push(source: str, dest: str, *extra: str) -> None:
            result = skopeo.run(
                [
                    "copy",
                    "--dest-tls-verify=false",
                    "--dest-creds",
                    f"{ADMIN[0]}:{ADMIN[1]}",
                    *extra,
                    f"oci:{source}",
                    skopeo.docker_ref(dest),
                ]
            )
            assert result.returncode == 0, result.stderr

        push(f"{image}:v1", "team1/app:v1")
        push(f"{image}:v1", "team1/app:latest")
        push(f"{other}:v1", "team1/dock:v1", "--format", "v2s2")
        push(f"{index}:1.0", "multi/tool:1.0", "--all")
        push(f"{other}:v1", "alice/app:v1")
        push(f"{other}:v1", "busybox:latest")

        # The digests as the registry knows them (v2s2 conversion makes a new one).
        with app.app_context():
            client = portus().registry_client()
            tags = {
                name: {tag: client.manifest(name, tag)[1] for tag in client.tags(name)}
                for name in client.catalog()
            }
            app.appbuilder.session.remove()
        assert tags["team1/app"] == {"v1": image_digest, "latest": image_digest}
        assert tags["multi/tool"] == {"1.0": index_digest}
        yield Images(registry, config, public_url, tags, _image_size(image, image_digest))


@pytest.fixture
def local_app(images: Images, template_dir: Path, tmp_path: Path) -> Iterator[Flask]:
    """A fresh database that knows nothing of the registry's content (alice exists)."""
    app = make_app(
        template_dir,
        tmp_path / "data",
        PORTUS_PUBLIC_URL=images.public_url,
        PORTUS_REGISTRY_URL=images.registry.url,
    )
    with app.app_context():
        add_user(app, "alice")
        yield app
        app.appbuilder.session.remove()


@pytest.fixture
def session(local_app: Flask) -> Session:
    return local_app.appbuilder.session


@pytest.fixture
def registry_client(local_app: Flask) -> RegistryClient:
    return portus().registry_client()


def _push(session: Session, name: str, tag: str, digest: str, **kwargs: Any) -> Tag:
    options = {"media_type": None, "actor": "root", "at": utcnow(), **kwargs}
    repositories.record_pushes(session, [repositories.Push(name, tag, digest, **options)])
    session.commit()
    stored = _tag(session, name, tag)
    assert stored is not None
    return stored


def _tag(session: Session, name: str, tag: str) -> Tag | None:
    session.expire_all()
    return session.scalar(
        select(Tag).join(Repository).where(Repository.name == name, Tag.name == tag)
    )


def _state(session: Session) -> dict[str, Any]:
    """Everything sync may change, as plain data."""
    session.expire_all()
    return {
        "namespaces": sorted(session.scalars(select(Namespace.name))),
        "repositories": sorted(session.scalars(select(Repository.name))),
        "tags": sorted(
            (repo, tag, digest)
            for repo, tag, digest in session.execute(
                select(Repository.name, Tag.name, Tag.digest).join(Repository)
            )
        ),
    }


# --- enrichment ----------------------------------------------------------------------------------


def test_enrich_single_image(
    session: Session, registry_client: RegistryClient, images: Images
) -> None:
    digest = images.tags["team1/app"]["v1"]
    _push(session, "team1/app", "v1", digest)
    _push(session, "team1/app", "latest", digest)
    _push(session, "team1/app", "moved", images.tags["team1/dock"]["v1"])

    assert enrichment.enrich(session, registry_client, "team1/app", digest) == 2

    tag = _tag(session, "team1/app", "v1")
    assert tag.enriched and tag.enrich_error is None
    assert tag.media_type == OCI_MANIFEST
    assert tag.size == images.image_size
    assert tag.platforms == ["linux/amd64"]
    assert tag.created == CREATED.replace(tzinfo=None)
    assert tag.labels == LABELS
    (image,) = tag.details["images"]
    assert image["history"] == HISTORY
    assert len(image["layers"]) == 1 and image["layers"][0]["size"] > 0
    assert _tag(session, "team1/app", "latest").enriched
    assert not _tag(session, "team1/app", "moved").enriched  # another digest: untouched

    # Idempotent.
    assert enrichment.enrich(session, registry_client, "team1/app", digest) == 2
    assert _tag(session, "team1/app", "v1").size == images.image_size


def test_enrich_docker_schema2(
    session: Session, registry_client: RegistryClient, images: Images
) -> None:
    digest = images.tags["team1/dock"]["v1"]
    _push(session, "team1/dock", "v1", digest)
    enrichment.enrich(session, registry_client, "team1/dock", digest)
    tag = _tag(session, "team1/dock", "v1")
    assert tag.enriched and tag.enrich_error is None
    assert tag.media_type == DOCKER_MANIFEST
    assert tag.platforms == ["linux/amd64"]
    assert tag.size and tag.created is not None


def test_enrich_index_is_one_tag_with_two_platforms(
    session: Session, registry_client: RegistryClient, images: Images
) -> None:
    digest = images.tags["multi/tool"]["1.0"]
    _push(session, "multi/tool", "1.0", digest)
    assert enrichment.enrich(session, registry_client, "multi/tool", digest) == 1
    tag = _tag(session, "multi/tool", "1.0")
    assert tag.enriched and tag.enrich_error is None
    assert tag.media_type == OCI_INDEX
    assert tag.platforms == ["linux/amd64", "linux/arm64/v8"]
    assert tag.labels == {"org.opencontainers.image.title": "tool"}
    sizes = [image["size"] for image in tag.details["images"]]
    assert len(sizes) == 2 and all(sizes)
    assert tag.size == max(sizes)
    assert session.scalar(select(func.count()).select_from(Tag)) == 1


@pytest.mark.parametrize(
    ("name", "digest"),
    [("team1/app", "sha256:" + "0" * 64), ("nobody/nothing", "sha256:" + "0" * 64)],
    ids=["unknown-digest", "unknown-repository"],
)
def test_enrich_of_missing_digest_notes_it(
    session: Session, registry_client: RegistryClient, name: str, digest: str
) -> None:
    _push(session, name, "v1", digest)
    assert enrichment.enrich(session, registry_client, name, digest) == 0
    tag = _tag(session, name, "v1")
    assert tag.enrich_error and "not in the registry" in tag.enrich_error
    # Noted as described, so that the sweep does not retry it forever.
    assert repositories.unenriched(session, utcnow() + dt.timedelta(days=1)) == []


@pytest.fixture
def stopped_registry(images: Images, tmp_path: Path) -> Iterator[str]:
    """The URL of a registry (same auth config) that was running and has been stopped."""
    port = free_port()
    config = images.registry_config.replace(
        f"addr: {images.registry.host}", f"addr: 127.0.0.1:{port}"
    )
    registry = Registry(config, tmp_path / "stopped")
    with registry:
        pass
    yield registry.url


def test_enrich_with_registry_down_raises_unavailable(
    session: Session, stopped_registry: str, images: Images
) -> None:
    digest = images.tags["team1/app"]["v1"]
    _push(session, "team1/app", "v1", digest)
    client = RegistryClient(stopped_registry, lambda _scopes: "no-token", timeout=2)
    with pytest.raises(RegistryUnavailable):
        enrichment.enrich(session, client, "team1/app", digest)
    session.rollback()
    tag = _tag(session, "team1/app", "v1")
    assert not tag.enriched and tag.enrich_error is None


def test_sync_with_registry_down_changes_nothing(
    session: Session, stopped_registry: str, images: Images
) -> None:
    _push(session, "gone/app", "v1", "sha256:" + "1" * 64)
    before = _state(session)
    client = RegistryClient(stopped_registry, lambda _scopes: "no-token", timeout=2)
    with pytest.raises(RegistryUnavailable):
        sync_catalog(session, client)
    session.rollback()
    assert _state(session) == before


# --- the sweep -----------------------------------------------------------------------------------


def test_sweep_enqueues_old_unenriched_tags(session: Session, images: Images) -> None:
    old = utcnow() - GRACE - dt.timedelta(minutes=1)
    d1, d2, d3 = (f"sha256:{c * 64}" for c in "abc")
    _push(session, "team1/app", "v1", d1, at=old)
    _push(session, "team1/app", "v1-again", d1, at=old)  # same digest: one pair
    _push(session, "team1/app", "fresh", d2)  # within the grace: its own task is on the way
    done = _push(session, "team1/app", "done", d3, at=old)
    done.enriched_digest = d3
    moved = _push(session, "multi/tool", "1.0", d3, at=old)
    moved.enriched_digest = d2  # described, but for a digest it no longer points at
    session.commit()

    collected: list[tuple[str, str]] = []

    def enqueue(pairs: Iterable[tuple[str, str]]) -> int:
        pairs = list(pairs)
        collected.extend(pairs)
        return len(pairs)

    assert enrichment.sweep(session, enqueue, GRACE) == 2
    assert sorted(collected) == [("multi/tool", d3), ("team1/app", d1)]


def test_sweep_with_nothing_to_do_does_not_call_enqueue(session: Session) -> None:
    def enqueue(_pairs: Iterable[tuple[str, str]]) -> int:
        raise AssertionError("nothing should be enqueued")

    assert enrichment.sweep(session, enqueue, GRACE) == 0


# --- catalog sync --------------------------------------------------------------------------------


@pytest.fixture
def stale(session: Session, images: Images) -> None:
    """What the database believed before the sync: a repository the registry lost, a tag it
    lost, a tag that moved, and one already right."""
    _push(session, "gone/app", "v1", "sha256:" + "1" * 64)
    _push(session, "team1/app", "removed", "sha256:" + "2" * 64)
    _push(session, "team1/app", "latest", "sha256:" + "3" * 64)
    _push(session, "team1/app", "v1", images.tags["team1/app"]["v1"], actor="root")


def _expected_report(images: Images) -> dict[str, Any]:
    added = sorted(images.repositories - {"team1/app"})
    return {
        "repositories_added": added,
        "repositories_removed": ["gone/app"],
        "namespaces_adopted": ["multi"],  # team1 came with the stale team1/app
        "tags_added": sorted(f"{name}:{tag}" for name in added for tag in images.tags[name]),
        "tags_moved": ["team1/app:latest"],
        "tags_removed": ["gone/app:v1", "team1/app:removed"],
        "failed": {},
    }


def _report(report: Any) -> dict[str, Any]:
    return {
        "repositories_added": sorted(report.repositories_added),
        "repositories_removed": sorted(report.repositories_removed),
        "namespaces_adopted": sorted(report.namespaces_adopted),
        "tags_added": sorted(report.tags_added),
        "tags_moved": sorted(report.tags_moved),
        "tags_removed": sorted(report.tags_removed),
        "failed": dict(report.failed),
    }


def test_sync_adopts_creates_and_removes(
    session: Session, registry_client: RegistryClient, images: Images, stale: None
) -> None:
    report = sync_catalog(session, registry_client)
    assert _report(report) == _expected_report(images)
    assert not report.dry_run and report.changed

    state = _state(session)
    assert state["repositories"] == sorted(images.repositories)
    assert state["tags"] == sorted(
        (name, tag, digest) for name, tags in images.tags.items() for tag, digest in tags.items()
    )
    for name in ("team1", "multi"):
        namespace = session.scalar(select(Namespace).where(Namespace.name == name))
        assert namespace.kind == NamespaceKind.ADOPTED
        assert namespace.visibility == Visibility.PRIVATE
        assert namespace.user_id is None
    alice = session.scalar(select(Repository).where(Repository.name == "alice/app")).namespace
    assert alice.kind == NamespaceKind.PERSONAL
    assert _tag(session, "busybox", "latest").repository.namespace.kind == NamespaceKind.GLOBAL
    # The tag that was already right keeps who pushed it.
    assert _tag(session, "team1/app", "v1").pushed_by == "root"
    # Everything new or moved is to be described; nothing already described is.
    assert report.to_enrich == {
        (name, digest) for name, tags in images.tags.items() for digest in tags.values()
    }

    # Enriching what the sync found describes every tag.
    for name, digest in sorted(report.to_enrich):
        enrichment.enrich(session, registry_client, name, digest)
    assert repositories.unenriched(session, utcnow() + dt.timedelta(days=1)) == []
    assert _tag(session, "multi/tool", "1.0").platforms == ["linux/amd64", "linux/arm64/v8"]

    # A second run finds nothing to do.
    again = sync_catalog(session, registry_client)
    assert not again.changed and again.to_enrich == set()


def test_sync_dry_run_changes_nothing_and_reports_the_same(
    session: Session, registry_client: RegistryClient, images: Images, stale: None
) -> None:
    before = _state(session)
    tracked: list[str] = []

    def track(names: list[str]) -> Iterator[str]:
        for name in names:
            tracked.append(name)
            yield name

    # The entry point rolls a dry run back, as `portus sync --dry-run` does.
    with transaction(session, commit=False):
        dry = sync_catalog(session, registry_client, dry_run=True, track=track)
    assert dry.dry_run and dry.to_enrich == set()
    assert _state(session) == before
    assert sorted(tracked) == sorted(images.repositories)

    real = sync_catalog(session, registry_client)
    assert _report(dry) == _report(real) == _expected_report(images)


class OverriddenTags:
    """The real client, except for the tag listing of some repositories: an error to raise or
    the list to answer."""

    def __init__(
        self, registry_client: RegistryClient, overrides: dict[str, Exception | list[str]]
    ) -> None:
        self._client = registry_client
        self._overrides = overrides

    def tags(self, repository: str) -> list[str]:
        override = self._overrides.get(repository)
        if isinstance(override, Exception):
            raise override
        return self._client.tags(repository) if override is None else override

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def test_sync_leaves_a_repository_whose_listing_failed_alone(
    session: Session, registry_client: RegistryClient, images: Images, stale: None
) -> None:
    before = [t for t in _state(session)["tags"] if t[0] == "team1/app"]
    failing = RegistryError("GET /v2/team1/app/tags/list -> HTTP 500: boom", 500)
    wrapped = OverriddenTags(registry_client, {"team1/app": failing})
    report = sync_catalog(session, wrapped)  # type: ignore[arg-type]
    assert list(report.failed) == ["team1/app"]
    assert "boom" in report.failed["team1/app"]
    assert [t for t in _state(session)["tags"] if t[0] == "team1/app"] == before
    # The others were still synced.
    assert report.repositories_removed == ["gone/app"]
    assert _tag(session, "multi/tool", "1.0") is not None
    assert not any(name == "team1/app" for name, _ in report.to_enrich)


def test_sync_removes_a_repository_the_registry_lists_without_tags(
    session: Session, registry_client: RegistryClient, images: Images, stale: None
) -> None:
    """After `skopeo delete` of its last manifest the registry still lists the repository, with
    no tags: it goes from the database, tags and all."""
    wrapped = OverriddenTags(registry_client, {"team1/app": [], "multi/tool": []})
    report = sync_catalog(session, wrapped)  # type: ignore[arg-type]
    state = _state(session)
    assert "team1/app" not in state["repositories"]
    assert "multi/tool" not in state["repositories"]  # never stored: nothing to show
    assert sorted(t for t in report.tags_removed if t.startswith("team1/app:")) == [
        "team1/app:latest",
        "team1/app:removed",
        "team1/app:v1",
    ]
    assert report.failed == {}


# --- the CLI -------------------------------------------------------------------------------------


def _cli(app: Flask, *args: str) -> Any:
    result = app.test_cli_runner().invoke(args=["portus", *args])
    app.appbuilder.session.remove()
    return result


def test_cli_sync_dry_run_then_sync(local_app: Flask, images: Images, stale: None) -> None:
    session = local_app.appbuilder.session
    before = _state(session)

    dry = _cli(local_app, "sync", "--dry-run")
    assert dry.exit_code == 0, dry.output
    lines = dry.stdout.splitlines()
    assert "would adopt namespace multi" in lines
    assert "would add repository multi/tool" in lines
    assert "would remove repository gone/app" in lines
    assert "would move tag team1/app:latest" in lines
    assert "would remove tag team1/app:removed" in lines
    added = len(images.repositories) - 1
    assert lines[-1].startswith(f"dry run: {added} repositories added, 1 repositories removed")
    assert _state(session) == before

    real = _cli(local_app, "sync")
    assert real.exit_code == 0, real.output
    lines = real.stdout.splitlines()
    assert "adopt namespace multi" in lines
    assert "add tag multi/tool:1.0" in lines
    assert lines[-1].startswith(f"{added} repositories added, 1 repositories removed")
    assert "1 namespaces adopted" in lines[-1]
    assert "0 failed" in lines[-1]
    assert _state(session)["repositories"] == sorted(images.repositories)

    again = _cli(local_app, "sync")
    assert again.exit_code == 0, again.output
    assert again.stdout.splitlines()[-1].startswith("0 repositories added, 0 repositories removed")


def test_cli_repo_list_and_show(
    local_app: Flask, session: Session, registry_client: RegistryClient, images: Images
) -> None:
    result = _cli(local_app, "sync")
    assert result.exit_code == 0, result.output
    assert {"adopt namespace team1", "adopt namespace multi"} <= set(result.stdout.splitlines())
    digest = images.tags["multi/tool"]["1.0"]

    listed = _cli(local_app, "repo", "list", "--json")
    assert listed.exit_code == 0, listed.output
    rows = {row["name"]: row for row in json.loads(listed.stdout)}
    assert set(rows) == images.repositories
    assert rows["team1/app"] == {"name": "team1/app", "namespace": "team1", "tags": 2}
    assert rows["busybox"]["tags"] == 1

    before = json.loads(_cli(local_app, "repo", "show", "multi/tool:1.0", "--json").stdout)
    assert set(before) >= TAG_KEYS
    assert before["digest"] == digest
    assert before["enriched"] is False

    enrichment.enrich(session, registry_client, "multi/tool", digest)
    shown = _cli(local_app, "repo", "show", "multi/tool:1.0", "--json")
    assert shown.exit_code == 0, shown.output
    tag = json.loads(shown.stdout)
    assert set(tag) >= TAG_KEYS
    assert tag["repository"] == "multi/tool"
    assert tag["enriched"] is True
    assert tag["media_type"] == OCI_INDEX
    assert tag["platforms"] == ["linux/amd64", "linux/arm64/v8"]
    assert isinstance(tag["size"], int) and tag["size"] > 0
    assert dt.datetime.fromisoformat(tag["created"]) == dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    assert tag["labels"] == {"org.opencontainers.image.title": "tool"}
    assert tag["pushed_by"] is None  # found by the sync, not pushed through a webhook event
    assert dt.datetime.fromisoformat(tag["pushed_at"]).tzinfo is not None
    assert (tag["pull_count"], tag["last_pulled_at"]) == (0, None)

    repo = _cli(local_app, "repo", "show", "team1/app", "--json")
    assert repo.exit_code == 0, repo.output
    data = json.loads(repo.stdout)
    assert data["name"] == "team1/app" and data["namespace"] == "team1"
    assert data["visibility"] == "private"
    assert [t["name"] for t in data["tags"]] == ["latest", "v1"]
    for entry in data["tags"]:
        assert set(entry) >= TAG_KEYS
        assert entry["digest"] == images.tags["team1/app"][entry["name"]]

    plain = _cli(local_app, "repo", "show", "team1/app:v1")
    assert (
        plain.exit_code == 0 and yaml.safe_load(plain.stdout)["digest"] == data["tags"][1]["digest"]
    )


@pytest.mark.parametrize("reference", ["nobody/nothing", "team1/app:nope", "team1/nothing:v1"])
def test_cli_repo_show_unknown_fails(local_app: Flask, images: Images, reference: str) -> None:
    assert _cli(local_app, "sync").exit_code == 0
    result = _cli(local_app, "repo", "show", reference, "--json")
    assert result.exit_code != 0
    assert "no repository or tag" in result.output
