"""Plain fakes of the on-call ports: the PagerDuty and Slack senders (``ports.notify``) and the
Kubernetes port the receivers write through (``receivers.actions.IncidentWriter``).

The sender fakes record what was sent and can fail like the real services (a refusal, a rate
limit). The writer fake keeps Incidents with resourceVersions and judges a write as the API
server would with the chart's admission policy: in the requester's own name only, and not by the
creator under the two-person rule; it records who asked for each write.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from opex_operator.api.approvals import CREATED_BY_ANNOTATION
from opex_operator.errors import KubeError
from opex_operator.kube import ObjectRef
from opex_operator.notify.http import RateLimited, SendError
from opex_operator.ports.notify import Posted


class FakePagerDutyPort:
    """``PagerDutyPort``: every event sent; ``fail`` raises it on the next send."""

    def __init__(self):
        self.events: list[dict[str, Any]] = []
        self.fail: SendError | None = None

    def send(self, event: dict[str, Any]) -> str:
        if self.fail is not None:
            err, self.fail = self.fail, None
            raise err
        self.events.append(copy.deepcopy(event))
        return event.get("dedup_key", "")


class FakeSlackPort:
    """``SlackPort``: messages per channel (updated in place, replies kept), webhook posts and
    replies to interactions; ``rate_limited`` seconds make the next call raise RateLimited."""

    def __init__(self):
        self.messages: dict[str, dict[str, Any]] = {}
        self.webhook_posts: list[dict[str, Any]] = []
        self.responses: list[tuple[str, str]] = []
        self.rate_limited: float | None = None
        self._seq = 0

    def _check(self) -> None:
        if self.rate_limited is not None:
            wait, self.rate_limited = self.rate_limited, None
            raise RateLimited(f"Slack is rate-limiting (HTTP 429); retry after {wait:.0f}s", wait)

    def post_message(self, token, channel, text, blocks=None, thread_ts=None) -> Posted:
        self._check()
        self._seq += 1
        ts = f"1700000000.{self._seq:06d}"
        self.messages[ts] = {"channel": channel, "text": text, "blocks": blocks, "thread_ts": thread_ts}
        return Posted(channel, ts)

    def update_message(self, token, channel, ts, text, blocks) -> None:
        self._check()
        if ts not in self.messages:
            raise SendError("Slack chat.update: message_not_found", 200)
        self.messages[ts].update(text=text, blocks=blocks)

    def post_webhook(self, url, text, blocks=None) -> None:
        self._check()
        self.webhook_posts.append({"text": text, "blocks": blocks})

    def respond(self, response_url, text) -> None:
        self._check()
        self.responses.append((response_url, text))


@dataclass
class FakeIncidentWriter:
    """``IncidentWriter`` over a dict of Incidents. ``two_person`` applies the two-person rule;
    ``user`` is who this view of it acts as (``as_user`` returns a view sharing the store);
    ``allowed`` are the users RBAC lets patch (None: everyone); ``writes`` records (user, body)."""

    store: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    identity: str = "system:serviceaccount:opex-system:opex"
    user: str | None = None
    two_person: bool = False
    allowed: set[str] | None = None
    writes: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    races: list[dict[str, Any]] = field(default_factory=list)  # spec changes others make before the next patches
    down: bool = False                       # the API server does not answer

    def add(self, incident: dict[str, Any]) -> dict[str, Any]:
        meta = incident["metadata"]
        meta.setdefault("resourceVersion", "1")
        self.store[(meta["namespace"], meta["name"])] = incident
        return incident

    def as_user(self, username: str) -> "FakeIncidentWriter":
        view = copy.copy(self)
        view.user = username
        return view

    def whoami(self) -> str:
        return self.user or self.identity

    def get(self, plural, namespace, name):
        if self.down:
            raise KubeError(0, "", "connection refused")
        found = self.store.get((namespace, name))
        return copy.deepcopy(found) if found else None

    def list_objects(self, plural, namespace):
        return [copy.deepcopy(o) for (ns, _), o in self.store.items() if ns == namespace]

    def patch(self, ref: ObjectRef, body: dict[str, Any], resource_version: str | None = None) -> dict[str, Any]:
        who = self.whoami()
        obj = self.store[(ref.namespace, ref.name)]
        if self.races:  # someone else wrote first: this write's resourceVersion is stale
            self._apply(obj, self.races.pop(0))
        if resource_version is not None and resource_version != obj["metadata"]["resourceVersion"]:
            raise KubeError(409, "Conflict", "the object has been modified")
        if self.allowed is not None and who not in self.allowed:
            raise KubeError(403, "Forbidden", f'incidents.opex.dev "{ref.name}" is forbidden: User "{who}" cannot '
                                              f'patch resource "incidents"')
        refusal = self._admission(obj, body.get("spec", {}), who)
        if refusal:
            raise KubeError(403, "Forbidden", refusal)
        self._apply(obj, body.get("spec", {}))
        self.writes.append((who, copy.deepcopy(body)))
        return copy.deepcopy(obj)

    @staticmethod
    def _apply(obj: dict[str, Any], change: dict[str, Any]) -> None:
        """A JSON merge patch of the spec, one level deep (what the receivers write)."""
        spec = obj.setdefault("spec", {})
        for key, value in change.items():
            spec[key] = {**spec[key], **value} if isinstance(value, dict) and isinstance(spec.get(key), dict) else value
        obj["metadata"]["resourceVersion"] = str(int(obj["metadata"]["resourceVersion"]) + 1)

    def _admission(self, obj: dict[str, Any], change: dict[str, Any], who: str) -> str | None:
        creator = (obj["metadata"].get("annotations") or {}).get(CREATED_BY_ANNOTATION)
        ack = change.get("acknowledgement")
        if ack and ack.get("by") != who:
            return f"spec.acknowledgement.by is {ack.get('by')}: ... yours is {who}"
        old = {(a["step"], a["by"]) for a in ((obj.get("spec") or {}).get("remediation") or {}).get("approvals", [])}
        for a in (change.get("remediation") or {}).get("approvals", []):
            if (a["step"], a["by"]) in old:
                continue
            if a["by"] != who:
                return f"spec.remediation.approvals: {a['step']} by {a['by']} is not in yours ({who})"
            if self.two_person and a["by"] == creator:
                return f"the two-person rule applies here: {creator} created this Incident and cannot approve it too"
        return None
