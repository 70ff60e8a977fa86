"""A webhook receiver on loopback for tests: records every request; each path's answers are
scripted (a list of statuses, the last one repeating), and `/hang` never answers until
released."""

from __future__ import annotations

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

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()
