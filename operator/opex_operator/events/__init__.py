"""AWS events → Incidents: the operator's EventBridge intake (EventBridge rule → SQS queue → here).

* ``envelope``: a message body read into EventBridge events (the event itself, an SNS envelope, a
  CodeStar Notifications message; arrays and receive-message output for ``opex event explain``) (pure);
* ``kinds``: each event read by what it says happened: a failed pipeline execution or build, an
  alarm's state change, a GuardDuty finding (pure);
* ``mapping``: one event → one Incident (namespace, natural-key name, spec) through configurable
  rules (pure);
* ``intake``: writes each event's Incident through the Kubernetes port (``opex_operator.intake``),
  answering what an event leaves out (a pipeline build's execution) through AWS reads;
* ``consumer``: the SQS long-poll loop: receive, write, delete only once written.
"""
