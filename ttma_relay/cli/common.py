"""What the ``ttma-relay`` commands share: exit codes, settings options, error mapping.

Exit codes (docs/cli.md): 0 success · 1 refused or not found (the other side answered "no") ·
2 usage error or unreachable (nothing useful was answered; click uses 2 for usage errors too).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import socket
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

EXIT_OK = 0
EXIT_REFUSED = 1  # the endpoint / API / index answered, but "no" (refused, not found)
EXIT_UNREACHABLE = 2  # could not reach it (and click's usage errors)
LOCAL_ENV_FILE = Path(".devstack") / "endpoints.env"
F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str, code: int) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def warn(message: str) -> None:
    """A warning on stderr; the command goes on."""
    click.echo(f"warning: {message}", err=True)


def local_env_file() -> Path:
    state_dir = os.environ.get("TTMA_DEV_STATE_DIR")
    return Path(state_dir) / "endpoints.env" if state_dir else LOCAL_ENV_FILE


def load_env_file(path: Path) -> dict[str, str]:
    """``export NAME=value`` / ``NAME=value`` lines (the local stack's ``endpoints.env``)."""
    try:
        text = path.read_text()
    except OSError as error:
        raise click.UsageError(
            f"cannot read {path} ({error.strerror}); is the local stack running? (make dev-up)"
        ) from None
    values: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").strip()
        name, sep, raw = line.partition("=")
        if sep and name.isidentifier():
            parts = shlex.split(raw)
            values[name] = parts[0] if parts else ""
    return values


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


@contextlib.contextmanager
def google_errors(what: str) -> Iterator[None]:
    """Translate Google client errors into a message and an exit code."""
    from google.api_core import exceptions as gexc
    from google.auth import exceptions as auth_exc

    try:
        yield
    except auth_exc.DefaultCredentialsError:
        fail(
            f"{what}: no Google credentials (gcloud auth application-default login), "
            "or use the local stack (--local)",
            EXIT_UNREACHABLE,
        )
    except (gexc.NotFound, gexc.PermissionDenied, gexc.Unauthenticated) as error:
        fail(f"{what}: {type(error).__name__}: {error.message}", EXIT_REFUSED)
    except (gexc.GoogleAPIError, auth_exc.GoogleAuthError) as error:
        fail(f"{what}: {type(error).__name__}", EXIT_UNREACHABLE)


def progress(**options: Any) -> Any:
    """A tqdm bar on stderr that appears only after a second, and only on a terminal."""
    from tqdm import tqdm

    defaults = {"delay": 1.0, "file": sys.stderr, "leave": False, "disable": None}
    return tqdm(**{**defaults, **options})
