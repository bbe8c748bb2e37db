"""``make bench``: every section in one run and one process tree, then the report.

Starts the Firestore, Pub/Sub and Storage emulators once (127.0.0.1), runs the sections in
order, prints each table with its ratios and targets, writes ``bench/results/latest.json`` and
``latest.png``. ``BENCH_QUICK=1``: tiny counts (a smoke run; the figures mean nothing and the
results go to a temporary folder). ``python -m bench SECTION...`` runs only those.
Exit status: 0 once written, whether or not the targets are met (the report says).
"""

from __future__ import annotations

import importlib
import os
import sys
import tempfile
import time
from pathlib import Path

from bench import report
from bench.common import BenchContext, Section, quick_mode
from devstack.emulators import EmulatorError, EmulatorSet, build_emulators

SECTIONS = (
    "http_chain",
    "cold_start",
    "verify_cost",
    "recording_archive",
    "end_to_end_lag",
)
PROJECT = "ttma-bench"
RUN_BUDGET_SECONDS = 20 * 60


def start_emulators(logs: Path, attempts: int = 3) -> EmulatorSet:
    """The three emulators on free ports; again on new ports if one was taken meanwhile."""
    for attempt in range(1, attempts + 1):
        emulators = build_emulators(PROJECT)
        try:
            emulators.start(logs)
            return emulators
        except EmulatorError:
            if attempt == attempts:
                raise
    raise AssertionError("unreachable")


def run_sections(names: list[str], *, results: Path | None = None) -> Path:
    """Run the named sections (all: ``SECTIONS``) and write the report; returns the JSON."""
    quick = quick_mode()
    logs = Path(tempfile.mkdtemp(prefix="ttma-bench-"))
    started = time.monotonic()
    emulators = start_emulators(logs)
    sections: list[Section] = []
    context = BenchContext(
        logs=logs,
        env=emulators.env,
        project=PROJECT,
        quick=quick,
        deadline=started + RUN_BUDGET_SECONDS,
        pids=emulators.pids,
    )
    saved_env = dict(os.environ)
    try:
        os.environ.update(emulators.env)
        for name in names:
            section_started = time.monotonic()
            print(f"-- {name} ...", flush=True)
            produced = importlib.import_module(f"bench.{name}").run(context)
            for section in produced if isinstance(produced, list) else [produced]:
                if not section.seconds:
                    section.seconds = round(time.monotonic() - section_started, 1)
                sections.append(section)
                print(report.table(section), flush=True)
    finally:
        emulators.stop()
        os.environ.clear()
        os.environ.update(saved_env)
    document = report.results_document(
        sections,
        seconds=time.monotonic() - started,
        quick=quick,
        quiet_waits=context.quiet_waits,
    )
    folder = results or (
        Path(tempfile.mkdtemp(prefix="ttma-bench-results-")) if quick else report.RESULTS
    )
    path = report.write(document, sections, folder)
    unmet = [t for t in document["targets"] if not t["met"]]
    print(
        f"\nwrote {path} and {path.with_suffix('.png')} in {document['seconds']:.0f} s; "
        f"targets met: {len(document['targets']) - len(unmet)}/{len(document['targets'])}"
    )
    for target in unmet:
        print(
            f"  NOT MET: {target['section']}: {target['name']} = {target['value']} "
            f"(want {target['direction']} {target['limit']})"
        )
    print(f"logs: {logs}")
    return path


def main(argv: list[str]) -> int:
    names = argv or list(SECTIONS)
    unknown = [name for name in names if name not in SECTIONS]
    if unknown:
        print(
            f"unknown section(s): {', '.join(unknown)}; known: {', '.join(SECTIONS)}",
            file=sys.stderr,
        )
        return 2
    run_sections(names)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
