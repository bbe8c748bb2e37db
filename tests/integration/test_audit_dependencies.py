"""scripts/audit_dependencies.py end to end: the real pip-audit, asking a local OSV.

The OSV stand-in on 127.0.0.1 answers with recorded OSV records
(``tests/data/pip_audit/osv-answers.json``) and ``{}`` (nothing known) for anything else; on
``/fail`` it answers 503. Nothing leaves the machine: ``--no-resolve`` audits the file's pins as
written (resolution needs PyPI, whose answers the unit tests cover from recordings).
"""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.paths import REPO_ROOT, TEST_DATA

SCRIPT = REPO_ROOT / "scripts" / "audit_dependencies.py"
ANSWERS = json.loads((TEST_DATA / "pip_audit" / "osv-answers.json").read_text())["answers"]


class _Osv(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        query = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        pin = f"{query['package']['name'].lower()}=={query['version']}"
        status, body = (
            (503, b"") if self.path == "/fail" else (200, json.dumps(ANSWERS.get(pin, {})).encode())
        )
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def osv() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Osv)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(5)


def run_audit(tmp_path: Path, pins: str, osv_url: str) -> subprocess.CompletedProcess[str]:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(pins)
    return subprocess.run(  # noqa: S603  sys.executable on the project's script, fixed args
        [sys.executable, str(SCRIPT), str(requirements), "--no-resolve", "--service", "osv",
         "--osv-url", osv_url],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_a_known_vulnerable_pin_fails_the_audit(tmp_path, osv) -> None:
    done = run_audit(tmp_path, "requests==2.19.0\nhttpx==0.28.1\n", f"{osv}/v1/query")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "VULNERABLE requests==2.19.0: PYSEC-2018-28" in done.stdout
    assert "httpx" not in done.stdout.split("VULNERABLE", 1)[1]


def test_pins_with_nothing_known_pass(tmp_path, osv) -> None:
    done = run_audit(tmp_path, "requests==2.34.2  # a comment\nhttpx==0.28.1\n", f"{osv}/v1/query")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no known vulnerabilities" in done.stdout and "WARNING" not in done.stdout


@pytest.mark.parametrize("where", ["closed port", "503"])
def test_an_unreachable_or_failing_service_is_a_warning_and_exit_0(tmp_path, osv, where) -> None:
    url = "http://127.0.0.1:9/v1/query" if where == "closed port" else f"{osv}/fail"
    done = run_audit(tmp_path, "requests==2.19.0\n", url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "WARNING 1 package(s)" in done.stdout and "osv unreachable" in done.stdout


def test_a_file_it_cannot_audit_fails_with_2(tmp_path, osv) -> None:
    done = run_audit(tmp_path, "requests>=2\n", f"{osv}/v1/query")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "ERROR" in done.stdout
