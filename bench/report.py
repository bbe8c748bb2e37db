"""The run's results: the tables and ratios printed, ``bench/results/latest.json`` (machine,
versions, every figure, every ratio, every target) and the latency plot (PNG)."""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.common import Section

RESULTS = Path(__file__).with_name("results")
PACKAGES = (
    "functions-framework",
    "google-cloud-firestore",
    "google-cloud-pubsub",
    "google-cloud-storage",
    "grpcio",
    "httpx",
    "gunicorn",
)


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    memory_kib = int(Path("/proc/meminfo").read_text().split()[1])
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(memory_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "java": _java_version(),
    }


def _java_version() -> str:
    try:
        done = subprocess.run(["java", "-version"], capture_output=True, text=True, timeout=10)  # noqa: S607  `java` from PATH, only to print its version in the report
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return (done.stderr.splitlines() or ["unknown"])[0]


def versions() -> dict[str, str]:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "absent"
    return found


def commit() -> str:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607  `git` from PATH, for the report
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return done.stdout.strip() or "unknown"


def results_document(
    sections: list[Section], *, seconds: float, quick: bool, quiet_waits: list[dict[str, float]]
) -> dict[str, Any]:
    return {
        "written": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": commit(),
        "quick": quick,
        "seconds": round(seconds, 1),
        "machine": machine(),
        "versions": versions(),
        "quiet_waits": {
            "batches": len(quiet_waits),
            "waited_s_total": round(sum(w["waited_s"] for w in quiet_waits), 1),
            "not_quiet": sum(1 for w in quiet_waits if w["idle"] < 0.8),
        },
        "sections": {section.name: section.as_dict() for section in sections},
        "ratios": {
            f"{section.name}: {name}": value
            for section in sections
            for name, value in section.ratios.items()
        },
        "targets": [
            {"section": section.name, **target.as_dict()}
            for section in sections
            for target in section.targets
        ],
    }


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.2f}"
    return str(value)


def table(section: Section) -> str:
    """The section as a text table, then its ratios and targets."""
    header = section.columns
    cells = [[_cell(row.get(column, "")) for column in header] for row in section.rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(header)]
    lines = [f"== {section.title} ({section.seconds:.0f} s)"]
    lines.append(
        "  ".join(
            h.ljust(w) if i == 0 else h.rjust(w)
            for i, (h, w) in enumerate(zip(header, widths, strict=True))
        )
    )
    for row in cells:
        lines.append(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    for name, value in section.ratios.items():
        lines.append(f"  ratio  {name}: {_cell(float(value))}")
    for target in section.targets:
        verdict = "met" if target.met else "NOT MET"
        lines.append(
            f"  target {target.name}: {_cell(float(target.value))} {target.direction} "
            f"{_cell(float(target.limit))}  {verdict}"
        )
    lines.extend(f"  note   {note}" for note in section.notes)
    return "\n".join(lines)


def markdown_table(section: Section) -> str:
    """The section as a Markdown table (for BENCHMARKS.md)."""
    lines = [
        "| " + " | ".join(section.columns) + " |",
        "|" + "|".join("---" for _ in section.columns) + "|",
    ]
    for row in section.rows:
        lines.append("| " + " | ".join(_cell(row.get(c, "")) for c in section.columns) + " |")
    return "\n".join(lines)


def plot(sections: list[Section], path: Path) -> Path | None:
    """Latency distributions (one panel per section that has some), as a PNG."""
    panels = [section for section in sections if section.distributions]
    if not panels:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(len(panels), 1, figsize=(9, 3.2 * len(panels)), squeeze=False)
    for axis, section in zip(axes[:, 0], panels, strict=True):
        labels = list(section.distributions)
        data = [section.distributions[label] for label in labels]
        axis.boxplot(data, orientation="horizontal", showfliers=False, whis=(1, 99))
        axis.set_yticks(range(1, len(labels) + 1), labels)
        axis.set_xscale("log")
        axis.set_xlabel("ms (box: p25-p75, line: p50, whiskers: p1-p99)")
        axis.set_title(section.title, fontsize=10)
        axis.grid(axis="x", alpha=0.3)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def write(document: dict[str, Any], sections: list[Section], folder: Path = RESULTS) -> Path:
    """Write ``latest.json`` and ``latest.png`` into ``folder``; returns the JSON's path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "latest.json"
    path.write_text(json.dumps(document, indent=1, default=float) + "\n")
    plot(sections, folder / "latest.png")
    return path
