"""The operator CLI, ``ttma-relay`` (docs/cli.md). Not part of the functions' zip: it needs
``click`` and ``tqdm`` (requirements-dev.txt, or ``pip install .``), which no function does.

- ``main``: the command group (``--local``, ``--env-file``) and ``send`` (a signed smoke test);
- ``common``: exit codes, options, error mapping every command shares;
- ``calls``, ``tail``: read the index and the topic;
- ``webhook``: ``configure-webhook`` at the vendor;
- ``replay``, ``backfill``, ``doctor`` (+ ``doctor_checks``): recovery and health.
"""

from ttma_relay.cli.main import EXIT_REFUSED, EXIT_UNREACHABLE, main

__all__ = ["EXIT_REFUSED", "EXIT_UNREACHABLE", "main"]
