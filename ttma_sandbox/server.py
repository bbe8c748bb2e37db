"""Run the sandbox on 127.0.0.1 in a background thread: ``start_sandbox`` / ``running_sandbox``."""

from __future__ import annotations

import ipaddress
import logging
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from ttma_sandbox.api_keys import ALL_SCOPES, generate_api_key
from ttma_sandbox.app import create_app
from ttma_sandbox.state import SandboxOptions, SandboxState

logger = logging.getLogger(__name__)
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


class _QuietRequestHandler(WSGIRequestHandler):
    """Logs method and path only, at debug level: query strings may be signed URL credentials."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        path = self.path.split("?", 1)[0]
        logger.debug("%s %s %s", self.command, path, code)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("sandbox server: %s", self.command)


def check_loopback(host: str) -> None:
    """Refuse to bind anything but a loopback address."""
    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"the sandbox binds loopback addresses only, not {host!r}")


@dataclass
class SandboxHandle:
    """A running sandbox. ``api_key`` has every scope; ``stop()`` is idempotent."""

    url: str
    state: SandboxState
    api_key: str = field(repr=False)
    _server: BaseWSGIServer = field(repr=False)
    _thread: threading.Thread = field(repr=False)

    @property
    def port(self) -> int:
        return int(self._server.server_port)

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(5)
        self._server.server_close()
        self.state.close()

    def __enter__(self) -> SandboxHandle:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def start_sandbox(
    port: int = 0,
    *,
    host: str = "127.0.0.1",
    api_keys: Mapping[str, Iterable[str]] | None = None,
    **options: Any,
) -> SandboxHandle:
    """Start a sandbox on ``host:port`` (0: any free port) and return its handle.

    ``options`` are ``SandboxOptions`` fields (``allow_insecure_webhook_urls``,
    ``webhook_backoff_base``, ...). A full-scope key is generated (``handle.api_key``) in
    addition to ``api_keys``.
    """
    check_loopback(host)
    known = {f.name for f in fields(SandboxOptions)}
    unknown = set(options) - known
    if unknown:
        raise TypeError(f"unknown sandbox options: {sorted(unknown)}")
    if "agent_numbers" in options:
        options["agent_numbers"] = tuple(options["agent_numbers"])
    api_key = generate_api_key()
    keys = {api_key: ALL_SCOPES, **{k: frozenset(v) for k, v in (api_keys or {}).items()}}
    state = SandboxState(SandboxOptions(**options), keys)
    server = make_server(
        host, port, create_app(state), threaded=True, request_handler=_QuietRequestHandler
    )
    server.daemon_threads = True
    bound_host = "[::1]" if host == "::1" else host
    url = f"http://{bound_host}:{server.server_port}"
    state.public_url = url
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.05},
        name="ttma-sandbox",
        daemon=True,
    )
    thread.start()
    return SandboxHandle(url=url, state=state, api_key=api_key, _server=server, _thread=thread)


@contextmanager
def running_sandbox(port: int = 0, **options: Any) -> Iterator[SandboxHandle]:
    """``with running_sandbox(...) as sandbox:`` — started, then always stopped."""
    handle = start_sandbox(port, **options)
    try:
        yield handle
    finally:
        handle.stop()
