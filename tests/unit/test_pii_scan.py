"""tests/fixtures/pii_scan.py fails a session whose logs hold a secret or personal data.

The end-to-end cases run pytest in a subprocess on a tiny test file with only the scan plugin
(``-p tests.fixtures.pii_scan``) and their own ``--basetemp``, so what they leak on purpose
stays in their own session: the scan of this session never sees it.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from devstack.stack.command import DEV_WEBHOOK_SECRET_PREFIX
from tests.fixtures import pii_scan
from tests.support import payloads
from tests.support.paths import REPO_ROOT
from ttma_sandbox.api_keys import generate_api_key

HEADER = """
import logging
import pytest
from tests.support import payloads
log = logging.getLogger("relay")
"""


def run_session(body: str) -> subprocess.CompletedProcess[str]:
    """pytest with only the scan plugin on ``body``, in a folder outside this session's tmp
    folder (this session's scan reads every log file in there)."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    env.pop("CI", None)
    with tempfile.TemporaryDirectory(prefix="pii-scan-case-") as work:
        (Path(work) / "test_case.py").write_text(HEADER + textwrap.dedent(body))
        return subprocess.run(  # noqa: S603  sys.executable -m pytest on the test's own file
            [sys.executable, "-m", "pytest", "-q", "-p", "tests.fixtures.pii_scan", "-p",
             "no:cacheprovider", "--basetemp", str(Path(work) / "tmp"), "--rootdir", work,
             "test_case.py"],
            cwd=work, env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip


LEAKS = {  # test name in the inner session -> (expression of the value it logs, kind)
    "test_transcript": ("payloads.GOLDEN['data']['transcript']", "transcript"),
    "test_phone": ("payloads.GOLDEN['data']['calledNumber']", "phone number"),
    "test_facts": ("payloads.GOLDEN['data']['task']['facts']['amount_due']", "task.facts"),
    "test_api_key": (repr(generate_api_key()), "TTMA API key"),
    "test_phone_hash_key": ("payloads.PHONE_HASH_KEY", "phone hash key"),
    "test_signed_url": (
        "'https://x/_recordings/a.mp3?X-Sandbox-Expires=1&X-Sandbox-Signature=' + 'ab' * 32",
        "signed URL signature",
    ),
}
LEAKY_SESSION = (  # one inner session for every case that must fail it (each ~2 s to start)
    """
    def test_leaky():
        log.warning("verifying with %s", payloads.SECRET)

    def test_stack(tmp_path):
        (tmp_path / "endpoints.env").write_text("export TTMA_WEBHOOK_SECRET=dev_f00d42\\n")
        (tmp_path / "sandbox.log").write_text("signing with dev_f00d42\\n")

    @pytest.mark.shows_pii("prints the call the operator asked for")
    def test_shows_a_call():
        print(payloads.GOLDEN["data"]["transcript"])

    def test_prints_without_the_marker():
        print(payloads.GOLDEN["data"]["transcript"])

    @pytest.mark.shows_pii("the marker covers stdout only")
    def test_marked_but_logs_it():
        log.warning(payloads.GOLDEN["data"]["transcript"])
    """
    + "".join(  # one test per kind, each writing its value to a log file of its own
        f"""
    def {name}(tmp_path):
        (tmp_path / "logs").mkdir()
        (tmp_path / "logs" / "ingest.log").write_text("archived " + str({leak}) + "\\n")
    """
        for name, (leak, _) in LEAKS.items()
    )
)


@pytest.fixture(scope="module")
def leaky() -> subprocess.CompletedProcess[str]:
    done = run_session(LEAKY_SESSION)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"{5 + len(LEAKS)} passed" in done.stdout  # the tests passed: the scan failed it
    return done


def test_a_secret_in_a_log_record_fails_the_session_without_showing_it(leaky) -> None:
    output = leaky.stdout + leaky.stderr
    assert "test_case.py::test_leaky [Captured log call]: webhook secret (whse…" in output
    assert payloads.SECRET not in output


def test_a_clean_session_passes_and_says_what_it_scanned() -> None:
    done = run_session(
        """
        def test_clean(tmp_path):
            log.warning("delivery accepted: call v3:abc123, 312 s")
            (tmp_path / "ingest.log").write_text('{"severity": "INFO", "status": 200}')
            print("ok")
        """,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "PII/secret scan: " in done.stdout and ": nothing found" in done.stdout
    assert "1 log files" in done.stdout


def test_a_served_function_s_log_file_is_scanned_for_each_kind(leaky) -> None:
    for name, (_, kind) in LEAKS.items():
        assert f"{name}0/logs/ingest.log [log file]: {kind} (" in leaky.stdout, name
    assert leaky.stdout.count("/logs/ingest.log [log file]") == len(LEAKS)


def test_a_stack_s_own_secret_from_its_endpoints_file_is_looked_for(leaky) -> None:
    assert "sandbox.log [log file]: webhook secret (dev_… (10 chars))" in leaky.stdout


def test_stdout_shown_on_purpose_is_allowed_only_with_the_marker_and_logs_never(leaky) -> None:
    found = leaky.stdout.split("PII/secret scan", 1)[1]
    assert "test_shows_a_call" not in found
    assert "test_prints_without_the_marker [Captured stdout call]: transcript" in found
    assert "test_marked_but_logs_it [Captured log call]: transcript" in found


def test_the_marker_needs_a_reason() -> None:
    done = run_session(
        """
        @pytest.mark.shows_pii
        def test_no_reason():
            pass
        """,
    )
    assert done.returncode != 0 and "needs a reason" in done.stdout + done.stderr


def test_the_needles_come_from_the_suite_s_own_data() -> None:
    needles = pii_scan.suite_needles([sys.modules[__name__]])
    kinds = set(needles.exact.values()) | {kind for kind, _ in needles.patterns}
    assert kinds == set(pii_scan.KINDS)
    assert needles.exact[payloads.SECRET] == "webhook secret"
    assert needles.exact[payloads.GOLDEN["data"]["transcript"]] == "transcript"
    found = dict(needles.find(f"key {generate_api_key()} to +16475551234"))
    assert set(found) == {"TTMA API key", "phone number"}
    stack_secret = DEV_WEBHOOK_SECRET_PREFIX + secrets.token_hex(24)  # as start_stack makes it
    assert dict(needles.find(f"signed with {stack_secret}")) == {"webhook secret": stack_secret}
    assert list(needles.find("call v3:abc123 ended after 312 s at 2026-05-25T14:35:12Z")) == []


def test_a_found_value_is_shown_only_by_its_first_characters() -> None:
    assert pii_scan.redact(payloads.SECRET) == f"whse… ({len(payloads.SECRET)} chars)"
