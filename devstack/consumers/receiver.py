"""A small HTTP consumer of call events: what a push subscription delivers, recorded as received.

Stands where n8n or a customer's service stands: the tests point a Terraform-shaped consumer
subscription at it and read back each request exactly (method, path, headers, body bytes). Run
it yourself to watch the local stack's events without n8n:

    .venv/bin/python -m devstack.consumers.receiver --port 5678
    make dev CONSUMERS=watch=http://127.0.0.1:5678/ttma     # in another terminal, then make demo

It prints one line per request: the headers a consumer routes on and the call's end reason, never
the body's personal data (numbers, transcript, task facts). It binds 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
SOURCES = frozenset({"webhook", "reconcile", "replay"})


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
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
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


def summary(received: Received) -> dict[str, Any]:
    """What ``--save`` writes per request: headers, the body's size, digest, whether it is JSON
    and its call id; never the body itself (numbers, transcript, task facts)."""
    try:
        envelope = received.json()
        call = envelope.get("data") if isinstance(envelope, dict) else None
        call_id = call.get("id") if isinstance(call, dict) else None
        is_json = True
    except ValueError:
        call_id, is_json = None, False
    return {
        "path": received.path,
        "headers": {name.lower(): received.header_text(name) for name, _ in received.headers},
        "bodyBytes": len(received.body),
        "bodySha256": hashlib.sha256(received.body).hexdigest(),
        "json": is_json,
        "callId": call_id,
    }


def check_saved(path: Path, calls: int) -> list[str]:
    """Problems with a ``--save`` file that should hold ``calls`` calls delivered as JSON."""
    problems: list[str] = []
    seen: set[str] = set()
    lines = path.read_text().splitlines() if path.exists() else []
    for number, line in enumerate(lines, 1):
        entry = json.loads(line)
        headers = entry["headers"]
        if headers.get("content-type") != "application/json":
            problems.append(f"request {number}: Content-Type {headers.get('content-type')!r}")
        if not entry["json"]:
            problems.append(f"request {number}: the body is not JSON")
        if not entry["callId"] or headers.get("callid") != entry["callId"]:
            problems.append(f"request {number}: callId header and body disagree")
        if not headers.get("deliveryid") or headers.get("source") not in SOURCES:
            problems.append(f"request {number}: deliveryId/source headers missing")
        seen.add(entry["callId"] or "")
    if len(seen - {""}) != calls:
        problems.append(f"{len(seen - {''})} distinct calls received in {len(lines)} requests, "
                        f"expected {calls}")  # fmt: skip
    return problems


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
    parser = argparse.ArgumentParser(prog="python -m devstack.consumers.receiver")
    parser.add_argument("--port", type=int, default=5678, help="port on 127.0.0.1 (default 5678)")
    parser.add_argument("--status", type=int, default=204, help="HTTP status to answer")
    parser.add_argument("--save", type=Path, help="append one JSON line per request (no body)")
    parser.add_argument(
        "--check", type=Path, metavar="FILE",
        help="do not serve: check a --save file holds --calls calls, each delivered as JSON",
    )  # fmt: skip
    parser.add_argument("--calls", type=int, default=12, help="with --check (default 12)")
    args = parser.parse_args(argv)
    if args.check is not None:
        problems = check_saved(args.check, args.calls)
        for problem in problems:
            print(f"consumer check: {problem}", file=sys.stderr)
        if not problems:
            print(f"consumer check: {args.calls} calls, every request JSON with its attributes "
                  "as headers")  # fmt: skip
        return 1 if problems else 0
    lock = threading.Lock()

    def on_request(received: Received) -> None:
        print(describe(received), flush=True)
        if args.save is not None:
            with lock, args.save.open("a") as out:
                out.write(json.dumps(summary(received), sort_keys=True) + "\n")

    receiver = ConsumerReceiver(args.port, status=args.status, on_request=on_request)
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
