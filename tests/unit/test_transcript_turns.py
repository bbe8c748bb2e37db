"""The transcript parser: the vendor's format, the awkward cases, and properties."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ttma_relay.contract.transcript_turns import (
    Turn,
    parse_turns,
    render_turns,
    transcript_document,
)


def pairs(transcript: str) -> list[tuple[str | None, str]]:
    return [(turn.speaker, turn.text) for turn in parse_turns(transcript)]


@pytest.mark.parametrize(
    ("transcript", "expected"),
    [
        (
            "[Agent] Hi, this is Sol from Acme. [Caller] Yeah, this is Bobby.",
            [("Agent", "Hi, this is Sol from Acme."), ("Caller", "Yeah, this is Bobby.")],
        ),
        ("[Agent] Hi, this is Sol...", [("Agent", "Hi, this is Sol...")]),
        # newlines between and inside turns; CRLF
        (
            "[Agent] Hello\nthere.\n[Caller] Hi.\r\n[Agent] Bye",
            [("Agent", "Hello\nthere."), ("Caller", "Hi."), ("Agent", "Bye")],
        ),
        # brackets inside text are text, known labels mid-line still split
        (
            "[Caller] I pressed [1] and heard [inaudible] music [Agent] Sorry about that.",
            [
                ("Caller", "I pressed [1] and heard [inaudible] music"),
                ("Agent", "Sorry about that."),
            ],
        ),
        ("[Caller] a [b c] d ] [ e", [("Caller", "a [b c] d ] [ e")]),
        # unknown speakers at the start of a line are turns; mid-line they are text
        (
            "[Agent] One moment.\n[Supervisor] Hello, I'm taking over.\n"
            "[Caller] OK [Supervisor] hm",
            [
                ("Agent", "One moment."),
                ("Supervisor", "Hello, I'm taking over."),
                ("Caller", "OK [Supervisor] hm"),
            ],
        ),
        ("[IVR] Press 1. [Caller] 1", [("IVR", "Press 1."), ("Caller", "1")]),
        # empty turns are kept, labels kept as written
        ("[Agent] [Caller] Hello? [AGENT]", [("Agent", ""), ("Caller", "Hello?"), ("AGENT", "")]),
        ("[agent]hi[caller]yo", [("agent", "hi[caller]yo")]),
        ("[agent]hi.[caller]yo", [("agent", "hi."), ("caller", "yo")]),
        # text before any label
        ("hello there [Agent] hi", [(None, "hello there"), ("Agent", "hi")]),
        ("no labels at all", [(None, "no labels at all")]),
        ("", []),
        ("   \n ", []),
        ("[Agent]", [("Agent", "")]),
        ("  \t[Agent] indented", [("Agent", "indented")]),
        ("[] [ ] [Agent ] x", [(None, "[] [ ]"), ("Agent", "x")]),
    ],
)
def test_parse(transcript: str, expected: list[tuple[str | None, str]]) -> None:
    assert pairs(transcript) == expected


@pytest.mark.parametrize("value", [None, 42, b"[Agent] hi", ["[Agent] hi"], {"x": 1}])
def test_non_strings_have_no_turns(value) -> None:
    assert parse_turns(value) == []


def test_the_document_lists_turns_and_speakers() -> None:
    turns = parse_turns("[Agent] Hi [Caller] Yo [Agent] Bye")
    document = transcript_document("v3:abc", turns)
    assert document["callId"] == "v3:abc"
    assert document["turnCount"] == 3
    assert document["speakers"] == ["Agent", "Caller"]
    assert document["turns"][1] == {"speaker": "Caller", "text": "Yo"}
    json.dumps(document)


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


@settings(max_examples=400)
@given(st.text(alphabet=st.characters(blacklist_categories=()), max_size=300))
def test_parsing_arbitrary_text_never_raises_and_loses_only_whitespace(text: str) -> None:
    turns = parse_turns(text)
    rebuilt = "".join(
        (f"[{turn.speaker}]" if turn.speaker is not None else "") + turn.text for turn in turns
    )
    assert _squash(rebuilt) == _squash(text)
    for turn in turns:
        assert turn.text == turn.text.strip()


_LABELISH = st.sampled_from(["[Agent]", "[Caller]", "[x]", "[", "]", "[Agent", "\n", " ", "[IVR]"])


@settings(max_examples=400)
@given(st.lists(st.one_of(_LABELISH, st.text(max_size=8)), max_size=40).map("".join))
def test_label_heavy_text_never_raises(text: str) -> None:
    turns = parse_turns(text)
    assert all(isinstance(turn, Turn) for turn in turns)
    assert _squash("".join((f"[{t.speaker}]" if t.speaker else "") + t.text for t in turns)) == (
        _squash(text)
    )


_PLAIN_TEXT = st.text(
    alphabet=st.characters(blacklist_characters="[]", blacklist_categories=("Cs",)), max_size=40
).map(str.strip)


@settings(max_examples=300)
@given(st.lists(st.tuples(st.sampled_from(["Agent", "Caller"]), _PLAIN_TEXT), max_size=12))
def test_rendered_turns_parse_back(spoken: list[tuple[str, str]]) -> None:
    turns = [Turn(speaker, text) for speaker, text in spoken]
    assert parse_turns(render_turns(turns)) == turns
