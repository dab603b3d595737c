"""The lockout as a real client shows it: skopeo against the real registry and a served app.
A lock answers the token request 401 with its message, which skopeo shows on a pull or push
("unable to retrieve auth token: invalid username/password: unauthorized: ... locked for ...");
`skopeo login` says only "invalid username/password" for any 401 (and for a 429 only "too many
requests to registry": containers/image drops a 429's body everywhere), so 401 it is."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import add_user
from tests.e2e.conftest import Stack, start_stack

pytestmark = pytest.mark.e2e

THRESHOLD = 2


@pytest.fixture(scope="module")
def stack(template_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    yield from start_stack(
        template_dir,
        tmp_path_factory.mktemp("lockout"),
        PORTUS_LOCKOUT_ACCOUNT_THRESHOLD=str(THRESHOLD),
    )


def test_skopeo_shows_the_lock_and_the_right_password_gets_nowhere(stack: Stack) -> None:
    with stack.app.app_context():
        add_user(stack.app, "lena", "lena-pw")
        stack.app.appbuilder.session.remove()
    client = stack.skopeo("lena")
    for _ in range(THRESHOLD):
        assert client.login("lena", "wrong").returncode != 0
    assert client.login("lena", "lena-pw").returncode != 0  # the right password, locked
    pull = client.inspect("lena/app:v1", creds=("lena", "lena-pw"))
    assert pull.returncode != 0
    assert "sign-in for 'lena' from 127.0.0.1 is locked for" in pull.stderr, pull.stderr
    with stack.app.app_context():
        cleared = stack.cli("portus", "lockout", "clear", "--user", "lena")
        stack.app.appbuilder.session.remove()
    assert cleared.output.strip() == "lifted 1 lock", cleared.output
    assert client.login("lena", "lena-pw").returncode == 0
