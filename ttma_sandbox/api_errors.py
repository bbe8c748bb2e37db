"""The sandbox's error answers.

Vendor API errors are JSON: ``{"error": {"code": "...", "message": "..."}}`` plus, for some
codes, one extra field (``param`` for a bad query parameter, ``requiredScope`` for a 403).
Signed recording URLs answer like Cloud Storage instead: an XML ``<Error><Code>...`` body.
Messages never echo API keys, secrets or signed URL parameters.
"""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify


class ApiError(Exception):
    """An error answer of the vendor API."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.extra = extra

    def to_response(self) -> Response:
        body = {"error": {"code": self.code, "message": self.message, **self.extra}}
        response = jsonify(body)
        response.status_code = self.status
        response.headers.update(self.headers)
        return response


class StorageError(Exception):
    """An error answer of a signed recording URL (Cloud Storage style XML)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def to_response(self) -> Response:
        body = (
            "<?xml version='1.0' encoding='UTF-8'?>"
            f"<Error><Code>{self.code}</Code><Message>{self.message}</Message></Error>"
        )
        return Response(body, status=self.status, content_type="application/xml; charset=UTF-8")


def invalid_parameter(param: str, message: str) -> ApiError:
    return ApiError(400, "invalid_parameter", message, param=param)


def not_found(message: str) -> ApiError:
    return ApiError(404, "not_found", message)
