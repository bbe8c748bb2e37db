"""``make soak``: N calls through the local stack under faults; was anything lost?

    python -m devstack.soak --calls N [--seed S] [--timeout T] [--use-running [--state-dir D]]

It starts its own stack (free ports, state in ``.devstack/soak``, so a running ``make dev`` is
untouched) unless ``--use-running``, and always stops what it started, resuming every paused
process first (also on failure or Ctrl-C). The sandbox delivers the calls of ``soak_plan`` with
its retry policy and ~30 % duplicate copies while ``soak_run`` injects the faults; reconcile
runs during the load (as a scheduler) and twice after it. The verdict (``soak_report``) comes
from outside only: objects, index, the soak's own subscription on the topic, dead letters.
Exit code 0: nothing lost (no lost call, no missing recording, nothing archived twice);
1: a loss; 2: no stack could be used. docs/local-stack.md ("Soak") has the details.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import httpx

from devstack.demo import dead_letters
from devstack.emulators import EmulatorError
from devstack.functions import ServedFunction, start_function
from devstack.soak.faults import SoakFaults
from devstack.soak.observe import (
    BucketWatch,
    EventTap,
    delivery_records,
    explain,
    index_records,
    vendor_recordings,
)
from devstack.soak.plan import SoakPlan, soak_plan
from devstack.soak.report import PlacedCall, SoakObservations, judge, render
from devstack.soak.run import SoakContext, run_phases
from devstack.stack import StackError, down, read_endpoints, up
from devstack.stack.config import ROOT, StackConfig, StackConfigError, resolve_ports
from devstack.stack.services import EMULATOR_HOST_VARS

SOAK_STATE_DIR = ROOT / ".devstack" / "soak"


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.soak",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--calls", type=int, default=60, help="how many calls (default 60)")
    parser.add_argument("--seed", type=int, default=1, help="plan seed (default 1)")
    parser.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        help="seconds for the whole soak after the stack is up (default 600)",
    )
    parser.add_argument(
        "--quiet",
        type=float,
        default=20.0,
        help="stop settling after this long without progress (default 20)",
    )
    parser.add_argument(
        "--reconcile-interval",
        type=float,
        default=15.0,
        help="reconcile every N s during the load, as a scheduler (0: never)",
    )
    parser.add_argument(
        "--reconcile-grace",
        default="60",
        metavar="SECONDS|stack",
        help="serve the soak's own reconcile with RECONCILE_GRACE_SECONDS=N "
        "(default 60; deployed 900), or 'stack': use the stack's reconcile",
    )
    parser.add_argument(
        "--max-delivery-attempts",
        type=int,
        default=None,
        metavar="N",
        help="the push subscriptions' dead-letter limit on the soak's own stack "
        "(default: the stack's, 60; Pub/Sub's minimum is 5)",
    )
    parser.add_argument(
        "--use-running",
        action="store_true",
        help="use the stack of --state-dir instead of starting one",
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="with --use-running: its state dir (default .devstack); else "
        "where the soak's own stack lives (default .devstack/soak)",
    )
    return parser  # fmt: skip


def serve_reconcile(endpoints: dict[str, str], state_dir: Path, grace: float) -> ServedFunction:
    """The stack's reconcile code and settings, with ``RECONCILE_GRACE_SECONDS`` = ``grace``.

    The stack passes reconcile no grace setting (deployed default 900 s: a soak would wait a
    quarter of an hour), so the soak serves its own instance beside it, on a free port.
    """
    env = {name: endpoints[name] for name in (*EMULATOR_HOST_VARS, "GOOGLE_CLOUD_PROJECT",
                                              "CALL_EVENTS_TOPIC", "TTMA_API_KEY",
                                              "TTMA_API_BASE_URL")}  # fmt: skip
    env["RECONCILE_GRACE_SECONDS"] = str(int(grace))
    return start_function("reconcile", env, state_dir / "logs" / "soak-reconcile.log")


def collect(ctx: SoakContext) -> SoakObservations:
    endpoints = ctx.endpoints
    ctx.tap.drain()
    call_ids = list(ctx.placed.values())
    kinds = {ctx.placed[c.index]: c for c in ctx.plan.calls if c.index in ctx.placed}
    calls = [PlacedCall(cid, kinds[cid].kind, kinds[cid].label) for cid in call_ids]
    records = index_records(ctx.db, endpoints.get("CALLS_COLLECTION", "ttma_calls"), call_ids)
    objects = ctx.watch.listing(timeout=60)
    vendor = vendor_recordings(endpoints["TTMA_API_BASE_URL"], endpoints["TTMA_API_KEY"])
    project = endpoints["GOOGLE_CLOUD_PROJECT"]
    dead = dead_letters(f"projects/{project}/subscriptions/{endpoints['DEAD_LETTER_SUBSCRIPTION']}")
    observations = SoakObservations(
        calls=calls, vendor_recording={cid: vendor.get(cid, False) for cid in call_ids},
        objects=objects, first_generations=dict(ctx.watch.first_generations), index=records,
        events=list(ctx.tap.events.values()), dead_letters=dead,
    )  # fmt: skip
    lost = judge(observations).lost
    if lost:  # explain the losses (diagnosis only; the verdict above does not use this)
        log = ctx.sandbox.get("/_sandbox/deliveries").json()["data"]
        by_call = {d["call_id"]: d for d in log}
        states = delivery_records(ctx.db, lost)
        observations.explanations = {
            cid: f"{kinds[cid].kind}: {explain(by_call.get(cid), states.get(cid, []))}"
            for cid in lost
        }
    return observations


def soak(endpoints: dict[str, str], state_dir: Path, args: argparse.Namespace,
         *, own_stack: bool, plan: SoakPlan | None = None) -> int:  # fmt: skip
    from google.cloud import firestore

    os.environ.update({k: endpoints[k] for k in (*EMULATOR_HOST_VARS, "GOOGLE_CLOUD_PROJECT")})
    plan = plan or soak_plan(args.calls, args.seed)
    project = endpoints["GOOGLE_CLOUD_PROJECT"]
    t0 = time.monotonic()
    sandbox = httpx.Client(base_url=endpoints["SANDBOX_URL"], timeout=30)
    faults = SoakFaults(state_dir, sandbox, endpoints["INGEST_URL"], t0)
    tap = EventTap(project, endpoints["CALL_EVENTS_TOPIC"], f"soak-{uuid.uuid4().hex[:10]}")
    watch = BucketWatch(project, endpoints["ARCHIVE_BUCKET"])
    watch.start()
    ctx = SoakContext(endpoints, plan, faults, sandbox, tap, watch,
                      firestore.Client(project=project), args.reconcile_interval,
                      args.timeout, args.quiet, reconcile_url=endpoints.get("RECONCILE_URL", ""),
                      say=lambda s: print(s, flush=True), state_dir=state_dir)  # fmt: skip
    served = None
    try:
        if args.reconcile_grace != "stack" and ctx.reconcile_url:
            ctx.grace = float(args.reconcile_grace)
            served = serve_reconcile(endpoints, state_dir, ctx.grace)
            ctx.reconcile_url = served.url
            print(f"reconcile: the soak's own, RECONCILE_GRACE_SECONDS={ctx.grace:.0f}, "
                  f"{served.url}", flush=True)  # fmt: skip
        run_phases(ctx)
        faults.resume_all()
        report = judge(collect(ctx))
    finally:
        faults.resume_all()
        if served is not None:
            served.stop()
        watch.stop()
        tap.close(delete=not own_stack)
        if not own_stack:  # leave a running stack as it was
            faults.clear_sandbox_faults()
        sandbox.close()
    ctx.timings["total"] = time.monotonic() - t0
    extra = ["", "reconcile runs:", *(f"  {line}" for line in ctx.reconcile_runs),
             "", "recovery:", *(f"  {line}" for line in ctx.recovery)]  # fmt: skip
    print("\n" + render(report, faults=faults.records, timings=ctx.timings, extra=extra))
    print(f"(seed {plan.seed}, {args.calls} calls; rerun: python -m devstack.soak "
          f"--calls {args.calls} --seed {plan.seed})")  # fmt: skip
    return 0 if report.ok else 1


def main(argv: Sequence[str] | None = None, *, plan: SoakPlan | None = None) -> int:
    """``plan`` replaces the one ``--calls``/``--seed`` give (the tests' small soak)."""
    args = build_parser().parse_args(argv)
    if args.calls < 1:
        print("error: --calls must be at least 1", file=sys.stderr)
        return 2
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    if args.use_running:
        state_dir = (args.state_dir or ROOT / ".devstack").resolve()
        endpoints = read_endpoints(state_dir)
        if not endpoints:
            print(f"error: no running stack in {state_dir} (make dev-up)", file=sys.stderr)
            return 2
        return soak(endpoints, state_dir, args, own_stack=False, plan=plan)
    state_dir = (args.state_dir or SOAK_STATE_DIR).resolve()
    started = time.monotonic()
    try:
        limits = ({} if args.max_delivery_attempts is None
                  else {"max_delivery_attempts": args.max_delivery_attempts})  # fmt: skip
        result = up(StackConfig(ports=resolve_ports(free_ports=True), state_dir=state_dir,
                                **limits))  # fmt: skip
    except (StackError, StackConfigError, EmulatorError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"soak stack up in {time.monotonic() - started:.1f} s ({state_dir}; logs in "
          f"{state_dir / 'logs'})", flush=True)  # fmt: skip
    try:
        return soak(result.endpoints, state_dir, args, own_stack=True, plan=plan)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not skip cleanup
        stopped = time.monotonic()
        code = down(state_dir, out=False)
        print(f"soak stack stopped in {time.monotonic() - stopped:.1f} s"
              + ("" if code == 0 else " (NOT cleanly: see above)"), file=sys.stderr)  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
