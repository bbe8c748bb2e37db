"""``make dev``'s shutdown helpers: writes to a reader that is gone, the stop signals.

No emulators here; ``tests/e2e/test_stack_e2e.py`` stops a whole foreground stack by a signal with
its output closed.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from devstack.stack import follow as stack_follow
from devstack.stack.follow import follow_until_interrupted
from devstack.stack.output import STOP_SIGNALS, StopSignals, say
from devstack.stack.processes import StackState, group_members, port_is_free, stop_groups
from tests.fixtures.stack import read_until

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_say_to_a_closed_pipe_returns_false_and_later_writes_and_the_exit_do_not_fail(
    tmp_path,
) -> None:
    """``| tee`` died with the Ctrl-C: stdout and stderr are a broken pipe."""
    script = (
        "import sys\n"
        "from devstack.stack.output import say\n"
        "sys.stdin.read()\n"  # the test has closed our stdout's reader once stdin ends
        "first = say('x' * 100, sys.stdout)\n"
        "second = say('y', sys.stdout)\n"
        "print('z' * 10, end='')\n"  # buffered, flushed at exit: into /dev/null, no error
        "open('result', 'w').write(f'{first} {second}')\n"
    )
    read_end, write_end = os.pipe()
    process = subprocess.Popen(  # noqa: S603  sys.executable on the test's own script
        [sys.executable, "-c", script],
        stdin=subprocess.PIPE,
        stdout=write_end,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    os.close(write_end)
    os.close(read_end)
    _, stderr = process.communicate(b"", timeout=30)
    assert process.returncode == 0, stderr
    assert b"BrokenPipeError" not in stderr and b"Exception ignored" not in stderr, stderr
    assert (tmp_path / "result").read_text() == "False True"  # then /dev/null: writes succeed


def test_say_to_a_closed_file_returns_false() -> None:
    stream = io.StringIO()
    stream.close()
    assert say("text", stream) is False
    assert say("text", io.StringIO()) is True


def test_only_the_first_stop_signal_raises_and_only_while_raising() -> None:
    previous = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    stops = StopSignals()
    try:
        stops.install()
        assert not stops.requested()
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGHUP)
        assert stops.received == signal.SIGHUP and stops.requested()
        signal.raise_signal(signal.SIGINT)  # a second Ctrl-C during the cleanup: no raise
        assert stops.received == signal.SIGHUP

        quiet = StopSignals()
        quiet.raising = False  # following the logs: a signal only asks to stop
        quiet.install()
        signal.raise_signal(signal.SIGTERM)
        assert quiet.received == signal.SIGTERM
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class _GoneReader(io.StringIO):
    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def test_the_follower_returns_when_asked_to_stop_or_when_its_reader_is_gone(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = StackState(tmp_path / "stack.json")  # no processes: none can die
    log = tmp_path / "ingest.log"
    log.write_text("")
    asked = iter([False, False, True])
    assert follow_until_interrupted(state, tmp_path, io.StringIO(), stop=lambda: next(asked)) == 0

    poll = stack_follow.LogFollower.poll

    def poll_after_a_line(self: stack_follow.LogFollower, out: io.StringIO) -> None:
        with log.open("a") as handle:  # a function logs after the follower started
            handle.write('{"function": "ingest", "outcome": "accepted"}\n')
        poll(self, out)

    monkeypatch.setattr(stack_follow.LogFollower, "poll", poll_after_a_line)
    stop_asked = []

    def not_yet() -> bool:
        stop_asked.append(True)
        return len(stop_asked) > 20  # a follower that ignored the broken pipe ends up here

    shown = io.StringIO()

    def shown_yet() -> bool:
        return len(shown.getvalue()) > 0

    assert follow_until_interrupted(state, tmp_path, shown, stop=shown_yet) == 0
    assert "accepted" in shown.getvalue()  # the line is shown to a live reader ...
    assert follow_until_interrupted(state, tmp_path, _GoneReader(), stop=not_yet) == 0
    assert len(stop_asked) == 1  # ... and a dead reader ends the follower at its first write


# `python -m devstack.stack dev` with `up` replaced by one that starts a single small server the
# same way (recorded in stack.json, its own process group): main's shutdown path in about a
# second, no emulators. tests/e2e/test_stack_e2e.py does the same on a whole stack.
_FAKE_DEV = """
import sys, time
from devstack.stack import command as stack
from devstack.stack.processes import StackState, port_is_free, spawn
from devstack.stack.services import StackSecrets

def fake_up(config, *, started=None, **options):
    port = config.ports["ingest"]
    state = StackState(config.state_dir / "stack.json", ports={"ingest": port})
    state.save()
    if options.get("on_record"):
        options["on_record"](state)
    server = [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)]
    spawn(state, "ingest", server, port=port, log_path=config.log_dir / "ingest.log")
    while port_is_free(port):
        time.sleep(0.02)
    state.status = "up"
    state.save()
    values = stack.endpoints(config, StackSecrets("dev_secret", "mbn_live_key", "phk_key"))
    return stack.StackUp(config, state, values, 0.1)

stack.up = fake_up
raise SystemExit(stack.main(sys.argv[1:]))
"""


@pytest.mark.parametrize(
    "signum",
    [*STOP_SIGNALS, None],
    ids=lambda signum: signal.Signals(signum).name if signum else "none",
)
def test_dev_with_its_output_gone_stops_what_it_started_on_each_stop_signal(
    tmp_path, signum: int | None
) -> None:
    """With no signal (``make dev | head -3``), the next log line finds the reader gone."""
    state_dir = tmp_path / "devstack"
    read_end, write_end = os.pipe()
    command = [sys.executable, "-c", _FAKE_DEV, "dev", "--state-dir", str(state_dir)]
    dev = subprocess.Popen(  # noqa: S603  sys.executable on the test's own fake dev
        [*command, "--free-ports"],
        stdin=subprocess.DEVNULL,
        stdout=write_end,
        stderr=write_end,
        cwd=REPO_ROOT,
        start_new_session=True,
    )
    os.close(write_end)
    state = None
    try:
        try:
            read_until(read_end, b"Following the functions' logs", timeout=30)
        finally:
            os.close(read_end)  # the reader is gone: `| tee` died with the Ctrl-C
        state = StackState.load(state_dir)
        assert state is not None and state.status == "up"
        (server,) = state.processes
        assert group_members(server.pgid) and not port_is_free(server.port)
        if signum is None:  # the server logs the request: make dev shows it, to nobody
            # ... and may stop the server before it answered (that is the point)
            with contextlib.suppress(OSError):
                urllib.request.urlopen(f"http://127.0.0.1:{server.port}/", timeout=5).close()
        else:
            os.killpg(dev.pid, signum)
        code = dev.wait(timeout=30)
        assert group_members(server.pgid) == [], "the stack's server was left running"
        assert port_is_free(server.port)
        assert code == 0
        assert not (state_dir / "stack.json").exists()
    finally:
        if dev.poll() is None:
            os.killpg(dev.pid, signal.SIGKILL)
            dev.wait()
        if state is not None:
            stop_groups(state.processes, stack_id=state.stack_id)
