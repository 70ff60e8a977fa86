"""A webhook receiver on loopback for tests: records every request; each path's answers are
scripted (a list of statuses, the last one repeating), and `/hang` never answers until
released. `Misbehaving` answers every request with bytes that never end."""

from __future__ import annotations

import socket
import ssl
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType


@dataclass(frozen=True)
class Received:
    """One request as the receiver saw it."""

    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """Start it with `with Receiver() as receiver:`; `receiver.url(path)` is where to post."""

    answers: dict[str, list[int]] = field(default_factory=dict)
    host: str = "127.0.0.1"
    port: int = 0
    tls: ssl.SSLContext | None = None  # serve HTTPS with this context
    received: list[Received] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    _served: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))

    def url(self, path: str) -> str:
        """`http://127.0.0.1:PORT/path`."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}{path}"

    def at(self, path: str) -> list[Received]:
        """What was posted to `path`, in order."""
        return [request for request in list(self.received) if request.path == path]

    def __enter__(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.received.append(Received(self.path, dict(self.headers), body))
                if self.path == "/hang":
                    receiver.release.wait(60)
                scripted = receiver.answers.get(self.path, [200])
                served = receiver._served[self.path]
                receiver._served[self.path] += 1
                self.send_response(scripted[min(served, len(scripted) - 1)])
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        if self.tls is not None:
            self._server.socket = self.tls.wrap_socket(self._server.socket, server_side=True)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()


@dataclass
class Misbehaving:
    """A receiver that reads each request, sends `head`, then `drip` one byte at a time
    (or, with no `drip`, nothing more) and never closes until the test ends."""

    head: bytes
    drip: bytes = b""
    connections: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _open: list[socket.socket] = field(default_factory=list)

    def url(self, path: str) -> str:
        """`http://127.0.0.1:PORT/path`."""
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}{path}"

    def __enter__(self) -> Misbehaving:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self._stop.set()
        self._listener.close()
        for conn in list(self._open):
            conn.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:  # closed at the end of the test
                return
            self._open.append(conn)
            self.connections += 1
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        try:
            conn.recv(65536)  # the request (small): its content does not matter here
            conn.sendall(self.head)
            for byte in self.drip:
                if self._stop.wait(0.2):
                    return
                conn.sendall(bytes([byte]))
            self._stop.wait()
        except OSError:  # the client gave up, or the test ended
            return
