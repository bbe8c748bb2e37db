"""The local stack's processes: start each in its own process group, remember it, stop it.

Every process is recorded in ``<state dir>/stack.json`` the moment it is started (before any
health check), so ``down`` can stop a stack whose ``up`` crashed half-way or was killed. Each
runs in a new session (``start_new_session``): its process group holds everything it starts
(the emulators' Java processes too), and ``down`` signals the whole group.

Every process also carries ``TTMA_DEVSTACK_ID=<this stack's id>`` in its environment (the id is
in ``stack.json`` before anything starts), and so does everything it starts. ``down`` finds the
stack's processes by that mark too (Linux), so a process ``up`` started but was killed before
recording is stopped as well.

A recorded group is signalled only while it is still ours: its leader alive with the start time
we recorded, or its leader gone but members left (a live group id cannot be reused). Zombies
count as gone: they hold no port, and whoever adopted them may not reap them at once.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from devstack.emulators import port_is_free, reap_children

STATE_FILE = "stack.json"
STATE_VERSION = 1
STACK_ID_ENV = "TTMA_DEVSTACK_ID"
_PROC = Path("/proc")


@dataclass
class ProcessRecord:
    name: str
    pid: int
    port: int
    log: str
    start_ticks: int | None = None  # /proc/<pid>/stat field 22: tells a reused pid apart

    @property
    def pgid(self) -> int:
        return self.pid  # start_new_session: the process leads its own group


@dataclass
class StackState:
    """What ``up`` started, persisted after every change (``<state dir>/stack.json``)."""

    path: Path
    stack_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    status: str = "starting"  # starting | up
    started_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    processes: list[ProcessRecord] = field(default_factory=list)
    ports: dict[str, int] = field(default_factory=dict)

    @classmethod
    def load(cls, state_dir: Path) -> StackState | None:
        path = state_dir / STATE_FILE
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as error:
            raise RuntimeError(f"{path} is unreadable ({error}); remove it by hand") from None
        return cls(
            path=path,
            stack_id=str(raw.get("stackId", "")),
            status=str(raw.get("status", "starting")),
            started_at=str(raw.get("startedAt", "")),
            processes=[ProcessRecord(**entry) for entry in raw.get("processes", [])],
            ports={str(k): int(v) for k, v in raw.get("ports", {}).items()},
        )

    def save(self) -> None:
        document = {
            "version": STATE_VERSION,
            "stackId": self.stack_id,
            "status": self.status,
            "startedAt": self.started_at,
            "ports": self.ports,
            "processes": [asdict(record) for record in self.processes],
        }
        write_private(self.path, json.dumps(document, indent=2) + "\n")

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def write_private(path: Path, text: str) -> None:
    """Write ``text`` atomically, readable by the owner only (it may hold dev secrets)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
    os.replace(temporary, path)


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of ``/proc/<pid>/stat`` from the state on (index 0 = state), or None."""
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return text[text.rfind(")") + 2 :].split()


def start_ticks(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[19]) if fields and len(fields) > 19 else None


def seconds_since_start(pid: int) -> float:
    """How long ago ``pid`` started (0.0 where ``/proc`` cannot tell)."""
    ticks = start_ticks(pid)
    try:
        uptime = float((_PROC / "uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0.0
    if ticks is None:
        return 0.0
    return max(0.0, uptime - ticks / os.sysconf("SC_CLK_TCK"))


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in process group ``pgid``."""
    if not _PROC.is_dir():  # not Linux: ask the kernel whether the group exists at all
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return []
        return [pgid]
    members = []
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields and len(fields) > 2 and fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def marked_processes(stack_id: str) -> list[int]:
    """Live processes whose environment carries this stack's id (Linux; [] elsewhere)."""
    if not stack_id or not _PROC.is_dir():
        return []
    mark = f"{STACK_ID_ENV}={stack_id}".encode()
    found = []
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:  # gone, or not ours to read
            continue
        fields = _stat_fields(int(entry.name))
        if mark in environ.split(b"\0") and fields and fields[0] != "Z":
            found.append(int(entry.name))
    return found


def process_group(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[2]) if fields and len(fields) > 2 else None


def still_ours(record: ProcessRecord) -> bool:
    """The recorded group is alive and was started by us (not a reused pid)."""
    if not group_members(record.pgid):
        return False
    ticks = start_ticks(record.pid)
    if ticks is None:  # leader gone (or a zombie), members left: the group id is still ours
        return True
    return record.start_ticks is None or ticks == record.start_ticks


def spawn(
    state: StackState,
    name: str,
    command: Sequence[str],
    *,
    port: int,
    log_path: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``command`` in a new session, output to ``log_path``; record it at once."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    marked = {**(os.environ if env is None else env), STACK_ID_ENV: state.stack_id}
    with log_path.open("ab") as log:
        process = subprocess.Popen(  # noqa: S603  argv from devstack.stack.services: the stack's own programs
            list(command),
            cwd=cwd,
            env=marked,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    state.processes.append(
        ProcessRecord(name, process.pid, port, str(log_path), start_ticks(process.pid))
    )
    state.save()
    return process


def stop_groups(
    records: Iterable[ProcessRecord], *, stack_id: str = "", grace: float = 5.0
) -> list[str]:
    """SIGTERM every group still ours (recorded, or marked with ``stack_id``), SIGKILL what is
    left after ``grace`` s. Returns the names of groups still alive at the end (normally none).
    """
    groups = {record.pgid: record for record in records if still_ours(record)}
    for pid in marked_processes(stack_id):
        pgid = process_group(pid)
        if pgid is not None and pgid not in groups and pgid != os.getpgrp():
            groups[pgid] = ProcessRecord(f"unrecorded pid {pid}", pid, 0, "")
    for pgid in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGTERM)
    _wait_gone(groups, grace)
    for pgid in groups:
        if group_members(pgid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)
    _wait_gone(groups, 3.0)
    return [record.name for pgid, record in groups.items() if group_members(pgid)]


def _wait_gone(groups: dict[int, ProcessRecord], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reap_children(groups)
        if not any(group_members(pgid) for pgid in groups):
            return
        time.sleep(0.05)


def wait_ports_free(ports: Mapping[str, int], timeout: float = 10.0) -> dict[str, int]:
    """Wait until every port can be bound on 127.0.0.1; return those that still cannot."""
    deadline = time.monotonic() + timeout
    busy = dict(ports)
    while True:
        busy = {name: port for name, port in busy.items() if not port_is_free(port)}
        if not busy or time.monotonic() >= deadline:
            return busy
        time.sleep(0.1)


def log_tail(path: str | Path, chars: int = 1200) -> str:
    try:
        return Path(path).read_text(errors="replace")[-chars:]
    except OSError:
        return ""


def describe(records: Sequence[ProcessRecord]) -> list[dict[str, Any]]:
    return [{"name": r.name, "pid": r.pid, "port": r.port} for r in records]
