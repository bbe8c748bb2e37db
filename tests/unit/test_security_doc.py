"""SECURITY.md names the test behind each claim: every name it gives must exist.

A node id ``tests/x.py::test_name`` (or ``::test_name`` after one, in the same file), a test
file, a Terraform test run (``terraform/tests/<file>.tftest.hcl`` run ``name``): a renamed or
deleted test would leave a claim backed by nothing, and this fails instead.
"""

from __future__ import annotations

import re

from tests.support.paths import REPO_ROOT

SECURITY = (REPO_ROOT / "SECURITY.md").read_text()
# `tests/unit/test_verify.py::test_a`, then `::test_b` (same file), or a bare `tests/...py`
REFERENCE = re.compile(r"`(tests/[\w/]+\.py)?(?:::(\w+))?`")
TFTEST_RUN = re.compile(r"`(terraform/tests/[\w.-]+\.tftest\.hcl)` runs? `(\w+)`")


def cited_tests(text: str) -> list[tuple[str, str | None]]:
    """(file, test name or None) for every test reference in ``text``, in order."""
    cited, current = [], None
    for match in REFERENCE.finditer(text):
        path, name = match.groups()
        if path is None and name is None:
            continue
        current = path or current
        assert current is not None, f"`::{name}` before any file"
        cited.append((current, name))
    return cited


def missing(text: str) -> list[str]:
    """The references of ``text`` to a test file or test function that does not exist."""
    absent = []
    for path, name in cited_tests(text):
        file = REPO_ROOT / path
        if not file.is_file():
            absent.append(path)
        elif name is not None and not re.search(rf"^\s*def {name}\(", file.read_text(), re.M):
            absent.append(f"{path}::{name}")
    return absent


def test_every_cited_test_file_and_test_exists() -> None:
    assert len(cited_tests(SECURITY)) > 50  # the parser still finds the references
    assert missing(SECURITY) == []


def test_every_cited_terraform_run_exists() -> None:
    runs = TFTEST_RUN.findall(SECURITY)
    assert len(runs) >= 5
    for path, name in runs:
        assert f'run "{name}"' in (REPO_ROOT / path).read_text(), f"{path} run {name}"


def test_a_renamed_test_or_file_is_reported() -> None:
    text = (
        "`tests/unit/test_verify.py::test_known_answer_vectors`, `::test_no_such_test_here`; "
        "`tests/unit/test_no_such_file.py`"
    )
    assert missing(text) == [
        "tests/unit/test_verify.py::test_no_such_test_here",
        "tests/unit/test_no_such_file.py",
    ]
