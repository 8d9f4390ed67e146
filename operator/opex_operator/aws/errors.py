"""Classify botocore errors into what the runbook reports: denied, missing, transient, other."""
from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError, ReadTimeoutError

ACCESS_DENIED = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "UnauthorizedException",
                 "AuthorizationError", "NotAuthorized"}
NOT_FOUND_SUFFIXES = ("NotFound", "NotFoundException", "NoSuchEntity", "NoSuchBucket", "NoSuchKey",
                      "DBInstanceNotFound", "NoSuchDistribution")
THROTTLED = {"Throttling", "ThrottlingException", "TooManyRequestsException", "RequestLimitExceeded",
             "SlowDown", "ProvisionedThroughputExceededException"}


def code(err: BaseException) -> str:
    """The AWS error code of a ClientError ('' for other errors)."""
    if isinstance(err, ClientError):
        return err.response.get("Error", {}).get("Code", "") or ""
    return ""


def is_access_denied(err: BaseException) -> bool:
    return code(err) in ACCESS_DENIED


def is_not_found(err: BaseException) -> bool:
    c = code(err)
    return c.endswith(NOT_FOUND_SUFFIXES) or c in {"404", "ResourceNotFoundException"}


def is_transient(err: BaseException) -> bool:
    """Throttling, 5xx and connection failures: safe to retry a read, or an idempotent action."""
    if isinstance(err, (EndpointConnectionError, ReadTimeoutError)):
        return True
    if isinstance(err, ClientError):
        status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return code(err) in THROTTLED or status >= 500
    return isinstance(err, BotoCoreError)


def operation(err: BaseException) -> str:
    return getattr(err, "operation_name", "") or ""


def describe(err: BaseException, service: str = "") -> str:
    """One line for a condition or finding, e.g. ``AccessDenied on lambda:GetFunction: User ... is not authorized``.

    Never includes request parameters or credentials; AWS messages name ARNs, not secrets.
    """
    if isinstance(err, ClientError):
        where = f"{service}:{operation(err)}" if service else operation(err)
        message = err.response.get("Error", {}).get("Message", "") or str(err)
        status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if "<html" in message.lower() or "<!doctype" in message.lower():
            message = f"HTTP {status} without an AWS error body (the service, or an endpoint in front of it, failed)"
        return f"{code(err) or f'HTTP {status}'} on {where}: {' '.join(message.split())}"[:600]
    return f"{type(err).__name__}: {err}"[:600]


def outcome_label(status: int, error_code: str) -> str:
    """A bounded metrics label from an HTTP status and AWS error code: success, denied,
    not_found, throttled, client_error or server_error."""
    if status and status < 300 and not error_code:
        return "success"
    if error_code in ACCESS_DENIED:
        return "denied"
    if error_code in THROTTLED or status == 429:
        return "throttled"
    if error_code.endswith(NOT_FOUND_SUFFIXES) or error_code == "ResourceNotFoundException":
        return "not_found"
    return "server_error" if status >= 500 else "client_error"
