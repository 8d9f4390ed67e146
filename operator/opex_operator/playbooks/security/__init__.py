"""The security playbook: ``playbook`` (its class), ``gather`` (the investigation's reads),
``investigation`` and ``blast_radius`` (findings and classification), ``response`` (the steps)."""
