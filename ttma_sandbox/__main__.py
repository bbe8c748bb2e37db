"""``python -m ttma_sandbox``: run the vendor sandbox as its own process (local stack).

Prints one JSON line ``{"event": "sandbox_ready", "url": ..., "port": ...}`` on stdout once it
accepts requests, then serves until SIGTERM / SIGINT. API keys are never printed. Give them in
the environment, ``TTMA_SANDBOX_API_KEYS="KEY KEY2:voice:read"`` (what the local stack does):
an ``--api-key`` on the command line is visible to every user in ``ps``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence

from ttma_sandbox.api_keys import API_KEYS_ENV, key_specs_from_env, parse_key_spec
from ttma_sandbox.server import check_loopback, start_sandbox


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ttma_sandbox", description="Fake TTMA Call Results API (sandbox)"
    )
    parser.add_argument("--host", default="127.0.0.1", help="loopback address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument(
        "--api-key",
        action="append",
        default=[],
        metavar="KEY[:SCOPES]",
        help="accepted key, e.g. mbn_live_x or mbn_live_x:voice:read (repeatable; no scopes = "
        f"voice:read,voice:call). Visible in ps: prefer the environment, {API_KEYS_ENV}="
        '"KEY KEY2:voice:read"',
    )
    parser.add_argument(
        "--agent-number",
        action="append",
        default=[],
        help="agent phone number (E.164) webhooks can be configured for (repeatable)",
    )
    parser.add_argument(
        "--secure-webhook-urls",
        action="store_true",
        help="refuse http:// and private webhook URLs, as the real vendor does",
    )
    parser.add_argument("--webhook-backoff-base", type=float, default=1.0)
    parser.add_argument("--webhook-max-retries", type=int, default=5)
    parser.add_argument("--webhook-timeout", type=float, default=10.0)
    parser.add_argument("--webhook-recording-wait", type=float, default=60.0)
    parser.add_argument("--recording-bytes", type=int, default=64 * 1024)
    parser.add_argument("--seed-calls", type=int, default=0, help="simulate N calls at start")
    parser.add_argument("--log-level", default="WARNING")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr)
    try:
        check_loopback(args.host)
        specs = [*key_specs_from_env(os.environ), *args.api_key]
        keys = dict(parse_key_spec(spec) for spec in specs)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    options = {
        "allow_insecure_webhook_urls": not args.secure_webhook_urls,
        "webhook_backoff_base": args.webhook_backoff_base,
        "webhook_max_retries": args.webhook_max_retries,
        "webhook_timeout": args.webhook_timeout,
        "webhook_recording_wait_seconds": args.webhook_recording_wait,
        "default_recording_bytes": args.recording_bytes,
    }
    if args.agent_number:
        options["agent_numbers"] = tuple(args.agent_number)
    handle = start_sandbox(args.port, host=args.host, api_keys=keys, **options)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        if args.seed_calls:
            handle.state.simulate_calls(args.seed_calls, seed=0)
        ready = {"event": "sandbox_ready", "url": handle.url, "port": handle.port}
        print(json.dumps(ready), flush=True)
        stop.wait()
    finally:
        handle.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
