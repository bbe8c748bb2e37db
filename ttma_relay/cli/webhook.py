"""``ttma-relay configure-webhook``: register the deployed ingest URL and secret with TTMA."""

from __future__ import annotations

import json

import click

from ttma_relay.cli.common import EXIT_REFUSED, EXIT_UNREACHABLE, fail
from ttma_relay.settings import DEFAULT_API_BASE_URL


@click.command("configure-webhook", short_help="Register the ingest URL and secret with TTMA.")
@click.option(
    "--api-key",
    envvar="TTMA_API_KEY",
    required=True,
    show_envvar=True,
    help="TTMA API key with the voice:call scope (never printed).",
)
@click.option(
    "--base-url",
    envvar="TTMA_API_BASE_URL",
    default=DEFAULT_API_BASE_URL,
    show_default=True,
    show_envvar=True,
    help="TTMA API base URL (the local sandbox's for the local stack).",
)
@click.option(
    "--from",
    "from_number",
    envvar="TTMA_AGENT_NUMBER",
    required=True,
    show_envvar=True,
    help="The agent phone number (E.164, e.g. +16475550100) whose calls are reported.",
)
@click.option(
    "--url",
    envvar="INGEST_URL",
    required=True,
    show_envvar=True,
    help="The deployed ingest URL (terraform output webhook_url).",
)
@click.option(
    "--secret",
    envvar="TTMA_WEBHOOK_SECRET",
    required=True,
    show_envvar=True,
    help="Signing secret (>= 32 characters), the one in Secret Manager. Never printed.",
)
@click.option("--disable", is_flag=True, help="Store the webhook disabled (stops deliveries).")
@click.option(
    "--allow-insecure-local",
    is_flag=True,
    help="Allow an http:// or loopback URL: for the local sandbox only (TTMA refuses them).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the stored configuration as JSON.")
def configure_webhook(
    api_key: str,
    base_url: str,
    from_number: str,
    url: str,
    secret: str,
    disable: bool,
    allow_insecure_local: bool,
    as_json: bool,
) -> None:
    """Point the webhook of the agent number --from at --url, signed with --secret.

    The URL and secret are checked first as TTMA checks them (https, public host, secret length);
    a refused value sends nothing. Prints the configuration TTMA stored (secret masked).

    Exit code 0 stored, 1 refused (by these checks or by TTMA: bad key, missing voice:call
    scope, unknown number), 2 TTMA unreachable or answering errors.
    """
    from ttma_relay.adapters.ttma_api import (
        InvalidRequestError,
        RateLimitedError,
        ServerError,
        TransportError,
        TtmaApiError,
        TtmaClient,
        UnexpectedResponseError,
    )

    try:
        with TtmaClient(base_url, api_key, max_retries=2) as client:
            stored = client.configure_webhook(
                from_number,
                url,
                secret,
                enabled=not disable,
                allow_insecure_local=allow_insecure_local,
            )
    except InvalidRequestError as error:
        fail(f"refused before sending: {error.message}", EXIT_REFUSED)
    except (TransportError, ServerError, RateLimitedError, UnexpectedResponseError) as error:
        fail(f"TTMA API at {base_url} unreachable or failing: {error.message}", EXIT_UNREACHABLE)
    except TtmaApiError as error:
        fail(f"TTMA refused the webhook ({error.status}): {error.message}", EXIT_REFUSED)
    if as_json:
        click.echo(json.dumps(stored, indent=2))
        return
    state = "enabled" if stored.get("enabled") else "DISABLED"
    click.echo(f"webhook of {stored.get('from')} → {stored.get('url')} ({state})")
    click.echo(f"secret: {stored.get('secret')} (as TTMA shows it)")
