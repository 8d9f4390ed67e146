"""Escalation policy and the notifiers that page people (SNS topics, a webhook)."""
