"""Cold start of each function next to its import floor, and the first webhook after it.

For each function, in interleaved rounds, a fresh functions-framework process is spawned from
``main.py`` with the function's settings (the emulators of the run) and, beside it, the import
floor: a bare function (``bench/variants.py``, ``import_floor``) importing functions-framework
and the client libraries that function needs, building and warming the same clients the same
way after gunicorn forks. Measured from ``Popen``:

* ``listening``: the port accepts a connection (gunicorn's master has bound it; this is when
  Cloud Run's default TCP startup probe passes);
* ``ready``: the worker's log says the clients are warmed (``<function> warmed`` /
  ``floor warmed``): what the local stack waits for before it reports the function healthy.

For ``ingest`` two more spawns per round: a signed webhook sent the moment the port accepts
(``first answer``: what the first request after a Cloud Run cold start pays), and one sent once
the function is ready (``first webhook after ready``), next to the p50 of the warm webhooks that
follow it. ``python -X importtime`` of the entry module (``import main`` with the target set)
next to that of the floor's imports gives the import cost alone.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import HOST, BenchContext, Section, Target, ratio, summarize
from bench.http_chain import SECRET, create_topic, signed_request
from devstack.emulators import free_port, stop_process_group
from devstack.functions import function_command, function_env
from devstack.paths import ROOT
from ttma_relay.functions import FUNCTIONS

VARIANTS_SOURCE = Path(__file__).with_name("variants.py")
COLD_START_LIMIT = 1.15  # ready / import floor's ready
FIRST_WEBHOOK_LIMIT = 2.0  # first webhook after ready / warm p50
# The client libraries each kind of what a function touches needs (as the floor imports them).
CLIENTS_OF_KIND = {
    "firestore": "firestore",
    "pubsub": "pubsub",
    "storage": "storage",
    "vendor": "httpx",
}
LIBRARY_OF_CLIENT = {
    "firestore": "google.cloud.firestore",
    "pubsub": "google.cloud.pubsub_v1",
    "storage": "google.cloud.storage",
    "httpx": "httpx",
}


def clients_of(function: str) -> list[str]:
    spec = next(spec for spec in FUNCTIONS if spec.name == function)
    kinds = sorted({touch.split(":")[0] for touch in spec.touches})
    return [CLIENTS_OF_KIND[kind] for kind in kinds]


def settings_env(context: BenchContext, topic: str) -> dict[str, str]:
    """Every function's settings, pointing at the run's emulators (the vendor API is never
    called during a cold start)."""
    return {
        **context.env,
        "GOOGLE_CLOUD_PROJECT": context.project,
        "TTMA_WEBHOOK_SECRET": SECRET,
        "CALL_EVENTS_TOPIC": topic,
        "DELIVERIES_COLLECTION": "bench-cold-deliveries",
        "CALLS_COLLECTION": "bench-cold-calls",
        "ARCHIVE_BUCKET": "bench-cold-archive",
        "TTMA_API_KEY": "bench-api-key-" + "k" * 20,
        "TTMA_PHONE_HASH_KEY": "bench-phone-hash-key-" + "h" * 20,
        "TTMA_API_BASE_URL": f"http://{HOST}:9",
    }


class Spawned:
    """One process, timed from the moment it was spawned."""

    def __init__(self, command: list[str], env: dict[str, str], log: Path, port: int) -> None:
        self.port = port
        self.log = log
        with log.open("wb") as out:
            self.started = time.perf_counter()
            self.process = subprocess.Popen(  # noqa: S603  argv from function_command: the venv's functions-framework, fixed flags
                command,
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def since(self) -> float:
        return (time.perf_counter() - self.started) * 1000

    def wait_listening(self, timeout: float = 30) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection((HOST, self.port), 0.2):
                return self.since()
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.log.name} exited: {self.log.read_text()[-800:]}")
            time.sleep(0.002)
        raise TimeoutError(f"{self.log.name}: not listening after {timeout}s")

    def wait_log(self, text: str, timeout: float = 30) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log.read_text(errors="replace"):
                return self.since()
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.log.name} exited: {self.log.read_text()[-800:]}")
            time.sleep(0.002)
        raise TimeoutError(f"{self.log.name}: no {text!r} after {timeout}s")

    def stop(self) -> None:
        stop_process_group(self.process.pid)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)


def spawn_function(function: str, env: dict[str, str], log: Path) -> Spawned:
    port = free_port()
    command = function_command(function, port)
    return Spawned(command, function_env({**os.environ, **env}, function), log, port)


def spawn_floor(function: str, env: dict[str, str], log: Path) -> Spawned:
    port = free_port()
    command = function_command("import_floor", port, source=VARIANTS_SOURCE, signature_type="http")
    floor_env = {
        **os.environ,
        **env,
        "BENCH_CLIENTS": ",".join(clients_of(function)),
        "FUNCTION_TARGET": "import_floor",
        "PYTHONUNBUFFERED": "1",
    }
    return Spawned(command, floor_env, log, port)


def post_webhook(url: str) -> tuple[float, int]:
    body, headers = signed_request()
    with httpx.Client(timeout=30) as client:
        started = time.perf_counter()
        response = client.post(url, content=body, headers=headers)
        return (time.perf_counter() - started) * 1000, response.status_code


def import_time(code: str, env: dict[str, str]) -> dict[str, float]:
    """``python -X importtime -c CODE``: modules imported and their cumulative time (ms)."""
    done = subprocess.run(  # noqa: S603  sys.executable on the benchmark's own code string
        [sys.executable, "-X", "importtime", "-c", code],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    modules, top_level_us = 0, 0
    for line in done.stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \| (\s*)(\S+)", line)
        if match:
            modules += 1
            if not match.group(3):
                top_level_us += int(match.group(2))
    return {"modules": modules, "ms": round(top_level_us / 1000, 1)}


def run(context: BenchContext) -> Section:
    topic = create_topic(context)
    env = settings_env(context, topic)
    rounds = context.scaled(3, 1)
    figures: dict[str, dict[str, list[float]]] = {}

    def record(key: str, name: str, value: float) -> None:
        figures.setdefault(key, {}).setdefault(name, []).append(value)

    logs = context.logs / "cold-start"
    logs.mkdir(parents=True, exist_ok=True)
    first_after_ready, warm_p50, first_at_listen = [], [], []
    for round_number in range(rounds):
        for spec in FUNCTIONS:
            for kind in ("function", "floor") if round_number % 2 == 0 else ("floor", "function"):
                context.wait_for_quiet()
                log = logs / f"{spec.name}-{kind}-{round_number}.log"
                if kind == "function":
                    spawned = spawn_function(spec.name, env, log)
                    ready_text = f"{spec.name} warmed"
                else:
                    spawned = spawn_floor(spec.name, env, log)
                    ready_text = "floor warmed"
                try:
                    record(spec.name, f"{kind} listening", spawned.wait_listening())
                    record(spec.name, f"{kind} ready", spawned.wait_log(ready_text))
                    if kind == "function" and spec.name == "ingest":
                        url = f"http://{HOST}:{spawned.port}/"
                        first, status = post_webhook(url)
                        assert status == 200, status
                        first_after_ready.append(first)
                        warm = [post_webhook(url)[0] for _ in range(context.scaled(30, 3))]
                        warm_p50.append(summarize(warm)["p50"])
                finally:
                    spawned.stop()
        context.wait_for_quiet()
        spawned = spawn_function("ingest", env, logs / f"ingest-at-listen-{round_number}.log")
        try:
            spawned.wait_listening()
            _, status = post_webhook(f"http://{HOST}:{spawned.port}/")
            assert status == 200, status
            first_at_listen.append(spawned.since())
        finally:
            spawned.stop()
    return _section(context, figures, first_after_ready, warm_p50, first_at_listen)


def _section(
    context: BenchContext,
    figures: dict[str, dict[str, list[float]]],
    first_after_ready: list[float],
    warm_p50: list[float],
    first_at_listen: list[float],
) -> Section:
    rows: list[dict[str, Any]] = []
    ratios: dict[str, float] = {}
    targets: list[Target] = []
    for spec in FUNCTIONS:
        clients = clients_of(spec.name)
        ours = import_time(
            "import main", {**settings_env(context, "t"), "FUNCTION_TARGET": spec.name}
        )
        floor_code = "import functions_framework" + "".join(
            f", {LIBRARY_OF_CLIENT[c]}" for c in clients
        )
        floor = import_time(floor_code, {})
        median = {name: summarize(values)["p50"] for name, values in figures[spec.name].items()}
        rows.append(
            {
                "function": spec.name,
                "clients": "+".join(clients),
                "listening ms": round(median["function listening"]),
                "ready ms": round(median["function ready"]),
                "floor ready ms": round(median["floor ready"]),
                "ready / floor": round(ratio(median["function ready"], median["floor ready"]), 3),
                "import ms": ours["ms"],
                "floor import ms": floor["ms"],
                "modules": ours["modules"],
                "floor modules": floor["modules"],
            }
        )
        key = f"{spec.name} ready / import floor ready"
        ratios[key] = rows[-1]["ready / floor"]
        targets.append(Target(key, ratios[key], COLD_START_LIMIT, "<="))
    first = summarize(first_after_ready)["p50"]
    warm = summarize(warm_p50)["p50"]
    ratios["ingest first webhook after ready / warm p50"] = round(ratio(first, warm), 3)
    targets.append(
        Target(
            "ingest first webhook after ready / warm p50",
            ratios["ingest first webhook after ready / warm p50"],
            FIRST_WEBHOOK_LIMIT,
            "<=",
        )
    )
    at_listen = summarize(first_at_listen)["p50"]
    ratios["ingest spawn to first 200 (posted at listening) / ready"] = round(
        ratio(at_listen, summarize(figures["ingest"]["function ready"])["p50"]), 3
    )
    return Section(
        name="cold_start",
        title="Cold start: spawn to ready, next to the import floor (ms, medians)",
        columns=[
            "function",
            "clients",
            "listening ms",
            "ready ms",
            "floor ready ms",
            "ready / floor",
            "import ms",
            "floor import ms",
            "modules",
            "floor modules",
        ],
        rows=rows,
        ratios=ratios,
        targets=targets,
        distributions={
            f"{spec.name} ready": figures[spec.name]["function ready"] for spec in FUNCTIONS
        }
        | {f"{spec.name} floor ready": figures[spec.name]["floor ready"] for spec in FUNCTIONS},
        notes=[
            f"ingest: first webhook after ready {first:.1f} ms, warm p50 {warm:.1f} ms; "
            f"spawn to first 200 when posted as soon as the port accepts: {at_listen:.0f} ms",
            "import ms: the cumulative time of top-level imports under -X importtime "
            "(ours: import main with FUNCTION_TARGET set; floor: functions_framework + clients)",
        ],
    )
