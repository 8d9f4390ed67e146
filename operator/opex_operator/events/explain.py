"""What the event intake would do with each event of an input, without a cluster or AWS (pure).

``opex event explain`` prints it: the same envelope reading and mapping the intake runs, so a team
can try its rules (``--rules``) on real events before deploying them. A pipeline's build whose
execution the event does not name is looked up by the intake in CodePipeline; here it is said so,
with the Incident the build opens when no execution is found.
"""
from __future__ import annotations

from typing import Any

from ..ports.cloudtrail import TrailEvent
from ..runbooks import trail_changes
from .envelope import AwsEvent, EnvelopeError, events_in
from .mapping import EventRules, Ignored, Lookup, Mapped, Refused, map_event
from .trail import CLOUDTRAIL_CALL


def _event(event: AwsEvent) -> dict[str, Any]:
    return {"detailType": event.detail_type, "source": event.source, "id": event.id, "via": event.via,
            **({"account": event.account} if event.account else {}), **({"region": event.region} if event.region else {}),
            **({"time": event.time.isoformat()} if event.time else {})}


def _incident(m: Mapped) -> dict[str, Any]:
    spec = m.spec
    return {"kind": "Incident", "namespace": m.namespace, "name": m.name, "type": spec["type"],
            "severity": spec["severity"], "environment": spec["environment"], "title": spec["title"],
            "targets": spec.get("targets", {}), "occurrence": m.occurrence}


def explain(text: str | bytes, rules: EventRules, default_namespace: str,
            namespaces: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """One entry per event (or unreadable part) of ``text``: ``outcome`` is ``opens`` (opens the
    Incident, or adds to it), ``resolves`` (an alarm back to OK: resolves its Incident, opens none),
    ``ignored``, ``refused`` (with ``reason``), ``lookup`` (with the fallback ``incident``) or
    ``drift-trigger`` (a CloudTrail call, with the ``identifiers`` matched against DriftChecks' plans)."""
    out: list[dict[str, Any]] = []
    for item in events_in(text):
        if isinstance(item, EnvelopeError):
            out.append({"outcome": "refused", "reason": item.reason, "message": str(item)})
            continue
        entry: dict[str, Any] = {"event": _event(item)}
        if item.detail_type == CLOUDTRAIL_CALL:
            out.append({**entry, **_call(TrailEvent.from_record(item.detail))})
            continue
        result = map_event(item, rules, default_namespace, namespaces)
        if isinstance(result, Lookup):
            entry.update(outcome="lookup", lookup={"pipeline": result.pipeline, "buildId": result.build_id},
                         message=f"the intake asks CodePipeline which execution of {result.pipeline} ran build "
                                 f"{result.build_id} (codepipeline:GetPipelineState) and adds the build to that "
                                 f"execution's Incident; when none is found by the build's last try it opens this one")
            result = map_event(item, rules, default_namespace, namespaces, final=True)
        if isinstance(result, Mapped):
            entry.setdefault("outcome", "opens" if result.firing else "resolves")
            entry["incident"] = _incident(result)
        elif isinstance(result, Ignored):
            entry.update(outcome="ignored", message=result.why)
        elif isinstance(result, Refused):
            entry.update(outcome="refused", reason=result.reason, message=result.message)
        out.append(entry)
    return out


def _call(call: TrailEvent) -> dict[str, Any]:
    if not trail_changes.mutating(call):
        return {"outcome": "ignored", "message": f"{call.event_name} changed nothing (read-only, failed or a sign-in)"}
    found = sorted(trail_changes.identifiers(call), key=lambda i: (i.kind != "arn", i.where, i.value))
    return {"outcome": "drift-trigger", "identifiers": [{"value": i.value, "kind": i.kind, "where": i.where}
                                                         for i in found],
            "message": f"{call.event_name} by {call.principal or 'an unknown caller'}: opens no Incident; the "
                       f"DriftChecks with triggers.cloudTrail whose last plan manages one of its identifiers run "
                       f"and name the caller"}
