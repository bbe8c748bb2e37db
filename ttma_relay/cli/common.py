"""What the ``ttma-relay`` commands share: exit codes, settings options, error mapping.

Exit codes (docs/cli.md): 0 success · 1 refused or not found (the other side answered "no") ·
2 usage error or unreachable (nothing useful was answered; click uses 2 for usage errors too).
"""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn, TypeVar
from urllib.parse import urlsplit

import click

from ttma_relay.env_file import parse_env_file

EXIT_OK = 0
EXIT_REFUSED = 1  # the endpoint / API / index answered, but "no" (refused, not found)
EXIT_UNREACHABLE = 2  # could not reach it (and click's usage errors)
STATE_DIR_NAME = ".devstack"
ENDPOINTS_FILE = "endpoints.env"
LOCAL_ENV_FILE = Path(STATE_DIR_NAME) / ENDPOINTS_FILE
# The checkout this package is imported from: `make dev-up` writes its state there
# (devstack.stack.config.DEFAULT_STATE_DIR is CODE_CHECKOUT / ".devstack").
CODE_CHECKOUT = Path(__file__).resolve().parents[2]  # ttma_relay/cli/common.py → the checkout
EMULATOR_HOSTS = "FIRESTORE_EMULATOR_HOST / PUBSUB_EMULATOR_HOST / STORAGE_EMULATOR_HOST"
F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str, code: int) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def warn(message: str) -> None:
    """A warning on stderr; the command goes on."""
    click.echo(f"warning: {message}", err=True)


def local_env_candidates(cwd: Path | None = None) -> list[Path]:
    """Where ``--local`` looks for the stack's ``endpoints.env``, in order: only
    ``$TTMA_DEV_STATE_DIR`` when it is set; else ``.devstack`` in the current directory and each
    one above it, then in the checkout this code runs from (where ``make dev-up`` writes it)."""
    state_dir = os.environ.get("TTMA_DEV_STATE_DIR")
    if state_dir:
        return [Path(state_dir) / ENDPOINTS_FILE]
    here = (cwd or Path.cwd()).resolve()
    candidates: list[Path] = []
    for directory in (here, *here.parents, CODE_CHECKOUT):
        candidate = directory / STATE_DIR_NAME / ENDPOINTS_FILE
        if candidate not in candidates:
            candidates.append(candidate)
    return candidates


def local_env_file(cwd: Path | None = None) -> Path:
    """The running local stack's ``endpoints.env``; exit 2 saying where it looked if none."""
    candidates = local_env_candidates(cwd)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    if os.environ.get("TTMA_DEV_STATE_DIR"):
        where = f"{candidates[0]} (from TTMA_DEV_STATE_DIR)"
    else:
        here = (cwd or Path.cwd()).resolve()
        where = (
            f"{LOCAL_ENV_FILE} in {here} or any directory above it, nor in {CODE_CHECKOUT}"
            " (the checkout ttma-relay runs from)"
        )
    fail(
        f"--local: no running local stack found (no {where}); start one with make dev-up,"
        " or set TTMA_DEV_STATE_DIR to its state directory",
        EXIT_UNREACHABLE,
    )


def load_env_file(path: Path) -> dict[str, str]:
    """``export NAME=value`` / ``NAME=value`` lines (the local stack's ``endpoints.env``)."""
    try:
        text = path.read_text()
    except OSError as error:
        raise click.UsageError(
            f"cannot read {path} ({error.strerror}); is the local stack running? (make dev-up)"
        ) from None
    return parse_env_file(text)


def project_option(function: F) -> F:
    return click.option(
        "--project",
        envvar="GOOGLE_CLOUD_PROJECT",
        required=True,
        show_envvar=True,
        help="Google Cloud project of the deployment.",
    )(function)


def database_option(function: F) -> F:
    return click.option(
        "--database",
        envvar="FIRESTORE_DATABASE",
        default="(default)",
        show_default=True,
        show_envvar=True,
        help="Firestore database id.",
    )(function)


def collection_option(function: F) -> F:
    return click.option(
        "--collection",
        envvar="CALLS_COLLECTION",
        default="ttma_calls",
        show_default=True,
        show_envvar=True,
        help="Firestore collection of the call index.",
    )(function)


def check_emulator(variable: str, what: str) -> None:
    """When ``variable`` points at an emulator, fail fast (exit 2) if nothing answers there."""
    address = os.environ.get(variable, "").strip()
    if not address:
        return
    host_port = address.split("://", 1)[-1].rstrip("/")
    host, _, port = host_port.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=1.0):
            return
    except (OSError, ValueError):
        fail(
            f"the {what} emulator at {address} ({variable}) is not reachable; "
            "is the local stack running? (make dev-up)",
            EXIT_UNREACHABLE,
        )


def no_credentials_message() -> str:
    """One sentence: no usable Google credentials, and the two ways out."""
    key_file = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
    if key_file:
        problem = (
            f"no usable Google credentials: GOOGLE_APPLICATION_CREDENTIALS ({key_file}) is"
            " missing or not a valid credentials file; fix or unset it and run"
        )
    else:
        problem = "no Google credentials found: run"
    return (
        f"{problem} `gcloud auth application-default login`, or use the local stack's emulators"
        f" (--local, or set {EMULATOR_HOSTS})"
    )


def credentials_problem(error: BaseException) -> str | None:
    """The sentence for a Google credentials error, or None when ``error`` is not one."""
    auth_exc = sys.modules.get("google.auth.exceptions")  # imported by whatever raised it
    if auth_exc is None:
        return None
    if isinstance(error, auth_exc.DefaultCredentialsError):
        return no_credentials_message()
    if isinstance(error, auth_exc.RefreshError):
        return refused_credentials_message()
    return None


def refused_credentials_message() -> str:
    where = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
    which = f"in GOOGLE_APPLICATION_CREDENTIALS ({where})" if where else "found"
    return (
        f"the Google credentials {which} were refused (expired, revoked or invalid): run"
        f" `gcloud auth application-default login` again, or use the local stack's emulators"
        f" (--local, or set {EMULATOR_HOSTS})"
    )


CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
TOKEN_TIMEOUT_SECONDS = 10.0


def require_google_credentials(*emulator_vars: str, unreachable_is_fatal: bool = True) -> None:
    """Unless each of ``emulator_vars`` is set (the emulators need no credentials), find the
    application-default credentials and fetch a token once: missing, invalid or refused
    credentials end here in one sentence and exit 2, not in a traceback or in a client that
    retries for minutes. A token endpoint out of reach does too, unless not
    ``unreachable_is_fatal`` (doctor: its checks then name what does not answer). The clients
    fetch their own token after this."""
    if all(os.environ.get(name) for name in emulator_vars):
        return
    import google.auth
    from google.auth import exceptions as auth_exc
    from google.auth.transport.requests import Request

    try:
        credentials, _ = google.auth.default(scopes=[CLOUD_PLATFORM_SCOPE])
    except auth_exc.DefaultCredentialsError:
        fail(no_credentials_message(), EXIT_UNREACHABLE)
    request = Request()

    def bounded(*args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", TOKEN_TIMEOUT_SECONDS)
        return request(*args, **kwargs)

    try:
        credentials.refresh(bounded)
    except auth_exc.TransportError as error:
        if not unreachable_is_fatal:
            return
        fail(
            f"could not reach Google to check the credentials ({type(error).__name__}): is the"
            f" network down? For the local stack use its emulators (--local, or {EMULATOR_HOSTS})",
            EXIT_UNREACHABLE,
        )
    except auth_exc.GoogleAuthError as error:
        fail(credentials_problem(error) or refused_credentials_message(), EXIT_UNREACHABLE)


@contextlib.contextmanager
def google_errors(what: str) -> Iterator[None]:
    """Translate Google client errors into a message and an exit code."""
    from google.api_core import exceptions as gexc
    from google.auth import exceptions as auth_exc

    try:
        yield
    except (auth_exc.DefaultCredentialsError, auth_exc.RefreshError) as error:
        fail(f"{what}: {credentials_problem(error)}", EXIT_UNREACHABLE)
    except (gexc.NotFound, gexc.PermissionDenied, gexc.Unauthenticated) as error:
        fail(f"{what}: {type(error).__name__}: {error.message}", EXIT_REFUSED)
    except (gexc.GoogleAPIError, auth_exc.GoogleAuthError) as error:
        fail(f"{what}: {type(error).__name__}", EXIT_UNREACHABLE)


def shown_url(url: str) -> str:
    """``url`` without its user info, query and fragment (where tokens could be)."""
    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "the URL"
    if not parts.scheme or not parts.hostname:
        return "the URL"
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}{port}{parts.path}"


_PLAIN_HTTP_SSL_REASONS = frozenset(
    {"WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG", "HTTP_REQUEST",
     "UNKNOWN_PROTOCOL"}
)  # fmt: skip


def _causes(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def tls_mix_up(error: BaseException, url: str | None = None) -> str | None:
    """The likely cause when TLS and plain HTTP were mixed up (an https:// URL at a plain-HTTP
    server, an http:// URL at an HTTPS one) or TLS failed; None for other errors. Only SSL
    reason codes and the URL's scheme are used: never a header, signature or body."""
    import httpx

    for cause in _causes(error):
        if isinstance(cause, ssl.SSLCertVerificationError):
            detail = cause.verify_message or cause.reason or "not trusted"
            return f"its TLS certificate was not accepted: {detail}"
        if isinstance(cause, ssl.SSLError):
            reason = cause.reason or type(cause).__name__
            hint = (
                "; the server likely speaks plain HTTP: use an http:// URL"
                if reason in _PLAIN_HTTP_SSL_REASONS
                else ""
            )
            return f"the TLS handshake failed with SSL error {reason}{hint}"
    # An HTTPS server answers a plain-HTTP request with a TLS alert and closes (or resets).
    plain_at_tls = isinstance(error, httpx.RemoteProtocolError | httpx.ReadError)
    if plain_at_tls and url is not None and urlsplit(url).scheme == "http":
        return (
            f"the server closed the connection without an HTTP answer ({type(error).__name__});"
            " if it is an HTTPS server, use an https:// URL"
        )
    return None


def describe_http_error(error: BaseException, url: str) -> str:
    """``<url without query>: <why>``: why an HTTP request got no answer, with the likely
    cause. Names the scheme, host, port and path only."""
    import httpx

    why = tls_mix_up(error, url)
    if why is None:
        causes = list(_causes(error))
        if any(isinstance(cause, ConnectionRefusedError) for cause in causes):
            why = "connection refused (nothing listens on that port)"
        elif any(isinstance(cause, socket.gaierror) for cause in causes):
            why = "the host name does not resolve"
        elif isinstance(error, httpx.TimeoutException):
            why = f"no answer in time ({type(error).__name__})"
        else:
            why = type(error).__name__
    return f"{shown_url(url)}: {why}"


def progress(**options: Any) -> Any:
    """A tqdm bar on stderr that appears only after a second, and only on a terminal."""
    from tqdm import tqdm

    defaults = {"delay": 1.0, "file": sys.stderr, "leave": False, "disable": None}
    return tqdm(**{**defaults, **options})
