"""A webhook receiver on loopback that records every request (path, headers, body, JSON) and answers
as a test tells it: 200, another status, not at all until closed (hang), after a delay, or a byte at a
time (drip), to test the sender's time-outs."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self):
        return json.loads(self.body)


class WebhookReceiver:
    def __init__(self, path: str = "/hook"):
        self.path = path
        self.requests: list[Received] = []
        self.status, self.answer = 200, b"ok"
        self.delay, self.drip, self.hanging = 0.0, 0.0, False
        self._released = threading.Event()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._lock:
                    receiver.requests.append(Received(self.path, dict(self.headers.items()), body))
                    status, answer = receiver.status, receiver.answer
                    delay, drip, hanging = receiver.delay, receiver.drip, receiver.hanging
                if hanging:
                    receiver._released.wait(60)
                    return
                time.sleep(delay)
                head = f"HTTP/1.1 {status} X\r\nContent-Length: {len(answer)}\r\nConnection: close\r\n\r\n".encode()
                try:
                    if drip:
                        for byte in head + answer:
                            self.wfile.write(bytes([byte]))
                            self.wfile.flush()
                            time.sleep(drip)
                    else:
                        self.wfile.write(head + answer)
                except OSError:
                    pass  # the sender gave up
                self.close_connection = True

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{self.path}"

    def answer_with(self, status: int, body: bytes = b"") -> None:
        with self._lock:
            self.status, self.answer, self.hanging = status, body, False

    def hang(self) -> None:
        """Read the request, then never answer (until closed)."""
        with self._lock:
            self.hanging = True

    def slow(self, delay: float = 0.0, drip: float = 0.0) -> None:
        """Answer after `delay` seconds, and then one byte every `drip` seconds."""
        with self._lock:
            self.delay, self.drip, self.hanging = delay, drip, False

    def bodies(self) -> list[dict]:
        with self._lock:
            return [r.json for r in self.requests]

    def signature_valid(self, request: Received, secret: str) -> bool:
        """Check X-Rai-Signature as a receiver would: HMAC-SHA256 of the raw body, compared in constant time."""
        expected = "sha256=" + hmac.new(secret.encode(), request.body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, request.headers.get("X-Rai-Signature", ""))

    def close(self) -> None:
        self._released.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
