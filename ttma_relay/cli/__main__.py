"""``python -m ttma_relay.cli``: the same as ``ttma-relay``."""

from ttma_relay.cli.main import main

main()
