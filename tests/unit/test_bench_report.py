"""The benchmark suite's own arithmetic and report: percentiles, the interleaving, targets, and
what ``bench/results/latest.json`` and the plot hold. (The figures themselves come from
``make bench``; nothing here measures time.)"""

from __future__ import annotations

import json
import math

import pytest

from bench import report
from bench.common import Section, Target, interleaved, percentile, ratio, summarize


def test_percentile_is_the_nearest_rank():
    samples = list(range(100, 0, -1))  # unsorted: 100 .. 1
    assert percentile(samples, 50) == 50
    assert percentile(samples, 95) == 95
    assert percentile(samples, 99) == 99
    assert percentile(samples, 100) == 100
    assert percentile([7.0], 99) == 7.0
    assert math.isnan(percentile([], 50))


def test_summarize_gives_count_percentiles_and_mean():
    stats = summarize([1.0, 2.0, 3.0, 4.0])
    assert stats == {"n": 4, "p50": 2.0, "p95": 4.0, "p99": 4.0, "mean": 2.5}


def test_interleaving_rotates_the_order_so_no_variant_always_goes_first():
    order = interleaved(3, ["a", "b", "c"])
    assert order == [
        (0, "a"),
        (0, "b"),
        (0, "c"),
        (1, "b"),
        (1, "c"),
        (1, "a"),
        (2, "c"),
        (2, "a"),
        (2, "b"),
    ]


@pytest.mark.parametrize(
    ("value", "limit", "direction", "met"),
    [
        (0.9, 0.92, "<=", True),
        (0.93, 0.92, "<=", False),
        (2.1, 2.0, ">=", True),
        (1.9, 2.0, ">=", False),
    ],
)
def test_a_target_is_met_only_on_its_side_of_the_limit(value, limit, direction, met):
    assert Target("t", value, limit, direction).met is met


def test_ratio_of_zero_is_nan_not_an_error():
    assert math.isnan(ratio(1.0, 0.0))
    assert ratio(3.0, 2.0) == 1.5


def _section() -> Section:
    return Section(
        name="demo",
        title="Demo (ms)",
        columns=["variant", "p50"],
        rows=[{"variant": "floor", "p50": 1.5}, {"variant": "ours", "p50": 3.0}],
        ratios={"ours / floor": 2.0},
        targets=[Target("ours / floor", 2.0, 1.5, "<=")],
        distributions={"floor": [1.0, 1.5, 2.0], "ours": [2.5, 3.0, 3.5]},
        seconds=1.0,
    )


def test_the_table_shows_rows_ratios_and_unmet_targets():
    text = report.table(_section())
    assert "floor" in text and "3.00" in text
    assert "ratio  ours / floor: 2.00" in text
    assert "NOT MET" in text


def test_results_hold_every_figure_ratio_and_target_and_the_plot_is_a_png(tmp_path):
    section = _section()
    document = report.results_document(
        [section],
        seconds=2.0,
        quick=True,
        quiet_waits=[{"waited_s": 0.5, "idle": 0.9}, {"waited_s": 15.0, "idle": 0.4}],
    )
    path = report.write(document, [section], tmp_path)
    written = json.loads(path.read_text())
    assert written["sections"]["demo"]["rows"] == section.rows
    assert written["ratios"] == {"demo: ours / floor": 2.0}
    assert written["targets"] == [
        {
            "section": "demo",
            "name": "ours / floor",
            "value": 2.0,
            "limit": 1.5,
            "direction": "<=",
            "met": False,
        }
    ]
    assert written["quiet_waits"] == {"batches": 2, "waited_s_total": 15.5, "not_quiet": 1}
    assert {"cpus", "python", "java"} <= set(written["machine"])
    assert written["versions"]["google-cloud-pubsub"] != "absent"
    assert (tmp_path / "latest.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_markdown_table_has_a_header_and_one_line_per_row():
    lines = report.markdown_table(_section()).splitlines()
    assert lines[0] == "| variant | p50 |"
    assert len(lines) == 2 + 2
