"""The deployment and pipeline playbook: ``playbook`` (its class), ``plan`` (the resolution steps).
The findings and root cause it shares with every type are in ``playbooks.diagnose``."""
