"""Kopf handlers only: importing this package registers them. No business logic lives here."""
from . import alerts, lifecycle, receivers, watch, events  # noqa: F401  (events after lifecycle: it needs memo.runtime)
