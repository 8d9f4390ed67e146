"""Build each kind's controller with its dependencies (one place to see what uses what)."""
from __future__ import annotations

from ..api import KINDS
from ..config import Settings
from ..kube import Kube
from .base import Controller
from .placeholder import PlaceholderController


def build_controllers(settings: Settings, kube: Kube) -> dict[str, Controller]:
    """Controllers keyed by plural (``incidents``, ``driftchecks``, ``rollbacks``)."""
    return {kind.plural: PlaceholderController(kind) for kind in KINDS}
