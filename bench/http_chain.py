"""The webhook path, side by side with its floors: sequential latency and throughput at
concurrency 8 and 32.

Variants, all on the same emulators, in one run, rounds interleaved (the order rotated each
round, a quiet machine awaited before each batch):

* ``http floor``: a bare functions-framework function answering 200 (``bench/variants.py``);
* ``in-process``: the three round trips (Firestore create, publish, conditional update) made
  by this process with the project's clients, no HTTP; timed per span as well;
* ``chain floor``: a bare served function making those three round trips, publishing through
  the client's batcher (one message per batch): everything ``ingest`` must do, nothing of ours;
* ``ingest``: the project's function (``main.py``), verify → claim → publish → mark published;
* ``sample pattern``: Google's sample (transaction dedup, default batching, ``future.result()``).

Every served variant gets the same signed deliveries (fresh ids, so never a duplicate), one
keep-alive connection per client thread, and gunicorn's thread count set to ingest's Cloud Run
concurrency (``ttma_relay.functions``). Before measuring, the emulators are warmed past their
settling point (``EMULATOR_WARM_OPERATIONS``), each served variant with warm-up requests.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

import verify
from bench.common import (
    BenchContext,
    Section,
    Target,
    cpu_seconds,
    interleaved,
    ratio,
    summarize,
)
from devstack.functions import ServedFunction, start_function
from ttma_relay.contract.sample_delivery import sample_delivery
from ttma_relay.functions import BY_NAME

SECRET = "bench-" + "s" * 40
VARIANTS_SOURCE = Path(__file__).with_name("variants.py")
EMULATOR_WARM_OPERATIONS = 15_000  # the emulators' latency settles after ~10k operations
SERVED = ("http floor", "chain floor", "ingest", "sample pattern")
SEQUENTIAL = ("http floor", "in-process", "chain floor", "ingest", "sample pattern")
CONCURRENCY = (8, 20, 32)  # 20: ingest's Cloud Run concurrency (ttma_relay.functions)


def signed_request(secret: str = SECRET) -> tuple[bytes, dict[str, str]]:
    """A fresh ``call.ended`` delivery and the headers the vendor sends with it."""
    delivery = sample_delivery()
    body = json.dumps(delivery).encode()
    return body, {
        "Content-Type": "application/json",
        "X-TTMA-Event": "call.ended",
        "X-TTMA-Delivery-Id": delivery["deliveryId"],
        "X-TTMA-Signature": verify.sign(secret, body, timestamp=int(time.time())),
    }


def post_sequentially(client: httpx.Client, url: str, count: int) -> tuple[list[float], int]:
    """``count`` deliveries one after another; their latencies (ms) and how many were not 200."""
    requests = [signed_request() for _ in range(count)]
    latencies, failures = [], 0
    for body, headers in requests:
        started = time.perf_counter()
        response = client.post(url, content=body, headers=headers)
        latencies.append((time.perf_counter() - started) * 1000)
        failures += response.status_code != 200
    return latencies, failures


def raw_post(url: str, body: bytes, headers: dict[str, str]) -> bytes:
    """The bytes of an HTTP/1.1 keep-alive POST of ``body`` to ``url``'s path."""
    parsed = urlsplit(url)
    lines = [
        f"POST {parsed.path or '/'} HTTP/1.1",
        f"Host: {parsed.netloc}",
        f"Content-Length: {len(body)}",
        "Connection: keep-alive",
    ]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _read_response(reader: asyncio.StreamReader) -> int:
    """Read one response (``Content-Length`` framed, as functions-framework answers); its
    status code."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)
    return status


def post_concurrently(url: str, count: int, concurrency: int) -> dict[str, Any]:
    """``count`` deliveries from ``concurrency`` closed-loop keep-alive connections: req/s and
    latencies. One asyncio loop writes pre-built requests, so the client costs little CPU
    beside the server (an httpx client per thread cost 2-4 ms of CPU per request at 32)."""
    requests = [raw_post(url, *signed_request()) for _ in range(count)]
    chunks = [requests[i::concurrency] for i in range(concurrency)]
    parsed = urlsplit(url)

    async def connection(chunk: list[bytes], start: asyncio.Event) -> tuple[list[float], int]:
        reader, writer = await asyncio.open_connection(parsed.hostname, parsed.port)
        await start.wait()
        latencies, failures = [], 0
        try:
            for request in chunk:
                started = time.perf_counter()
                writer.write(request)
                status = await _read_response(reader)
                latencies.append((time.perf_counter() - started) * 1000)
                failures += status != 200
        finally:
            writer.close()
        return latencies, failures

    async def everything() -> tuple[list[tuple[list[float], int]], float]:
        start = asyncio.Event()
        tasks = [asyncio.create_task(connection(chunk, start)) for chunk in chunks]
        await asyncio.sleep(0.2)  # every connection open before the clock starts
        started = time.perf_counter()
        start.set()
        results = await asyncio.gather(*tasks)
        return results, time.perf_counter() - started

    results, wall = asyncio.run(everything())
    latencies = [ms for chunk, _ in results for ms in chunk]
    return {
        "latencies": latencies,
        "failures": sum(f for _, f in results),
        "rps": len(latencies) / wall,
    }


class InProcessChain:
    """The three round trips in this process, with the clients ``ingest`` builds."""

    def __init__(self, project: str, topic: str, collection: str) -> None:
        from google.cloud import firestore, pubsub_v1

        self.db = firestore.Client(project=project)
        self.publisher = pubsub_v1.PublisherClient(
            batch_settings=pubsub_v1.types.BatchSettings(max_messages=1, max_latency=0.001)
        )
        self.topic = self.publisher.topic_path(project, topic)
        self.collection = collection
        self.spans: dict[str, list[float]] = {
            "create": [],
            "publish (batcher)": [],
            "publish (one RPC)": [],
            "update": [],
        }

    def once(self, *, direct: bool = False) -> float:
        """One delivery's round trips; returns ms and records each span."""
        from google.pubsub_v1 import types as pubsub_types

        body, headers = signed_request()
        delivery_id = headers["X-TTMA-Delivery-Id"]
        reference = self.db.collection(self.collection).document(delivery_id)
        t0 = time.perf_counter()
        created = reference.create({"state": "claimed", "claimedAt": datetime.now(UTC)}, timeout=10)
        t1 = time.perf_counter()
        if direct:
            message = pubsub_types.PubsubMessage(data=body, attributes={"deliveryId": delivery_id})
            response = self.publisher.api.publish(topic=self.topic, messages=[message], timeout=10)
            message_id = response.message_ids[0]
        else:
            message_id = self.publisher.publish(self.topic, body, deliveryId=delivery_id).result(10)
        t2 = time.perf_counter()
        reference.update(
            {"state": "published", "messageId": message_id},
            option=self.db.write_option(last_update_time=created.update_time),
            timeout=10,
        )
        t3 = time.perf_counter()
        self.spans["create"].append((t1 - t0) * 1000)
        self.spans["publish (one RPC)" if direct else "publish (batcher)"].append((t2 - t1) * 1000)
        self.spans["update"].append((t3 - t2) * 1000)
        return (t3 - t0) * 1000

    def warm_emulators(self, operations: int) -> None:
        """``operations`` Firestore and Pub/Sub calls (the chain's own: create, publish,
        conditional update) from 8 threads: the emulators' JIT settles."""
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda _: self.once(), range(operations // 3)))
        for span in self.spans.values():
            span.clear()


def serve_variants(context: BenchContext, topic: str, threads: int) -> dict[str, ServedFunction]:
    env = {
        **context.env,
        "TTMA_WEBHOOK_SECRET": SECRET,
        "CALL_EVENTS_TOPIC": topic,
        "GOOGLE_CLOUD_PROJECT": context.project,
    }
    served: dict[str, ServedFunction] = {}
    targets = {"http floor": "floor", "chain floor": "chain", "sample pattern": "sample"}
    try:
        for name, target in targets.items():
            served[name] = start_function(
                target,
                {**env, "DELIVERIES_COLLECTION": f"bench-{target}"},
                context.logs / f"variant-{target}.log",
                threads=threads,
                source=VARIANTS_SOURCE,
                signature_type="http",
            )
        served["ingest"] = start_function(
            "ingest",
            {**env, "DELIVERIES_COLLECTION": "bench-ingest"},
            context.logs / "ingest.log",
            threads=threads,
        )
        wait_for_log(served["ingest"].log_path, "ingest warmed", 60)
    except BaseException:
        for function in served.values():
            function.stop()
        raise
    return served


def wait_for_log(path: Path, text: str, timeout: float) -> float:
    """Seconds until ``text`` is in the log at ``path``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if path.exists() and text in path.read_text(errors="replace"):
            return time.monotonic() - started
        time.sleep(0.005)
    raise TimeoutError(f"{text!r} not in {path} after {timeout:.0f}s")


def create_topic(context: BenchContext) -> str:
    from google.cloud import pubsub_v1

    topic = f"bench-{uuid.uuid4().hex[:8]}"
    os.environ.update(context.env)
    publisher = pubsub_v1.PublisherClient()
    publisher.create_topic(name=publisher.topic_path(context.project, topic))
    return topic


def run(context: BenchContext) -> list[Section]:
    started = time.monotonic()
    threads = BY_NAME["ingest"].concurrency
    topic = create_topic(context)
    chain = InProcessChain(context.project, topic, "bench-in-process")
    warm_ops = context.scaled(EMULATOR_WARM_OPERATIONS, 300)
    chain.warm_emulators(warm_ops)
    served = serve_variants(context, topic, threads)
    try:
        return _measure(context, chain, served, threads, warm_ops, started)
    finally:
        for function in served.values():
            function.stop()


def _measure(
    context: BenchContext,
    chain: InProcessChain,
    served: dict[str, ServedFunction],
    threads: int,
    warm_ops: int,
    started: float,
) -> list[Section]:
    rounds = context.scaled(6, 2)
    per_batch = context.scaled(150, 10)
    with httpx.Client(timeout=30) as client:
        for function in served.values():
            post_sequentially(client, function.url, context.scaled(300, 5))
        for _ in range(context.scaled(300, 5)):
            chain.once()
            chain.once(direct=True)
        for span in chain.spans.values():
            span.clear()
        samples: dict[str, list[float]] = {name: [] for name in SEQUENTIAL}
        failures = dict.fromkeys(SEQUENTIAL, 0)
        for _, name in interleaved(rounds, SEQUENTIAL):
            context.wait_for_quiet()
            if name == "in-process":
                for _ in range(per_batch):
                    samples[name].append(chain.once())
                    chain.once(direct=True)  # spans only
                continue
            latencies, failed = post_sequentially(client, served[name].url, per_batch)
            samples[name].extend(latencies)
            failures[name] += failed
    sequential = _sequential_section(samples, failures, chain.spans, threads, warm_ops)
    sequential.seconds = round(time.monotonic() - started, 1)
    concurrent_started = time.monotonic()
    concurrent = _concurrent_section(context, served)
    concurrent.seconds = round(time.monotonic() - concurrent_started, 1)
    return [sequential, concurrent]


def _sequential_section(
    samples: dict[str, list[float]],
    failures: dict[str, int],
    spans: dict[str, list[float]],
    threads: int,
    warm_ops: int,
) -> Section:
    stats = {name: summarize(values) for name, values in samples.items()}
    rows = [
        {
            "variant": name,
            **{k: round(v, 2) for k, v in stats[name].items()},
            "not 200": failures[name],
        }
        for name in SEQUENTIAL
    ]
    rows += [
        {
            "variant": f"span: {name}",
            **{k: round(v, 2) for k, v in summarize(values).items()},
            "not 200": 0,
        }
        for name, values in spans.items()
    ]
    p50 = {name: stats[name]["p50"] for name in SEQUENTIAL}
    ratios = {
        "ingest / chain floor (p50)": ratio(p50["ingest"], p50["chain floor"]),
        "sample pattern / ingest (p50)": ratio(p50["sample pattern"], p50["ingest"]),
        "ingest / http floor (p50)": ratio(p50["ingest"], p50["http floor"]),
        "chain floor / in-process (p50)": ratio(p50["chain floor"], p50["in-process"]),
        "publish one RPC / batcher (p50)": ratio(
            summarize(spans["publish (one RPC)"])["p50"],
            summarize(spans["publish (batcher)"])["p50"],
        ),
    }
    return Section(
        name="http_sequential",
        title="Webhook latency, sequential requests (ms)",
        columns=["variant", "n", "p50", "p95", "p99", "mean", "not 200"],
        rows=rows,
        ratios={k: round(v, 3) for k, v in ratios.items()},
        targets=[
            Target(
                "ingest / chain floor (p50)",
                round(ratios["ingest / chain floor (p50)"], 3),
                0.92,
                "<=",
            ),
            Target(
                "sample pattern / ingest (p50)",
                round(ratios["sample pattern / ingest (p50)"], 3),
                2.0,
                ">=",
            ),
            Target("requests not answered 200", sum(failures.values()), 0, "<="),
        ],
        distributions={name: samples[name] for name in SEQUENTIAL},
        notes=[
            f"gunicorn threads = ingest's Cloud Run concurrency = {threads}",
            f"emulators warmed with {warm_ops} operations before measuring",
            "spans: the in-process chain's round trips; 'publish (one RPC)' is the generated "
            "client's publish, 'publish (batcher)' the batcher with max_messages=1",
        ],
    )


def _concurrent_section(context: BenchContext, served: dict[str, ServedFunction]) -> Section:
    count = context.scaled(480, 16)
    results: dict[tuple[int, str], list[dict[str, Any]]] = {}
    groups = {"function": 0, **context.pids, "client": os.getpgid(0)}
    for level in CONCURRENCY:
        for _, name in interleaved(context.scaled(2, 1), SERVED):
            context.wait_for_quiet()
            groups["function"] = served[name].process.pid  # its group: gunicorn's master
            before = {group: cpu_seconds([pid]) for group, pid in groups.items()}
            outcome = post_concurrently(served[name].url, count, level)
            outcome["cpu_ms"] = {
                group: (cpu_seconds([pid]) - before[group]) * 1000 / count
                for group, pid in groups.items()
            }
            results.setdefault((level, name), []).append(outcome)
    rows, ratios, targets = [], {}, []
    rps: dict[tuple[int, str], float] = {}
    for level in CONCURRENCY:
        for name in SERVED:
            runs = results[(level, name)]
            latencies = [ms for run in runs for ms in run["latencies"]]
            rps[(level, name)] = sum(run["rps"] for run in runs) / len(runs)
            stats = summarize(latencies)
            cpu = {
                group: round(sum(run["cpu_ms"][group] for run in runs) / len(runs), 2)
                for group in runs[0]["cpu_ms"]
            }
            rows.append(
                {
                    "concurrency": level,
                    "variant": name,
                    "req/s": round(rps[(level, name)], 1),
                    "p50": round(stats["p50"], 2),
                    "p95": round(stats["p95"], 2),
                    "p99": round(stats["p99"], 2),
                    "not 200": sum(run["failures"] for run in runs),
                    **{f"cpu ms/req {group}": value for group, value in cpu.items()},
                }
            )
        key = f"ingest / sample pattern req/s at {level}"
        ratios[key] = round(ratio(rps[(level, "ingest")], rps[(level, "sample pattern")]), 3)
        targets.append(Target(key, ratios[key], 1.0, ">="))
        ratios[f"ingest / chain floor req/s at {level}"] = round(
            ratio(rps[(level, "ingest")], rps[(level, "chain floor")]), 3
        )
    failures = sum(row["not 200"] for row in rows)
    targets.append(Target("requests not answered 200", failures, 0, "<="))
    return Section(
        name="http_concurrent",
        title="Webhook throughput, closed-loop clients (req/s, ms)",
        columns=[
            *("concurrency", "variant", "req/s", "p50", "p95", "p99", "not 200"),
            *(f"cpu ms/req {group}" for group in ("function", *context.pids, "client")),
        ],
        rows=rows,
        ratios=ratios,
        targets=targets,
        notes=[
            f"{count} requests per batch; one instance, all on the same 2-core machine",
            "cpu ms/req: CPU time per request of the served function's processes, of each "
            "emulator and of this client, during the batch",
        ],
    )
