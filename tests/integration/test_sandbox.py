"""Contract tests of the vendor sandbox itself (``ttma_sandbox``), over real HTTP.

If the sandbox drifts from the vendor contract, every test built on it proves nothing: these
tests pin its shapes, validation, auth, signed URLs, MP3 bytes and webhook sender.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import select
import signal
import ssl
import subprocess
import sys
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

import verify
from tests.support.paths import REPO_ROOT
from ttma_sandbox import (
    CALL_FIELDS,
    DEFAULT_AGENT_NUMBER,
    END_REASONS,
    SandboxHandle,
    SandboxState,
    recording_chunks,
    recording_digest,
)
from ttma_sandbox.api_keys import API_KEYS_ENV
from ttma_sandbox.mp3 import CHUNK_BYTES
from ttma_sandbox.webhook_receiver import WebhookReceiver

SECRET = "whsec_sandbox_test_secret_0123456789abcdef"  # noqa: S105  the sandbox tests' webhook secret, not a credential
REPO_ROOT = REPO_ROOT
# MPEG-1 Layer III tables, written out here independently of the sandbox's generator.
MPEG1_L3_KBPS = (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, -1)
MPEG1_SAMPLE_RATES = (44100, 48000, 32000, -1)


# Building an SSL context costs ~60 ms: every client in this module shares one.
_TLS = ssl.create_default_context()


def api(sandbox: SandboxHandle, key: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key or sandbox.api_key}"} if key != "" else {}
    return httpx.Client(base_url=sandbox.url, headers=headers, trust_env=False, verify=_TLS)


def plain() -> httpx.Client:
    """A client without the API key (signed URLs, control API)."""
    return httpx.Client(trust_env=False, verify=_TLS)


def fetch(url: str, **kwargs: Any) -> httpx.Response:
    with plain() as client:
        return client.get(url, **kwargs)


def get(sandbox: SandboxHandle, path: str, **kwargs: Any) -> httpx.Response:
    with api(sandbox) as client:
        return client.get(path, **kwargs)


def configure(sandbox: SandboxHandle, url: str, secret: str = SECRET) -> None:
    sandbox.state.configure_webhook(DEFAULT_AGENT_NUMBER, url, secret, True)


def error_of(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}
    assert isinstance(body["error"]["code"], str) and isinstance(body["error"]["message"], str)
    return body["error"]


def parse_mp3_frames(data: bytes) -> int:
    """Walk the ID3v2 tag and every MPEG frame header; return the number of frames."""
    assert data[:3] == b"ID3"
    tag_size = 0
    for byte in data[6:10]:
        assert byte < 0x80  # syncsafe
        tag_size = (tag_size << 7) | byte
    offset, frames = 10 + tag_size, 0
    while offset < len(data):
        header = int.from_bytes(data[offset : offset + 4], "big")
        assert header >> 20 == 0xFFF, f"no frame sync at {offset}"  # 0xFFE + MPEG-1 bit
        assert (header >> 19) & 0b11 == 0b11  # MPEG-1
        assert (header >> 17) & 0b11 == 0b01  # Layer III
        bitrate = MPEG1_L3_KBPS[(header >> 12) & 0xF] * 1000
        sample_rate = MPEG1_SAMPLE_RATES[(header >> 10) & 0b11]
        assert bitrate > 0 and sample_rate > 0
        offset += 144 * bitrate // sample_rate + ((header >> 9) & 1)
        frames += 1
    assert offset == len(data), "the last frame must end exactly at the end of the file"
    return frames


# --------------------------------------------------------------------------- call objects


def test_call_has_the_documented_fields_in_the_documented_order(sandbox: SandboxHandle) -> None:
    call = sandbox.state.simulate_call(direction="outbound", ended_reason="botHangup")
    response = get(sandbox, f"/v1/voice/calls/{call['id']}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    data = response.json()["data"]
    assert tuple(data) == CALL_FIELDS
    assert data["id"].startswith("v3:") and data["status"] == "completed"
    assert data["endedReason"] == "botHangup" and data["callerNumber"] == DEFAULT_AGENT_NUMBER
    assert data["recordingAvailable"] is True and data["hasTranscript"] is True
    assert data["transcript"].startswith("[Agent] ")
    assert set(data["task"]) == {"goal", "script", "facts", "escalation"}
    assert set(data["usage"]) == {"turnCount", "inputTokens", "outputTokens"}
    assert set(data["quality"]) == {"grade", "p50ResponseLatencyMs", "p95ResponseLatencyMs"}
    started = datetime.fromisoformat(data["startedAt"])
    ended = datetime.fromisoformat(data["endedAt"])
    assert data["endedAt"].endswith("Z") and len(data["endedAt"]) == len("2026-05-25T14:35:12.000Z")
    assert (ended - started).total_seconds() == data["durationSeconds"]


def test_inbound_old_style_and_unshipped_calls_carry_documented_nulls(
    sandbox: SandboxHandle,
) -> None:
    state = sandbox.state
    inbound = state.simulate_call(direction="inbound")
    old = state.simulate_call(old_style=True)
    unshipped = state.simulate_call(transcript_shipped=False)
    assert inbound["task"] is None and inbound["calledNumber"] == DEFAULT_AGENT_NUMBER
    assert old["endedReason"] is None and old["transcript"] is None
    assert unshipped["hasTranscript"] is False and unshipped["transcript"] is None
    with pytest.raises(ValueError, match="inbound"):
        state.simulate_call(direction="inbound", with_task=True)


@pytest.mark.parametrize("encode", [False, True], ids=["raw-colon", "percent-encoded"])
def test_call_ids_with_a_colon_work_raw_or_encoded(sandbox: SandboxHandle, encode: bool) -> None:
    call = sandbox.state.simulate_call()
    path_id = call["id"].replace(":", "%3A") if encode else call["id"]
    assert get(sandbox, f"/v1/voice/calls/{path_id}").json()["data"]["id"] == call["id"]
    assert get(sandbox, f"/v1/voice/calls/{path_id}/recording").status_code == 200


def test_unknown_call_is_404_with_an_error_body(sandbox: SandboxHandle) -> None:
    response = get(sandbox, "/v1/voice/calls/v3:doesNotExist")
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"


def test_simulate_calls_covers_every_end_reason_deterministically(sandbox: SandboxHandle) -> None:
    calls = sandbox.state.simulate_calls(40, seed=7)
    assert {c["endedReason"] for c in calls if c["endedReason"]} == set(END_REASONS)
    assert {c["direction"] for c in calls} == {"inbound", "outbound"}
    assert any(c["endedReason"] is None for c in calls)  # old-style
    assert any(not c["hasTranscript"] for c in calls)
    other = SandboxState().simulate_calls(40, seed=7)
    assert [c["id"] for c in other] == [c["id"] for c in calls]
    assert [c["transcript"] for c in other] == [c["transcript"] for c in calls]


# ------------------------------------------------------------------------------------ auth


def test_missing_and_unknown_keys_are_401(sandbox: SandboxHandle) -> None:
    call = sandbox.state.simulate_call()
    for key, code in (("", "missing_api_key"), ("mbn_live_unknown", "invalid_api_key")):
        with api(sandbox, key) as client:
            response = client.get(f"/v1/voice/calls/{call['id']}")
        assert response.status_code == 401
        assert error_of(response)["code"] == code
        assert "mbn_live_unknown" not in response.text


def test_403_names_the_missing_scope(sandbox: SandboxHandle) -> None:
    read_only = sandbox.state.add_api_key(scopes=["voice:read"])
    call_only = sandbox.state.add_api_key(scopes=["voice:call"])
    body = {"from": DEFAULT_AGENT_NUMBER, "url": "https://example.com/hook", "secret": SECRET}
    with api(sandbox, read_only) as client:
        refused = client.put("/v1/voice/webhooks", json=body)
    with api(sandbox, call_only) as client:
        unreadable = client.get("/v1/voice/calls")
    assert refused.status_code == 403 and error_of(refused)["requiredScope"] == "voice:call"
    assert "voice:call" in error_of(refused)["message"]
    assert unreadable.status_code == 403 and error_of(unreadable)["requiredScope"] == "voice:read"


# ------------------------------------------------------------------------------------ list


def test_list_pages_newest_first_without_transcripts(sandbox: SandboxHandle) -> None:
    sandbox.state.simulate_calls(60, seed=1)
    first = get(sandbox, "/v1/voice/calls").json()
    assert len(first["data"]) == 25 and first["pagination"]["hasMore"] is True
    seen, params = [], {"limit": "20"}
    while True:
        page = get(sandbox, "/v1/voice/calls", params=params).json()
        assert all("transcript" not in item for item in page["data"])
        seen.extend(page["data"])
        if not page["pagination"]["hasMore"]:
            assert page["pagination"]["cursor"] is None
            break
        params["cursor"] = page["pagination"]["cursor"]
    assert [c["id"] for c in seen] == sandbox.state.call_ids()
    assert len({c["id"] for c in seen}) == 60
    starts = [c["startedAt"] for c in seen]
    assert starts == sorted(starts, reverse=True)


def test_list_filters(sandbox: SandboxHandle) -> None:
    calls = sandbox.state.simulate_calls(30, seed=2, spacing_seconds=3600)
    inbound = get(sandbox, "/v1/voice/calls", params={"direction": "inbound", "limit": 100})
    assert {c["direction"] for c in inbound.json()["data"]} == {"inbound"}
    assert len(inbound.json()["data"]) == sum(c["direction"] == "inbound" for c in calls)
    timeouts = get(sandbox, "/v1/voice/calls", params={"endedReason": "silenceTimeout"}).json()
    assert {c["endedReason"] for c in timeouts["data"]} == {"silenceTimeout"}
    middle = sorted(c["startedAt"] for c in calls)[10]
    after = get(sandbox, "/v1/voice/calls", params={"after": middle, "limit": 100}).json()
    before = get(sandbox, "/v1/voice/calls", params={"before": middle, "limit": 100}).json()
    assert len(after["data"]) == 19 and len(before["data"]) == 10


@pytest.mark.parametrize(
    ("params", "code", "param"),
    [
        ({"limit": "0"}, "invalid_parameter", "limit"),
        ({"limit": "101"}, "invalid_parameter", "limit"),
        ({"limit": "ten"}, "invalid_parameter", "limit"),
        ({"direction": "sideways"}, "invalid_parameter", "direction"),
        ({"after": "yesterday"}, "invalid_parameter", "after"),
        ({"before": "2026-13-01T00:00:00Z"}, "invalid_parameter", "before"),
        ({"cursor": "not-a-cursor"}, "invalid_parameter", "cursor"),
        ({"direction": "inbound", "endedReason": "callerHangup"}, "conflicting_parameters", None),
    ],
)
def test_list_validation_errors(
    sandbox: SandboxHandle, params: dict[str, str], code: str, param: str | None
) -> None:
    response = get(sandbox, "/v1/voice/calls", params=params)
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == code and error.get("param") == param


# ------------------------------------------------------------------------------ recordings


def recording_url(sandbox: SandboxHandle, call_id: str) -> dict[str, str]:
    response = get(sandbox, f"/v1/voice/calls/{call_id}/recording")
    assert response.status_code == 200, response.text
    return response.json()["data"]


def test_recording_is_a_valid_streamed_mp3(sandbox: SandboxHandle) -> None:
    call = sandbox.state.simulate_call(recording_bytes=300_001)
    link = recording_url(sandbox, call["id"])
    response = fetch(link["url"])
    assert response.status_code == 200
    assert response.headers["content-type"] == "audio/mpeg"
    assert response.headers["content-length"] == "300001" and len(response.content) == 300_001
    frames = parse_mp3_frames(response.content)
    assert 0 < 300_001 - frames * 384 < 384 + 200  # a small ID3 tag, then only whole frames
    expected = sandbox.state.expected_recording(call["id"])
    assert hashlib.sha256(response.content).hexdigest() == expected.sha256
    assert response.content == sandbox.state.expected_recording_bytes(call["id"])
    other = recording_digest("v3:another", 300_001)
    assert other.sha256 != expected.sha256  # content depends on the call


def test_recording_bytes_are_generated_lazily() -> None:
    chunks = recording_chunks("v3:big", 200_000_000)
    first = [next(chunks) for _ in range(3)]
    assert all(len(chunk) <= CHUNK_BYTES for chunk in first)
    tracemalloc.start()
    try:
        total = sum(len(chunk) for chunk in recording_chunks("v3:medium", 8_000_000))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert total == 8_000_000 and peak < 1_000_000


def test_large_recording_starts_streaming_at_once(sandbox: SandboxHandle) -> None:
    call = sandbox.state.simulate_call(recording_bytes=200_000_000)
    link = recording_url(sandbox, call["id"])
    started = time.monotonic()
    with plain() as client, client.stream("GET", link["url"]) as response:
        assert response.headers["content-length"] == "200000000"
        first = next(response.iter_raw(65536))
    assert first[:3] == b"ID3" and time.monotonic() - started < 1.0


def test_signed_url_expires_five_minutes_after_issue(sandbox: SandboxHandle) -> None:
    call = sandbox.state.simulate_call()
    link = recording_url(sandbox, call["id"])
    expires_at = datetime.fromisoformat(link["expiresAt"])
    ttl = (expires_at - sandbox.state.clock.now()).total_seconds()
    assert 298 < ttl <= 300
    sandbox.state.clock.advance(ttl - 2)
    assert fetch(link["url"]).status_code == 200
    sandbox.state.clock.advance(3)
    expired = fetch(link["url"])
    assert expired.status_code == 403 and "<Code>ExpiredToken</Code>" in expired.text
    assert recording_url(sandbox, call["id"])["url"] != link["url"]  # a fresh one works
    assert fetch(recording_url(sandbox, call["id"])["url"]).status_code == 200


def test_signed_url_refuses_tampering_and_bearer_headers(sandbox: SandboxHandle) -> None:
    call = sandbox.state.simulate_call()
    url = recording_url(sandbox, call["id"])["url"]
    tampered = url[:-4] + ("0000" if not url.endswith("0000") else "1111")
    assert fetch(tampered).status_code == 403
    with_key = fetch(url, headers={"Authorization": f"Bearer {sandbox.api_key}"})
    assert with_key.status_code == 400
    signed_log = sandbox.state.requests("/_recordings/")
    assert all(entry["query"] == {} for entry in signed_log)  # signatures never logged


def test_late_recording_is_404_until_ready(sandbox: SandboxHandle) -> None:
    call = sandbox.state.simulate_call(recording="late", late_after_seconds=45)
    never = sandbox.state.simulate_call(recording="never")
    assert call["recordingAvailable"] is False
    assert get(sandbox, f"/v1/voice/calls/{call['id']}/recording").status_code == 404
    sandbox.state.clock.advance(46)
    assert get(sandbox, f"/v1/voice/calls/{call['id']}").json()["data"]["recordingAvailable"]
    assert get(sandbox, f"/v1/voice/calls/{call['id']}/recording").status_code == 200
    missing = get(sandbox, f"/v1/voice/calls/{never['id']}/recording")
    assert missing.status_code == 404 and error_of(missing)["code"] == "not_found"


# ---------------------------------------------------------------------------------- faults


def test_faults_answer_the_next_n_matching_requests(sandbox: SandboxHandle) -> None:
    call = sandbox.state.simulate_call()
    sandbox.state.faults.add("GET /v1/voice/calls/*", status=429, count=2, retry_after=7)
    path = f"/v1/voice/calls/{call['id']}"
    first, second, third = (get(sandbox, path) for _ in range(3))
    assert first.status_code == second.status_code == 429
    assert first.headers["retry-after"] == "7" and error_of(first)["code"] == "rate_limited"
    assert third.status_code == 200
    sandbox.state.faults.add(
        "/v1/voice/calls", status=503, retry_after=5, retry_after_format="http-date"
    )
    dated = get(sandbox, path)
    assert dated.status_code == 503
    assert dated.headers["retry-after"].endswith("GMT")
    sandbox.state.faults.add("/", status=500, count=5)
    assert fetch(f"{sandbox.url}/_sandbox/health").status_code == 200  # never faulted


def test_fault_can_cut_a_download_short(sandbox: SandboxHandle) -> None:
    call = sandbox.state.simulate_call(recording_bytes=100_000)
    url = recording_url(sandbox, call["id"])["url"]
    sandbox.state.faults.add("/_recordings/", status=None, truncate_after=10_000)
    with pytest.raises(httpx.RemoteProtocolError):
        fetch(url)


# --------------------------------------------------------------------------- webhook config


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/hook",
        "https://localhost/hook",
        "https://127.0.0.1/hook",
        "https://10.1.2.3/hook",
        "https://192.168.0.10/hook",
        "https://169.254.169.254/latest",
        "https://[::1]/hook",
        "https://[fd00::1]/hook",
        "ftp://example.com/hook",
    ],
)
def test_secure_mode_refuses_unsafe_webhook_urls(sandbox: SandboxHandle, url: str) -> None:
    sandbox.state.options.allow_insecure_webhook_urls = False
    body = {"from": DEFAULT_AGENT_NUMBER, "url": url, "secret": SECRET, "enabled": True}
    with api(sandbox) as client:
        response = client.put("/v1/voice/webhooks", json=body)
    assert response.status_code == 400 and error_of(response)["param"] == "url"
    assert sandbox.state.webhooks() == []


def test_webhook_config_validation_and_masking(sandbox: SandboxHandle) -> None:
    base = {"from": DEFAULT_AGENT_NUMBER, "url": "http://127.0.0.1:9/hook", "enabled": True}
    with api(sandbox) as client:
        short = client.put("/v1/voice/webhooks", json={**base, "secret": "x" * 31})
        unknown = client.put(
            "/v1/voice/webhooks", json={**base, "from": "+16475550199", "secret": SECRET}
        )
        accepted = client.put("/v1/voice/webhooks", json={**base, "secret": SECRET})
    assert short.status_code == 400 and error_of(short)["param"] == "secret"
    assert unknown.status_code == 404
    assert accepted.status_code == 200, accepted.text
    data = accepted.json()["data"]
    assert data["secret"] == "****" + SECRET[-4:] and SECRET not in accepted.text
    assert data["enabled"] is True and data["url"] == base["url"]


# ---------------------------------------------------------------------------- webhook sender


def test_delivery_is_signed_with_the_configured_secret(
    sandbox: SandboxHandle, webhook_receiver: WebhookReceiver
) -> None:
    configure(sandbox, webhook_receiver.url)
    call = sandbox.state.simulate_call(deliver=True)
    (received,) = webhook_receiver.wait_for(1)
    assert received.method == "POST" and received.headers["content-type"] == "application/json"
    assert received.headers["x-ttma-event"] == "call.ended"
    signature = verify.verify(received.body, received.headers["x-ttma-signature"], [SECRET])
    assert abs(signature.timestamp - time.time()) < 5
    envelope = json.loads(received.body)
    assert set(envelope) == {"event", "deliveryId", "timestamp", "data"}
    assert envelope["deliveryId"] == received.headers["x-ttma-delivery-id"]
    assert envelope["data"] == get(sandbox, f"/v1/voice/calls/{call['id']}").json()["data"]
    assert envelope["data"]["transcript"] and envelope["timestamp"] == call["endedAt"]
    (delivery,) = sandbox.state.wait_for_deliveries()
    assert delivery["outcome"] == "delivered" and len(delivery["attempts"]) == 1


def test_sender_retries_five_times_then_gives_up(
    sandbox: SandboxHandle, webhook_receiver: WebhookReceiver
) -> None:
    webhook_receiver.default_status = 500
    configure(sandbox, webhook_receiver.url)
    sandbox.state.simulate_call(deliver=True)
    (delivery,) = sandbox.state.wait_for_deliveries()
    assert delivery["outcome"] == "failed"
    assert [a["status"] for a in delivery["attempts"]] == [500] * 6
    received = webhook_receiver.received
    assert len(received) == 6
    assert len({r.headers["x-ttma-delivery-id"] for r in received}) == 1
    assert len({r.body for r in received}) == 1


def test_each_retry_is_signed_afresh_with_the_same_delivery_id(
    sandbox: SandboxHandle, webhook_receiver: WebhookReceiver
) -> None:
    webhook_receiver.respond_with(500, 503)
    webhook_receiver.on_request = lambda _: sandbox.state.clock.advance(10)
    configure(sandbox, webhook_receiver.url)
    sandbox.state.simulate_call(deliver=True)
    (delivery,) = sandbox.state.wait_for_deliveries()
    assert delivery["outcome"] == "delivered"
    assert [a["status"] for a in delivery["attempts"]] == [500, 503, 200]
    received = webhook_receiver.received
    stamps = [r.headers["x-ttma-signature"].split(",")[0] for r in received]
    assert len(set(stamps)) == 3  # a fresh timestamp per attempt
    for request in received:
        verify.verify(
            request.body,
            request.headers["x-ttma-signature"],
            [SECRET],
            now=sandbox.state.clock.time(),
        )


def test_410_disables_the_webhook(
    sandbox: SandboxHandle, webhook_receiver: WebhookReceiver
) -> None:
    webhook_receiver.respond_with(410)
    configure(sandbox, webhook_receiver.url)
    sandbox.state.simulate_call(deliver=True)
    sandbox.state.wait_for_deliveries()
    sandbox.state.simulate_call(deliver=True)
    first, second = sandbox.state.wait_for_deliveries()
    assert first["outcome"] == "disabled" and len(first["attempts"]) == 1
    assert second["outcome"] == "disabled" and second["attempts"] == []
    assert sandbox.state.webhooks()[0]["enabled"] is False
    assert len(webhook_receiver.received) == 1


@pytest.mark.parametrize("concurrent", [False, True])
def test_deliberate_duplicates_reuse_the_delivery(
    sandbox: SandboxHandle, webhook_receiver: WebhookReceiver, concurrent: bool
) -> None:
    configure(sandbox, webhook_receiver.url)
    sandbox.state.simulate_call(deliver=True, duplicates=2, concurrent_duplicates=concurrent)
    (delivery,) = sandbox.state.wait_for_deliveries()
    received = webhook_receiver.wait_for(3)
    assert delivery["outcome"] == "delivered" and len(received) == 3
    assert {r.headers["x-ttma-delivery-id"] for r in received} == {delivery["delivery_id"]}
    assert len({r.body for r in received}) == 1


def test_delivery_waits_for_a_late_recording(
    sandbox: SandboxHandle, webhook_receiver: WebhookReceiver
) -> None:
    configure(sandbox, webhook_receiver.url)
    started = time.monotonic()
    sandbox.state.simulate_call(recording="late", late_after_seconds=0.3, deliver=True)
    (received,) = webhook_receiver.wait_for(1)
    assert time.monotonic() - started >= 0.3
    assert json.loads(received.body)["data"]["recordingAvailable"] is True


def test_delivery_gives_up_waiting_and_says_no_recording(
    sandbox: SandboxHandle, webhook_receiver: WebhookReceiver
) -> None:
    sandbox.state.options.webhook_recording_wait_seconds = 0.2
    configure(sandbox, webhook_receiver.url)
    sandbox.state.simulate_call(recording="late", late_after_seconds=60, deliver=True)
    (received,) = webhook_receiver.wait_for(1)
    assert json.loads(received.body)["data"]["recordingAvailable"] is False
    assert sandbox.state.wait_for_deliveries()[0]["recording_available"] is False


def test_connection_errors_are_retried_and_logged(sandbox: SandboxHandle) -> None:
    configure(sandbox, "http://127.0.0.1:9/unreachable")
    sandbox.state.simulate_call(deliver=True)
    (delivery,) = sandbox.state.wait_for_deliveries()
    assert delivery["outcome"] == "failed" and len(delivery["attempts"]) == 6
    assert all(a["status"] is None and a["error"] for a in delivery["attempts"])


def test_no_webhook_configured_means_no_delivery(sandbox: SandboxHandle) -> None:
    sandbox.state.simulate_call(deliver=True)
    assert sandbox.state.wait_for_deliveries()[0]["outcome"] == "no_webhook"


# ----------------------------------------------------------------------------- control API


def test_control_api_drives_a_sandbox_from_outside(
    sandbox: SandboxHandle, webhook_receiver: WebhookReceiver
) -> None:
    with httpx.Client(base_url=f"{sandbox.url}/_sandbox", trust_env=False, verify=_TLS) as control:
        assert control.get("/health").json()["status"] == "ok"
        batch = control.post("/calls", json={"count": 12, "seed": 3}).json()["data"]
        assert len(batch) == 12
        bad = control.post("/calls", json={"colour": "blue"})
        assert bad.status_code == 400 and error_of(bad)["code"] == "invalid_parameter"
        single = control.post("/calls", json={"recording": "late", "late_after_seconds": 100})
        call_id = single.json()["data"][0]["id"]
        assert control.post("/clock/advance", json={"seconds": 101}).status_code == 200
        assert get(sandbox, f"/v1/voice/calls/{call_id}/recording").status_code == 200
        digest = control.get(f"/calls/{call_id}/recording-digest").json()
        assert digest["size"] == 16 * 1024
        fault = control.post("/faults", json={"match": "/v1/", "status": 503, "count": 1})
        assert fault.status_code == 200 and len(control.get("/faults").json()["data"]) == 1
        assert get(sandbox, "/v1/voice/calls").status_code == 503
        key = control.post("/keys", json={"scopes": ["voice:read"]}).json()["apiKey"]
        assert get(sandbox, "/v1/voice/calls", headers={"Authorization": f"Bearer {key}"})
        configure(sandbox, webhook_receiver.url)
        delivery = control.post(f"/calls/{call_id}/deliver", json={"duplicates": 1})
        assert delivery.status_code == 200
        log = control.get("/deliveries", params={"wait": 5}).json()
        assert log["idle"] is True and log["data"][0]["outcome"] == "delivered"
        assert control.patch("/options", json={"webhook_max_retries": 2}).status_code == 200
        assert sandbox.state.options.webhook_max_retries == 2
        assert control.post("/reset").status_code == 200
    assert sandbox.state.call_ids() == [] and sandbox.state.clock.offset == 0
    assert sandbox.state.options.webhook_max_retries == 5


def test_cli_serves_until_sigterm() -> None:
    """Keys from the environment (what the local stack does: never on a command line) and from
    ``--api-key``, with and without scopes."""
    key = f"mbn_live_{random.getrandbits(128):032x}"
    reader = f"mbn_live_{random.getrandbits(128):032x}"
    caller = f"mbn_live_{random.getrandbits(128):032x}"
    command = [sys.executable, "-m", "ttma_sandbox", "--port", "0", "--seed-calls", "5"]
    command += ["--api-key", f"{caller}:voice:call"]
    keys = f"{key} {reader}:voice:read"  # TTMA_SANDBOX_API_KEYS: whitespace-separated specs
    with subprocess.Popen(  # noqa: S603  sys.executable -m ttma_sandbox
        command,
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", API_KEYS_ENV: keys},
    ) as process:
        try:
            assert process.stdout is not None and process.stderr is not None
            readable, _, _ = select.select([process.stdout], [], [], 20)
            assert readable, "the sandbox did not report ready within 20 s"
            ready = json.loads(process.stdout.readline())
            assert ready["event"] == "sandbox_ready"
            assert ready["url"].startswith("http://127.0.0.1:")
            with httpx.Client(base_url=ready["url"], trust_env=False, verify=_TLS) as client:
                listed = client.get("/v1/voice/calls", headers={"Authorization": f"Bearer {key}"})
                assert len(listed.json()["data"]) == 5
                body = {
                    "from": DEFAULT_AGENT_NUMBER,
                    "url": "https://x.example/h",
                    "secret": SECRET,
                }
                refused = client.put(
                    "/v1/voice/webhooks", json=body, headers={"Authorization": f"Bearer {reader}"}
                )
                assert refused.status_code == 403
                read = client.get("/v1/voice/calls", headers={"Authorization": f"Bearer {reader}"})
                assert read.status_code == 200
                not_read = client.get(
                    "/v1/voice/calls", headers={"Authorization": f"Bearer {caller}"}
                )
                assert not_read.status_code == 403  # --api-key KEY:voice:call still works
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=10) == 0
            output = process.stdout.read() + process.stderr.read()
            assert key not in output and reader not in output and caller not in output
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()


def test_sandbox_clock_moves_with_real_time() -> None:
    state = SandboxState()
    before = datetime.now(UTC)
    assert abs((state.clock.now() - before).total_seconds()) < 1
    state.clock.advance(3600)
    assert state.clock.now() - before >= timedelta(seconds=3599)
    state.close()
