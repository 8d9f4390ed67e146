"""Alertmanager → Incident: the operator's webhook intake (its own HTTP port).

* ``webhook``: the notification payload read and checked (pure), alert fingerprints;
* ``mapping``: one alert → one Incident (namespace, name, spec) through configurable rules (pure);
* ``intake``: writes each alert's Incident through the Kubernetes port, the dedup held in the object;
* ``server``: the HTTP endpoint (authentication, body limit, status codes).
"""
