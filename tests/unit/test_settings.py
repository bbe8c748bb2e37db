"""Settings: read once from the environment, clear errors, no secret defaults or leaks."""

from __future__ import annotations

import pytest

from ttma_relay import settings as s

SECRET_A = "a" * 32
SECRET_B = "b" * 40


def ingest_env(**overrides: str) -> dict[str, str]:
    return {"GOOGLE_CLOUD_PROJECT": "proj", "TTMA_WEBHOOK_SECRET": SECRET_A, **overrides}


def test_ingest_defaults_match_the_documented_ones():
    settings = s.IngestSettings.from_env(ingest_env())
    assert settings.google.project == "proj"
    assert settings.google.firestore_database == "(default)"
    assert settings.webhook_secrets == (SECRET_A,)
    assert settings.signature_tolerance_seconds == 300
    assert settings.call_events_topic == "ttma-call-events"
    assert settings.deliveries_collection == "ttma_deliveries"
    assert settings.delivery_ttl_days == 30
    assert settings.max_body_bytes < s.PUBSUB_MESSAGE_LIMIT_BYTES


def test_keyring_orders_current_then_previous_and_strips_newlines():
    env = ingest_env(
        TTMA_WEBHOOK_SECRET=f"{SECRET_A}\n, {SECRET_B}", TTMA_WEBHOOK_SECRET_PREVIOUS="c" * 33
    )
    assert s.IngestSettings.from_env(env).webhook_secrets == (SECRET_A, SECRET_B, "c" * 33)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"TTMA_WEBHOOK_SECRET": SECRET_A}, "GOOGLE_CLOUD_PROJECT is required"),
        ({"GOOGLE_CLOUD_PROJECT": "p"}, "TTMA_WEBHOOK_SECRET is required"),
        (ingest_env(TTMA_WEBHOOK_SECRET="  "), "TTMA_WEBHOOK_SECRET is required"),  # noqa: S106  a blank test secret, to be rejected
        (ingest_env(TTMA_WEBHOOK_SECRET="short"), "at least 32 characters"),  # noqa: S106  a short test secret, to be rejected
        (ingest_env(TTMA_WEBHOOK_SECRET_PREVIOUS="short"), "secret #1"),  # noqa: S106  a short test secret, to be rejected
        (ingest_env(TTMA_SIGNATURE_TOLERANCE_SECONDS="abc"), "must be an integer"),
        (ingest_env(TTMA_SIGNATURE_TOLERANCE_SECONDS="0"), "between 1 and 3600"),
        (ingest_env(MAX_BODY_BYTES="20000000"), "MAX_BODY_BYTES must be between"),
        (ingest_env(DELIVERY_TTL_DAYS="-1"), "DELIVERY_TTL_DAYS must be between"),
    ],
)
def test_invalid_ingest_settings_name_the_variable(env, message):
    with pytest.raises(s.SettingsError, match=message) as error:
        s.IngestSettings.from_env(env)
    assert "short" not in str(error.value) or "short" in message  # the value is not echoed


def test_secret_values_are_not_in_reprs_or_errors():
    settings = s.IngestSettings.from_env(ingest_env())
    assert SECRET_A not in repr(settings)
    hash_key = "phone-hash-key-" + "z" * 32
    archive = s.ArchiveSettings.from_env(
        {
            "GOOGLE_CLOUD_PROJECT": "p",
            "ARCHIVE_BUCKET": "b",
            "TTMA_API_KEY": "mbn_live_xyz",
            "TTMA_PHONE_HASH_KEY": hash_key,
        }
    )
    assert "mbn_live_xyz" not in repr(archive) and hash_key not in repr(archive)
    with pytest.raises(s.SettingsError, match="TTMA_PHONE_HASH_KEY must be at least 32") as short:
        s.ArchiveSettings.from_env(
            {"GOOGLE_CLOUD_PROJECT": "p", "ARCHIVE_BUCKET": "b", "TTMA_API_KEY": "k",
             "TTMA_PHONE_HASH_KEY": "short-key-0123"}
        )  # fmt: skip
    assert "short-key-0123" not in str(short.value)


def test_archive_and_reconcile_settings_require_their_own_variables():
    with pytest.raises(s.SettingsError, match="ARCHIVE_BUCKET is required"):
        s.ArchiveSettings.from_env({"GOOGLE_CLOUD_PROJECT": "p", "TTMA_API_KEY": "k"})
    with pytest.raises(s.SettingsError, match="TTMA_API_KEY is required"):
        s.ReconcileSettings.from_env({"GOOGLE_CLOUD_PROJECT": "p"})
    with pytest.raises(s.SettingsError, match="TTMA_PHONE_HASH_KEY is required"):
        s.ArchiveSettings.from_env({"GOOGLE_CLOUD_PROJECT": "p", "ARCHIVE_BUCKET": "b",
                                    "TTMA_API_KEY": "k"})  # fmt: skip
    archive = s.ArchiveSettings.from_env(
        {
            "GOOGLE_CLOUD_PROJECT": "p",
            "ARCHIVE_BUCKET": "b",
            "TTMA_API_KEY": "k",
            "TTMA_PHONE_HASH_KEY": "h" * 32,
            "TTMA_API_BASE_URL": "http://127.0.0.1:9/",
        }
    )
    assert archive.api_base_url == "http://127.0.0.1:9"
    assert archive.calls_collection == "ttma_calls"
    assert archive.deliveries_collection == "ttma_deliveries"
    assert archive.retention_days == 365  # not forever by default (SECURITY.md)


def test_every_function_reads_only_declared_names():
    assert s.INGEST_ENV | s.ARCHIVE_ENV | s.RECONCILE_ENV == s.ENV_NAMES
    assert s.SECRET_ENV <= s.ENV_NAMES
