"""One HTTP POST for every sender (webhook, PagerDuty, Slack): JSON out, rate limits honoured.

A ``429 Too Many Requests`` is waited out and retried when its ``Retry-After`` (seconds, or an
HTTP-date: RFC 9110 section 10.2.3) is short (``max_wait``); a longer one raises
:class:`RateLimited` with the seconds to wait, so the caller can come back later instead of holding
a worker. Without the header (PagerDuty's Events API sends none: "retry after some time") the
wait doubles from one second. Errors never carry the URL: a webhook's URL may hold its token.
"""
from __future__ import annotations

import email.utils
import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Callable

USER_AGENT = "opex-operator"
ATTEMPTS = 3


class SendError(RuntimeError):
    """A notification was not delivered. ``status`` is the HTTP status (0: no answer)."""

    def __init__(self, message: str, status: int = 0):
        super().__init__(message)
        self.status = status


class RateLimited(SendError):
    """Still rate-limited: come back after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: float):
        super().__init__(message, 429)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes

    def json(self) -> Any:
        """The body as JSON, or None when it is not JSON."""
        try:
            return json.loads(self.body or b"null")
        except ValueError:
            return None


def retry_after(header: str | None, now: float) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait (delta-seconds or an HTTP-date), None when absent
    or unreadable."""
    if not header:
        return None
    header = header.strip()
    if header.isdigit():
        return float(header)
    try:
        when = email.utils.parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


def post_json(url: str, payload: Any, headers: dict[str, str] | None = None, *, what: str, timeout: float = 10.0,
              max_wait: float = 10.0, sleep: Callable[[float], None] = time.sleep,
              clock: Callable[[], float] = time.time) -> Response:
    """POST ``payload`` as JSON; the answer (any status but 429). Raises RateLimited when a 429's wait
    is over ``max_wait`` seconds or the attempts ran out, SendError ("``what`` unreachable") on no
    answer."""
    body = json.dumps(payload).encode()
    headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": USER_AGENT, **(headers or {})}
    for attempt in range(ATTEMPTS):
        request = urllib.request.Request(url, data=body, method="POST", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as resp:
                return Response(resp.status, resp.read())
        except urllib.error.HTTPError as err:
            if err.code != 429:
                return Response(err.code, err.read())
            wait = retry_after(err.headers.get("Retry-After"), clock())
            wait = float(2 ** attempt) if wait is None else wait
            if wait > max_wait or attempt == ATTEMPTS - 1:
                raise RateLimited(f"{what} is rate-limiting (HTTP 429); retry after {wait:.0f}s", wait) from None
            sleep(wait)
        except (urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise SendError(f"{what} unreachable: {type(reason).__name__}") from None
    raise AssertionError("unreachable")  # the loop returns or raises
