"""Every ignore of a bandit rule (ruff's ``S``) says why, where it is made.

Inline: ``# noqa: S603  the venv's own console script`` — the codes, then a reason. In
pyproject.toml: an ``S`` code in ``ignore`` or ``per-file-ignores`` has a comment on its line,
``# S101: why``. A bare ``# noqa`` (every rule, bandit's included) is refused outright, and so
is a file-wide ``# ruff: noqa`` that covers an ``S`` rule. The checks run on the repository's
own files; the small cases below show that each check can fail.
"""

from __future__ import annotations

import io
import re
import subprocess
import tokenize
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.paths import REPO_ROOT

MIN_REASON_CHARS = 12  # "a test secret" passes; "ok", "safe", "fine" do not
NOQA = re.compile(r"#\s*(?P<file>ruff:\s*)?noqa\b(?P<after>.*)", re.IGNORECASE)
CODES = re.compile(r"^:\s*(?P<codes>[A-Z]+[0-9]*(?:\s*,\s*[A-Z]+[0-9]*)*)(?P<reason>.*)$")
BANDIT = re.compile(r"^S[0-9]*$")  # S, S1, S101: bandit's rules (not SIM, SLF, ...)
BLANKET = "a blanket noqa (it hides the bandit rules too)"
SKIPPED_DIRS = {"terraform", "node_modules", "__pycache__"}  # and every dot-folder (.venv, ...)


def _reason(text: str) -> str:
    return text.strip().lstrip("-:;,\u2013\u2014").strip()


def noqa_problems(source: str) -> list[str]:
    """``line N: why`` for each noqa comment in ``source`` that hides a bandit rule unexplained."""
    problems = []
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    for token in tokens:
        if token.type != tokenize.COMMENT or not (match := NOQA.search(token.string)):
            continue
        line = token.start[0]
        codes = CODES.match(match["after"])
        if codes is None:
            problems.append(f"line {line}: {BLANKET}")
            continue
        bandit = [c.strip() for c in codes["codes"].split(",") if BANDIT.match(c.strip())]
        if not bandit:
            continue
        if match["file"]:
            problems.append(f"line {line}: a file-wide noqa of {', '.join(bandit)}")
        elif len(_reason(codes["reason"])) < MIN_REASON_CHARS:
            problems.append(f"line {line}: noqa {', '.join(bandit)} without a reason")
    return problems


def _ruff_ignore_lines(pyproject: str) -> Iterator[tuple[int, str, str]]:
    """(line number, the TOML value, its comment) of each ruff ignore setting in the file."""
    section = ""
    for number, line in enumerate(pyproject.splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith("["):
            section = stripped.strip("[]").strip()
            continue
        if not section.startswith("tool.ruff") or "=" not in stripped or stripped[0] == "#":
            continue
        key, _, rest = stripped.partition("=")
        key = key.strip().strip('"')
        in_per_file = section.endswith("per-file-ignores")
        if not in_per_file and key not in ("ignore", "extend-ignore"):
            continue
        value, _, comment = rest.partition("#")
        yield number, value, comment


def pyproject_problems(pyproject: str) -> list[str]:
    """``line N: why`` for each bandit rule ignored in ``pyproject`` without a reason beside it.

    A value must be on one line (``"a" = ["S1", ...]``) so that its comment is beside it."""
    problems = []
    for number, value, comment in _ruff_ignore_lines(pyproject):
        if value.strip().startswith("[") and not value.strip().endswith("]"):
            problems.append(f"line {number}: a multi-line ignore list; keep it on one line")
            continue
        for code in re.findall(r'"([A-Z]+[0-9]*)"', value):
            if not BANDIT.match(code):
                continue
            reason = re.search(rf"\b{code}\b\s*:(.*?)(?=\b[A-Z]+[0-9]+\s*:|$)", comment)
            if reason is None or len(_reason(reason[1])) < MIN_REASON_CHARS:
                problems.append(f"line {number}: {code} ignored without '# {code}: reason'")
    return problems


def _python_files() -> list[Path]:
    """The files ruff checks: tracked or new, not git-ignored (``build/``, ``.venv``, ...)."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "--", "*.py"],  # noqa: S607  git from PATH, as ruff and make use it
        cwd=REPO_ROOT, capture_output=True, text=True, check=True,
    ).stdout.splitlines()  # fmt: skip
    return sorted(
        REPO_ROOT / name
        for name in listed
        if (REPO_ROOT / name).is_file()
        and not any(part in SKIPPED_DIRS for part in Path(name).parts[:-1])
    )


def test_every_inline_bandit_noqa_in_the_repository_gives_a_reason() -> None:
    files = _python_files()
    assert len(files) > 100  # the walk found the project's code, not an empty folder
    found = {
        str(path.relative_to(REPO_ROOT)): problems
        for path in files
        if (problems := noqa_problems(path.read_text(encoding="utf-8")))
    }
    assert found == {}


def test_every_bandit_ignore_in_pyproject_gives_a_reason() -> None:
    text = (REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert list(_ruff_ignore_lines(text))  # the settings were found where ruff reads them
    assert pyproject_problems(text) == []
    assert not (REPO_ROOT / "ruff.toml").exists() and not (REPO_ROOT / ".ruff.toml").exists()


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("x = run(cmd)  # noqa: S603\n", "noqa S603 without a reason"),
        ("x = run(cmd)  # noqa: S603 - ok\n", "noqa S603 without a reason"),
        ("x = run(cmd)  # noqa: E501, S603\n", "noqa S603 without a reason"),
        ("x = run(cmd)  # noqa\n", BLANKET),
        ("x = run(cmd)  # NOQA the venv's own script\n", BLANKET),
        ("# ruff: noqa: S101\n", "a file-wide noqa of S101"),
        ("x = 1  # noqa: S  every bandit rule\n", None),  # has a reason: allowed inline
        ("x = run(cmd)  # noqa: S603  the venv's own console script\n", None),
        ("x = run(cmd)  # noqa: E501\n", None),  # not a bandit rule
        ("x = run(cmd)  # noqa: SIM102\n", None),
        ("x = '# noqa: S603'\n", None),  # in a string, not a comment
    ],
)
def test_the_inline_check_refuses_a_bandit_noqa_without_a_reason(line, problem) -> None:
    found = noqa_problems(line)
    assert found == ([] if problem is None else [f"line 1: {problem}"])


@pytest.mark.parametrize(
    ("toml", "problems"),
    [
        ('[tool.ruff.lint]\nignore = ["S101", "ANN401"]\n', ["S101"]),
        ('[tool.ruff.lint]\nextend-ignore = ["S"]  # S:\n', ["S"]),
        (
            '[tool.ruff.lint.per-file-ignores]\n"t/*" = ["S105", "S106"]  # S105: test keys only\n',
            ["S106"],
        ),  # S106 has no reason of its own
        ('[tool.ruff.lint.per-file-ignores]\n"t/**" = ["S101"]  # S101: pytest asserts\n', []),
        ('[tool.ruff.lint.per-file-ignores]\n"t/**" = ["ANN"]\n', []),
        ('[tool.other]\nignore = ["S101"]\n', []),  # not ruff's setting
    ],
)
def test_the_pyproject_check_refuses_a_bandit_ignore_without_a_reason(toml, problems) -> None:
    assert pyproject_problems(toml) == [
        f"line 2: {code} ignored without '# {code}: reason'" for code in problems
    ]


def test_the_pyproject_check_refuses_a_multi_line_list() -> None:
    toml = '[tool.ruff.lint]\nignore = [\n  "S101",  # S101: pytest asserts\n]\n'
    assert pyproject_problems(toml) == ["line 2: a multi-line ignore list; keep it on one line"]
