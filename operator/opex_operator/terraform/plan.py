"""Read a Terraform plan: what drifted, what would change, and how much (from JSON, never the text).

Two inputs (Terraform docs, "JSON Output Format" and "Machine-Readable UI"):

* ``terraform show -json PLAN``: ``format_version`` (major 1 accepted), ``resource_drift`` (real
  drift: objects changed outside Terraform), ``resource_changes`` (what applying would do),
  ``output_changes``. Variants across versions: older plans omit ``address``/``index`` in drift
  entries and list unchanged resources as drift (before == after); many have no
  ``resource_drift`` key at all.
* ``terraform plan -json``: one JSON object per line (``resource_drift``, ``planned_change``,
  ``change_summary``, ``diagnostic``); some front ends print plain-text lines before the JSON.

Output-only changes are reported but are not drift. Addresses matching an ``ignore`` glob are
left out of the result and the counts. :func:`redact` masks every value the plan marks
sensitive, so a stored plan never holds one.
"""
from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import asdict, dataclass, field
from fnmatch import fnmatchcase
from typing import Any

SENSITIVE = "(sensitive value)"
STREAM_ACTIONS = {"create": ["create"], "update": ["update"], "delete": ["delete"], "replace": ["delete", "create"],
                  "read": ["read"], "noop": ["no-op"], "import": ["no-op"], "move": ["no-op"], "remove": ["forget"],
                  "forget": ["forget"]}


class PlanFormatError(ValueError):
    """The input is not a Terraform plan this reader understands; the message says why."""


@dataclass
class ResourceChange:
    address: str
    actions: list[str]
    reason: str                      # "drift": changed outside Terraform; "change": applying would change it
    action_reason: str | None = None
    importing: bool = False


@dataclass
class PlanSummary:
    source: str                      # "show-json" or "plan-json-stream"
    format_version: str | None = None
    terraform_version: str | None = None
    drift: list[ResourceChange] = field(default_factory=list)
    changes: list[ResourceChange] = field(default_factory=list)
    output_changes: list[str] = field(default_factory=list)
    add: int = 0
    change: int = 0
    import_: int = 0
    remove: int = 0
    errored: bool = False
    errors: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)

    @property
    def drifted(self) -> bool:
        """Drift or planned changes to resources (output-only changes are not drift)."""
        return bool(self.drift or self.changes)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["import"] = data.pop("import_")
        data["drifted"] = self.drifted
        return data


def _address(rc: dict[str, Any]) -> str:
    if rc.get("address"):
        return rc["address"]
    # Terraform 1.0 drift entries: rebuild module.x.type.name[index] from the parts.
    parts = [rc["module_address"]] if rc.get("module_address") else []
    prefix = "data." if rc.get("mode") == "data" else ""
    address = f"{prefix}{rc.get('type', '?')}.{rc.get('name', '?')}"
    if "index" in rc and rc["index"] is not None:
        index = rc["index"]
        address += f"[{json.dumps(index)}]" if isinstance(index, str) else f"[{index}]"
    return ".".join(parts + [address])


def _ignored(address: str, ignore: list[str]) -> bool:
    return any(fnmatchcase(address, pattern) for pattern in ignore)


def _count(summary: PlanSummary, rc: ResourceChange) -> None:
    actions = rc.actions
    if rc.importing:
        summary.import_ += 1
    if actions in (["delete", "create"], ["create", "delete"]):
        summary.add += 1
        summary.remove += 1
    elif actions == ["create"]:
        summary.add += 1
    elif actions == ["update"]:
        summary.change += 1
    elif actions == ["delete"]:
        summary.remove += 1


def parse_show_json(doc: Any, ignore: list[str] = ()) -> PlanSummary:
    """Summarise ``terraform show -json`` output (a dict). Raises PlanFormatError for other input."""
    if not isinstance(doc, dict) or "format_version" not in doc:
        raise PlanFormatError("not a Terraform plan: no format_version (expected `terraform show -json PLANFILE`)")
    version = str(doc["format_version"])
    if version.split(".")[0] != "1":
        raise PlanFormatError(f"unsupported plan format_version {version} (this reader understands 1.x)")
    if "resource_changes" not in doc and "planned_values" not in doc and "resource_drift" not in doc:
        raise PlanFormatError("not a plan: it has no resource_changes (is it `terraform show -json` of a state?)")
    summary = PlanSummary(source="show-json", format_version=version, terraform_version=doc.get("terraform_version"),
                          errored=bool(doc.get("errored")))
    for rc in doc.get("resource_drift") or []:
        change = rc.get("change") or {}
        actions = change.get("actions") or []
        if actions in ([], ["no-op"]) or change.get("before") == change.get("after"):
            continue  # Terraform 1.0 listed unchanged resources as drift
        entry = ResourceChange(_address(rc), actions, "drift", rc.get("action_reason"))
        if _ignored(entry.address, ignore):
            summary.ignored.append(entry.address)
            continue
        summary.drift.append(entry)
    for rc in doc.get("resource_changes") or []:
        change = rc.get("change") or {}
        actions = change.get("actions") or []
        importing = bool(change.get("importing"))
        if (actions in ([], ["no-op"]) and not importing) or actions == ["read"]:
            continue
        entry = ResourceChange(_address(rc), actions, "change", rc.get("action_reason"), importing)
        if _ignored(entry.address, ignore):
            summary.ignored.append(entry.address)
            continue
        summary.changes.append(entry)
        _count(summary, entry)
    summary.output_changes = sorted(name for name, oc in (doc.get("output_changes") or {}).items()
                                    if (oc.get("actions") or ["no-op"]) != ["no-op"])
    return summary


def parse_stream(text: str, ignore: list[str] = ()) -> PlanSummary:
    """Summarise a ``terraform plan -json`` stream; plain-text lines before or between are skipped.

    Raises PlanFormatError when no line is a Terraform UI message.
    """
    summary = PlanSummary(source="plan-json-stream")
    seen = False
    reported: dict[str, int] | None = None
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        kind = msg.get("type")
        if not kind or "@message" not in msg:
            continue
        seen = True
        if kind == "version":
            summary.terraform_version = msg.get("terraform")
            summary.format_version = msg.get("ui")
        elif kind in ("resource_drift", "planned_change"):
            change = msg.get("change") or {}
            address = (change.get("resource") or {}).get("addr", "?")
            action = change.get("action", "")
            actions = STREAM_ACTIONS.get(action, [action])
            importing = action == "import" or bool(change.get("importing"))
            if actions == ["no-op"] and not importing:
                continue
            if _ignored(address, ignore):
                summary.ignored.append(address)
                continue
            entry = ResourceChange(address, actions, "drift" if kind == "resource_drift" else "change",
                                   change.get("reason"), importing)
            if kind == "resource_drift":
                summary.drift.append(entry)
            else:
                summary.changes.append(entry)
                _count(summary, entry)
        elif kind == "change_summary":
            reported = msg.get("changes") or {}
        elif kind == "diagnostic":
            diag = msg.get("diagnostic") or {}
            if diag.get("severity") == "error":
                summary.errored = True
                summary.errors.append(f"{diag.get('summary', '')}: {diag.get('detail', '')}".strip(": ")[:500])
        elif kind == "outputs":
            summary.output_changes = sorted(n for n, o in (msg.get("outputs") or {}).items()
                                            if o.get("action") not in (None, "noop"))
    if not seen:
        raise PlanFormatError("not a `terraform plan -json` stream: no line is a Terraform JSON message")
    if reported is not None and not summary.ignored:
        # Terraform's own totals, when nothing was ignored (they count what we may not list).
        summary.add, summary.change = reported.get("add", 0), reported.get("change", 0)
        summary.import_, summary.remove = reported.get("import", 0), reported.get("remove", 0)
    return summary


def parse_any(text: str, ignore: list[str] = ()) -> PlanSummary:
    """A ``show -json`` document or a ``plan -json`` stream, whichever ``text`` is."""
    stripped = text.lstrip()
    if stripped.startswith("{"):
        try:
            doc = json.loads(stripped)
        except ValueError:
            doc = None
        if isinstance(doc, dict) and "format_version" in doc:
            return parse_show_json(doc, ignore)
        if isinstance(doc, dict) and "type" not in doc:
            return parse_show_json(doc, ignore)  # raises with the reason
    if not stripped:
        raise PlanFormatError("empty input")
    try:
        return parse_stream(text, ignore)
    except PlanFormatError:
        if stripped.startswith("{"):
            raise PlanFormatError("truncated or invalid JSON: not a complete `terraform show -json` document "
                                  "nor a `terraform plan -json` stream") from None
        raise


def checksum(doc: dict[str, Any]) -> str:
    """``sha256:<hex>`` of what the plan would do (drift, changes, outputs), not of its timestamp.

    The same changes on a later run give the same checksum, so an approval stays valid until what
    it approved changes.
    """
    keep = {
        "resource_drift": [{k: rc.get(k) for k in ("address", "change")} for rc in doc.get("resource_drift") or []],
        "resource_changes": [{k: rc.get(k) for k in ("address", "change")} for rc in doc.get("resource_changes") or []
                             if (rc.get("change") or {}).get("actions") not in (["no-op"], ["read"])],
        "output_changes": doc.get("output_changes") or {},
    }
    canonical = json.dumps(keep, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def _mask(value: Any, sensitive: Any) -> Any:
    if sensitive is True:
        return SENSITIVE if value is not None else None
    if isinstance(value, dict) and isinstance(sensitive, dict):
        return {k: _mask(v, sensitive.get(k)) for k, v in value.items()}
    if isinstance(value, list) and isinstance(sensitive, list):
        return [_mask(v, sensitive[i] if i < len(sensitive) else None) for i, v in enumerate(value)]
    return value


def _redact_module(module: dict[str, Any]) -> None:
    for res in module.get("resources") or []:
        res["values"] = _mask(res.get("values"), res.get("sensitive_values"))
    for child in module.get("child_modules") or []:
        _redact_module(child)


def redact(doc: dict[str, Any]) -> dict[str, Any]:
    """A copy of a ``show -json`` plan with every value marked sensitive replaced."""
    doc = copy.deepcopy(doc)
    for key in ("resource_changes", "resource_drift"):
        for rc in doc.get(key) or []:
            change = rc.get("change") or {}
            change["before"] = _mask(change.get("before"), change.get("before_sensitive"))
            change["after"] = _mask(change.get("after"), change.get("after_sensitive"))
    for oc in (doc.get("output_changes") or {}).values():
        oc["before"] = _mask(oc.get("before"), oc.get("before_sensitive"))
        oc["after"] = _mask(oc.get("after"), oc.get("after_sensitive"))
    for values_key in ("planned_values", "prior_state"):
        values = doc.get(values_key) or {}
        if values_key == "prior_state":
            values = values.get("values") or {}
        for out in (values.get("outputs") or {}).values():
            if out.get("sensitive"):
                out["value"] = SENSITIVE
        if values.get("root_module"):
            _redact_module(values["root_module"])
    root = (doc.get("configuration") or {}).get("root_module") or {}
    declared = root.get("variables") or {}
    for name, var in (doc.get("variables") or {}).items():
        if (declared.get(name) or {}).get("sensitive"):
            var["value"] = SENSITIVE
    _redact_defaults(root)
    return doc


def _redact_defaults(module: dict[str, Any]) -> None:
    """Sensitive variables' defaults in the configuration, in every module call."""
    for var in (module.get("variables") or {}).values():
        if var.get("sensitive") and "default" in var:
            var["default"] = SENSITIVE
    for call in (module.get("module_calls") or {}).values():
        _redact_defaults(call.get("module") or {})
