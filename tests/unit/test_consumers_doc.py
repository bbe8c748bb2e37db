"""docs/consumers.md stays true: its code parses, its header table names every attribute.

Stand-in: sqlglot checks the BigQuery SQL's syntax, not its meaning; nothing here runs BigQuery.
"""

from __future__ import annotations

import io
import json
import re

import hcl2
import pytest
import sqlglot

from tests.support.paths import REPO_ROOT
from ttma_relay.contract.messages import ATTRIBUTE_NAMES

DOC = REPO_ROOT / "docs" / "consumers.md"
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


def test_n8n_example_reads_the_body_and_acks_only_when_done():
    """examples/n8n: tested against a real n8n 1.82.3 by its check.sh (not in CI); this keeps
    the file's decisive settings from drifting."""
    workflow_path = DOC.parent.parent / "examples" / "n8n" / "ttma-call-events.workflow.json"
    workflow = json.loads(workflow_path.read_text())
    [webhook] = [n for n in workflow["nodes"] if n["type"] == "n8n-nodes-base.webhook"]
    assert webhook["parameters"]["httpMethod"] == "POST"
    assert webhook["parameters"]["path"] == "ttma"
    assert webhook["parameters"]["responseMode"] == "lastNode"  # a failed run is redelivered
    assert len(workflow["id"]) <= 16  # n8n 1.82.3 saves no static data for longer ids
    text = json.dumps(workflow)
    assert "$json.body.data.id" in text and "$json.body.data.endedReason" in text
    assert not re.search(r"\$json\.data\.", text)  # the vendor page's form is null in a Webhook
    assert "removeDuplicates" not in text  # measured to lose events on 1.82.3
