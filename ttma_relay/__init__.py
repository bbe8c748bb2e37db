"""ttma-relay's library: what the four functions, the CLI and the local stack share.

    ttma_relay/
    ├── functions.py   the table of the four functions (everything else about them derives)
    ├── settings.py    each function's settings, read once from the environment
    ├── logs.py        one JSON line per event; refuses fields that could carry PII
    ├── env_file.py    ``NAME=value`` files (the local stack's endpoints.env)
    ├── reconcile.py   one reconcile run: list, decide by delivery state, publish once
    ├── contract/      what the parts agree on, no I/O (messages, keys, transcripts, times)
    ├── adapters/      everything that talks to Google or to the vendor
    └── cli/           the operator CLI, ``ttma-relay`` (not in the functions' zip)

Beside it: ``main.py`` (the entry points), ``handlers/`` (one module per function and the
wiring of its clients), ``verify/`` (webhook signatures), ``devstack/`` (the local stack, the
demo, the soak) and ``ttma_sandbox/`` (the vendor's API and webhook sender, simulated).
docs/architecture.md ("Where things live") draws the whole tree.
"""
