"""The real thing: portus_fab served over HTTP, a `docker-registry` configured from the output of
`flask portus registry-config --full`, and skopeo as the client."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from tests.conftest import make_app
from tests.support.oci import build_image_layout
from tests.support.served import ThreadedServer
from tests.support.services import Registry
from tests.support.skopeo import Skopeo
from tests.support.wait import free_port


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test under tests/e2e/ is an e2e test, whatever its module says: a `pytestmark` here
    would mark nothing (pytest reads it only from test modules), and this hook sees every item
    of the session, so it marks only those in this folder."""
    here = Path(__file__).parent
    for item in items:
        if item.path.is_relative_to(here):
            item.add_marker(pytest.mark.e2e)


class ServedApp(ThreadedServer):
    """A portus_fab app answering on a loopback port from a background thread."""

    def __init__(self, app: Flask, port: int) -> None:
        super().__init__(app, port)
        self.app = app


@dataclass
class Stack:
    app: Flask
    portus_url: str
    registry: Registry
    workdir: Path

    def skopeo(self, name: str) -> Skopeo:
        """A skopeo with its own auth file (a separate 'machine' per user)."""
        directory = self.workdir / "skopeo" / name
        directory.mkdir(parents=True, exist_ok=True)
        return Skopeo(self.registry.host, directory)

    def cli(self, *args: str) -> Any:
        result = self.app.test_cli_runner().invoke(args=list(args))
        return result


def registry_config(app: Flask, workdir: Path, *args: str) -> str:
    """The output of `flask portus registry-config --full` for `app` (extra `args` appended)."""
    with app.app_context():
        result = app.test_cli_runner().invoke(
            args=[
                "portus",
                "registry-config",
                "--full",
                "--storage",
                str(workdir / "storage"),
                "--write-cert",
                str(workdir / "registry" / "portus.crt"),
                *args,
            ]
        )
        app.appbuilder.session.remove()
    assert result.exit_code == 0, result.output
    return result.output


def start_stack(template_dir: Path, workdir: Path, **overrides: Any) -> Iterator[Stack]:
    app_port, registry_port = free_port(), free_port()
    app = make_app(
        template_dir,
        workdir / "data",
        PORTUS_PUBLIC_URL=f"http://127.0.0.1:{app_port}",
        PORTUS_REGISTRY_URL=f"http://127.0.0.1:{registry_port}",
        **overrides,
    )
    registry = Registry(registry_config(app, workdir), workdir / "registry")
    with ServedApp(app, app_port) as served, registry:
        yield Stack(app, served.url, registry, workdir)


@pytest.fixture(scope="module")
def stack(template_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    yield from start_stack(template_dir, tmp_path_factory.mktemp("stack"))


@pytest.fixture(scope="session")
def image_layout(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A small single-platform OCI layout, as `oci:DIR:TAG` for skopeo copy."""
    path = tmp_path_factory.mktemp("layout")
    build_image_layout(
        path,
        "v1",
        files={"hello.txt": b"hello portus_fab\n"},
        labels={"org.opencontainers.image.title": "hello"},
    )
    return f"{path}:v1"
