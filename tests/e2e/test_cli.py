"""Every ``ttma-relay`` command against a running local stack (started as ``make dev-up`` does).

In-process through click's ``CliRunner`` (its ``env`` points the Google clients at the stack),
and through the installed console script where a real process matters (``tail`` and signals).
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from devstack.emulators import free_port
from tests.fixtures.stack import ENV_NAMES, RunningStack, stack_environment, wait_until
from ttma_relay.cli import main
from ttma_relay.contract.ended_reasons import KNOWN_ENDED_REASONS

CONSOLE_SCRIPT = Path(sys.executable).with_name("ttma-relay")
COMMANDS = ("send", "configure-webhook", "calls", "call", "tail")


def run(stack: RunningStack | None, *args: str, env: dict[str, str] | None = None) -> Any:
    """Invoke the CLI in-process with only the stack's settings in the environment."""
    base: dict[str, str | None] = dict.fromkeys(ENV_NAMES)
    if stack is not None:
        base.update(stack.env)
    return CliRunner().invoke(main, list(args), env={**base, **(env or {})}, catch_exceptions=False)


def settled_index(stack: RunningStack, call_ids: list[str]) -> dict[str, dict[str, Any]]:
    def check() -> dict[str, dict[str, Any]] | None:
        result = run(stack, "calls", "--json", "--limit", "1000")
        records = {r["callId"]: r for r in map(json.loads, result.stdout.splitlines())}
        done = all(
            records.get(c, {}).get("recordingStatus") in ("archived", "unavailable")
            and records.get(c, {}).get("transcriptStatus") in ("archived", "not_shipped")
            for c in call_ids
        )
        return records if done else None

    return wait_until(check, timeout=45, what="the calls in the index")


@pytest.fixture(scope="module")
def placed_calls(dev_stack: RunningStack) -> list[dict[str, Any]]:
    """Six calls through the whole pipeline: both directions, several end reasons."""
    calls = dev_stack.simulate(count=6, seed=3, deliver=True, spacing_seconds=3600)
    settled_index(dev_stack, [c["id"] for c in calls])
    return calls


# ------------------------------------------------------------------------------ help, codes


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: str) -> None:
    result = run(None, command, "--help")
    assert result.exit_code == 0
    assert "Usage: " in result.output and "--help" in result.output


def test_the_console_script_is_installed() -> None:
    result = subprocess.run([CONSOLE_SCRIPT, "--help"], capture_output=True, text=True, check=False)  # noqa: S603  the venv's ttma-relay console script
    assert result.returncode == 0
    for command in COMMANDS:
        assert command in result.stdout


def test_a_missing_setting_is_a_usage_error() -> None:
    result = run(None, "calls")
    assert result.exit_code == 2
    assert "GOOGLE_CLOUD_PROJECT" in result.output


# ------------------------------------------------------------------------------------ send


def test_a_signed_send_is_accepted(dev_stack: RunningStack) -> None:
    secret = dev_stack.endpoints["TTMA_WEBHOOK_SECRET"]
    result = run(dev_stack, "send", dev_stack.endpoints["INGEST_URL"],
                 env={"TTMA_WEBHOOK_SECRET": secret})  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.output.startswith("200 ")
    assert '"status":"accepted"' in result.output
    assert secret not in result.output


def test_a_tampered_send_is_refused_with_401(dev_stack: RunningStack) -> None:
    secret = dev_stack.endpoints["TTMA_WEBHOOK_SECRET"]
    result = run(dev_stack, "send", "--tamper", dev_stack.endpoints["INGEST_URL"],
                 env={"TTMA_WEBHOOK_SECRET": secret})  # fmt: skip
    assert result.exit_code == 1
    assert result.output.startswith("401 ")
    assert "invalid_signature" in result.output


def test_send_reads_the_url_and_secret_from_the_stacks_env_file(dev_stack: RunningStack) -> None:
    env_file = str(dev_stack.state_dir / "endpoints.env")
    result = run(None, "--env-file", env_file, "send")
    assert result.exit_code == 0, result.output
    assert "accepted" in result.output


def test_send_to_nothing_is_unreachable() -> None:
    url = f"http://127.0.0.1:{free_port()}/"
    result = run(None, "send", url, env={"TTMA_WEBHOOK_SECRET": "s" * 32})
    assert result.exit_code == 2
    assert "could not reach" in result.output


# ------------------------------------------------------------------------ configure-webhook


def test_configure_webhook_points_the_sandbox_at_ingest(dev_stack: RunningStack) -> None:
    values = dev_stack.endpoints
    secret, api_key = values["TTMA_WEBHOOK_SECRET"], values["SANDBOX_API_KEY"]
    arguments = (
        "configure-webhook", "--from", values["TTMA_AGENT_NUMBER"],
        "--url", values["INGEST_URL"], "--base-url", values["SANDBOX_URL"],
    )  # fmt: skip
    env = {"TTMA_API_KEY": api_key, "TTMA_WEBHOOK_SECRET": secret}

    refused = run(None, *arguments, env=env)  # http:// and loopback: what TTMA refuses
    assert refused.exit_code == 1
    assert "HTTPS" in refused.output

    stored = run(None, *arguments, "--allow-insecure-local", env=env)
    assert stored.exit_code == 0, stored.output
    assert f"→ {values['INGEST_URL']} (enabled)" in stored.output
    assert secret not in stored.output and api_key not in stored.output
    with dev_stack.sandbox() as sandbox:
        configs = sandbox.get("/_sandbox/webhooks").json()["data"]
    assert [c["url"] for c in configs] == [values["INGEST_URL"]]
    assert all(c["enabled"] for c in configs)

    wrong_key = run(None, *arguments, "--allow-insecure-local",
                    env={**env, "TTMA_API_KEY": "mbn_live_" + "0" * 40})  # fmt: skip
    assert wrong_key.exit_code == 1
    assert "401" in wrong_key.output

    nowhere = [a if a != values["SANDBOX_URL"] else f"http://127.0.0.1:{free_port()}"
               for a in arguments]  # fmt: skip
    unreachable = run(None, *nowhere, "--allow-insecure-local", env=env)
    assert unreachable.exit_code == 2


# ------------------------------------------------------------------------------ calls, call


def test_calls_lists_the_archived_calls_without_transcripts(
    dev_stack: RunningStack, placed_calls: list[dict[str, Any]]
) -> None:
    result = run(dev_stack, "calls", "--limit", "1000")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["ENDED", "(UTC)", "CALL"]
    for call in placed_calls:
        line = next(line for line in lines if call["id"] in line)
        assert call["direction"] in line and call["endedReason"] in line
        if call["transcript"]:
            assert call["transcript"][:30] not in result.output


def test_calls_filters_by_direction_reason_and_dates(
    dev_stack: RunningStack, placed_calls: list[dict[str, Any]]
) -> None:
    def listed(*options: str) -> set[str]:
        result = run(dev_stack, "calls", "--json", "--limit", "1000", *options)
        assert result.exit_code == 0, result.output
        return {json.loads(line)["callId"] for line in result.stdout.splitlines()}

    ours = {c["id"] for c in placed_calls}
    inbound = {c["id"] for c in placed_calls if c["direction"] == "inbound"}
    assert listed("--direction", "inbound") & ours == inbound
    reason = placed_calls[0]["endedReason"]
    assert listed("--ended-reason", reason) & ours == {
        c["id"] for c in placed_calls if c["endedReason"] == reason
    }
    # The batch ended one hour apart, the newest an hour ago: a window catches part of it.
    newest = max(placed_calls, key=lambda c: c["endedAt"])
    assert listed("--since", "90m") & ours == {newest["id"]}
    assert listed("--until", "90m") & ours == ours - {newest["id"]}
    assert listed("--since", "2999-01-01") == set()
    assert len(listed("--limit", "2")) == 2


def test_call_shows_one_record_and_refuses_an_unknown_id(
    dev_stack: RunningStack, placed_calls: list[dict[str, Any]]
) -> None:
    call = placed_calls[0]
    result = run(dev_stack, "call", call["id"])
    assert result.exit_code == 0
    assert "callId" in result.output and call["id"] in result.output
    assert "recordingStatus" in result.output and "archivePrefix" in result.output
    as_json = json.loads(run(dev_stack, "call", "--json", call["id"]).stdout)
    assert as_json["callId"] == call["id"]
    assert isinstance(as_json["endedAt"], str)
    by_key = run(dev_stack, "call", as_json["callKey"])
    assert by_key.exit_code == 0 and call["id"] in by_key.output

    missing = run(dev_stack, "call", "v3:no-such-call")
    assert missing.exit_code == 1
    assert "not in the index" in missing.output


@pytest.fixture
def undated_index(emulators: dict[str, str], firestore_client: Any, unique: str) -> dict[str, Any]:
    """An index of its own: two dated calls, two with a null endedAt, one without the field
    (as older versions wrote it). Returns the CLI environment and ``--collection`` option."""
    from datetime import UTC, datetime

    collection = firestore_client.collection(f"calls_{unique}")
    ended = datetime(2026, 5, 25, 14, 35, 12, tzinfo=UTC)
    documents = {
        "v3%3Adated-in": {"direction": "inbound", "endedAt": ended, "endedReason": "botHangup"},
        "v3%3Adated-out": {"direction": "outbound", "endedAt": ended, "endedReason": None},
        "v3%3Anull-in": {"direction": "inbound", "endedAt": None, "endedReason": "botHangup"},
        "v3%3Anull-out": {"direction": "outbound", "endedAt": None, "endedReason": None},
        "v3%3Aold": {"direction": "inbound", "endedReason": "callerHangup"},
    }
    for key, document in documents.items():
        collection.document(key).set({"callId": key.replace("%3A", ":"), **document})
    env = {name: emulators[name] for name in ("FIRESTORE_EMULATOR_HOST", "GOOGLE_CLOUD_PROJECT")}
    return {"env": env, "options": ("--collection", collection.id)}


def listed_ids(result: Any) -> list[str]:
    return [json.loads(line)["callId"] for line in result.stdout.splitlines()]


def test_calls_counts_the_calls_it_cannot_place_in_time(undated_index: dict[str, Any]) -> None:
    options, env = undated_index["options"], undated_index["env"]
    table = run(None, "calls", *options, env=env)
    assert table.exit_code == 0, table.output
    assert "null-" not in table.stdout and "v3:old" not in table.stdout
    [note] = table.stderr.splitlines()[1:]
    assert note.startswith(
        "3 calls in the index have no usable endedAt (null or unparseable) and are not in"
        " this list: `ttma-relay calls --undated` lists 2 of them; 1 has no endedAt field at all"
    )

    as_json = run(None, "calls", "--json", *options, env=env)
    assert as_json.exit_code == 0
    assert sorted(listed_ids(as_json)) == ["v3:dated-in", "v3:dated-out"]  # JSON lines only
    assert "3 calls in the index have no usable endedAt" in as_json.stderr
    since = run(None, "calls", "--json", "--since", "2026-05-01", *options, env=env)
    assert sorted(listed_ids(since)) == ["v3:dated-in", "v3:dated-out"]
    assert "3 calls in the index have no usable endedAt" in since.stderr


def test_calls_undated_lists_the_null_ended_at_calls(undated_index: dict[str, Any]) -> None:
    options, env = undated_index["options"], undated_index["env"]
    result = run(None, "calls", "--undated", "--json", *options, env=env)
    assert result.exit_code == 0, result.output
    assert listed_ids(result) == ["v3:null-in", "v3:null-out"]  # callKey order
    assert "no usable endedAt" not in result.stderr
    assert "1 call more in the index has no endedAt field at all" in result.stderr
    inbound = run(None, "calls", "--undated", "--direction", "inbound", "--json", *options, env=env)
    assert listed_ids(inbound) == ["v3:null-in"]
    table = run(None, "calls", "--undated", *options, env=env)
    assert "v3:null-in" in table.stdout and "v3:dated-in" not in table.stdout
    refused = run(None, "calls", "--undated", "--since", "2h", *options, env=env)
    assert refused.exit_code == 2


def test_the_count_line_without_calls_lacking_the_field(
    emulators: dict[str, str], firestore_client: Any, unique: str
) -> None:
    collection = firestore_client.collection(f"calls_{unique}")
    collection.document("v3%3Aa").set({"callId": "v3:a", "endedAt": None})
    env = {name: emulators[name] for name in ("FIRESTORE_EMULATOR_HOST", "GOOGLE_CLOUD_PROJECT")}
    result = run(None, "calls", "--collection", collection.id, env=env)
    assert result.stderr.splitlines() == [
        "0 calls",
        "1 call in the index has no usable endedAt (null or unparseable) and is not in this"
        " list: `ttma-relay calls --undated` lists it",
    ]
    undated = run(None, "calls", "--undated", "--collection", collection.id, env=env)
    assert undated.stderr.splitlines() == ["1 call"]


def test_calls_says_nothing_when_every_call_has_an_end_time(
    emulators: dict[str, str], firestore_client: Any, unique: str
) -> None:
    from datetime import UTC, datetime

    collection = firestore_client.collection(f"calls_{unique}")
    collection.document("v3%3Aa").set({"callId": "v3:a", "endedAt": datetime.now(UTC)})
    env = {name: emulators[name] for name in ("FIRESTORE_EMULATOR_HOST", "GOOGLE_CLOUD_PROJECT")}
    result = run(None, "calls", "--collection", collection.id, env=env)
    assert result.exit_code == 0
    assert result.stderr.strip() == "1 call"


def test_an_unknown_end_reason_is_warned_about_and_still_asked(
    undated_index: dict[str, Any],
) -> None:
    options, env = undated_index["options"], undated_index["env"]
    unknown = run(None, "calls", "--json", "--ended-reason", "vendorNewReason", *options, env=env)
    assert unknown.exit_code == 0
    assert unknown.stdout == ""
    [warning] = [line for line in unknown.stderr.splitlines() if line.startswith("warning:")]
    assert "'vendorNewReason'" in warning
    assert all(reason in warning for reason in KNOWN_ENDED_REASONS)

    known = run(None, "calls", "--json", "--ended-reason", "botHangup", *options, env=env)
    assert known.exit_code == 0
    assert listed_ids(known) == ["v3:dated-in"]
    assert "warning" not in known.stderr


def test_an_unreachable_index_exits_2(dev_stack: RunningStack) -> None:
    dead = {"FIRESTORE_EMULATOR_HOST": f"127.0.0.1:{free_port()}"}
    assert run(dev_stack, "calls", env=dead).exit_code == 2
    assert run(dev_stack, "call", "v3:x", env=dead).exit_code == 2


# ------------------------------------------------------------------------------------ tail


def tail_subscriptions(stack: RunningStack) -> list[str]:
    with stack_environment(stack):
        from google.cloud import pubsub_v1

        publisher = pubsub_v1.PublisherClient()
        topic = publisher.topic_path(stack.endpoints["GOOGLE_CLOUD_PROJECT"],
                                     stack.endpoints["CALL_EVENTS_TOPIC"])  # fmt: skip
        names = list(publisher.list_topic_subscriptions(request={"topic": topic}))
    return [name for name in names if "/ttma-relay-tail-" in name]


def start_tail(stack: RunningStack, *options: str) -> subprocess.Popen[str]:
    env = {**os.environ, **stack.env}
    process = subprocess.Popen(  # noqa: S603  the venv's ttma-relay console script
        [CONSOLE_SCRIPT, "tail", *options],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert process.stderr is not None
    first = process.stderr.readline()  # printed once the subscription exists
    assert first.startswith("listening on "), first + process.stderr.read()
    return process


def test_tail_streams_an_event_and_removes_its_subscription(dev_stack: RunningStack) -> None:
    tail = start_tail(dev_stack, "--count", "1", "--timeout", "30", "--json")
    assert len(tail_subscriptions(dev_stack)) == 1
    sent = run(None, "--env-file", str(dev_stack.state_dir / "endpoints.env"), "send")
    assert sent.exit_code == 0
    delivery_id = json.loads(sent.stdout.splitlines()[1])["deliveryId"]
    out, err = tail.communicate(timeout=40)
    assert tail.returncode == 0, err
    event = json.loads(out.splitlines()[0])
    assert event["attributes"]["deliveryId"] == delivery_id
    assert event["attributes"]["source"] == "webhook"
    assert "data" not in event  # the call (transcript, numbers) only with --data
    assert tail_subscriptions(dev_stack) == []


def test_tail_lines_and_a_timeout_before_count_exits_1(dev_stack: RunningStack) -> None:
    result = run(dev_stack, "tail", "--count", "1", "--timeout", "1")
    assert result.exit_code == 1
    assert "0 of 1 events" in result.output
    assert tail_subscriptions(dev_stack) == []


def test_tail_is_stopped_by_sigterm_and_cleans_up(dev_stack: RunningStack) -> None:
    tail = start_tail(dev_stack)
    assert tail.stdout is not None
    run(None, "--env-file", str(dev_stack.state_dir / "endpoints.env"), "send")
    readable, _, _ = select.select([tail.stdout], [], [], 20)
    assert readable, "no event line within 20 s"
    fields = tail.stdout.readline().split()
    tail.send_signal(signal.SIGTERM)
    tail.communicate(timeout=30)
    assert tail.returncode == 0
    assert fields[1].startswith("v3:sample-") and fields[3] == "webhook"  # time, id, reason, ...
    assert tail_subscriptions(dev_stack) == []
