"""Derive the consumer push subscription from Terraform: ``devstack/consumers/subscription.json``.

``terraform/pubsub.tf`` (``google_pubsub_subscription.consumer_push``) is the one definition of
how a downstream consumer is subscribed. This module reads that resource block (python-hcl2),
rewrites ``each.*`` for one sample consumer and the references to other resources into the ids
the provider gives them, and has ``terraform console`` evaluate the whole block with the
module's variable defaults. The result is committed, so that ``make dev CONSUMERS=...`` needs no
Terraform; ``tests/integration/test_consumer_push.py`` regenerates it and fails on any drift.

    python -m devstack.consumers.terraform --write   # after changing consumer_push or its defaults
    python -m devstack.consumers.terraform --check   # exit 1 when the committed file is stale

Stand-ins: the resource ids below are the google provider's documented formats
(``projects/{project}/topics/{name}``, ``{account_id}@{project}.iam.gserviceaccount.com``),
not values read from a real plan.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from devstack.consumers.subscriptions import SETTINGS_FILE
from devstack.paths import ROOT

PUBSUB_TF = ROOT / "terraform" / "pubsub.tf"
RESOURCE = ("google_pubsub_subscription", "consumer_push")
SAMPLE = {
    "project": "example-project",
    "consumer": "example",
    "push_endpoint": "https://consumer.example/webhook/ttma",
}
# Arguments that place the subscription in a project or order its creation: not behaviour.
SKIPPED = frozenset({"for_each", "project", "labels", "depends_on"})
# References to other resources of the module → the id the provider gives them, in HCL.
RESOURCE_IDS = {
    "google_pubsub_topic.call_events.id":
        '"projects/${var.project_id}/topics/${local.call_events_topic}"',
    "google_pubsub_topic.dead_letter.id":
        '"projects/${var.project_id}/topics/${local.dead_letter_topic}"',
    'google_service_account.this["consumer_push"].email':
        '"${local.service_accounts["consumer_push"].id}@${var.project_id}.iam.gserviceaccount.com"',
}  # fmt: skip
_META = ("__is_block__", "__comments__", "__inline_comments__")


class TerraformShapeError(ValueError):
    """pubsub.tf's consumer_push has a shape this module does not know: teach it."""


def _unquote(key: str) -> str:
    return key[1:-1] if len(key) >= 2 and key[0] == key[-1] == '"' else key


def resource_block(path: Path = PUBSUB_TF) -> dict[str, Any]:
    """The ``consumer_push`` block as python-hcl2 parses it."""
    import hcl2

    with path.open() as handle:
        parsed = hcl2.load(handle)
    for entry in parsed.get("resource", []):
        for kind, named in entry.items():
            for name, block in named.items():
                if (_unquote(kind), _unquote(name)) == RESOURCE:
                    return block
    raise TerraformShapeError(f"{path.name} has no resource {'.'.join(RESOURCE)}")


def _expression(value: Any) -> str:
    """An HCL expression for one value as python-hcl2 renders it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    if isinstance(value, str):
        if value.startswith('"'):
            text = value  # a string literal or template, quotes included
        elif value.startswith("${") and value.endswith("}"):
            text = value[2:-1]
        else:
            raise TerraformShapeError(f"unexpected value {value!r}")
        text = text.replace("each.value", f'var.consumers["{SAMPLE["consumer"]}"]')
        text = text.replace("each.key", f'"{SAMPLE["consumer"]}"')
        for reference, replacement in RESOURCE_IDS.items():
            text = text.replace(reference, replacement)
        unknown = re.search(r"\bgoogle_[a-z0-9_]+\.[\w\[\]\".]+", text)
        if unknown:
            raise TerraformShapeError(
                f"consumer_push refers to {unknown.group(0)}: add its id to RESOURCE_IDS"
            )
        return text
    raise TerraformShapeError(f"unexpected value {value!r}")


def _object(block: dict[str, Any]) -> str:
    parts = []
    for key, value in block.items():
        if key in _META or key in SKIPPED:
            continue
        if key == "dynamic":
            raise TerraformShapeError("dynamic blocks in consumer_push are not supported here")
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            if len(value) != 1:
                raise TerraformShapeError(f"block {key} appears {len(value)} times")
            parts.append(f"{key} = {_object(value[0])}")
        else:
            parts.append(f"{key} = {_expression(value)}")
    return "{ " + ", ".join(parts) + " }"


def derive() -> dict[str, Any]:
    """The evaluated consumer_push arguments for ``SAMPLE`` (Terraform defaults elsewhere)."""
    from devstack.terraform_eval import evaluate

    expression = _object(resource_block())
    consumers = {SAMPLE["consumer"]: {"push_endpoint": SAMPLE["push_endpoint"]}}
    subscription = evaluate(expression, {"project_id": SAMPLE["project"], "consumers": consumers})
    return {
        "generated_by": "python -m devstack.consumers.terraform --write (do not edit)",
        "source": "terraform/pubsub.tf google_pubsub_subscription.consumer_push, evaluated by "
        "terraform console with the module's defaults for one consumer",
        "sample": SAMPLE,
        "subscription": subscription,
    }


def render(settings: dict[str, Any]) -> str:
    return json.dumps(settings, indent=2, sort_keys=True) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.consumers.terraform")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help=f"write {SETTINGS_FILE.name}")
    mode.add_argument("--check", action="store_true", help="exit 1 if it is stale")
    args = parser.parse_args(argv)
    text = render(derive())
    if args.write:
        SETTINGS_FILE.write_text(text)
        print(f"wrote {SETTINGS_FILE.relative_to(ROOT)}")
        return 0
    if SETTINGS_FILE.exists() and SETTINGS_FILE.read_text() == text:
        return 0
    print(f"{SETTINGS_FILE.relative_to(ROOT)} is stale: python -m devstack.consumers.terraform "
          "--write", file=sys.stderr)  # fmt: skip
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
