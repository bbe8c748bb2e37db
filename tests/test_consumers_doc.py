"""docs/consumers.md stays true: its code parses, its header table names every attribute.

Stand-in: sqlglot checks the BigQuery SQL's syntax, not its meaning; nothing here runs BigQuery.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import hcl2
import pytest
import sqlglot

from ttma_relay.call_events import ATTRIBUTE_NAMES

DOC = Path(__file__).resolve().parent.parent / "docs" / "consumers.md"
TEXT = DOC.read_text()


def _blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", TEXT, re.DOTALL | re.MULTILINE)


def test_doc_has_the_examples_the_issue_asks_for():
    assert len(_blocks("sql")) == 3  # end reasons per day, grades and latency, recent failures
    assert _blocks("python") and _blocks("hcl")


@pytest.mark.parametrize("sql", _blocks("sql"), ids=lambda s: s.split("\n", 1)[0][:30])
def test_bigquery_sql_parses(sql):
    [statement] = sqlglot.parse(sql, read="bigquery", error_level=sqlglot.ErrorLevel.RAISE)
    assert statement is not None
    assert "call_events" in sql and "ROW_NUMBER() OVER (PARTITION BY" in sql  # one row per call
    for personal in ("callerNumber", "calledNumber", "transcript", "facts"):
        assert personal not in sql


def test_bad_sql_is_caught():
    with pytest.raises(sqlglot.errors.ParseError):
        sqlglot.parse("SELECT FROM WHERE (", read="bigquery", error_level=sqlglot.ErrorLevel.RAISE)


@pytest.mark.parametrize("code", _blocks("python"))
def test_python_examples_compile(code):
    compile(code, str(DOC), "exec")


@pytest.mark.parametrize("code", _blocks("hcl"))
def test_hcl_examples_parse(code):
    hcl2.load(io.StringIO(code.replace("# ...", "")))


def test_header_table_names_every_attribute():
    table = TEXT.split("| header | value |", 1)[1].split("\n\n", 1)[0]
    named = set(re.findall(r"`([A-Za-z-]+)`", table))
    assert set(ATTRIBUTE_NAMES) <= named, set(ATTRIBUTE_NAMES) - named
