"""Archiving a recording: peak memory and throughput, next to plain copies of the same bytes.

Starts the storage and Firestore emulators and the vendor sandbox (each in its own process),
then, for each way of copying an N MB recording from the sandbox into the storage emulator,
runs a fresh child process that copies one warm-up recording, then measures:

* time and peak RSS growth (VmHWM reset before each copy) of REPEATS copies, untraced, and
* the tracemalloc peak of one more copy (Python allocations only; slower, so not timed).

Every copy is deleted once checked, so the in-memory emulator is equally empty for each row.

Rows: ``archive_recording`` as deployed (fresh signed URL, stream, MD5/CRC32C, verification,
index write) with its default 8 MiB upload chunks and with 1 MiB chunks; a plain streamed copy
(same resumable upload, no checks, no index); a plain in-memory copy (read the whole body, one
upload). Usage: python bench/archive_recording_bench.py [MB]   (default 50)
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
import uuid
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devstack.emulators import build_emulators, stop_process_group  # noqa: E402

MiB = 1024 * 1024
PROJECT = "ttma-bench"
REPEATS = 3
ROWS = {
    "plain streamed copy, 8 MiB chunks": ("stream", 8 * MiB),
    "archive_recording, 8 MiB chunks (default)": ("archive", 8 * MiB),
    "plain in-memory copy": ("memory", 0),
    "archive_recording, 1 MiB chunks": ("archive", 1 * MiB),
}


# ------------------------------------------------------------------------------ child side
def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _reset_peak_rss() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # Linux: VmHWM := VmRSS


class Copier:
    """One way of copying a sandbox recording into the archive bucket."""

    def __init__(self, mode: str, chunk_size: int, env: dict[str, str]) -> None:
        from google.cloud import firestore, storage

        from handlers.subscriber import ArchiveDeps
        from ttma_relay.adapters.archive_store import ArchiveStore
        from ttma_relay.adapters.call_index import CallIndex
        from ttma_relay.adapters.ttma_api import TtmaClient
        from ttma_relay.settings import ArchiveSettings, GoogleSettings

        self.mode = mode
        self.chunk_size = chunk_size
        self.sandbox = env["SANDBOX_URL"]
        self.api = TtmaClient(env["SANDBOX_URL"], env["SANDBOX_KEY"])
        self.bucket = storage.Client(project=PROJECT).bucket(env["BUCKET"])
        self.deps = ArchiveDeps(
            ArchiveSettings(GoogleSettings(PROJECT), env["BUCKET"], api_key="unused"),
            ArchiveStore(self.bucket, chunk_size=chunk_size or 8 * MiB),
            CallIndex(firestore.Client(project=PROJECT), "bench_calls"),
            self.api,
        )

    def new_call(self, size: int) -> dict[str, Any]:
        response = httpx.post(
            f"{self.sandbox}/_sandbox/calls", json={"recording_bytes": size}, timeout=30
        )
        response.raise_for_status()
        return response.json()["data"][0]

    def copy(self, call: dict[str, Any]) -> int:
        """Copy the call's recording into the bucket, check its size, delete it again (so the
        in-memory emulator stays as small for every row)."""
        blob = self._copy(call)
        blob.reload()
        size = int(blob.size)
        blob.delete()
        return size

    def _copy(self, call: dict[str, Any]) -> Any:
        from handlers import archive_recording
        from ttma_relay.contract.call_keys import object_prefix
        from ttma_relay.contract.messages import message_attributes

        envelope = {
            "event": "call.ended",
            "deliveryId": str(uuid.uuid4()),
            "timestamp": call["endedAt"],
            "data": call,
        }
        name = object_prefix(call) + f"{self.mode}-{self.chunk_size}.mp3"
        if self.mode == "archive":
            event = _cloud_event(envelope, message_attributes(envelope, "replay"))
            assert archive_recording.handle(event, self.deps) == "archived"
            return self.bucket.blob(object_prefix(call) + "recording.mp3")
        signed = self.api.get_recording_url(call["id"])
        blob = self.bucket.blob(name)
        if self.mode == "stream":
            with (
                self.api.stream_recording(signed) as stream,
                blob.open("wb", chunk_size=self.chunk_size, content_type="audio/mpeg") as writer,
            ):
                for chunk in stream:
                    writer.write(chunk)
        else:
            body = httpx.get(signed.url, timeout=60).content
            blob.upload_from_string(body, content_type="audio/mpeg")
            del body
        return blob


def _cloud_event(envelope: dict[str, Any], attributes: dict[str, str]) -> Any:
    import base64

    from cloudevents.http import CloudEvent

    data = json.dumps(envelope).encode()
    message = {
        "data": base64.b64encode(data).decode(),
        "attributes": attributes,
        "messageId": uuid.uuid4().hex,
        "publishTime": envelope["timestamp"],
    }
    return CloudEvent(
        {"type": "google.cloud.pubsub.topic.v1.messagePublished", "source": "//bench"},
        {"message": message, "subscription": "bench"},
    )


def child(mode: str, chunk_size: int, size: int) -> None:
    copier = Copier(mode, chunk_size, dict(os.environ))
    copier.copy(copier.new_call(1 * MiB))  # warm-up: imports, connections, clients
    seconds, rss_growth_kib = [], []
    for _ in range(REPEATS):
        call = copier.new_call(size)
        _reset_peak_rss()
        baseline_kib = _status_kib("VmRSS")
        started = time.perf_counter()
        copied = copier.copy(call)
        seconds.append(time.perf_counter() - started)
        rss_growth_kib.append(_status_kib("VmHWM") - baseline_kib)
        assert copied == size, (copied, size)

    call = copier.new_call(size)
    tracemalloc.start()
    copier.copy(call)
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    result = {
        "seconds": statistics.median(seconds),
        "rssGrowthBytes": max(rss_growth_kib) * 1024,
        "tracedPeakBytes": traced_peak,
    }
    print(json.dumps(result))


# ----------------------------------------------------------------------------- parent side
def start_sandbox_process(api_key: str) -> tuple[subprocess.Popen[bytes], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "ttma_sandbox", "--port", "0", "--api-key", api_key],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    assert process.stdout is not None
    ready = json.loads(process.stdout.readline() or b"{}")
    if "url" not in ready:
        stop_process_group(process.pid)
        raise SystemExit("the sandbox did not start")
    return process, str(ready["url"])


def main() -> int:
    megabytes = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    size = megabytes * MiB
    logs = Path(tempfile.mkdtemp(prefix="archive-bench-"))
    emulators = build_emulators(PROJECT, include=("firestore", "storage"))
    emulators.start(logs)
    api_key = "mbn_live_bench_" + uuid.uuid4().hex
    sandbox, sandbox_url = start_sandbox_process(api_key)
    results: dict[str, dict[str, float]] = {}
    try:
        from google.cloud import storage

        os.environ.update(emulators.env)
        bucket = f"bench-{uuid.uuid4().hex[:8]}"
        storage.Client(project=PROJECT).create_bucket(bucket)
        env = {
            **os.environ,
            "SANDBOX_URL": sandbox_url,
            "SANDBOX_KEY": api_key,
            "BUCKET": bucket,
        }
        for label, (mode, chunk_size) in ROWS.items():
            output = subprocess.run(
                [sys.executable, __file__, "--child", mode, str(chunk_size), str(size)],
                env=env,
                cwd=ROOT,
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            results[label] = json.loads(output.strip().splitlines()[-1])
    finally:
        stop_process_group(sandbox.pid)
        emulators.stop()

    print(
        f"copying a {megabytes} MiB recording from the sandbox into the storage emulator "
        f"(median of {REPEATS}; peak RSS growth: max of {REPEATS})"
    )
    print(f"{'':44}{'MB/s':>8}{'seconds':>9}{'peak RSS +MiB':>15}{'tracemalloc MiB':>17}")
    for label, row in results.items():
        print(
            f"{label:<44}{size / 1e6 / row['seconds']:>8.1f}{row['seconds']:>9.2f}"
            f"{row['rssGrowthBytes'] / MiB:>15.1f}{row['tracedPeakBytes'] / MiB:>17.1f}"
        )
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
        raise SystemExit(0)
    raise SystemExit(main())
