"""What every benchmark section shares: the run's context, the section result, statistics, and
waiting for a quiet machine before each round.

A section is a module with ``run(context: BenchContext) -> Section``. It measures the project's
code next to a floor (the same work without the project) in the same run, interleaved, and
reports figures, ratios and the targets those ratios must meet. ``bench/__main__.py`` runs the
sections, ``bench/report.py`` prints the tables and writes ``bench/results/latest.json`` and the
plot.
"""

from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
QUIET_IDLE_FRACTION = 0.80  # both cores at least this idle over QUIET_WINDOW_SECONDS
QUIET_WINDOW_SECONDS = 0.5
QUIET_MAX_WAIT_SECONDS = 15.0


@dataclass
class BenchContext:
    """What the runner gives every section."""

    logs: Path  # a folder for this run's logs (one per section is fine)
    env: dict[str, str]  # the emulators' variables (FIRESTORE_/PUBSUB_/STORAGE_EMULATOR_HOST)
    project: str
    quick: bool = False  # BENCH_QUICK=1: small counts (the smoke test), figures meaningless
    deadline: float = math.inf  # time.monotonic() by which the whole run should be done
    quiet_waits: list[dict[str, float]] = field(default_factory=list)
    pids: dict[str, int] = field(default_factory=dict)  # the emulators' process-group leaders

    def scaled(self, full: int, quick: int) -> int:
        """A count: ``full`` normally, ``quick`` under BENCH_QUICK."""
        return quick if self.quick else full

    def wait_for_quiet(self) -> dict[str, float]:
        """Wait (bounded) until the machine is quiet; the wait is recorded in the results."""
        waited = wait_for_quiet()
        self.quiet_waits.append(waited)
        return waited


@dataclass
class Target:
    """A goal a figure must meet: ``value <= limit`` (or ``>=``), as the issue states it."""

    name: str
    value: float
    limit: float
    direction: str = "<="  # "<=" or ">="

    @property
    def met(self) -> bool:
        return self.value <= self.limit if self.direction == "<=" else self.value >= self.limit

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "met": self.met}


@dataclass
class Section:
    """One section's result. ``rows`` is its table (each a dict keyed by ``columns``);
    ``distributions`` are raw samples (ms) for the plot; ``ratios`` are what the section is
    about (project / floor)."""

    name: str
    title: str
    columns: list[str]
    rows: list[dict[str, Any]]
    ratios: dict[str, float] = field(default_factory=dict)
    targets: list[Target] = field(default_factory=list)
    distributions: dict[str, list[float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["targets"] = [target.as_dict() for target in self.targets]
        return data


def percentile(samples: Sequence[float], q: float) -> float:
    """The q-th percentile (nearest rank on the sorted samples)."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def summarize(samples: Sequence[float]) -> dict[str, float]:
    """n, p50, p95, p99 and mean of latency samples (whatever unit they are in)."""
    return {
        "n": len(samples),
        "p50": percentile(samples, 50),
        "p95": percentile(samples, 95),
        "p99": percentile(samples, 99),
        "mean": statistics.fmean(samples) if samples else math.nan,
    }


def ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else math.nan


def _cpu_times() -> tuple[int, int]:
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    values = [int(v) for v in fields]
    idle = values[3] + values[4]  # idle + iowait
    return idle, sum(values[:8])


def idle_fraction(window: float = QUIET_WINDOW_SECONDS) -> float:
    """The machine's idle fraction over ``window`` seconds (all cores, from /proc/stat)."""
    idle0, total0 = _cpu_times()
    time.sleep(window)
    idle1, total1 = _cpu_times()
    return (idle1 - idle0) / max(1, total1 - total0)


def wait_for_quiet(
    *, idle: float = QUIET_IDLE_FRACTION, max_wait: float = QUIET_MAX_WAIT_SECONDS
) -> dict[str, float]:
    """Return once the machine is ``idle`` idle over a window, or after ``max_wait`` seconds;
    says how long it waited and how idle the machine was."""
    started = time.monotonic()
    while True:
        seen = idle_fraction()
        waited = time.monotonic() - started
        if seen >= idle or waited >= max_wait:
            return {"waited_s": round(waited, 2), "idle": round(seen, 3)}


def cpu_seconds(process_groups: Iterable[int]) -> float:
    """User + system CPU seconds used so far by every live process of these process groups
    (from /proc; a process that exited meanwhile is not counted)."""
    groups = set(process_groups)
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) in groups:  # fields after the name: state, ppid, pgrp, ...
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def interleaved(rounds: int, names: Iterable[str]) -> list[tuple[int, str]]:
    """(round, name) pairs, the order rotated each round so no variant always goes first."""
    names = list(names)
    order: list[tuple[int, str]] = []
    for r in range(rounds):
        shift = r % len(names) if names else 0
        order.extend((r, name) for name in names[shift:] + names[:shift])
    return order


def quick_mode() -> bool:
    return os.environ.get("BENCH_QUICK") == "1"
