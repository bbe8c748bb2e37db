"""``NAME=value`` files (the local stack's ``endpoints.env``): one parser for the CLI's
``--local`` / ``--env-file`` and the local tools' ``read_endpoints``."""

from __future__ import annotations

import shlex


def parse_env_file(text: str) -> dict[str, str]:
    """``export NAME=value`` or ``NAME=value`` lines, values shell-quoted; comments and blank
    lines skipped, and lines whose name is not an identifier."""
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
