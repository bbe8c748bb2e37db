"""``ttma-relay``: the operator CLI (smoke tests, webhook setup, inspection).

The group and the smoke-test commands are here; each other command has its module in this
package; docs/cli.md documents each. Exit codes everywhere: 0 success, 1 refused or not found,
2 usage error or unreachable (``common``).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import click
import httpx

import verify
from ttma_relay.cli.backfill import backfill_command
from ttma_relay.cli.calls import call_command, calls_command
from ttma_relay.cli.common import (
    EXIT_REFUSED,
    EXIT_UNREACHABLE,
    credentials_problem,
    describe_http_error,
    fail,
    load_env_file,
    local_env_file,
)
from ttma_relay.cli.doctor import doctor_command
from ttma_relay.cli.forget import forget_command
from ttma_relay.cli.replay import replay_command
from ttma_relay.cli.tail import tail_command
from ttma_relay.cli.webhook import configure_webhook
from ttma_relay.contract.sample_delivery import sample_delivery

__all__ = ["EXIT_REFUSED", "EXIT_UNREACHABLE", "main"]


class RelayGroup(click.Group):
    """The command group; a Google credentials error from any command (a client built outside
    ``google_errors`` included) ends as one sentence and exit 2, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as error:
            message = credentials_problem(error)
            if message is None:
                raise
            fail(message, EXIT_UNREACHABLE)


@click.group(cls=RelayGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ttma-relay")
@click.option(
    "--local",
    is_flag=True,
    help="Use the local stack (make dev / make dev-up): read its .devstack/endpoints.env"
    " (searched from here upwards, then in ttma-relay's checkout; or $TTMA_DEV_STATE_DIR).",
)
@click.option(
    "--env-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Read settings (NAME=value lines, e.g. an endpoints.env) before the command runs.",
)
def main(local: bool, env_file: Path | None) -> None:
    """Operate a ttma-relay deployment: the local stack or a real Google Cloud project.

    Settings come from options or the environment (GOOGLE_CLOUD_PROJECT, CALL_EVENTS_TOPIC,
    CALLS_COLLECTION, FIRESTORE_DATABASE, TTMA_API_KEY, ...); with a real project, Google
    credentials come from `gcloud auth application-default login`.

    Exit codes: 0 success, 1 refused or not found, 2 usage error or unreachable.
    """
    for path in ([local_env_file()] if local else []) + ([env_file] if env_file else []):
        os.environ.update(load_env_file(path))


@main.command(short_help="Sign a delivery like TTMA does and POST it (smoke test).")
@click.argument("url", envvar="INGEST_URL", required=False)
@click.option(
    "--payload",
    "payload_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The delivery to send: a JSON object (default: a built-in sample with fresh ids).",
)
@click.option(
    "--secret",
    envvar="TTMA_WEBHOOK_SECRET",
    required=True,
    show_envvar=True,
    help="Webhook signing secret.",
)
@click.option("--tamper", is_flag=True, help="Change the body after signing (expect 401).")
@click.option("--timestamp", type=int, default=None, help="Unix time to sign with (default now).")
@click.option("--timeout", type=float, default=30.0, show_default=True)
def send(
    url: str | None,
    payload_file: Path | None,
    secret: str,
    tamper: bool,
    timestamp: int | None,
    timeout: float,
) -> None:
    """Sign a delivery exactly like the vendor does and POST it to URL (default $INGEST_URL,
    which --local sets to the local stack's ingest).

    Prints the status and body. Exit code 0 on 2xx, 1 on any other answer, 2 if unreachable.
    """
    if not url:
        raise click.UsageError("no URL: give it as an argument, set INGEST_URL, or use --local")
    if payload_file is not None:
        body = payload_file.read_bytes()
        try:
            envelope = json.loads(body)
        except (ValueError, RecursionError) as error:
            raise click.BadParameter(f"not JSON: {error}", param_hint="--payload") from None
        if not isinstance(envelope, dict):
            raise click.BadParameter(
                f"the payload must be a JSON object ({{...}}), not {_json_kind(envelope)}",
                param_hint="--payload",
            )
    else:
        envelope = sample_delivery()
        body = json.dumps(envelope, separators=(",", ":")).encode()
    signed_at = int(time.time()) if timestamp is None else timestamp
    headers = {
        "Content-Type": "application/json",
        "X-TTMA-Signature": verify.sign(secret, body, timestamp=signed_at),
        "X-TTMA-Event": str(envelope.get("event", "")),
        "X-TTMA-Delivery-Id": str(envelope.get("deliveryId", "")),
    }
    if tamper:
        body = body + b" "
    try:
        response = httpx.post(url, content=body, headers=headers, timeout=timeout)
    except httpx.HTTPError as error:
        fail(f"could not reach {describe_http_error(error, url)}", EXIT_UNREACHABLE)
    click.echo(f"{response.status_code} {response.reason_phrase}")
    click.echo(response.text)
    if not response.is_success:
        sys.exit(EXIT_REFUSED)


def _json_kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    kinds = {list: "an array", str: "a string", int: "a number", float: "a number"}
    return kinds.get(type(value), type(value).__name__)


main.add_command(configure_webhook)
main.add_command(calls_command)
main.add_command(call_command)
main.add_command(tail_command)
main.add_command(backfill_command)
main.add_command(replay_command)
main.add_command(doctor_command)
main.add_command(forget_command)


if __name__ == "__main__":  # pragma: no cover
    main(prog_name=os.path.basename(sys.argv[0]))
