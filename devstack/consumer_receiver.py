"""A small HTTP consumer of call events: what a push subscription delivers, recorded as received.

Stands where n8n or a customer's service stands: the tests point a Terraform-shaped consumer
subscription at it and read back each request exactly (method, path, headers, body bytes). Run
it yourself to watch the local stack's events without n8n:

    .venv/bin/python -m devstack.consumer_receiver --port 5678
    make dev CONSUMERS=watch=http://127.0.0.1:5678/ttma     # in another terminal, then make demo

It prints one line per request: the headers a consumer routes on and the call's end reason, never
the body's personal data (numbers, transcript, task facts). It binds 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Received:
    """One request as it arrived. ``headers`` keeps names as sent; ``header`` looks up any case."""

    method: str
    path: str
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def header(self, name: str) -> str | None:
        """The header's value as http.server (like Node.js, so n8n) decodes it: Latin-1."""
        wanted = name.lower()
        return next((v for k, v in self.headers if k.lower() == wanted), None)

    def header_text(self, name: str) -> str | None:
        """The header's bytes read as UTF-8: the attribute's value, also when not ASCII."""
        value = self.header(name)
        return None if value is None else value.encode("latin-1").decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.body)


class ConsumerReceiver:
    """A threaded HTTP server on 127.0.0.1 that keeps every request and answers ``status``."""

    def __init__(
        self,
        port: int = 0,
        *,
        status: int = 204,
        on_request: Callable[[Received], None] | None = None,
    ) -> None:
        self.status = status
        self._received: list[Received] = []
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._on_request = on_request
        self._server = ThreadingHTTPServer((HOST, port), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def url(self, path: str = "/ttma") -> str:
        return f"http://{HOST}:{self.port}{path}"

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self._body()
                receiver._record(Received("POST", self.path, tuple(self.headers.items()), body))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def _body(self) -> bytes:
                if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                    chunks = []
                    while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                    while self.rfile.readline().strip():  # trailers
                        pass
                    return b"".join(chunks)
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def log_message(self, format: str, *args: Any) -> None:
                return  # quiet: the caller decides what to print

        return Handler

    def _record(self, received: Received) -> None:
        with self._arrived:
            self._received.append(received)
            self._arrived.notify_all()
        if self._on_request is not None:
            self._on_request(received)

    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    def wait_for(self, count: int, timeout: float) -> list[Received]:
        """The requests once at least ``count`` arrived; raises ``TimeoutError`` otherwise."""
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self._received) >= count, timeout):
                raise TimeoutError(f"{len(self._received)} of {count} requests within {timeout} s")
            return list(self._received)

    def start(self) -> ConsumerReceiver:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> ConsumerReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def describe(received: Received) -> str:
    """One line per event: routing headers and the end reason; no personal data."""
    try:
        call = received.json().get("data") or {}
        reason = call.get("endedReason") if isinstance(call, dict) else None
        parsed = "json"
    except (ValueError, AttributeError):
        reason, parsed = None, "NOT JSON"
    fields = {
        "content-type": received.header("Content-Type"),
        "deliveryId": received.header("deliveryId"),
        "callId": received.header("callId"),
        "source": received.header("source"),
        "endedReason(body)": reason,
        "bytes": len(received.body),
        "body": parsed,
    }
    return "  ".join(f"{name}={value}" for name, value in fields.items())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.consumer_receiver")
    parser.add_argument("--port", type=int, default=5678, help="port on 127.0.0.1 (default 5678)")
    parser.add_argument("--status", type=int, default=204, help="HTTP status to answer")
    args = parser.parse_args(argv)
    receiver = ConsumerReceiver(
        args.port, status=args.status, on_request=lambda r: print(describe(r), flush=True)
    )
    print(f"receiving on {receiver.url('/')} (any path); Ctrl-C stops", file=sys.stderr)
    try:
        receiver.start()
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        receiver.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
