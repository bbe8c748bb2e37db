"""Turns of a TTMA transcript: ``[Agent] Hi, this is Sol. [Caller] Yeah...`` → speaker + text.

The vendor writes one string with bracketed speaker labels. Brackets also occur inside what
people say (``[inaudible]``, ``I'll press [1]``), and other speakers may appear one day, so a
bracketed name starts a new turn only when it is:

* a known speaker (``Agent``, ``Caller``; any case) not glued to a preceding letter or digit, or
* any speaker-like name (a letter, then up to 31 letters, digits, spaces or ``_-.'``) at the
  start of the transcript or of a line.

Everything else is text of the current turn. Text before the first label becomes a turn
with speaker ``None``. Each turn's text is stripped of surrounding whitespace (inner newlines
are kept) and may be empty. Labels are kept as written (``[AGENT]`` → ``"AGENT"``).
``parse_turns`` never raises and loses nothing but whitespace around labels.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

KNOWN_SPEAKERS = frozenset({"agent", "caller"})
_LABEL = re.compile(r"\[([A-Za-z][A-Za-z0-9 _.'\-]{0,31})\]")
_LINE_BREAKS = "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"  # what str.splitlines() splits on


@dataclass(frozen=True)
class Turn:
    speaker: str | None
    text: str

    def to_json(self) -> dict[str, Any]:
        return {"speaker": self.speaker, "text": self.text}


def _at_line_start(text: str, position: int) -> bool:
    index = position - 1
    while index >= 0 and text[index] in " \t":
        index -= 1
    return index < 0 or text[index] in _LINE_BREAKS


def _starts_turn(text: str, match: re.Match[str]) -> bool:
    start = match.start()
    if _at_line_start(text, start):
        return True
    if match.group(1).strip().casefold() not in KNOWN_SPEAKERS:
        return False
    return not text[start - 1].isalnum()


def parse_turns(transcript: Any) -> list[Turn]:
    """The turns of a transcript string; ``[]`` for ``None``, non-strings or blank text."""
    if not isinstance(transcript, str) or not transcript.strip():
        return []
    turns: list[Turn] = []
    speaker: str | None = None
    text_start = 0
    for match in _LABEL.finditer(transcript):
        if not _starts_turn(transcript, match):
            continue
        before = transcript[text_start : match.start()].strip()
        if speaker is not None or before:
            turns.append(Turn(speaker, before))
        speaker = match.group(1).strip()
        text_start = match.end()
    rest = transcript[text_start:].strip()
    if speaker is not None or rest:
        turns.append(Turn(speaker, rest))
    return turns


def render_turns(turns: list[Turn]) -> str:
    """The vendor's one-line form of ``turns`` (inverse of ``parse_turns`` for plain turns)."""
    parts = []
    for turn in turns:
        label = f"[{turn.speaker}]" if turn.speaker is not None else ""
        parts.append(" ".join(part for part in (label, turn.text) if part))
    return " ".join(parts)


def transcript_document(call_id: str, turns: list[Turn]) -> dict[str, Any]:
    """The content of ``transcript.json``."""
    speakers = sorted({turn.speaker for turn in turns if turn.speaker is not None})
    return {
        "callId": call_id,
        "format": "ttma-bracketed-speakers",
        "turnCount": len(turns),
        "speakers": speakers,
        "turns": [turn.to_json() for turn in turns],
    }
