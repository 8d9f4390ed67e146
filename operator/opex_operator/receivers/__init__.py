"""The on-call receivers: what people do in PagerDuty and Slack, written on the Incident in their name.

* ``signatures``: request verification (PagerDuty's ``X-PagerDuty-Signature``, Slack's signing
  secret), pure;
* ``pagerduty``: a v3 webhook body read (pure);
* ``slack``: an interactivity request read (pure);
* ``actions``: the acknowledgement or approval written through the Kubernetes port, impersonating
  the person (the API server's RBAC and admission policy judge it as theirs);
* ``server``: the HTTP endpoints (its own port, beside the Alertmanager intake).
"""


class PayloadError(ValueError):
    """A request body is not what PagerDuty or Slack send; the message says what is wrong."""
