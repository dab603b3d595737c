"""A registry that hangs: a real TCP server that accepts every connection and never answers."""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType
from typing import Self


class HangingServer:
    """Listens on a loopback port, accepts, reads nothing and sends nothing until stopped: what a
    wedged registry (or a firewall that swallows packets after the handshake) looks like to a
    client. ``accepted`` counts the connections taken."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=128)
        self._listener.settimeout(0.05)  # so the accept loop sees stop() promptly
        self.port = int(self._listener.getsockname()[1])
        self._held: list[socket.socket] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="hanging-server", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def accepted(self) -> int:
        with self._lock:
            return len(self._held)

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(5)
        self._listener.close()
        with self._lock:
            for connection in self._held:
                connection.close()
            self._held.clear()

    def _accept(self) -> None:
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                connection, _ = self._listener.accept()
                with self._lock:
                    self._held.append(connection)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
