"""The local stack for tests, started exactly as ``make dev-up`` starts it.

``start_stack`` runs ``python -m devstack.stack up`` (the Makefile's command) on random free
ports in a temporary state directory, so it can run beside a developer's own ``make dev`` and
in CI. A stack that cannot start (an emulator or Java missing, a port taken) fails the test
with the command's message: nothing is skipped.
"""

from __future__ import annotations

import contextlib
import os
import select
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack.stack import read_endpoints
from devstack.stack_processes import StackState
from devstack.stack_services import EMULATOR_HOST_VARS
from tests import message_schema
from tests.pubsub_helpers import pull_all

__all__ = ["RunningStack", "dev_stack", "read_until", "start_stack", "stop_stack", "wait_until"]

# Short waits so that late and missing recordings settle within seconds.
TEST_STACK_OPTIONS = ("--recording-wait-seconds", "4", "--sandbox-recording-wait", "0.5")
UP_TIMEOUT_SECONDS = 120


@dataclass
class RunningStack:
    state_dir: Path
    endpoints: dict[str, str]
    up_output: str

    @property
    def env(self) -> dict[str, str]:
        """What a client of the stack needs in its environment."""
        names = (*EMULATOR_HOST_VARS, "GOOGLE_CLOUD_PROJECT", "CALL_EVENTS_TOPIC",
                 "CALLS_COLLECTION")  # fmt: skip
        return {name: self.endpoints[name] for name in names}

    def state(self) -> StackState:
        state = StackState.load(self.state_dir)
        assert state is not None, "stack.json missing"
        return state

    def sandbox(self) -> httpx.Client:
        return httpx.Client(base_url=self.endpoints["SANDBOX_URL"], timeout=30)

    def simulate(self, **request: Any) -> list[dict[str, Any]]:
        """``POST /_sandbox/calls`` (one call, or a batch with ``count``)."""
        with self.sandbox() as sandbox:
            response = sandbox.post("/_sandbox/calls", json=request)
            response.raise_for_status()
            return list(response.json()["data"])

    def deliveries(self, wait: float = 30.0) -> list[dict[str, Any]]:
        with self.sandbox() as sandbox:
            response = sandbox.get("/_sandbox/deliveries", params={"wait": wait})
            response.raise_for_status()
            body = response.json()
        assert body["idle"] is not False, "webhook deliveries still in progress"
        return list(body["data"])


def stack_command(action: str, state_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "devstack.stack", action, "--state-dir", str(state_dir), *extra]


def start_stack(state_dir: Path) -> RunningStack:
    command = stack_command("up", state_dir, "--free-ports", *TEST_STACK_OPTIONS)
    for _ in range(2):  # a random port taken between choice and bind: once more, new ports
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=UP_TIMEOUT_SECONDS, check=False
        )
        if result.returncode == 0 or "already in use" not in result.stderr:
            break
    if result.returncode != 0:
        pytest.fail(
            f"the local stack did not start (exit {result.returncode}):\n{result.stderr}"
            f"{result.stdout}",
            pytrace=False,
        )
    stack = RunningStack(state_dir, read_endpoints(state_dir), result.stdout)
    try:
        _schema_taps[state_dir] = (stack, _open_schema_tap(stack))
    except Exception as error:  # the caller never gets the stack to stop: stop it here
        stop_stack(state_dir)
        pytest.fail(f"schema tap: no subscription on the stack's topic: {error!r}", pytrace=False)
    return stack


def stop_stack(state_dir: Path) -> subprocess.CompletedProcess[str]:
    tap = _schema_taps.pop(state_dir, None)
    try:
        seen = _drain_schema_tap(*tap) if tap else None
    except Exception as error:  # reported once the stack is down: it must come down regardless
        seen = error
    result = subprocess.run(
        stack_command("down", state_dir), capture_output=True, text=True, timeout=60, check=False
    )
    if isinstance(seen, Exception):
        raise AssertionError(f"schema tap: could not be read before down: {seen!r}")
    if seen is not None:
        _check_schema_tap(*seen)
        message_schema.counts["stack tap"] += len(seen[0])
    return result


# --- schema tap: every message the served functions publish is checked against docs/schema/ ---
# start_stack adds a pull subscription on the stack's topic before any test runs; stop_stack
# drains it, takes the stack down, then fails if a message is off the schema, or if a webhook
# the sandbox delivered (2xx from ingest) never reached the tap.
_schema_taps: dict[Path, tuple[RunningStack, str]] = {}


def _open_schema_tap(stack: RunningStack) -> str:
    from google.cloud import pubsub_v1

    project = stack.endpoints["GOOGLE_CLOUD_PROJECT"]
    with stack_environment(stack):
        subscriber = pubsub_v1.SubscriberClient()
        try:
            path = subscriber.subscription_path(project, f"schema-tap-{uuid.uuid4().hex[:10]}")
            topic = f"projects/{project}/topics/{stack.endpoints['CALL_EVENTS_TOPIC']}"
            subscriber.create_subscription(
                request={"name": path, "topic": topic, "ack_deadline_seconds": 60}
            )
        finally:
            subscriber.close()
    return path


def _drain_schema_tap(stack: RunningStack, path: str) -> tuple[list[Any], set[str]]:
    from google.cloud import pubsub_v1

    with stack.sandbox() as sandbox:  # first: a delivery finishing now is pulled below
        response = sandbox.get("/_sandbox/deliveries", params={"wait": 10})
        response.raise_for_status()
    delivered = {d["delivery_id"] for d in response.json()["data"] if d["outcome"] == "delivered"}
    with stack_environment(stack):
        subscriber = pubsub_v1.SubscriberClient()
        try:
            messages = pull_all(subscriber, path, settle=2.0)
        finally:
            subscriber.close()
    return messages, delivered


def _check_schema_tap(messages: list[Any], delivered: set[str]) -> None:
    problems = []
    for message in messages:
        try:
            message_schema.validate_message(message.data, dict(message.attributes))
        except AssertionError as error:
            problems.append(f"message {message.message_id}: {error}")
    assert not problems, f"{len(problems)} message(s) on the stack's topic off the schema: " + (
        "; ".join(problems[:5])
    )
    tapped = {message.attributes.get("deliveryId") for message in messages}
    missing = delivered - tapped
    assert not missing, (
        f"schema tap: {len(missing)} of {len(delivered)} delivered webhook(s) never reached the "
        f"tap ({len(messages)} message(s) seen): the check saw only part of what was published"
    )


@pytest.fixture(scope="module")
def dev_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """A whole local stack for the module's tests; stopped (and checked stopped) after."""
    state_dir = tmp_path_factory.mktemp("devstack")
    stack = start_stack(state_dir)
    try:
        yield stack
    finally:
        result = stop_stack(state_dir)
        assert result.returncode == 0, result.stderr


def wait_until(check: Callable[[], Any], *, timeout: float, what: str, every: float = 0.25) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}", pytrace=False)
        time.sleep(every)


def read_until(descriptor: int, marker: bytes, timeout: float) -> bytes:
    """Read a pipe until ``marker`` shows (``make dev``'s output); fail after ``timeout``."""
    output, deadline = b"", time.monotonic() + timeout
    while marker not in output:
        remaining = deadline - time.monotonic()
        readable, _, _ = select.select([descriptor], [], [], max(remaining, 0))
        if not readable:
            pytest.fail(f"no {marker!r} after {timeout:.0f} s:\n{output.decode()}", pytrace=False)
        chunk = os.read(descriptor, 65536)
        if not chunk:
            pytest.fail(f"the process exited before it was up:\n{output.decode()}", pytrace=False)
        output += chunk
    return output


@contextlib.contextmanager
def stack_environment(stack: RunningStack) -> Iterator[None]:
    """Point the Google clients made inside the block at the stack's emulators."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in stack.env.items():
            patch.setenv(name, value)
        yield
