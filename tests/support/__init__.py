"""Shared test support: builders of realistic data and plain fakes of the ports (no test imports another)."""
