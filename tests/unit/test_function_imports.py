"""Each function's instance imports only what its code uses: ``main.py`` loads the handler of
``FUNCTION_TARGET`` alone, and building its clients loads only the client libraries of what its
row in ``ttma_relay.functions`` says it touches (ingest: no storage client, no HTTP client)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support.paths import REPO_ROOT
from ttma_relay.functions import FUNCTIONS

# The client library each kind of ``touches`` needs.
LIBRARY_OF_KIND = {
    "firestore": "google.cloud.firestore",
    "pubsub": "google.cloud.pubsub_v1",
    "storage": "google.cloud.storage",
    "vendor": "httpx",
}
HANDLERS = {f"handlers.{spec.name}" for spec in FUNCTIONS}
PROBE = """
import json, os, sys
import main
from handlers import wiring
wiring.BUILDERS[os.environ["FUNCTION_TARGET"]]()
print(json.dumps(sorted(sys.modules)))
"""


def _modules_after_start(target: str) -> set[str]:
    env = {
        "PATH": "/usr/bin:/bin",
        "FUNCTION_TARGET": target,
        "GOOGLE_CLOUD_PROJECT": "p",
        "TTMA_WEBHOOK_SECRET": "s" * 40,
        "ARCHIVE_BUCKET": "b",
        "TTMA_API_KEY": "k" * 20,
        "TTMA_PHONE_HASH_KEY": "h" * 40,
        # clients are built, never called: nothing listens there
        "FIRESTORE_EMULATOR_HOST": "127.0.0.1:9",
        "PUBSUB_EMULATOR_HOST": "127.0.0.1:9",
        "STORAGE_EMULATOR_HOST": "http://127.0.0.1:9",
    }
    done = subprocess.run(  # noqa: S603  sys.executable on the test's own probe
        [sys.executable, "-c", PROBE], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
        timeout=60, check=True,
    )  # fmt: skip
    return set(json.loads(done.stdout))


@pytest.mark.parametrize("spec", FUNCTIONS, ids=lambda spec: spec.name)
def test_a_function_loads_its_own_handler_and_the_clients_of_what_it_touches(spec):
    modules = _modules_after_start(spec.name)
    kinds = {touch.split(":")[0] for touch in spec.touches}
    for kind, library in LIBRARY_OF_KIND.items():
        assert (library in modules) == (kind in kinds), (spec.name, library)
    assert f"handlers.{spec.name}" in modules
    assert not (HANDLERS - {f"handlers.{spec.name}"}) & modules, spec.name
    assert "ttma_relay.cli" not in modules
