"""``make soak``: its plan is reproducible, its verdict right on synthetic observations, and one
small real soak (8 calls, one fault: the ingest worker killed inside a Pub/Sub pause) runs end
to end, stops everything it started and leaves no process paused."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from devstack.soak import command as soak
from devstack.soak.plan import PlannedFault, SoakCall, SoakPlan, soak_plan
from devstack.soak.report import (
    PlacedCall,
    SoakObservations,
    StoredObject,
    TopicEvent,
    judge,
    render,
)
from devstack.stack.processes import StackState, marked_processes
from ttma_relay.contract.call_keys import call_key

T = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
SETTLED = {"transcriptStatus": "archived", "recordingStatus": "archived"}


def _objects(call_id: str, *files: str, generation: int = 1) -> list[StoredObject]:
    prefix = f"calls/2026/05/01/{call_key(call_id)}/"
    return [StoredObject(prefix + f, generation, T) for f in files]


def _event(call_id: str, message_id: str, delivery_id: str = "d", source: str = "webhook"):
    return TopicEvent(call_id, message_id, delivery_id, source)


def test_plan_is_reproducible_and_mixes_what_the_issue_asks() -> None:
    first, again, other = soak_plan(200, 7), soak_plan(200, 7), soak_plan(200, 8)
    assert first == again
    assert [c.request for c in first.calls] != [c.request for c in other.calls]
    kinds = {kind: len(first.of_kind(kind)) for kind in
             ("normal", "no_webhook", "last_killed", "last_timeout")}  # fmt: skip
    assert kinds == {"normal": 174, "no_webhook": 6, "last_killed": 10, "last_timeout": 10}
    duplicated = [c for c in first.of_kind("normal") if c.request.get("duplicates")]
    assert 0.2 < len(duplicated) / kinds["normal"] < 0.4
    assert any(c.request.get("concurrent_duplicates") for c in duplicated)
    targets = {(f.kind, f.target) for f in first.faults}
    for service in ("firestore", "pubsub", "storage"):
        assert ("pause", service) in targets
    assert {"kill_ingest", "api", "download"} <= {f.kind for f in first.faults}
    assert all(0 <= c.at <= first.load_seconds for c in first.calls)


def test_judge_counts_losses_missing_recordings_overwrites_and_duplicates() -> None:
    good, lost, no_rec, dup, over = (f"v3:{name}" for name in
                                     ("good", "lost", "norec", "dup", "over"))  # fmt: skip
    calls = [PlacedCall(cid, kind) for cid, kind in (
        (good, "normal"), (lost, "last_killed"), (no_rec, "normal"), (dup, "no_webhook"),
        (over, "normal"))]  # fmt: skip
    objects = [
        *_objects(good, "call.json", "recording.mp3"),
        *_objects(no_rec, "call.json"),
        *_objects(dup, "call.json", "recording.mp3"),
        *_objects(over, "call.json", generation=5),
        *_objects(over, "recording.mp3"),
    ]
    index = {cid: {**SETTLED, "recordingArchivedAt": T} for cid in (good, no_rec, dup, over)}
    index[no_rec] = {"transcriptStatus": "archived", "recordingStatus": "pending"}
    index[over]["callJsonArchivedAt"] = T
    index[good]["recordingArchivedAt"] = T - timedelta(seconds=3)  # re-created after indexing
    observations = SoakObservations(
        calls=calls,
        vendor_recording={good: True, lost: True, no_rec: True, dup: False, over: False},
        objects=objects,
        first_generations={objects[-2].name: 1},  # over's call.json: generation 1 → 5
        index=index,
        events=[
            _event(good, "1"),
            _event(no_rec, "2"),
            _event(over, "3"),
            _event(dup, "4", "d1"),
            _event(dup, "5", "reconcile:x", "reconcile"),
            _event(dup, "5", "reconcile:x", "reconcile"),
        ],
        dead_letters=[{"callId": no_rec, "deliveryAttempt": "60"}],
        explanations={lost: "last_killed: webhook failed [ConnectError]"},
    )
    report = judge(observations)
    assert report.lost == {lost: ["no call.json", "no index entry", "never on the topic"]}
    assert report.lost_by_kind == {"last_killed": 1}
    assert report.missing_recordings == [lost, no_rec]
    assert report.double_archived == sorted([objects[-2].name, objects[1].name])
    assert report.duplicated_calls == 1 and report.max_events == 2  # a redelivery is not one
    assert report.duplicate_kinds == {"reconcile+webhook (different delivery ids)": 1}
    assert report.duplicated_by_kind == {"no_webhook": 1}
    assert report.unsettled == [no_rec]
    assert not report.ok
    text = render(report, faults=[], timings={"total": 1.0})
    assert "lost:                    1" in text and "verdict: LOSS" in text
    assert "last_killed: webhook failed [ConnectError]" in text


def test_judge_nothing_lost() -> None:
    cid = "v3:fine"
    report = judge(SoakObservations(
        calls=[PlacedCall(cid, "normal")], vendor_recording={cid: True},
        objects=_objects(cid, "call.json", "recording.mp3"), first_generations={},
        index={cid: SETTLED}, events=[_event(cid, "1")],
    ))  # fmt: skip
    assert report.ok and report.duplicated_calls == 0
    assert "verdict: NOTHING LOST" in render(report, faults=[], timings={})


def test_small_real_soak_stops_everything(tmp_path, capsys, monkeypatch) -> None:
    seen: list[str] = []
    real_down = soak.down

    def down(state_dir, **options):
        state = StackState.load(state_dir)
        seen.append(state.stack_id if state else "")
        return real_down(state_dir, **options)

    monkeypatch.setattr(soak, "down", down)
    calls = [SoakCall(i, "normal", i * 0.8, {"deliver": True, "seed": i,
             **({"duplicates": 1, "concurrent_duplicates": True} if i % 3 == 0 else {})})
             for i in range(8)]  # fmt: skip
    plan = SoakPlan(
        calls, [PlannedFault("kill_ingest", "pubsub", 2.0, 1.0, {"pause": 3.0})], 7.0, 0
    )
    state_dir = tmp_path / "soak"
    code = soak.main(["--calls", "8", "--state-dir", str(state_dir), "--reconcile-grace", "5",
                      "--reconcile-interval", "0", "--quiet", "10", "--timeout", "90"],
                     plan=plan)  # fmt: skip
    out = capsys.readouterr().out
    assert code in (0, 1), out  # 1 is a loss the product made, not a soak failure
    assert "calls placed:            8" in out
    assert re.search(r"kill\s+ingest worker .*SIGKILL pid \d+", out)
    assert re.search(r"pause\s+pubsub for 3\.\d s", out)
    assert StackState.load(state_dir) is None  # stopped: down removed stack.json
    assert seen and seen[0] and marked_processes(seen[0]) == []


def test_small_soak_replays_what_was_dead_lettered_and_loses_nothing(tmp_path, capsys) -> None:
    """Every recording download cut short until the pushes give up (5 attempts): the recordings
    are dead-lettered; after the faults the soak does what the runbook says (``ttma-relay
    replay``) and judges after that. A dead letter is held, not lost."""
    # The third call, placed last, keeps the load (and so the fault) on for 15 s.
    calls = [SoakCall(i, "normal", at, {"deliver": True, "seed": 40 + i})
             for i, at in enumerate((0.0, 0.5, 15.0))]  # fmt: skip
    cut = PlannedFault("download", "GET /_recordings/*", 0.0, options={
        "status": None, "truncate_after": 1024, "count": 1000})  # fmt: skip
    plan = SoakPlan(calls, [cut], 20.0, 0)
    code = soak.main(["--calls", "3", "--state-dir", str(tmp_path / "soak"),
                      "--reconcile-grace", "5", "--reconcile-interval", "0", "--quiet", "8",
                      "--timeout", "150", "--max-delivery-attempts", "5"], plan=plan)  # fmt: skip
    out = capsys.readouterr().out
    replayed = re.search(r"(\d+) dead letter\(s\) after the faults; `ttma-relay replay`: exit 0, "
                         r"(\d+) replayed", out)  # fmt: skip
    assert replayed, out
    assert int(replayed.group(1)) >= 1 and replayed.group(2) == replayed.group(1), out
    assert "0 dead letter(s) left after the replay" in out
    assert "missing recordings:      0" in out and "lost:                    0" in out
    assert code == 0, out
