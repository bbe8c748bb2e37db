"""Fixtures of the unit tests: the in-memory fakes of ``tests/unit/fakes.py``, a log capture.

No emulator, no Java, no network. ``tests/conftest.py`` starts the emulators lazily, only for a
test that requests its ``emulators`` fixture; here that fixture is overridden to fail, so a unit
test that reaches for an emulator (directly or through another fixture) fails at once instead
of starting one.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from handlers.subscriber import ArchiveDeps
from tests.support import message_schema
from tests.support.payloads import PHONE_HASH_KEY
from tests.unit.fakes import (
    FakeArchiveStore,
    FakeCallIndex,
    FakeCallTombstones,
    FakeDeliveryClaims,
    FakePublisher,
    FakeTtmaClient,
    ManualClock,
)
from ttma_relay.settings import ArchiveSettings, GoogleSettings


@pytest.fixture(scope="session")
def emulators() -> None:
    pytest.fail("unit tests must not use the emulators (tests/unit/conftest.py)", pytrace=False)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def journal() -> list[str]:
    """Every call on the fakes of one test, in order (``"claims.claim"``, ...)."""
    return []


@pytest.fixture
def claims(clock: ManualClock, journal: list[str]) -> FakeDeliveryClaims:
    return FakeDeliveryClaims(clock=clock, journal=journal)


@pytest.fixture
def publisher(clock: ManualClock, journal: list[str]) -> Iterator[FakePublisher]:
    """The fake topic; at teardown every message on it is checked against docs/schema/, as
    ``tests/conftest.py`` checks every message the real publisher sends."""
    fake = FakePublisher(clock=clock, journal=journal)
    yield fake
    for message in fake.messages:
        message_schema.validate_message(message.data, message.attributes)
        message_schema.counts["unit fake publisher"] += 1


@pytest.fixture
def store(clock: ManualClock, journal: list[str]) -> FakeArchiveStore:
    return FakeArchiveStore(clock=clock, journal=journal)


@pytest.fixture
def index(clock: ManualClock, journal: list[str]) -> FakeCallIndex:
    return FakeCallIndex(clock=clock, journal=journal)


@pytest.fixture
def tombstones(clock: ManualClock, journal: list[str]) -> FakeCallTombstones:
    return FakeCallTombstones(clock=clock, journal=journal)


@pytest.fixture
def api(clock: ManualClock, journal: list[str]) -> FakeTtmaClient:
    return FakeTtmaClient(clock=clock, journal=journal)


@pytest.fixture
def archive_deps(
    store: FakeArchiveStore,
    index: FakeCallIndex,
    api: FakeTtmaClient,
    tombstones: FakeCallTombstones,
    clock: ManualClock,
) -> ArchiveDeps:
    """The archivers' dependencies on the fakes; their clock is the tests' clock."""
    settings = ArchiveSettings(
        GoogleSettings("unit-project"),
        store.bucket_name,
        api_key="k",
        phone_hash_key=PHONE_HASH_KEY,
        recording_wait_seconds=600,
    )
    return ArchiveDeps(settings, store, index, api, tombstones, now=clock)  # type: ignore[arg-type]
