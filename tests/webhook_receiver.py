"""A real HTTP server on loopback that plays a CRM receiving remedies, with failure modes."""

from __future__ import annotations

import hmac
import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

from accord.remedies.adapters import sign


class Receiver:
    def __init__(self, secret: bytes) -> None:
        self.secret = secret
        self.applied: dict[str, dict[str, Any]] = {}
        self.applications = Counter[str]()
        """How many times each key was actually carried out (must stay at 1)."""
        self.requests = Counter[str]()
        self.fail_next = 0
        """Answer 503 to this many POSTs."""
        self.slow_next = 0
        """Apply, then answer only after this many seconds (past the client's timeout)."""
        self.refuse_with: int | None = None
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/accord/remedies"

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting (the timeout case)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                key = self.headers["Idempotency-Key"]
                expected = sign(receiver.secret, self.headers["X-Accord-Timestamp"], body)
                if not hmac.compare_digest(expected, self.headers["X-Accord-Signature"] or ""):
                    self._answer(401, {"error": "bad signature"})
                    return
                with receiver.lock:
                    receiver.requests[key] += 1
                    if receiver.refuse_with is not None:
                        status = receiver.refuse_with
                        self._answer(status, {"error": "territory is frozen"})
                        return
                    if receiver.fail_next > 0:
                        receiver.fail_next -= 1
                        self._answer(503, {"error": "maintenance"})
                        return
                    if key in receiver.applied:
                        self._answer(409, {"reference": receiver.applied[key]["reference"]})
                        return
                    receiver.applications[key] += 1
                    reference = f"CRM-{len(receiver.applied) + 1}"
                    receiver.applied[key] = {"reference": reference, **json.loads(body)}
                    delay, receiver.slow_next = receiver.slow_next, 0
                if delay:
                    time.sleep(delay)
                self._answer(201, {"reference": reference})

            def do_GET(self) -> None:
                key = unquote(self.path.rsplit("/", 1)[-1])
                with receiver.lock:
                    found = receiver.applied.get(key)
                if found is None:
                    self._answer(404, {"status": "unknown"})
                else:
                    self._answer(200, {"status": "applied", "reference": found["reference"]})

        return Handler
