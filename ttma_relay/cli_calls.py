"""``ttma-relay calls`` and ``ttma-relay call ID``: read the archived-call index in Firestore.

The index (``CALLS_COLLECTION``, docs/archive.md) holds call metadata and archive status, never
transcripts; the customer's phone number is not in it either (only the agent's own number).
``calls`` asks Firestore for a date range ordered by ``endedAt`` (automatic single-field index,
no composite index to deploy) and filters direction and end reason as it reads.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

import click

from ttma_relay.call_keys import CallKeyError, call_key
from ttma_relay.cli_common import (
    EXIT_REFUSED,
    check_emulator,
    collection_option,
    database_option,
    fail,
    google_errors,
    progress,
    project_option,
)

_RELATIVE = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
TIMEOUT_SECONDS = 30.0
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
        moment = value.astimezone(UTC)
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def _firestore(project: str, database: str) -> Any:
    check_emulator("FIRESTORE_EMULATOR_HOST", "Firestore")
    from google.cloud import firestore

    return firestore.Client(project=project, database=database)


def iter_calls(
    collection: Any,
    *,
    since: datetime | None,
    until: datetime | None,
    direction: str | None,
    ended_reason: str | None,
) -> Iterator[tuple[dict[str, Any], bool]]:
    """(document, matches filters) for each scanned index document, newest ``endedAt`` first."""
    from google.cloud import firestore
    from google.cloud.firestore_v1.base_query import FieldFilter

    query = collection.order_by("endedAt", direction=firestore.Query.DESCENDING)
    if since is not None:
        query = query.where(filter=FieldFilter("endedAt", ">=", since))
    if until is not None:
        query = query.where(filter=FieldFilter("endedAt", "<", until))
    for snapshot in query.stream(timeout=TIMEOUT_SECONDS):
        document = snapshot.to_dict() or {}
        document.setdefault("callKey", snapshot.id)
        matches = (direction is None or document.get("direction") == direction) and (
            ended_reason is None or document.get("endedReason") == ended_reason
        )
        yield document, matches


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
    as_json: bool,
    project: str,
    database: str,
    collection: str,
) -> None:
    """List archived calls from the index, newest first.

    Shows end time, call id, direction, end reason, duration and the transcript and recording
    archive status (archived / pending / not_shipped / unavailable). Never transcripts.

    Exit code 0 (also when nothing matches), 2 when Firestore is unreachable.
    """
    client = _firestore(project, database)
    found: list[dict[str, Any]] = []
    with google_errors("reading the call index"), progress(desc="scanning", unit="doc") as bar:
        for document, matches in iter_calls(
            client.collection(collection),
            since=since,
            until=until,
            direction=direction,
            ended_reason=ended_reason,
        ):
            bar.update()
            if matches:
                found.append(document)
                if len(found) >= limit:
                    break
    if as_json:
        for document in found:
            click.echo(json.dumps(jsonable(document), ensure_ascii=False, sort_keys=True))
    elif found:
        click.echo(render_table([table_row(document) for document in found]))
    more = " (limit reached: --limit for more)" if len(found) >= limit else ""
    click.echo(f"{len(found)} call{'s' * (len(found) != 1)}{more}", err=True)


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
