"""``/_sandbox/...``: drive a sandbox running in another process (the local stack's).

No authentication: the sandbox only ever binds 127.0.0.1. Faults never apply here.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from flask import Flask, Response, jsonify, request

from ttma_sandbox.api_errors import ApiError, not_found
from ttma_sandbox.api_keys import ALL_SCOPES
from ttma_sandbox.state import SandboxOptions, SandboxState

CONTROL_PREFIX = "/_sandbox"
_BATCH_KEYS = {"count", "seed", "spacing_seconds", "recording_bytes", "agent_number", "deliver"}


def _json_object() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if body is None and not request.get_data():
        return {}
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_body", "Request body must be a JSON object")
    return body


def _call_with(function: Any, arguments: dict[str, Any]) -> Any:
    """Call with keyword arguments from JSON; bad names or values are a 400, not a 500."""
    try:
        return function(**arguments)
    except TypeError as error:
        raise ApiError(400, "invalid_parameter", f"unexpected or missing option: {error}") from None
    except ValueError as error:
        raise ApiError(400, "invalid_parameter", str(error)) from None


def register_control_routes(app: Flask, state: SandboxState) -> None:
    @app.get(f"{CONTROL_PREFIX}/health")
    def health() -> Response:
        return jsonify({"status": "ok", "now": state.now_text()})

    @app.post(f"{CONTROL_PREFIX}/calls")
    def simulate() -> Response:
        body = _json_object()
        if "count" in body:
            unknown = set(body) - _BATCH_KEYS
            if unknown:
                raise ApiError(400, "invalid_parameter", f"unknown batch options {sorted(unknown)}")
            calls = _call_with(state.simulate_calls, body)
        else:
            calls = [_call_with(state.simulate_call, body)]
        return jsonify({"data": calls})

    @app.post(f"{CONTROL_PREFIX}/calls/<call_id>/deliver")
    def deliver(call_id: str) -> Response:
        if not state.has_call(call_id):
            raise not_found("No call with this id")
        delivery_id = _call_with(lambda **kw: state.deliver(call_id, **kw), _json_object())
        return jsonify({"deliveryId": delivery_id})

    @app.get(f"{CONTROL_PREFIX}/calls/<call_id>/recording-digest")
    def recording_digest(call_id: str) -> Response:
        if not state.has_call(call_id):
            raise not_found("No call with this id")
        return jsonify(dataclasses.asdict(state.expected_recording(call_id)))

    @app.post(f"{CONTROL_PREFIX}/clock/advance")
    def advance_clock() -> Response:
        seconds = _json_object().get("seconds")
        if isinstance(seconds, bool) or not isinstance(seconds, int | float):
            raise ApiError(400, "invalid_parameter", "'seconds' must be a number")
        return jsonify({"now": state.now_text(), "offsetSeconds": _advance(state, seconds)})

    @app.get(f"{CONTROL_PREFIX}/faults")
    def list_faults() -> Response:
        return jsonify({"data": state.faults.pending()})

    @app.post(f"{CONTROL_PREFIX}/faults")
    def add_fault() -> Response:
        fault = _call_with(state.faults.add, _json_object())
        return jsonify({"data": fault.to_dict()})

    @app.delete(f"{CONTROL_PREFIX}/faults")
    def clear_faults() -> Response:
        state.faults.clear()
        return jsonify({"data": []})

    @app.get(f"{CONTROL_PREFIX}/deliveries")
    def deliveries() -> Response:
        wait = request.args.get("wait", type=float)
        idle = state.sender.wait_idle(min(wait, 120.0)) if wait else None
        return jsonify({"data": state.deliveries(), "idle": idle})

    @app.get(f"{CONTROL_PREFIX}/webhooks")
    def webhooks() -> Response:
        return jsonify({"data": state.webhooks()})

    @app.get(f"{CONTROL_PREFIX}/requests")
    def requests_log() -> Response:
        return jsonify({"data": state.requests(request.args.get("prefix", "/"))})

    @app.post(f"{CONTROL_PREFIX}/keys")
    def create_key() -> Response:
        scopes = _json_object().get("scopes", sorted(ALL_SCOPES))
        if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
            raise ApiError(400, "invalid_parameter", "'scopes' must be a list of scope names")
        key = _call_with(state.add_api_key, {"scopes": scopes})
        return jsonify({"apiKey": key, "scopes": sorted(scopes)})

    @app.patch(f"{CONTROL_PREFIX}/options")
    def set_options() -> Response:
        body = _json_object()
        known = {f.name: f for f in dataclasses.fields(SandboxOptions)}
        unknown = set(body) - set(known)
        if unknown:
            raise ApiError(400, "invalid_parameter", f"unknown options {sorted(unknown)}")
        for name, value in body.items():
            if name == "agent_numbers":
                value = tuple(value)
            setattr(state.options, name, value)
        return jsonify({"data": dataclasses.asdict(state.options)})

    @app.post(f"{CONTROL_PREFIX}/reset")
    def reset() -> Response:
        state.reset()
        return jsonify({"status": "reset"})


def _advance(state: SandboxState, seconds: float) -> float:
    state.clock.advance(seconds)
    return state.clock.offset
