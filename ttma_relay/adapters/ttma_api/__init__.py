"""The vendor's Call Results API (``/v1/voice/...``): one surface for the client and its errors.

    ttma_api/
    ├── client.py         TtmaClient: list and get calls, recording URLs and streams, webhooks
    ├── errors.py         TtmaApiError and one subclass per cause (+ InvalidRequestError, a bug)
    └── webhook_rules.py  the vendor's webhook rules, checked before sending

Import from here: ``from ttma_relay.adapters.ttma_api import TtmaClient, TtmaApiError``.
"""

from ttma_relay.adapters.ttma_api.client import *  # noqa: F403 - the surface is client's __all__
from ttma_relay.adapters.ttma_api.client import __all__  # noqa: F401 - re-exported as it is
