"""A real TCP proxy on a free loopback port between a client and a server.

It counts the connections open through it at once (how many the client really used in parallel) and
the bytes the client sent; it can hold the client's bytes once a number of them went through (so a test
can kill the client mid-upload at a known point) and cut every connection (a dropped network).
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field


@dataclass
class CountingProxy:
    """Forwards every connection to ``127.0.0.1:target_port``; ``most_at_once`` is the peak of open ones."""

    target_port: int
    hold_after: int | None = None  # client bytes let through before the rest is held back
    port: int = 0
    most_at_once: int = 0
    sent: int = 0  # bytes the client sent on to the server
    _open: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _listener: socket.socket | None = None
    _sockets: list[socket.socket] = field(default_factory=list)
    _cut: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> CountingProxy:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def cut(self) -> None:
        """Close every connection, as a dropped network would."""
        self._cut.set()
        with self._lock:
            for s in self._sockets:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def stop(self) -> None:
        self.cut()
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
                self._sockets += [client, upstream]
            ends = [2]
            threading.Thread(target=self._pipe, args=(client, upstream, ends, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, ends, False), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, ends: list[int], from_client: bool) -> None:
        try:
            while data := src.recv(1 << 16):
                if from_client and self.hold_after is not None:
                    with self._lock:
                        allowed = max(0, self.hold_after - self.sent)
                    if len(data) > allowed:
                        dst.sendall(data[:allowed])
                        with self._lock:
                            self.sent += allowed
                        self._cut.wait()  # held back until the connection is cut
                        return
                dst.sendall(data)
                if from_client:
                    with self._lock:
                        self.sent += len(data)
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
