"""Real processes for end-to-end tests: a generic managed process, a registry and Redis."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

from .wait import free_port, wait_until

STOP_TIMEOUT = 10.0


class ServiceError(RuntimeError):
    """A managed process failed to start; the message ends with the tail of its log."""


class Process:
    """A child process in its own process group, output appended to ``log_path``.

    ``start()`` returns once ``ready()`` returns a truthy value (exceptions mean "not yet");
    ``stop()`` sends SIGTERM to the whole group, then SIGKILL after ``STOP_TIMEOUT`` seconds.
    A stopped process can be started again.
    """

    def __init__(
        self,
        name: str,
        args: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        log_dir: Path | None = None,
        ready: Callable[[], object] | None = None,
        startup_timeout: float = 15,
    ) -> None:
        self.name = name
        self.args = list(args)
        self.env = dict(env or {})
        self.cwd = cwd
        directory = log_dir or Path(tempfile.mkdtemp(prefix=f"{name}-"))
        self.log_path = directory / f"{name}.log"
        self.ready = ready
        self.startup_timeout = startup_timeout
        self._popen: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen else None

    @property
    def running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def start(self) -> Self:
        if self.running:
            raise ServiceError(f"{self.name} is already running (pid {self.pid})")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self._popen = subprocess.Popen(
            self.args,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=self.cwd,
            env={**os.environ, **self.env},
            start_new_session=True,
        )
        popen = self._popen
        # Stop polling as soon as the process dies; the exit is reported below.
        try:
            wait_until(
                lambda: popen.poll() is not None or (self.ready is None or self.ready()),
                timeout=self.startup_timeout,
                message=f"{self.name} did not become ready",
            )
        except AssertionError as exc:
            self.stop()
            raise ServiceError(self._failure(str(exc))) from exc
        if popen.poll() is not None:
            self.stop()
            raise ServiceError(self._failure(f"{self.name} exited with code {popen.returncode}"))
        return self

    def stop(self) -> None:
        popen, self._popen = self._popen, None
        if popen is not None:
            # The group outlives its leader if children linger, so signal it even after an exit.
            self._signal_group(popen.pid, signal.SIGTERM)
            try:
                popen.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self._signal_group(popen.pid, signal.SIGKILL)
                popen.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @staticmethod
    def _signal_group(pgid: int, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, sig)

    def _failure(self, reason: str) -> str:
        return f"{reason}\n--- {self.log_path} (tail) ---\n{self.log_tail()}"


def registry_base_config(port: int, storage_dir: Path) -> dict[str, Any]:
    """A plain docker-registry config (no auth): filesystem storage with deletes enabled."""
    return {
        "version": 0.1,
        "log": {"level": "info"},
        "storage": {
            "filesystem": {"rootdirectory": str(storage_dir)},
            "delete": {"enabled": True},
        },
        "http": {"addr": f"127.0.0.1:{port}"},
        "health": {"storagedriver": {"enabled": False}},
    }


_ADDR = re.compile(r"""["']?addr["']?\s*:\s*["']?[\w.\-]*:(\d+)""")


class Registry(Process):
    """``docker-registry serve config.yml`` run in ``workdir``.

    PyYAML is not a dependency, so callers write the config as JSON (``json.dumps`` of
    ``registry_base_config(...)`` plus their additions): JSON is valid YAML. The port is read from
    ``http.addr``, which must be set.
    """

    def __init__(self, config_yaml: str, workdir: Path, *, startup_timeout: float = 15) -> None:
        match = _ADDR.search(config_yaml)
        if match is None:
            raise ValueError("registry config must set http.addr to HOST:PORT")
        self.port = int(match.group(1))
        self.workdir = workdir
        self.config_path = workdir / "config.yml"
        self.config_yaml = config_yaml
        super().__init__(
            "registry",
            ["docker-registry", "serve", str(self.config_path)],
            cwd=workdir,
            log_dir=workdir,
            ready=self._answers,
            startup_timeout=startup_timeout,
        )

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def start(self) -> Self:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self.config_yaml)
        return super().start()

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/v2/", timeout=2) as response:
                return bool(response.status == 200)
        except urllib.error.HTTPError as exc:
            return exc.code == 401


class Redis(Process):
    """A throw-away ``redis-server`` without persistence; keeps its port across restarts."""

    def __init__(self, workdir: Path, *, port: int | None = None) -> None:
        self.port = port or free_port()
        workdir.mkdir(parents=True, exist_ok=True)
        super().__init__(
            "redis",
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(workdir),
            ],
            cwd=workdir,
            log_dir=workdir,
            ready=self.ping,
        )

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def ping(self) -> bool:
        """True when the server answers a raw RESP PING."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")


class Postgres(Process):
    """A throw-away PostgreSQL server (Debian's `postgresql` package) on a free loopback port.

    initdb refuses to run as root, so as root the server runs as the `postgres` user in a
    directory it owns.
    """

    def __init__(self) -> None:
        self.port = free_port()
        binaries = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
        if not binaries:
            raise ServiceError("PostgreSQL is not installed (apt-get install postgresql)")
        bin_dir = binaries[-1]
        # Outside pytest's private tmp dirs: the postgres user must be able to reach it.
        self.directory = Path(tempfile.mkdtemp(prefix="portus-pg-"))
        self.directory.chmod(0o755)
        as_owner: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.directory, "postgres", "postgres")
            as_owner = ["runuser", "-u", "postgres", "--"]
        data = self.directory / "data"
        subprocess.run(
            [
                *as_owner,
                str(bin_dir / "initdb"),
                "-D",
                str(data),
                "-A",
                "trust",
                "-U",
                "portus",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
        )
        super().__init__(
            "postgres",
            [
                *as_owner,
                str(bin_dir / "postgres"),
                "-D",
                str(data),
                "-p",
                str(self.port),
                "-k",
                str(self.directory),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
            ],
            log_dir=Path(tempfile.mkdtemp(prefix="portus-pg-log-")),
            ready=self._accepts,
            startup_timeout=30,
        )

    def create_database(self, name: str) -> str:
        """A new empty database; returns its SQLAlchemy URL."""
        connection = self._connect()
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"')
        connection.close()
        return f"postgresql+psycopg2://portus@127.0.0.1:{self.port}/{name}"

    def _connect(self) -> Any:
        import psycopg2  # the test extra's driver; only this service needs it

        return psycopg2.connect(host="127.0.0.1", port=self.port, user="portus", dbname="postgres")

    def _accepts(self) -> bool:
        self._connect().close()
        return True

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


class Containerd(Process):
    """A containerd daemon of its own (Debian's `containerd`), for `ctr` to pull through: root,
    state and sockets in a temporary directory, the CRI plugin off, so it touches nothing of the
    machine's. containerd needs root, as the distribution packages run it."""

    def __init__(self) -> None:
        if shutil.which("containerd") is None or shutil.which("ctr") is None:
            raise ServiceError("containerd is not installed (apt-get install containerd)")
        # Outside pytest's deep tmp dirs: a unix socket path holds at most 107 bytes.
        self.directory = Path(tempfile.mkdtemp(prefix="portus-containerd-"))
        self.address = str(self.directory / "containerd.sock")
        config = self.directory / "config.toml"
        config.write_text(
            "\n".join(
                [
                    "version = 2",
                    f'root = "{self.directory / "root"}"',
                    f'state = "{self.directory / "state"}"',
                    'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
                    "[grpc]",
                    f'  address = "{self.address}"',
                    "[ttrpc]",
                    f'  address = "{self.directory / "ttrpc.sock"}"',
                    '[plugins."io.containerd.internal.v1.opt"]',
                    f'  path = "{self.directory / "opt"}"',
                ]
            )
            + "\n"
        )
        super().__init__(
            "containerd",
            ["containerd", "--config", str(config)],
            log_dir=self.directory,
            ready=self._answers,
            startup_timeout=30,
        )

    def ctr(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """`ctr ARGS` against this daemon."""
        return subprocess.run(
            ["ctr", "--address", self.address, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def _answers(self) -> bool:
        return self.ctr("version", timeout=5).returncode == 0

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)
