"""The vendor's Call Results API routes (``/v1/voice/...``) and the signed recording URLs."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime

from flask import Flask, Response, g, jsonify, request

from ttma_sandbox.api_errors import ApiError, StorageError, invalid_parameter, not_found
from ttma_sandbox.api_keys import SCOPE_CALL, SCOPE_READ
from ttma_sandbox.calls import DIRECTIONS
from ttma_sandbox.clock import format_timestamp, parse_timestamp
from ttma_sandbox.recording_urls import EXPIRES_PARAM, PATH_PREFIX, SIGNATURE_PARAM
from ttma_sandbox.state import SandboxState
from ttma_sandbox.webhook_config import parse_webhook_request

DEFAULT_LIMIT = 25
MAX_LIMIT = 100
_REASON = re.compile(r"^[A-Za-z]{1,64}$")


def require_scope(state: SandboxState, scope: str) -> None:
    """401 without a known Bearer key, 403 (naming ``scope``) when the key lacks it."""
    header = request.headers.get("Authorization", "")
    scheme, _, key = header.partition(" ")
    if not header:
        raise ApiError(
            401,
            "missing_api_key",
            "Authorization: Bearer <API key> header is required",
            headers={"WWW-Authenticate": 'Bearer realm="ttma"'},
        )
    scopes = state.keys.scopes_for(key.strip()) if scheme.lower() == "bearer" else None
    if scopes is None:
        raise ApiError(
            401,
            "invalid_api_key",
            "The API key is not valid",
            headers={"WWW-Authenticate": 'Bearer realm="ttma", error="invalid_token"'},
        )
    if scope not in scopes:
        raise ApiError(
            403,
            "insufficient_scope",
            f"This API key lacks the {scope} scope",
            headers={"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{scope}"'},
            requiredScope=scope,
        )


def _timestamp_param(name: str) -> datetime | None:
    text = request.args.get(name)
    if text is None:
        return None
    try:
        return parse_timestamp(text)
    except ValueError:
        raise invalid_parameter(name, f"'{name}' must be an ISO 8601 timestamp") from None


def _limit_param() -> int:
    text = request.args.get("limit")
    if text is None:
        return DEFAULT_LIMIT
    if not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
        raise invalid_parameter("limit", f"'limit' must be an integer from 1 to {MAX_LIMIT}")
    return int(text)


def register_vendor_routes(app: Flask, state: SandboxState) -> None:
    @app.get("/v1/voice/calls/<call_id>")
    def get_call(call_id: str) -> Response:
        require_scope(state, SCOPE_READ)
        if not state.has_call(call_id):
            raise not_found("No call with this id")
        return jsonify({"data": state.call_view(call_id)})

    @app.get("/v1/voice/calls")
    def list_calls() -> Response:
        require_scope(state, SCOPE_READ)
        limit = _limit_param()
        direction = request.args.get("direction")
        ended_reason = request.args.get("endedReason")
        if direction is not None and direction not in DIRECTIONS:
            raise invalid_parameter("direction", "'direction' must be 'inbound' or 'outbound'")
        if ended_reason is not None and not _REASON.match(ended_reason):
            raise invalid_parameter("endedReason", "'endedReason' is not a valid end reason")
        if direction is not None and ended_reason is not None:
            raise ApiError(
                400,
                "conflicting_parameters",
                "Only one of 'direction' or 'endedReason' can be used per request",
            )
        after, before = _timestamp_param("after"), _timestamp_param("before")
        try:
            page = state.query_calls(
                limit=limit,
                cursor=request.args.get("cursor") or None,
                direction=direction,
                ended_reason=ended_reason,
                after=after,
                before=before,
            )
        except ValueError:
            raise invalid_parameter("cursor", "'cursor' is not a valid cursor") from None
        return jsonify(
            {
                "data": page.items,
                "pagination": {"hasMore": page.next_cursor is not None, "cursor": page.next_cursor},
            }
        )

    @app.get("/v1/voice/calls/<call_id>/recording")
    def get_recording(call_id: str) -> Response:
        require_scope(state, SCOPE_READ)
        if not state.has_call(call_id):
            raise not_found("No call with this id")
        if not state.recording_ready(call_id):
            raise not_found("No recording is available for this call")
        url, expires_at = state.issue_recording_url(call_id)
        return jsonify({"data": {"url": url, "expiresAt": format_timestamp(expires_at)}})

    @app.put("/v1/voice/webhooks")
    def configure_webhook() -> Response:
        require_scope(state, SCOPE_CALL)
        body = request.get_json(silent=True)
        from_number, url, secret, enabled = parse_webhook_request(
            body, allow_insecure=state.options.allow_insecure_webhook_urls
        )
        if from_number not in state.options.agent_numbers:
            raise not_found("No agent deployment uses this 'from' number")
        return jsonify({"data": state.configure_webhook(from_number, url, secret, enabled)})

    @app.get(PATH_PREFIX + "<file_name>")
    def download_recording(file_name: str) -> Response:
        if "Authorization" in request.headers:
            raise StorageError(
                400,
                "InvalidArgument",
                "A signed URL request must not carry an Authorization header.",
            )
        check = state.recording_urls.check(
            file_name,
            request.args.get(EXPIRES_PARAM, ""),
            request.args.get(SIGNATURE_PARAM, ""),
            state.clock.time(),
        )
        if check.problem == "signature" or check.call_id is None:
            raise StorageError(
                403, "SignatureDoesNotMatch", "The request signature does not match."
            )
        if check.problem == "expired":
            raise StorageError(
                state.options.expired_url_status,
                "ExpiredToken",
                "Invalid argument: request has expired.",
            )
        if not state.has_call(check.call_id) or not state.recording_ready(check.call_id):
            raise StorageError(404, "NoSuchKey", "The specified key does not exist.")
        size = state.recording_size(check.call_id)
        chunks: Iterator[bytes] = state.recording_chunks(
            check.call_id, limit=getattr(g, "truncate_after", None)
        )
        return Response(
            chunks,
            status=200,
            headers={"Content-Length": str(size), "Cache-Control": "private, max-age=0"},
            content_type="audio/mpeg",
            direct_passthrough=True,
        )
