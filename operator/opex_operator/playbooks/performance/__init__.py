"""The performance playbook: ``playbook`` (its class), ``metrics`` (what to read and the thresholds),
``assess`` (findings and causes), ``plan`` (the tuning changes)."""
