"""End-to-end lag: webhook received → transcript archived and → recording archived, next to the
Pub/Sub emulator's push floor (publish → a bare push endpoint answering 204).

What it starts (all on 127.0.0.1, all stopped at the end, on failure too): the vendor sandbox
as its own process and ``ingest``, ``archive_transcript`` and ``archive_recording`` served by
functions-framework (``devstack.functions.start_function``), with the settings the local stack
gives them (``devstack.stack.services.function_settings_env``). It provisions what the stack
provisions (``devstack.stack.provision``: topic, dead-letter topic and hold subscription, one
push subscription per archiver, the bucket) under names of its own (a ``bench-lag-<hex>`` topic,
bucket and index collection), so that it shares the runner's emulators with other sections
without meeting their data; at the end it deletes its topics, subscriptions and bucket (the
index and delivery documents stay: a few hundred small ones). The floor gets its own topic and
one push subscription to an HTTP server in this process.

**A pipeline round**: the sandbox records a call with its recording ready at once (64 KiB);
the bench builds the ``call.ended`` delivery the sandbox's sender would (that call as ``data``,
a fresh ``deliveryId``), signs it with the webhook secret (``verify.sign``) and POSTs it to
ingest over a keep-alive connection. ``t0`` is ``time.time()`` just before the POST (the
sender's clock; ingest's handler starts ~1 ms later: the row "webhook sent → ingest handler
start" shows by how much).

**"Archived"**, precisely: the archiver's own outcome log line ``"outcome":"archived"`` for that
call id. ``archive_transcript`` writes it after ``call.json``, ``transcript.txt`` and
``transcript.json`` are created in the bucket *and* the index document ``{collection}/{callKey}``
is committed with ``transcriptStatus: archived``; ``archive_recording`` after ``recording.mp3``
is finalized and the index committed with ``recordingStatus: archived``. So at that moment
everything a reader needs is visible (the emulators are strongly consistent), and it is still
before the function's 204 to Pub/Sub (the ack is not part of the lag). After the rounds, the
bench checks every measured call from outside: its four objects and its index entry with both
statuses ``archived``.

**How it is read, and its error**: the lag is the line's own ``time`` field (wall clock, same
machine, truncated to the millisecond by ``ttma_relay.logs``; the bench adds 0.5 ms, so the
error is ±0.5 ms) minus ``t0``. The log files are tailed every 2 ms only to know when to go
on: that polling delays the next round, never the figure. Writing the line (a JSON dump and a
flush) comes ~0.1 ms after the index commit returns. The handler's own ``latencyMs`` in the same
line gives its start, hence the decomposition rows (push arrival, handler time, and the handler
times split by whether the other archiver's handler ran at the same moment). Not in the
lag: the Pub/Sub ack and anything downstream of the index.

**The push floor**: publish one message (through ``CallEventPublisher``, as ingest does) to
the floor topic and time until the bare endpoint's handler runs (``time.perf_counter`` in this
process, so no clock error; the endpoint answers 204 before reading anything else). Floor and
pipeline rounds alternate, the order rotated each round (``bench.common.interleaved``); the
machine is waited quiet every ``QUIET_EVERY`` rounds, and no round starts after
``SECTION_BUDGET_SECONDS``.

**The emulator's push has its own delay**: in Pub/Sub emulator 0.8.20 every push subscription
has one loop (``PushLoop``) that takes one message, POSTs it and waits for the answer, takes the
next one at once, and sleeps 100 ms whenever it finds none. So an event that arrives at an idle
subscription waits 0-100 ms before its push starts, one push per subscription is in flight at a
time, and a message published right after the previous push waits the whole 100 ms. A round
therefore first sleeps a random 0-100 ms (``PUSH_CHECK_INTERVAL_SECONDS``, seeded): its publish
falls at a random phase of those loops, as independent webhooks do; without that, the phase
would follow the previous round's length and bias both the floor and the pipeline. Each
archiver's subscription waits independently. The floor's minimum is the push without the wait;
its spread (≈ uniform over 100 ms) is the wait. Google's Pub/Sub pushes without such a loop:
these figures are the emulator's, not the cloud's.

Alone: ``python -m bench end_to_end_lag`` (``BENCH_QUICK=1``: about 5 deliveries).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import secrets
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

import verify
from bench.common import (
    HOST,
    BenchContext,
    Section,
    Target,
    interleaved,
    percentile,
    ratio,
    summarize,
)
from devstack.emulators import EmulatorError, free_port, stop_process_group
from devstack.functions import ServedFunction, start_function
from devstack.stack.config import PORT_OFFSETS, StackConfig
from devstack.stack.health import HealthCheck, wait_healthy
from devstack.stack.provision import create_bucket, create_pubsub_resources
from devstack.stack.services import (
    WARMED_LOG_TEXT,
    StackSecrets,
    function_settings_env,
    inherited_env,
    sandbox_service,
)

NAME = "end_to_end_lag"
TITLE = "End-to-end lag: webhook → archived, next to the Pub/Sub push floor"
FUNCTIONS = ("ingest", "archive_transcript", "archive_recording")
ARCHIVERS = ("archive_transcript", "archive_recording")
EMULATOR_VARS = ("FIRESTORE_EMULATOR_HOST", "PUBSUB_EMULATOR_HOST", "STORAGE_EMULATOR_HOST")
FULL_ROUNDS, QUICK_ROUNDS = 100, 5
FULL_WARMUP, QUICK_WARMUP = 5, 2
QUIET_EVERY = 20  # rounds between waits for a quiet machine (each costs 0.5 s to 15 s)
SECTION_BUDGET_SECONDS = 80.0  # no round starts later than this after the section began
# The emulator's push loop (one per push subscription) sleeps this long whenever it finds no
# message (PushLoop, checkIntervalMillis = 100 in 0.8.20). Each round first waits a random part
# of it, so that its publish falls at a random phase of that loop, as real webhooks do.
PUSH_CHECK_INTERVAL_SECONDS = 0.100
SEED = 14
LOG_POLL_SECONDS = 0.002
FLOOR_POLL_SECONDS = 0.002
ROUND_TIMEOUT_SECONDS = 30.0
START_TIMEOUT_SECONDS = 60.0
DEADLINE_MARGIN_SECONDS = 10.0  # stop starting rounds this long before the run's deadline
LOG_TIME_CORRECTION_MS = 0.5  # log times are truncated to the millisecond
COLUMNS = ["path", "n", "p50_ms", "p95_ms", "p99_ms", "mean_ms", "min_ms", "max_ms"]
# How far the pipeline's lag may exceed the push floor (ms), at p50 and p95. Proposed after an
# 80-round run on 2 cores: the excess was transcript +36 / recording +42 ms at p50 and +25 / +37
# ms at p95 (ingest until its publish, functions-framework, the handler). Both sides carry the
# emulator's 0-100 ms push wait, so a p50 of 80-100 samples moves by ~±6 ms and a difference of
# two by ~±8 ms: the limits leave ~3 of those above the measured excess, to catch a real
# regression (an extra round trip per archiver costs 5-10 ms; two would show) and not noise.
TRANSCRIPT_P50_OVER_FLOOR_LIMIT_MS = 60.0
RECORDING_P50_OVER_FLOOR_LIMIT_MS = 75.0
TRANSCRIPT_P95_OVER_FLOOR_LIMIT_MS = 75.0
RECORDING_P95_OVER_FLOOR_LIMIT_MS = 100.0


@dataclass(frozen=True)
class LagStackConfig(StackConfig):
    """The local stack's config with a bucket of its own (the stack's is one per project)."""

    bucket_name: str = ""

    @property
    def bucket(self) -> str:
        return self.bucket_name


# ------------------------------------------------------------------------------ the floor
class _PushHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, if the emulator keeps its connections
    server: FloorServer

    def do_POST(self) -> None:
        arrived = time.perf_counter()
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()
        self.wfile.flush()
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.record(body, arrived)

    def log_message(self, format: str, *args: Any) -> None:
        return


class FloorServer(ThreadingHTTPServer):
    """The bare push endpoint: answers 204 at once, remembers when each ``seq`` arrived."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__((HOST, 0), _PushHandler)
        self.arrivals: dict[str, float] = {}
        self.pushes = 0
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.server_address[1]}/"

    def start(self) -> None:
        self._thread.start()

    def record(self, body: bytes, arrived: float) -> None:
        try:
            seq = json.loads(body)["message"]["attributes"]["seq"]
        except (ValueError, KeyError, TypeError):
            return
        with self._lock:
            self.pushes += 1
            self.arrivals.setdefault(str(seq), arrived)

    def wait_for(self, seq: str, timeout: float) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if seq in self.arrivals:
                    return self.arrivals[seq]
            time.sleep(FLOOR_POLL_SECONDS)
        raise TimeoutError(f"the floor's push of message {seq} did not arrive in {timeout:.0f}s")

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(5)


# --------------------------------------------------------------------------- the log lines
@dataclass
class LogLine:
    at: float  # epoch seconds (the line's ``time`` + the truncation correction)
    latency_ms: float
    outcome: str
    record: dict[str, Any] = field(repr=False)


class LogFollower:
    """Tails one function's JSON log; indexes its outcome lines by call id."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = path.open("rb")
        self._file.seek(0, os.SEEK_END)
        self._partial = b""
        self.by_call: dict[str, list[LogLine]] = {}
        self.outcomes: dict[str, int] = {}

    def poll(self) -> None:
        chunk = self._file.read()
        if not chunk:
            return
        lines = (self._partial + chunk).split(b"\n")
        self._partial = lines.pop()
        for raw in lines:
            if not raw.startswith(b"{"):
                continue  # gunicorn's own lines
            try:
                record = json.loads(raw)
            except ValueError:
                continue
            call_id, outcome, stamp = (
                record.get("callId"),
                record.get("outcome"),
                record.get("time"),
            )
            if not (isinstance(call_id, str) and isinstance(outcome, str) and stamp):
                continue
            self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
            at = datetime.fromisoformat(stamp).timestamp() + LOG_TIME_CORRECTION_MS / 1000
            line = LogLine(at, float(record.get("latencyMs", 0.0)), outcome, record)
            self.by_call.setdefault(call_id, []).append(line)

    def find(self, call_id: str, outcome: str) -> LogLine | None:
        return next((x for x in self.by_call.get(call_id, ()) if x.outcome == outcome), None)

    def close(self) -> None:
        self._file.close()


def wait_for_lines(
    followers: Mapping[str, LogFollower], call_id: str, outcome: str, timeout: float
) -> dict[str, LogLine]:
    """Each follower's ``outcome`` line for ``call_id`` (polled every 2 ms: only the moment the
    bench notices it depends on that, not the time the line carries)."""
    deadline = time.monotonic() + timeout
    found: dict[str, LogLine] = {}
    while True:
        for name, follower in followers.items():
            if name not in found:
                follower.poll()
                line = follower.find(call_id, outcome)
                if line is not None:
                    found[name] = line
        if len(found) == len(followers):
            return found
        if time.monotonic() > deadline:
            missing = sorted(set(followers) - set(found))
            raise TimeoutError(f"no {outcome!r} line for call {call_id} from {missing}")
        time.sleep(LOG_POLL_SECONDS)


# ------------------------------------------------------------------------------ the stack
@contextlib.contextmanager
def emulator_environment(env: Mapping[str, str], project: str) -> Iterator[None]:
    """The emulators' variables in ``os.environ`` (the Google clients read them), restored after."""
    wanted = {**{k: env[k] for k in EMULATOR_VARS}, "GOOGLE_CLOUD_PROJECT": project}
    saved = {key: os.environ.get(key) for key in wanted}
    os.environ.update(wanted)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _port_of(address: str) -> int:
    parsed = urlsplit(address if "://" in address else f"http://{address}")
    if parsed.hostname != HOST or parsed.port is None:
        raise EmulatorError(f"expected an emulator on {HOST}:<port>, got {address!r}")
    return parsed.port


def build_config(context: BenchContext, state_dir: Path) -> LagStackConfig:
    """Ports: the runner's emulators, free ones for the sandbox and the functions; names of
    this run's own."""
    ports = {name: free_port() for name in PORT_OFFSETS}
    ports["firestore"] = _port_of(context.env["FIRESTORE_EMULATOR_HOST"])
    ports["pubsub"] = _port_of(context.env["PUBSUB_EMULATOR_HOST"])
    ports["storage"] = _port_of(context.env["STORAGE_EMULATOR_HOST"])
    run_id = uuid.uuid4().hex[:8]
    return LagStackConfig(
        ports=ports,
        state_dir=state_dir,
        project=context.project,
        topic=f"bench-lag-{run_id}",
        calls_collection=f"bench_lag_{run_id}",
        functions=FUNCTIONS,
        bucket_name=f"bench-lag-{run_id}",
    )


@dataclass
class LagStack:
    """What this section started; ``stop`` stops all of it (idempotent)."""

    config: LagStackConfig
    secrets: StackSecrets
    sandbox: subprocess.Popen[bytes] | None = None
    functions: dict[str, ServedFunction] = field(default_factory=dict)
    floor: FloorServer | None = None
    floor_topic: str = ""

    def stop(self) -> None:
        for served in self.functions.values():
            served.stop()
        self.functions.clear()
        if self.sandbox is not None:
            stop_process_group(self.sandbox.pid)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.sandbox.wait(timeout=5)
            self.sandbox = None
        if self.floor is not None:
            self.floor.stop()
            self.floor = None


def start_sandbox(stack: LagStack) -> None:
    config = stack.config
    service = sandbox_service(config, stack.secrets)
    log_path = config.log_dir / "sandbox.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        stack.sandbox = subprocess.Popen(  # noqa: S603  argv from sandbox_service: sys.executable -m ttma_sandbox
            service.command,
            env=inherited_env(service.env),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    check = HealthCheck("TTMA sandbox", service.health_url, stack.sandbox, str(log_path))
    wait_healthy([check], START_TIMEOUT_SECONDS)


def _serve(stack: LagStack, name: str, env: Mapping[str, str]) -> ServedFunction:
    config = stack.config
    log_path = config.log_dir / f"{name}.log"
    served = start_function(name, env, log_path, port=config.ports[name])
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while WARMED_LOG_TEXT not in log_path.read_text(errors="replace"):
        if time.monotonic() > deadline:
            served.stop()
            raise EmulatorError(f"{name} not warmed after {START_TIMEOUT_SECONDS:.0f}s")
        time.sleep(0.05)
    return served


def start_functions(stack: LagStack, context: BenchContext) -> None:
    """The three functions at once (each waits until it has warmed its clients)."""
    envs = {
        name: {
            **function_settings_env(stack.config, name, stack.secrets),
            **{key: context.env[key] for key in EMULATOR_VARS},
        }
        for name in FUNCTIONS
    }
    with ThreadPoolExecutor(len(FUNCTIONS)) as pool:
        futures = {name: pool.submit(_serve, stack, name, envs[name]) for name in FUNCTIONS}
        errors = []
        for name, future in futures.items():
            try:
                stack.functions[name] = future.result()
            except Exception as error:
                errors.append(error)
    if errors:
        raise errors[0]


def provision_floor(stack: LagStack, publisher: Any, subscriber: Any) -> None:
    """The floor's topic and its one push subscription (no dead letters: it always answers)."""
    config = stack.config
    assert stack.floor is not None
    stack.floor_topic = publisher.topic_path(config.project, f"{config.topic}-floor")
    publisher.create_topic(name=stack.floor_topic)
    subscriber.create_subscription(
        request={
            "name": subscriber.subscription_path(config.project, f"{config.topic}-floor-push"),
            "topic": stack.floor_topic,
            "ack_deadline_seconds": 10,
            "push_config": {"push_endpoint": stack.floor.url},
        }
    )


def delete_pubsub_resources(stack: LagStack, publisher: Any, subscriber: Any) -> None:
    """Forget this run's subscriptions and topics, so the emulator pushes nowhere after it."""
    config = stack.config
    project = config.project
    subscriptions = [
        *(config.push_subscription(name) for name in config.subscribers),
        config.dead_letter_subscription,
        f"{config.topic}-floor-push",
    ]
    for name in subscriptions:
        with contextlib.suppress(Exception):
            subscriber.delete_subscription(
                request={"subscription": subscriber.subscription_path(project, name)}
            )
    for name in (config.topic, config.dead_letter_topic, f"{config.topic}-floor"):
        with contextlib.suppress(Exception):
            publisher.delete_topic(request={"topic": publisher.topic_path(project, name)})


def delete_bucket(stack: LagStack) -> None:
    """Empty and delete this run's bucket (best effort): the storage emulator is shared, and
    in memory."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    config = stack.config
    with contextlib.suppress(Exception):
        client = storage.Client(project=config.project, credentials=AnonymousCredentials())
        bucket = client.bucket(config.bucket)
        for blob in bucket.list_blobs():
            blob.delete()
        bucket.delete()


# ------------------------------------------------------------------------------ the rounds
@dataclass
class Samples:
    floor: list[float] = field(default_factory=list)
    floor_publish: list[float] = field(default_factory=list)
    transcript: list[float] = field(default_factory=list)
    recording: list[float] = field(default_factory=list)
    ingest_answer: list[float] = field(default_factory=list)
    ingest_start: list[float] = field(default_factory=list)
    push_arrival: dict[str, list[float]] = field(default_factory=lambda: {a: [] for a in ARCHIVERS})
    handler: dict[str, list[float]] = field(default_factory=lambda: {a: [] for a in ARCHIVERS})
    # the handlers' times, split by whether the other archiver's handler ran at the same time
    handler_overlapping: dict[str, list[float]] = field(
        default_factory=lambda: {a: [] for a in ARCHIVERS}
    )
    handler_alone: dict[str, list[float]] = field(
        default_factory=lambda: {a: [] for a in ARCHIVERS}
    )
    calls: list[dict[str, Any]] = field(default_factory=list)
    recording_line_after_object: list[float] = field(default_factory=list)


class Rounds:
    """One floor round and one pipeline round, each timed as the module's docstring says."""

    def __init__(
        self,
        stack: LagStack,
        publisher: Any,
        sandbox: httpx.Client,
        ingest: httpx.Client,
        followers: dict[str, LogFollower],
    ) -> None:
        self.stack = stack
        self.publisher = publisher
        self.sandbox = sandbox
        self.ingest = ingest
        self.followers = followers
        self.ingest_follower = followers.pop("ingest")
        self._seq = 0
        self._rng = random.Random(SEED)  # noqa: S311  seeded dephasing jitter of a benchmark, not a secret

    def _dephase(self) -> None:
        time.sleep(self._rng.uniform(0.0, PUSH_CHECK_INTERVAL_SECONDS))

    def floor(self, samples: Samples | None) -> None:
        assert self.stack.floor is not None
        self._seq += 1
        seq = str(self._seq)
        self._dephase()
        from ttma_relay.adapters.publisher import CallEventPublisher

        floor_publisher = CallEventPublisher(self.publisher, self.stack.floor_topic)
        started = time.perf_counter()
        floor_publisher.publish(b"{}", {"seq": seq}, timeout=ROUND_TIMEOUT_SECONDS)
        published = time.perf_counter()
        arrived = self.stack.floor.wait_for(seq, ROUND_TIMEOUT_SECONDS)
        if samples is not None:
            samples.floor.append((arrived - started) * 1000)
            samples.floor_publish.append((published - started) * 1000)

    def pipeline(self, samples: Samples | None) -> None:
        response = self.sandbox.post("/_sandbox/calls", json={"recording": "early"})
        response.raise_for_status()
        call = response.json()["data"][0]
        envelope = {
            "event": "call.ended",
            "deliveryId": str(uuid.uuid4()),
            "timestamp": call["endedAt"],
            "data": call,
        }
        body = json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode()
        secret = self.stack.secrets.webhook_secret
        self._dephase()
        headers = {
            "Content-Type": "application/json",
            "X-TTMA-Event": "call.ended",
            "X-TTMA-Delivery-Id": envelope["deliveryId"],
            "X-TTMA-Signature": verify.sign(secret, body, timestamp=int(time.time())),
        }
        sent = time.time()
        answer = self.ingest.post(self.stack.functions["ingest"].url, content=body, headers=headers)
        answered = time.time()
        if answer.status_code != 200 or answer.json().get("status") != "accepted":
            raise RuntimeError(f"ingest answered {answer.status_code}: {answer.text[:200]}")
        lines = wait_for_lines(self.followers, call["id"], "archived", ROUND_TIMEOUT_SECONDS)
        ingest_line = wait_for_lines(
            {"ingest": self.ingest_follower}, call["id"], "accepted", ROUND_TIMEOUT_SECONDS
        )["ingest"]
        if samples is None:
            return
        samples.calls.append(call)
        samples.ingest_answer.append((answered - sent) * 1000)
        samples.ingest_start.append((ingest_line.at - ingest_line.latency_ms / 1000 - sent) * 1000)
        samples.transcript.append((lines["archive_transcript"].at - sent) * 1000)
        samples.recording.append((lines["archive_recording"].at - sent) * 1000)
        for name in ARCHIVERS:
            line = lines[name]
            samples.push_arrival[name].append((line.at - line.latency_ms / 1000 - sent) * 1000)
            samples.handler[name].append(line.latency_ms)
        spans = [(x.at - x.latency_ms / 1000, x.at) for x in (lines[a] for a in ARCHIVERS)]
        overlapping = min(spans[0][1], spans[1][1]) > max(spans[0][0], spans[1][0])
        split = samples.handler_overlapping if overlapping else samples.handler_alone
        for name in ARCHIVERS:
            split[name].append(lines[name].latency_ms)


def check_archived(stack: LagStack, samples: Samples, recording_lines: LogFollower) -> list[str]:
    """From outside: every measured call's four objects and its index entry, both ``archived``.
    Also fills ``recording_line_after_object`` (the log line after ``recording.mp3``'s
    ``timeCreated``). Returns what is missing."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import firestore, storage

    from ttma_relay.contract.call_keys import call_key, object_prefix

    config = stack.config
    bucket = storage.Client(project=config.project, credentials=AnonymousCredentials()).bucket(
        config.bucket
    )
    blobs = {blob.name: blob for blob in bucket.list_blobs(prefix="calls/")}
    db = firestore.Client(project=config.project)
    problems: list[str] = []
    for call in samples.calls:
        prefix = object_prefix(call)
        for name in ("call.json", "transcript.txt", "transcript.json", "recording.mp3"):
            if prefix + name not in blobs:
                problems.append(f"{call['id']}: no {name}")
        entry = db.collection(config.calls_collection).document(call_key(call["id"])).get()
        record = entry.to_dict() or {}
        for status in ("transcriptStatus", "recordingStatus"):
            if record.get(status) != "archived":
                problems.append(f"{call['id']}: {status} {record.get(status)!r}")
        blob = blobs.get(prefix + "recording.mp3")
        line = recording_lines.find(call["id"], "archived")
        if blob is not None and blob.time_created is not None and line is not None:
            samples.recording_line_after_object.append(
                (line.at - blob.time_created.timestamp()) * 1000
            )
    return problems


def run(context: BenchContext) -> Section:
    """Measure the section (see the module's docstring)."""
    began = time.monotonic()
    rounds_wanted = context.scaled(FULL_ROUNDS, QUICK_ROUNDS)
    warmup = context.scaled(FULL_WARMUP, QUICK_WARMUP)
    state_dir = context.logs / NAME
    config = build_config(context, state_dir)
    stack = LagStack(
        config,
        StackSecrets(
            webhook_secret="bench_" + secrets.token_hex(24),
            sandbox_api_key="mbn_live_" + secrets.token_hex(20),
            phone_hash_key="phk_" + secrets.token_hex(24),
        ),
    )
    samples = Samples()
    notes: list[str] = []
    with emulator_environment(context.env, context.project):
        from google.cloud import pubsub_v1

        from ttma_relay.adapters.publisher import CallEventPublisher

        publisher = CallEventPublisher.new_client()
        subscriber = pubsub_v1.SubscriberClient()
        followers: dict[str, LogFollower] = {}
        try:
            stack.floor = FloorServer()
            stack.floor.start()
            create_pubsub_resources(config)
            create_bucket(config)
            provision_floor(stack, publisher, subscriber)
            start_sandbox(stack)
            start_functions(stack, context)
            started_s = time.monotonic() - began
            followers = {name: LogFollower(config.log_dir / f"{name}.log") for name in FUNCTIONS}
            with (
                httpx.Client(base_url=config.url("sandbox"), timeout=10) as sandbox,
                httpx.Client(timeout=ROUND_TIMEOUT_SECONDS) as ingest,
            ):
                rounds = Rounds(stack, publisher, sandbox, ingest, dict(followers))
                context.wait_for_quiet()
                for _ in range(warmup):
                    rounds.floor(None)
                    rounds.pipeline(None)
                done, quiet_round = 0, -1
                stop_at = min(
                    context.deadline - DEADLINE_MARGIN_SECONDS, began + SECTION_BUDGET_SECONDS
                )
                for number, variant in interleaved(rounds_wanted, ["floor", "pipeline"]):
                    if number % QUIET_EVERY == 0 and number != quiet_round:
                        quiet_round = number
                        context.wait_for_quiet()
                    if time.monotonic() > stop_at:
                        notes.append(
                            f"stopped after {done} of {rounds_wanted} rounds: the section's time "
                            "budget or the run's deadline"
                        )
                        break
                    if variant == "floor":
                        rounds.floor(samples)
                    else:
                        rounds.pipeline(samples)
                        done += 1
            problems = check_archived(stack, samples, followers["archive_recording"])
            outcomes = {name: dict(f.outcomes) for name, f in followers.items()}
            pushes = stack.floor.pushes
        finally:
            for follower in followers.values():
                follower.close()
            stack.stop()
            delete_pubsub_resources(stack, publisher, subscriber)
            delete_bucket(stack)
            subscriber.close()
            publisher.stop()
    return build_section(samples, problems, outcomes, pushes, notes, started_s, began, context)


def _row(path: str, samples: list[float]) -> dict[str, Any]:
    stats = summarize(samples)
    return {
        "path": path,
        "n": stats["n"],
        "p50_ms": round(stats["p50"], 1),
        "p95_ms": round(stats["p95"], 1),
        "p99_ms": round(stats["p99"], 1),
        "mean_ms": round(stats["mean"], 1),
        "min_ms": round(min(samples), 1) if samples else None,
        "max_ms": round(max(samples), 1) if samples else None,
    }


def build_section(
    samples: Samples,
    problems: list[str],
    outcomes: dict[str, dict[str, int]],
    pushes: int,
    notes: list[str],
    started_s: float,
    began: float,
    context: BenchContext,
) -> Section:
    rows = [
        _row("push floor: publish → bare endpoint (204)", samples.floor),
        _row("  floor's publish, until the message id", samples.floor_publish),
        _row("webhook → transcript archived", samples.transcript),
        _row("webhook → recording archived", samples.recording),
        _row("  webhook sent → ingest handler start", samples.ingest_start),
        _row("  webhook sent → ingest answered 200", samples.ingest_answer),
        _row("  webhook → archive_transcript handler start", samples.push_arrival[ARCHIVERS[0]]),
        _row("  webhook → archive_recording handler start", samples.push_arrival[ARCHIVERS[1]]),
        _row("  archive_transcript handler", samples.handler[ARCHIVERS[0]]),
        _row("  archive_recording handler", samples.handler[ARCHIVERS[1]]),
        *(
            _row(f"    {name} handler, {how}", split[name])
            for how, split in (
                ("the other one running", samples.handler_overlapping),
                ("alone", samples.handler_alone),
            )
            for name in ARCHIVERS
        ),
        _row("  recording.mp3 timeCreated → its log line", samples.recording_line_after_object),
    ]
    floor_p50 = percentile(samples.floor, 50)
    transcript_p50 = percentile(samples.transcript, 50)
    recording_p50 = percentile(samples.recording, 50)
    ratios = {
        "transcript_p50_over_floor_p50": round(ratio(transcript_p50, floor_p50), 2),
        "recording_p50_over_floor_p50": round(ratio(recording_p50, floor_p50), 2),
    }
    targets = [
        Target(
            f"{part} lag p{q} - push floor p{q} (ms)",
            round(percentile(lags, q) - percentile(samples.floor, q), 1),
            limit,
        )
        for part, lags, q, limit in (
            ("transcript", samples.transcript, 50, TRANSCRIPT_P50_OVER_FLOOR_LIMIT_MS),
            ("recording", samples.recording, 50, RECORDING_P50_OVER_FLOOR_LIMIT_MS),
            ("transcript", samples.transcript, 95, TRANSCRIPT_P95_OVER_FLOOR_LIMIT_MS),
            ("recording", samples.recording, 95, RECORDING_P95_OVER_FLOOR_LIMIT_MS),
        )
    ]
    floor = sorted(samples.floor) or [math.nan]
    overlapped = len(samples.handler_overlapping[ARCHIVERS[0]])
    deciles = [round(percentile(floor, q)) for q in range(10, 100, 10)]
    notes = [
        *notes,
        f"stack (sandbox, 3 functions warmed, topics, bucket) up in {started_s:.1f} s",
        "archived = the archiver's 'archived' log line (objects and index committed), its time "
        "± 0.5 ms; t0 = just before the signed POST to ingest; each round starts at a random "
        "0-100 ms phase",
        f"push floor: min {floor[0]:.1f} ms (≈ publish + push without the wait, given enough "
        f"rounds), max {floor[-1]:.1f} ms, "
        f"deciles {deciles} ms: about uniform over the emulator's 100 ms idle check (PushLoop "
        "sleeps 100 ms whenever its subscription has no message; one push in flight per "
        f"subscription); the endpoint got {pushes} pushes for "
        f"{len(samples.floor) + context.scaled(FULL_WARMUP, QUICK_WARMUP)} messages",
        f"the two archivers' handlers overlapped in {overlapped} of {len(samples.calls)} "
        "rounds, each slower then (p50 rows above): two cores shared "
        "with the emulators, and both write the same index document (the later create gets "
        "Conflict, CallIndex.record re-reads and updates); the logs do not tell the two apart",
        "the ratios are mostly the emulator's push wait on both sides (0-100 ms, p50 ≈ 50 ms); "
        "the targets are on the difference, the pipeline's own work",
        f"log outcomes: {json.dumps(outcomes, sort_keys=True)}",
        "archive check (objects + index, from outside): "
        + (
            f"{len(problems)} problems: {problems[:5]}"
            if problems
            else f"all {len(samples.calls)} calls complete"
        ),
    ]
    return Section(
        name=NAME,
        title=TITLE,
        columns=COLUMNS,
        rows=rows,
        ratios=ratios,
        targets=targets,
        distributions={
            "push floor": samples.floor,
            "webhook → transcript archived": samples.transcript,
            "webhook → recording archived": samples.recording,
        },
        notes=notes,
        seconds=round(time.monotonic() - began, 1),
    )
