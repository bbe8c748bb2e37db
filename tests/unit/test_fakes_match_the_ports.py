"""The fakes keep the real ports' shape: a method renamed or a parameter added on a real class
fails here, instead of leaving the unit tests green against a fake nobody calls that way."""

from __future__ import annotations

import inspect

import pytest

from tests.unit.fakes import (
    FakeArchiveStore,
    FakeCallIndex,
    FakeCallTombstones,
    FakeDeliveryClaims,
    FakePublisher,
    FakeTtmaClient,
)
from ttma_relay.adapters.archive_store import ArchiveStore
from ttma_relay.adapters.call_index import CallIndex
from ttma_relay.adapters.deliveries import CallTombstones, DeliveryClaims
from ttma_relay.adapters.publisher import CallEventPublisher
from ttma_relay.adapters.ttma_api import TtmaClient

PORTS = {
    "DeliveryClaims": (
        FakeDeliveryClaims,
        DeliveryClaims,
        ["claim", "release", "mark_published", "timeout_for", "state_of", "lease_seconds"],
    ),
    "CallEventPublisher": (FakePublisher, CallEventPublisher, ["publish", "topic_path"]),
    "ArchiveStore": (
        FakeArchiveStore,
        ArchiveStore,
        ["bucket_name", "uri", "existing", "write_once", "stream_once"],
    ),
    "CallIndex": (FakeCallIndex, CallIndex, ["get", "record"]),
    "CallTombstones": (FakeCallTombstones, CallTombstones, ["is_forgotten"]),
    "TtmaClient": (
        FakeTtmaClient,
        TtmaClient,
        ["get_call", "get_recording_url", "stream_recording", "close"],
    ),
}


def shape(cls: type, name: str) -> object:
    """``"property"`` or the parameters (name, kind, default) of the method ``name``."""
    member = inspect.getattr_static(cls, name)
    if isinstance(member, property):
        return "property"
    signature = inspect.signature(getattr(cls, name))
    return [(p.name, p.kind, p.default) for p in signature.parameters.values()]


# Read at import, before tests/conftest.py wraps CallEventPublisher.publish for each test.
REAL_SHAPES = {
    port: {name: shape(real, name) for name in names} for port, (_, real, names) in PORTS.items()
}


@pytest.mark.parametrize("port", sorted(PORTS))
def test_each_fake_has_the_real_methods_with_the_real_parameters(port):
    fake, _, names = PORTS[port]
    assert {name: shape(fake, name) for name in names} == REAL_SHAPES[port]


@pytest.mark.parametrize("port", sorted(PORTS))
def test_each_fake_names_the_real_class_it_stands_in_for(port):
    fake, real, _ = PORTS[port]
    assert f"{real.__module__}.{real.__name__}" in " ".join((fake.__doc__ or "").split())
