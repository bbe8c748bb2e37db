"""``make soak``: N calls under faults on a stack of its own; was anything lost?

soak/
├── command.py  ``python -m devstack.soak --calls N``: start, run, judge, stop
├── plan.py     the calls and the faults, from a seed
├── run.py      the phases: load, last attempts, reconcile, settle
├── faults.py   pausing processes, killing the ingest worker, the sandbox's faults
├── observe.py  what it sees from outside: objects, index, events, dead letters
└── report.py   the verdict (lost, missing recordings, double-archived, duplicates)
"""

from devstack.soak.command import main

__all__ = ["main"]
