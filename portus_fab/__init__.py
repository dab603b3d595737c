"""portus_fab: token service, access policy and front end for a private container registry, as a
Flask-AppBuilder add-on. Enable it by listing `portus_fab.PortusManager` in `ADDON_MANAGERS`.

The package root stays light: importing `portus_fab` (or a pure module under it, such as
`portus_fab.registry.names`) imports neither FAB, nor Celery, nor the app. The manager is loaded
only when FAB asks for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from portus_fab.manager import PortusManager

__all__ = ["PortusManager"]


def __getattr__(name: str) -> Any:
    if name == "PortusManager":
        from portus_fab.manager import PortusManager

        return PortusManager
    raise AttributeError(f"module 'portus_fab' has no attribute {name!r}")
