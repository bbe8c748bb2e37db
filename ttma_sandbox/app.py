"""The sandbox's Flask app: vendor routes, control routes, fault injection, request log."""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from email.utils import format_datetime

from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException

from ttma_sandbox.api_errors import ApiError, StorageError
from ttma_sandbox.control_api import CONTROL_PREFIX, register_control_routes
from ttma_sandbox.faults import Fault
from ttma_sandbox.recording_urls import PATH_PREFIX
from ttma_sandbox.state import SandboxState
from ttma_sandbox.vendor_api import register_vendor_routes

logger = logging.getLogger(__name__)
_FAULT_CODES = {
    429: ("rate_limited", "Too many requests"),
    500: ("internal_error", "Internal server error"),
    502: ("bad_gateway", "Bad gateway"),
    503: ("service_unavailable", "Service temporarily unavailable"),
    504: ("gateway_timeout", "Gateway timeout"),
}


def _retry_after_value(state: SandboxState, fault: Fault) -> str:
    seconds = float(fault.retry_after or 0)
    if fault.retry_after_format == "http-date":
        return format_datetime(state.clock.now() + timedelta(seconds=seconds), usegmt=True)
    return str(int(seconds)) if seconds.is_integer() else str(seconds)


def _fault_response(state: SandboxState, fault: Fault) -> Response:
    status = fault.status or 500
    code, message = _FAULT_CODES.get(status, ("injected_error", "Injected error"))
    headers = {}
    if fault.retry_after is not None:
        headers["Retry-After"] = _retry_after_value(state, fault)
    if request.path.startswith(PATH_PREFIX):
        response = StorageError(status, code, message).to_response()
        response.headers.update(headers)
        return response
    return ApiError(status, code, message, headers=headers).to_response()


def create_app(state: SandboxState) -> Flask:
    app = Flask("ttma_sandbox")
    app.json.sort_keys = False  # type: ignore[attr-defined] - keep the documented field order
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    app.json.compact = True  # type: ignore[attr-defined]

    @app.before_request
    def inject_fault() -> Response | None:
        if request.path.startswith(CONTROL_PREFIX):
            return None
        fault = state.faults.take(request.method, request.path)
        if fault is None:
            return None
        if fault.delay:
            time.sleep(fault.delay)
        if fault.status is not None:
            return _fault_response(state, fault)
        g.truncate_after = fault.truncate_after
        return None

    @app.after_request
    def log_request(response: Response) -> Response:
        if not request.path.startswith(CONTROL_PREFIX):
            signed_url = request.path.startswith(PATH_PREFIX)
            state.log_request(
                {
                    "method": request.method,
                    "path": request.path,
                    # Signed URL parameters are credentials: never kept.
                    "query": {} if signed_url else request.args.to_dict(),
                    "status": response.status_code,
                    "hasAuthorization": "Authorization" in request.headers,
                }
            )
        return response

    @app.errorhandler(ApiError)
    def api_error(error: ApiError) -> Response:
        return error.to_response()

    @app.errorhandler(StorageError)
    def storage_error(error: StorageError) -> Response:
        return error.to_response()

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        status = error.code or 500
        code = (error.name or "error").lower().replace(" ", "_")
        return ApiError(status, code, error.name or "Error").to_response()

    @app.errorhandler(Exception)
    def unexpected_error(error: Exception) -> Response:
        logger.exception("sandbox bug while answering %s %s", request.method, request.path)
        return ApiError(500, "internal_error", "Internal server error").to_response()

    register_vendor_routes(app, state)
    register_control_routes(app, state)
    return app
