"""Kopf handlers only: importing this package registers them. No business logic lives here."""
from . import lifecycle, watch  # noqa: F401
