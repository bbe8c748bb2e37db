"""Ingest latency against the local emulators, served by functions-framework (gunicorn).

Sends N sequential signed deliveries over one keep-alive connection and prints p50/p95/p99
for three paths measured side by side in one run: refused at the signature (401: verify only),
accepted (verify → Firestore create → publish → mark published) and duplicate (verify →
Firestore create + read). Usage: python bench/ingest_latency.py [N]
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from google.cloud import pubsub_v1

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import verify
from devstack.emulators import build_emulators
from devstack.functions import start_function
from ttma_relay.contract.sample_delivery import sample_delivery

SECRET = "bench_" + "s" * 40
WARMUP_REQUESTS = int(os.environ.get("BENCH_WARMUP", "500"))


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def timed_posts(client: httpx.Client, url: str, bodies: list[bytes], secret: str) -> list[float]:
    latencies = []
    for body in bodies:
        headers = {"X-TTMA-Signature": verify.sign(secret, body, timestamp=int(time.time()))}
        started = time.perf_counter()
        response = client.post(url, content=body, headers=headers)
        latencies.append((time.perf_counter() - started) * 1000)
        response.read()
    return latencies


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    logs = Path(tempfile.mkdtemp(prefix="ingest-bench-"))
    emulators = build_emulators("ttma-bench", include=("firestore", "pubsub"))
    emulators.start(logs)
    served = None
    try:
        topic = f"bench-{uuid.uuid4().hex[:8]}"
        os.environ.update(emulators.env)
        publisher = pubsub_v1.PublisherClient()
        publisher.create_topic(name=publisher.topic_path("ttma-bench", topic))
        env = {**emulators.env, "TTMA_WEBHOOK_SECRET": SECRET, "CALL_EVENTS_TOPIC": topic}
        served = start_function("ingest", env, logs / "ingest.log")
        bodies = [json.dumps(sample_delivery()).encode() for _ in range(n)]
        warmup = [json.dumps(sample_delivery()).encode() for _ in range(WARMUP_REQUESTS)]
        with httpx.Client(timeout=30) as client:
            # Warm-up: the clients' channels, and the emulators' JVMs (their latency halves
            # over the first few thousand operations on this kind of machine).
            timed_posts(client, served.url, warmup, SECRET)
            timed_posts(client, served.url, warmup, SECRET)
            results = {
                "401 bad signature": timed_posts(client, served.url, bodies, "x" * 40),
                "200 accepted": timed_posts(client, served.url, bodies, SECRET),
                "200 duplicate": timed_posts(client, served.url, bodies, SECRET),
            }
    finally:
        if served is not None:
            served.stop()
        emulators.stop()

    print(f"ingest latency, {n} sequential requests each, one keep-alive connection (ms)")
    print(f"{'path':<20}{'p50':>8}{'p95':>8}{'p99':>8}{'mean':>8}")
    for name, samples in results.items():
        print(
            f"{name:<20}{percentile(samples, 50):>8.2f}{percentile(samples, 95):>8.2f}"
            f"{percentile(samples, 99):>8.2f}{statistics.mean(samples):>8.2f}"
        )
    base = percentile(results["401 bad signature"], 50)
    ratio = percentile(results["200 accepted"], 50) / base
    print(f"accepted p50 / signature-only p50 = {ratio:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
