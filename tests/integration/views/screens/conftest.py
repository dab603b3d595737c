"""The world every screen test starts from (tests/support/screens.py)."""

from __future__ import annotations

import pytest
from flask import Flask

from tests.support.screens import World, build_world


@pytest.fixture
def world(app: Flask) -> World:
    return build_world(app)
