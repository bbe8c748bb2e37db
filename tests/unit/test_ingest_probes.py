"""Health probes (GET/HEAD) on ingest are quiet; other wrong methods are still warnings.

The local stack probes every function with HEAD: each answers 405 and does nothing (a GET
would run reconcile).

Through the real functions-framework app. No emulator is needed: a 405 is answered before
ingest reads the body or touches Firestore or Pub/Sub (their hosts point at a closed port, so
any attempt would fail the request rather than pass unnoticed).
"""

from __future__ import annotations

import http.server
import threading
from types import SimpleNamespace
from typing import ClassVar

import flask
import functions_framework
import pytest

from devstack.stack.config import FUNCTIONS, PORT_OFFSETS, StackConfig
from devstack.stack.health import HealthCheck
from devstack.stack.services import StackSecrets, function_service
from handlers import reconcile as reconcile_handler
from handlers import wiring
from handlers.reconcile import ReconcileDeps
from tests.support.paths import REPO_ROOT
from tests.support.payloads import SECRET

ROOT = REPO_ROOT
CLOSED = "127.0.0.1:9"  # the discard port: nothing listens on loopback


@pytest.fixture
def client(monkeypatch):
    env = {
        "GOOGLE_CLOUD_PROJECT": "ttma-relay-test",
        "TTMA_WEBHOOK_SECRET": SECRET,
        "FIRESTORE_EMULATOR_HOST": CLOSED,
        "PUBSUB_EMULATOR_HOST": CLOSED,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("TTMA_WEBHOOK_SECRET_PREVIOUS", raising=False)
    wiring.reset()
    app = functions_framework.create_app(target="ingest", source=str(ROOT / "main.py"))
    yield app.test_client()
    wiring.reset()


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_a_probe_is_answered_405_and_logged_at_info(client, log_lines, method):
    response = client.open("/", method=method)
    assert (response.status_code, response.headers["Allow"]) == (405, "POST")
    if method == "GET":
        assert response.get_json()["status"] == "method_not_allowed"
    [line] = log_lines()
    assert line["severity"] == "INFO"
    assert (line["outcome"], line["httpStatus"], line["method"]) == (
        "method_not_allowed",
        405,
        method,
    )


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "OPTIONS"])
def test_a_wrong_method_is_still_a_warning_that_names_it(client, log_lines, method):
    response = client.open("/", method=method, data=b'{"deliveryId":"d"}')
    assert (response.status_code, response.get_json()["status"]) == (405, "method_not_allowed")
    [line] = log_lines()
    assert line["severity"] == "WARNING"
    assert (line["outcome"], line["httpStatus"], line["method"]) == (
        "method_not_allowed",
        405,
        method,
    )


def test_a_method_outside_the_known_ones_is_logged_as_other(client, log_lines):
    response = client.open("/", method="BREW")
    assert response.status_code == 405
    [line] = log_lines()
    assert (line["severity"], line["method"]) == ("WARNING", "other")


def test_a_post_is_not_a_probe(client, log_lines):
    """The quiet path is only for GET/HEAD: an unsigned POST stays a 401 WARNING."""
    response = client.post("/", data=b"{}")
    assert response.status_code == 401
    [line] = log_lines()
    assert (line["severity"], line["outcome"]) == ("WARNING", "invalid_signature")
    assert "method" not in line


# --- the local stack's own probe ------------------------------------------------------------------


class _Recorder(http.server.BaseHTTPRequestHandler):
    """Answers 405 to every method, as the functions do, and records which one came."""

    seen: ClassVar[list[str]] = []

    def _refuse(self) -> None:
        self.seen.append(self.command)
        self.send_response(405)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_HEAD = do_POST = _refuse

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def recording_server():
    _Recorder.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", _Recorder.seen
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.mark.parametrize("name", FUNCTIONS)
def test_the_stack_probes_every_function_with_head(recording_server, name):
    url, seen = recording_server
    config = StackConfig(ports=dict.fromkeys(PORT_OFFSETS, 1))
    service = function_service(config, name, StackSecrets("s" * 32, "k", "h" * 40))
    assert (service.health_method, service.any_status) == ("HEAD", True)
    check = HealthCheck(name, url, None, "log", any_status=True, method=service.health_method)
    assert check.healthy()  # a 405 proves it is serving
    assert seen == ["HEAD"]


def test_a_head_probe_of_reconcile_runs_nothing_where_a_get_would_run_it():
    """Why the stack's probe is a HEAD: reconcile runs on GET as on POST."""
    runs: list[str] = []

    class Reconciler:
        def scheduled_run(self, **_: object) -> None:
            runs.append("run")
            raise RuntimeError("stop here")  # answered 503 by the handler

    settings = SimpleNamespace(lookback_hours=24, delivery_ttl_days=30, grace_seconds=900)
    probe_deps = ReconcileDeps(settings=settings, reconciler=Reconciler())  # type: ignore[arg-type]
    app = flask.Flask(__name__)
    with app.test_request_context("/", method="HEAD"):
        assert reconcile_handler.handle(flask.request, probe_deps).status_code == 405
    assert runs == []
    with app.test_request_context("/", method="GET"):
        assert reconcile_handler.handle(flask.request, probe_deps).status_code == 503
    assert runs == ["run"]
