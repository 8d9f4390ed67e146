"""Tables and descriptions of the three kinds, as plain data for rich (pure: unit-tested)."""
from __future__ import annotations

import datetime as dt
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from ..api.approvals import CREATED_BY_ANNOTATION
from ..guardrails.gates import GateResult
from ..terraform.plan import PlanSet, PlanSummary

GOOD = {"Resolved", "Closed", "Succeeded", "NoDrift"}
BAD = {"Failed", "Aborted", "DriftDetected", "PlanFailed", "LockHeld"}
WAITING = {"AwaitingApproval", "Remediating", "Verifying", "InProgress", "Pending"}
PLURAL = {"incident": "incidents", "driftcheck": "driftchecks", "rollback": "rollbacks"}


def age(timestamp: str | None, now: dt.datetime) -> str:
    """kubectl-style age: 45s, 12m, 3h, 2d."""
    if not timestamp:
        return "-"
    seconds = max(0, int((now - dt.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def styled(value: str | None) -> Text:
    value = value or "-"
    style = "green" if value in GOOD else "red" if value in BAD else "yellow" if value in WAITING else ""
    return Text(value, style=style)


def _ready(obj: dict) -> str:
    cond = next((c for c in (obj.get("status") or {}).get("conditions", []) if c["type"] == "Ready"), None)
    return f"{cond['status']}/{cond['reason']}" if cond else "-"


COLUMNS: dict[str, list[tuple[str, Any]]] = {
    "incidents": [
        ("TYPE", lambda o: o["spec"].get("type")),
        ("SEVERITY", lambda o: ((o.get("status") or {}).get("classification") or {}).get("severity")
         or o["spec"].get("severity")),
        ("PHASE", lambda o: styled((o.get("status") or {}).get("phase"))),
        ("ROOT CAUSE", lambda o: ((o.get("status") or {}).get("rootCause") or {}).get("category", "-")),
        ("ACKED BY", lambda o: (o["spec"].get("acknowledgement") or {}).get("by", "-")),
        ("WAITING FOR", lambda o: ", ".join(s["id"] for s in (o.get("status") or {}).get("steps", [])
                                            if s["state"] == "AwaitingApproval") or "-"),
    ],
    "driftchecks": [
        ("SCHEDULE", lambda o: " | ".join(o["spec"].get("schedule", [])) + f" {o['spec'].get('timeZone', 'UTC')}"),
        ("LAST RESULT", lambda o: styled(((o.get("status") or {}).get("lastResult") or {}).get("outcome"))),
        ("DRIFTED", lambda o: str((o.get("status") or {}).get("driftedCount", "-"))),
        ("NEXT RUN", lambda o: ((o.get("status") or {}).get("nextScheduleTime") or "-").replace("T", " ")),
    ],
    "rollbacks": [
        ("TARGET", lambda o: (o.get("status") or {}).get("target", "-")),
        ("PHASE", lambda o: styled((o.get("status") or {}).get("phase"))),
        ("FROM", lambda o: ((o.get("status") or {}).get("from") or {}).get("description", "-")),
        ("TO", lambda o: ((o.get("status") or {}).get("to") or {}).get("description", "-")),
    ],
}


def table(plural: str, items: list[dict], now: dt.datetime, all_namespaces: bool) -> Table:
    """One kind's objects as a table: name, the kind's columns, Ready, age."""
    t = Table(box=None, header_style="bold", pad_edge=False)
    for header in (["NAMESPACE"] if all_namespaces else []) + ["NAME"] + [h for h, _ in COLUMNS[plural]] + \
            ["READY", "AGE"]:
        t.add_column(header, no_wrap=True)  # one line per object, as kubectl get
    for obj in items:
        cells = [obj["metadata"]["namespace"]] if all_namespaces else []
        cells.append(obj["metadata"]["name"])
        values = [cell(obj) for _, cell in COLUMNS[plural]]
        cells += [v if isinstance(v, Text) else str(v or "-") for v in values]
        cells += [_ready(obj), age(obj["metadata"].get("creationTimestamp"), now)]
        t.add_row(*cells)
    return t


def _kv(rows: list[tuple[str, Any]]) -> Table:
    t = Table(box=None, show_header=False, pad_edge=False)
    t.add_column(style="bold")
    t.add_column()
    for key, value in rows:
        if value not in (None, "", []):
            t.add_row(key, value if isinstance(value, Text) else _plain(value))
    return t


def _plain(value: Any) -> str:
    return ("yes" if value else "no") if isinstance(value, bool) else str(value)


def _acting(acting: str | None, spec: str | None) -> str:
    """What the operator acts under (from status), or the spec's value until it has read it."""
    return acting if acting else f"{spec or '-'} (not read by the operator yet)"


def _pair(resolution: dict | None) -> str | None:
    return f"{resolution.get('strategy')} / {resolution.get('approval')}" if resolution else None


def _section(title: str) -> Text:
    return Text(f"\n{title}", style="bold underline")


def _rows(headers: list[str], rows: list[list[Any]]) -> Table:
    t = Table(box=None, header_style="bold", pad_edge=False)
    for h in headers:
        t.add_column(h, overflow="fold")
    for r in rows:
        t.add_row(*[c if isinstance(c, Text) else ("-" if c in (None, "") else str(c)) for c in r])
    return t


def _conditions(status: dict) -> Table:
    return _rows(["TYPE", "STATUS", "REASON", "MESSAGE"],
                 [[c["type"], c["status"], c["reason"], c["message"]] for c in status.get("conditions", [])])


def _timeline(status: dict, limit: int = 20) -> Table:
    return _rows(["TIME", "REASON", "MESSAGE"], [[t["time"], Text(t["reason"], style="yellow" if t.get("type") ==
                                                                   "Warning" else ""), t["message"]]
                                                  for t in status.get("timeline", [])[-limit:]])


def describe(kind: str, obj: dict) -> Group:
    """Everything a person on call needs about one object, in reading order."""
    return {"incident": describe_incident, "driftcheck": describe_driftcheck, "rollback": describe_rollback}[kind](obj)


def _severity(spec: dict, status: dict) -> str | None:
    """spec.severity, or the classification's with what was declared when evidence raised it."""
    c = status.get("classification") or {}
    if c.get("raised"):
        return f"{c['severity']} (declared {c['declaredSeverity']}; raised on evidence)"
    return spec.get("severity")


def _acknowledged(spec: dict, status: dict) -> str | None:
    ack = spec.get("acknowledgement")
    if not ack:
        return None
    seen = (status.get("acknowledgement") or {}).get("acknowledgedAt")
    return f"{ack['by']}" + (f" at {seen}" if seen else "") + (f": {ack['note']}" if ack.get("note") else "")


def describe_incident(obj: dict) -> Group:
    spec, st, meta = obj["spec"], obj.get("status") or {}, obj["metadata"]
    esc = st.get("escalation") or {}
    parts: list[Any] = [_kv([("Incident", f"{meta['namespace']}/{meta['name']}"), ("Title", spec.get("title")),
                             ("Type", spec.get("type")), ("Severity", _severity(spec, st)),
                             ("Environment", spec.get("environment")), ("Phase", styled(st.get("phase"))),
                             ("Mode", _acting((st.get("remediation") or {}).get("mode"),
                                              (spec.get("remediation") or {}).get("mode"))),
                             ("Created by", (meta.get("annotations") or {}).get(CREATED_BY_ANNOTATION)),
                             ("Acknowledged", _acknowledged(spec, st)),
                             ("Detected", st.get("detectedAt")), ("Assessed", st.get("assessedAt")),
                             ("Resolved", st.get("resolvedAt"))])]
    cause = st.get("rootCause")
    if cause:
        parts += [_section("Root cause"), _kv([("Category", styled(cause["category"])), ("Summary", cause["summary"]),
                                              ("Evidence", ", ".join(cause.get("evidence", []))),
                                              ("Lock", (cause.get("lock") or {}).get("id"))])]
    if st.get("findings"):
        parts += [_section("Findings"), _rows(["ID", "SOURCE", "SEVERITY", "RESOURCE", "OBSERVED"], [
            [f["id"], f["source"], styled(f.get("severity")), f["resource"], f["observed"]] for f in st["findings"]])]
    if st.get("steps"):
        parts += [_section("Steps"), _rows(["STEP", "ACTION", "STATE", "ATTEMPTS", "OUTPUT / ERROR"], [
            [s["id"], s["action"], styled(s["state"]), s.get("attempts", 0), s.get("error") or s.get("outputs")
             or s.get("inputs")] for s in st["steps"]])]
    approvals = (spec.get("remediation") or {}).get("approvals") or []
    if approvals:  # who approved what: the API server admitted each only in its approver's name
        seen = {a["step"]: a.get("approvedAt") for a in st.get("approvals", [])}
        parts += [_section("Approvals"), _rows(["STEP", "APPROVED BY", "SEEN"], [
            [a["step"], a["by"], seen.get(a["step"])] for a in approvals])]
    undo = [[s["id"], s["undo"]] for s in st.get("steps", []) if s.get("undo")]
    if undo:  # what a containment or remediation changed, and how to reverse it
        parts += [_section("Undo"), _rows(["STEP", "HOW TO REVERSE IT"], undo)]
    if esc:
        parts += [_section("Escalation"), _kv([("Current level", esc.get("currentLevel")),
                                               ("Next level", esc.get("nextLevel")),
                                               ("Next escalation", esc.get("nextEscalationAt"))]),
                  _rows(["LEVEL", "CONTACT", "CHANNEL", "TARGET", "TIME", "ERROR"], [
                      [n["level"], n["contact"], n["channel"], n["target"], n["time"], n.get("error")]
                      for n in esc.get("notified", [])])]
    post = st.get("postIncident")
    if post:
        parts += [_section("Post-incident"), _kv([("Report", (post.get("reportRef") or {}).get("name")),
                                                  ("Post-mortem", "required" if post.get("postMortemRequired") else "no")]),
                  Text("\n".join(f"- {item}" for item in post.get("actionItems", [])))]
    parts += [_section("Conditions"), _conditions(st), _section("Timeline"), _timeline(st)]
    waiting = [s["id"] for s in st.get("steps", []) if s["state"] == "AwaitingApproval"]
    if waiting:
        parts.append(Text(f"\nNext: opex approve incident {meta['name']} -n {meta['namespace']} {' '.join(waiting)}",
                          style="bold yellow"))
    return Group(*parts)


def describe_driftcheck(obj: dict) -> Group:
    spec, st, meta = obj["spec"], obj.get("status") or {}, obj["metadata"]
    last = st.get("lastResult") or {}
    source = spec.get("source") or {}
    where = (f"git {source['git']['url']}@{source['git'].get('ref', 'main')}:{source['git'].get('path', '.')}"
             if source.get("git") else f"ConfigMap {(source.get('configMapRef') or {}).get('name')}")
    parts: list[Any] = [_kv([
        ("DriftCheck", f"{meta['namespace']}/{meta['name']}"), ("Source", where),
        ("Schedule", f"{' | '.join(spec.get('schedule', []))} ({spec.get('timeZone', 'UTC')})"
         + (" SUSPENDED" if spec.get("suspend") else "")),
        ("Next run", st.get("nextScheduleTime")), ("Running since", st.get("runningSince")),
        ("Resolution", _acting(_pair(st.get("resolution")), _pair(spec.get("resolution")))),
    ])]
    if last:
        parts += [_section("Last result"), _kv([
            ("Outcome", styled(last.get("outcome"))), ("Trigger", last.get("trigger")),
            ("Finished", last.get("finishedAt")), ("Duration", f"{last.get('durationSeconds', 0):.2f}s"),
            ("Exit code", last.get("exitCode")), ("Terraform", last.get("terraformVersion")),
            ("Revision", last.get("sourceRevision")),
            ("Counts", f"{last.get('add', 0)} to add, {last.get('change', 0)} to change, {last.get('remove', 0)} to "
                       f"destroy, {last.get('import', 0)} to import"),
            ("Plan checksum", last.get("planChecksum")), ("Message", last.get("message")),
            ("Report", (st.get("reportRef") or {}).get("name"))])]
    if st.get("driftedResources"):
        parts += [_section("Drifted resources"), _rows(["ADDRESS", "ACTIONS", "REASON"], [
            [r["address"], ",".join(r["actions"]), r["reason"]] for r in st["driftedResources"]])]
    if st.get("lock"):
        lock = st["lock"]
        parts += [_section("State lock"), _kv([(k.capitalize(), lock.get(k)) for k in
                                               ("id", "who", "operation", "created", "path", "seenCount")])]
    if st.get("lastResolution"):
        r = st["lastResolution"]
        parts += [_section("Last resolution"), _kv([("Strategy", r["strategy"]), ("Outcome", styled(r["outcome"])),
                                                    ("Plan", r.get("planChecksum")), ("Message", r.get("message"))])]
    parts += [_section("Conditions"), _conditions(st), _section("Timeline"), _timeline(st)]
    if last.get("outcome") == "DriftDetected" and (spec.get("resolution") or {}).get("strategy") != "ReportOnly":
        parts.append(Text(f"\nNext: opex approve driftcheck {meta['name']} -n {meta['namespace']} "
                          f"--checksum {last.get('planChecksum')}", style="bold yellow"))
    return Group(*parts)


def describe_rollback(obj: dict) -> Group:
    spec, st, meta = obj["spec"], obj.get("status") or {}, obj["metadata"]
    progress = st.get("progress")
    inv = st.get("invalidation")
    parts: list[Any] = [_kv([
        ("Rollback", f"{meta['namespace']}/{meta['name']}"), ("Target", st.get("target")),
        ("Phase", styled(st.get("phase"))),
        ("Approval", _acting(st.get("approval"), spec.get("approval"))
         + f" (approved: {_plain(spec.get('approved', False))})"),
        ("Dry run", _acting(_plain(st["dryRun"]) if "dryRun" in st else None, _plain(spec.get("dryRun", False)))),
        ("From", (st.get("from") or {}).get("description")),
        ("To", (st.get("to") or {}).get("description")), ("Started", st.get("startedAt")),
        ("Finished", st.get("finishedAt")), ("Message", st.get("message")),
        ("Progress", f"{progress['copied']} copied, {progress['unchanged']} unchanged, {progress['deleted']} deleted "
                     f"of {progress['total']}" if progress else None),
        ("Invalidation", f"{inv['id']} {inv['status']}" if inv else None),
        ("Incident", (spec.get("incidentRef") or {}).get("name"))])]
    if st.get("steps"):
        parts += [_section("Steps"), _rows(["STEP", "STATE", "MESSAGE"],
                                           [[s["id"], styled(s["state"]), s.get("message")] for s in st["steps"]])]
    parts += [_section("Conditions"), _conditions(st), _section("Timeline"), _timeline(st)]
    if st.get("phase") == "AwaitingApproval":
        parts.append(Text(f"\nNext: opex approve rollback {meta['name']} -n {meta['namespace']}", style="bold yellow"))
    return Group(*parts)


SYMBOL = {"create": "+", "update": "~", "delete": "-", "read": "<=", "forget": "x"}
HEADLINE = {0: ("no changes", "bold green"), 1: ("the plan failed", "bold red"), 2: ("changes", "bold red")}


def plan_set(found: PlanSet, gates: list[GateResult] | None = None) -> Group:
    """Each plan of a terragrunt-style input under its unit's directory (with its gate verdict when
    ``gates`` has one per plan), then the outcome of them all."""
    parts: list[Any] = []
    for i, unit in enumerate(found.plans, 1):
        parts += [Text(f"== {unit.directory or f'plan {i} of {len(found.plans)}'}", style="bold"),
                  plan_summary(unit.summary, gates[i - 1] if gates else None)]
    head, style = HEADLINE[found.exit_code]
    parts.append(Text(f"{len(found.plans)} plans: {head} (exit code {found.exit_code}, the most severe)", style=style))
    if gates:
        failed = sum(1 for g in gates if not g.passed)
        parts.append(Text(f"gates: {failed} of {len(gates)} plans fail a gate" if failed else "gates: every plan passes",
                          style="bold red" if failed else "bold green"))
    return Group(*parts)


def gate_data(result: GateResult) -> dict[str, Any]:
    """A gate verdict as plain data (``opex plan summarize --gates --json``)."""
    return {"passed": result.passed, "changed": result.changed,
            "failures": [{"gate": f.gate.value, "source": f.source, "detail": f.detail, "resources": list(f.resources)}
                         for f in result.failures]}


def gate_verdict(result: GateResult) -> Text:
    """Whether the plan may be applied automatically, and every gate it fails with the resources."""
    if result.passed:
        return Text(f"Gates: passed ({result.changed} resource(s) changed); an automatic apply may go ahead",
                    style="bold green")
    lines = [f"  x {f.describe()}" for f in result.failures]
    return Text("Gates: failed; an automatic apply waits for a person:\n" + "\n".join(lines), style="bold red")


def plan_summary(summary: PlanSummary, gates: GateResult | None = None) -> Group:
    """The same drift/changes summary a DriftCheck report holds, for a terminal (and the verdict of
    the plan gates, when ``gates`` is given)."""
    head, style = HEADLINE[summary.exit_code]
    if summary.exit_code == 2 and not (summary.changes or summary.output_changes or summary.action_invocations):
        head = "changes to the state only (a refresh-only plan)"
    elif summary.exit_code == 2 and len(summary.config_only) == len(summary.changes) and not (
            summary.output_changes or summary.action_invocations):
        head = "configuration-only changes (moves, imports, forgets)"
    parts: list[Any] = [Text(f"Plan ({summary.source}, {summary.program_version}): {head} "
                             f"(exit code {summary.exit_code}, {summary.outcome.value})", style=style)]

    def entries(items):
        out = []
        for e in items:
            symbol = "-/+" if len(e.actions) == 2 else SYMBOL.get(e.actions[0], "~") if e.actions else "~"
            if e.actions == ["no-op"]:
                symbol = "="
            notes = [note for flag, note in ((e.importing, "import"), (e.moved, f"moved from {e.previous_address}"),
                                             (e.index_unknown, "index unknown"), (e.action_reason, e.action_reason))
                     if flag]
            out.append(f"  {symbol} {e.address}" + (f" ({'; '.join(notes)})" if notes else ""))
        return Text("\n".join(out))

    if summary.errors:
        parts += [Text("Errors:", style="bold red"), Text("\n".join(f"  {e}" for e in summary.errors))]
    if summary.drift:
        known = all(e.relevant for e in summary.drift)
        parts += [Text("Changed outside Terraform" + (", and planned changes depend on it:" if known else ":"),
                       style="bold"), entries(summary.drift)]
    if summary.changes:
        parts += [Text("Changes:", style="bold"), entries(summary.changes)]
    if summary.output_changes:
        parts.append(Text(f"Outputs changed: {', '.join(summary.output_changes)}"))
    if summary.action_invocations:
        parts += [Text("Actions to invoke:", style="bold"),
                  Text("\n".join(f"  ! {a.address} ({a.trigger})" for a in summary.action_invocations))]
    if summary.irrelevant_drift:
        parts += [Text("Changed outside Terraform, nothing depends on it (information only):", style="dim"),
                  Text("\n".join(f"  ~ {e.address}" for e in summary.irrelevant_drift), style="dim")]
    if summary.ignored:
        parts.append(Text(f"Ignored: {', '.join(summary.ignored)}", style="dim"))
    counts = (f"{summary.add} to add, {summary.change} to change, {summary.remove} to destroy, "
              f"{summary.import_} to import")
    extra = [f"{n} to {what}" for n, what in ((summary.move, "move"), (summary.forget, "forget"),
                                              (summary.read, "read"), (len(summary.action_invocations), "invoke"))
             if n]
    parts.append(Text(", ".join([counts, *extra])))
    if gates is not None:
        parts.append(gate_verdict(gates))
    return Group(*parts)


def _targets(targets: dict) -> str:
    parts = []
    for key, value in targets.items():
        if isinstance(value, dict):
            inner = ", ".join(f"{k}={v if not isinstance(v, list) else ','.join(map(str, v))}" for k, v in value.items()
                              if v not in (None, [], {}))
            parts.append(f"{key}({inner})" if inner else key)
        else:
            parts.append(f"{key}={value}")
    return " ".join(parts) or "-"


def event_explanations(found: list[dict]) -> Group:
    """``opex event explain``: per event, what it is and the Incident it opens, or why none."""
    parts: list[Any] = []
    for n, entry in enumerate(found, start=1):
        event = entry.get("event")
        what = (f"{event['detailType']} ({event['source'] or 'no source'}, id {event['id']}"
                f"{', via ' + event['via'] if event['via'] != 'eventbridge' else ''})") if event else "(not an event)"
        outcome = entry["outcome"]
        style = {"opens": "green", "resolves": "green", "refused": "red", "lookup": "yellow",
                 "drift-trigger": "yellow"}.get(outcome, "")
        head = Text(f"{n}. {what}: ")
        head.append(outcome + (f" ({entry['reason']})" if entry.get("reason") else ""), style=style)
        parts.append(head)
        rows: list[tuple[str, Any]] = []
        if entry.get("message"):
            rows.append(("Why" if outcome in ("ignored", "refused") else "Note", entry["message"]))
        if entry.get("identifiers"):
            rows.append(("Names", ", ".join(f"{i['value']} ({i['where']})" for i in entry["identifiers"][:10])))
        inc = entry.get("incident")
        if inc:
            rows += [("Incident", f"{inc['namespace']}/{inc['name']}"),
                     ("Type", f"{inc['type']}, {inc['severity']}, {inc['environment']}"), ("Title", inc["title"]),
                     ("Targets", _targets(inc["targets"])), ("Occurrence", inc["occurrence"])]
        if rows:
            parts.append(_kv(rows))
    refused = sum(1 for e in found if e["outcome"] == "refused")
    parts.append(Text(f"{len(found)} events: " + ", ".join(
        f"{sum(1 for e in found if e['outcome'] == o)} {o}" for o in ("opens", "resolves", "lookup", "drift-trigger", "ignored", "refused")
        if any(e["outcome"] == o for e in found)) + (
        "; refused events stay in the queue until its dead-letter queue takes them" if refused else "")))
    return Group(*parts)
