"""Downstream consumers on the local stack, subscribed exactly as Terraform subscribes them.

``make dev CONSUMERS="n8n=http://127.0.0.1:5678/webhook/ttma"`` (or ``--consumer NAME=URL``)
adds, per consumer, the push subscription ``<topic>-consumer-<NAME>`` that Terraform's
``consumers`` variable creates: the message data as the request body (the vendor's webhook JSON,
unchanged), the attributes as HTTP headers (``no_wrapper`` + ``write_metadata``), its ack
deadline, retention and dead-letter policy. Every setting comes from
``subscription.json``, which ``devstack.consumers.terraform`` derives from
``terraform/pubsub.tf``; only the placement (project, topic, name, endpoint) is local.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

SETTINGS_FILE = Path(__file__).resolve().parent / "subscription.json"
# terraform/variables.tf, validation of var.consumers keys.
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,39}$")
_DURATION = re.compile(r"^(\d+)(?:\.(\d{1,9}))?s$")


class ConsumerError(ValueError):
    """A ``NAME=URL`` consumer given on the command line is invalid."""


@dataclass(frozen=True)
class Consumer:
    name: str
    endpoint: str


def parse_consumer(spec: str) -> Consumer:
    """``n8n=http://127.0.0.1:5678/webhook/ttma`` → ``Consumer``; names as Terraform allows."""
    name, sep, endpoint = spec.partition("=")
    name, endpoint = name.strip(), endpoint.strip()
    if not sep or not endpoint:
        raise ConsumerError(f"consumer {spec!r}: expected NAME=URL")
    if not NAME_PATTERN.match(name):
        raise ConsumerError(
            f"consumer {name!r}: 1-40 lowercase letters, digits or hyphens, starting with a "
            "letter (as Terraform's consumers keys)"
        )
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConsumerError(f"consumer {name}: {endpoint!r} is not an http(s) URL")
    return Consumer(name, endpoint)


def parse_consumers(specs: Iterable[str]) -> tuple[Consumer, ...]:
    """Several specs (each may hold several, separated by spaces or commas); names unique."""
    consumers: list[Consumer] = []
    for spec in specs:
        for part in re.split(r"[\s,]+", spec.strip()):
            if part:
                consumers.append(parse_consumer(part))
    names = [c.name for c in consumers]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ConsumerError(f"consumer names given twice: {', '.join(duplicated)}")
    return tuple(consumers)


def load_settings(path: Path = SETTINGS_FILE) -> dict[str, Any]:
    """The Terraform-derived settings (``sample`` placement + ``subscription`` arguments)."""
    return json.loads(path.read_text())


def duration(text: str) -> dict[str, int]:
    """Terraform's ``"600s"`` as a protobuf Duration."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"not a duration in seconds: {text!r}")
    nanos = int((match.group(2) or "").ljust(9, "0"))
    return {"seconds": int(match.group(1)), "nanos": nanos}


def subscription_name(topic: str, consumer: str) -> str:
    """``<topic>-consumer-<name>``, the name Terraform gives it."""
    return f"{topic}-consumer-{consumer}"


def subscription_request(
    *,
    project: str,
    topic: str,
    dead_letter_topic: str,
    consumer: Consumer,
    retry_policy: bool = True,
    max_delivery_attempts: int | None = None,
    settings: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``CreateSubscription`` request Terraform's ``consumer_push`` amounts to.

    ``retry_policy=False`` leaves out the retry back-off and ``max_delivery_attempts``
    replaces Terraform's count (the local stack does both, for the emulator's sake, as for its
    function subscriptions: docs/local-stack.md). Raises ``KeyError`` naming an argument that
    Terraform sets and this function does not translate, so that a new setting in pubsub.tf is
    not silently dropped.
    """
    settings = load_settings() if settings is None else settings
    sample, resource = settings["sample"], dict(settings["subscription"])
    push = dict(resource.pop("push_config"))
    request: dict[str, Any] = {
        "name": f"projects/{project}/subscriptions/{subscription_name(topic, consumer.name)}",
        "topic": f"projects/{project}/topics/{topic}",
    }
    resource.pop("name"), resource.pop("topic")
    endpoint_config: dict[str, Any] = {"push_endpoint": consumer.endpoint}
    push.pop("push_endpoint")
    if "no_wrapper" in push:
        endpoint_config["no_wrapper"] = dict(push.pop("no_wrapper"))
    if "oidc_token" in push:
        token = dict(push.pop("oidc_token"))
        if token.get("audience") == sample["push_endpoint"]:
            token["audience"] = consumer.endpoint  # coalesce(audience, push_endpoint)
        token["service_account_email"] = token["service_account_email"].replace(
            f"@{sample['project']}.", f"@{project}."
        )
        endpoint_config["oidc_token"] = token
    _refuse_unknown("push_config", push)
    request["push_config"] = endpoint_config
    request["ack_deadline_seconds"] = int(resource.pop("ack_deadline_seconds"))
    request["message_retention_duration"] = duration(resource.pop("message_retention_duration"))
    subscription_filter = resource.pop("filter", None)
    if subscription_filter:
        request["filter"] = subscription_filter
    dead_letter = dict(resource.pop("dead_letter_policy"))
    request["dead_letter_policy"] = {
        "dead_letter_topic": f"projects/{project}/topics/{dead_letter_topic}",
        "max_delivery_attempts": max_delivery_attempts or int(dead_letter["max_delivery_attempts"]),
    }
    retry = resource.pop("retry_policy", None)
    if retry and retry_policy:
        request["retry_policy"] = {
            "minimum_backoff": duration(retry["minimum_backoff"]),
            "maximum_backoff": duration(retry["maximum_backoff"]),
        }
    expiration = resource.pop("expiration_policy", None)
    if expiration is not None:  # ttl "" = never expires = an ExpirationPolicy without a ttl
        ttl = expiration.get("ttl") or ""
        request["expiration_policy"] = {"ttl": duration(ttl)} if ttl else {}
    _refuse_unknown("consumer_push", resource)
    return request


def _refuse_unknown(where: str, rest: Mapping[str, Any]) -> None:
    if rest:
        raise KeyError(
            f"terraform {where} sets {sorted(rest)}: "
            "translate it in devstack/consumers/subscriptions.py"
        )
