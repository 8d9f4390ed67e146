"""The Alertmanager webhook endpoint: its own port and path (``OPEX_ALERT_INTAKE_*``), aiohttp.

Point an Alertmanager receiver at it::

    receivers:
      - name: opex
        webhook_configs:
          - url: http://opex-operator.opex-system:8082/alerts
            max_alerts: 0
            http_config:
              authorization: {type: Bearer, credentials_file: /etc/alertmanager/opex-token}

Replies, in the order they are checked (Alertmanager retries only 5xx):

* 401 without the configured bearer token or basic auth (the credentials files are re-read on
  every request, so a rotated Secret takes effect without a restart);
* 413 for a body over ``OPEX_ALERT_INTAKE_MAX_BODY_BYTES``;
* 400 with a one-line reason for a body that is not an Alertmanager notification;
* 503 when the API server did not take a write (the notification is retried whole; the dedup in
  each Incident makes the retry harmless);
* 422 with one line per alert that opened no Incident (no incident type, a namespace not
  watched, a spec the API server refuses), after the other alerts' Incidents were written;
* 200 with the Incidents written, only after they are in the API server.
"""
from __future__ import annotations

import base64
import binascii
import hmac
import logging
from pathlib import Path
from typing import Any

from aiohttp import web

from .. import metrics
from ..api.common import now as utcnow
from ..config import AlertIntakeSettings
from ..endpoint import Endpoint
from .intake import Intake, Unavailable
from .webhook import PayloadError, parse

log = logging.getLogger(__name__)


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError as err:  # a Secret being rotated: nobody gets in until it is back
        log.error("alert intake credentials unreadable: %s", err)
        return ""


def authorized(header: str, settings: AlertIntakeSettings) -> bool:
    """True when the ``Authorization`` header carries the configured bearer token or basic auth."""
    scheme, _, value = header.partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer" and settings.token_file is not None:
        token = _read(settings.token_file)
        return bool(token) and hmac.compare_digest(value.encode(), token.encode())
    if scheme.lower() == "basic" and settings.username and settings.password_file is not None:
        try:
            user, _, password = base64.b64decode(value, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        expected = _read(settings.password_file)
        user_ok = hmac.compare_digest(user.encode(), settings.username.encode())
        password_ok = hmac.compare_digest(password.encode(), expected.encode())  # both compared, always
        return bool(expected) and user_ok and password_ok
    return False


def _reply(status: int, text: str = "", headers: dict[str, str] | None = None, **json_body: Any) -> web.Response:
    metrics.ALERT_REQUESTS.labels(str(status)).inc()
    if json_body:
        return web.json_response(json_body, status=status)
    return web.Response(status=status, text=text + "\n", headers=headers)


class AlertIntakeServer(Endpoint):
    """Serves ``settings.path`` on ``settings.port``; ``start``/``stop`` from the operator's start-up."""

    def __init__(self, intake: Intake, settings: AlertIntakeSettings):
        super().__init__(settings.port, settings.max_body_bytes)
        self.intake, self.settings = intake, settings

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.settings.max_body_bytes)
        app.router.add_post(self.settings.path, self.receive)
        return app

    async def receive(self, request: web.Request) -> web.Response:
        """One webhook notification (see the module docstring for the replies)."""
        if not authorized(request.headers.get("Authorization", ""), self.settings):
            return _reply(401, "unauthorized: a bearer token or basic auth is required",
                          {"WWW-Authenticate": 'Bearer realm="opex-alert-intake"'})
        body = await self.body(request)
        if body is None:
            return _reply(413, f"the body is over {self.max_body_bytes} bytes (OPEX_ALERT_INTAKE_MAX_BODY_BYTES)")
        try:
            notification = parse(body, utcnow())
        except PayloadError as err:
            return _reply(400, f"not an Alertmanager notification: {err}")
        try:
            receipt = await self.intake.receive(notification)
        except Unavailable as err:
            log.warning("alert intake: %s; the sender will retry", err)
            return _reply(503, f"not written, retry: {err}")
        except Exception:  # noqa: BLE001 - a bug: logged, and the sender retries (5xx)
            log.exception("alert intake failed on a notification from %s", notification.receiver)
            return _reply(500, "internal error; see the operator's log")
        if receipt.refused:
            return _reply(422, "\n".join(r.reason for r in receipt.refused))
        return _reply(200, incidents=[{"namespace": w.ref.namespace, "name": w.ref.name, "outcome": w.outcome.value}
                                      if w.ref else {"outcome": w.outcome.value, "note": w.note}
                                      for w in receipt.written])
