"""``make bench``: the project measured side by side with its floors, in one run
(BENCHMARKS.md explains each figure; the latest results are in ``results/``). The runner,
``python -m bench [SECTION...]`` (``__main__.py``), starts the emulators once, runs every
section and writes the report.

bench/
├── common.py               what sections share: context, Section, Target, statistics, quiet
├── report.py               the tables, ``results/latest.json`` and ``results/latest.png``
├── variants.py             the bare functions served beside ours (floors, Google's sample)
├── http_chain.py           the webhook path: HTTP floor, chain floor, ingest, sample pattern
├── cold_start.py           spawn to ready of each function next to its import floor
├── verify_cost.py          verify() next to raw hmac on the same bytes
├── recording_archive.py    archive_recording next to a plain streamed copy (MB/s, peak RSS)
├── end_to_end_lag.py       webhook to archived next to the push floor
└── reconcile_throughput.py reconcile's calls/s against the sandbox (run on its own)
"""
