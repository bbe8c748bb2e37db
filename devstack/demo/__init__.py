"""``make demo``: a mixed batch of calls through the running stack, and a report of each.

demo/
├── command.py  ``python -m devstack.demo``: place the calls, wait, report
├── plan.py     which calls (end reasons, duplicates, a lost webhook, a late recording)
└── report.py   what became of each call
"""

from devstack.demo.command import dead_letters, main

__all__ = ["dead_letters", "main"]
