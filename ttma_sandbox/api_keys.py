"""Bearer API keys (``mbn_live_...``) and the scopes each one grants."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterable, Mapping

SCOPE_READ = "voice:read"
SCOPE_CALL = "voice:call"
ALL_SCOPES: frozenset[str] = frozenset({SCOPE_READ, SCOPE_CALL})
KEY_PREFIX = "mbn_live_"
# Keys for `python -m ttma_sandbox`, whitespace-separated KEY[:SCOPES] specs: the environment
# is readable by the owner only (/proc/<pid>/environ), a command line by everyone (ps).
API_KEYS_ENV = "TTMA_SANDBOX_API_KEYS"


def generate_api_key() -> str:
    return KEY_PREFIX + secrets.token_hex(20)


def key_specs_from_env(environ: Mapping[str, str]) -> list[str]:
    """The ``KEY[:SCOPES]`` specs in ``TTMA_SANDBOX_API_KEYS`` (whitespace-separated)."""
    return environ.get(API_KEYS_ENV, "").split()


def parse_key_spec(spec: str) -> tuple[str, frozenset[str]]:
    """Parse ``KEY`` or ``KEY:scope,scope`` (scopes contain colons: the key never does).

    ``KEY`` alone grants every scope.
    """
    key, _, scope_text = spec.strip().partition(":")
    if not key:
        raise ValueError("empty API key")
    if not scope_text:
        return key, ALL_SCOPES
    scopes = frozenset(part.strip() for part in scope_text.split(",") if part.strip())
    unknown = scopes - ALL_SCOPES
    if unknown or not scopes:
        raise ValueError(f"unknown scopes {sorted(unknown)}; known: {sorted(ALL_SCOPES)}")
    return key, scopes


class ApiKeyRegistry:
    """Thread-safe map of API key → scopes."""

    def __init__(self, keys: Mapping[str, Iterable[str]] | None = None) -> None:
        self._lock = threading.Lock()
        self._keys: dict[str, frozenset[str]] = {}
        for key, scopes in (keys or {}).items():
            self.add(key, scopes)

    def add(self, key: str, scopes: Iterable[str] = ALL_SCOPES) -> str:
        granted = frozenset(scopes)
        unknown = granted - ALL_SCOPES
        if unknown:
            raise ValueError(f"unknown scopes {sorted(unknown)}")
        with self._lock:
            self._keys[key] = granted
        return key

    def create(self, scopes: Iterable[str] = ALL_SCOPES) -> str:
        """Generate, register and return a new key with ``scopes``."""
        return self.add(generate_api_key(), scopes)

    def scopes_for(self, key: str) -> frozenset[str] | None:
        with self._lock:
            return self._keys.get(key)

    def snapshot(self) -> dict[str, frozenset[str]]:
        with self._lock:
            return dict(self._keys)

    def replace(self, keys: Mapping[str, frozenset[str]]) -> None:
        with self._lock:
            self._keys = dict(keys)
