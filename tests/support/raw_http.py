"""Raw HTTP/1.1 over a socket to a served function on 127.0.0.1: framing no client library sends.

``exchange`` writes the request bytes as given, half-closes (so a short body ends in EOF, as when
a sender hangs up) and reads the answer until the server closes.
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass, field
from typing import Any

HOST = "127.0.0.1"
# Chunked framings gunicorn cannot read, each around a whole body (names: what is wrong).
BAD_CHUNKINGS = {
    "size_zz": lambda body: b"zz\r\n" + body + b"\r\n0\r\n\r\n",
    "size_minus_1": lambda body: b"-1\r\n" + body + b"\r\n0\r\n\r\n",
    "size_0x10": lambda body: b"0x10\r\n" + body + b"\r\n0\r\n\r\n",
    "size_empty": lambda body: b"\r\n" + body + b"\r\n0\r\n\r\n",
    "size_is_the_body": lambda body: body + b"\r\n",
    "missing_terminator": lambda body: b"%x\r\n%s#~0\r\n\r\n" % (len(body), body),
    "no_last_chunk": lambda body: b"%x\r\n%s\r\n" % (len(body), body),
    "no_final_crlf": lambda body: b"%x\r\n%s\r\n0\r\n" % (len(body), body),
    "hung_up_mid_chunk": lambda body: b"%x\r\n%s" % (len(body) + 10, body),
}


@dataclass(frozen=True)
class RawResponse:
    status: int | None  # None: the server closed without answering
    headers: dict[str, str] = field(default_factory=dict)  # lowercase names
    body: bytes = b""
    raw: bytes = b""

    @property
    def is_json(self) -> bool:
        return self.headers.get("content-type", "").startswith("application/json")

    def json(self) -> Any:
        return json.loads(self.body)


def request_bytes(
    body: bytes,
    headers: dict[str, str] | list[tuple[str, str]],
    *,
    method: str = "POST",
    path: str = "/",
    framing: bytes | None = None,
) -> bytes:
    """``method path HTTP/1.1`` + headers + ``framing`` (the body as sent; default ``body``).

    No header is added: pass ``Content-Length`` or ``Transfer-Encoding`` yourself.
    """
    pairs = headers.items() if isinstance(headers, dict) else headers
    head = f"{method} {path} HTTP/1.1\r\nHost: {HOST}\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in pairs)
    return head.encode("latin-1") + b"\r\n" + (body if framing is None else framing)


def chunked(*chunks: bytes) -> bytes:
    """Well-formed chunked framing of ``chunks``, with the last chunk and the final CRLF."""
    return b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks if c) + b"0\r\n\r\n"


def exchange(port: int, data: bytes, *, timeout: float = 15.0) -> RawResponse:
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server answered and closed before reading everything: read its answer
        received = bytearray()
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except ConnectionResetError:
            pass
    return parse_response(bytes(received))


def parse_response(raw: bytes) -> RawResponse:
    rest = raw
    while True:
        head, separator, rest_after = rest.partition(b"\r\n\r\n")
        if not separator:
            return RawResponse(None, raw=raw)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        if 100 <= status < 200:  # 100 Continue: the answer follows
            rest = rest_after
            continue
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = headers.get("content-length")
        body = rest_after[: int(length)] if length is not None else rest_after
        return RawResponse(status, headers, body, raw)
