"""A webhook receiver on loopback whose behaviour is chosen by path, recording every request.

/ok/<x> 200 · /flaky3/<x> 500 three times, then 200 · /down/<x> always 500 · /gone/<x> 410 ·
/slow/<x> answers after 8 s the first time (the worker times out), then 200 · anything
else 404.
"""

import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int


@dataclass
class Receiver:
    url: str
    requests: list[Received] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def for_path(self, path: str) -> list[Received]:
        return [r for r in self.requests if r.path == path]


def _status(kind: str, attempt: int) -> int:
    if kind == "flaky3":
        return 500 if attempt <= 3 else 200
    return {"ok": 200, "down": 500, "gone": 410, "slow": 200}.get(kind, 404)


@contextmanager
def running_receiver() -> Iterator[Receiver]:
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            return

        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            with lock:
                receiver.counts[self.path] += 1
                attempt = receiver.counts[self.path]
            kind = self.path.split("/")[1]
            if kind == "slow" and attempt == 1:
                time.sleep(8)
            status = _status(kind, attempt)
            with lock:
                receiver.requests.append(Received(self.path, dict(self.headers), body, status))
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver = Receiver(url=f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
