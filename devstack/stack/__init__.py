"""The local stack (``make dev``): the four functions on the real emulators and the sandbox.

stack/
├── command.py    ``python -m devstack.stack up|down|status|...``: start, stop, report
├── config.py     ports, names, state directory (StackConfig)
├── services.py   what runs: each emulator, the sandbox, each function, with its settings
├── provision.py  topic, subscriptions, bucket, the sandbox's webhook
├── health.py     waiting until each service answers
├── processes.py  process groups, the state file, stopping what we started
├── follow.py     ``make dev``: the functions' logs in the foreground
└── output.py     messages that never fail (a closed pipe), the stop signals
"""

from devstack.stack.command import (
    StackError,
    build_config,
    build_parser,
    down,
    endpoints,
    main,
    read_endpoints,
    summary,
    up,
)

__all__ = [
    "StackError",
    "build_config",
    "build_parser",
    "down",
    "endpoints",
    "main",
    "read_endpoints",
    "summary",
    "up",
]
