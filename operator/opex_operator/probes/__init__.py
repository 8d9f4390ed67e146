"""Checks against live endpoints (the runbook's ``curl`` and ``psql -c "SELECT 1"``), reporting
what they saw as ``runbooks.perf_facts`` results; never a password or header value."""
