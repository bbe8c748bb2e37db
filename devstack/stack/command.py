"""The whole pipeline locally: emulators, vendor sandbox, every function, wired like Terraform.

    python -m devstack.stack dev     # foreground (make dev / make run); Ctrl-C stops everything
                                     # (so do SIGTERM and SIGHUP: a closed terminal)
    python -m devstack.stack up      # background (make dev-up); returns once all is healthy
    python -m devstack.stack down    # (make dev-down) stops what up started, frees every port
    python -m devstack.stack status

``up`` writes ``<state dir>/endpoints.env`` (shell-sourceable URLs, emulator hosts, names and
the generated dev secrets), ``stack.json`` (the processes, for ``down``) and ``logs/``.
Everything binds 127.0.0.1. docs/local-stack.md is the user's guide.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from devstack.consumers import ConsumerError, parse_consumers, subscription_name
from devstack.emulators import HOST, EmulatorError
from devstack.stack.config import (
    DEFAULT_STATE_DIR,
    PORT_ENV_PREFIX,
    StackConfig,
    StackConfigError,
    parse_port_overrides,
    resolve_ports,
)
from devstack.stack.health import HealthCheck, wait_healthy
from devstack.stack.output import StopSignals, say
from devstack.stack.processes import (
    StackState,
    marked_processes,
    port_is_free,
    seconds_since_start,
    spawn,
    still_ours,
    stop_groups,
    wait_ports_free,
    write_private,
)
from devstack.stack.services import (
    DISPLAY_NAMES,
    StackSecrets,
    all_services,
    emulator_env,
    inherited_env,
)
from ttma_relay.env_file import parse_env_file

ENDPOINTS_FILE = "endpoints.env"
# A local stack's webhook secret: this prefix and 48 random hex digits (start_stack).
DEV_WEBHOOK_SECRET_PREFIX = "dev_"  # noqa: S105  a prefix, the secret is random
DEV_PHONE_HASH_KEY_PREFIX = "phk_"  # a prefix, the key is random
HEALTH_TIMEOUT_SECONDS = 90.0


class StackError(RuntimeError):
    """The stack cannot start (port taken, tool missing, already running); says how to fix it."""


@dataclass(frozen=True)
class StackUp:
    config: StackConfig
    state: StackState
    endpoints: dict[str, str]
    seconds: float  # command to all-healthy


def endpoints(config: StackConfig, stack_secrets: StackSecrets) -> dict[str, str]:
    """What ``endpoints.env`` exports (the issue's names first, then conveniences)."""
    values = {
        "INGEST_URL": config.url("ingest"),
        "SANDBOX_URL": config.url("sandbox"),
        "SANDBOX_API_KEY": stack_secrets.sandbox_api_key,
        **emulator_env(config),
        "CALL_EVENTS_TOPIC": config.topic,
        "ARCHIVE_BUCKET": config.bucket,
        "TTMA_WEBHOOK_SECRET": stack_secrets.webhook_secret,
        # For `ttma-relay configure-webhook` / the archivers' settings against the sandbox.
        "TTMA_API_KEY": stack_secrets.sandbox_api_key,
        "TTMA_API_BASE_URL": config.url("sandbox"),
        "CALLS_COLLECTION": config.calls_collection,
        # For `ttma-relay forget --phone`: the key of the index's phone-number hashes.
        "TTMA_PHONE_HASH_KEY": stack_secrets.phone_hash_key,
        "DEAD_LETTER_TOPIC": config.dead_letter_topic,
        "DEAD_LETTER_SUBSCRIPTION": config.dead_letter_subscription,
        "TTMA_AGENT_NUMBER": config.agent_numbers[0],
    }
    for function in config.functions:
        if function != "ingest":
            values[f"{function.upper()}_URL"] = config.url(function)
    return values


def write_endpoints(path: Path, values: dict[str, str]) -> None:
    lines = [
        "# ttma-relay local stack (make dev-up). Holds dev secrets: keep it private.",
        f"# Use it with:  . {path}",
        *(f"export {name}={shlex.quote(value)}" for name, value in values.items()),
    ]
    write_private(path, "\n".join(lines) + "\n")


def read_endpoints(state_dir: Path = DEFAULT_STATE_DIR) -> dict[str, str]:
    """The exported values of ``<state dir>/endpoints.env`` ({} when there is none)."""
    try:
        return parse_env_file((state_dir / ENDPOINTS_FILE).read_text())
    except FileNotFoundError:
        return {}


def _size(path: Path) -> int:
    """Where a log that is appended to starts this run (0 when there is none yet)."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _refuse_running(state_dir: Path) -> None:
    state = StackState.load(state_dir)
    if state is None:
        return
    if any(still_ours(record) for record in state.processes) or marked_processes(state.stack_id):
        raise StackError(
            f"a local stack from {state_dir} is already running (started {state.started_at}); "
            "stop it with `make dev-down` (python -m devstack.stack down)"
        )
    state.remove()  # a stale record of a stack that is gone
    (state_dir / ENDPOINTS_FILE).unlink(missing_ok=True)


def _refuse_busy_ports(config: StackConfig) -> None:
    busy = {name: port for name, port in config.used_ports().items() if not port_is_free(port)}
    if busy:
        lines = [
            f"  {name}: port {port} on {HOST} is already in use "
            f"(set {PORT_ENV_PREFIX}{name.upper()}=<port> or --port {name}=<port>)"
            for name, port in busy.items()
        ]
        raise StackError(
            "cannot start the local stack:\n"
            + "\n".join(lines)
            + "\nOr move the whole block: TTMA_DEV_PORT_BASE=9080 make dev-up. "
            "If an old stack holds them: make dev-down"
        )


def up(
    config: StackConfig,
    *,
    started: float | None = None,
    on_record: Callable[[StackState], None] | None = None,
) -> StackUp:
    """Start everything, provision it, wait until every part is healthy. Cleans up on failure.

    ``on_record`` gets this stack's ``StackState`` before anything is started (once the
    checks that refuse to start passed): what a caller must stop if the cleanup is cut short.
    """
    started = time.monotonic() if started is None else started
    config.state_dir.mkdir(parents=True, exist_ok=True)
    _refuse_running(config.state_dir)
    _refuse_busy_ports(config)
    stack_secrets = StackSecrets(
        webhook_secret=DEV_WEBHOOK_SECRET_PREFIX + secrets.token_hex(24),
        sandbox_api_key="mbn_live_" + secrets.token_hex(20),  # the vendor's key format
        phone_hash_key=DEV_PHONE_HASH_KEY_PREFIX + secrets.token_hex(24),
    )
    services = all_services(config, stack_secrets)  # EmulatorError: a tool is missing
    state = StackState(config.state_dir / "stack.json", ports=config.used_ports())
    state.save()
    offsets = {s.name: _size(config.log_dir / f"{s.name}.log") for s in services}
    try:
        if on_record is not None:
            on_record(state)
        processes = {
            service.name: spawn(
                state,
                service.name,
                service.command,
                port=service.port,
                log_path=config.log_dir / f"{service.name}.log",
                env=inherited_env(service.env),
            )
            for service in services
        }
        checks = {
            s.name: HealthCheck(
                DISPLAY_NAMES.get(s.name, s.name),
                s.health_url,
                processes[s.name],
                str(config.log_dir / f"{s.name}.log"),
                any_status=s.any_status,
                hint=s.hint,
                ready_text=s.ready_text,
                log_offset=offsets[s.name],
                method=s.health_method,
            )
            for s in services
        }
        backends = ("firestore", "pubsub", "storage", "sandbox")
        wait_healthy([checks[name] for name in backends], HEALTH_TIMEOUT_SECONDS)
        _provision(config, stack_secrets)
        wait_healthy(
            [check for name, check in checks.items() if name not in backends],
            HEALTH_TIMEOUT_SECONDS,
        )
        values = endpoints(config, stack_secrets)
        write_endpoints(config.state_dir / ENDPOINTS_FILE, values)
        state.status = "up"
        state.save()
    except BaseException:
        if not stop_groups(state.processes, stack_id=state.stack_id):
            state.remove()  # else keep it: make dev-down can try again
        raise
    return StackUp(config, state, values, time.monotonic() - started)


def _provision(config: StackConfig, stack_secrets: StackSecrets) -> None:
    os.environ.update(emulator_env(config))  # the Google clients read these
    from devstack.stack import provision as stack_provision

    stack_provision.create_pubsub_resources(config)
    stack_provision.create_bucket(config)
    stack_provision.configure_sandbox_webhooks(
        config, stack_secrets.sandbox_api_key, stack_secrets.webhook_secret
    )


def down(state_dir: Path = DEFAULT_STATE_DIR, *, out: bool = True) -> int:
    """Stop every process ``up`` recorded (even half-way) and wait for its ports to be free.

    0 when everything is stopped and every port is free (or there was nothing to stop).
    Everything is stopped before anything is written, and a write that fails (a reader that is
    gone) is ignored.
    """
    state = StackState.load(state_dir)
    if state is None:
        if out:
            say(f"no local stack recorded in {state_dir}; nothing to stop")
        return 0
    survivors = stop_groups(state.processes, stack_id=state.stack_id)
    busy = wait_ports_free(state.ports)
    (state_dir / ENDPOINTS_FILE).unlink(missing_ok=True)
    if survivors or busy:
        if survivors:
            say(f"error: still running after SIGKILL: {', '.join(survivors)}")
        for name, port in busy.items():
            say(f"error: port {port} ({name}) is still in use")
        return 1
    state.remove()
    if out:
        say(f"local stack stopped ({len(state.processes)} processes); logs kept in "
            f"{state_dir / 'logs'}")  # fmt: skip
    return 0


def summary(result: StackUp) -> str:
    config, values = result.config, result.endpoints
    rows = [("ingest (the webhook)", config.url("ingest"))]
    rows += [
        (name, f"{config.url(name)}  ← push {config.push_subscription(name)}")
        for name in config.subscribers
    ]
    if "reconcile" in config.functions:
        rows.append(("reconcile", config.url("reconcile") + "  (POST to run it)"))
    rows += [
        (f"consumer {consumer.name}",
         f"{consumer.endpoint}  ← push {subscription_name(config.topic, consumer.name)}")
        for consumer in config.consumers
    ]  # fmt: skip
    rows += [
        ("TTMA sandbox", f"{config.url('sandbox')}  webhook of {', '.join(config.agent_numbers)}"
         " → ingest"),
        ("Pub/Sub emulator", f"{config.address('pubsub')}  topic {config.topic}, dead letters "
         f"{config.dead_letter_topic}"),
        ("Firestore emulator", f"{config.address('firestore')}  index {config.calls_collection}"),
        ("Storage emulator", f"{values['STORAGE_EMULATOR_HOST']}  bucket {config.bucket}"),
    ]  # fmt: skip
    width = max(len(label) for label, _ in rows)
    env_file = config.state_dir / ENDPOINTS_FILE
    lines = [
        f"ttma-relay local stack healthy in {result.seconds:.1f} s (cold start: command to "
        "all-healthy)",
        *(f"  {label:<{width}}  {value}" for label, value in rows),
        f"Endpoints and dev secrets: {env_file}  (. {env_file})",
        f"Logs: {config.log_dir}/",
        "Try:  make demo                        # simulated calls, end to end, with a summary",
        f'      . {env_file} && .venv/bin/ttma-relay send "$INGEST_URL"',
        "      .venv/bin/ttma-relay --local calls",
    ]
    return "\n".join(lines)


def build_config(args: argparse.Namespace) -> StackConfig:
    ports = resolve_ports(
        port_base=args.port_base,
        overrides=parse_port_overrides(args.port),
        free_ports=args.free_ports,
    )
    options = {}
    if args.recording_wait_seconds is not None:
        options["recording_wait_seconds"] = args.recording_wait_seconds
    if args.sandbox_recording_wait is not None:
        options["sandbox_recording_wait_seconds"] = args.sandbox_recording_wait
    specs = [*args.consumer, os.environ.get("TTMA_DEV_CONSUMERS", "")]
    try:
        options["consumers"] = parse_consumers(specs)
    except ConsumerError as error:
        raise StackConfigError(str(error)) from None
    return StackConfig(ports=ports, state_dir=args.state_dir.resolve(), **options)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.stack",
        description="Run the whole ttma-relay pipeline locally (see docs/local-stack.md).",
    )
    parser.add_argument("action", choices=["up", "down", "dev", "status"])
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=Path(os.environ.get("TTMA_DEV_STATE_DIR") or DEFAULT_STATE_DIR),
        help="logs, endpoints.env and stack.json (default .devstack; env TTMA_DEV_STATE_DIR)",
    )
    parser.add_argument(
        "--port-base", type=int, default=None, help="first port of the block (default 8080; "
        "env TTMA_DEV_PORT_BASE)"
    )  # fmt: skip
    parser.add_argument(
        "--port", action="append", default=[], metavar="NAME=PORT",
        help="one service's port, e.g. --port ingest=9000 (env TTMA_DEV_PORT_INGEST)",
    )  # fmt: skip
    parser.add_argument("--free-ports", action="store_true", help="random free ports")
    parser.add_argument(
        "--recording-wait-seconds", type=int, default=None,
        help="RECORDING_WAIT_SECONDS of archive_recording (default 20)",
    )  # fmt: skip
    parser.add_argument(
        "--sandbox-recording-wait", type=float, default=None,
        help="seconds the sandbox's sender waits for a late recording (default 2; vendor 60)",
    )  # fmt: skip
    parser.add_argument(
        "--consumer", action="append", default=[], metavar="NAME=URL",
        help="a downstream consumer, subscribed as Terraform's `consumers` (repeatable; env "
        "TTMA_DEV_CONSUMERS, space-separated; make dev CONSUMERS=...)",
    )  # fmt: skip
    return parser


def status(state_dir: Path) -> int:
    state = StackState.load(state_dir)
    if state is None:
        print(f"no local stack recorded in {state_dir}")
        return 1
    print(f"stack in {state_dir}: {state.status}, started {state.started_at}")
    running = 0
    for record in state.processes:
        alive = still_ours(record)
        running += alive
        print(f"  {record.name:<20} pid {record.pid:<7} port {record.port:<6} "
              f"{'running' if alive else 'STOPPED'}")  # fmt: skip
    return 0 if state.status == "up" and running == len(state.processes) else 1


def _follow_then_stop(result: StackUp, stops: StopSignals) -> int:
    """``make dev``: show the logs until Ctrl-C / SIGTERM / SIGHUP, a dead part or a reader
    that is gone, then stop everything, first, whatever happened while following."""
    code = 1
    try:
        stops.raising = False  # from here a signal only asks the follower to stop
        shown = say(summary(result), sys.stdout) and say(
            "Following the functions' logs. Ctrl-C stops everything.\n", sys.stdout
        )
        from devstack.stack.follow import follow_until_interrupted

        code = (
            follow_until_interrupted(result.state, result.config.log_dir, stop=stops.requested)
            if shown
            else 0  # nobody reads the output any more (make dev | head -3): stop, as on Ctrl-C
        )
    finally:
        stops.raising = False
        stopped = time.monotonic()
        down_code = down(result.config.state_dir, out=False)
        say(
            f"\nlocal stack stopped in {time.monotonic() - stopped:.1f} s "
            f"({len(result.state.processes)} processes); logs kept in {result.config.log_dir}"
            if down_code == 0
            else "\nthe local stack did NOT stop cleanly (see above); try: make dev-down"
        )
    return code or down_code


def main(argv: Sequence[str] | None = None) -> int:
    # Cold start counts from the command's start: the interpreter's own start-up included.
    started = time.monotonic() - seconds_since_start(os.getpid())
    args = build_parser().parse_args(argv)
    state_dir = args.state_dir.resolve()
    if args.action == "down":
        return down(state_dir)
    if args.action == "status":
        return status(state_dir)
    # Ctrl-C, kill and a closed terminal stop everything started (see devstack.stack.output).
    stops = StopSignals()
    stops.install()
    recorded: list[StackState] = []  # this stack's state, once up has one
    try:
        config = build_config(args)
        result = up(config, started=started, on_record=recorded.append)
        if args.action == "dev":
            return _follow_then_stop(result, stops)
        stops.raising = False
        # A reader that went away (make dev-up | head -1) changes nothing: the stack is up.
        say(summary(result) + "\nStop it with: make dev-down", sys.stdout)
        return 0
    except (StackConfigError, StackError, EmulatorError) as error:
        say(f"error: {error}")
        return 1
    except KeyboardInterrupt:
        # up stops what it started; this also covers a signal that cut that cleanup short or
        # came just after up returned (down finds nothing when everything is stopped already).
        stops.raising = False
        if recorded and down(state_dir, out=False) != 0:
            say("interrupted; the stack did NOT stop cleanly (see above); try: make dev-down")
            return 1
        say("interrupted; everything started was stopped")
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
