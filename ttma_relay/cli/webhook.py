"""``ttma-relay configure-webhook``: register the deployed ingest URL and secret with TTMA."""

from __future__ import annotations

import json

import click

from ttma_relay.cli.common import EXIT_REFUSED, EXIT_UNREACHABLE, describe_http_error, fail
from ttma_relay.settings import DEFAULT_API_BASE_URL

INSECURE_LOCAL_HINT = (
    "TTMA refuses such URLs; --allow-insecure-local lifts the URL rules, for a local sandbox"
    " (http://127.0.0.1 or http://localhost) only"
)


def check_options(from_number: str, url: str, secret: str, *, allow_insecure_local: bool) -> None:
    """TTMA's rules (``ttma_api_webhook_rules``), each refusal naming the option that holds the
    value; exit 1 (refused), nothing sent. Never echoes the secret."""
    from ttma_relay.adapters.ttma_api.errors import InvalidRequestError
    from ttma_relay.adapters.ttma_api.webhook_rules import (
        check_from_number,
        check_webhook_secret,
        check_webhook_url,
    )

    try:
        check_from_number(from_number)
    except InvalidRequestError:
        fail(
            f"refused before sending: --from (TTMA_AGENT_NUMBER) must be an E.164 phone number"
            f" such as +16475550100, not {from_number!r}",
            EXIT_REFUSED,
        )
    for lifted in (True, allow_insecure_local):  # first the rules the flag does not lift
        try:
            check_webhook_url(url, allow_insecure_local=lifted)
        except InvalidRequestError as error:
            rule = error.message.removeprefix("the webhook URL ")
            hint = "" if lifted else f"; {INSECURE_LOCAL_HINT}"
            fail(f"refused before sending: --url (INGEST_URL) {rule}{hint}", EXIT_REFUSED)
    try:
        check_webhook_secret(secret)
    except InvalidRequestError as error:
        rule = error.message.removeprefix("the webhook secret ")
        fail(f"refused before sending: --secret (TTMA_WEBHOOK_SECRET) {rule}", EXIT_REFUSED)


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

    check_options(from_number, url, secret, allow_insecure_local=allow_insecure_local)
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
    except TransportError as error:
        why = describe_http_error(error.__cause__ or error, base_url)
        fail(f"TTMA API unreachable: {why}", EXIT_UNREACHABLE)
    except (ServerError, RateLimitedError, UnexpectedResponseError) as error:
        fail(f"TTMA API at {base_url} failing: {error.message}", EXIT_UNREACHABLE)
    except TtmaApiError as error:
        fail(f"TTMA refused the webhook ({error.status}): {error.message}", EXIT_REFUSED)
    if as_json:
        click.echo(json.dumps(stored, indent=2))
        return
    state = "enabled" if stored.get("enabled") else "DISABLED"
    click.echo(f"webhook of {stored.get('from')} → {stored.get('url')} ({state})")
    click.echo(f"secret: {stored.get('secret')} (as TTMA shows it)")
