"""Shared fixtures: the real emulators, unique Pub/Sub names, a function's environment.

The tests are in three folders: ``unit/`` (no emulators, no Java: the handlers' decisions with
in-memory fakes of the project's own ports), ``integration/`` (the real emulators, the sandbox,
Terraform; apps in-process) and ``e2e/`` (served functions, the local stack, the soak). Helpers
are in ``support/``; fixtures in ``fixtures/``, registered below (``pytest_plugins``), so every
fixture a test uses is found here or there, never through an import.

The emulators are started once per session unless the environment already points at running
ones (``.ci/run`` and ``make test`` start them; a bare ``pytest`` starts its own). An emulator
that cannot start fails every test that needs it: nothing is skipped. Under ``CI=true`` any
skipped test fails the run.

Property tests (Hypothesis) run one project-wide profile, ``ttma-relay``, on every machine: the
examples are derived from each test's source (``derandomize``), no example database is read or
written, and there is no deadline (the emulators share the CPU). ``make test`` and CI therefore
draw the same examples (same pinned Hypothesis, same Python), and a failure found once fails
every run until it is fixed. Tests set only ``max_examples``. ``pytest
--hypothesis-profile=explore`` draws fresh random examples and keeps failures in
``.hypothesis/`` for a local bug hunt.
"""

from __future__ import annotations

import io
import json
import os
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

from devstack.emulators import EmulatorError, build_emulators
from tests.support import message_schema
from ttma_relay import logs
from ttma_relay.adapters.publisher import CallEventPublisher

pytest_plugins = [
    "tests.fixtures.pii_scan",  # no secret or PII in any log of the run (first: stack imports it)
    "tests.fixtures.archive",  # storage_client, archive_bucket, calls_collection, archive_env, ...
    "tests.fixtures.sandbox",  # sandbox_server, sandbox, webhook_receiver, ttma_client
    "tests.fixtures.stack",  # dev_stack (a whole local stack per module)
]

HYPOTHESIS_PROFILE = "ttma-relay"
hypothesis_settings.register_profile(
    "explore", hypothesis_settings.get_profile("default"), deadline=None
)
hypothesis_settings.register_profile(
    HYPOTHESIS_PROFILE,
    hypothesis_settings.get_profile("default"),
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],  # a loaded machine is not a failing test
)
hypothesis_settings.load_profile(HYPOTHESIS_PROFILE)  # --hypothesis-profile=... loads later

TEST_PROJECT = "ttma-relay-test"
EMULATOR_VARS = ("FIRESTORE_EMULATOR_HOST", "PUBSUB_EMULATOR_HOST", "STORAGE_EMULATOR_HOST")


@pytest.fixture(scope="session")
def emulators(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    if all(os.environ.get(name) for name in EMULATOR_VARS):
        project = os.environ.get("GOOGLE_CLOUD_PROJECT") or TEST_PROJECT
        os.environ["GOOGLE_CLOUD_PROJECT"] = project
        yield {name: os.environ[name] for name in EMULATOR_VARS} | {"GOOGLE_CLOUD_PROJECT": project}
        return
    try:
        started = build_emulators(TEST_PROJECT)
        started.start(Path(tmp_path_factory.mktemp("emulator-logs")))
    except EmulatorError as error:
        pytest.fail(f"emulators are required and could not start: {error}", pytrace=False)
    saved = {name: os.environ.get(name) for name in (*EMULATOR_VARS, "GOOGLE_CLOUD_PROJECT")}
    os.environ.update(started.env)
    try:
        yield dict(started.env)
    finally:
        started.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture
def function_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., dict[str, str]]]:
    """``function_env(env, unset=(...))``: set a function's environment for an in-process app
    and forget the clients built for the previous one (``wiring.reset``), again after the test."""
    from handlers import wiring

    def apply(env: Mapping[str, str], *, unset: Iterable[str] = ()) -> dict[str, str]:
        for name in unset:
            monkeypatch.delenv(name, raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        wiring.reset()
        return dict(env)

    yield apply
    wiring.reset()


@pytest.fixture
def unique() -> str:
    """A short unique suffix for names (Pub/Sub has no wipe on the emulator)."""
    return uuid.uuid4().hex[:10]


@pytest.fixture(scope="session")
def publisher_client(emulators: dict[str, str]):
    from google.cloud import pubsub_v1

    return pubsub_v1.PublisherClient()


@pytest.fixture(scope="session")
def subscriber_client(emulators: dict[str, str]):
    from google.cloud import pubsub_v1

    client = pubsub_v1.SubscriberClient()
    yield client
    client.close()


@pytest.fixture(scope="session")
def firestore_client(emulators: dict[str, str]):
    from google.cloud import firestore

    return firestore.Client(project=emulators["GOOGLE_CLOUD_PROJECT"])


@pytest.fixture
def topic_with_subscription(
    emulators: dict[str, str], publisher_client, subscriber_client, unique: str
) -> tuple[str, str]:
    """A fresh topic and a pull subscription on it: (topic_id, subscription_path)."""
    project = emulators["GOOGLE_CLOUD_PROJECT"]
    topic_id = f"events-{unique}"
    topic_path = publisher_client.topic_path(project, topic_id)
    publisher_client.create_topic(name=topic_path)
    subscription_path = subscriber_client.subscription_path(project, f"pull-{unique}")
    subscriber_client.create_subscription(name=subscription_path, topic=topic_path)
    return topic_id, subscription_path


@pytest.fixture(autouse=True)
def _published_messages_match_the_schema(
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[list[str]]:
    """Every message the project's code publishes in-process is checked against docs/schema/.

    ``CallEventPublisher.publish`` is wrapped: an invalid message is not published and the
    ``AssertionError`` is raised into the handler. Handlers turn a publish failure into a 503
    or a failed count, so the failure is also recorded and fails this test at teardown. Poison
    messages that tests publish through a raw ``PublisherClient`` are not touched. Served
    functions (subprocesses) are checked by the schema tap in ``tests/fixtures/stack.py``.
    """
    original = CallEventPublisher.publish
    failures: list[str] = []

    def checked_publish(self, data, attributes, **options):
        try:
            message_schema.validate_message(data, attributes)
        except AssertionError as error:
            failures.append(str(error))
            raise
        message_schema.counts["in-process"] += 1
        return original(self, data, attributes, **options)

    monkeypatch.setattr(CallEventPublisher, "publish", checked_publish)
    yield failures  # the list, for the test of this hook
    if failures:
        pytest.fail(f"{len(failures)} published message(s) off the schema: {failures[0]}")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if message_schema.counts:
        checked = ", ".join(f"{n} {where}" for where, n in sorted(message_schema.counts.items()))
        terminalreporter.write_line(f"published messages checked against docs/schema: {checked}")
    skipped = terminalreporter.stats.get("skipped", [])
    if os.environ.get("CI") and skipped:
        terminalreporter.write_line(
            f"FAILED: {len(skipped)} test(s) skipped under CI; a skipped emulator test hides "
            "a failure",
            red=True,
        )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None or not os.environ.get("CI"):
        return
    if reporter.stats.get("skipped") and exitstatus == 0:
        session.exitstatus = 1


@pytest.fixture
def log_lines(request: pytest.FixtureRequest) -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """The JSON log lines written so far in the test; scanned for secrets and personal data
    at the end of the session (``tests/fixtures/pii_scan.py``), as every other log is."""
    from tests.fixtures import pii_scan  # a plugin (``pytest_plugins``): imported as one first

    stream = io.StringIO()
    logs.set_stream(stream)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    logs.set_stream(None)
    pii_scan.scan_text(request.node.nodeid, "ttma_relay log lines", stream.getvalue())
