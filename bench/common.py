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
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # the app (run.py) and the tests' process helpers
    sys.path.insert(0, str(ROOT))

from tests.support.services import Process, Redis  # noqa: E402,F401 - Redis: for the scripts
from tests.support.wait import free_port  # noqa: E402 - needs ROOT on sys.path

GUNICORN = ROOT / ".venv" / "bin" / "gunicorn"
REGISTRY_URL = "http://registry.bench:5000"  # never contacted: the benches only need a name

# A gunicorn worker model: (--worker-class, --workers, --threads).
WorkerModel = tuple[str, int, int]


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


class Gunicorn(Process):
    """gunicorn serving `run:create_app()` on a free port, logging to `log_path`; `with` waits
    until `ready(base)` (the tests' Process: its own process group, stopped on exit)."""

    def __init__(
        self,
        log_path: Path,
        model: WorkerModel,
        ready: Callable[[str], object],
        backlog: int | None = None,
    ) -> None:
        worker_class, workers, threads = model
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
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
        super().__init__(
            log_path.stem,
            args,
            env={"PYTHONPATH": str(ROOT)},
            cwd=ROOT,
            log_dir=log_path.parent,
            ready=lambda: ready(self.base),
            startup_timeout=60,
        )


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
