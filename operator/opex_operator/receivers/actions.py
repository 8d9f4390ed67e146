"""Write an acknowledgement or a step approval on an Incident, in a person's name.

The write is a merge patch of the Incident's spec made *as that person*: the operator
impersonates their Kubernetes username (``Impersonate-User``), so the API server's RBAC decides
whether they may patch Incidents there, and the admission policy (``api/approvals.py``) admits
the entry only because its ``by`` is the requester's own name, and refuses an approval by the
Incident's creator under the two-person rule. A click in Slack can do nothing that person could
not do with kubectl. A PagerDuty acknowledgement by someone the policy does not map is written
in the operator's own name, the note naming them.

Reads are the operator's own; each write carries the resourceVersion read (a race is read and
decided again), so an approval never replaces one written meanwhile. Methods block (call them
through ``asyncio.to_thread``).
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Callable, Protocol

from ..mapping import watched
from ..errors import KubeError
from ..kube import ObjectRef

# What an action writes, given the Incident as read: the merge patch (None: nothing to write) and the answer.
Change = Callable[[dict[str, Any]], tuple[dict[str, Any] | None, 'Result']]

ENDED = ("Resolved", "Failed", "Closed")
ATTEMPTS = 5


class IncidentWriter(Protocol):
    """The Kubernetes port the receivers write through (``kube.Kube``). Raises KubeError."""

    def get(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None: ...
    def list_objects(self, plural: str, namespace: str) -> list[dict[str, Any]]: ...
    def patch(self, ref: ObjectRef, body: dict[str, Any], resource_version: str | None = None) -> dict[str, Any]: ...
    def as_user(self, username: str) -> "IncidentWriter": ...
    def whoami(self) -> str: ...


class Outcome(StrEnum):
    RECORDED = "recorded"     # written in the person's name
    UNCHANGED = "unchanged"   # already so (acknowledged, approved), or the Incident ended
    REFUSED = "refused"       # the API server (RBAC, admission) or the Incident refused it
    IGNORED = "ignored"       # no such Incident here


@dataclass(frozen=True)
class Result:
    """What happened, in one line for the person who asked (a Slack reply) and the log."""

    outcome: Outcome
    message: str


def _ref(obj: dict[str, Any]) -> ObjectRef:
    meta = obj["metadata"]
    return ObjectRef("incidents", meta["namespace"], meta["name"], meta.get("uid", ""), "Incident")


def _refusal(err: KubeError) -> Result | None:
    """The API server's refusal as a Result (403: RBAC or the admission policy; 422: the schema)."""
    if err.forbidden or err.status == 422:
        return Result(Outcome.REFUSED, f"the API server refused it: {err.message}")
    return None


class Actions:
    """Acknowledge and approve through ``kube`` (see the module docstring). ``namespaces``: the
    globs the operator watches (an Incident elsewhere is not this operator's: ignored)."""

    def __init__(self, kube: IncidentWriter, namespaces: tuple[str, ...] = ()):
        self.kube, self.namespaces = kube, namespaces
        self._me: str | None = None

    def identity(self) -> str:
        """The operator's own username (asked once). Raises KubeError."""
        if self._me is None:
            self._me = self.kube.whoami()
        return self._me

    def find(self, namespace: str, uid: str, name: str | None = None) -> dict[str, Any] | None:
        """The Incident ``uid`` in ``namespace`` (by ``name`` when known, else among all there), None
        when there is none or the namespace is not watched. Raises KubeError."""
        if not watched(namespace, self.namespaces):
            return None
        if name is not None:
            candidates = [o for o in [self.kube.get("incidents", namespace, name)] if o]
        else:
            candidates = self.kube.list_objects("incidents", namespace)
        return next((o for o in candidates if o["metadata"].get("uid") == uid), None)

    def acknowledge(self, incident: dict[str, Any], username: str | None, note: str) -> Result:
        """Acknowledge ``incident`` as ``username`` (None: the operator itself) with ``note``; an
        Incident acknowledged already keeps its acknowledgement. Raises KubeError when the API
        server is unavailable."""
        who = username or self.identity()

        def change(obj: dict[str, Any]) -> tuple[dict[str, Any] | None, Result]:
            ack = (obj.get("spec") or {}).get("acknowledgement")
            if ack:
                return None, Result(Outcome.UNCHANGED, f"already acknowledged by {ack.get('by')}")
            return ({"spec": {"acknowledgement": {"by": who, "note": note[:1024]}}},
                    Result(Outcome.RECORDED, f"acknowledged as {who}"))

        return self._write(incident, username, change)

    def approve(self, incident: dict[str, Any], step: str, username: str) -> Result:
        """Approve ``step`` of ``incident`` as ``username`` (an entry of spec.remediation.approvals).
        Raises KubeError when the API server is unavailable."""
        def change(obj: dict[str, Any]) -> tuple[dict[str, Any] | None, Result]:
            remediation = (obj.get("spec") or {}).get("remediation") or {}
            steps = [s["id"] for s in (obj.get("status") or {}).get("steps", []) if s.get("mutating")]
            if step not in steps:
                return None, Result(Outcome.REFUSED, f"it has no remediation step {step} (its steps: "
                                                     f"{', '.join(steps) or 'none yet'})")
            approvals = list(remediation.get("approvals") or [])
            by = next((a.get("by") for a in approvals if a.get("step") == step), None)
            if by or step in (remediation.get("approvedSteps") or []):
                return None, Result(Outcome.UNCHANGED, f"{step} is already approved" + (f" by {by}" if by else ""))
            body = {"spec": {"remediation": {"approvals": [*approvals, {"step": step, "by": username}]}}}
            return body, Result(Outcome.RECORDED, f"approved {step} as {username}")

        return self._write(incident, username, change)

    def _write(self, incident: dict[str, Any], username: str | None, change: Change) -> Result:
        ref = _ref(incident)
        writer = self.kube.as_user(username) if username else self.kube
        for _ in range(ATTEMPTS):
            obj = self.kube.get("incidents", ref.namespace, ref.name)
            if obj is None or obj["metadata"].get("uid") != ref.uid:
                return Result(Outcome.IGNORED, f"Incident {ref.key} is gone")
            phase = (obj.get("status") or {}).get("phase")
            if phase in ENDED:
                return Result(Outcome.UNCHANGED, f"Incident {ref.key} is {phase} already")
            body, result = change(obj)
            if body is None:
                return result
            try:
                writer.patch(ref, body, obj["metadata"].get("resourceVersion"))
                return result
            except KubeError as err:
                if err.conflict:
                    continue
                refused = _refusal(err)
                if refused is None:
                    raise
                return refused
        return Result(Outcome.REFUSED, f"Incident {ref.key} kept changing; try again")
