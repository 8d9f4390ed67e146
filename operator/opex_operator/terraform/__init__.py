"""Terraform: the CLI adapter, plan-JSON parsing, drift reports and state locks."""
