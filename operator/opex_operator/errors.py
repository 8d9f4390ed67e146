"""The project's error types: what adapters raise and callers catch (no third-party types).

Adapters translate their libraries' exceptions at the edge (``aws.clients`` for botocore,
``kube`` for the kubernetes client, ``terraform.runner`` for the CLI), so controllers and the
runtime catch these types only. Source of the AWS codes: the AWS API references' "Common
Errors" and each service's error list; botocore's retry handler treats the same codes as
throttling.
"""
from __future__ import annotations

from .api.common import truncate

ACCESS_DENIED = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "UnauthorizedException",
                 "AuthorizationError", "NotAuthorized"}
NOT_FOUND_SUFFIXES = ("NotFound", "NotFoundException", "NoSuchEntity", "NoSuchBucket", "NoSuchKey",
                      "DBInstanceNotFound", "NoSuchDistribution", "NonexistentItemException")
THROTTLED = {"Throttling", "ThrottlingException", "TooManyRequestsException", "RequestLimitExceeded",
             "SlowDown", "ProvisionedThroughputExceededException"}
MAX_MESSAGE = 600


def is_denied(code: str | None) -> bool:
    """True when an AWS error code says the caller was not allowed, in any of AWS's spellings:
    ``AccessDenied``, ``AccessDeniedException``, ``UnauthorizedOperation`` (EC2, recorded in
    CloudTrail as ``Client.UnauthorizedOperation``), ``*NotAuthorized*`` (e.g. Cognito's
    ``NotAuthorizedException``), SNS's ``AuthorizationError``. Source: each service's API
    reference, "Common Errors"; CloudTrail User Guide, "errorCode" in "CloudTrail record contents"."""
    bare = (code or "").strip().removeprefix("Client.").removeprefix("Server.")
    return (bare in ACCESS_DENIED or bare.startswith("AccessDenied") or "NotAuthorized" in bare
            or bare.startswith("Unauthorized"))


class AwsError(Exception):
    """An AWS call failed.

    ``service`` is the IAM service prefix (``lambda``), ``operation`` the API operation
    (``GetFunction``), ``code`` the AWS error code ('' for a network or client-side failure),
    ``status`` the HTTP status (0 when there was no answer), ``message`` AWS's own message
    (never request parameters or credentials).
    """

    def __init__(self, service: str, operation: str, code: str, message: str, status: int = 0,
                 network: bool = False, timed_out: bool = False):
        self.service, self.operation, self.code, self.status = service, operation, code, status
        self.message, self.network, self.timed_out = " ".join(message.split()), network, timed_out
        super().__init__(self.describe())

    @property
    def action(self) -> str:
        """``service:Operation`` as IAM names it, e.g. ``lambda:GetFunction``."""
        return f"{self.service}:{self.operation}" if self.service else self.operation

    @property
    def denied(self) -> bool:
        return is_denied(self.code)

    @property
    def not_found(self) -> bool:
        return self.code.endswith(NOT_FOUND_SUFFIXES) or self.code in {"404", "ResourceNotFoundException"}

    @property
    def throttled(self) -> bool:
        return self.code in THROTTLED or self.status == 429

    @property
    def transient(self) -> bool:
        """Throttling, 5xx, timeouts and connection failures: safe to retry a read or an idempotent action."""
        return self.network or self.throttled or self.status >= 500

    def describe(self) -> str:
        """One line for a condition or finding, e.g. ``AccessDenied on lambda:GetFunction: User ... is not
        authorized ...``."""
        what = self.code or (f"HTTP {self.status}" if self.status else "no answer")
        return truncate(f"{what} on {self.action}: {self.message}", MAX_MESSAGE)


class KubeError(Exception):
    """A Kubernetes API call failed: ``status`` (HTTP; 0 when the API server did not answer),
    ``reason`` (the Status object's reason, e.g. NotFound, Conflict, Invalid) and the API server's
    own one-line message (never response headers or bodies)."""

    def __init__(self, status: int, reason: str, message: str, what: str = ""):
        self.status, self.reason, self.what = status, reason, what
        self.message = " ".join(message.split())
        super().__init__(self.describe())

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def conflict(self) -> bool:
        """409: the object exists already, or changed since it was read."""
        return self.status == 409

    @property
    def forbidden(self) -> bool:
        """403: RBAC, or an admission policy, refused the request (the message says which and why)."""
        return self.status == 403

    @property
    def too_large(self) -> bool:
        """413/422 for an object over the API server's size limits."""
        return self.status == 413 or (self.status == 422 and "too long" in self.message.lower())

    @property
    def transient(self) -> bool:
        return self.status in (0, 429) or self.status >= 500

    def describe(self) -> str:
        code = f"HTTP {self.status} {self.reason}".strip() if self.status else "no answer from the API server"
        where = f"{self.what}: " if self.what else ""
        return truncate(f"{where}{code}: {self.message}", MAX_MESSAGE)


class PrometheusError(Exception):
    """A Prometheus query failed: ``refused`` when Prometheus answered that the query is wrong (HTTP
    400 bad_data, 422 execution), else it could not be asked or did not answer in time (``message``
    says which; never the URL's credentials)."""

    def __init__(self, message: str, refused: bool = False):
        self.message, self.refused = " ".join(message.split())[:MAX_MESSAGE], refused
        super().__init__(self.message)
