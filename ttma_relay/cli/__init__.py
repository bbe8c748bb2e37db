"""The operator CLI, ``ttma-relay`` (docs/cli.md). Not in the functions' zip: it needs ``click``
and ``tqdm`` (requirements-dev.txt, or ``pip install .``), which no function does.

    cli/
    ├── main.py           the command group (``--local``, ``--env-file``) and ``send``
    ├── common.py         exit codes, options and error mapping every command shares
    ├── calls.py          ``calls`` and ``call ID``: the archived-call index
    ├── tail.py           ``tail``: call events as they are published
    ├── webhook.py        ``configure-webhook`` at the vendor
    ├── replay.py         ``replay``: dead letters back onto the topic, bytes unchanged
    ├── backfill.py       ``backfill``: reconcile's code over an explicit window
    ├── forget.py         ``forget``: erase a call or a person's calls, leave tombstones
    ├── doctor.py         ``doctor``: a pass/fail table of a deployment or the local stack
    └── doctor_checks.py  one check per part
"""

from ttma_relay.cli.main import EXIT_REFUSED, EXIT_UNREACHABLE, main

__all__ = ["EXIT_REFUSED", "EXIT_UNREACHABLE", "main"]
