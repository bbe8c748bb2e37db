"""The local stack for tests, started exactly as ``make dev-up`` starts it.

``start_stack`` runs ``python -m devstack.stack up`` (the Makefile's command) on random free
ports in a temporary state directory, so it can run beside a developer's own ``make dev`` and
in CI. A stack that cannot start (an emulator or Java missing, a port taken) fails the test
with the command's message: nothing is skipped.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack.stack import read_endpoints
from devstack.stack_processes import StackState
from devstack.stack_services import EMULATOR_HOST_VARS

__all__ = ["RunningStack", "dev_stack", "start_stack", "stop_stack", "wait_until"]

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
    return RunningStack(state_dir, read_endpoints(state_dir), result.stdout)


def stop_stack(state_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        stack_command("down", state_dir), capture_output=True, text=True, timeout=60, check=False
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


@contextlib.contextmanager
def stack_environment(stack: RunningStack) -> Iterator[None]:
    """Point the Google clients made inside the block at the stack's emulators."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in stack.env.items():
            patch.setenv(name, value)
        yield
