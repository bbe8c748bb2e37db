"""The local stack's health checks: a function counts as healthy only once it answers HTTP *and*
its log, since this start, says its clients are warmed (a line left by an earlier run does not
count)."""

from __future__ import annotations

import http.server
import threading

import pytest

from devstack.stack.health import HealthCheck
from devstack.stack.services import WARMED_LOG_TEXT


class _NotAllowed(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(405)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def serving_url():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotAllowed)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_a_function_is_healthy_only_once_its_log_says_warmed_since_this_start(
    serving_url, tmp_path
):
    log = tmp_path / "ingest.log"
    log.write_text('{"outcome":"warmed"} from the previous run\n')
    check = HealthCheck("ingest", serving_url, None, str(log), any_status=True,
                        ready_text=WARMED_LOG_TEXT, log_offset=log.stat().st_size)  # fmt: skip
    assert not check.healthy()  # answers, but the only warmed line is an old one
    with log.open("a") as out:
        out.write('{"severity":"INFO","message":"ingest warmed","outcome":"warmed"}\n')
    assert check.healthy()


def test_without_ready_text_answering_is_enough_and_not_answering_is_not(serving_url, tmp_path):
    log = str(tmp_path / "absent.log")
    assert HealthCheck("sandbox", serving_url, None, log, any_status=True).healthy()
    assert not HealthCheck("sandbox", serving_url, None, log).healthy()  # 405 is not 2xx
    dead = HealthCheck("x", "http://127.0.0.1:9/", None, log, any_status=True)
    assert not dead.healthy()
