"""The one ``NAME=value`` parser (the stack writes endpoints.env; the CLI and tools read it)."""

from __future__ import annotations

import shlex

from devstack.stack.command import read_endpoints, write_endpoints
from ttma_relay.env_file import parse_env_file


def test_what_the_stack_writes_reads_back_exactly(tmp_path):
    values = {"INGEST_URL": "http://127.0.0.1:8080/", "ODD": "a b'c\"d $x", "EMPTY": ""}
    write_endpoints(tmp_path / "endpoints.env", values)
    assert read_endpoints(tmp_path) == values
    assert read_endpoints(tmp_path / "absent") == {}


def test_plain_lines_comments_and_non_names():
    text = f"# c\n\nA=1\nexport B={shlex.quote('two words')}\n  C = x\n1X=no\nnoequals\n"
    assert parse_env_file(text) == {"A": "1", "B": "two words"}
