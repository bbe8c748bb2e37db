"""The commands and environments of the local stack's processes (one ``Service`` each)."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field

from devstack import emulators
from devstack.emulators import HOST, INSTALL_HINT
from devstack.functions import function_command, function_env
from devstack.stack.config import StackConfig
from devstack.stack.health import FUNCTION_PROBE_METHOD
from ttma_relay.settings import ENV_NAMES
from ttma_sandbox.api_keys import API_KEYS_ENV

EMULATOR_HOST_VARS = ("FIRESTORE_EMULATOR_HOST", "PUBSUB_EMULATOR_HOST", "STORAGE_EMULATOR_HOST")
DISPLAY_NAMES = {
    "firestore": "Firestore emulator",
    "pubsub": "Pub/Sub emulator",
    "storage": "Storage emulator",
    "sandbox": "TTMA sandbox",
}


@dataclass(frozen=True)
class Service:
    name: str
    command: list[str]
    port: int
    health_url: str
    any_status: bool = False
    health_method: str = "GET"
    env: dict[str, str] = field(default_factory=dict, repr=False)  # added to the inherited one
    hint: str = ""
    ready_text: str = ""  # healthy only once its log (since the start) holds this, too


# A function logs this once its worker has built and warmed its clients (handlers.wiring).
WARMED_LOG_TEXT = '"outcome":"warmed"'


@dataclass(frozen=True)
class StackSecrets:
    """Generated per ``up``; written only to the owner-only ``endpoints.env`` and given to the
    processes that use them in their environments, never on a command line."""

    webhook_secret: str = field(repr=False)
    sandbox_api_key: str = field(repr=False)
    phone_hash_key: str = field(repr=False)


def emulator_env(config: StackConfig) -> dict[str, str]:
    return {
        "GOOGLE_CLOUD_PROJECT": config.project,
        "FIRESTORE_EMULATOR_HOST": config.address("firestore"),
        "PUBSUB_EMULATOR_HOST": config.address("pubsub"),
        "STORAGE_EMULATOR_HOST": f"http://{config.address('storage')}",
    }


def inherited_env(extra: Mapping[str, str]) -> dict[str, str]:
    """The caller's environment without any setting a function reads, plus ``extra``.

    A shell that sourced another stack's ``endpoints.env`` (or holds real credentials' names)
    must not leak into this stack's functions.
    """
    dropped = {*ENV_NAMES, *EMULATOR_HOST_VARS, API_KEYS_ENV}
    base = {k: v for k, v in os.environ.items() if k not in dropped}
    return {**base, **extra, "PYTHONUNBUFFERED": "1"}


def function_settings_env(config: StackConfig, name: str, secrets: StackSecrets) -> dict[str, str]:
    google = emulator_env(config)
    api = {
        "TTMA_API_KEY": secrets.sandbox_api_key,
        "TTMA_API_BASE_URL": config.url("sandbox"),
    }
    if name == "ingest":
        return {
            **google,
            "CALL_EVENTS_TOPIC": config.topic,
            "TTMA_WEBHOOK_SECRET": secrets.webhook_secret,
        }
    if name in ("archive_transcript", "archive_recording"):
        return {
            **google,
            **api,
            "ARCHIVE_BUCKET": config.bucket,
            "CALLS_COLLECTION": config.calls_collection,
            "TTMA_PHONE_HASH_KEY": secrets.phone_hash_key,
            "RECORDING_WAIT_SECONDS": str(config.recording_wait_seconds),
        }
    if name == "reconcile":
        return {
            **google,
            **api,
            "CALL_EVENTS_TOPIC": config.topic,
            "RECONCILE_GRACE_SECONDS": str(config.reconcile_grace_seconds),
        }
    raise ValueError(f"unknown function {name}")


def emulator_services(config: StackConfig) -> list[Service]:
    """The three emulators; raises ``EmulatorError`` with the install command if one is missing."""
    built = [
        emulators.firestore_emulator(config.ports["firestore"]),
        emulators.pubsub_emulator(config.ports["pubsub"], config.project),
        emulators.storage_emulator(config.ports["storage"]),
    ]
    return [
        Service(
            name=e.name,
            command=e.command,
            port=e.port,
            health_url=f"http://{e.address}{e.health_path}",
            hint=INSTALL_HINT[e.name]
            + ("" if e.name == "storage" else f"; Java 17+: {INSTALL_HINT['java']}"),
        )
        for e in built
    ]


def sandbox_service(config: StackConfig, secrets: StackSecrets) -> Service:
    """The vendor sandbox. Its API key goes in its environment (owner-only), never on its
    command line (``ps`` shows every process's to every user)."""
    command = [
        sys.executable, "-m", "ttma_sandbox",
        "--host", HOST,
        "--port", str(config.ports["sandbox"]),
        "--webhook-backoff-base", str(config.sandbox_backoff_base),
        "--webhook-recording-wait", str(config.sandbox_recording_wait_seconds),
        "--recording-bytes", str(config.recording_bytes),
    ]  # fmt: skip
    for number in config.agent_numbers:
        command += ["--agent-number", number]
    return Service(
        "sandbox",
        command,
        config.ports["sandbox"],
        config.url("sandbox") + "/_sandbox/health",
        env={API_KEYS_ENV: secrets.sandbox_api_key},
    )


def function_service(config: StackConfig, name: str, secrets: StackSecrets) -> Service:
    return Service(
        name,
        function_command(name, config.ports[name]),
        config.ports[name],
        config.url(name),
        any_status=True,
        health_method=FUNCTION_PROBE_METHOD,
        env=function_env(function_settings_env(config, name, secrets), name),
        ready_text=WARMED_LOG_TEXT,
    )


def all_services(config: StackConfig, secrets: StackSecrets) -> list[Service]:
    """Slowest first (the Java emulators), so that they start while the rest boots."""
    return [
        *emulator_services(config),
        sandbox_service(config, secrets),
        *(function_service(config, name, secrets) for name in config.functions),
    ]
