"""A Prometheus instant query over its HTTP API, for a step's bake window (``POST /api/v1/query``).

The answer's envelope is ``{"status": "success"|"error", "data": {"resultType", "result"},
"errorType", "error", "warnings"}``; a vector's samples are ``{"metric": {...}, "value": [time,
"value"]}``, a scalar is ``[time, "value"]``, and values are strings because JSON has no NaN or
Inf. Prometheus answers 400 for a bad query, 422 for one it cannot execute and 503 when it timed
out. Source: Prometheus docs, "HTTP API" (docs/querying/api.md). The query goes in a form body
(POST), so a long one never meets a URL length limit. Blocking (call it through a thread); errors
are :class:`~opex_operator.errors.PrometheusError`.
"""
from __future__ import annotations

import json
import socket
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from .errors import PrometheusError
from .ports.verification import QueryResult, Sample

TIMEOUT = 10.0


def parse_answer(body: bytes | str, status: int = 200) -> QueryResult:
    """The result of an instant query's answer (``body``, HTTP ``status``). Raises PrometheusError:
    ``refused`` for Prometheus' own refusal of the query, otherwise for an answer that is not one."""
    try:
        answer = json.loads(body)
    except ValueError:
        raise PrometheusError(f"HTTP {status}: not a Prometheus API answer") from None
    if not isinstance(answer, dict) or answer.get("status") != "success":
        error = answer.get("error") if isinstance(answer, dict) else None
        kind = answer.get("errorType") if isinstance(answer, dict) else None
        raise PrometheusError(f"HTTP {status} {kind or 'error'}: {error or 'no error given'}",
                              refused=kind in ("bad_data", "execution") or status in (400, 422))
    data = answer.get("data") or {}
    kind, result = data.get("resultType"), data.get("result")
    if kind == "vector":
        return QueryResult("vector", tuple(Sample(tuple(sorted((item.get("metric") or {}).items())),
                                                  float(item["value"][1])) for item in result or []))
    if kind == "scalar" and isinstance(result, list):
        return QueryResult("scalar", (Sample((), float(result[1])),))
    return QueryResult(str(kind), ())


class Prometheus:
    """Instant queries to the Prometheus at ``url`` (``http://prometheus.monitoring:9090``), with the
    bearer token in ``token_file`` when given (re-read on each query: a mounted Secret rotates)."""

    def __init__(self, url: str, token_file: Path | None = None, timeout: float = TIMEOUT):
        self.url, self.token_file, self.timeout = url.rstrip("/"), token_file, timeout

    def instant(self, query: str) -> QueryResult:
        """``query`` evaluated now. Raises PrometheusError."""
        request = urllib.request.Request(f"{self.url}/api/v1/query", method="POST",
                                         data=urllib.parse.urlencode({"query": query}).encode(),
                                         headers={"Content-Type": "application/x-www-form-urlencoded"})
        if self.token_file is not None:
            request.add_header("Authorization", f"Bearer {self.token_file.read_text().strip()}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return parse_answer(response.read(), response.status)
        except urllib.error.HTTPError as err:
            parse_answer(err.read(), err.code)  # raises Prometheus' own error
            raise PrometheusError(f"HTTP {err.code} from Prometheus") from None
        except (urllib.error.URLError, socket.timeout, ConnectionError, OSError) as err:
            where = urllib.parse.urlsplit(self.url)
            raise PrometheusError(f"Prometheus at {where.hostname}:{where.port or 'default port'} cannot be reached: "
                                  f"{getattr(err, 'reason', err)}") from None
