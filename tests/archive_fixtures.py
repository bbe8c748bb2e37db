"""Fixtures of the archiver tests: a fresh bucket and index collection per test, and the
archivers' environment for ``functions_framework.create_app``.

``tests/conftest.py`` imports them.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def storage_client(emulators: dict[str, str]):
    from google.cloud import storage

    return storage.Client(project=emulators["GOOGLE_CLOUD_PROJECT"])


@pytest.fixture
def archive_bucket(storage_client, unique: str):
    """A fresh, empty bucket for one test."""
    return storage_client.create_bucket(f"archive-{unique}")


@pytest.fixture
def calls_collection(unique: str) -> str:
    return f"calls_{unique}"


@pytest.fixture
def archive_env(
    emulators, sandbox, archive_bucket, calls_collection, monkeypatch
) -> Iterator[dict[str, str]]:
    """The archivers' environment (for ``create_app``), pointing at this test's resources."""
    from ttma_relay import deps

    env = {
        "GOOGLE_CLOUD_PROJECT": emulators["GOOGLE_CLOUD_PROJECT"],
        "ARCHIVE_BUCKET": archive_bucket.name,
        "CALLS_COLLECTION": calls_collection,
        "TTMA_API_KEY": sandbox.api_key,
        "TTMA_API_BASE_URL": sandbox.url,
        "RECORDING_WAIT_SECONDS": "600",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    deps.reset()
    yield env
    deps.reset()
