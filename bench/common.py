"""What the bench scripts share: the app set-up, gunicorn, machine facts, percentiles, reports.

The scripts run as `.venv/bin/python bench/NAME.py`, so this directory is their sys.path[0] and
`from common import ...` finds this module without making bench/ a package (bench/ruff.toml tells
isort it is local). One copy keeps the committed results comparable: every script starts the
server, measures percentiles and records the machine the same way.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
GUNICORN = ROOT / ".venv" / "bin" / "gunicorn"
REGISTRY_URL = "http://registry.bench:5000"  # never contacted: the benches only need a name

# A gunicorn worker model: (--worker-class, --workers, --threads).
WorkerModel = tuple[str, int, int]


def free_port() -> int:
    """A port free right now, so a bench never collides with a dev server or another bench."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def load_average() -> str:
    """The 1/5/15-minute load, recorded at start and end because other load skews the figures."""
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def machine_facts(tools: Mapping[str, str] | None = None) -> dict[str, str]:
    """Date, CPU and versions (plus the script's own `tools`), to compare results across runs."""
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gunicorn = subprocess.run([str(GUNICORN), "--version"], capture_output=True, text=True)
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "host": platform.node(),
        "cpu": f"{cpu} x {os.cpu_count()}",
        "kernel": platform.release(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "gunicorn": gunicorn.stdout.strip() or gunicorn.stderr.strip(),
        **(tools or {}),
        "load average at start (1/5/15 min)": load_average(),
    }


def add_end_load(facts: dict[str, str]) -> None:
    """Record the load at the end too: a rise during the run means something else competed."""
    facts["load average at end (1/5/15 min)"] = load_average()


def percentile(samples: list[float], q: float) -> float:
    """Nearest-rank percentile without interpolation, as all committed results were computed."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def require_tool(name: str) -> bool:
    """Whether the Debian package `name` (wrk, redis-server) is installed; says how if not."""
    if shutil.which(name) is None:
        print(f"{name} is not installed: apt-get install -y {name}", file=sys.stderr)
        return False
    return True


def add_models_option(
    parser: argparse.ArgumentParser, models: Mapping[str, WorkerModel], default: str
) -> None:
    """--models: a comma-separated choice of the script's gunicorn worker models."""
    parser.add_argument("--models", default=default, help=f"of {', '.join(models)}")


def selected_models(
    parser: argparse.ArgumentParser, text: str, models: Mapping[str, WorkerModel]
) -> list[str]:
    """The --models names in order; an unknown one is a usage error (exits), not a KeyError."""
    names = [m.strip() for m in text.split(",") if m.strip()]
    if unknown := [m for m in names if m not in models]:
        parser.error(f"unknown models {unknown}; choose from {list(models)}")
    return names


def set_portus_env(
    data_dir: Path,
    broker_url: str,
    extra: Mapping[str, str] | None = None,
    unset: Iterable[str] = (),
) -> None:
    """Point this process and the gunicorn it starts at the temporary data dir (SQLite) only.

    PORTUS_DATABASE_URL is removed (and `unset`, to get the defaults) so a developer's own
    settings cannot send the bench to another database; no embedded worker takes broker tasks.
    """
    os.environ.update(
        {
            "PORTUS_DATA_DIR": str(data_dir),
            "PORTUS_REGISTRY_URL": REGISTRY_URL,
            "PORTUS_BROKER_URL": broker_url,
            "PORTUS_EMBEDDED_WORKER": "false",
            **(extra or {}),
        }
    )
    for name in ("PORTUS_DATABASE_URL", *unset):
        os.environ.pop(name, None)


def create_app(data_dir: Path, overrides: Mapping[str, Any] | None = None) -> Any:
    """`run.create_app`, checked to use the temporary data dir's database and nothing else."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from run import create_app as make_app

    app = make_app(overrides)
    assert app.config["SQLALCHEMY_DATABASE_URI"].endswith(f"{data_dir}/portus.db")
    return app


def add_user(app: Any, username: str, first_name: str, password: str) -> Any:
    """A plain `User` through FAB's own code, so the password is hashed as in production."""
    sm = app.appbuilder.sm
    return sm.add_user(
        username, first_name, "Bench", f"{username}@bench.test", sm.find_role("User"), password
    )


class Managed:
    """A child process in its own session: stop() signals that group and nothing else."""

    def __init__(
        self, name: str, args: list[str], log_path: Path, env: Mapping[str, str] | None = None
    ) -> None:
        self.name, self.args, self.log_path = name, args, log_path
        self.env = dict(env or {})
        self.popen: subprocess.Popen[bytes] | None = None

    def start(
        self,
        ready: Callable[[], object],
        timeout: float = 60,
        transient: tuple[type[BaseException], ...] = (OSError,),
    ) -> None:
        """Start and poll `ready` until true; `transient` errors mean "not listening yet"."""
        with self.log_path.open("ab") as log:
            self.popen = subprocess.Popen(
                self.args,
                cwd=ROOT,
                env={**os.environ, **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.popen.poll() is None:
            try:
                if ready():
                    return
            except transient:
                pass
            time.sleep(0.2)
        tail = self.log_path.read_text(errors="replace")[-3000:]
        self.stop()
        raise RuntimeError(f"{self.name} did not start:\n{tail}")

    def stop(self) -> None:
        """SIGTERM the group, SIGKILL after 20 s: a bench must not leave servers behind."""
        popen, self.popen = self.popen, None
        if popen is None:
            return
        os.killpg(popen.pid, signal.SIGTERM)  # the group this script started, nothing else
        try:
            popen.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(popen.pid, signal.SIGKILL)
            popen.wait()


class Gunicorn(Managed):
    """gunicorn serving `run:create_app()` on a free port; `with` waits until `ready(base)`."""

    def __init__(
        self,
        log_path: Path,
        model: WorkerModel,
        ready: Callable[[str], object],
        name: str = "gunicorn",
        backlog: int | None = None,
    ) -> None:
        worker_class, workers, threads = model
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.ready = ready
        args = [
            str(GUNICORN),
            "--bind",
            f"127.0.0.1:{self.port}",
            "--workers",
            str(workers),
            "--worker-class",
            worker_class,
            "--threads",
            str(threads),
            *(["--backlog", str(backlog)] if backlog is not None else []),
            "--log-level",
            "warning",
            "run:create_app()",
        ]
        super().__init__(name, args, log_path, {"PYTHONPATH": str(ROOT)})

    def __enter__(self) -> Gunicorn:
        self.start(lambda: self.ready(self.base))
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def report_header(script: str, subject: str, facts: Mapping[str, str]) -> list[str]:
    """The opening of every bench/results/*.md: what produced it, when, and on which machine."""
    return [
        f"# {script}: {subject}",
        "",
        f"Produced by `.venv/bin/python bench/{script}.py` on {facts['date']}.",
        "",
        "| machine | |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in facts.items()],
        "",
    ]


def write_report(path: Path, text: str) -> None:
    """Write the results file and echo it, so the terminal shows what was committed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    print()
    print(text)
    print(f"written to {path.relative_to(ROOT)}")
