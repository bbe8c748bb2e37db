"""Reconcile's throughput against the vendor sandbox and the emulators, side by side in one run.

For N calls (default 600) it measures three runs, each over the same window:
- cold: every call is published (list, batched record lookup, fetch, publish, mark);
- warm: every call is already delivered (list + batched lookups only);
- 429: cold again, on a fresh topic and collection, while a rate limit answers one API request
  every 0.5 s with 429 + Retry-After 0.2 s (the client honours Retry-After).

It prints calls/s per run and the ratios. Usage: python bench/reconcile_throughput.py [N]
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devstack.emulators import build_emulators
from ttma_relay.cli.backfill import build_reconciler
from ttma_relay.reconcile import Budget
from ttma_sandbox.server import start_sandbox

PROJECT = "ttma-bench"


class RateLimiter:
    """A 429 (Retry-After 0.2 s) for the next API request, armed again every 0.5 s."""

    def __init__(self, sandbox, every: float = 0.5) -> None:
        self._sandbox, self._every = sandbox, every
        self._done = threading.Event()
        self.armed = 0
        self._thread = threading.Thread(target=self._arm, daemon=True)
        self._thread.start()

    def _arm(self) -> None:
        while not self._done.wait(self._every):
            if not self._sandbox.state.faults.pending():
                self._sandbox.state.faults.add("/v1/voice/calls", status=429, retry_after=0.2)
                self.armed += 1

    def stop(self) -> int:
        self._done.set()
        self._thread.join(5)
        return self.armed - len(self._sandbox.state.faults.pending())


def run(reconciler, start: datetime, end: datetime) -> tuple[float, object]:
    began = time.perf_counter()
    report = reconciler.run_window(start, end, budget=Budget(seconds=3600, max_calls=10**6),
                                   checkpoint=False)  # fmt: skip
    return time.perf_counter() - began, report


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 600
    emulators = build_emulators(PROJECT)
    emulators.start(Path(tempfile.mkdtemp(prefix="bench-reconcile-")))
    import os

    os.environ.update(emulators.env)
    from google.cloud import pubsub_v1

    sandbox = start_sandbox()
    try:
        publisher = pubsub_v1.PublisherClient()
        sandbox.state.simulate_calls(count, seed=1, spacing_seconds=3)
        now = datetime.now(UTC)
        start, end = now - timedelta(seconds=3 * count + 60), now
        rows = []
        for name, faults in (("cold", False), ("warm", None), ("429", True)):
            if faults is not None:  # a fresh topic and collection: everything is published
                suffix = uuid.uuid4().hex[:8]
                topic, collection = f"bench-{suffix}", f"bench_{suffix}"
                publisher.create_topic(name=publisher.topic_path(PROJECT, topic))
                reconciler = build_reconciler(PROJECT, "(default)", topic, collection,
                                              sandbox.api_key, sandbox.url, 0)  # fmt: skip
            limiter = RateLimiter(sandbox) if faults else None
            seconds, report = run(reconciler, start, end)
            limited = limiter.stop() if limiter else 0
            sandbox.state.faults.clear()
            rows.append((name, seconds, report, limited))
        print(f"reconcile throughput, {count} calls (sandbox + emulators, 2 cores):")
        for name, seconds, report, limited in rows:
            print(f"  {name:<5} {seconds:7.2f} s  {report.listed / seconds:8.1f} calls/s  "
                  f"published {report.published}, delivered {report.delivered}, "
                  f"failed {report.failed}, 429s {limited}")  # fmt: skip
        cold, warm, limited = (r[1] for r in rows)
        print(f"  warm/cold speed ratio {cold / warm:.1f}x; cold/429 speed ratio "
              f"{limited / cold:.2f}x slower with 429s")  # fmt: skip
    finally:
        sandbox.stop()
        emulators.stop()


if __name__ == "__main__":
    main()
