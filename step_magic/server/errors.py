"""The error replies of the local server, in StepFun's shape.

StepFun answers errors with ``{"error": {"message": …, "type": …}}`` and no ``code``
field; raising ``ApiError`` anywhere in request handling produces exactly that.
"""

from __future__ import annotations

import json

KEY_REGIONS_HINT = (
    "Keys from api.stepfun.com (mainland China) and api.stepfun.ai (international) are not "
    "interchangeable: use the key issued for the base URL you call."
)


class ApiError(Exception):
    """An HTTP error reply: status, StepFun error type, message and extra headers."""

    def __init__(
        self,
        status: int,
        error_type: str,
        message: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message
        self.headers = headers or {}

    def body(self) -> bytes:
        """Serialise the error the way StepFun does (no ``code`` field)."""
        return error_json(self.error_type, self.message)


def error_json(error_type: str, message: str) -> bytes:
    """Return the JSON bytes of one error object; also used for mid-stream error events."""
    payload = {"error": {"message": message, "type": error_type}}
    return json.dumps(payload, ensure_ascii=False).encode()


def invalid_params(message: str) -> ApiError:
    """A 400 ``request_params_invalid``, the error StepFun uses for any bad parameter."""
    return ApiError(400, "request_params_invalid", message)


def invalid_key(message: str = "Incorrect API key provided.") -> ApiError:
    """A 401 worded like StepFun's, plus the region hint people need most often."""
    return ApiError(401, "invalid_api_key", f"{message} {KEY_REGIONS_HINT}")
