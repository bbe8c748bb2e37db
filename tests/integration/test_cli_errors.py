"""How ``ttma-relay`` fails: one sentence with the fix, the documented exit code, no traceback.

None of these tests needs the emulators or the local stack: Google credentials are made absent,
invalid or refused (a token endpoint on 127.0.0.1), HTTP servers are tiny ones on 127.0.0.1, and
``--local`` reads state directories made in tmp_path.
"""

from __future__ import annotations

import datetime
import http.server
import json
import os
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from devstack.emulators import free_port
from ttma_relay.cli import common as cli_common
from ttma_relay.cli import main

CONSOLE_SCRIPT = Path(sys.executable).with_name("ttma-relay")
SECRET = "s3cr3t-" + "x" * 30
NAMES_LOCAL_SETS = ("INGEST_URL", "TTMA_WEBHOOK_SECRET")


# --------------------------------------------------------------------------------- helpers


class Recorder(http.server.ThreadingHTTPServer):
    """An HTTP server on 127.0.0.1 that answers every POST/PUT 200 and records it."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _RecordingHandler)
        self.requests: list[dict[str, Any]] = []
        self.answer: tuple[int, dict[str, Any]] = (200, {"status": "accepted"})

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/"


class _RecordingHandler(http.server.BaseHTTPRequestHandler):
    server: Recorder

    def _answer(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.requests.append(
            {"path": self.path, "headers": dict(self.headers), "body": body}
        )
        status, document = self.server.answer
        data = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_POST = do_PUT = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


def serving(server: http.server.HTTPServer) -> Iterator[Any]:
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    yield from serving(Recorder())


def no_google_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """An environment in which google.auth finds no credentials and no metadata server."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = {name: os.environ[name] for name in ("PATH", "LANG", "LC_ALL") if name in os.environ}
    env.update(
        HOME=str(home),
        CLOUDSDK_CONFIG=str(home / "gcloud"),
        # google.auth skips its metadata-server probe only for "true" (lower case); else it
        # pings three times with back-off (~3 s) before it gives up, as off GCE.
        NO_GCE_CHECK="true",
        GCE_METADATA_HOST="127.0.0.1:1",
        GCE_METADATA_IP="127.0.0.1:1",
    )
    env.update(extra)
    return env


def run_script(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603  the venv's ttma-relay console script
        [str(CONSOLE_SCRIPT), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def run(*args: str, env: dict[str, str | None] | None = None) -> Any:
    """In-process; the names ``--local`` puts into os.environ are restored afterwards."""
    base: dict[str, str | None] = dict.fromkeys((*NAMES_LOCAL_SETS, "TTMA_DEV_STATE_DIR"))
    return CliRunner().invoke(main, list(args), env={**base, **(env or {})}, catch_exceptions=False)


def one_error_line(stderr: str) -> str:
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ")
    return lines[0]


# ---------------------------------------------------------------------- Google credentials

GOOGLE_COMMANDS = {
    "calls": ("calls", "--project", "p"),
    "call": ("call", "v3:x", "--project", "p"),
    "tail": ("tail", "--project", "p", "--timeout", "1"),
    "replay": ("replay", "--project", "p", "--dry-run"),
    "backfill": ("backfill", "--project", "p", "--after", "1d", "--api-key", "k"),
    "doctor": (
        "doctor",
        "--project",
        "p",
        "--url",
        "http://127.0.0.1:1/",
        "--secret",
        SECRET,
        "--api-key",
        "k",
        "--bucket",
        "b",
    ),
}


@pytest.mark.parametrize("command", GOOGLE_COMMANDS)
def test_no_google_credentials_is_one_sentence_and_exit_2(tmp_path: Path, command: str) -> None:
    result = run_script(no_google_env(tmp_path), *GOOGLE_COMMANDS[command])
    assert result.returncode == 2, result.stderr
    line = one_error_line(result.stderr)
    assert "no Google credentials found" in line
    assert "`gcloud auth application-default login`" in line
    assert "--local" in line and "FIRESTORE_EMULATOR_HOST" in line
    assert result.stdout == ""
    assert SECRET not in result.stderr


@pytest.mark.parametrize("content", [None, "{}", "not json"])
def test_an_unusable_credentials_file_is_named(tmp_path: Path, content: str | None) -> None:
    key_file = tmp_path / "key.json"
    if content is not None:
        key_file.write_text(content)
    env = no_google_env(tmp_path, GOOGLE_APPLICATION_CREDENTIALS=str(key_file))
    result = run_script(env, "calls", "--project", "p")
    assert result.returncode == 2, result.stderr
    line = one_error_line(result.stderr)
    assert f"GOOGLE_APPLICATION_CREDENTIALS ({key_file}) is missing or not a valid" in line
    assert "`gcloud auth application-default login`" in line


class _RefusingTokenHandler(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        data = json.dumps({"error": "invalid_grant", "error_description": "revoked"}).encode()
        self.send_response(400)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def refusing_token_endpoint() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RefusingTokenHandler)
    for _ in serving(server):
        yield f"http://127.0.0.1:{server.server_address[1]}/token"


def service_account_key(path: Path, token_uri: str) -> str:
    """A syntactically valid service-account key whose token endpoint is ``token_uri``."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    path.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": "p",
                "private_key_id": "k1",
                "private_key": pem,
                "client_email": "relay@p.iam.gserviceaccount.com",
                "client_id": "1",
                "token_uri": token_uri,
            }
        )
    )
    return pem


@pytest.mark.parametrize("command", ["calls", "tail", "replay", "backfill", "doctor"])
def test_refused_credentials_exit_2_at_once_not_after_retries(
    tmp_path: Path, refusing_token_endpoint: str, command: str
) -> None:
    key_file = tmp_path / "key.json"
    pem = service_account_key(key_file, refusing_token_endpoint)
    env = no_google_env(tmp_path, GOOGLE_APPLICATION_CREDENTIALS=str(key_file))
    result = run_script(env, *GOOGLE_COMMANDS[command])  # before: retried past the timeout
    assert result.returncode == 2, result.stderr
    line = one_error_line(result.stderr)
    assert "were refused (expired, revoked or invalid)" in line
    assert "`gcloud auth application-default login`" in line
    assert "PRIVATE KEY" not in result.stderr and pem.splitlines()[1] not in result.stderr


def test_an_unreachable_token_endpoint_is_unreachable(tmp_path: Path) -> None:
    key_file = tmp_path / "key.json"
    service_account_key(key_file, f"http://127.0.0.1:{free_port()}/token")
    env = no_google_env(tmp_path, GOOGLE_APPLICATION_CREDENTIALS=str(key_file))
    result = run_script(env, "calls", "--project", "p")
    assert result.returncode == 2, result.stderr
    assert "could not reach Google to check the credentials" in one_error_line(result.stderr)


def test_doctor_leaves_an_unreachable_token_endpoint_to_its_checks(tmp_path: Path) -> None:
    key_file = tmp_path / "key.json"
    service_account_key(key_file, f"http://127.0.0.1:{free_port()}/token")
    env = no_google_env(tmp_path, GOOGLE_APPLICATION_CREDENTIALS=str(key_file))
    result = run_script(env, *GOOGLE_COMMANDS["doctor"])
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout.startswith("CHECK ")
    assert "9 of 9 checks failed" in result.stderr


# ----------------------------------------------------------------------------- send --payload


@pytest.mark.parametrize(
    ("payload", "kind"),
    [
        (b"[1]", "an array"),
        (b"null", "null"),
        (b'"x"', "a string"),
        (b"3", "a number"),
        (b"true", "a boolean"),
    ],
)
def test_a_payload_that_is_not_an_object_is_a_usage_error(
    tmp_path: Path, recorder: Recorder, payload: bytes, kind: str
) -> None:
    payload_file = tmp_path / "payload.json"
    payload_file.write_bytes(payload)
    result = run("send", recorder.url, "--payload", str(payload_file), "--secret", SECRET)
    assert result.exit_code == 2
    assert f"the payload must be a JSON object ({{...}}), not {kind}" in result.output
    assert recorder.requests == []


def test_a_payload_that_is_not_utf8_is_a_usage_error(tmp_path: Path, recorder: Recorder) -> None:
    payload_file = tmp_path / "payload.json"
    payload_file.write_bytes(b'{"a": "\xff"}')
    result = run("send", recorder.url, "--payload", str(payload_file), "--secret", SECRET)
    assert result.exit_code == 2
    assert "Invalid value for --payload: not JSON" in result.output
    assert recorder.requests == []


# ---------------------------------------------------------------------------- send's URL


def test_send_usage_shows_the_url_as_optional() -> None:
    result = run("send", "--help")
    assert result.exit_code == 0
    usage = result.output.splitlines()[0]
    assert usage.endswith("send [OPTIONS] [URL]"), usage
    assert "--local" in result.output


def test_send_without_a_url_says_where_one_comes_from() -> None:
    result = run("send", "--secret", SECRET)
    assert result.exit_code == 2
    assert "no URL: give it as an argument, set INGEST_URL, or use --local" in result.output


# ---------------------------------------------------------------------------------- --local


def write_stack(state_dir: Path, recorder: Recorder) -> None:
    state_dir.mkdir(parents=True)
    (state_dir / "endpoints.env").write_text(
        f"export INGEST_URL={recorder.url}\nexport TTMA_WEBHOOK_SECRET={SECRET}\n"
    )


@pytest.fixture
def nowhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The code's own checkout without a stack, so that only the test's directories count."""
    checkout = (tmp_path / "checkout-without-stack").resolve()
    checkout.mkdir()
    monkeypatch.setattr(cli_common, "CODE_CHECKOUT", checkout)
    return checkout


def test_local_finds_the_stack_from_a_subdirectory(
    tmp_path: Path, recorder: Recorder, nowhere: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_stack(tmp_path / "repo" / ".devstack", recorder)
    deeper = tmp_path / "repo" / "docs" / "deeper"
    deeper.mkdir(parents=True)
    monkeypatch.chdir(deeper)
    result = run("--local", "send")
    assert result.exit_code == 0, result.output
    [request] = recorder.requests
    assert request["headers"]["X-TTMA-Signature"].startswith("t=")


def test_local_finds_the_stack_of_the_checkout_from_anywhere(
    tmp_path: Path, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkout = tmp_path / "checkout"
    write_stack(checkout / ".devstack", recorder)
    monkeypatch.setattr(cli_common, "CODE_CHECKOUT", checkout)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = run("--local", "send")
    assert result.exit_code == 0, result.output
    assert len(recorder.requests) == 1


def test_local_without_a_stack_says_where_it_looked(
    tmp_path: Path, nowhere: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    here = (tmp_path / "empty").resolve()
    here.mkdir()
    monkeypatch.chdir(here)
    result = run("--local", "send")
    assert result.exit_code == 2
    line = one_error_line(result.output)
    assert f"no .devstack/endpoints.env in {here} or any directory above it" in line
    assert f"nor in {nowhere} (the checkout ttma-relay runs from)" in line
    assert "make dev-up" in line and "TTMA_DEV_STATE_DIR" in line


def test_local_with_a_state_dir_variable_names_it(
    tmp_path: Path, recorder: Recorder, nowhere: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_stack(tmp_path / "found-by-search" / ".devstack", recorder)
    monkeypatch.chdir(tmp_path / "found-by-search")
    missing = tmp_path / "no-stack-here"
    result = run("--local", "send", env={"TTMA_DEV_STATE_DIR": str(missing)})
    assert result.exit_code == 2
    line = one_error_line(result.output)
    assert f"{missing / 'endpoints.env'} (from TTMA_DEV_STATE_DIR)" in line
    assert recorder.requests == []  # the variable wins over the search


def test_the_checkout_state_dir_is_where_the_stack_writes() -> None:
    from devstack.stack.config import DEFAULT_STATE_DIR

    assert cli_common.CODE_CHECKOUT / cli_common.STATE_DIR_NAME == DEFAULT_STATE_DIR


# ------------------------------------------------------------------------ configure-webhook


def configure(recorder: Recorder, *options: str) -> Any:
    return run(
        "configure-webhook",
        "--api-key",
        "admin-key-123",
        "--secret",
        SECRET,
        "--base-url",
        recorder.url,
        *options,
    )


@pytest.mark.parametrize(
    ("url", "rule"),
    [
        ("http://127.0.0.1:8080/", "must use HTTPS"),
        ("http://localhost:8080/", "must use HTTPS"),
        ("https://localhost/", "must not point to localhost"),
        ("https://127.0.0.1/", "must not point to a private, loopback"),
    ],
)
def test_a_refused_local_url_mentions_allow_insecure_local(
    recorder: Recorder, url: str, rule: str
) -> None:
    result = configure(recorder, "--from", "+16475550100", "--url", url)
    assert result.exit_code == 1
    line = one_error_line(result.output)
    assert f"--url (INGEST_URL) {rule}" in line
    assert "--allow-insecure-local lifts the URL rules" in line
    assert "(http://127.0.0.1 or http://localhost) only" in line
    assert SECRET not in result.output and "admin-key-123" not in result.output
    assert recorder.requests == []


def test_a_url_the_flag_cannot_fix_does_not_suggest_it(recorder: Recorder) -> None:
    result = configure(recorder, "--from", "+16475550100", "--url", "ftp://example.com/")
    assert result.exit_code == 1
    line = one_error_line(result.output)
    assert "--url (INGEST_URL) must be an absolute https:// URL" in line
    assert "--allow-insecure-local" not in line
    assert recorder.requests == []


@pytest.mark.parametrize("number", ["16475550100", "+1 647 555 0100", "+0123"])
def test_a_bad_from_number_names_the_from_option(recorder: Recorder, number: str) -> None:
    result = configure(recorder, "--from", number, "--url", "https://example.com/ingest")
    assert result.exit_code == 1
    line = one_error_line(result.output)
    assert "--from (TTMA_AGENT_NUMBER) must be an E.164 phone number such as +16475550100" in line
    assert "from_number" not in result.output
    assert recorder.requests == []


def test_a_short_secret_names_the_secret_option_and_hides_it(recorder: Recorder) -> None:
    result = run(
        "configure-webhook",
        "--api-key",
        "k",
        "--secret",
        "short-secret-value",
        "--base-url",
        recorder.url,
        "--from",
        "+16475550100",
        "--url",
        "https://example.com/ingest",
    )
    assert result.exit_code == 1
    assert "--secret (TTMA_WEBHOOK_SECRET) must be at least 32 characters" in result.output
    assert "short-secret-value" not in result.output
    assert recorder.requests == []


# ----------------------------------------------------------------- TLS and plain HTTP mixed up


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[str]:
    """An HTTPS server on 127.0.0.1 (a self-signed certificate made here)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    server = Recorder()
    server.socket = context.wrap_socket(server.socket, server_side=True)
    for _ in serving(server):
        yield f"127.0.0.1:{server.server_address[1]}"


def test_https_to_a_plain_http_server_names_the_likely_cause(recorder: Recorder) -> None:
    url = recorder.url.replace("http://", "https://") + "?token=query-secret-42"
    result = run("send", url, "--secret", SECRET)
    assert result.exit_code == 2
    line = one_error_line(result.output)
    assert f"could not reach {url.split('?')[0]}: the TLS handshake failed with SSL error" in line
    assert "; the server likely speaks plain HTTP: use an http:// URL" in line
    for private in ("query-secret-42", SECRET, "v1=", "deliveryId", "call.ended"):
        assert private not in result.output


def test_plain_http_to_an_https_server_names_the_likely_cause(tls_server: str) -> None:
    result = run("send", f"http://{tls_server}/", "--secret", SECRET)
    assert result.exit_code == 2
    line = one_error_line(result.output)
    assert f"could not reach http://{tls_server}/: the server closed the connection" in line
    assert "if it is an HTTPS server, use an https:// URL" in line
    assert SECRET not in result.output and "v1=" not in result.output


def test_an_untrusted_certificate_is_named(tls_server: str) -> None:
    result = run("send", f"https://{tls_server}/", "--secret", SECRET)
    assert result.exit_code == 2
    line = one_error_line(result.output)
    assert f"could not reach https://{tls_server}/: its TLS certificate was not accepted: " in line


def test_a_refused_connection_is_named() -> None:
    url = f"http://127.0.0.1:{free_port()}/"
    result = run("send", url, "--secret", SECRET)
    assert result.exit_code == 2
    line = one_error_line(result.output)
    assert f"could not reach {url}: connection refused (nothing listens on that port)" in line


def test_configure_webhook_names_a_tls_mix_up_of_the_api_url(recorder: Recorder) -> None:
    base = recorder.url.replace("http://", "https://")
    result = run(
        "configure-webhook",
        "--api-key",
        "admin-key-123",
        "--secret",
        SECRET,
        "--base-url",
        base,
        "--from",
        "+16475550100",
        "--url",
        "https://example.com/ingest",
    )
    assert result.exit_code == 2
    assert "TTMA API unreachable: " in result.output
    assert "the server likely speaks plain HTTP: use an http:// URL" in result.output
    assert "admin-key-123" not in result.output and SECRET not in result.output


def doctor_target(ingest_url: str, api_base_url: str) -> Any:
    from ttma_relay.cli.doctor_checks import Target

    return Target(
        project="p", ingest_url=ingest_url, webhook_secret=SECRET, api_key="admin-key-123",
        api_base_url=api_base_url, topic="t", dead_letter_topic="t-dl", hold_subscription="h",
        bucket="b", database="(default)", deliveries_collection="d",
        max_checkpoint_age=datetime.timedelta(hours=2),
    )  # fmt: skip


def test_doctor_names_a_tls_mix_up_in_its_checks(recorder: Recorder) -> None:
    from ttma_relay.cli.doctor_checks import check_api_key, check_ingest, run_check

    https_at_plain = recorder.url.replace("http://", "https://")
    target = doctor_target(https_at_plain, https_at_plain)
    ingest = run_check("ingest self-test", check_ingest, target)
    api = run_check("api key voice:read", check_api_key, target)
    for check in (ingest, api):
        assert not check.ok
        assert "the TLS handshake failed with SSL error" in check.detail
        assert "the server likely speaks plain HTTP: use an http:// URL" in check.detail
        assert SECRET not in check.detail and "admin-key-123" not in check.detail
    assert ingest.detail.startswith("ConnectError: ")
    assert recorder.requests == []


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "https://user:pw@ingest.example.com:8443/fn?key=k3y#frag",
            "https://ingest.example.com:8443/fn",
        ),
        ("http://[::1]:8080/", "http://[::1]:8080/"),
        ("not a url", "the URL"),
    ],
)
def test_a_shown_url_drops_what_could_hold_a_token(url: str, shown: str) -> None:
    assert cli_common.shown_url(url) == shown
