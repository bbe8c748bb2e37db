"""Serve the project's functions locally with functions-framework (gunicorn), on 127.0.0.1.

The same way Cloud Functions runs them: one process per entry point, the environment carrying
the settings. Used by the tests that need a real server, the benchmarks and the local stack.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devstack.emulators import HOST, EmulatorError, free_port, port_is_free, stop_process_group
from devstack.paths import ROOT
from ttma_relay.functions import BY_NAME
from ttma_relay.functions import FUNCTIONS as FUNCTION_TABLE

SIGNATURE_TYPES = {spec.name: spec.signature_type for spec in FUNCTION_TABLE}


@dataclass
class ServedFunction:
    target: str
    port: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/"

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                tail = self.log_path.read_text(errors="replace")[-1500:]
                raise EmulatorError(f"function {self.target} exited: {tail}")
            with contextlib.suppress(OSError), socket.create_connection((HOST, self.port), 0.5):
                return
            time.sleep(0.05)
        raise EmulatorError(f"function {self.target} not listening after {timeout:.0f}s")

    def stop(self) -> None:
        if self.process is not None:
            stop_process_group(self.process.pid)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=5)
            self.process = None


def functions_framework_binary() -> Path:
    binary = Path(sys.executable).with_name("functions-framework")
    if not binary.exists():
        raise EmulatorError(
            f"{binary} not found: create the venv first (make venv) and run with .venv/bin/python"
        )
    return binary


def function_command(
    target: str, port: int, *, source: Path | None = None, signature_type: str | None = None
) -> list[str]:
    """``functions-framework`` serving ``target`` from ``main.py`` (or ``source``, e.g. the
    benchmarks' bare functions) on 127.0.0.1:``port``."""
    return [
        str(functions_framework_binary()),
        f"--target={target}",
        f"--signature-type={signature_type or SIGNATURE_TYPES[target]}",
        f"--source={source or ROOT / 'main.py'}",
        f"--host={HOST}",
        f"--port={port}",
    ]


def function_env(env: Mapping[str, str], target: str) -> dict[str, str]:
    """``env`` plus what Cloud Functions sets: ``FUNCTION_TARGET`` makes ``main.py`` validate
    the target's settings at start-up, as it does when deployed; ``THREADS`` (unless ``env``
    sets it) is the table's concurrency, as Terraform sets it."""
    spec = BY_NAME.get(target)
    threads = {"THREADS": str(spec.concurrency)} if spec is not None else {}
    return {**threads, **env, "PYTHONUNBUFFERED": "1", "FUNCTION_TARGET": target}


def start_function(
    target: str,
    env: Mapping[str, str],
    log_path: Path,
    *,
    port: int | None = None,
    threads: int | None = None,
    source: Path | None = None,
    signature_type: str | None = None,
) -> ServedFunction:
    """Start ``functions-framework --target TARGET`` on 127.0.0.1; returns once it listens.

    ``source`` and ``signature_type`` serve another file than ``main.py`` (the benchmarks)."""
    port = port or free_port()
    if not port_is_free(port):
        raise EmulatorError(f"function {target}: port {port} on {HOST} is already in use")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    command = function_command(target, port, source=source, signature_type=signature_type)
    process_env = function_env({**os.environ, **env}, target)
    if threads is not None:
        process_env["THREADS"] = str(threads)
    served = ServedFunction(target, port, log_path)
    with log_path.open("ab") as log:
        served.process = subprocess.Popen(  # noqa: S603  argv from function_command: the venv's functions-framework
            command,
            cwd=ROOT,
            env=process_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        served.wait_ready()
    except BaseException:
        served.stop()
        raise
    return served


@contextlib.contextmanager
def serving(
    target: str, env: Mapping[str, str], log_path: Path, **options: Any
) -> Iterator[ServedFunction]:
    served = start_function(target, env, log_path, **options)
    try:
        yield served
    finally:
        served.stop()
