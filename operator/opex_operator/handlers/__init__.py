"""Kopf handlers only: importing this package registers them. No business logic lives here."""
from . import alerts, lifecycle, receivers, watch  # noqa: F401
