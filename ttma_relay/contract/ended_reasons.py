"""The call end reasons the vendor documents (its "Call end reasons" table), in its order.

One definition for the project: the sandbox simulates these, ``ttma-relay calls`` warns about a
filter outside them, and ``docs/schema/`` lists them as the known values. The list is not
closed: the vendor may add reasons, and an unknown one is accepted and passed on everywhere.
"""

from __future__ import annotations

KNOWN_ENDED_REASONS: tuple[str, ...] = (
    "callerHangup",
    "botHangup",
    "callTimeout",
    "silenceTimeout",
    "idleTimeout",
    "gatewayShutdown",
    "aiConnectionFailed",
    "aiSessionLost",
    "mediaStreamDropped",
    "setupFailed",
    "unknown",
)
