"""A throwaway webhook endpoint on 127.0.0.1 that records what the sender posts.

For tests of the sender (and for looking at real payloads locally). Answers are scripted:
``receiver.respond_with(500, 500, 200)`` answers the next three requests with those statuses,
then ``default_status``.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from ttma_sandbox.server import check_loopback

StartResponse = Callable[..., Any]


@dataclass(frozen=True)
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    answered: int


class _SilentHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None


@dataclass
class WebhookReceiver:
    url: str
    default_status: int = 200
    # Called with each request before it is answered (e.g. to move the sandbox clock).
    on_request: Callable[[ReceivedRequest], None] | None = field(default=None, repr=False)
    _server: BaseWSGIServer | None = field(default=None, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)
    _lock: threading.Condition = field(default_factory=threading.Condition, repr=False)
    _script: deque[int] = field(default_factory=deque, repr=False)
    _received: list[ReceivedRequest] = field(default_factory=list, repr=False)

    def respond_with(self, *statuses: int) -> None:
        """Answer the next requests with these statuses, in order."""
        with self._lock:
            self._script.extend(statuses)

    @property
    def received(self) -> list[ReceivedRequest]:
        with self._lock:
            return list(self._received)

    def wait_for(self, count: int, timeout: float = 5.0) -> list[ReceivedRequest]:
        """Wait until ``count`` requests arrived; return them (TimeoutError otherwise)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self._received) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"{len(self._received)} of {count} requests received")
                self._lock.wait(remaining)
            return list(self._received)

    def clear(self) -> None:
        with self._lock:
            self._received.clear()
            self._script.clear()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        headers = {
            key[5:].replace("_", "-").lower(): value
            for key, value in environ.items()
            if key.startswith("HTTP_")
        }
        if environ.get("CONTENT_TYPE"):
            headers["content-type"] = environ["CONTENT_TYPE"]
        with self._lock:
            status = self._script.popleft() if self._script else self.default_status
        received = ReceivedRequest(
            environ["REQUEST_METHOD"], environ["PATH_INFO"], headers, body, status
        )
        if self.on_request is not None:
            self.on_request(received)
        with self._lock:
            self._received.append(received)
            self._lock.notify_all()
        start_response(f"{status} Scripted", [("Content-Type", "application/json")])
        return [b'{"status":"scripted"}']

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> WebhookReceiver:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def start_webhook_receiver(
    port: int = 0, *, host: str = "127.0.0.1", path: str = "/webhooks/ttma"
) -> WebhookReceiver:
    """Start a recording receiver; its ``url`` ends with ``path``."""
    check_loopback(host)
    receiver = WebhookReceiver(url="")
    server = make_server(host, port, receiver, threaded=True, request_handler=_SilentHandler)
    server.daemon_threads = True
    receiver.url = f"http://{host}:{server.server_port}{path}"
    receiver._server = server
    receiver._thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    receiver._thread.start()
    return receiver
