"""What the local stack runs and where: ports, names, timings. One frozen ``StackConfig``.

Ports come from a base (``--port-base`` / ``TTMA_DEV_PORT_BASE``, default 8080) plus a fixed
offset per service, each overridable (``--port NAME=PORT`` / ``TTMA_DEV_PORT_<NAME>``), or all
random free ports (``--free-ports``, what the tests use). Resource names are the ones Terraform
creates (``terraform/pubsub.tf``), so what you see locally is what you will see in the project.
"""

from __future__ import annotations

import os
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from devstack.consumers import Consumer
from devstack.emulators import HOST, free_port, port_is_free
from devstack.paths import ROOT
from ttma_relay import functions as function_table

DEFAULT_STATE_DIR = ROOT / ".devstack"
DEFAULT_PORT_BASE = 8080
# Service → offset from the port base. 8085 is the Pub/Sub emulator's usual port.
PORT_OFFSETS: dict[str, int] = {
    "ingest": 0,
    "archive_transcript": 1,
    "archive_recording": 2,
    "reconcile": 3,
    "pubsub": 5,
    "firestore": 6,
    "storage": 7,
    "sandbox": 10,
}
FUNCTIONS = function_table.NAMES
SUBSCRIBERS = function_table.SUBSCRIBERS
# As terraform/pubsub.tf: the push subscription's ack deadline is the push request timeout.
ACK_DEADLINE_SECONDS = {
    name: function_table.BY_NAME[name].ack_deadline_seconds for name in SUBSCRIBERS
}
PORT_ENV_PREFIX = "TTMA_DEV_PORT_"
PROJECT = "ttma-relay-local"
TOPIC = "ttma-call-events"
AGENT_NUMBER = "+16475550100"  # the sandbox's default agent number (ttma_sandbox)


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


def random_free_port(taken: set[int]) -> int:
    """A free port below the ephemeral range: the kernel hands ports of that range to outgoing
    connections, which could take one between our choice and the server's bind."""
    low = _ephemeral_range()[0]
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randrange(20000, low) if low > 21000 else free_port()
        if port not in taken and port_is_free(port):
            return port
    return free_port()


class StackConfigError(ValueError):
    """A port or option given on the command line or in the environment is invalid."""


def main_has_entry_point(name: str, main_py: Path = ROOT / "main.py") -> bool:
    """True when ``main.py`` defines ``name`` (functions are served as they are added)."""
    return re.search(rf"^def {re.escape(name)}\(", main_py.read_text(), re.MULTILINE) is not None


def _port(value: str, what: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise StackConfigError(f"{what}: {value!r} is not a port number") from None
    if not 1 <= port <= 65535:
        raise StackConfigError(f"{what}: {port} is not between 1 and 65535")
    return port


def resolve_ports(
    *,
    port_base: int | None = None,
    overrides: Mapping[str, int] | None = None,
    free_ports: bool = False,
    env: Mapping[str, str] | None = None,
) -> dict[str, int]:
    """Every service's port: explicit override > ``TTMA_DEV_PORT_<NAME>`` > base + offset."""
    env = os.environ if env is None else env
    overrides = dict(overrides or {})
    unknown = set(overrides) - set(PORT_OFFSETS)
    if unknown:
        raise StackConfigError(f"unknown services {sorted(unknown)}; known: {sorted(PORT_OFFSETS)}")
    if port_base is None:
        raw = env.get("TTMA_DEV_PORT_BASE", "").strip()
        port_base = _port(raw, "TTMA_DEV_PORT_BASE") if raw else DEFAULT_PORT_BASE
    ports: dict[str, int] = {}
    for service, offset in PORT_OFFSETS.items():
        variable = PORT_ENV_PREFIX + service.upper()
        if service in overrides:
            ports[service] = _port(str(overrides[service]), f"--port {service}")
        elif env.get(variable, "").strip():
            ports[service] = _port(env[variable].strip(), variable)
        elif free_ports:
            ports[service] = random_free_port(set(ports.values()))
        else:
            ports[service] = _port(str(port_base + offset), f"port base {port_base} + {offset}")
    taken: dict[int, str] = {}
    for service, port in ports.items():
        if port in taken:
            raise StackConfigError(f"{service} and {taken[port]} would both use port {port}")
        taken[port] = service
    return ports


def parse_port_overrides(specs: list[str]) -> dict[str, int]:
    """``["ingest=9000", "sandbox=9010"]`` → ``{"ingest": 9000, "sandbox": 9010}``."""
    overrides: dict[str, int] = {}
    for spec in specs:
        name, sep, value = spec.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or name not in PORT_OFFSETS:
            raise StackConfigError(
                f"--port {spec!r}: expected NAME=PORT with NAME one of {', '.join(PORT_OFFSETS)}"
            )
        overrides[name] = _port(value.strip(), f"--port {name}")
    return overrides


@dataclass(frozen=True)
class StackConfig:
    """Everything ``up`` needs; ``down`` needs only ``state_dir``."""

    ports: dict[str, int]
    state_dir: Path = DEFAULT_STATE_DIR
    project: str = PROJECT
    topic: str = TOPIC
    calls_collection: str = "ttma_calls"
    agent_numbers: tuple[str, ...] = (AGENT_NUMBER,)
    # archive_recording gives a missing recording this long after the call ended (Terraform: 900).
    recording_wait_seconds: int = 20
    # reconcile leaves calls that ended less than this long ago to their webhook (Terraform:
    # 900); short, so that the demo's lost webhook is reconciled within seconds.
    reconcile_grace_seconds: int = 5
    # The sandbox's sender waits this long for a late recording before sending (vendor: 60 s);
    # short, so that late recordings reach archive_recording as "not yet" and are retried.
    sandbox_recording_wait_seconds: float = 2.0
    sandbox_backoff_base: float = 1.0
    recording_bytes: int = 64 * 1024
    # Push subscriptions. No retry policy by default: the Pub/Sub emulator (0.8.x) stops
    # redelivering when several messages of a subscription with one fail at once (they stall
    # until restart). Without one it redelivers about every second, so the dead-letter policy
    # counts attempts at ~1/s: 60 ≈ one minute (Terraform: 10 attempts, back-off 10 s → 600 s).
    max_delivery_attempts: int = 60
    retry_backoff_seconds: tuple[int, int] | None = None  # (minimum, maximum)
    functions: tuple[str, ...] = field(default_factory=lambda: default_functions())
    # Downstream consumers (--consumer NAME=URL): push subscriptions as Terraform's `consumers`.
    consumers: tuple[Consumer, ...] = ()

    @property
    def dead_letter_topic(self) -> str:
        return f"{self.topic}-dead-letter"

    @property
    def dead_letter_subscription(self) -> str:
        return f"{self.dead_letter_topic}-hold"

    def push_subscription(self, function: str) -> str:
        return f"{self.topic}-{function.replace('_', '-')}"

    @property
    def bucket(self) -> str:
        return f"{self.project}-ttma-archive"

    def url(self, service: str) -> str:
        suffix = "/" if service in FUNCTIONS else ""
        return f"http://{HOST}:{self.ports[service]}{suffix}"

    def address(self, service: str) -> str:
        return f"{HOST}:{self.ports[service]}"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def subscribers(self) -> tuple[str, ...]:
        return tuple(name for name in SUBSCRIBERS if name in self.functions)

    def used_ports(self) -> dict[str, int]:
        """Ports of the services this stack actually runs."""
        unused = set(FUNCTIONS) - set(self.functions)
        return {name: port for name, port in self.ports.items() if name not in unused}


def default_functions() -> tuple[str, ...]:
    return tuple(name for name in FUNCTIONS if main_has_entry_point(name))
