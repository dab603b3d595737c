"""`python run.py` as a user starts it, on a fresh data dir, and the processes it leaves."""

from __future__ import annotations

import sys
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from .services import Process
from .wait import free_port

ROOT = Path(__file__).resolve().parents[2]

# The embedded defaults, whatever the developer's environment says ("" counts as unset).
UNSET = ("PORTUS_DATABASE_URL", "PORTUS_BROKER_URL", "PORTUS_SECRET_KEY", "PORTUS_WEBHOOK_SECRET")


class RunPy(Process):
    """`python run.py` in its own process group; ready once it answers `/login/`.

    `umask` is the one the user's shell would hand it (run.py must not depend on it).
    """

    def __init__(
        self,
        data_dir: Path,
        log_dir: Path,
        env: Mapping[str, str] | None = None,
        umask: int = 0o022,
    ) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        super().__init__(
            "run",
            ["sh", "-c", f'umask {umask:03o} && exec "$0" run.py', sys.executable],
            env={
                **dict.fromkeys(UNSET, ""),
                "PORTUS_DATA_DIR": str(data_dir),
                "PORTUS_HOST": "127.0.0.1",
                "PORTUS_PORT": str(self.port),
                "PORTUS_REGISTRY_URL": f"http://127.0.0.1:{free_port()}",  # nothing listens
                "PORTUS_EMBEDDED_WORKER": "true",
                **(env or {}),
            },
            cwd=ROOT,
            log_dir=log_dir,
            ready=self._answers,
            startup_timeout=90,
        )

    def _answers(self) -> bool:
        with urllib.request.urlopen(f"{self.base}/login/", timeout=5) as answer:
            return answer.status == 200


def group_members(pgid: int) -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line) of every process of group `pgid` still running
    (a zombie has exited: only its exit status is left for its parent to collect)."""
    members: dict[int, tuple[int, str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:  # gone meanwhile
            continue
        # The command name in parentheses may hold anything: the fields after it are fixed.
        state, ppid, pgrp = stat.rsplit(")", 1)[1].split()[:3]
        if int(pgrp) == pgid and state != "Z":
            members[int(entry.name)] = (int(ppid), cmdline.replace(b"\0", b" ").decode())
    return members
