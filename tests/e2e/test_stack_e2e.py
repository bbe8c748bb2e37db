"""End to end on the local stack, brought up and down exactly as ``make dev-up`` / ``dev-down``.

The sandbox sends real signed webhooks (a mixed batch covering every end reason, a resent
duplicate, concurrent copies that provoke in-flight 409s and sender retries, a late recording
that is retried through Pub/Sub's redelivery); every call must end up in the bucket and the
index as the contract says, with no dead letter and no 410 anywhere. A call whose webhook
never went out is found by ``reconcile`` (served once ``main.py`` defines it). No secret is on
any of the stack's command lines. Then ``down`` must leave no process and no listening port
behind. ``make dev`` in the foreground, its output piped to a reader that dies with the Ctrl-C
(``| tee``), must stop everything on SIGINT and on SIGHUP (a closed terminal).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import stat
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack.emulators import port_is_free
from devstack.stack.config import main_has_entry_point
from devstack.stack.processes import StackState, group_members, marked_processes
from tests.fixtures.stack import (
    TEST_STACK_OPTIONS,
    UP_TIMEOUT_SECONDS,
    RunningStack,
    read_until,
    stack_command,
    stack_environment,
    start_stack,
    stop_stack,
    wait_until,
)
from ttma_relay.contract.call_keys import call_key
from ttma_relay.functions import NAMES as FUNCTION_NAMES

REQUIRED_ENDPOINTS = (
    "INGEST_URL", "SANDBOX_URL", "SANDBOX_API_KEY", "FIRESTORE_EMULATOR_HOST",
    "PUBSUB_EMULATOR_HOST", "STORAGE_EMULATOR_HOST", "GOOGLE_CLOUD_PROJECT", "CALL_EVENTS_TOPIC",
    "ARCHIVE_BUCKET", "TTMA_WEBHOOK_SECRET",
)  # fmt: skip
SETTLED_TRANSCRIPT = {"archived", "not_shipped"}
SETTLED_RECORDING = {"archived", "unavailable"}


def place_calls(stack: RunningStack) -> list[dict[str, Any]]:
    calls = stack.simulate(count=11, seed=7, deliver=True)  # every end reason, mixed cases
    calls += stack.simulate(direction="inbound", deliver=True, duplicates=1)
    calls += stack.simulate(deliver=True, duplicates=2, concurrent_duplicates=True)
    calls += stack.simulate(recording="late", late_after_seconds=2, deliver=True)
    return calls


def reconcile_a_lost_call(stack: RunningStack) -> list[dict[str, Any]]:
    """A call whose webhook was never sent: reconcile must publish it (and only it)."""
    lost = stack.simulate(direction="inbound", deliver=False)
    published, deadline = 0, time.monotonic() + 30  # the local grace period is 5 s
    while True:
        response = httpx.post(stack.endpoints["RECONCILE_URL"], timeout=60)
        assert response.status_code == 200, response.text
        report = response.json()
        assert report["failed"] == 0, report
        published += report["published"]
        if not report["tooRecent"] or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert published == 1, report
    return lost


def settled(firestore_client: Any, stack: RunningStack, calls: list[dict[str, Any]]) -> Any:
    collection = firestore_client.collection(stack.endpoints["CALLS_COLLECTION"])
    records = {}
    references = [collection.document(call_key(call["id"])) for call in calls]
    for snapshot in firestore_client.get_all(references):
        record = snapshot.to_dict() if snapshot.exists else None
        if (
            record is None
            or record.get("transcriptStatus") not in SETTLED_TRANSCRIPT
            or record.get("recordingStatus") not in SETTLED_RECORDING
        ):
            return None
        records[record["callId"]] = record
    return records


def dead_letters(stack: RunningStack) -> list[Any]:
    from google.api_core import exceptions as gexc
    from google.cloud import pubsub_v1

    subscriber = pubsub_v1.SubscriberClient()
    path = subscriber.subscription_path(
        stack.endpoints["GOOGLE_CLOUD_PROJECT"], stack.endpoints["DEAD_LETTER_SUBSCRIPTION"]
    )
    try:
        response = subscriber.pull(
            request={"subscription": path, "max_messages": 100}, timeout=2, retry=None
        )
        return list(response.received_messages)
    except gexc.DeadlineExceeded:
        return []
    finally:
        subscriber.close()


def check_archive(stack: RunningStack, calls: list[dict[str, Any]], records: dict) -> None:
    from google.cloud import storage

    bucket = storage.Client(project=stack.endpoints["GOOGLE_CLOUD_PROJECT"]).bucket(
        stack.endpoints["ARCHIVE_BUCKET"]
    )
    sandbox = stack.sandbox()
    auth = {"Authorization": f"Bearer {stack.endpoints['SANDBOX_API_KEY']}"}
    for call in calls:
        record = records[call["id"]]
        prefix = record["archivePrefix"].split("/", 3)[3]
        names = {blob.name.rsplit("/", 1)[-1] for blob in bucket.list_blobs(prefix=prefix)}
        expected = {"call.json"}
        if call["hasTranscript"]:
            expected |= {"transcript.txt", "transcript.json"}
            assert record["transcriptStatus"] == "archived", call["id"]
        else:
            assert record["transcriptStatus"] == "not_shipped", call["id"]
        digest = sandbox.get(f"/_sandbox/calls/{call['id']}/recording-digest").json()
        recording = sandbox.get(f"/v1/voice/calls/{call['id']}/recording", headers=auth)
        if recording.status_code == 200:  # the vendor has it (now): it must be archived
            assert record["recordingStatus"] == "archived", call["id"]
            expected.add("recording.mp3")
            data = bucket.blob(prefix + "recording.mp3").download_as_bytes()
            assert len(data) == digest["size"]
            assert hashlib.sha256(data).hexdigest() == digest["sha256"]
        else:
            assert recording.status_code == 404
            assert record["recordingStatus"] == "unavailable", call["id"]
        assert names == expected, (call["id"], names, record)
        assert record["callId"] == call["id"]
        assert record["direction"] == call["direction"]
        assert record["endedReason"] == call["endedReason"]
    sandbox.close()


def test_stack_up_deliveries_archived_then_down_leaves_nothing(tmp_path) -> None:
    stack = start_stack(tmp_path / "devstack")
    state = stack.state()
    try:
        assert state.status == "up"
        assert "healthy in" in stack.up_output
        assert_the_health_probes_were_quiet(stack)
        env_file = stack.state_dir / "endpoints.env"
        assert stat.S_IMODE(os.stat(env_file).st_mode) == 0o600  # holds the dev secrets
        for name in REQUIRED_ENDPOINTS:
            assert stack.endpoints.get(name), name
        assert stack.endpoints["TTMA_WEBHOOK_SECRET"] not in stack.up_output
        assert stack.endpoints["SANDBOX_API_KEY"] not in stack.up_output
        for function in FUNCTION_NAMES:  # healthy = warmed: before any request of ours
            lines = (stack.state_dir / "logs" / f"{function}.log").read_text().splitlines()
            warmed = [json.loads(line) for line in lines if '"outcome":"warmed"' in line]
            assert warmed and "failures" not in warmed[0], (function, warmed)
        assert_no_secret_on_a_command_line(stack, state)

        webhook_calls = place_calls(stack)
        late_id = webhook_calls[-1]["id"]
        deliveries = stack.deliveries(wait=60)
        ours = [d for d in deliveries if d["call_id"] in {c["id"] for c in webhook_calls}]
        assert len(ours) == len(webhook_calls)
        assert all(d["outcome"] == "delivered" for d in ours), ours
        attempts = [a for d in ours for a in d["attempts"]]
        assert not [a for a in attempts if a["status"] == 410], "a 410 disables the webhook"
        assert all(a["status"] is not None for a in attempts), "connection errors"
        assert len(attempts) > len(webhook_calls), "duplicates and retries were sent"
        late = next(d for d in ours if d["call_id"] == late_id)
        assert late["recording_available"] is False  # sent before its recording was ready
        reconciled = reconcile_a_lost_call(stack) if main_has_entry_point("reconcile") else []
        calls = webhook_calls + reconciled

        with stack_environment(stack):
            from google.cloud import firestore

            db = firestore.Client(project=stack.endpoints["GOOGLE_CLOUD_PROJECT"])
            records = wait_until(
                lambda: settled(db, stack, calls), timeout=60, what="every call archived"
            )
            for delivery in ours:
                assert delivery["delivery_id"] in records[delivery["call_id"]]["deliveryIds"]
            for call in reconciled:
                assert records[call["id"]]["deliveryIds"] == [f"reconcile:{call['id']}"]
            # ... archived through Pub/Sub's redelivery once it was ready
            assert records[late_id]["recordingStatus"] == "archived"
            check_archive(stack, calls, records)
            assert dead_letters(stack) == []
    finally:
        result = stop_stack(stack.state_dir)
    assert result.returncode == 0, result.stderr
    assert_nothing_left(state.processes, state.ports)
    assert marked_processes(state.stack_id) == []
    assert not (stack.state_dir / "stack.json").exists()
    assert not (stack.state_dir / "endpoints.env").exists()
    assert (stack.state_dir / "logs" / "ingest.log").exists()  # logs are kept


def json_lines(path: Path) -> list[dict[str, Any]]:
    """The JSON log records in a function's log (gunicorn's own lines are plain text)."""
    lines = path.read_text(errors="replace").splitlines() if path.exists() else []
    return [json.loads(line) for line in lines if line.startswith("{")]


def assert_the_health_probes_were_quiet(stack: RunningStack) -> None:
    """``up`` probed every function with HEAD: ingest logged it at INFO, reconcile did not run."""
    logs = stack.state_dir / "logs"
    ingest = json_lines(logs / "ingest.log")
    assert [r for r in ingest if r["severity"] != "INFO"] == [], ingest
    probes = [r for r in ingest if r["outcome"] != "warmed"]  # the warm-up: its own line
    assert {(r["outcome"], r.get("method")) for r in probes} == {("method_not_allowed", "HEAD")}
    if main_has_entry_point("reconcile"):
        runs = [r for r in json_lines(logs / "reconcile.log") if r["outcome"] != "warmed"]
        assert runs == []  # a GET probe would have run it


def assert_no_secret_on_a_command_line(stack: RunningStack, state: StackState) -> None:
    """``ps`` shows every process's command line to every user: no secret may be on one."""
    secrets = {name: stack.endpoints[name] for name in ("SANDBOX_API_KEY", "TTMA_WEBHOOK_SECRET")}
    pids = {pid for record in state.processes for pid in group_members(record.pgid)}
    pids |= set(marked_processes(state.stack_id))  # everything they started (the Java children)
    command_lines = {}
    for pid in pids:
        try:
            command_lines[pid] = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:  # gone meanwhile (a short-lived helper)
            continue
    sandbox = next(record for record in state.processes if record.name == "sandbox")
    assert b"ttma_sandbox" in command_lines[sandbox.pid]  # what was read is a command line
    assert {record.pid for record in state.processes} <= command_lines.keys()
    for pid, line in command_lines.items():
        for name, value in secrets.items():
            assert value and value.encode() not in line, f"{name} is on the command line of {pid}"


def assert_nothing_left(processes: list, ports: dict[str, int]) -> None:
    for record in processes:
        assert group_members(record.pgid) == [], f"{record.name} left running"
    busy = {name: port for name, port in ports.items() if not port_is_free(port)}
    assert busy == {}, f"ports still listening after down: {busy}"


def test_down_cleans_up_after_an_up_killed_half_way(tmp_path) -> None:
    state_dir = tmp_path / "devstack"
    up = subprocess.Popen(  # noqa: S603  stack_command: sys.executable -m devstack.stack
        stack_command("up", state_dir, "--free-ports", *TEST_STACK_OPTIONS),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        state = wait_until(
            lambda: (s := StackState.load(state_dir)) and len(s.processes) >= 5 and s,
            timeout=30, what="half of the stack started", every=0.02,
        )  # fmt: skip
    finally:
        up.kill()  # no chance to clean up after itself
        up.wait()
    state = StackState.load(state_dir)
    assert state is not None and state.status == "starting"
    assert any(group_members(record.pgid) for record in state.processes)
    result = stop_stack(state_dir)
    assert result.returncode == 0, result.stderr
    assert_nothing_left(state.processes, state.ports)
    assert marked_processes(state.stack_id) == []  # nor one started but not yet recorded
    assert not (state_dir / "stack.json").exists()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGHUP], ids=["SIGINT", "SIGHUP"])
def test_dev_stops_everything_on_a_signal_with_its_output_gone(tmp_path, signum) -> None:
    """``make dev 2>&1 | tee dev.log``, then Ctrl-C: tee dies with it, every write of the
    shutdown fails (a broken pipe). SIGHUP: the terminal was closed. Nothing may be left."""
    state_dir = tmp_path / "devstack"
    read_end, write_end = os.pipe()
    dev = subprocess.Popen(  # noqa: S603  stack_command: sys.executable -m devstack.stack
        stack_command("dev", state_dir, "--free-ports", *TEST_STACK_OPTIONS),
        stdin=subprocess.DEVNULL, stdout=write_end, stderr=write_end,
        start_new_session=True,  # its own process group: the terminal's foreground job
    )  # fmt: skip
    os.close(write_end)
    try:
        try:
            shown = read_until(read_end, b"Following the functions' logs", UP_TIMEOUT_SECONDS)
        finally:
            os.close(read_end)  # the reader is gone: tee died with the Ctrl-C
        assert b"healthy in" in shown
        state = StackState.load(state_dir)
        assert state is not None and state.status == "up"
        assert all(group_members(record.pgid) for record in state.processes)
        os.killpg(dev.pid, signum)
        code = dev.wait(timeout=60)
        assert_nothing_left(state.processes, state.ports)
        assert marked_processes(state.stack_id) == []
        assert code == 0
        assert not (state_dir / "stack.json").exists()
    finally:
        if dev.poll() is None:
            os.killpg(dev.pid, signal.SIGKILL)
            dev.wait()
        stop_stack(state_dir)  # whatever a failed shutdown left
