"""The soak's phases against one running stack (``devstack.soak`` starts and stops it).

1. **Load**: calls placed at the plan's offsets while the plan's faults run one after another
   (pauses, the ingest kill inside a Pub/Sub pause, vendor API faults, cut downloads) and a
   scheduler POSTs reconcile every ``reconcile_interval`` s, as Cloud Scheduler would.
2. **Last attempts**: once the sender is idle, the sandbox's retries are set to 0 and the
   ``last_killed`` calls are delivered into a Firestore pause and the ingest worker is killed
   while their claim creates wait there (the creates commit when Firestore resumes: a claim
   left by a dead request); then its timeout is set to 2 s and the ``last_timeout`` calls are
   delivered into a Pub/Sub pause. The sandbox's options are restored afterwards.
3. **Reconcile**: one run at once, one once the claim lease has expired since the last kill
   and reconcile's grace period has passed since the last call ended.
4. **Settle**: poll until every call is settled and on the topic, or nothing changed for
   ``quiet`` s, or the timeout.
5. **Recover**: dead letters (pushes that kept failing during the faults) are replayed with
   ``ttma-relay replay``, as the runbook says, and the calls settle again.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from devstack.demo import dead_letters
from devstack.soak.faults import SoakFaults
from devstack.soak.observe import BucketWatch, EventTap, claimed_count, index_records
from devstack.soak.plan import SoakCall, SoakPlan
from devstack.soak.report import is_settled

try:  # the lease ingest gives a claim; another engineer may change or rename it
    from ttma_relay.adapters.deliveries import CLAIM_LEASE_SECONDS as LEASE_SECONDS
except ImportError:  # pragma: no cover
    LEASE_SECONDS = 30.0


# Cloud Scheduler's attempt_deadline for reconcile (terraform/scheduler.tf): a run ends by its
# own budget (400 s) first, so the scheduler never starts a second one beside it.
SCHEDULER_ATTEMPT_DEADLINE = 540.0


@dataclass
class SoakContext:
    endpoints: dict[str, str]
    plan: SoakPlan
    faults: SoakFaults
    sandbox: httpx.Client
    tap: EventTap
    watch: BucketWatch
    db: Any  # firestore.Client
    reconcile_interval: float
    timeout: float
    quiet: float
    reconcile_url: str = ""
    grace: float = 0.0  # the reconcile's RECONCILE_GRACE_SECONDS, when the soak serves it
    say: Callable[[str], None] = print
    last_placed: float = 0.0
    placed: dict[int, str] = field(default_factory=dict)  # plan index → callId
    reconcile_runs: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    last_kill: float = 0.0
    state_dir: Path = Path(".devstack")  # the stack's (its endpoints.env: the CLI's settings)
    recovery: list[str] = field(default_factory=list)

    def place(self, call: SoakCall) -> str:
        response = self.sandbox.post("/_sandbox/calls", json=call.request)
        response.raise_for_status()
        call_id = str(response.json()["data"][0]["id"])
        self.placed[call.index] = call_id
        self.last_placed = self.faults.now()
        return call_id

    def reconcile(self, why: str, *, tries: int = 1) -> None:
        url = self.reconcile_url
        if not url:
            self.reconcile_runs.append(f"{self.faults.now():7.1f}  {why}: not served")
            return
        for attempt in range(1, tries + 1):
            started = self.faults.now()
            try:
                response = httpx.post(url, timeout=SCHEDULER_ATTEMPT_DEADLINE)
                text = f"{response.status_code} {response.text.strip()}"
                ok = response.status_code == 200
            except httpx.HTTPError as error:
                text, ok = type(error).__name__, False
            self.reconcile_runs.append(
                f"{started:7.1f}  {why}{f' (try {attempt})' if attempt > 1 else ''}: {text} "
                f"in {self.faults.now() - started:.1f} s")  # fmt: skip
            if ok:
                return
            time.sleep(2.0)

    def sender_idle(self, wait: float) -> bool:
        response = self.sandbox.get(
            "/_sandbox/deliveries", params={"wait": wait}, timeout=wait + 30
        )
        return bool(response.json().get("idle"))


def _load(ctx: SoakContext) -> None:
    t_load = time.monotonic()
    stop = threading.Event()
    errors: list[BaseException] = []

    def guarded(target: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                target()
            except BaseException as error:  # reported by the main thread
                errors.append(error)
                stop.set()

        return run

    def place_all() -> None:
        for call in sorted((c for c in ctx.plan.calls if not c.kind.startswith("last_")),
                           key=lambda c: c.at):  # fmt: skip
            if stop.wait(max(0.0, t_load + call.at - time.monotonic())):
                return
            ctx.place(call)

    def fault_all() -> None:
        for fault in ctx.plan.faults:
            if stop.wait(max(0.0, t_load + fault.at - time.monotonic())):
                return
            if fault.kind == "pause":
                ctx.faults.pause(fault.target, fault.duration)
            elif fault.kind == "kill_ingest":
                ctx.faults.pause(fault.target, fault.options["pause"], at=fault.duration,
                                 during=lambda: _kill(ctx, list(ctx.placed.values())))  # fmt: skip
            else:
                ctx.faults.sandbox_fault(fault.kind, fault.target, **fault.options)

    def schedule() -> None:
        while ctx.reconcile_interval > 0 and not stop.wait(ctx.reconcile_interval):
            ctx.reconcile("scheduled, during the load")

    threads = [threading.Thread(target=guarded(f), daemon=True, name=f"soak-{f.__name__}")
               for f in (place_all, fault_all, schedule)]  # fmt: skip
    for thread in threads:
        thread.start()
    for thread in threads[:2]:
        thread.join()
    stop.set()
    threads[2].join()
    if errors:
        raise errors[0]


def _kill(ctx: SoakContext, call_ids: list[str]) -> str:
    ctx.last_kill = ctx.faults.now()
    record = ctx.faults.kill_ingest_worker(lambda: _claims(ctx, call_ids))
    return record.detail.split(";")[0]


def _claims(ctx: SoakContext, call_ids: list[str]) -> int:
    try:
        return claimed_count(ctx.db, call_ids)
    except Exception:  # Firestore slow: the kill must not wait for the count
        return -1


def _last_attempts(ctx: SoakContext) -> None:
    before = ctx.faults.sandbox_options()
    try:
        killed = ctx.plan.of_kind("last_killed")
        if killed:
            ctx.faults.sandbox_options(webhook_max_retries=0)

            def place_then_kill() -> str:
                ids = [ctx.place(call) for call in killed]
                time.sleep(1.5)  # the attempts reach ingest, its claim creates wait on Firestore
                ctx.last_kill = ctx.faults.now()
                ctx.faults.kill_ingest_worker()
                return (f"{len(ids)} calls' only attempt sent into it; ingest worker killed "
                        "while their claim creates waited on Firestore")  # fmt: skip

            ctx.faults.pause("firestore", 4.0, during=place_then_kill)
            ctx.sender_idle(30)
        timed_out = ctx.plan.of_kind("last_timeout")
        if timed_out:
            ctx.faults.sandbox_options(webhook_max_retries=0, webhook_timeout=2.0)
            ctx.faults.pause("pubsub", 5.0, during=lambda: (
                f"{len([ctx.place(c) for c in timed_out])} calls' only attempt sent into it; "
                "the sender gives up after 2 s"))  # fmt: skip
            ctx.sender_idle(30)
    finally:
        ctx.faults.sandbox_options(
            webhook_max_retries=before["webhook_max_retries"],
            webhook_timeout=before["webhook_timeout"],
        )


def _settle(ctx: SoakContext, deadline: float) -> None:
    call_ids = list(ctx.placed.values())
    collection = ctx.endpoints.get("CALLS_COLLECTION", "ttma_calls")
    last_change, last_seen = time.monotonic(), None
    while time.monotonic() < deadline:
        ctx.tap.drain()
        records = index_records(ctx.db, collection, call_ids)
        settled = sum(is_settled(records.get(cid)) for cid in call_ids)
        seen = (len(records), settled, len(ctx.tap.events))
        if settled == len(call_ids) and set(call_ids) <= ctx.tap.call_ids():
            return
        if seen != last_seen:
            last_seen, last_change = seen, time.monotonic()
        elif time.monotonic() - last_change > ctx.quiet:
            ctx.say(f"nothing changed for {ctx.quiet:.0f} s: {settled}/{len(call_ids)} settled")
            return
        time.sleep(1.0)
    ctx.say("timed out waiting for the calls to settle")


def _recover(ctx: SoakContext, deadline: float) -> None:
    """The runbook's "dead letters are piling up", once the faults are over: the operator's own
    ``ttma-relay replay`` puts the dead letters back on the topic, then the calls settle again.
    A dead letter is held, not lost; the verdict is taken after this, as an operator's would."""
    project = ctx.endpoints["GOOGLE_CLOUD_PROJECT"]
    hold = f"projects/{project}/subscriptions/{ctx.endpoints['DEAD_LETTER_SUBSCRIPTION']}"
    waiting = len(dead_letters(hold))
    if not waiting:
        ctx.recovery.append("no dead letters: nothing to replay")
        return
    ctx.say(f"{waiting} dead letter(s): replaying them with ttma-relay replay ...")
    command = [str(Path(sys.executable).with_name("ttma-relay")), "--env-file",
               str(ctx.state_dir / "endpoints.env"), "replay", "--json"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)  # noqa: S603  the venv's own ttma-relay console script, fixed args
    actions: dict[str, int] = {}
    for line in result.stdout.splitlines():
        action = json.loads(line).get("action", "?")
        actions[action] = actions.get(action, 0) + 1
    done = ", ".join(f"{n} {a}" for a, n in sorted(actions.items())) or "nothing"
    ctx.recovery.append(f"{waiting} dead letter(s) after the faults; `ttma-relay replay`: "
                        f"exit {result.returncode}, {done}")  # fmt: skip
    _settle(ctx, deadline)
    ctx.recovery.append(f"{len(dead_letters(hold))} dead letter(s) left after the replay")


def run_phases(ctx: SoakContext) -> None:
    started = time.monotonic()
    deadline = started + ctx.timeout

    def phase(name: str, since: float) -> float:
        now = time.monotonic()
        ctx.timings[name] = now - since
        ctx.say(f"[{ctx.faults.now():6.1f} s] {name} done in {now - since:.1f} s")
        return now

    ctx.say(f"load: {len(ctx.plan.calls)} calls over {ctx.plan.load_seconds:.0f} s with "
            f"{len(ctx.plan.faults)} faults ...")  # fmt: skip
    _load(ctx)
    mark = phase("load", started)
    left = ctx.faults.pending_sandbox_faults()
    ctx.faults.clear_sandbox_faults()
    unused = sum(f["remaining"] for f in left)
    ctx.faults.note("cleared", "sandbox faults", ctx.faults.now(), f"{unused} uses unconsumed")
    ctx.sender_idle(60)
    _last_attempts(ctx)
    mark = phase("last attempts", mark)
    ctx.reconcile("after the webhooks", tries=5)
    lease_end = ctx.last_kill + LEASE_SECONDS
    grace_end = ctx.last_placed + ctx.grace
    wait = max(lease_end, grace_end) + 2.0 - ctx.faults.now()
    if wait > 0:
        ctx.say(
            f"waiting {wait:.0f} s for the claim lease ({LEASE_SECONDS:.0f} s after the last "
            f"kill) and reconcile's grace ({ctx.grace:.0f} s after the last call) ..."
        )
        time.sleep(wait)
    ctx.reconcile("after the claim lease and the grace", tries=5)
    mark = phase("reconcile", mark)
    _settle(ctx, deadline)
    mark = phase("settle", mark)
    _recover(ctx, deadline)
    phase("recover", mark)
