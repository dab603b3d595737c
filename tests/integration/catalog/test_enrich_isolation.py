"""One digest that cannot be described never holds up the others: a real `docker-registry`
holds good images and hostile ones pushed over raw HTTP (huge, negative sizes, absurd counts,
huge labels, bad dates, a config that is not JSON, an index over a bad child), and one enrich
task gets them mixed in one batch. The good ones are described; the bad one is marked failed
with the reason, shown on the tag page and by `portus doctor`, and the sweep leaves it alone.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from flask import Flask
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from portus_fab.catalog import enrichment, repositories
from portus_fab.core import portus
from portus_fab.models import Repository, Tag
from portus_fab.models.namespaces import utcnow
from portus_fab.registry.client import RegistryClient
from portus_fab.registry.errors import RegistryUnavailable
from portus_fab.registry.manifests import (
    MAX_HISTORY,
    MAX_INDEX_CHILDREN,
    MAX_LABELS,
    MAX_LAYERS,
    MAX_TEXT,
)
from portus_fab.tasks.catalog import enrich_digests
from tests.conftest import add_user, make_app
from tests.e2e.conftest import registry_config
from tests.support.oci import build_image_layout
from tests.support.pusher import OCI_INDEX, OCI_MANIFEST, RawPusher, canonical
from tests.support.services import Registry
from tests.support.wait import free_port

pytestmark = pytest.mark.e2e

ADMIN = ("root", "root-pw")
GOOD = ("good/first", "good/last")  # one before the hostile digest in the batch, one after
LONG_AGO = utcnow() - dt.timedelta(hours=1)  # pushes the sweep would take
HUGE = 1 << 62


def _config(**fields: Any) -> bytes:
    base: dict[str, Any] = {
        "architecture": "amd64",
        "os": "linux",
        "created": "2024-01-01T00:00:00Z",
        "config": {"Labels": {"a": "b"}},
        "rootfs": {"type": "layers", "diff_ids": []},
    }
    return canonical(base | fields)


def _labels(count: int, size: int) -> bytes:
    return _config(config={"Labels": {f"l{n}": "x" * size for n in range(count)}})


def _layers(pusher: RawPusher, repository: str, count: int, size: int | None = None) -> Any:
    layer = pusher.blob(repository, b"one real layer")
    return [layer | ({} if size is None else {"size": size})] * count


def _index(pusher: RawPusher, repository: str, children: list[str]) -> str:
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {
                "mediaType": OCI_MANIFEST,
                "digest": child,
                "size": 1,
                "platform": {"os": "linux", "architecture": f"arch{n}"},
            }
            for n, child in enumerate(children)
        ],
    }
    return pusher.manifest(repository, "v1", document, OCI_INDEX)


# Each: (repository) -> push the hostile digest as <repository>:v1; and a fragment of the reason.
Poison = Callable[[RawPusher, str], str]
POISONS: dict[str, tuple[Poison, str]] = {
    "huge-sizes": (
        lambda p, r: p.image(r, "v1", _config(), _layers(p, r, 2, HUGE)),
        f"size {HUGE} is outside 0..",
    ),
    "negative-size": (
        lambda p, r: p.image(r, "v1", _config(), _layers(p, r, 1, -1)),
        "size -1 is outside 0..",
    ),
    "too-many-layers": (
        lambda p, r: p.image(r, "v1", _config(), _layers(p, r, MAX_LAYERS + 1)),
        f"layers has {MAX_LAYERS + 1} entries",
    ),
    "too-many-platforms": (
        lambda p, r: _index(p, r, [p.image(r, "child", _config())] * (MAX_INDEX_CHILDREN + 1)),
        f"index manifests has {MAX_INDEX_CHILDREN + 1} entries",
    ),
    "too-many-labels": (
        lambda p, r: p.image(r, "v1", _labels(MAX_LABELS + 1, 1)),
        f"{MAX_LABELS + 1} labels, more than {MAX_LABELS}",
    ),
    "huge-label": (
        lambda p, r: p.image(r, "v1", _labels(1, MAX_TEXT + 1)),
        f"label 'l0' is {MAX_TEXT + 1} characters long",
    ),
    "too-much-text": (
        lambda p, r: p.image(r, "v1", _labels(20, MAX_TEXT)),
        "labels and history hold",
    ),
    "too-long-history": (
        lambda p, r: p.image(r, "v1", _config(history=[{"created_by": "RUN x"}] * 1001)),
        f"history has {MAX_HISTORY + 1} entries",
    ),
    "created-not-a-date": (
        lambda p, r: p.image(r, "v1", _config(created="last tuesday")),
        "created 'last tuesday' is not an RFC 3339 time",
    ),
    "created-year-9999": (
        lambda p, r: p.image(r, "v1", _config(created="9999-12-31T23:59:59Z")),
        "created 9999-12-31 is outside 1970-01-01..now",
    ),
    "created-not-a-string": (
        lambda p, r: p.image(r, "v1", _config(created=1700000000)),
        "created 1700000000 is not an RFC 3339 time",
    ),
    "config-not-json": (
        lambda p, r: p.image(r, "v1", b"\x00\x01 not json"),
        "is not valid JSON",
    ),
    "label-not-a-string": (
        lambda p, r: p.image(r, "v1", _config(config={"Labels": {"n": 5}})),
        "label 'n' 5 is not a string",
    ),
    "index-over-a-bad-child": (
        lambda p, r: _index(
            p,
            r,
            [
                p.image(r, "fine", _config()),
                p.image(r, "bad", _config(), _layers(p, r, 2, HUGE)),
            ],
        ),
        f"size {HUGE} is outside 0..",
    ),
}


@dataclass
class Hostile:
    registry: Registry
    pusher: RawPusher
    digests: dict[str, str]  # repository -> digest of its tag v1, good and hostile alike


def hostile_repository(case: str) -> str:
    return f"bad/{case}"


@pytest.fixture(scope="module")
def hostile(template_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hostile]:
    workdir = tmp_path_factory.mktemp("hostile")
    port = free_port()
    app = make_app(template_dir, workdir / "data", PORTUS_REGISTRY_URL=f"http://127.0.0.1:{port}")
    config = yaml.safe_load(registry_config(app, workdir, "--listen", f"127.0.0.1:{port}"))
    del config["notifications"]  # nothing listens: the tests record the pushes themselves
    with Registry(yaml.safe_dump(config), workdir / "registry") as registry, app.app_context():

        def token_for(repository: str) -> str:
            access = [{"type": "repository", "name": repository, "actions": ["pull", "push"]}]
            return portus().issue("root", access).token

        pusher = RawPusher(registry.url, token_for)
        digests = {}
        for name in GOOD:
            layout = workdir / name
            build_image_layout(layout, "v1", files={"f": name.encode()}, labels={"repo": name})
            digests[name] = pusher.layout(name, "v1", layout)
        for case, (push, _) in POISONS.items():
            digests[hostile_repository(case)] = push(pusher, hostile_repository(case))
        app.appbuilder.session.remove()
        yield Hostile(registry, pusher, digests)


@pytest.fixture
def local_app(hostile: Hostile, template_dir: Path, tmp_path: Path) -> Iterator[Flask]:
    """A fresh database whose tags point at every digest of the registry, none described yet."""
    app = make_app(template_dir, tmp_path / "data", PORTUS_REGISTRY_URL=hostile.registry.url)
    with app.app_context():
        add_user(app, *ADMIN, admin=True)
        session = app.appbuilder.session
        pushes = [
            repositories.Push(name, "v1", digest, None, "root", LONG_AGO)
            for name, digest in hostile.digests.items()
        ]
        repositories.record_pushes(session, pushes)
        session.commit()
        yield app
        session.remove()


def tag_of(session: Session, name: str) -> Tag:
    session.expire_all()
    tag = session.scalar(select(Tag).join(Repository).where(Repository.name == name))
    assert tag is not None
    return tag


def batch_around(hostile: Hostile, middle: str) -> list[list[str]]:
    """The hostile digest between two good ones, as the enrich task receives its batch."""
    names = [GOOD[0], middle, GOOD[1]]
    return [[name, hostile.digests[name]] for name in names]


def assert_good_described(session: Session) -> None:
    for name in GOOD:
        tag = tag_of(session, name)
        assert tag.enriched and not tag.enrich_failed, (name, tag.enrich_error)
        assert tag.size and tag.platforms == ["linux/amd64"]
        assert tag.labels == {"repo": name}


def _sweep(session: Session) -> list[tuple[str, str]]:
    collected: list[tuple[str, str]] = []

    def enqueue(pairs: Iterable[tuple[str, str]]) -> int:
        collected.extend(pairs)
        return len(collected)

    enrichment.sweep(session, enqueue, dt.timedelta(seconds=1))
    return collected


@pytest.mark.parametrize("case", sorted(POISONS))
def test_a_hostile_digest_fails_alone(local_app: Flask, hostile: Hostile, case: str) -> None:
    session = local_app.appbuilder.session
    name = hostile_repository(case)
    result = enrich_digests.apply(args=(batch_around(hostile, name),))
    assert result.successful(), result.traceback
    assert result.get() == len(GOOD)

    assert_good_described(session)
    tag = tag_of(session, name)
    assert tag.enrich_failed
    assert POISONS[case][1] in (tag.enrich_error or "")
    assert hostile.registry.url not in (tag.enrich_error or "")
    assert (tag.size, tag.created, tag.platforms, tag.labels, tag.details) == (
        None,
        None,
        [],
        {},
        {},
    )
    # Done with: the sweep does not send it again (nor the good ones).
    assert (name, hostile.digests[name]) not in _sweep(session)


def test_the_failure_is_on_the_tag_page_and_in_doctor_and_not_waiting(
    local_app: Flask, hostile: Hostile
) -> None:
    name = hostile_repository("huge-sizes")
    enrich_digests.apply(args=(batch_around(hostile, name),)).get()

    client = local_app.test_client()
    login = client.post("/login/", data={"username": ADMIN[0], "password": ADMIN[1]})
    assert login.status_code == 302
    page = client.get(f"/registry/tags/{name}/v1").get_data(as_text=True)
    assert 'id="portus-enrich-error"' in page
    assert f"could not be described: image {hostile.digests[name]}: layer #0: size {HUGE}" in page
    assert "being fetched from the registry" not in page
    listing = client.get(f"/registry/repositories/{name}").get_data(as_text=True)
    assert "not described" in listing and "pending" not in listing

    doctor = local_app.test_cli_runner().invoke(args=["portus", "doctor"])
    lines = {line.split(":", 1)[0]: line for line in doctor.output.splitlines()}
    assert lines["FAIL enrichment failures"].startswith(
        f"FAIL enrichment failures: 1 tags could not be described, latest: {name}:v1 (image "
    )
    # Waiting: every tag of the database but the three of the batch; the failed one is not.
    waiting = len(hostile.digests) - 3
    assert lines["FAIL enrichment backlog"] == (
        f"FAIL enrichment backlog: {waiting} tags waiting for a worker"
    )

    shown = json.loads(
        local_app.test_cli_runner()
        .invoke(args=["portus", "repo", "show", f"{name}:v1", "--json"])
        .output
    )
    assert shown["enriched"] and shown["enrich_failed"]
    assert f"size {HUGE}" in shown["enrich_error"]


def test_a_database_error_on_one_row_fails_that_digest_alone(
    local_app: Flask, hostile: Hostile
) -> None:
    """The database itself refuses to store one digest's details (here a trigger, as a column
    too narrow would on PostgreSQL): that digest is failed with the database's words."""
    session = local_app.appbuilder.session
    digest = hostile.digests[GOOD[1]]  # a digest: hex only, safe inside the statement
    session.execute(
        text(
            "CREATE TRIGGER refuse BEFORE UPDATE OF size ON portus_tag "
            f"WHEN NEW.digest = '{digest}' "
            "BEGIN SELECT RAISE(ABORT, 'refused by a trigger'); END"
        )
    )
    session.commit()
    batch = [[GOOD[1], hostile.digests[GOOD[1]]], [GOOD[0], hostile.digests[GOOD[0]]]]
    assert enrich_digests.apply(args=(batch,)).get() == 1
    assert tag_of(session, GOOD[0]).enriched and not tag_of(session, GOOD[0]).enrich_failed
    failed = tag_of(session, GOOD[1])
    assert failed.enrich_failed
    assert failed.enrich_error == (
        "the database refused its details: IntegrityError: refused by a trigger"
    )


def test_an_unexpected_error_fails_that_digest_alone(
    local_app: Flask, hostile: Hostile, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug (no user can cause one on purpose, so it is injected) is this digest's alone."""
    session = local_app.appbuilder.session
    real = repositories.details_json
    victim = hostile.digests[GOOD[0]]

    def buggy(details: Any) -> dict[str, Any]:
        if details.digest == victim:
            raise KeyError("a bug")
        return real(details)

    monkeypatch.setattr(repositories, "details_json", buggy)
    batch = [[GOOD[0], victim], [GOOD[1], hostile.digests[GOOD[1]]]]
    assert enrich_digests.apply(args=(batch,)).get() == 1
    assert tag_of(session, GOOD[1]).enriched and not tag_of(session, GOOD[1]).enrich_failed
    failed = tag_of(session, GOOD[0])
    assert failed.enrich_failed and failed.enrich_error == "unexpected error: KeyError: 'a bug'"


def test_a_tag_moved_off_a_failed_digest_is_described_again(
    local_app: Flask, hostile: Hostile
) -> None:
    session = local_app.appbuilder.session
    name = hostile_repository("config-not-json")
    enrich_digests.apply(args=(batch_around(hostile, name),)).get()
    assert tag_of(session, name).enrich_failed

    good = hostile.pusher.image(name, "fixed", _config())
    repositories.record_pushes(
        session, [repositories.Push(name, "v1", good, None, "root", utcnow())]
    )
    session.commit()
    moved = tag_of(session, name)
    assert not moved.enriched and not moved.enrich_failed  # waiting: the old reason is not shown
    assert enrichment.enrich(session, portus().registry_client(), name, good) == 1
    described = tag_of(session, name)
    assert described.enriched and described.enrich_error is None and described.size


def test_a_registry_refusing_our_tokens_leaves_every_tag_waiting(
    local_app: Flask, hostile: Hostile
) -> None:
    """Not the digests' fault (doctor names the trust problem): nothing is marked failed, so
    they are described once the setting is fixed."""
    session = local_app.appbuilder.session
    untrusted = RegistryClient(hostile.registry.url, lambda _scopes: "not-a-token")
    for name in [*GOOD, hostile_repository("huge-sizes")]:
        assert enrichment.enrich(session, untrusted, name, hostile.digests[name]) == 0
        tag = tag_of(session, name)
        assert not tag.enriched and tag.enrich_error is None
    assert len(_sweep(session)) == len(hostile.digests)


def test_a_registry_outage_is_retried_and_fails_nothing(
    hostile: Hostile, template_dir: Path, tmp_path: Path
) -> None:
    app = make_app(
        template_dir,
        tmp_path / "data",
        PORTUS_REGISTRY_URL=f"http://127.0.0.1:{free_port()}",  # nothing listens
        PORTUS_REGISTRY_TIMEOUT="1",
    )
    with app.app_context():
        session = app.appbuilder.session
        pushes = [
            repositories.Push(name, "v1", digest, None, "root", LONG_AGO)
            for name, digest in hostile.digests.items()
        ]
        repositories.record_pushes(session, pushes)
        session.commit()
        batch = batch_around(hostile, hostile_repository("huge-sizes"))
        result = enrich_digests.apply(args=(batch,))
        assert isinstance(result.result, RegistryUnavailable)
        assert result.get(propagate=False) is not None
        for name in [*GOOD, hostile_repository("huge-sizes")]:
            tag = tag_of(session, name)
            assert not tag.enriched and tag.enrich_error is None
        session.remove()
