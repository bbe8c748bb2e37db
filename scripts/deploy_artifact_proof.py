"""Deploy-artifact proof: the zip Terraform deploys, served as Cloud Functions would, end to end.

    .venv/bin/python scripts/deploy_artifact_proof.py          # make deploy-proof; .ci/run runs it
    .venv/bin/python scripts/deploy_artifact_proof.py --list   # only the files the zip would hold

1. Terraform facts, evaluated by Terraform itself (``terraform console`` on a copy of
   ``terraform/*.tf``; offline through ../shared/tools/tf-offline's stub providers) with the
   inputs in ``TERRAFORM_VARS``: the zip's excludes and file mode and, per function, its name,
   entry point, plain environment (names and values) and secret environment names (after the
   resource's own ``version != null`` filter). Nothing of it is typed again here.
2. The zip: archive-walk (a replay of the ``archive_file`` directory walk, doublestar included)
   lists the files with those excludes; they are zipped like the provider zips them (same names
   and order, Deflate, a fixed time, every file ``output_file_mode``): the same contents, not
   the same bytes (the provider's Go deflate differs). It must hold exactly main.py,
   requirements.txt and the runtime packages' .py files.
3. The zip is unpacked into an empty directory, and its requirements.txt installed into a fresh
   Python 3.12 venv (the python312 runtime); nothing of the repository is on that venv's path.
4. The backends, by the local stack's own code (devstack.stack.up without functions): the
   emulators, the vendor sandbox (whose webhook points at the ingest port), the topic and its
   dead-letter topic, the bucket; then the archivers' push subscriptions
   (devstack.stack.provision.push_subscription) and a pull "tap" on the topic.
5. Each function is served from the unpacked directory by the venv's functions-framework
   (``--target <entry point> --source main.py``; the decorators decide the signature type, as on
   Cloud Run) with exactly Terraform's environment, the secrets under Terraform's secret names,
   what the platform adds (PORT, K_SERVICE, K_REVISION, K_CONFIGURATION, FUNCTION_TARGET), the
   emulator hosts, and the overrides in ``LOCAL_OVERRIDES`` (printed), nothing else.
6. The sandbox sends a signed ``call.ended`` webhook to ingest: it must be accepted, published on
   the topic, its delivery recorded, the call's transcript and recording archived (the MP3's
   sha256 equal to the sandbox's) and the call indexed. Then a call whose webhook is never sent:
   reconcile (POST) must answer 200 having published it, and it must be archived too.
7. Everything started is stopped (devstack.stack.down), also on failure or Ctrl-C.

Exit 0 when every check passed; 1 with the failing check (and the function's log tail).
Everything binds 127.0.0.1.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parent.parent
TERRAFORM_DIR = ROOT / "terraform"
ARCHIVE_WALK_SRC = ROOT.parent / "shared" / "tools" / "archive-walk"
STATE_DIR = ROOT / ".devstack" / "deploy-proof"
RUNTIME = "python312"  # terraform/functions.tf build_config.runtime (checked below)
RUNTIME_PACKAGES = ("verify", "handlers", "ttma_relay")
NOT_DEPLOYED = ("ttma_relay/cli/",)  # the operator CLI: no function imports it

# Terraform inputs. Names and values that differ from the code's defaults, so that a function
# reading a setting under another name than Terraform sets would visibly use the wrong topic,
# collection or bucket instead of silently falling back to a default that happens to match.
TERRAFORM_VARS = {
    "project_id": "ttma-relay-proof",
    "region": "europe-west1",
    "name_prefix": "proof",  # topic proof-call-events, bucket <project>-proof-archive
    "calls_collection": "proof_calls",
    "deliveries_collection": "proof_deliveries",
    "reconcile_grace_seconds": "0",  # the call reconcile must find ended a moment ago
}
# The only values that cannot be the deployed ones here (name -> why); set only on the functions
# whose Terraform env has the name.
LOCAL_OVERRIDES = {"TTMA_API_BASE_URL": "the vendor API is the local sandbox, over http"}
# Names the platform sets itself; a Terraform env var of one of these names is rejected by Cloud
# Run, so the proof refuses it too.
PLATFORM_NAMES = ("PORT", "K_SERVICE", "K_REVISION", "K_CONFIGURATION")
EMULATOR_HOSTS = ("FIRESTORE_EMULATOR_HOST", "PUBSUB_EMULATOR_HOST", "STORAGE_EMULATOR_HOST")
ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # a fixed time (the provider writes Go's zero time)
SETTLE_SECONDS = 90.0

# One console expression (devstack.terraform_eval wraps it in jsonencode and base64).
FACTS_EXPRESSION = """{
  source_dir       = local.source_dir,
  source_excludes  = local.source_excludes,
  source_file_mode = local.source_file_mode,
  resources = {
    project               = var.project_id,
    topic                 = local.call_events_topic,
    bucket                = local.archive_bucket,
    firestore_database    = local.firestore_database,
    calls_collection      = var.calls_collection,
    deliveries_collection = var.deliveries_collection,
  },
  functions = { for k, f in local.functions : k => {
    name             = f.name,
    entry_point      = local.entry_points[k],
    env              = f.env,
    secret_env_names = sort(keys({ for n, r in f.secret_env : n => r if r.version != null })),
  } },
}"""


class ProofError(RuntimeError):
    """A check of the proof failed; the message says which and why."""


def say(message: str) -> None:
    print(f"deploy-proof: {message}", flush=True)


# ---- 1. Terraform facts ------------------------------------------------------------------------


@dataclass(frozen=True)
class FunctionFacts:
    key: str
    name: str
    entry_point: str
    env: dict[str, str]
    secret_env_names: tuple[str, ...]


@dataclass(frozen=True)
class Resources:
    """What Terraform creates and names (provisioned here, and where the checks look), as
    opposed to what it tells each function (``FunctionFacts.env``): drift between the two is
    what a function gets wrong."""

    project: str
    topic: str
    bucket: str
    firestore_database: str
    calls_collection: str
    deliveries_collection: str


@dataclass(frozen=True)
class TerraformFacts:
    source_dir: Path
    excludes: tuple[str, ...]
    file_mode: str
    functions: dict[str, FunctionFacts]
    resources: Resources


def _run(command: Sequence[str], what: str, **options: Any) -> str:
    result = subprocess.run(command, capture_output=True, text=True, check=False, **options)  # noqa: S603  argv built in this script from fixed tool paths
    if result.returncode != 0:
        raise ProofError(f"{what} failed ({result.returncode}):\n{result.stderr or result.stdout}")
    return result.stdout


def terraform_facts(
    variables: Mapping[str, str] = TERRAFORM_VARS, *, source_dir: Path = ROOT
) -> TerraformFacts:
    """Evaluate the module's locals with ``terraform console`` (no state, no cloud)."""
    from devstack.terraform_eval import TerraformEvalError, evaluate

    inputs = {**variables, "function_source_dir": str(source_dir)}
    try:
        raw = evaluate(FACTS_EXPRESSION, inputs, module_dir=TERRAFORM_DIR)
    except TerraformEvalError as error:
        raise ProofError(str(error)) from None
    functions = {
        key: FunctionFacts(
            key, f["name"], f["entry_point"], dict(f["env"]), tuple(f["secret_env_names"])
        )
        for key, f in raw["functions"].items()
    }
    return TerraformFacts(
        Path(raw["source_dir"]),
        tuple(raw["source_excludes"]),
        raw["source_file_mode"],
        functions,
        Resources(**raw["resources"]),
    )


def check_runtime() -> None:
    text = (TERRAFORM_DIR / "functions.tf").read_text()
    if not re.search(rf'^\s*runtime\s*=\s*"{RUNTIME}"', text, re.MULTILINE):
        raise ProofError(f"terraform/functions.tf no longer deploys {RUNTIME}: update this proof")


# ---- 2. The zip --------------------------------------------------------------------------------


def archive_walk_binary(*, build: bool = True) -> Path:
    """archive-walk, built once per version of its source under ~/.cache/ttma-relay."""
    digest = hashlib.sha256()
    for name in ("main.go", "build.sh"):
        digest.update((ARCHIVE_WALK_SRC / name).read_bytes())
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ttma-relay"
    binary = cache / f"archive-walk-{digest.hexdigest()[:12]}"
    if binary.exists() or not build:
        return binary
    cache.mkdir(parents=True, exist_ok=True)
    _run(["bash", str(ARCHIVE_WALK_SRC / "build.sh"), str(binary)], "building archive-walk")
    return binary


def archive_walk(
    source_dir: Path, excludes: Sequence[str], binary: Path | None = None
) -> list[str]:
    """The files ``archive_file`` would zip, in its walk order (relative, slash-separated)."""
    binary = binary or archive_walk_binary()
    result = subprocess.run(  # noqa: S603  the archive-walk binary this script builds
        [str(binary), str(source_dir), *excludes], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise ProofError(f"archive-walk: {result.stderr.strip()} (excludes {list(excludes)})")
    return result.stdout.splitlines()


def expected_files(source_dir: Path = ROOT) -> set[str]:
    """main.py, requirements.txt and every .py file of the runtime packages but the CLI."""
    files = {"main.py", "requirements.txt"}
    for package in RUNTIME_PACKAGES:
        for path in (source_dir / package).rglob("*.py"):
            relative = path.relative_to(source_dir)
            if any(part == "__pycache__" or part.startswith(".") for part in relative.parts):
                continue
            if not relative.as_posix().startswith(NOT_DEPLOYED):
                files.add(relative.as_posix())
    return files


def check_files(files: Sequence[str], source_dir: Path = ROOT) -> None:
    expected = expected_files(source_dir)
    extra, missing = sorted(set(files) - expected), sorted(expected - set(files))
    symlinks = [f for f in files if (source_dir / f).is_symlink()]
    problems = []
    if extra:
        problems.append(f"would also deploy {extra} (exclude them in terraform/functions.tf)")
    if missing:
        problems.append(f"would not deploy {missing}")
    if symlinks:
        problems.append(f"symlinks {symlinks}: archive_file follows them, archive-walk does not")
    if problems:
        raise ProofError("the function zip " + "; ".join(problems))


def build_zip(source_dir: Path, files: Sequence[str], file_mode: str, out: Path) -> None:
    """The zip as the provider builds it: walk order, Deflate, a fixed time, one file mode."""
    mode = int(file_mode, 8)
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w") as archive:
        for name in files:
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # Unix: the mode bits below are honoured on extraction
            info.external_attr = (0o100000 | mode) << 16
            archive.writestr(info, (source_dir / name).read_bytes())


def unpack(zip_path: Path, target: Path) -> None:
    if target.exists() and any(target.iterdir()):
        raise ProofError(f"{target} is not empty")
    with zipfile.ZipFile(zip_path) as archive:
        archive.extractall(target)


# ---- 3. The python312 venv ---------------------------------------------------------------------


T = TypeVar("T")


class RuntimeVenv:
    """A fresh Python 3.12 venv with the zip's requirements.txt, built on a thread while the
    emulators start; ``stop()`` kills a pip still running (failure, Ctrl-C)."""

    def __init__(self, source: Path, venv: Path, log: Path) -> None:
        self.source, self.venv, self.log = source, venv, log
        self.seconds = 0.0
        self._process: subprocess.Popen[bytes] | None = None
        self._stopped = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._build, daemon=True)
        self._thread.start()

    def _build(self) -> None:
        started = time.monotonic()
        try:
            _run([python312(), "-m", "venv", str(self.venv)], "python3.12 -m venv")
            pip = [str(self.venv / "bin" / "pip"), "install", "--disable-pip-version-check",
                   "--no-input", "-r", "requirements.txt"]  # fmt: skip
            with self.log.open("w") as out:
                if self._stopped.is_set():
                    return
                self._process = subprocess.Popen(  # noqa: S603  the proof venv's own pip on requirements.txt
                    pip, cwd=self.source, stdout=out, stderr=subprocess.STDOUT
                )
                code = self._process.wait()
            if code != 0:
                raise ProofError(f"pip install -r requirements.txt (the zip's) failed: {self.log}")
            if not (self.venv / "bin" / "functions-framework").exists():
                raise ProofError("the zip's requirements.txt does not install functions-framework")
            self.seconds = time.monotonic() - started
        except BaseException as error:  # re-raised by wait()
            self._error = error

    def wait(self) -> Path:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self.venv

    def stop(self) -> None:
        self._stopped.set()
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
        self._thread.join(30)


def python312() -> str:
    """A Python 3.12 interpreter: $TTMA_PYTHON312, pyenv's 3.12.x, or python3.12 on PATH."""
    pyenv = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    candidates = [
        os.environ.get("TTMA_PYTHON312", ""),
        *(str(p) for p in sorted(pyenv.glob("3.12.*/bin/python3.12"), reverse=True)),
        shutil.which("python3.12") or "",
    ]
    for candidate in filter(None, candidates):
        probe = subprocess.run(  # noqa: S603  a python3.12 candidate, probed with a fixed -c
            [candidate, "-c", "import sys; print(sys.version_info[:2] == (3, 12))"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if probe.stdout.strip() == "True":
            return candidate
    raise ProofError(f"no Python 3.12 (the {RUNTIME} runtime) found: set TTMA_PYTHON312")


# ---- 4.-5. Backends and functions --------------------------------------------------------------


def proof_config_class() -> type:
    from devstack.stack.config import StackConfig

    @dataclass(frozen=True)
    class ProofConfig(StackConfig):
        """The local stack's config with Terraform's bucket name (StackConfig derives its own)."""

        archive_bucket: str = ""

        @property
        def bucket(self) -> str:
            return self.archive_bucket

    return ProofConfig


def function_environment(
    facts: FunctionFacts,
    *,
    port: int,
    venv: Path,
    secret_values: Mapping[str, str],
    emulators: Mapping[str, str],
    overrides: Mapping[str, str],
) -> dict[str, str]:
    """Terraform's env + secrets + what the platform adds + emulator hosts + overrides."""
    from devstack.functions import function_env

    reserved = sorted(
        (set(facts.env) | set(facts.secret_env_names)) & {*PLATFORM_NAMES, *EMULATOR_HOSTS}
    )
    if reserved:
        raise ProofError(f"{facts.key}: Terraform sets reserved variables {reserved}")
    env = {
        "PATH": f"{venv / 'bin'}:/usr/local/bin:/usr/bin:/bin",
        "HOME": os.environ.get("HOME", "/tmp"),  # noqa: S108 - only a fallback
        "LANG": "C.UTF-8",
        **facts.env,
        # A secret the proof has no test value for still gets one (48 random characters): the
        # function then fails, as deployed, only if the code reads it under another name.
        **{n: secret_values.get(n) or secrets.token_urlsafe(36) for n in facts.secret_env_names},
        "PORT": str(port),
        "K_SERVICE": facts.name,
        "K_REVISION": f"{facts.name}-00001-prf",
        "K_CONFIGURATION": facts.name,
        **{name: emulators[name] for name in EMULATOR_HOSTS},
        **{name: value for name, value in overrides.items() if name in facts.env},
    }
    return function_env(env, facts.entry_point)  # + FUNCTION_TARGET, PYTHONUNBUFFERED


def create_subscriptions(config: Any, tap: str) -> None:
    """The archivers' push subscriptions (as the local stack makes them) and a pull tap."""
    from google.cloud import pubsub_v1

    from devstack.stack.config import FUNCTIONS, SUBSCRIBERS
    from devstack.stack.provision import push_subscription

    subscriber = pubsub_v1.SubscriberClient()
    try:
        full = replace(config, functions=FUNCTIONS)  # push endpoints: the functions' ports
        for function in SUBSCRIBERS:
            subscriber.create_subscription(request=push_subscription(full, function))
        subscriber.create_subscription(
            request={"name": tap, "topic": f"projects/{config.project}/topics/{config.topic}"}
        )
    finally:
        subscriber.close()


# ---- 6. The end-to-end checks ------------------------------------------------------------------


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = SETTLE_SECONDS) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise ProofError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.25)


def pull_published(tap: str, call_id: str) -> dict[str, str]:
    """The attributes of the tap's message for ``call_id`` (acked), waiting for it."""
    from google.api_core import exceptions as gexc
    from google.cloud import pubsub_v1

    subscriber = pubsub_v1.SubscriberClient()
    try:

        def probe() -> dict[str, str] | None:
            try:
                response = subscriber.pull(
                    request={"subscription": tap, "max_messages": 10}, timeout=2.0, retry=None
                )
            except gexc.DeadlineExceeded:
                return None
            found = None
            for received in response.received_messages:
                attributes = dict(received.message.attributes)
                if attributes.get("callId") == call_id:
                    found = attributes
            if response.received_messages:
                ack_ids = [m.ack_id for m in response.received_messages]
                subscriber.acknowledge(request={"subscription": tap, "ack_ids": ack_ids})
            return found

        return wait_for(f"the call event of {call_id} on the topic", probe)
    finally:
        subscriber.close()


def check_archived(resources: Resources, call_id: str, sandbox: Any) -> dict[str, Any]:
    """The call's index record settled as archived/archived, and its four objects in the bucket."""
    from google.cloud import firestore, storage

    from ttma_relay.contract.call_keys import call_key

    db = firestore.Client(project=resources.project, database=resources.firestore_database)
    document = db.collection(resources.calls_collection).document(call_key(call_id))

    def settled() -> dict[str, Any] | None:
        snapshot = document.get()
        record = snapshot.to_dict() if snapshot.exists else None
        if record and record.get("transcriptStatus") == record.get("recordingStatus") == (
            "archived"
        ):
            return record
        return None

    record = wait_for(
        f"{call_id} to be archived and indexed in {resources.calls_collection}", settled
    )
    bucket_uri = f"gs://{resources.bucket}/"
    prefix = str(record.get("archivePrefix") or "")
    if not prefix.startswith(bucket_uri):
        raise ProofError(f"archivePrefix {prefix!r} is not in {bucket_uri}")
    bucket = storage.Client(project=resources.project).bucket(resources.bucket)
    listed = bucket.list_blobs(prefix=prefix[len(bucket_uri) :])
    blobs = {blob.name.rsplit("/", 1)[-1]: blob for blob in listed}
    wanted = {"call.json", "transcript.txt", "transcript.json", "recording.mp3"}
    if not wanted <= set(blobs):
        raise ProofError(f"{prefix} holds {sorted(blobs)}, not all of {sorted(wanted)}")
    digest = sandbox.get(f"/_sandbox/calls/{call_id}/recording-digest").json()
    data = blobs["recording.mp3"].download_as_bytes()
    if (len(data), hashlib.sha256(data).hexdigest()) != (digest["size"], digest["sha256"]):
        raise ProofError("recording.mp3 differs from the vendor's recording")
    return record


def drive(resources: Resources, urls: Mapping[str, str], sandbox_url: str, tap: str) -> None:
    """A signed webhook through ingest to the archive; then reconcile finds a lost call."""
    import httpx
    from google.cloud import firestore

    from ttma_relay.adapters.deliveries import delivery_document_id

    with httpx.Client(base_url=sandbox_url, timeout=30) as sandbox:
        call = sandbox.post("/_sandbox/calls", json={"deliver": True}).json()["data"][0]
        say(f"the sandbox sent the signed webhook of {call['id']} to ingest")
        log = sandbox.get("/_sandbox/deliveries", params={"wait": 30}).json()["data"]
        delivery = next(d for d in log if d["call_id"] == call["id"])
        statuses = [a.get("status") for a in delivery["attempts"]]
        if delivery["outcome"] != "delivered" or not statuses or statuses[0] not in range(200, 300):
            raise ProofError(f"ingest answered the webhook {statuses} ({delivery['outcome']})")
        attributes = pull_published(tap, call["id"])
        if attributes.get("deliveryId") != delivery["delivery_id"]:
            raise ProofError(f"published {attributes}, not delivery {delivery['delivery_id']}")
        db = firestore.Client(project=resources.project, database=resources.firestore_database)
        claim = db.collection(resources.deliveries_collection).document(
            delivery_document_id(delivery["delivery_id"])
        )
        if not claim.get().exists:
            raise ProofError(f"no delivery record in {resources.deliveries_collection}")
        say(f"ingest answered {statuses[0]}, published it on {resources.topic}, recorded the "
            f"delivery in {resources.deliveries_collection}")  # fmt: skip
        check_archived(resources, call["id"], sandbox)
        say(
            f"archived call.json, transcript.txt/.json, recording.mp3 (sha256 = the vendor's) "
            f"in {resources.bucket}; indexed in {resources.calls_collection}"
        )

        lost = sandbox.post("/_sandbox/calls", json={"deliver": False}).json()["data"][0]
        response = httpx.post(urls["reconcile"], timeout=120)
        if response.status_code != 200:
            raise ProofError(f"reconcile answered {response.status_code}: {response.text[:300]}")
        report = response.json()
        if report.get("published") != 1 or report.get("failed") != 0:
            raise ProofError(f"reconcile published {report}, expected exactly the lost call")
        check_archived(resources, lost["id"], sandbox)
        say(f"reconcile answered 200 {json.dumps(report)}; the call it found was archived too")


# ---- main --------------------------------------------------------------------------------------


@contextlib.contextmanager
def stopping_on_signals() -> Iterator[None]:
    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def prove(keep: bool) -> None:
    started = time.monotonic()
    check_runtime()
    facts = terraform_facts()
    say(f"Terraform ({', '.join(f'{k}={v}' for k, v in TERRAFORM_VARS.items())}): "
        f"{len(facts.functions)} functions, {len(facts.excludes)} excludes, "
        f"file mode {facts.file_mode}  [{time.monotonic() - started:.1f}s]")  # fmt: skip
    if facts.source_dir != ROOT:
        raise ProofError(f"Terraform archives {facts.source_dir}, not {ROOT}")
    files = archive_walk(ROOT, facts.excludes)
    check_files(files)
    if not (STATE_DIR / "stack.json").exists():  # no proof running from here: fresh logs
        shutil.rmtree(STATE_DIR / "logs", ignore_errors=True)
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    zip_path = STATE_DIR / "function-source.zip"
    build_zip(ROOT, files, facts.file_mode, zip_path)
    work = Path(tempfile.mkdtemp(prefix="ttma-deploy-proof-"))
    source = work / "source"
    source.mkdir()
    unpack(zip_path, source)
    say(f"zip: {len(files)} files ({zip_path.stat().st_size} bytes) unpacked into {source}")
    runtime = RuntimeVenv(source, work / "venv", STATE_DIR / "pip.log")

    from devstack.emulators import HOST
    from devstack.stack import down, up
    from devstack.stack.config import resolve_ports
    from devstack.stack.health import HealthCheck, wait_healthy
    from devstack.stack.processes import spawn
    from devstack.stack.services import emulator_env

    resources = facts.resources
    config = proof_config_class()(
        ports=resolve_ports(free_ports=True),
        state_dir=STATE_DIR,
        project=resources.project,
        topic=resources.topic,
        calls_collection=resources.calls_collection,
        archive_bucket=resources.bucket,
        functions=(),  # served below, from the zip
    )
    try:
        stack = up(config)
        say(f"emulators, sandbox, topic {config.topic}, bucket {config.bucket} up "
            f"[{time.monotonic() - started:.1f}s]")  # fmt: skip
        tap = f"projects/{config.project}/subscriptions/{config.topic}-deploy-proof-tap"
        os.environ.update(emulator_env(config))
        create_subscriptions(config, tap)
        runtime.wait()
        say(f"python312 venv with the zip's requirements.txt in {runtime.seconds:.1f}s")
        emulators = emulator_env(config)
        secret_values = {
            "TTMA_WEBHOOK_SECRET": stack.endpoints["TTMA_WEBHOOK_SECRET"],
            "TTMA_WEBHOOK_SECRET_PREVIOUS": "previous_" + secrets.token_hex(24),
            "TTMA_API_KEY": stack.endpoints["SANDBOX_API_KEY"],
            "TTMA_PHONE_HASH_KEY": stack.endpoints["TTMA_PHONE_HASH_KEY"],
        }
        overrides = {"TTMA_API_BASE_URL": config.url("sandbox")}
        if set(overrides) != set(LOCAL_OVERRIDES):  # a check that must survive python -O
            raise ProofError(f"local overrides {sorted(overrides)} != {sorted(LOCAL_OVERRIDES)}")
        envs, checks, urls = {}, [], {}
        for key, function in facts.functions.items():
            port = config.ports[key]
            envs[key] = function_environment(
                function, port=port, venv=work / "venv", secret_values=secret_values,
                emulators=emulators, overrides=overrides,
            )  # fmt: skip
            command = [
                str(work / "venv" / "bin" / "functions-framework"),
                f"--target={function.entry_point}",
                "--source=main.py",
                f"--host={HOST}",
            ]
            log = config.log_dir / f"fn-{key}.log"
            process = spawn(stack.state, key, command, port=port, log_path=log, env=envs[key],
                            cwd=source)  # fmt: skip
            stack.state.ports[key] = port
            urls[key] = config.url(key)
            checks.append(HealthCheck(key, urls[key], process, str(log), any_status=True))
        stack.state.save()
        say("environment = Terraform's, plus secrets under its names, plus PORT K_SERVICE "
            "K_REVISION K_CONFIGURATION FUNCTION_TARGET PYTHONUNBUFFERED PATH HOME LANG and the "
            "emulator hosts; overridden: " + ", ".join(
                f"{name}={value} ({LOCAL_OVERRIDES[name]})" for name, value in overrides.items()
            ))  # fmt: skip
        for key, function in facts.functions.items():
            plain = " ".join(f"{n}={v}" for n, v in sorted(function.env.items()))
            say(f"  {key} ({function.name}, --target={function.entry_point}): {plain}; "
                f"secrets {' '.join(function.secret_env_names)}")  # fmt: skip
        wait_healthy(checks, 60.0)
        say(f"4 functions serving from the zip [{time.monotonic() - started:.1f}s]")
        drive(resources, urls, config.url("sandbox"), tap)
    except BaseException:
        for log in sorted(config.log_dir.glob("fn-*.log")):
            tail = log.read_text(errors="replace")[-1500:]
            print(f"--- {log} (tail)\n{tail}", file=sys.stderr)
        raise
    finally:
        code = down(STATE_DIR, out=False)
        runtime.stop()  # never leave pip running into a deleted directory
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    if code != 0:
        raise ProofError("something it started could not be stopped (see above)")
    say(f"passed in {time.monotonic() - started:.0f}s")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="deploy_artifact_proof.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--list", action="store_true", help="print the zip's files and exit")
    parser.add_argument("--keep", action="store_true", help="keep the unpacked source and venv")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    try:
        if args.list:
            facts = terraform_facts()
            files = archive_walk(facts.source_dir, facts.excludes)
            print("\n".join(files))
            check_files(files)
            return 0
        with stopping_on_signals():
            prove(args.keep)
    except ProofError as error:
        print(f"deploy-proof: FAILED: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("deploy-proof: interrupted; everything started was stopped", file=sys.stderr)
        return 130
    except Exception as error:  # an emulator, the sandbox, a function that would not start
        print(f"deploy-proof: FAILED: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
