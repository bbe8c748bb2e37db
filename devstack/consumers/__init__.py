"""Downstream consumers on the local stack (``make dev CONSUMERS=name=url``).

consumers/
├── subscriptions.py   a consumer's push subscription, as Terraform creates it
├── subscription.json  the settings, derived from terraform/pubsub.tf (``terraform.py``)
├── terraform.py       ``python -m devstack.consumers.terraform --write|--check``
└── receiver.py        ``python -m devstack.consumers.receiver``: a consumer to push to
"""

from devstack.consumers.subscriptions import (
    Consumer,
    ConsumerError,
    load_settings,
    parse_consumers,
    subscription_name,
    subscription_request,
)

__all__ = [
    "Consumer",
    "ConsumerError",
    "load_settings",
    "parse_consumers",
    "subscription_name",
    "subscription_request",
]
