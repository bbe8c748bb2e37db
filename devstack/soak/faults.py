"""How ``make soak`` injects its faults, and the record of each one (what, when, how long).

- **Pause** an emulator: SIGSTOP on its whole process group (from ``stack.json``: the gcloud
  wrapper and its Java process, or fake-gcs-server), SIGCONT after the chosen seconds. Clients
  connect (the kernel still accepts) but get no answer: a hung backend, not a refused one.
  Every paused group is remembered and resumed by ``resume_all``, which the soak runs on every
  way out (failure, Ctrl-C), before the stack is stopped.
- **Kill the ingest worker**: functions-framework runs gunicorn, one master (the group leader,
  which holds the listening socket) and one worker process. The worker is SIGKILLed; gunicorn's
  master notices and forks a new worker at once (measured: a new pid within ~0.3 s, answering
  within ~1 s), so the stack needs no restart. Requests the dead worker held are lost with their
  connections (the sender sees a connection error); the ones waiting in the listen backlog
  are served by the new worker.
- **Vendor API faults** and **cut downloads**: the sandbox's fault injection
  (``POST /_sandbox/faults``): the next N matching requests answer 503 / 429, or recording
  downloads stop after K bytes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from devstack.stack.health import FUNCTION_PROBE_METHOD, answers
from devstack.stack.processes import StackState, group_members, still_ours


@dataclass
class FaultRecord:
    kind: str
    target: str
    started: float  # seconds since the soak's start
    seconds: float  # how long it lasted (0 for one-shot faults)
    detail: str = ""


class SoakFaults:
    """Injects faults into one stack and records them; thread-safe."""

    def __init__(self, state_dir: Path, sandbox: httpx.Client, ingest_url: str, t0: float) -> None:
        state = StackState.load(state_dir)
        if state is None:
            raise RuntimeError(f"no stack.json in {state_dir}")
        self.groups = {r.name: r.pgid for r in state.processes if still_ours(r)}
        self.sandbox = sandbox
        self.ingest_url = ingest_url
        self.t0 = t0
        self.records: list[FaultRecord] = []
        self._paused: set[int] = set()
        self._lock = threading.Lock()

    def now(self) -> float:
        return time.monotonic() - self.t0

    def _record(self, record: FaultRecord) -> FaultRecord:
        with self._lock:
            self.records.append(record)
        return record

    # ------------------------------------------------------------ pauses
    def _signal(self, name: str, signum: int) -> None:
        pgid = self.groups[name]
        with self._lock:
            if signum == signal.SIGSTOP:
                self._paused.add(pgid)
            else:
                self._paused.discard(pgid)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signum)

    def pause(self, name: str, seconds: float, *, during: Callable[[], str] | None = None,
              at: float | None = None) -> FaultRecord:  # fmt: skip
        """SIGSTOP ``name``'s group for ``seconds``; ``during`` runs ``at`` s into the pause."""
        started = self.now()
        self._signal(name, signal.SIGSTOP)
        detail = ""
        try:
            if during is not None:
                time.sleep(max(0.0, at or 0.0))
                detail = during()
            time.sleep(max(0.0, started + seconds - self.now()))
        finally:
            self._signal(name, signal.SIGCONT)
        return self._record(FaultRecord("pause", name, started, self.now() - started, detail))

    def resume_all(self) -> None:
        """SIGCONT every group this soak stopped (always safe: also for running groups)."""
        with self._lock:
            paused, self._paused = set(self._paused), set()
        for pgid in paused:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGCONT)

    # ----------------------------------------------------- ingest worker
    def ingest_workers(self) -> list[int]:
        leader = self.groups["ingest"]
        return [pid for pid in group_members(leader) if pid != leader]

    def kill_ingest_worker(self, claims_held: Callable[[], int] | None = None) -> FaultRecord:
        """SIGKILL ingest's gunicorn worker; wait (≤ 15 s) for the master's new one to answer."""
        started = self.now()
        held = claims_held() if claims_held is not None else -1
        workers = self.ingest_workers()
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        respawned: list[int] = []
        deadline = time.monotonic() + 15.0
        while time.monotonic() < deadline:
            respawned = [pid for pid in self.ingest_workers() if pid not in workers]
            probe = FUNCTION_PROBE_METHOD
            if respawned and answers(self.ingest_url, any_status=True, method=probe):
                break
            time.sleep(0.1)
        took = self.now() - started
        outcome = (
            f"new worker pid {respawned[0]} answering after {took:.1f} s (gunicorn's master "
            "respawned it)"
            if respawned
            else "NO new worker within 15 s"
        )
        claims = f"{held} unpublished claims in Firestore at the kill; " if held >= 0 else ""
        return self._record(FaultRecord(
            "kill", "ingest worker", started, took,
            f"SIGKILL pid {', '.join(map(str, workers)) or '(none found)'}; {claims}{outcome}",
        ))  # fmt: skip

    # ---------------------------------------------------- sandbox faults
    def sandbox_fault(self, kind: str, match: str, **options: Any) -> FaultRecord:
        response = self.sandbox.post("/_sandbox/faults", json={"match": match, **options})
        response.raise_for_status()
        described = ", ".join(f"{k}={v}" for k, v in options.items() if v is not None)
        return self._record(FaultRecord(kind, match, self.now(), 0.0, described))

    def pending_sandbox_faults(self) -> list[dict[str, Any]]:
        return list(self.sandbox.get("/_sandbox/faults").json()["data"])

    def clear_sandbox_faults(self) -> None:
        self.sandbox.delete("/_sandbox/faults").raise_for_status()

    def sandbox_options(self, **options: Any) -> dict[str, Any]:
        response = self.sandbox.patch("/_sandbox/options", json=options)
        response.raise_for_status()
        return dict(response.json()["data"])

    def note(self, kind: str, target: str, started: float, detail: str) -> None:
        self._record(FaultRecord(kind, target, started, self.now() - started, detail))
