"""The TTMA API client (``ttma_relay.adapters.ttma_api``) against the vendor sandbox, over HTTP."""

from __future__ import annotations

import hashlib
import ssl
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from email.utils import format_datetime

import httpx
import pytest

from ttma_relay.adapters.ttma_api import (
    BadRequestError,
    ForbiddenError,
    InvalidRequestError,
    NotFoundError,
    RateLimitedError,
    RecordingUrlExpiredError,
    ServerError,
    TransportError,
    TtmaApiError,
    TtmaClient,
    UnauthorizedError,
    format_api_timestamp,
    parse_retry_after,
)
from ttma_sandbox import DEFAULT_AGENT_NUMBER, SandboxHandle

SECRET = "whsec_client_test_secret_0123456789abcdef"  # noqa: S105  the client tests' webhook secret, not a credential
# Building an SSL context costs ~60 ms: clients made in these tests share one.
_TLS = ssl.create_default_context()


def make_client(sandbox: SandboxHandle, key: str | None = None, **options: object) -> TtmaClient:
    settings: dict[str, object] = {"backoff_base": 0.001, "backoff_max": 2.0, "timeout": 5.0}
    settings.update(options)
    transport = httpx.HTTPTransport(verify=_TLS)
    return TtmaClient(sandbox.url, key or sandbox.api_key, transport=transport, **settings)  # type: ignore[arg-type]


@pytest.fixture
def client(sandbox: SandboxHandle) -> Iterator[TtmaClient]:
    with make_client(sandbox) as api:
        yield api


def api_requests(sandbox: SandboxHandle) -> list[dict[str, object]]:
    return sandbox.state.requests("/v1/")


def requests_to(sandbox: SandboxHandle, path: str) -> list[dict[str, object]]:
    """The requests to exactly ``path``. Tests that assert "nothing was sent" look only at the
    endpoint they could have called: the session's shared sandbox has, rarely, logged a stray
    ``GET /v1/voice/calls/<id>`` (404) from elsewhere in the session (not yet traced)."""
    return [r for r in sandbox.state.requests("/v1/") if r["path"] == path]


# ---------------------------------------------------------------------------------- calls


def test_get_call_returns_the_data_object(sandbox: SandboxHandle, client: TtmaClient) -> None:
    call = sandbox.state.simulate_call()
    assert client.get_call(call["id"]) == call
    (request,) = api_requests(sandbox)
    assert request["path"] == f"/v1/voice/calls/{call['id']}" and request["hasAuthorization"]


def test_list_follows_cursors_across_pages(sandbox: SandboxHandle, client: TtmaClient) -> None:
    sandbox.state.simulate_calls(230, seed=4)
    ids = [call["id"] for call in client.list_calls(limit=100)]
    assert ids == sandbox.state.call_ids() and len(set(ids)) == 230
    pages = api_requests(sandbox)
    assert len(pages) == 3
    assert "cursor" not in pages[0]["query"] and all("cursor" in p["query"] for p in pages[1:])  # type: ignore[operator]


def test_list_is_lazy_and_items_have_no_transcript(
    sandbox: SandboxHandle, client: TtmaClient
) -> None:
    sandbox.state.simulate_calls(30, seed=5)
    first = next(client.list_calls(limit=10))
    assert "transcript" not in first and len(api_requests(sandbox)) == 1


def test_list_filters(sandbox: SandboxHandle, client: TtmaClient) -> None:
    calls = sandbox.state.simulate_calls(40, seed=6, spacing_seconds=600)
    inbound = list(client.list_calls(direction="inbound"))
    assert inbound and {c["direction"] for c in inbound} == {"inbound"}
    assert len(inbound) == sum(c["direction"] == "inbound" for c in calls)
    hangups = list(client.list_calls(ended_reason="callerHangup"))
    assert hangups and {c["endedReason"] for c in hangups} == {"callerHangup"}
    cut = datetime.fromisoformat(sorted(c["startedAt"] for c in calls)[29])
    recent = list(client.list_calls(after=cut))
    older = list(
        client.list_calls(before=cut.astimezone(timezone(timedelta(hours=-5))).isoformat())
    )
    assert len(recent) == 10 and len(older) == 29
    assert api_requests(sandbox)[-1]["query"]["before"] == format_api_timestamp(cut)  # type: ignore[index]


@pytest.mark.parametrize(
    "arguments",
    [
        {"direction": "inbound", "ended_reason": "callerHangup"},
        {"limit": 0},
        {"limit": 101},
        {"limit": True},
        {"direction": "sideways"},
        {"ended_reason": ""},
        {"after": "yesterday"},
        {"after": datetime(2026, 5, 25, 14, 30)},  # no time zone: ambiguous
        {"before": "2026-05-25T14:30:00"},
    ],
)
def test_list_refuses_bad_arguments_before_any_request(
    sandbox: SandboxHandle, client: TtmaClient, arguments: dict[str, object]
) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        client.list_calls(**arguments)  # type: ignore[arg-type]
    # A caller's bug, not something the API did: never caught by an ``except TtmaApiError``.
    assert isinstance(caught.value, ValueError) and not isinstance(caught.value, TtmaApiError)
    assert requests_to(sandbox, "/v1/voice/calls") == []


def test_both_filters_error_says_why(client: TtmaClient) -> None:
    with pytest.raises(ValueError, match="not both"):
        client.list_calls(direction="outbound", ended_reason="botHangup")


# ---------------------------------------------------------------------------------- errors


def test_not_found(client: TtmaClient) -> None:
    with pytest.raises(NotFoundError) as caught:
        client.get_call("v3:doesNotExist")
    assert caught.value.status == 404 and not caught.value.transient


def test_a_call_id_with_a_lone_surrogate_is_asked_for_as_its_bytes(client: TtmaClient) -> None:
    """A JSON escape makes such an id (the archivers receive whatever the message holds); its
    path used to fail to encode, a crash the archivers' redeliveries repeated for ever."""
    for ask in (client.get_call, client.get_recording_url):
        with pytest.raises(NotFoundError):
            ask("v3:x\ud800")


def test_unknown_key_is_unauthorized_and_never_echoed(sandbox: SandboxHandle) -> None:
    bad_key = "mbn_live_0123456789abcdef0123456789abcdef"
    with make_client(sandbox, bad_key) as api, pytest.raises(UnauthorizedError) as caught:
        api.get_call("v3:anything")
    assert bad_key not in str(caught.value) and bad_key not in repr(api)


def test_read_only_key_cannot_configure_webhooks(sandbox: SandboxHandle) -> None:
    read_only = sandbox.state.add_api_key(scopes=["voice:read"])
    with make_client(sandbox, read_only) as api, pytest.raises(ForbiddenError) as caught:
        api.configure_webhook(DEFAULT_AGENT_NUMBER, "https://example.com/hooks/ttma", SECRET)
    assert caught.value.scope == "voice:call" and "voice:call" in str(caught.value)
    assert SECRET not in str(caught.value) and read_only not in str(caught.value)


def test_call_only_key_cannot_read(sandbox: SandboxHandle) -> None:
    call_only = sandbox.state.add_api_key(scopes=["voice:call"])
    with make_client(sandbox, call_only) as api, pytest.raises(ForbiddenError) as caught:
        list(api.list_calls())
    assert caught.value.scope == "voice:read" and "voice:read" in str(caught.value)


def test_429_waits_for_retry_after(sandbox: SandboxHandle, client: TtmaClient) -> None:
    call = sandbox.state.simulate_call()
    sandbox.state.faults.add("/v1/voice/calls/", status=429, retry_after=1, count=1)
    started = time.monotonic()
    assert client.get_call(call["id"])["id"] == call["id"]
    assert time.monotonic() - started >= 1.0
    assert [r["status"] for r in api_requests(sandbox)] == [429, 200]


def test_retry_after_is_capped_by_backoff_max(sandbox: SandboxHandle) -> None:
    call = sandbox.state.simulate_call()
    sandbox.state.faults.add("/v1/", status=429, retry_after=3600, count=1)
    started = time.monotonic()
    with make_client(sandbox, backoff_max=0.05) as api:
        api.get_call(call["id"])
    assert time.monotonic() - started < 1.0


def test_429_exhausted_raises_rate_limited(sandbox: SandboxHandle, client: TtmaClient) -> None:
    sandbox.state.faults.add("/v1/", status=429, retry_after=0, count=10)
    with pytest.raises(RateLimitedError) as caught:
        client.get_call("v3:any")
    assert caught.value.retry_after == 0 and caught.value.transient
    assert len(api_requests(sandbox)) == 5  # the first try and max_retries=4 more


def test_5xx_is_retried_then_succeeds(sandbox: SandboxHandle, client: TtmaClient) -> None:
    call = sandbox.state.simulate_call()
    sandbox.state.faults.add("/v1/", status=503, count=2)
    sandbox.state.faults.add("/v1/", status=500, count=1)
    assert client.get_call(call["id"])["id"] == call["id"]
    assert [r["status"] for r in api_requests(sandbox)] == [503, 503, 500, 200]


def test_5xx_exhausted_raises_server_error(sandbox: SandboxHandle) -> None:
    sandbox.state.faults.add("/v1/", status=502, count=10)
    with make_client(sandbox, max_retries=2) as api, pytest.raises(ServerError) as caught:
        api.get_call("v3:any")
    assert caught.value.status == 502 and caught.value.transient
    assert len(api_requests(sandbox)) == 3


def test_400_is_not_retried(sandbox: SandboxHandle, client: TtmaClient) -> None:
    sandbox.state.faults.add("/v1/", status=400, count=5)
    with pytest.raises(BadRequestError):
        client.get_call("v3:any")
    assert len(api_requests(sandbox)) == 1


def test_read_timeouts_are_retried(sandbox: SandboxHandle) -> None:
    call = sandbox.state.simulate_call()
    sandbox.state.faults.add("/v1/", status=None, delay=0.5, count=1)
    with make_client(sandbox, timeout=0.2) as api:
        assert api.get_call(call["id"])["id"] == call["id"]
    sandbox.state.faults.add("/v1/", status=None, delay=0.3, count=3)
    with make_client(sandbox, timeout=0.1, max_retries=1) as api:
        with pytest.raises(TransportError, match="ReadTimeout"):
            api.get_call(call["id"])


def test_connection_refused_is_a_transport_error() -> None:
    with TtmaClient("http://127.0.0.1:9", "mbn_live_x", backoff_base=0.001) as api:
        with pytest.raises(TransportError) as caught:
            api.get_call("v3:any")
    assert caught.value.transient and "mbn_live_x" not in str(caught.value)


@pytest.mark.parametrize(
    ("header", "expected"),
    [("7", 7.0), ("0.25", 0.25), ("-3", 0.0), ("soon", None), ("", None), (None, None)],
)
def test_parse_retry_after_seconds(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header) == expected


def test_parse_retry_after_http_date() -> None:
    now = time.time()
    header = format_datetime(datetime.fromtimestamp(now + 30, tz=UTC), usegmt=True)
    assert 28 <= parse_retry_after(header, now=now) <= 31  # type: ignore[operator]


# ------------------------------------------------------------------------------ recordings


def download(client: TtmaClient, url: object) -> tuple[int, str]:
    digest, size = hashlib.sha256(), 0
    with client.stream_recording(url) as stream:  # type: ignore[arg-type]
        assert stream.content_type == "audio/mpeg"
        for chunk in stream:
            digest.update(chunk)
            size += len(chunk)
        assert stream.bytes_read == size == stream.content_length
    return size, digest.hexdigest()


def test_recording_streams_without_the_api_key(sandbox: SandboxHandle, client: TtmaClient) -> None:
    call = sandbox.state.simulate_call(recording_bytes=2_000_000)
    recording = client.get_recording_url(call["id"])
    assert recording.expires_at - sandbox.state.clock.now() <= timedelta(minutes=5)
    assert recording.url not in repr(recording)
    expected = sandbox.state.expected_recording(call["id"])
    assert download(client, recording) == (expected.size, expected.sha256)
    (signed,) = sandbox.state.requests("/_recordings/")
    assert signed["status"] == 200 and signed["hasAuthorization"] is False


def test_expired_recording_url_and_a_fresh_one(sandbox: SandboxHandle, client: TtmaClient) -> None:
    call = sandbox.state.simulate_call()
    stale = client.get_recording_url(call["id"])
    sandbox.state.clock.advance(301)
    with pytest.raises(RecordingUrlExpiredError) as caught:
        download(client, stale.url)
    query = stale.url.split("?", 1)[1]
    assert query not in str(caught.value) and stale.url not in str(caught.value)
    fresh = client.get_recording_url(call["id"])
    assert download(client, fresh)[1] == sandbox.state.expected_recording(call["id"]).sha256


def test_expired_url_answered_with_400_is_recognised(
    sandbox: SandboxHandle, client: TtmaClient
) -> None:
    sandbox.state.options.expired_url_status = 400  # Cloud Storage V4 style
    call = sandbox.state.simulate_call()
    stale = client.get_recording_url(call["id"])
    sandbox.state.clock.advance(600)
    with pytest.raises(RecordingUrlExpiredError):
        download(client, stale)


def test_stream_call_recording_gets_a_fresh_url(sandbox: SandboxHandle, client: TtmaClient) -> None:
    call = sandbox.state.simulate_call()
    with client.stream_call_recording(call["id"]) as stream:
        first = next(stream)
        data = first + b"".join(stream)
    assert first[:3] == b"ID3"
    assert data == sandbox.state.expected_recording_bytes(call["id"])


def test_missing_and_late_recordings_are_not_found(
    sandbox: SandboxHandle, client: TtmaClient
) -> None:
    never = sandbox.state.simulate_call(recording="never")
    late = sandbox.state.simulate_call(recording="late", late_after_seconds=90)
    for call_id in (never["id"], late["id"]):
        with pytest.raises(NotFoundError):
            client.get_recording_url(call_id)
    sandbox.state.clock.advance(91)
    assert client.get_recording_url(late["id"]).url


def test_download_cut_short_is_a_transport_error(
    sandbox: SandboxHandle, client: TtmaClient
) -> None:
    call = sandbox.state.simulate_call(recording_bytes=500_000)
    recording = client.get_recording_url(call["id"])
    sandbox.state.faults.add("/_recordings/", status=None, truncate_after=100_000)
    with pytest.raises(TransportError, match="interrupted"):
        download(client, recording)


def test_recording_download_5xx_is_retried(sandbox: SandboxHandle, client: TtmaClient) -> None:
    call = sandbox.state.simulate_call()
    recording = client.get_recording_url(call["id"])
    sandbox.state.faults.add("/_recordings/", status=503, count=2)
    assert download(client, recording)[0] == sandbox.state.recording_size(call["id"])


# -------------------------------------------------------------------------------- webhooks


def test_configure_webhook_returns_the_masked_config(
    sandbox: SandboxHandle, client: TtmaClient
) -> None:
    sandbox.state.options.allow_insecure_webhook_urls = False
    data = client.configure_webhook(DEFAULT_AGENT_NUMBER, "https://hooks.example.com/ttma", SECRET)
    assert data["secret"] == "****" + SECRET[-4:] and data["enabled"] is True
    (request,) = api_requests(sandbox)
    assert request["method"] == "PUT" and request["status"] == 200


def test_allow_insecure_local_reaches_the_sandbox(
    sandbox: SandboxHandle, client: TtmaClient
) -> None:
    url = "http://127.0.0.1:8080/webhooks/ttma"
    with pytest.raises(InvalidRequestError):
        client.configure_webhook(DEFAULT_AGENT_NUMBER, url, SECRET)
    data = client.configure_webhook(
        DEFAULT_AGENT_NUMBER, url, SECRET, enabled=False, allow_insecure_local=True
    )
    assert data["url"] == url and data["enabled"] is False


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.example.com/ttma",
        "ftp://hooks.example.com/ttma",
        "hooks.example.com/ttma",
        "https://localhost/ttma",
        "https://api.localhost/ttma",
        "https://127.0.0.1/ttma",
        "https://127.8.9.10:8443/ttma",
        "https://0.0.0.0/ttma",
        "https://10.0.0.8/ttma",
        "https://172.16.5.4/ttma",
        "https://192.168.1.20/ttma",
        "https://100.64.0.1/ttma",
        "https://169.254.169.254/latest/meta-data",
        "https://224.0.0.1/ttma",
        "https://[::1]/ttma",
        "https://[fe80::1]/ttma",
        "https://[fd12:3456::1]/ttma",
        "https://[::ffff:127.0.0.1]/ttma",
        "https://2130706433/ttma",
        "https://0x7f.1/ttma",
        "https://hooks.example.com:99999/ttma",
    ],
)
def test_unsafe_webhook_urls_are_refused_locally(
    sandbox: SandboxHandle, client: TtmaClient, url: str
) -> None:
    with pytest.raises(InvalidRequestError):
        client.configure_webhook(DEFAULT_AGENT_NUMBER, url, SECRET)
    assert requests_to(sandbox, "/v1/voice/webhooks") == []


@pytest.mark.parametrize(
    ("from_number", "secret"),
    [(DEFAULT_AGENT_NUMBER, "x" * 31), ("6475550100", SECRET), ("+1 647 555 0100", SECRET)],
)
def test_short_secrets_and_bad_numbers_are_refused_locally(
    sandbox: SandboxHandle, client: TtmaClient, from_number: str, secret: str
) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        client.configure_webhook(from_number, "https://hooks.example.com/ttma", secret)
    assert secret not in str(caught.value)
    assert requests_to(sandbox, "/v1/voice/webhooks") == []


# ------------------------------------------------------------------------------ the client


def test_one_client_serves_many_threads(sandbox: SandboxHandle, client: TtmaClient) -> None:
    calls = sandbox.state.simulate_calls(16, seed=8)
    results: dict[str, str] = {}
    errors: list[BaseException] = []

    def fetch(call_id: str) -> None:
        try:
            results[call_id] = client.get_call(call_id)["id"]
        except BaseException as error:  # reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=fetch, args=(c["id"],)) for c in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert errors == [] and results == {c["id"]: c["id"] for c in calls}


def test_closed_client_refuses_requests(sandbox: SandboxHandle) -> None:
    api = make_client(sandbox)
    with api:
        pass
    with pytest.raises(TtmaApiError, match="closed"):
        api.get_call("v3:any")


@pytest.mark.parametrize("base_url", ["", "127.0.0.1:8080", "ftp://x", "https://x/?a=1"])
def test_constructor_validates_base_url(base_url: str) -> None:
    with pytest.raises(InvalidRequestError):
        TtmaClient(base_url, "mbn_live_x")


def test_default_transport_works(sandbox: SandboxHandle) -> None:
    call = sandbox.state.simulate_call()
    with TtmaClient(sandbox.url + "/", sandbox.api_key) as api:
        assert api.get_call(call["id"])["id"] == call["id"]
