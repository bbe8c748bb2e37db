"""Settings read once from the environment into frozen dataclasses.

Each function reads only the settings it needs (``IngestSettings``, ``ArchiveSettings``,
``ReconcileSettings``); a missing or invalid value raises ``SettingsError`` naming the variable,
at start-up rather than on the first request. Secrets never have defaults.

The environment variable names are a contract shared with Terraform
(``terraform/functions.tf``) and the local stack; ``ENV_NAMES`` lists them all so a test can
check that the two sides never drift.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

DEFAULT_API_BASE_URL = "https://api.talktomyagent.io"
DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024  # well below Pub/Sub's 10 MB message limit
PUBSUB_MESSAGE_LIMIT_BYTES = 10_000_000
MIN_SECRET_LENGTH = 32  # the vendor refuses shorter signing secrets
DEFAULT_INGEST_BUDGET_SECONDS = 5
DEFAULT_RECONCILE_GRACE_SECONDS = 900
# Days an archived call is kept: the index's ``expireAt`` (a Firestore TTL policy) and, in
# Terraform, the archive bucket's delete rule (archive.delete_after_days). 0 keeps calls forever.
DEFAULT_CALL_RETENTION_DAYS = 365


class SettingsError(ValueError):
    """A required environment variable is missing or a value is invalid."""


# Every environment variable any function reads. Terraform must set exactly these names.
ENV_GOOGLE_CLOUD_PROJECT = "GOOGLE_CLOUD_PROJECT"
ENV_WEBHOOK_SECRET = "TTMA_WEBHOOK_SECRET"  # noqa: S105 - a variable name, not a secret
ENV_WEBHOOK_SECRET_PREVIOUS = "TTMA_WEBHOOK_SECRET_PREVIOUS"  # noqa: S105 - a variable name too
ENV_SIGNATURE_TOLERANCE = "TTMA_SIGNATURE_TOLERANCE_SECONDS"
ENV_CALL_EVENTS_TOPIC = "CALL_EVENTS_TOPIC"
ENV_FIRESTORE_DATABASE = "FIRESTORE_DATABASE"
ENV_DELIVERIES_COLLECTION = "DELIVERIES_COLLECTION"
ENV_CALLS_COLLECTION = "CALLS_COLLECTION"
ENV_DELIVERY_TTL_DAYS = "DELIVERY_TTL_DAYS"
ENV_MAX_BODY_BYTES = "MAX_BODY_BYTES"
ENV_ARCHIVE_BUCKET = "ARCHIVE_BUCKET"
ENV_API_KEY = "TTMA_API_KEY"
ENV_API_BASE_URL = "TTMA_API_BASE_URL"
ENV_RECORDING_WAIT_SECONDS = "RECORDING_WAIT_SECONDS"
ENV_RECONCILE_LOOKBACK_HOURS = "RECONCILE_LOOKBACK_HOURS"
ENV_RECONCILE_GRACE_SECONDS = "RECONCILE_GRACE_SECONDS"
ENV_INGEST_BUDGET_SECONDS = "INGEST_BUDGET_SECONDS"
ENV_PHONE_HASH_KEY = "TTMA_PHONE_HASH_KEY"
ENV_CALL_RETENTION_DAYS = "CALL_RETENTION_DAYS"

ENV_NAMES: frozenset[str] = frozenset(
    value for key, value in dict(globals()).items() if key.startswith("ENV_") and key != "ENV_NAMES"
)

# Which variables each entry point reads (Terraform sets these on the matching function).
INGEST_ENV = frozenset(
    {
        ENV_GOOGLE_CLOUD_PROJECT,
        ENV_WEBHOOK_SECRET,
        ENV_WEBHOOK_SECRET_PREVIOUS,
        ENV_SIGNATURE_TOLERANCE,
        ENV_CALL_EVENTS_TOPIC,
        ENV_FIRESTORE_DATABASE,
        ENV_DELIVERIES_COLLECTION,
        ENV_DELIVERY_TTL_DAYS,
        ENV_MAX_BODY_BYTES,
        ENV_INGEST_BUDGET_SECONDS,
    }
)
ARCHIVE_ENV = frozenset(
    {
        ENV_GOOGLE_CLOUD_PROJECT,
        ENV_FIRESTORE_DATABASE,
        ENV_CALLS_COLLECTION,
        ENV_DELIVERIES_COLLECTION,
        ENV_ARCHIVE_BUCKET,
        ENV_API_KEY,
        ENV_API_BASE_URL,
        ENV_RECORDING_WAIT_SECONDS,
        ENV_PHONE_HASH_KEY,
        ENV_CALL_RETENTION_DAYS,
    }
)
RECONCILE_ENV = frozenset(
    {
        ENV_GOOGLE_CLOUD_PROJECT,
        ENV_CALL_EVENTS_TOPIC,
        ENV_FIRESTORE_DATABASE,
        ENV_DELIVERIES_COLLECTION,
        ENV_DELIVERY_TTL_DAYS,
        ENV_API_KEY,
        ENV_API_BASE_URL,
        ENV_RECONCILE_LOOKBACK_HOURS,
        ENV_RECONCILE_GRACE_SECONDS,
    }
)
SECRET_ENV = frozenset(
    {ENV_WEBHOOK_SECRET, ENV_WEBHOOK_SECRET_PREVIOUS, ENV_API_KEY, ENV_PHONE_HASH_KEY}
)


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise SettingsError(f"{name} is required but not set")
    return value


def _optional(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name, "").strip()
    return value or default


def _int(env: Mapping[str, str], name: str, default: int, *, minimum: int, maximum: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None
    if not minimum <= value <= maximum:
        raise SettingsError(f"{name} must be between {minimum} and {maximum}, got {value}")
    return value


def _keyring(env: Mapping[str, str]) -> tuple[str, ...]:
    """Current secret(s) first, then the previous one(s); each comma-separated, deduplicated."""
    current = env.get(ENV_WEBHOOK_SECRET, "")
    previous = env.get(ENV_WEBHOOK_SECRET_PREVIOUS, "")
    # Surrounding whitespace is dropped: Secret Manager versions made with `echo` end in "\n".
    secrets = [s.strip() for s in current.split(",") if s.strip()]
    if not secrets:
        raise SettingsError(f"{ENV_WEBHOOK_SECRET} is required but not set")
    secrets += [s.strip() for s in previous.split(",") if s.strip()]
    for index, secret in enumerate(secrets):
        if len(secret) < MIN_SECRET_LENGTH:
            raise SettingsError(
                f"webhook secret #{index} (of {ENV_WEBHOOK_SECRET}, then "
                f"{ENV_WEBHOOK_SECRET_PREVIOUS}) must be at least {MIN_SECRET_LENGTH} characters"
            )
    return tuple(dict.fromkeys(secrets))


def _phone_hash_key(env: Mapping[str, str]) -> str:
    """The key of the index's phone-number hashes (``contract.party_numbers``)."""
    key = _required(env, ENV_PHONE_HASH_KEY)
    if len(key) < MIN_SECRET_LENGTH:
        raise SettingsError(f"{ENV_PHONE_HASH_KEY} must be at least {MIN_SECRET_LENGTH} characters")
    return key


@dataclass(frozen=True)
class GoogleSettings:
    project: str
    firestore_database: str = "(default)"


@dataclass(frozen=True)
class IngestSettings:
    google: GoogleSettings
    webhook_secrets: tuple[str, ...] = field(repr=False)
    signature_tolerance_seconds: int = 300
    call_events_topic: str = "ttma-call-events"
    deliveries_collection: str = "ttma_deliveries"
    delivery_ttl_days: int = 30
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    # Firestore + publish for one request; past it: 503 and the claim released
    # (docs/architecture.md).
    budget_seconds: int = DEFAULT_INGEST_BUDGET_SECONDS

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> IngestSettings:
        env = os.environ if env is None else env
        return cls(
            google=_google(env),
            webhook_secrets=_keyring(env),
            signature_tolerance_seconds=_int(
                env, ENV_SIGNATURE_TOLERANCE, 300, minimum=1, maximum=3600
            ),
            call_events_topic=_optional(env, ENV_CALL_EVENTS_TOPIC, "ttma-call-events"),
            deliveries_collection=_optional(env, ENV_DELIVERIES_COLLECTION, "ttma_deliveries"),
            delivery_ttl_days=_int(env, ENV_DELIVERY_TTL_DAYS, 30, minimum=1, maximum=3650),
            max_body_bytes=_int(
                env,
                ENV_MAX_BODY_BYTES,
                DEFAULT_MAX_BODY_BYTES,
                minimum=1024,
                maximum=PUBSUB_MESSAGE_LIMIT_BYTES - 64 * 1024,
            ),
            budget_seconds=_int(
                env, ENV_INGEST_BUDGET_SECONDS, DEFAULT_INGEST_BUDGET_SECONDS, minimum=1, maximum=30
            ),
        )


@dataclass(frozen=True)
class ArchiveSettings:
    google: GoogleSettings
    archive_bucket: str
    api_key: str = field(repr=False)
    phone_hash_key: str = field(repr=False)
    api_base_url: str = DEFAULT_API_BASE_URL
    calls_collection: str = "ttma_calls"
    deliveries_collection: str = "ttma_deliveries"  # where ``forget`` leaves its tombstones
    recording_wait_seconds: int = 15 * 60
    retention_days: int = DEFAULT_CALL_RETENTION_DAYS

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ArchiveSettings:
        env = os.environ if env is None else env
        return cls(
            google=_google(env),
            archive_bucket=_required(env, ENV_ARCHIVE_BUCKET),
            api_key=_required(env, ENV_API_KEY),
            api_base_url=_optional(env, ENV_API_BASE_URL, DEFAULT_API_BASE_URL).rstrip("/"),
            phone_hash_key=_phone_hash_key(env),
            calls_collection=_optional(env, ENV_CALLS_COLLECTION, "ttma_calls"),
            deliveries_collection=_optional(env, ENV_DELIVERIES_COLLECTION, "ttma_deliveries"),
            recording_wait_seconds=_int(
                env, ENV_RECORDING_WAIT_SECONDS, 15 * 60, minimum=0, maximum=7 * 24 * 3600
            ),
            retention_days=_int(
                env, ENV_CALL_RETENTION_DAYS, DEFAULT_CALL_RETENTION_DAYS, minimum=0, maximum=36500
            ),
        )


@dataclass(frozen=True)
class ReconcileSettings:
    google: GoogleSettings
    api_key: str = field(repr=False)
    api_base_url: str = DEFAULT_API_BASE_URL
    call_events_topic: str = "ttma-call-events"
    deliveries_collection: str = "ttma_deliveries"
    delivery_ttl_days: int = 30
    lookback_hours: int = 24
    # Calls that ended less than this long ago are left to the webhook (docs/architecture.md).
    grace_seconds: int = DEFAULT_RECONCILE_GRACE_SECONDS

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ReconcileSettings:
        env = os.environ if env is None else env
        return cls(
            google=_google(env),
            api_key=_required(env, ENV_API_KEY),
            api_base_url=_optional(env, ENV_API_BASE_URL, DEFAULT_API_BASE_URL).rstrip("/"),
            call_events_topic=_optional(env, ENV_CALL_EVENTS_TOPIC, "ttma-call-events"),
            deliveries_collection=_optional(env, ENV_DELIVERIES_COLLECTION, "ttma_deliveries"),
            delivery_ttl_days=_int(env, ENV_DELIVERY_TTL_DAYS, 30, minimum=1, maximum=3650),
            lookback_hours=_int(env, ENV_RECONCILE_LOOKBACK_HOURS, 24, minimum=1, maximum=24 * 30),
            grace_seconds=_int(
                env,
                ENV_RECONCILE_GRACE_SECONDS,
                DEFAULT_RECONCILE_GRACE_SECONDS,
                minimum=0,
                maximum=24 * 3600,
            ),
        )


def _google(env: Mapping[str, str]) -> GoogleSettings:
    return GoogleSettings(
        project=_required(env, ENV_GOOGLE_CLOUD_PROJECT),
        firestore_database=_optional(env, ENV_FIRESTORE_DATABASE, "(default)"),
    )
