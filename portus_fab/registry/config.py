"""The registry configuration an admin needs to point a `docker-registry` at this instance."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from portus_fab.registry.manifests import BLOB_MEDIA_TYPE
from portus_fab.settings import Settings


def auth_and_notifications(settings: Settings, rootcertbundle: str | Path) -> dict[str, Any]:
    """The `auth` and `notifications` sections, to merge into the registry's config.yml."""
    return {
        "auth": {
            "token": {
                "realm": settings.token_realm,
                "service": settings.registry_service,
                "issuer": settings.token_issuer,
                "rootcertbundle": str(rootcertbundle),
            }
        },
        "notifications": {
            "endpoints": [
                {
                    "name": "portus_fab",
                    "url": settings.webhook_url,
                    "headers": {"Authorization": [f"Bearer {settings.webhook_secret}"]},
                    "timeout": "2s",
                    "threshold": 5,
                    "backoff": "1s",
                    # Blob events carry no tag and would only add load.
                    "ignoredmediatypes": [BLOB_MEDIA_TYPE],
                }
            ]
        },
    }


def complete_config(
    settings: Settings, rootcertbundle: str | Path, storage_dir: str | Path, listen: str
) -> dict[str, Any]:
    """A whole config.yml that runs as it is (filesystem storage, deletes enabled)."""
    return {
        "version": 0.1,
        "log": {"level": "info", "fields": {"service": "registry"}},
        "storage": {
            "filesystem": {"rootdirectory": str(storage_dir)},
            "delete": {"enabled": True},
            "cache": {"blobdescriptor": "inmemory"},
        },
        "http": {"addr": listen, "headers": {"X-Content-Type-Options": ["nosniff"]}},
        "health": {"storagedriver": {"enabled": True, "interval": "10s", "threshold": 3}},
        **auth_and_notifications(settings, rootcertbundle),
    }
