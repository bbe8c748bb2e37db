"""Pytest fixtures for the vendor sandbox (``ttma_sandbox``).

``tests/conftest.py`` imports these. One sandbox server runs per session on 127.0.0.1; the
function-scoped ``sandbox`` fixture resets it (calls, webhooks, faults, deliveries, clock,
options, extra keys) before and after each test, so tests never see each other's state.
Webhook retries and waits are shortened so that sender tests take milliseconds.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ttma_relay.adapters.ttma_api import TtmaClient
from ttma_sandbox import SandboxHandle, start_sandbox
from ttma_sandbox.webhook_receiver import WebhookReceiver, start_webhook_receiver

__all__ = ["SANDBOX_TEST_OPTIONS", "sandbox", "sandbox_server", "ttma_client", "webhook_receiver"]

SANDBOX_TEST_OPTIONS: dict[str, object] = {
    "webhook_backoff_base": 0.01,
    "webhook_backoff_max": 0.05,
    "webhook_timeout": 2.0,
    "webhook_recording_wait_seconds": 1.0,
    "default_recording_bytes": 16 * 1024,
}


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[SandboxHandle]:
    """The session's sandbox. Prefer ``sandbox``, which resets it around each test."""
    handle = start_sandbox(**SANDBOX_TEST_OPTIONS)
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture
def sandbox(sandbox_server: SandboxHandle) -> Iterator[SandboxHandle]:
    """A clean sandbox: ``.url``, ``.api_key`` (every scope), ``.state`` (calls, clock, faults)."""
    sandbox_server.state.reset()
    yield sandbox_server
    sandbox_server.state.reset()


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    """A recording webhook endpoint on 127.0.0.1 (``.url``, ``.respond_with(...)``)."""
    receiver = start_webhook_receiver()
    try:
        yield receiver
    finally:
        receiver.stop()


@pytest.fixture
def ttma_client(sandbox: SandboxHandle) -> Iterator[TtmaClient]:
    """A ``TtmaClient`` for the sandbox with a tiny back-off (retries take milliseconds)."""
    with TtmaClient(
        sandbox.url, sandbox.api_key, timeout=5.0, backoff_base=0.001, backoff_max=2.0
    ) as client:
        yield client
