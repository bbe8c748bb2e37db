"""scripts/audit_dependencies.py tells a vulnerability from a service it could not reach.

The cases are pip-audit's own outputs, recorded on this project's machine
(``tests/data/pip_audit/*.json``: the pins, pip-audit's exit code, its JSON report or none,
what it printed): PyPI as reached here (it serves no per-version JSON, so pip-audit skips every
pin), OSV unreachable (DNS) and refusing connections, and a local OSV stand-in serving the
pypa/advisory-database records, which reports ``requests==2.19.0`` and ``jinja2==2.10``.
``tests/integration/test_audit_dependencies.py`` runs the script itself against a local OSV.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from typing import Any

import pytest

from tests.support.paths import REPO_ROOT, TEST_DATA


def _script():
    path = REPO_ROOT / "scripts" / "audit_dependencies.py"
    spec = importlib.util.spec_from_file_location("audit_dependencies", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["audit_dependencies"] = module
    spec.loader.exec_module(module)
    return module


audit = _script()
VULNERABLE_PINS = {"requests": "2.19.0", "jinja2": "2.10"}


def recorded(name: str) -> dict[str, Any]:
    return json.loads((TEST_DATA / "pip_audit" / f"{name}.json").read_text())


def answer_of(name: str):
    case = recorded(name)
    report = None if case["report"] is None else json.dumps(case["report"])
    return audit.read_service_answer(case["service"], case["returncode"], report, case["output"])


def test_a_known_vulnerable_pin_is_reported_and_fails() -> None:
    answer = answer_of("osv-vulnerable")
    assert answer.error is None and answer.unreachable is None
    found = {(v.package, v.version, v.id) for v in answer.vulnerabilities}
    assert ("requests", "2.19.0", "PYSEC-2018-28") in found  # CVE-2018-18074, fixed in 2.20.0
    assert ("jinja2", "2.10", "PYSEC-2019-217") in found
    verdict = audit.combine(VULNERABLE_PINS, [answer])
    assert verdict.kind == "vulnerable" and verdict.unaudited == {}
    assert verdict.exit_code() == 1
    assert "VULNERABLE requests==2.19.0: PYSEC-2018-28" in audit.report(
        verdict, "r.txt", warn_only=False
    )


def test_the_vulnerable_run_exits_1_like_a_crash_so_the_exit_code_alone_cannot_tell() -> None:
    assert recorded("osv-vulnerable")["returncode"] == 1
    assert recorded("osv-unreachable-dns")["returncode"] == 1


@pytest.mark.parametrize("name", ["osv-unreachable-dns", "osv-connection-refused"])
def test_an_unreachable_osv_is_a_warning_not_a_failure(name: str) -> None:
    answer = answer_of(name)
    assert answer.error is None and answer.vulnerabilities == ()
    assert answer.unreachable
    verdict = audit.combine(VULNERABLE_PINS, [answer])
    assert verdict.kind == "unaudited" and set(verdict.unaudited) == set(VULNERABLE_PINS)
    assert verdict.exit_code() == 0
    assert "WARNING 2 package(s)" in audit.report(verdict, "r.txt", warn_only=False)


def test_pypi_serving_no_per_version_data_leaves_every_pin_unaudited_not_clean() -> None:
    """pip-audit itself says "No known vulnerabilities found" and exits 0 here."""
    case = recorded("pypi-versions-not-served")
    assert case["returncode"] == 0 and "No known vulnerabilities found" in case["output"]
    verdict = audit.combine(VULNERABLE_PINS, [answer_of("pypi-versions-not-served")])
    assert verdict.kind == "unaudited" and set(verdict.unaudited) == set(VULNERABLE_PINS)
    assert "not found on PyPI" in verdict.unaudited["requests"]


def test_what_pypi_skips_and_osv_finds_is_vulnerable() -> None:
    answers = [answer_of("pypi-versions-not-served"), answer_of("osv-vulnerable")]
    assert audit.combine(VULNERABLE_PINS, answers).exit_code() == 1


def test_pypi_skipping_and_osv_unreachable_name_both_reasons() -> None:
    answers = [answer_of("pypi-versions-not-served"), answer_of("osv-unreachable-dns")]
    verdict = audit.combine(VULNERABLE_PINS, answers)
    assert verdict.kind == "unaudited" and verdict.exit_code() == 0
    assert "pypi: Dependency not found" in verdict.unaudited["jinja2"]
    assert "osv unreachable: " in verdict.unaudited["jinja2"]


def test_the_resolved_runtime_pins_recorded_clean_are_clean() -> None:
    case = recorded("osv-clean-runtime")
    pins = dict(pin.split("==") for pin in case["pins"])
    canonical = {audit.canonical(name): version for name, version in pins.items()}
    verdict = audit.combine(canonical, [answer_of("osv-clean-runtime")])
    assert len(pins) > 40  # the transitive dependencies too, not only requirements.txt's lines
    assert verdict.kind == "clean" and verdict.exit_code() == 0


@pytest.mark.parametrize(
    ("returncode", "report", "output"),
    [
        (1, None, "Traceback (most recent call last):\nKeyError: 'dependencies'"),
        (1, None, "ERROR:pip_audit._cli:requirement requests is not pinned: requests>=2"),
        (1, '{"dependencies": [{"name": "a", "version": "1", "vulns": []}]}', ""),  # 1, no vuln
        (2, '{"dependencies": []}', "usage: pip-audit ..."),
        (0, "{not json", ""),
    ],
)
def test_a_failure_that_is_neither_a_finding_nor_the_network_fails_the_audit(
    returncode: int, report: str | None, output: str
) -> None:
    answer = audit.read_service_answer("osv", returncode, report, output)
    assert answer.error is not None and answer.unreachable is None
    assert audit.combine({"a": "1"}, [answer]).exit_code() == 2


@pytest.mark.parametrize(
    "output",
    [
        "requests.exceptions.ReadTimeout: HTTPSConnectionPool(host='api.osv.dev'): timed out",
        "pip_audit._service.interface.ServiceError: Status code 503 from https://pypi.org/pypi/x",
        "WARNING: Retrying ... NewConnectionError('Failed to establish a new connection')",
    ],
)
def test_other_network_failures_are_warnings(output: str) -> None:
    answer = audit.read_service_answer("pypi", 1, None, output)
    assert answer.unreachable is not None and answer.error is None
    assert audit.combine({"a": "1"}, [answer]).exit_code() == 0


def test_warn_only_turns_a_vulnerability_into_a_warning_but_not_a_malicious_package() -> None:
    verdict = audit.combine(VULNERABLE_PINS, [answer_of("osv-vulnerable")])
    assert verdict.exit_code(warn_only=True) == 0
    assert "(--warn-only)" in audit.report(verdict, "dev.txt", warn_only=True)
    malicious = audit.Vulnerability("evil", "1.0", "MAL-2024-1")
    assert audit.Verdict("vulnerable", (malicious,)).exit_code(warn_only=True) == 1
