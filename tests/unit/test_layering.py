"""The package's layering holds: pure modules import nothing heavy, and no import cycle hides
behind import order (the contracts themselves run as `lint-imports` in the test command)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ["flask", "flask_appbuilder", "celery", "sqlalchemy", "run", "portus_fab.manager"]


def modules_loaded_by(module: str) -> set[str]:
    code = f"import json, sys; import {module}; print(json.dumps(sorted(sys.modules)))"
    output = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    return set(json.loads(output))


@pytest.mark.parametrize(
    "module",
    ["portus_fab", "portus_fab.registry.names", "portus_fab.registry.manifests"],
)
def test_pure_modules_import_nothing_heavy(module: str) -> None:
    loaded = modules_loaded_by(module)
    assert not loaded & set(HEAVY), f"{module} pulls in {sorted(loaded & set(HEAVY))}"


def test_the_manager_is_found_where_fab_looks() -> None:
    from flask_appbuilder.basemanager import BaseManager
    from werkzeug.utils import import_string

    assert issubclass(import_string("portus_fab.PortusManager"), BaseManager)


@pytest.mark.parametrize(
    "module",
    [
        "portus_fab.catalog.applier",
        "portus_fab.tasks.catalog",
        "portus_fab.core",
        "portus_fab.ops.diagnostics",
        "portus_fab.views.registry.token",
        "portus_fab.cli",
    ],
)
def test_each_module_imports_first_on_its_own(module: str) -> None:
    # A cycle that only works in one import order fails when its other end is imported first.
    subprocess.run([sys.executable, "-c", f"import {module}"], check=True)
