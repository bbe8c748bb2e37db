"""``ttma-relay doctor``: a pass/fail table of every part of a deployment or the local stack.

The checks are in ``cli_doctor_checks`` (one function per part). They run one after the other
with short timeouts; each line is printed as its check finishes. Exit 0 only when every check
passed, 1 when one failed (a part that does not answer is a FAIL too: naming it is the point),
2 for a usage error or Google credentials that are missing, invalid or refused.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from datetime import timedelta
from typing import Any

import click

from ttma_relay.cli.common import (
    EXIT_REFUSED,
    database_option,
    project_option,
    require_google_credentials,
)
from ttma_relay.cli.doctor_checks import CHECKS, Check, Target, run_check
from ttma_relay.settings import DEFAULT_API_BASE_URL

# Reconcile runs hourly (terraform reconcile_schedule "17 * * * *") and leaves the watermark
# RECONCILE_GRACE_SECONDS (900) behind its start, so it is up to ~1 h 15 min (+ a run of at most
# 400 s) old just before a run: 2 h passes a healthy deployment and fails once a run is missed.
DEFAULT_MAX_CHECKPOINT_AGE = "2h"
EMULATOR_VARS = ("PUBSUB_EMULATOR_HOST", "FIRESTORE_EMULATOR_HOST", "STORAGE_EMULATOR_HOST")
_AGE = re.compile(r"(\d+)\s*([smhd]?)")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


class Age(click.ParamType):
    """``90m``, ``2h``, ``1d``, ``3600`` (seconds)."""

    name = "AGE"

    def convert(self, value: Any, param: Any, ctx: Any) -> timedelta:
        if isinstance(value, timedelta):
            return value
        match = _AGE.fullmatch(str(value).strip().lower())
        if not match or int(match[1]) <= 0:
            self.fail(f"{value!r} is not an age like 90m, 2h or 1d", param, ctx)
        return timedelta(seconds=int(match[1]) * _UNIT_SECONDS[match[2]])


def _print_row(check: Check, width: int) -> None:
    result = "ok" if check.ok else "FAIL"
    click.echo(f"{check.name.ljust(width)}  {result.ljust(6)}  {check.detail}".rstrip())


@click.command("doctor", short_help="Check every part of a deployment: a pass/fail table.")
@click.option("--url", "ingest_url", envvar="INGEST_URL", required=True, show_envvar=True,
              help="The ingest URL (terraform output webhook_url).")  # fmt: skip
@click.option("--secret", envvar="TTMA_WEBHOOK_SECRET", required=True, show_envvar=True,
              help="Webhook secret(s), comma-separated; the first signs. Not printed.")  # fmt: skip
@click.option("--api-key", envvar="TTMA_API_KEY", required=True, show_envvar=True,
              help="The deployment's TTMA API key (needs voice:read). Never printed.")  # fmt: skip
@click.option("--base-url", envvar="TTMA_API_BASE_URL", default=DEFAULT_API_BASE_URL,
              show_default=True, show_envvar=True, help="TTMA API base URL.")  # fmt: skip
@project_option
@database_option
@click.option("--topic", envvar="CALL_EVENTS_TOPIC", default="ttma-call-events",
              show_default=True, show_envvar=True, help="Topic id of the call events.")  # fmt: skip
@click.option("--dead-letter-topic", envvar="DEAD_LETTER_TOPIC", show_envvar=True,
              show_default="<topic>-dead-letter", help="Dead-letter topic id.")  # fmt: skip
@click.option("--subscription", envvar="DEAD_LETTER_SUBSCRIPTION", show_envvar=True,
              show_default="<topic>-dead-letter-hold",
              help="Dead-letter hold subscription id.")  # fmt: skip
@click.option("--bucket", envvar="ARCHIVE_BUCKET", required=True, show_envvar=True,
              help="Archive bucket (terraform output archive_bucket).")  # fmt: skip
@click.option("--deliveries-collection", envvar="DELIVERIES_COLLECTION",
              default="ttma_deliveries", show_default=True, show_envvar=True,
              help="Firestore collection of the delivery records (the checkpoint).")  # fmt: skip
@click.option("--ignore-subscription", "ignored", multiple=True, metavar="NAME",
              help="A pull subscription of your own on the topic that needs no dead-letter "
                   "policy (repeatable; shell-style wildcards allowed).")  # fmt: skip
@click.option("--max-checkpoint-age", type=Age(), default=DEFAULT_MAX_CHECKPOINT_AGE,
              show_default=True,
              help="Reconcile's watermark older than this is a FAIL (90m, 2h, 1d).")  # fmt: skip
@click.option("--json", "as_json", is_flag=True,
              help='One JSON object: {"ok", "checks": [{"name", "ok", "detail"}]}.')  # fmt: skip
def doctor_command(
    ingest_url: str,
    secret: str,
    api_key: str,
    base_url: str,
    project: str,
    database: str,
    topic: str,
    dead_letter_topic: str | None,
    subscription: str | None,
    bucket: str,
    deliveries_collection: str,
    ignored: tuple[str, ...],
    max_checkpoint_age: timedelta,
    as_json: bool,
) -> None:
    """Check every part: ingest (a signed self-test 200, a tampered one 401; nothing is
    published), the API key's voice:read scope, the topics, every subscription's dead-letter
    policy, the hold subscription, the dead-letter backlog, the bucket, reconcile's checkpoint.

    One line per check as it finishes: CHECK, ok/FAIL, DETAIL (never a secret, key or payload).

    Exit code 0 when every check passed, 1 when one failed (a part that does not answer
    fails its check), 2 usage error or no usable Google credentials.
    """
    webhook_secret = next((s.strip() for s in secret.split(",") if s.strip()), "")
    if not webhook_secret:
        raise click.BadParameter("no secret in the value", param_hint="--secret")
    # none, invalid or refused: exit 2 (one line); out of reach: the checks will say so
    require_google_credentials(*EMULATOR_VARS, unreachable_is_fatal=False)
    dead_letter_topic = dead_letter_topic or f"{topic}-dead-letter"
    root = click.get_current_context().find_root()
    target = Target(
        project=project,
        ingest_url=ingest_url,
        webhook_secret=webhook_secret,
        api_key=api_key,
        api_base_url=base_url,
        topic=topic,
        dead_letter_topic=dead_letter_topic,
        hold_subscription=subscription or f"{topic}-dead-letter-hold",
        bucket=bucket,
        database=database,
        deliveries_collection=deliveries_collection,
        max_checkpoint_age=max_checkpoint_age,
        ignored_subscriptions=ignored,
        local=bool(root.params.get("local")),
    )
    width = max(len(name) for name, _ in CHECKS)
    if not as_json:
        click.echo(f"{'CHECK'.ljust(width)}  RESULT  DETAIL")
    checks = []
    for name, function in CHECKS:
        check = run_check(name, function, target)
        checks.append(check)
        if not as_json:
            _print_row(check, width)
    failed = [c.name for c in checks if not c.ok]
    if as_json:
        click.echo(json.dumps({"ok": not failed, "checks": [asdict(c) for c in checks]}))
    else:
        summary = f"{len(failed)} of {len(checks)} checks failed: {', '.join(failed)}"
        click.echo(summary if failed else f"all {len(checks)} checks passed", err=True)
    if failed:
        raise SystemExit(EXIT_REFUSED)
