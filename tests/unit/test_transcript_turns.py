"""The transcript parser: the vendor's format, the awkward cases, properties and fuzzers."""

from __future__ import annotations

import datetime
import decimal
import fractions
import json
import re
import signal
import string
import time
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.support.fuzz import examples, fuzz_settings, write_report
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


# --- fuzzers: never raises, loses nothing but whitespace around labels, bounded time ----------
#
# Part of the security issue's fuzzing (no unhandled exception, no hang past a bound). Each is
# reproducible and sized by TTMA_FUZZ_EXAMPLES (CI defaults below), with a report
# (tests/support/fuzz.py). The oracles read the module's docstring, not its code: labels are
# found by a scan of every position (no regex), and the line breaks are asked of
# str.splitlines itself.

FUZZ_TURNS = examples(300)
FUZZ_NON_STRINGS = examples(200)
FUZZ_MEGABYTES = examples(2, long_share=0.03)  # drawn cases, ~0.25 s each; @examples too
LINE_BREAKS = frozenset(  # every line break Unicode has is in the BMP
    chr(code) for code in range(0x10000) if len(f"a{chr(code)}b".splitlines()) == 2
)
KNOWN_NAMES = frozenset({"agent", "caller"})
NAME_FIRST = frozenset(string.ascii_letters)
NAME_REST = frozenset(string.ascii_letters + string.digits + " _.'-")
MAX_NAME = 32  # a letter, then up to 31 more

PIECES: dict[str, tuple[str, ...]] = {
    "known label": ("[Agent]", "[Caller]", "[AGENT]", "[caller]", "[aGeNt]", "[Caller   ]"),
    "unknown label": ("[Supervisor]", "[IVR]", "[x]", "[Bob O'Neil]", "[a-b.c_d]", "[Agent2]"),
    "bracketed speech": ("[inaudible]", "[1]", "[laughs]", "[Agent Smith]", "[music]"),
    "32-char name": ("[A" + "a" * 31 + "]", "[Z" + "9" * 30 + " ]", "[Agent" + " " * 27 + "]"),
    "33-char name": ("[A" + "a" * 32 + "]", "[Agent" + " " * 28 + "]"),
    "not a name": ("[]", "[ ]", "[ Agent]", "[Agènt]", "[_x]", "[-]", "[Ag\tent]", "[Agent\n]"),
    "unclosed": ("[", "[Agent", "[Caller ", "[A" + "a" * 31, "]", "Agent]"),
    "nested": ("[[Agent]]", "[[x]", "[Agent [Caller]]", "[Caller]]", "[[", "]]", "[[[IVR]]]"),
    "line break": (*sorted(LINE_BREAKS), "\r\n"),
    "line-start label": tuple(
        f"{line_break}{indent}{label}"
        for line_break in (*sorted(LINE_BREAKS), "\r\n")
        for indent in ("", " \t", "\u3000")  # an ideographic space is no indent: text
        for label in ("[Supervisor]", "[x]", "[inaudible]")
    ),
    "blank": (" ", "\t", "  \t ", "\u3000", "\xa0", "\x1f", "\u2003"),
    "glue": ("x", "9", "é", "²", "_", ".", "'"),
    "odd": ("\x00", "\ud800", "\udfff", "\ud83d", "\u200f", "\u202e", "\u0301", "\ufeff", "😀"),
}
any_text = st.text(st.characters(blacklist_categories=()), max_size=10)  # surrogates included
# Labels and line breaks weigh more: most labels start a turn only at the start of a line.
KINDS = [*sorted(PIECES), *["known label"] * 3, *["line-start label"] * 2, "line break", "blank"]
pieces = st.one_of(
    st.sampled_from(KINDS).flatmap(
        lambda kind: st.sampled_from(PIECES[kind]).map(lambda piece: (kind, piece))
    ),
    any_text.map(lambda text: ("text", text)),
)
hostile_transcripts = st.lists(pieces, max_size=40)


def label_end(text: str, start: int) -> int | None:
    """Just past the ``]`` of a bracketed speaker-like name at ``start``, else ``None``."""
    if text[start] != "[" or start + 1 >= len(text) or text[start + 1] not in NAME_FIRST:
        return None
    end = start + 2
    while end < len(text) and end - start - 1 < MAX_NAME and text[end] in NAME_REST:
        end += 1
    return end + 1 if end < len(text) and text[end] == "]" else None


def opens_a_turn(text: str, start: int, name: str) -> bool:
    """The documented rule: at the start of the text or of a line (after spaces or tabs), or a
    known speaker not glued to a preceding letter or digit."""
    before = start
    while before > 0 and text[before - 1] in " \t":
        before -= 1
    if before == 0 or text[before - 1] in LINE_BREAKS:
        return True
    return name.rstrip(" ").lower() in KNOWN_NAMES and not text[start - 1].isalnum()


def turn_labels(text: str) -> list[int]:
    """Where, by the documented rules, the labels that start a turn begin."""
    found = []
    for start in range(len(text)):
        end = label_end(text, start)
        if end is not None and opens_a_turn(text, start, text[start + 1 : end - 1]):
            found.append(start)
    return found


def label_positions(text: str, turns: list[Turn]) -> list[int]:
    """Where each turn's label is in ``text``, asserting on the way that the turns are ``text``
    with whitespace taken away only around labels: blanks, then per turn ``[speaker]`` (spaces
    before its ``]`` allowed), blanks and the turn's text exactly, and blanks to the end."""
    at, labels = 0, []

    def past_blanks(at: int) -> int:
        while at < len(text) and text[at].isspace():
            at += 1
        return at

    for number, turn in enumerate(turns):
        at = past_blanks(at)
        if turn.speaker is None:
            assert number == 0 and turn.text, f"a speakerless turn {number}: {turn!r}"
        else:
            assert text.startswith(f"[{turn.speaker}", at), (turn, text[at : at + 40])
            end = label_end(text, at)
            assert end is not None, f"{turn.speaker!r} is not a label written in the text"
            assert text[at + 1 + len(turn.speaker) : end - 1].strip(" ") == "", turn
            labels.append(at)
            at = past_blanks(end)
        assert text.startswith(turn.text, at), (turn, text[at : at + 40])
        at += len(turn.text)
    assert past_blanks(at) == len(text), f"lost {text[at : at + 40]!r}"
    return labels


def non_blank(text: str) -> list[str]:
    return [char for char in text if not char.isspace()]


def check_turns(text: str, histogram: Counter[str]) -> None:
    turns = parse_turns(text)
    rebuilt = "".join(
        ("" if turn.speaker is None else f"[{turn.speaker}]") + turn.text for turn in turns
    )
    assert non_blank(rebuilt) == non_blank(text)
    assert all(turn.text == turn.text.strip() for turn in turns)
    labels = label_positions(text, turns)
    assert labels == turn_labels(text), "a label split where the rules say text, or the reverse"
    candidates = sum(label_end(text, start) is not None for start in range(len(text)))
    histogram[f"turns {min(len(turns), 6)}{'+' if len(turns) >= 6 else ''}"] += 1
    histogram["bracketed names kept as text"] += candidates - len(labels)
    histogram["speakerless first turn"] += bool(turns) and turns[0].speaker is None
    histogram["empty turns"] += sum(not turn.text for turn in turns)
    histogram["unknown speakers"] += sum(
        turn.speaker is not None and turn.speaker.lower() not in KNOWN_NAMES for turn in turns
    )


def test_fuzz_hostile_transcripts_parse_losing_only_whitespace_around_labels() -> None:
    histogram: Counter[str] = Counter()
    started = time.monotonic()

    @fuzz_settings(FUZZ_TURNS)
    @given(hostile_transcripts)
    def one(drawn: list[tuple[str, str]]) -> None:
        histogram["cases"] += 1
        for kind in {kind for kind, _ in drawn}:
            histogram[f"drew {kind}"] += 1
        check_turns("".join(piece for _, piece in drawn), histogram)

    one()
    print(
        write_report(
            "transcript",
            cases=histogram["cases"],
            seconds=time.monotonic() - started,
            histogram=histogram,
        )
    )
    assert histogram["unknown speakers"] and histogram["bracketed names kept as text"]


class Printable:
    """Not a string, though ``str()`` of it is a transcript: the parser must not call it."""

    def __str__(self) -> str:
        return "[Agent] hi [Caller] yo"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | any_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4),
    max_leaves=10,
)
TYPES = (int, float, complex, bool, bytes, bytearray, tuple, list, dict, set, frozenset)
TYPES += (decimal.Decimal, fractions.Fraction, datetime.datetime, uuid.UUID, type(None))
not_strings = st.one_of(
    json_values.filter(lambda value: not isinstance(value, str)),
    st.sampled_from(TYPES).flatmap(st.from_type),
    st.binary(max_size=20).map(lambda raw: b"[Agent] " + raw),
    st.binary(max_size=20).map(lambda raw: bytearray(b"[Caller] " + raw)),
    st.binary(max_size=20).map(lambda raw: memoryview(b"[Agent] hi " + raw)),
    hostile_transcripts.map(lambda drawn: ["".join(piece for _, piece in drawn)]),
    st.sampled_from([Printable(), object(), str, Turn("Agent", "hi"), ..., NotImplemented]),
)


def test_fuzz_anything_but_a_string_has_no_turns() -> None:
    histogram: Counter[str] = Counter()
    started = time.monotonic()

    @fuzz_settings(FUZZ_NON_STRINGS)
    @given(not_strings)
    def one(value: Any) -> None:
        histogram[type(value).__name__] += 1
        assert parse_turns(value) == []

    one()
    print(
        write_report(
            "transcript-non-str",
            cases=histogram.total(),
            seconds=time.monotonic() - started,
            histogram=histogram,
        )
    )
    assert len(histogram) >= 10  # the strategy reaches many types, not one


MEGABYTE = 1_000_000
# Far past the ratio bound below: only there to turn a hang into a failure (a signal stops
# even the regex engine, which checks for them).
HARD_LIMIT_SECONDS = 60.0
# The parser against a linear baseline on the same input, in the same run: one Python loop over
# every character. The parser takes 0.1 to 15 times as long (most where its Python code walks
# back over the blanks before each of ~20,000 labels); a quadratic one would take ~10^4 times
# as long on a megabyte. So a ratio of 100 catches one with room to spare and does not flake on
# a loaded 2-core machine: load slows both measurements alike, and a stall during the parse is
# absorbed by measuring it again (one during the baseline only loosens the bound). An absolute
# bound would have to be as loose as the slowest machine; the half second of slack is for a
# baseline measured during a quiet moment.
MAX_RATIO = 100
SLACK_SECONDS = 0.5


class TooSlow(Exception):
    pass


def seconds(work: Callable[[], object]) -> float:
    """How long ``work()`` takes, failing the test past ``HARD_LIMIT_SECONDS``."""

    def stop(*_: Any) -> None:
        raise TooSlow(f"parse_turns ran for more than {HARD_LIMIT_SECONDS} s")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, HARD_LIMIT_SECONDS)
    try:
        started = time.perf_counter()
        work()
        return time.perf_counter() - started
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def touch_every_character(text: str) -> int:
    """The baseline: a Python loop over ``text`` (counting its brackets, so it does work)."""
    count = 0
    for char in text:
        count += char == "["
    return count


def megabyte(unit: str, tail: str) -> str:
    return (unit * (MEGABYTE // len(unit) + 1))[:MEGABYTE] + tail


pathological = st.tuples(
    st.lists(
        st.sampled_from([piece for kind in sorted(PIECES) for piece in PIECES[kind]]),
        min_size=1,
        max_size=8,
    ).map("".join),
    st.sampled_from(["", "[Agent] bye", "Agent]", "\n[IVR]", "a" * 31 + "]"]),
)


def test_fuzz_pathological_megabyte_transcripts_parse_in_bounded_time() -> None:
    histogram: Counter[str] = Counter()
    started = time.monotonic()

    @fuzz_settings(FUZZ_MEGABYTES)
    @given(pathological)
    @example(("[", "Agent]"))  # a megabyte of "[" before the one label
    @example(("[A" + "a" * 31, ""))  # a name one character short of closing, again and again
    @example(("[Agent] hi ", ""))  # ~90,000 turns
    @example(("\n[Supervisor]", ""))  # line-start labels of an unknown speaker
    @example(("x[Agent]", ""))  # glued: all text
    @example(("[[[Agent]]]", ""))
    @example((" \t" * 20 + "[Caller]", ""))  # blanks walked back before every label
    @example((" ", "[Agent] hi"))  # a megabyte of blanks walked back once
    @example(("".join(sorted(LINE_BREAKS)) + "[IVR]", ""))
    def one(drawn: tuple[str, str]) -> None:
        text = megabyte(*drawn)
        baseline = seconds(lambda: touch_every_character(text))  # a stall only loosens the bound
        bound = MAX_RATIO * baseline + SLACK_SECONDS
        turns: list[Turn] = []
        taken = seconds(lambda: turns.extend(parse_turns(text)))
        if taken > bound:
            turns.clear()
            taken = min(taken, seconds(lambda: turns.extend(parse_turns(text))))
        assert taken <= bound, f"{taken:.2f} s, baseline {baseline:.3f} s: {drawn[0][:40]!r}"
        rebuilt = "".join(
            ("" if turn.speaker is None else f"[{turn.speaker}]") + turn.text for turn in turns
        )
        assert "".join(rebuilt.split()) == "".join(text.split())  # lossless, at C speed
        ratio = taken / max(baseline, 1e-6)
        histogram["cases"] += 1
        histogram[next(f"ratio <{n}" for n in (1, 10, 30, 100, 10**9) if ratio < n)] += 1
        histogram[next(f"turns <{n}" for n in (2, 1000, 10**5, 10**7) if len(turns) < n)] += 1
        histogram["slowest ms"] = max(histogram["slowest ms"], round(taken * 1000))

    one()
    print(
        write_report(
            "transcript-megabyte",
            cases=histogram["cases"],
            seconds=time.monotonic() - started,
            histogram=histogram,
        )
    )
