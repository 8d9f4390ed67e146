"""The incident playbooks: one package per incident type, each holding what that type gathers,
how it assesses and classifies, which steps it plans and how a fix is judged (``base.Playbook``).
The Incident controller asks :func:`playbook_for` and decides nothing by type itself.
"""
from __future__ import annotations

from ..api.incident import IncidentType
from .base import Assessment, Classification, Context, Gathered, Limits, Playbook
from .deployment.playbook import DeploymentPlaybook
from .performance.playbook import PerformancePlaybook
from .security.playbook import SecurityPlaybook

_PLAYBOOKS: dict[str, Playbook] = {}


def register(playbook: Playbook) -> Playbook:
    """Make ``playbook`` the one of each of its ``types``; returns it."""
    for t in playbook.types:
        _PLAYBOOKS[str(t)] = playbook
    return playbook


def unregister(playbook: Playbook) -> None:
    """Remove ``playbook``'s types (a test's own type)."""
    for t in playbook.types:
        if _PLAYBOOKS.get(str(t)) is playbook:
            del _PLAYBOOKS[str(t)]


def playbook_for(incident_type: IncidentType | str) -> Playbook:
    """The playbook of ``incident_type``. Raises LookupError for a type nobody registered."""
    found = _PLAYBOOKS.get(str(incident_type))
    if found is None:
        raise LookupError(f"no playbook for incident type {incident_type}")
    return found


for _playbook in (DeploymentPlaybook(), PerformancePlaybook(), SecurityPlaybook()):
    register(_playbook)

__all__ = ["Assessment", "Classification", "Context", "Gathered", "Limits", "Playbook", "playbook_for", "register",
           "unregister"]
