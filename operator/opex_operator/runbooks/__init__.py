"""The runbook engine: facts → findings → root cause → remediation plan → next step.

Pure code: no Kopf, no boto3. Readers and actions are passed in (``runbooks.ports``), so the
engine's tests use plain fakes and the integration tests the real adapters.
"""
