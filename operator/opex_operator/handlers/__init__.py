"""Kopf handlers only: importing this package registers them. No business logic lives here."""
from . import driftcheck, incident, lifecycle, rollback  # noqa: F401
