"""botocore's exceptions turned into the project's :class:`~opex_operator.errors.AwsError`.

Every boto3 client the operator uses is wrapped (``aws.clients``) so that botocore's
``ClientError`` and ``BotoCoreError`` leave an adapter only as ``AwsError``.
"""
from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError, ConnectTimeoutError, HTTPClientError, ReadTimeoutError
from botocore.exceptions import ConnectionError as BotoConnectionError

from ..errors import NOT_FOUND_SUFFIXES, THROTTLED, AwsError, is_denied

BOTO_ERRORS = (ClientError, BotoCoreError)


def translate(err: BaseException, service: str, operation: str = "") -> AwsError:
    """The :class:`AwsError` for a botocore exception (one of :data:`BOTO_ERRORS`) raised by ``service``'s client."""
    if isinstance(err, ClientError):
        body = err.response.get("Error", {})
        status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0
        message = body.get("Message", "") or str(err)
        if "<html" in message.lower() or "<!doctype" in message.lower():
            message = f"HTTP {status} without an AWS error body (the service, or an endpoint in front of it, failed)"
        return AwsError(service, getattr(err, "operation_name", "") or operation, body.get("Code", "") or "", message,
                        status)
    timed_out = isinstance(err, (ReadTimeoutError, ConnectTimeoutError))
    # No answer (connection refused, reset, timed out) is worth retrying; a client-side error
    # such as ParamValidationError or NoCredentialsError is not.
    network = isinstance(err, (BotoConnectionError, HTTPClientError))
    return AwsError(service, operation, "", f"{type(err).__name__}: {err}", network=network, timed_out=timed_out)


def outcome_label(status: int, error_code: str) -> str:
    """A bounded metrics label from an HTTP status and AWS error code: success, denied,
    not_found, throttled, client_error or server_error."""
    if status and status < 300 and not error_code:
        return "success"
    if is_denied(error_code):
        return "denied"
    if error_code in THROTTLED or status == 429:
        return "throttled"
    if error_code.endswith(NOT_FOUND_SUFFIXES) or error_code == "ResourceNotFoundException":
        return "not_found"
    return "server_error" if status >= 500 else "client_error"
