"""A real TCP proxy on a free loopback port that counts the connections open through it at once.

Put between a client and a server, it shows how many connections the client really used in parallel.
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field


@dataclass
class CountingProxy:
    """Forwards every connection to ``127.0.0.1:target_port``; ``most_at_once`` is the peak of open ones."""

    target_port: int
    port: int = 0
    most_at_once: int = 0
    _open: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _listener: socket.socket | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> CountingProxy:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def reset(self) -> None:
        with self._lock:
            self.most_at_once = self._open

    def stop(self) -> None:
        if self._listener is not None:
            self._listener.close()

    def _accept(self) -> None:
        assert self._listener is not None
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self._lock:
                self._open += 1
                self.most_at_once = max(self.most_at_once, self._open)
            ends = [2]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(src, dst, ends), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, ends: list[int]) -> None:
        try:
            while data := src.recv(1 << 16):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            try:
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            with self._lock:
                ends[0] -= 1
                if ends[0] == 0:  # both directions ended: the connection is closed
                    self._open -= 1
                    src.close()
                    dst.close()
