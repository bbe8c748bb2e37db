"""``handlers.wiring`` against the real emulators: each function's clients are built once and
warmed (one cheap call per client, logged as ``<function> warmed``), and the table of functions
has a builder for every row."""

from __future__ import annotations

import pytest

from handlers import wiring
from ttma_relay.functions import NAMES

pytestmark = pytest.mark.emulator


def test_every_function_of_the_table_has_a_builder():
    assert set(wiring.BUILDERS) == set(NAMES)


@pytest.mark.parametrize("function", ["ingest", "archive_transcript", "reconcile"])
def test_building_a_function_s_clients_warms_each_once(
    function,
    log_lines,
    function_env,
    emulators,
    topic_with_subscription,
    unique,
    sandbox,
    firestore_client,
):
    topic, _ = topic_with_subscription
    function_env({
        "GOOGLE_CLOUD_PROJECT": emulators["GOOGLE_CLOUD_PROJECT"],
        "TTMA_WEBHOOK_SECRET": "w" * 40,
        "CALL_EVENTS_TOPIC": topic,
        "ARCHIVE_BUCKET": f"warm-{unique}",
        "TTMA_API_KEY": sandbox.api_key,
        "TTMA_PHONE_HASH_KEY": "h" * 40,
        "TTMA_API_BASE_URL": sandbox.url,
    })  # fmt: skip
    first = wiring.BUILDERS[function]()
    assert wiring.BUILDERS[function]() is first  # built once per instance
    assert log_lines() == []  # building alone calls nothing (in-process: no fork, no warm-up)
    wiring.warm_function(function)
    assert wiring.BUILDERS[function]() is first
    warmed = [line for line in log_lines() if line.get("outcome") == "warmed"]
    assert len(warmed) == 1, warmed
    (line,) = warmed
    expected = {"ingest": {"firestoreMs", "pubsubMs"}, "reconcile": {"firestoreMs", "pubsubMs"},
                "archive_transcript": {"firestoreMs", "storageMs"}}[function]  # fmt: skip
    assert expected <= set(line), line
    assert line["severity"] == "INFO" and "failures" not in line, line
    # the warm-up's commit was refused: it wrote nothing
    collection = {"archive_transcript": "ttma_calls"}.get(function, "ttma_deliveries")
    assert (
        not firestore_client.collection(collection).document(wiring.WARM_UP_DOCUMENT).get().exists
    )


def test_a_warm_up_that_fails_is_logged_and_the_build_goes_on(log_lines):
    def down() -> None:
        raise ConnectionError("refused")

    wiring.warm("ingest", {"firestore": down, "pubsub": lambda: None})
    (line,) = log_lines()
    assert line["severity"] == "WARNING" and line["outcome"] == "warmed"
    assert line["failures"] == {"firestore": "ConnectionError"}  # the class, never a message
    assert {"firestoreMs", "pubsubMs"} <= set(line)


def test_a_warm_up_step_is_retried_while_its_backend_starts(log_lines):
    attempts = []

    def starting() -> None:
        attempts.append(1)
        if len(attempts) < 3:
            raise ConnectionError("not yet")

    wiring.warm("ingest", {"firestore": starting}, retry_for=10)
    (line,) = log_lines()
    assert len(attempts) == 3 and line["severity"] == "INFO" and "failures" not in line
