"""``ttma-relay calls`` and ``ttma-relay call ID``: read the archived-call index in Firestore.

The index (``CALLS_COLLECTION``, docs/archive.md) holds call metadata and archive status, never
transcripts; the customer's phone number is not in it either (only the agent's own number).
``calls`` asks Firestore for a date range ordered by ``endedAt`` (automatic single-field index,
no composite index to deploy) and filters direction and end reason as it reads.

A range on ``endedAt`` only matches timestamps, so calls whose ``endedAt`` is null (or missing,
in documents written by older versions) cannot be in that list. ``calls`` counts them instead
(Firestore count aggregations: all documents minus those with a timestamp) and says so on
stderr; ``calls --undated`` lists the ones whose ``endedAt`` is null.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import click

from ttma_relay.cli.common import (
    EXIT_REFUSED,
    check_emulator,
    collection_option,
    database_option,
    fail,
    google_errors,
    progress,
    project_option,
    require_google_credentials,
    warn,
)
from ttma_relay.contract.call_keys import CallKeyError, call_key
from ttma_relay.contract.ended_reasons import KNOWN_ENDED_REASONS
from ttma_relay.contract.timestamps import iso_millis

_RELATIVE = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
TIMEOUT_SECONDS = 30.0
# Every timestamp Firestore holds is at or after this; null, a missing field or another type
# never matches a range on it (Firestore compares values of the same type only).
EARLIEST = datetime(1, 1, 1, tzinfo=UTC)
COLUMNS = ("ENDED (UTC)", "CALL ID", "DIRECTION", "ENDED REASON", "DURATION", "TRANSCRIPT",
           "RECORDING")  # fmt: skip


def parse_when(text: str, *, end_of_day: bool = False, now: datetime | None = None) -> datetime:
    """``2026-11-24`` (UTC midnight; the next one with ``end_of_day``), an ISO 8601 time (UTC
    if it has no offset) or an age such as ``90m``, ``2h``, ``7d``."""
    value = text.strip()
    relative = _RELATIVE.match(value.lower())
    if relative:
        amount, unit = int(relative.group(1)), _UNITS[relative.group(2)]
        return (now or datetime.now(UTC)) - timedelta(**{unit: amount})
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        day = date.fromisoformat(value)
        moment = datetime(day.year, day.month, day.day, tzinfo=UTC)
        return moment + timedelta(days=1) if end_of_day else moment
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class When(click.ParamType):
    name = "WHEN"

    def __init__(self, *, end_of_day: bool = False) -> None:
        self.end_of_day = end_of_day

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, datetime):
            return value
        try:
            return parse_when(str(value), end_of_day=self.end_of_day)
        except ValueError:
            self.fail(f"{value!r}: use YYYY-MM-DD, an ISO 8601 time or an age like 2h / 7d")


def jsonable(value: Any) -> Any:
    """Firestore values as JSON: timestamps as ISO 8601 UTC."""
    if isinstance(value, datetime):
        return iso_millis(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def _firestore(project: str, database: str) -> Any:
    check_emulator("FIRESTORE_EMULATOR_HOST", "Firestore")
    require_google_credentials("FIRESTORE_EMULATOR_HOST")
    from google.cloud import firestore

    return firestore.Client(project=project, database=database)


def iter_calls(
    collection: Any,
    *,
    since: datetime | None,
    until: datetime | None,
    direction: str | None,
    ended_reason: str | None,
    undated: bool = False,
) -> Iterator[tuple[dict[str, Any], bool]]:
    """(document, matches filters) for each scanned index document: newest ``endedAt`` first
    (only documents whose ``endedAt`` is a timestamp), or with ``undated`` the documents whose
    ``endedAt`` is null, in ``callKey`` order."""
    from google.cloud import firestore
    from google.cloud.firestore_v1.base_query import FieldFilter

    if undated:
        query = collection.where(filter=FieldFilter("endedAt", "==", None))
    else:
        query = collection.order_by("endedAt", direction=firestore.Query.DESCENDING)
        query = query.where(filter=FieldFilter("endedAt", ">=", since or EARLIEST))
        if until is not None:
            query = query.where(filter=FieldFilter("endedAt", "<", until))
    for snapshot in query.stream(timeout=TIMEOUT_SECONDS):
        document = snapshot.to_dict() or {}
        document.setdefault("callKey", snapshot.id)
        matches = (direction is None or document.get("direction") == direction) and (
            ended_reason is None or document.get("endedReason") == ended_reason
        )
        yield document, matches


@dataclass(frozen=True)
class Undated:
    """Index documents without a timestamp ``endedAt``, which no time-ordered list shows."""

    total: int  # null, missing (older versions) or not a timestamp
    null: int  # of them, ``endedAt`` null: what ``--undated`` lists

    @property
    def unlisted(self) -> int:
        """Documents even ``--undated`` cannot find (no ``endedAt`` field at all)."""
        return max(self.total - self.null, 0)


def _count(query: Any) -> int:
    [[result]] = query.count(alias="n").get(timeout=TIMEOUT_SECONDS)
    return int(result.value)


def count_undated(collection: Any) -> Undated:
    """Count aggregations (1 read per 1000 index entries): all documents, minus those with a
    timestamp ``endedAt``; then the null ones. All documents first, so that calls indexed
    meanwhile make the difference smaller, never a false alarm."""
    from google.cloud.firestore_v1.base_query import FieldFilter

    total = _count(collection)
    dated = _count(collection.where(filter=FieldFilter("endedAt", ">=", EARLIEST)))
    undated = max(total - dated, 0)
    if not undated:
        return Undated(0, 0)
    return Undated(undated, _count(collection.where(filter=FieldFilter("endedAt", "==", None))))


def _calls(count: int) -> str:
    return f"{count} call{'s' * (count != 1)}"


def _has(count: int) -> str:
    return "has" if count == 1 else "have"


REPUBLISH_HINT = "republish their call events (docs/deploy.md, replay) to index them again"


def undated_notes(undated: Undated, *, listing_undated: bool) -> list[str]:
    """The stderr lines about the calls a time-ordered list leaves out."""
    old = f"no endedAt field at all (indexed by an older version): {REPUBLISH_HINT}"
    if listing_undated:
        if not undated.unlisted:
            return []
        return [f"{_calls(undated.unlisted)} more in the index {_has(undated.unlisted)} {old}"]
    if not undated.total:
        return []
    them = "it" if undated.total == 1 else "them"
    listed = them if not undated.unlisted else f"{undated.null} of {them}"
    note = (
        f"{_calls(undated.total)} in the index {_has(undated.total)} no usable endedAt"
        f" (null or unparseable) and {'is' if undated.total == 1 else 'are'} not in this list:"
        f" `ttma-relay calls --undated` lists {listed}"
    )
    if undated.unlisted:
        note += f"; {undated.unlisted} {_has(undated.unlisted)} {old}"
    return [note]


def warn_unknown_reason(ended_reason: str | None) -> None:
    if ended_reason is not None and ended_reason not in KNOWN_ENDED_REASONS:
        warn(
            f"--ended-reason {ended_reason!r} is not an end reason the vendor documents"
            f" ({', '.join(KNOWN_ENDED_REASONS)}); listing the calls that have it anyway"
        )


def _cell(value: Any) -> str:
    return "-" if value in (None, "") else str(value)


def table_row(document: Mapping[str, Any]) -> tuple[str, ...]:
    ended = document.get("endedAt")
    ended_text = ended.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if ended else "-"
    duration = document.get("durationSeconds")
    return (
        ended_text,
        _cell(document.get("callId")),
        _cell(document.get("direction")),
        _cell(document.get("endedReason")),
        f"{duration}s" if isinstance(duration, int) else "-",
        _cell(document.get("transcriptStatus")),
        _cell(document.get("recordingStatus")),
    )


def render_table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in [COLUMNS, *rows]) for i in range(len(COLUMNS))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip()
             for row in [COLUMNS, *rows]]  # fmt: skip
    return "\n".join(lines)


@click.command("calls", short_help="List archived calls from the index.")
@click.option("--since", type=When(), help="Ended at or after: YYYY-MM-DD, ISO time or age (2h).")
@click.option(
    "--until", type=When(end_of_day=True), help="Ended before (a date includes that whole day)."
)
@click.option("--direction", type=click.Choice(["inbound", "outbound"]), help="Only this way.")
@click.option("--ended-reason", help="Only calls that ended this way (e.g. callerHangup).")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@click.option(
    "--undated", is_flag=True, help="Only the calls whose endedAt is null (not placed in time)."
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line (all fields).")
@project_option
@database_option
@collection_option
def calls_command(
    since: datetime | None,
    until: datetime | None,
    direction: str | None,
    ended_reason: str | None,
    limit: int,
    undated: bool,
    as_json: bool,
    project: str,
    database: str,
    collection: str,
) -> None:
    """List archived calls from the index, newest first.

    Shows end time, call id, direction, end reason, duration and the transcript and recording
    archive status (archived / pending / not_shipped / unavailable). Never transcripts.
    Calls without a usable endedAt are counted on stderr; --undated lists them.

    Exit code 0 (also when nothing matches), 2 when Firestore is unreachable.
    """
    if undated and (since is not None or until is not None):
        raise click.UsageError("--undated lists calls with no endedAt: no --since/--until")
    warn_unknown_reason(ended_reason)
    client = _firestore(project, database)
    found: list[dict[str, Any]] = []
    with google_errors("reading the call index"), progress(desc="scanning", unit="doc") as bar:
        for document, matches in iter_calls(
            client.collection(collection),
            since=since,
            until=until,
            direction=direction,
            ended_reason=ended_reason,
            undated=undated,
        ):
            bar.update()
            if matches:
                found.append(document)
                if len(found) >= limit:
                    break
        notes = undated_notes(count_undated(client.collection(collection)), listing_undated=undated)
    if as_json:
        for document in found:
            click.echo(json.dumps(jsonable(document), ensure_ascii=False, sort_keys=True))
    elif found:
        click.echo(render_table([table_row(document) for document in found]))
    more = " (limit reached: --limit for more)" if len(found) >= limit else ""
    click.echo(f"{_calls(len(found))}{more}", err=True)
    for note in notes:
        click.echo(note, err=True)


def _flatten(document: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    items: list[tuple[str, Any]] = []
    for key in sorted(document):
        value = document[key]
        if isinstance(value, Mapping):
            items += _flatten(value, f"{prefix}{key}.")
        else:
            items.append((prefix + key, value))
    return items


@click.command("call", short_help="Show one call's index record.")
@click.argument("call_id")
@click.option("--json", "as_json", is_flag=True, help="The index record as JSON.")
@project_option
@database_option
@collection_option
def call_command(call_id: str, as_json: bool, project: str, database: str, collection: str) -> None:
    """Show the index record of one call: CALL_ID (v3:...) or its callKey (v3%3A...).

    Prints every field the index holds: call metadata, the agent's number, archive object URIs
    and statuses, delivery ids. Exit code 0 found, 1 not in the index, 2 unreachable.
    """
    client = _firestore(project, database)
    keys = []
    try:
        keys.append(call_key(call_id))
    except CallKeyError as error:
        raise click.BadParameter(str(error), param_hint="CALL_ID") from None
    if "%" in call_id and call_id not in keys:
        keys.append(call_id)  # given as a callKey already
    document = None
    with google_errors("reading the call index"):
        for key in keys:
            snapshot = client.collection(collection).document(key).get(timeout=TIMEOUT_SECONDS)
            if snapshot.exists:
                document = snapshot.to_dict() or {}
                document.setdefault("callKey", key)
                break
    if document is None:
        fail(f"call {call_id} is not in the index ({collection})", EXIT_REFUSED)
    if as_json:
        click.echo(json.dumps(jsonable(document), ensure_ascii=False, indent=2, sort_keys=True))
        return
    items = _flatten(jsonable(document))
    width = max(len(name) for name, _ in items)
    for name, value in items:
        shown = ", ".join(map(str, value)) if isinstance(value, list) else _cell(value)
        click.echo(f"{name:<{width}}  {shown}")
