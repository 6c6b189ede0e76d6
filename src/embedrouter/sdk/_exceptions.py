"""The SDK's error tree, named as in the official OpenRouter SDKs.

    EmbedRouterError (alias OpenRouterError)
    ├── <Status>ResponseError    a JSON error envelope with an int ``error.code``; one class per
    │                            status: 400 401 402 403 404 408 413 429 499 500 502 503 504 524 529
    ├── OpenRouterDefaultError   any other 4XX/5XX, or an error body that is not JSON
    ├── ResponseValidationError  a body that does not match the documented shape
    ├── RequestValidationError   the request itself is invalid (caught before sending)
    └── APIConnectionError       the request never got an answer (also an httpx.TransportError)
        └── APITimeoutError      ... because a timeout ran out (also an httpx.TimeoutException)

``NoResponseError`` and the ``<Status>ResponseErrorData`` names exist so that code written against
``openrouter.errors`` finds what it references.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

_EMPTY_HEADERS = httpx.Headers()


@dataclass(frozen=True, slots=True)
class ErrorDetail:
    code: int
    message: str
    metadata: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class ErrorData:
    """The parsed envelope: ``data.error.code``, ``.message``, ``.metadata``, ``data.user_id``."""

    error: ErrorDetail
    user_id: str | None = None
    openrouter_metadata: dict[str, Any] | None = None


class EmbedRouterError(Exception):
    """Base of every SDK error; carries the HTTP exchange where there was one."""

    def __init__(self, message: str, *, status_code: int | None = None, body: str = "",
                 raw_response: httpx.Response | None = None, data: ErrorData | None = None
                 ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.body = body
        self.raw_response = raw_response
        self.headers = raw_response.headers if raw_response is not None else _EMPTY_HEADERS
        self.data = data

    def __str__(self) -> str:
        return self.message


OpenRouterError = EmbedRouterError


class APIResponseError(EmbedRouterError):
    """An error envelope from the server, typed by its status."""

    status: int = 0


def _typed(name: str, status: int) -> type[APIResponseError]:
    return type(name, (APIResponseError,), {"status": status, "__module__": __name__,
                                            "__doc__": f"HTTP {status} with an error envelope."})


BadRequestResponseError = _typed("BadRequestResponseError", 400)
UnauthorizedResponseError = _typed("UnauthorizedResponseError", 401)
PaymentRequiredResponseError = _typed("PaymentRequiredResponseError", 402)
ForbiddenResponseError = _typed("ForbiddenResponseError", 403)
NotFoundResponseError = _typed("NotFoundResponseError", 404)
RequestTimeoutResponseError = _typed("RequestTimeoutResponseError", 408)
PayloadTooLargeResponseError = _typed("PayloadTooLargeResponseError", 413)
TooManyRequestsResponseError = _typed("TooManyRequestsResponseError", 429)
ClientClosedRequestResponseError = _typed("ClientClosedRequestResponseError", 499)
InternalServerResponseError = _typed("InternalServerResponseError", 500)
BadGatewayResponseError = _typed("BadGatewayResponseError", 502)
ServiceUnavailableResponseError = _typed("ServiceUnavailableResponseError", 503)
GatewayTimeoutResponseError = _typed("GatewayTimeoutResponseError", 504)
EdgeNetworkTimeoutResponseError = _typed("EdgeNetworkTimeoutResponseError", 524)
ProviderOverloadedResponseError = _typed("ProviderOverloadedResponseError", 529)

BadRequestResponseErrorData = UnauthorizedResponseErrorData = ErrorData
PaymentRequiredResponseErrorData = ForbiddenResponseErrorData = ErrorData
NotFoundResponseErrorData = RequestTimeoutResponseErrorData = ErrorData
PayloadTooLargeResponseErrorData = TooManyRequestsResponseErrorData = ErrorData
ClientClosedRequestResponseErrorData = InternalServerResponseErrorData = ErrorData
BadGatewayResponseErrorData = ServiceUnavailableResponseErrorData = ErrorData
GatewayTimeoutResponseErrorData = EdgeNetworkTimeoutResponseErrorData = ErrorData
ProviderOverloadedResponseErrorData = ErrorData

ERROR_CLASSES: dict[int, type[APIResponseError]] = {
    cls.status: cls for cls in (
        BadRequestResponseError, UnauthorizedResponseError, PaymentRequiredResponseError,
        ForbiddenResponseError, NotFoundResponseError, RequestTimeoutResponseError,
        PayloadTooLargeResponseError, TooManyRequestsResponseError,
        ClientClosedRequestResponseError, InternalServerResponseError, BadGatewayResponseError,
        ServiceUnavailableResponseError, GatewayTimeoutResponseError,
        EdgeNetworkTimeoutResponseError, ProviderOverloadedResponseError,
    )
}


class OpenRouterDefaultError(EmbedRouterError):
    """A 4XX/5XX without a typed class, or whose body is not JSON."""


class ResponseValidationError(EmbedRouterError):
    """The server answered, but not in the documented shape."""

    def __init__(self, message: str, *, cause: BaseException | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.cause = cause


class RequestValidationError(EmbedRouterError):
    """The request was refused before sending: a required field missing or of the wrong type."""


class NoResponseError(Exception):
    """Official name, kept for imports; this SDK raises ``APIConnectionError`` instead."""

    def __init__(self, message: str = "No response received") -> None:
        super().__init__(message)
        self.message = message


class APIConnectionError(EmbedRouterError, httpx.TransportError):
    """No answer: the connection failed or was dropped. ``__cause__`` is the httpx error.

    Also an ``httpx.TransportError``, so code ported from the official SDK (which lets httpx's
    exceptions through) and catching those keeps working.
    """


class APITimeoutError(APIConnectionError, httpx.TimeoutException):
    """No answer within the timeout (also an ``httpx.TimeoutException``)."""
