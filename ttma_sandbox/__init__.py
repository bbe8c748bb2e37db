"""A faithful fake of the TTMA Call Results API (the vendor), for tests and the local stack.

See ``ttma_sandbox/README.md``. In-process::

    with running_sandbox(webhook_backoff_base=0.01) as sandbox:
        call = sandbox.state.simulate_call(recording="late", late_after_seconds=10)
        sandbox.state.clock.advance(11)

Out of process: ``TTMA_SANDBOX_API_KEYS=mbn_live_... python -m ttma_sandbox --port 8790``
and the ``/_sandbox/...`` control API.
"""

from ttma_sandbox.api_keys import ALL_SCOPES, SCOPE_CALL, SCOPE_READ, generate_api_key
from ttma_sandbox.calls import CALL_FIELDS, DEFAULT_AGENT_NUMBER, END_REASONS
from ttma_sandbox.clock import SandboxClock
from ttma_sandbox.faults import Fault, FaultInjector
from ttma_sandbox.mp3 import RecordingDigest, recording_chunks, recording_digest
from ttma_sandbox.server import SandboxHandle, running_sandbox, start_sandbox
from ttma_sandbox.state import SandboxOptions, SandboxState

__all__ = [
    "ALL_SCOPES",
    "CALL_FIELDS",
    "DEFAULT_AGENT_NUMBER",
    "END_REASONS",
    "SCOPE_CALL",
    "SCOPE_READ",
    "Fault",
    "FaultInjector",
    "RecordingDigest",
    "SandboxClock",
    "SandboxHandle",
    "SandboxOptions",
    "SandboxState",
    "generate_api_key",
    "recording_chunks",
    "recording_digest",
    "running_sandbox",
    "start_sandbox",
]
