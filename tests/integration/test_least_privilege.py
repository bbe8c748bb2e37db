"""Least privilege, verified: every role each service account holds in the Terraform against
what its code is measured to call.

The grants come from Terraform's own evaluation of the module (``terraform test`` with mock
providers, two deployments: the defaults and every option on; ``tests/support/iam_terraform.py``).
The calls come from the functions' real code run against the emulators, through the real
functions-framework apps and the real client wiring (``handlers.wiring``), recorded on the wire
(``tests/support/google_calls.py``) over every code path that calls Google: the warm-up of
each function; ingest's accept, duplicate, in-flight, take-over and release after a failed
publish; the archivers' archive, already archived, late recording, broken download and poison;
reconcile's publishing, take-over and checkpoint. Identities that run no code (the push and
scheduler identities, the build account, the service agents, ``allUsers``) are used by
Terraform resources, and their needs come from those (a push subscription's
``oidc_token.service_account_email`` must be able to invoke the service it pushes to).

``tests/support/iam.py`` maps calls to permissions and roles to permissions (Google's
documentation) and compares. One module-scoped recording and one Terraform run (in a background
thread, while the recording runs) serve every test here.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import functions_framework
import pytest

from handlers import wiring
from tests.support.archive import envelope_for, push_for
from tests.support.google_calls import GoogleCall, GoogleCallRecorder
from tests.support.iam import Grant, Need, compare
from tests.support.iam_terraform import Deployment, TerraformRun, start_terraform_state
from tests.support.paths import REPO_ROOT
from tests.support.payloads import PHONE_HASH_KEY, SECRET, delivery, encode, signed_headers
from ttma_relay.adapters.deliveries import DeliveryClaims
from ttma_relay.functions import FUNCTIONS, NAMES

pytestmark = pytest.mark.emulator
MAIN = str(REPO_ROOT / "main.py")
MiB = 1024 * 1024
# What each ``kind:thing`` of a function's ``touches`` reaches at Google (vendor: not Google).
TOUCH_APIS = {"firestore": "firestore", "pubsub": "pubsub", "storage": "storage"}
API_OF_RESOURCE = {"firestore_database": "firestore", "topic": "pubsub", "bucket": "storage"}


@dataclass(frozen=True)
class Recording:
    calls: list[GoogleCall]
    env: dict[str, dict[str, str]]  # each function's environment in the runs

    def of(self, function: str) -> list[GoogleCall]:
        return [call for call in self.calls if call.function == function]


def _named(kind: str, env: dict[str, str]) -> str:
    """The emulator resource of ``kind`` that an environment names (what the code should reach)."""
    project = env["GOOGLE_CLOUD_PROJECT"]
    if kind == "firestore_database":
        return f"projects/{project}/databases/{env.get('FIRESTORE_DATABASE', '(default)')}"
    if kind == "topic":
        return f"projects/{project}/topics/{env['CALL_EVENTS_TOPIC']}"
    if kind == "bucket":
        return env["ARCHIVE_BUCKET"]
    return ""


def recorded_needs(deployment: Deployment, recording: Recording) -> list[Need]:
    """Each recorded call as a need of the function's service account in ``deployment``, on
    the resource there that the function's deployed settings name the same way."""
    needs: set[Need] = set()
    for call in recording.calls:
        kind, name = call.resource
        if name and name == _named(kind, recording.env[call.function]):
            resource = deployment.resolve(call.function, kind)
        else:  # a resource its settings do not name: no grant can be meant for it
            resource = ("unnamed", f"{kind} {name}")
        needs.add(
            Need(
                deployment.function_identity(call.function),
                call.operation,
                resource,
                f"{call.function}'s code",
            )
        )
    return sorted(needs, key=lambda n: (n.member, n.operation, n.resource))


# ------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def terraform_run() -> Iterator[TerraformRun]:
    """Started first (in the background): it takes longer than the recording."""
    run = start_terraform_state()
    yield run
    run.close()


@pytest.fixture(scope="module")
def deployments(terraform_run: TerraformRun) -> list[Deployment]:
    return [Deployment(name, resources) for name, resources in terraform_run.states().items()]


def _app(target: str):
    signature = "cloudevent" if target in ("archive_transcript", "archive_recording") else "http"
    return functions_framework.create_app(target=target, source=MAIN, signature_type=signature)


def _post(client, envelope):
    body = encode(envelope)
    return client.post("/", data=body, headers=signed_headers(body, envelope=envelope))


@pytest.fixture(scope="module")
def recording(
    terraform_run, emulators, sandbox_server, firestore_client, publisher_client, storage_client
) -> Iterator[Recording]:
    recorder = GoogleCallRecorder(emulators["STORAGE_EMULATOR_HOST"])
    project = emulators["GOOGLE_CLOUD_PROJECT"]
    unique = uuid.uuid4().hex[:10]
    topic = f"iam-events-{unique}"
    publisher_client.create_topic(name=publisher_client.topic_path(project, topic))
    bucket = storage_client.create_bucket(f"iam-archive-{unique}").name
    envs = {
        "ingest": {
            "GOOGLE_CLOUD_PROJECT": project,
            "TTMA_WEBHOOK_SECRET": SECRET,
            "CALL_EVENTS_TOPIC": topic,
            "DELIVERIES_COLLECTION": f"iam_deliveries_{unique}",
        },
        "archive": {
            "GOOGLE_CLOUD_PROJECT": project,
            "ARCHIVE_BUCKET": bucket,
            "CALLS_COLLECTION": f"iam_calls_{unique}",
            "DELIVERIES_COLLECTION": f"iam_archive_deliveries_{unique}",  # forget's tombstones
            "TTMA_API_KEY": sandbox_server.api_key,
            "TTMA_PHONE_HASH_KEY": PHONE_HASH_KEY,
            "TTMA_API_BASE_URL": sandbox_server.url,
            "RECORDING_WAIT_SECONDS": "600",
        },
        "reconcile": {
            "GOOGLE_CLOUD_PROJECT": project,
            "CALL_EVENTS_TOPIC": topic,
            "DELIVERIES_COLLECTION": f"iam_reconcile_{unique}",
            "TTMA_API_KEY": sandbox_server.api_key,
            "TTMA_API_BASE_URL": sandbox_server.url,
            "RECONCILE_LOOKBACK_HOURS": "2",
            "RECONCILE_GRACE_SECONDS": "30",
        },
    }
    env_of = {
        "ingest": envs["ingest"],
        "archive_transcript": envs["archive"],
        "archive_recording": envs["archive"],
        "reconcile": envs["reconcile"],
    }
    state = sandbox_server.state
    state.reset()
    # Claims whose request "died": expired by the time ingest and reconcile meet them.
    dead_ingest = delivery()
    short = 0.3
    DeliveryClaims(
        firestore_client, envs["ingest"]["DELIVERIES_COLLECTION"], lease_seconds=short
    ).claim(dead_ingest["deliveryId"], dead_ingest["data"]["id"])
    [reconciled, *_] = calls = state.simulate_calls(3, seed=12, spacing_seconds=120)
    DeliveryClaims(
        firestore_client, envs["reconcile"]["DELIVERIES_COLLECTION"], lease_seconds=short
    ).claim(f"webhook-{reconciled['id']}", reconciled["id"])
    dead_since = time.monotonic()

    with pytest.MonkeyPatch.context() as patch, recorder.installed():

        def serve(function: str, env: dict[str, str], *, warm: bool = True):
            # wiring's own switch included: the recording shows what wiring sets, not a leftover
            for name in (
                "TTMA_WEBHOOK_SECRET_PREVIOUS",
                "FIRESTORE_DATABASE",
                wiring.STORAGE_BUCKET_LOOKUP_SWITCH,
            ):
                patch.delenv(name, raising=False)
            for name, value in env.items():
                patch.setenv(name, value)
            wiring.reset()
            recorder.function = function
            if warm:  # what each worker does after the fork (handlers/wiring.py)
                wiring.warm_function(function)
            return _app(function).test_client()

        # --- ingest: accept, duplicate, in flight, take over, release after a failed publish
        client = serve("ingest", envs["ingest"])
        accepted = delivery()
        assert _post(client, accepted).get_json()["status"] == "accepted"
        assert _post(client, accepted).get_json()["status"] == "duplicate"
        live = delivery()
        with recorder.paused():
            DeliveryClaims(firestore_client, envs["ingest"]["DELIVERIES_COLLECTION"]).claim(
                live["deliveryId"], live["data"]["id"]
            )
        assert _post(client, live).status_code == 409
        time.sleep(max(0.0, dead_since + short + 0.05 - time.monotonic()))
        assert _post(client, dead_ingest).get_json()["status"] == "accepted"  # taken over
        released = delivery()
        topic_path = publisher_client.topic_path(project, topic)
        with recorder.paused():
            publisher_client.delete_topic(topic=topic_path)  # the next Publish fails: NotFound
        assert _post(client, released).status_code == 503
        with recorder.paused():
            claims = DeliveryClaims(firestore_client, envs["ingest"]["DELIVERIES_COLLECTION"])
            assert claims.state_of(released["deliveryId"]) is None  # the claim was released
            publisher_client.create_topic(name=topic_path)

        # --- archive_transcript: archive, already archived, poison
        client = serve("archive_transcript", envs["archive"])
        call = state.simulate_call()
        body = push_for(envelope_for(call))
        assert [client.post("/", json=body).status_code for _ in range(2)] == [200, 200]
        poison = body | {"message": {"data": "bm90IGpzb24=", "messageId": "9"}}
        assert client.post("/", json=poison).status_code == 200

        # --- archive_recording: archive, already archived, late, broken download, poison
        client = serve("archive_recording", envs["archive"])
        assert [client.post("/", json=body).status_code for _ in range(2)] == [200, 200]
        late = state.simulate_call(recording="late", late_after_seconds=60)
        assert client.post("/", json=push_for(envelope_for(late))).status_code == 503
        broken = state.simulate_call(recording_bytes=8 * MiB + 4096)  # > one upload chunk
        state.faults.add("GET /_recordings/*", status=None, truncate_after=8 * MiB + 1024, count=10)
        assert client.post("/", json=push_for(envelope_for(broken))).status_code == 503
        state.faults.clear()
        assert client.post("/", json=poison).status_code == 200

        # --- reconcile: publish (one taken over), then again from the checkpoint
        client = serve("reconcile", envs["reconcile"])
        first = client.post("/").get_json()
        assert (first["published"], first["takenOver"]) == (len(calls), 1), first
        again = client.post("/").get_json()
        assert (again["published"], again["alreadyDelivered"]) == (0, len(calls)), again

    wiring.reset()
    state.reset()
    yield Recording(list(recorder.calls), env_of)


# ------------------------------------------------------------------------------ the checks
def test_each_function_calls_exactly_the_google_apis_its_row_touches(recording):
    """ttma_relay/functions.py's ``touches`` against what each function was seen to call."""
    for spec in FUNCTIONS:
        touched = {
            TOUCH_APIS[t.split(":")[0]] for t in spec.touches if t.split(":")[0] in TOUCH_APIS
        }
        called = {
            API_OF_RESOURCE.get(c.resource[0], c.resource[0]) for c in recording.of(spec.name)
        }
        assert called == touched, spec.name


def test_every_role_is_used_and_every_call_is_granted(deployments, recording):
    """For each service account, in both deployments: every permission its recorded calls
    (and the Terraform's own uses of it) need is granted on the resource they reach, and every
    role it holds grants at least one permission so used."""
    assert {d.name for d in deployments} == {"defaults", "all_options"}
    problems: list[str] = []
    for deployment in deployments:
        assert sorted(deployment.functions()) == sorted(NAMES)
        needs = recorded_needs(deployment, recording) + deployment.terraform_needs()
        problems += [f"{deployment.name}: {p}" for p in compare(deployment.grants(), needs)]
    assert problems == []


def test_a_role_removed_or_a_call_added_is_reported(deployments, recording):
    """The comparison on the real grants and calls, each changed once: it fails each time."""
    [deployment] = [d for d in deployments if d.name == "defaults"]
    grants = deployment.grants()
    needs = recorded_needs(deployment, recording) + deployment.terraform_needs()
    assert compare(grants, needs) == []

    creator = next(
        g
        for g in grants
        if g.member == "archive_recording" and g.role == "roles/storage.objectCreator"
    )
    without = [g for g in grants if g != creator]
    assert any(
        p.startswith("archive_recording lacks storage.objects.create on bucket")
        for p in compare(without, needs)
    )

    bucket = deployment.resolve("archive_transcript", "bucket")
    overwrite = Need("archive_transcript", "storage.objects.insert:any", bucket, "a new call")
    assert any(
        p.startswith("archive_transcript lacks storage.objects.delete")
        for p in compare(grants, [*needs, overwrite])
    )

    unused = Grant("ingest", "roles/storage.objectViewer", bucket, "a new grant")
    assert compare([*grants, unused], needs) == [
        f"ingest holds roles/storage.objectViewer on bucket {bucket[1]} (a new grant) and "
        "nothing uses it"
    ]

    no_publish = [n for n in needs if not (n.member == "reconcile" and "Publish" in n.operation)]
    assert any(
        p.startswith("reconcile holds roles/pubsub.publisher") for p in compare(grants, no_publish)
    )
