"""The registry client's bounds against a registry that accepts connections and never answers,
and what its errors let anyone but an admin know."""

from __future__ import annotations

import time

import pytest

from portus_fab.registry.client import RegistryClient, RegistryError, RegistryUnavailable
from tests.support.hanging import HangingServer
from tests.support.wait import free_port

DIGESTS = [f"sha256:{n:064x}" for n in range(1, 6)]


def client(url: str, *, timeout: float, deadline: float | None) -> RegistryClient:
    return RegistryClient(url, lambda scopes: "token", timeout=timeout, deadline=deadline)


def test_one_deadline_bounds_every_request_of_a_client() -> None:
    with HangingServer() as registry:
        hung = client(registry.url, timeout=0.3, deadline=1.0)
        started = time.monotonic()
        errors = []
        for digest in DIGESTS:
            with pytest.raises(RegistryUnavailable) as caught:
                hung.delete_manifest("alice/app", digest)
            errors.append(str(caught.value))
        elapsed = time.monotonic() - started
        # Five requests of 0.3 s each would take 1.5 s: the deadline cuts them to 1 s.
        assert elapsed < 1.0 + 0.3, elapsed
        assert registry.accepted <= 4
        assert "PORTUS_REGISTRY_DEADLINE" in errors[-1]


def test_without_a_deadline_each_request_gets_its_timeout() -> None:
    with HangingServer() as registry:
        started = time.monotonic()
        with pytest.raises(RegistryUnavailable):
            client(registry.url, timeout=0.3, deadline=None).challenge()
        assert 0.3 <= time.monotonic() - started < 1.3


def unavailable(url: str) -> RegistryUnavailable:
    with pytest.raises(RegistryUnavailable) as caught:
        client(url, timeout=0.3, deadline=1.0).ping()
    return caught.value


def test_public_messages_name_no_host_and_no_library_text() -> None:
    with HangingServer() as registry:
        hung = unavailable(registry.url)
    refused_url = f"http://127.0.0.1:{free_port()}"
    for url, error in ((registry.url, hung), (refused_url, unavailable(refused_url))):
        assert url in str(error)  # the detail, for admins and the log
        assert error.public_message == "the registry did not answer; try again later"


def test_a_refusal_is_told_by_status_and_code_only() -> None:
    error = RegistryError(
        "DELETE http://registry.internal:5000/v2/a/manifests/x -> HTTP 405 Method Not Allowed",
        405,
        "UNSUPPORTED",
    )
    assert error.public_message == "the registry refused (HTTP 405 UNSUPPORTED)"
    assert RegistryError("GET http://registry.internal:5000/v2/: not JSON").public_message == (
        "the registry's answer made no sense"
    )
