"""Archiving a recording: throughput and peak memory of ``archive_recording`` next to plain
copies of the same bytes, from the vendor sandbox into the storage emulator.

The runner's storage and Firestore emulators (``context.env``) are used; this section starts
only the sandbox (``python -m ttma_sandbox`` on 127.0.0.1) and stops it. Each row runs in its
own fresh child process, so that its peak RSS is its own; every child first copies one
recording of the measured size, untimed (imports, clients, connections, its buffers), the
children side by side. Then, in rounds (the rows' order rotated each round; a quiet machine
awaited before each), each child in turn is given a new N MB recording (50 MB; 2 MB quick),
resets its peak RSS (``VmHWM := VmRSS``), copies it and reports the copy's time and its peak
RSS growth. The object's size is then checked and the object deleted (untimed), so that the
in-memory emulator holds as little for every row.

Rows: ``archive_recording`` as deployed (``handlers.wiring.archive_deps()``: a fresh signed URL,
256 KiB reads, MD5/CRC32C and MP3 checks, 8 MiB resumable-upload chunks, the index write in
Firestore), the same with 1 MiB chunks; the floors: a plain streamed copy (the same download
stream and resumable upload, 8 MiB chunks, no checks, no index) and a plain in-memory copy
(read the whole body, one upload). MB/s from the median copy time, peak RSS growth the
largest seen.

Targets, against the plain streamed copy (measured on 2 cores shared with other benchmarks:
archive 0.81-0.93 x its MB/s, 0.87 in a full run; peak RSS growth 8-17 MiB for both, the
in-memory copy's 60-95 MiB at 50 MB): archive throughput at least 0.85 x the floor's
(the MD5 of the bytes costs about 7 % here, the existence check, the reload and the index
write a few round trips), and peak RSS growth at most 1.5 x the floor's + 8 MiB. Memory is
bounded by the upload chunks, like the floor's, whatever the recording's size (the in-memory
copy's grows with it); the 8 MiB slack is one upload chunk, because whether a chunk's copy
shows in a process's peak varies from copy to copy.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import os
import select
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import IO, Any

from bench.common import HOST, BenchContext, Section, Target, interleaved, ratio

ROOT = Path(__file__).resolve().parent.parent
MiB = 1024 * 1024
FULL_BYTES, QUICK_BYTES = 50 * 1_000_000, 2 * 1_000_000
FULL_ROUNDS, QUICK_ROUNDS = 5, 1
ARCHIVE, STREAMED = "archive_recording, 8 MiB chunks (as deployed)", "plain streamed copy, 8 MiB"
ROWS: dict[str, tuple[str, int]] = {  # label: (mode, upload chunk bytes)
    ARCHIVE: ("archive", 8 * MiB),
    STREAMED: ("stream", 8 * MiB),
    "plain in-memory copy": ("memory", 0),
    "archive_recording, 1 MiB chunks": ("archive", 1 * MiB),
}
THROUGHPUT_FLOOR = 0.85  # archive MB/s >= this x the streamed copy's
RSS_FACTOR, RSS_SLACK_MIB = 1.5, 8.0  # archive peak RSS growth <= factor x streamed + slack
READY_TIMEOUT_S = 120.0
COPY_TIMEOUT_S = 120.0


# ------------------------------------------------------------------------------ child side
def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _reset_peak_rss() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # Linux: VmHWM := VmRSS


class Copier:
    """One way of copying a sandbox recording into the archive bucket (in a child process)."""

    def __init__(self, mode: str, chunk_size: int) -> None:
        import httpx
        from google.cloud import storage

        from handlers import wiring
        from ttma_relay.adapters.archive_store import ArchiveStore

        self.mode = mode
        self.chunk_size = chunk_size
        self.deps = wiring.archive_deps()  # from the environment, as deployed
        if mode == "archive" and chunk_size != 8 * MiB:
            bucket = storage.Client(project=self.deps.settings.google.project).bucket(
                self.deps.settings.archive_bucket
            )
            self.deps = dataclasses.replace(
                self.deps, store=ArchiveStore(bucket, chunk_size=chunk_size)
            )
        self.api = self.deps.api
        self.bucket = storage.Client(project=self.deps.settings.google.project).bucket(
            self.deps.settings.archive_bucket
        )
        self.sandbox = self.deps.settings.api_base_url
        self.http = httpx.Client(timeout=60)

    def new_call(self, size: int) -> dict[str, Any]:
        response = self.http.post(f"{self.sandbox}/_sandbox/calls", json={"recording_bytes": size})
        response.raise_for_status()
        return response.json()["data"][0]

    def copy(self, call: dict[str, Any]) -> Any:
        """Copy the call's recording into the bucket; the blob it was written to."""
        from handlers import archive_recording
        from ttma_relay.contract.call_keys import object_prefix
        from ttma_relay.contract.messages import message_attributes

        prefix = object_prefix(call)
        if self.mode == "archive":
            envelope = {
                "event": "call.ended",
                "deliveryId": str(uuid.uuid4()),
                "timestamp": call["endedAt"],
                "data": call,
            }
            event = _cloud_event(envelope, message_attributes(envelope, "replay"))
            outcome = archive_recording.handle(event, self.deps)
            assert outcome == "archived", outcome
            return self.bucket.blob(prefix + archive_recording.RECORDING_OBJECT)
        signed = self.api.get_recording_url(call["id"])
        blob = self.bucket.blob(f"{prefix}{self.mode}-{self.chunk_size}.mp3")
        if self.mode == "stream":
            with (
                self.api.stream_recording(signed) as stream,
                blob.open("wb", chunk_size=self.chunk_size, content_type="audio/mpeg") as writer,
            ):
                for chunk in stream:
                    writer.write(chunk)
        else:
            body = self.http.get(signed.url).content
            blob.upload_from_string(body, content_type="audio/mpeg")
            del body
        return blob

    def measured_copy(self, size: int) -> dict[str, float]:
        """A new recording of ``size`` bytes, copied: seconds and peak RSS growth (bytes)."""
        call = self.new_call(size)
        _reset_peak_rss()
        baseline_kib = _status_kib("VmRSS")
        started = time.perf_counter()
        blob = self.copy(call)
        seconds = time.perf_counter() - started
        growth = (_status_kib("VmHWM") - baseline_kib) * 1024
        blob.reload()
        assert int(blob.size) == size, (blob.size, size)
        blob.delete()  # the in-memory emulator stays as small for every row
        return {"seconds": seconds, "rssGrowthBytes": growth}


def _cloud_event(envelope: dict[str, Any], attributes: dict[str, str]) -> Any:
    from cloudevents.http import CloudEvent

    message = {
        "data": base64.b64encode(json.dumps(envelope).encode()).decode(),
        "attributes": attributes,
        "messageId": uuid.uuid4().hex,
        "publishTime": envelope["timestamp"],
    }
    return CloudEvent(
        {"type": "google.cloud.pubsub.topic.v1.messagePublished", "source": "//bench"},
        {"message": message, "subscription": "bench"},
    )


def child(mode: str, chunk_size: int, size: int) -> None:
    """Serve copies: one JSON line per ``copy`` line on stdin, until stdin ends.

    The answers go to the original stdout; everything else written to stdout (the handler's
    log lines) goes to stderr, the child's log file.
    """
    answers = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    copier = Copier(mode, chunk_size)
    copier.measured_copy(size)  # warm-up
    print(json.dumps({"ready": True}), file=answers, flush=True)
    for line in sys.stdin:
        if line.strip() != "copy":
            break
        print(json.dumps(copier.measured_copy(size)), file=answers, flush=True)


# ----------------------------------------------------------------------------- parent side
def _read_line(stream: IO[bytes], timeout: float, what: str) -> bytes:
    """One line from a child's pipe, or ``TimeoutError`` after ``timeout`` s."""
    ready, _, _ = select.select([stream], [], [], timeout)
    if not ready:
        raise TimeoutError(f"{what}: nothing after {timeout:.0f}s")
    line = stream.readline()
    if not line:
        raise RuntimeError(f"{what}: exited (see its log)")
    return line


def _start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as stderr:
        return subprocess.Popen(  # noqa: S603  argv: sys.executable -m bench.recording_archive, fixed args
            command,
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            start_new_session=True,
        )


def start_sandbox(api_key: str, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """The vendor sandbox on 127.0.0.1 (a free port), its key given in the environment."""
    env = {**os.environ, "TTMA_SANDBOX_API_KEYS": api_key}
    process = _start([sys.executable, "-m", "ttma_sandbox", "--host", HOST], env, log)
    try:
        assert process.stdout is not None
        ready = json.loads(_read_line(process.stdout, READY_TIMEOUT_S, "the sandbox"))
        return process, str(ready["url"])
    except BaseException:
        _stop(process)
        raise


def _stop(process: subprocess.Popen[bytes]) -> None:
    from devstack.emulators import stop_process_group

    if process.stdin is not None:
        with contextlib.suppress(OSError):
            process.stdin.close()
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)
    stop_process_group(process.pid)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)


def _ask(process: subprocess.Popen[bytes], label: str) -> dict[str, float]:
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(b"copy\n")
    process.stdin.flush()
    return json.loads(_read_line(process.stdout, COPY_TIMEOUT_S, label))


def run(context: BenchContext) -> Section:
    """Copy recordings each way, interleaved in rounds; see the module docstring."""
    from google.cloud import firestore, storage

    started = time.monotonic()
    size = context.scaled(FULL_BYTES, QUICK_BYTES)
    rounds = context.scaled(FULL_ROUNDS, QUICK_ROUNDS)
    context.logs.mkdir(parents=True, exist_ok=True)
    run_id = uuid.uuid4().hex[:8]
    bucket_name, collection = f"bench-recording-{run_id}", f"bench_recording_{run_id}"
    api_key = "mbn_live_bench_" + uuid.uuid4().hex
    google_env = {**context.env, "GOOGLE_CLOUD_PROJECT": context.project}
    previous = {key: os.environ.get(key) for key in google_env}
    os.environ.update(google_env)  # this process's clients find the emulators too
    sandbox, children = None, {}
    results: dict[str, list[dict[str, float]]] = {label: [] for label in ROWS}
    notes: list[str] = []
    try:
        storage_client = storage.Client(project=context.project)
        bucket = storage_client.create_bucket(bucket_name)
        sandbox, sandbox_url = start_sandbox(
            api_key, context.logs / "recording_archive-sandbox.log"
        )
        env = {
            **os.environ,
            "ARCHIVE_BUCKET": bucket_name,
            "CALLS_COLLECTION": collection,
            "TTMA_API_KEY": api_key,
            "TTMA_PHONE_HASH_KEY": "bench-phone-hash-key-" + "h" * 20,
            "TTMA_API_BASE_URL": sandbox_url,
        }
        for index, (label, (mode, chunk)) in enumerate(ROWS.items()):
            command = [sys.executable, "-m", "bench.recording_archive", "--child"]
            log = context.logs / f"recording_archive-{index}-{mode}-{chunk}.log"
            children[label] = _start([*command, mode, str(chunk), str(size)], env, log)
        for label, process in children.items():  # they warm up side by side
            assert process.stdout is not None
            _read_line(process.stdout, READY_TIMEOUT_S, label)
        for position, (round_index, label) in enumerate(interleaved(rounds, ROWS)):
            if position % len(ROWS) == 0:  # a new round
                if round_index and time.monotonic() > context.deadline:
                    notes.append(f"stopped after {round_index} rounds: the run's deadline passed")
                    break
                context.wait_for_quiet()
            results[label].append(_ask(children[label], label))
        with contextlib.suppress(Exception):
            bucket.delete(force=True)
        with contextlib.suppress(Exception):
            index = firestore.Client(project=context.project).collection(collection)
            for document in index.list_documents():
                document.delete()
    finally:
        for process in children.values():
            _stop(process)
        if sandbox is not None:
            _stop(sandbox)
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    rows: list[dict[str, Any]] = []
    throughput: dict[str, float] = {}
    rss_mib: dict[str, float] = {}
    distributions: dict[str, list[float]] = {}
    for label, samples in results.items():
        seconds = [sample["seconds"] for sample in samples]
        median = statistics.median(seconds)
        throughput[label] = size / 1e6 / median
        rss_mib[label] = max(sample["rssGrowthBytes"] for sample in samples) / MiB
        distributions[label] = [s * 1000 for s in seconds]
        rows.append(
            {
                "copy": label,
                "MB/s": round(throughput[label], 1),
                "seconds": round(median, 3),
                "peak RSS +MiB": round(rss_mib[label], 1),
            }
        )
    paired = [
        ratio(streamed["seconds"], archived["seconds"])
        for archived, streamed in zip(results[ARCHIVE], results[STREAMED], strict=True)
    ]
    ratios = {
        "archive/streamed MB/s": ratio(throughput[ARCHIVE], throughput[STREAMED]),
        "archive/streamed MB/s median per round": statistics.median(paired),
        "archive/streamed peak RSS": ratio(rss_mib[ARCHIVE], rss_mib[STREAMED]),
    }
    targets = [
        Target("archive/streamed MB/s", ratios["archive/streamed MB/s"], THROUGHPUT_FLOOR, ">="),
        Target(
            f"archive peak RSS +MiB <= {RSS_FACTOR} x streamed + {RSS_SLACK_MIB:g}",
            rss_mib[ARCHIVE],
            RSS_FACTOR * rss_mib[STREAMED] + RSS_SLACK_MIB,
        ),
    ]
    notes.insert(
        0,
        f"a {size / 1e6:g} MB recording, sandbox -> storage emulator; {rounds} interleaved "
        "rounds, one fresh child process per row; MB/s from the median copy, peak RSS growth "
        "the largest (VmHWM reset before each copy).",
    )
    return Section(
        name="recording_archive",
        title="Archiving a recording: archive_recording vs plain copies of the same bytes",
        columns=["copy", "MB/s", "seconds", "peak RSS +MiB"],
        rows=rows,
        ratios=ratios,
        targets=targets,
        distributions=distributions,
        notes=notes,
        seconds=round(time.monotonic() - started, 2),
    )


if __name__ == "__main__":  # the rows' child processes (alone: python -m bench recording_archive)
    child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
