"""Read a Terraform (or OpenTofu) plan: what would change, what drifted, and the plan's outcome.

Two inputs (Terraform docs, "JSON Output Format" and "Machine-Readable UI"):

* ``terraform show -json PLAN``: ``format_version`` 0.x (Terraform 0.12–1.0) or 1.x (minor
  versions only add fields; an unknown major version is refused, as the docs ask),
  ``resource_changes`` (what applying would do), ``resource_drift`` (objects changed outside
  Terraform), ``relevant_attributes`` (the attributes planned changes depend on),
  ``output_changes``, ``errored``, ``applyable``. Terraform 1.0.0 wrote drift entries without
  ``address``/``index`` and listed unchanged objects as drift (``before`` == ``after``).
* ``terraform plan -json``: one UI message per line (``version``, ``resource_drift``,
  ``planned_change``, ``planned_action_invocation``, ``change_summary``, ``outputs``,
  ``diagnostic``); plain-text lines may come before or between them, colours and Terraform's
  diagnostic box included. OpenTofu names its version under ``tofu``.
* Several of them in one input (:func:`parse_input`): terragrunt's ``run --all show -json`` writes
  one ``show -json`` document per line, and with its log prefix (``08:43:10.702 STDOUT [vpc]
  terraform: {...}``, or ``[vpc] {...}`` with ``--terragrunt-include-module-prefix``) each line
  says the unit's working directory; ``run --all plan -json`` interleaves the units' streams, told
  apart by that prefix. Each plan is summarised on its own; the input exits as the most severe.

The rules are Terraform's own, so a plan summarised here agrees with the CLI:

* :attr:`PlanSummary.exit_code` is what ``terraform plan -detailed-exitcode`` exits with: 1 when
  the plan errored, 2 when applying it would change anything (a resource action other than no-op,
  including reads, a move, an import or a forget, or a root output change; Terraform's
  ``plans.Changes.Empty``), else 0. Drift never decides it: drift a planned change depends on
  shows up as that change, and drift nothing depends on is information only. ``applyable: false``
  means nothing can be applied (0 unless errored).
* Drift is relevant when an attribute listed in ``relevant_attributes`` for it differs between
  ``before`` and ``after`` (Terraform's ``jsonformat.precomputeDiffs``); irrelevant drift (say an
  RDS ``latest_restorable_time`` that moves on every refresh) is kept apart and reported as
  "changed outside Terraform, nothing depends on it". Plans without ``relevant_attributes``
  (before Terraform 1.2) and ``plan -json`` streams do not say; their drift is listed as is.
* Moves (``previous_address``), imports (``importing``) and forgets (action ``forget``) are
  configuration-only changes: counted, listed, and exit code 2, like Terraform.
* Action invocations (Terraform 1.14: ``action_invocations`` in ``show -json``,
  ``planned_action_invocation`` in a stream) are changes: an action runs when the plan is
  applied, so they give exit code 2 (``plans.ChangesSrc.Empty``), are listed, and are part of
  :func:`checksum`.

``ignore`` patterns leave matching addresses out of the result and the counts. Pattern syntax
(:func:`address_matches`): ``*`` matches any run of characters, dots and brackets included, and
every other character matches itself, so ``aws_instance.web[0]`` is that exact instance and
``module.legacy.*`` everything in that module. :func:`checksum` identifies what applying would do;
:func:`redact` masks every value the plan marks sensitive, so a stored plan never holds one.
"""
from __future__ import annotations

import copy
import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

from ..api.common import truncate
from ..api.driftcheck import Outcome
from ..termtext import plain

SENSITIVE = "(sensitive value)"
STREAM_ACTIONS = {"create": ["create"], "update": ["update"], "delete": ["delete"], "replace": ["delete", "create"],
                  "read": ["read"], "noop": ["no-op"], "import": ["no-op"], "move": ["no-op"], "remove": ["forget"],
                  "forget": ["forget"]}
SUPPORTED_MAJORS = ("0", "1")
OPENTOFU_REGISTRY = "registry.opentofu.org/"
_MISSING = object()


class PlanFormatError(ValueError):
    """The input is not a Terraform plan this reader understands; the message says why."""


@dataclass
class ResourceChange:
    """One resource instance in a plan.

    ``reason`` is "drift" (changed outside Terraform) or "change" (applying would act on it).
    ``relevant`` (drift only): True when a planned change depends on it, False when nothing does,
    None when the plan does not say. ``index_unknown``: the plan (Terraform 1.0.0) left the
    instance key out and the resource has several instances.
    """

    address: str
    actions: list[str]
    reason: str
    action_reason: str | None = None
    importing: bool = False
    previous_address: str | None = None
    relevant: bool | None = None
    index_unknown: bool = False

    @property
    def moved(self) -> bool:
        return bool(self.previous_address) and self.previous_address != self.address

    @property
    def config_only(self) -> bool:
        """Only Terraform's state changes: a move, an import or a forget with no other action."""
        return self.actions in (["no-op"], ["forget"], []) and (self.moved or self.importing or
                                                                 self.actions == ["forget"])


@dataclass
class ActionInvocation:
    """An action the plan will invoke when applied (Terraform 1.14 ``action`` blocks).

    ``trigger`` says why: ``before_create of aws_instance.web`` (a resource's ``action_trigger``),
    or ``invoked`` (``terraform apply -invoke``).
    """

    address: str
    trigger: str
    provider: str | None = None


@dataclass
class PlanSummary:
    """A plan's changes, drift and outcome (see the module docstring for the rules)."""

    source: str                      # "show-json" or "plan-json-stream"
    format_version: str | None = None
    program: str = "Terraform"       # or "OpenTofu"
    terraform_version: str | None = None
    drift: list[ResourceChange] = field(default_factory=list)             # relevant, or relevance unknown
    irrelevant_drift: list[ResourceChange] = field(default_factory=list)  # changed outside, nothing depends on it
    changes: list[ResourceChange] = field(default_factory=list)
    output_changes: list[str] = field(default_factory=list)
    action_invocations: list[ActionInvocation] = field(default_factory=list)
    add: int = 0
    change: int = 0
    import_: int = 0
    remove: int = 0
    move: int = 0
    forget: int = 0
    read: int = 0
    errored: bool = False
    applyable: bool | None = None
    errors: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """What ``terraform plan -detailed-exitcode`` exits with for this plan: 1, 2 or 0."""
        if self.errored:
            return 1
        if self.applyable is False:
            return 0
        if self.changes or self.output_changes or self.action_invocations:
            return 2
        # Terraform found something to apply that is neither listed nor ignored (a refresh-only plan).
        return 2 if self.applyable and not self.ignored else 0

    @property
    def outcome(self) -> Outcome:
        """The DriftCheck outcome of this plan: PlanFailed, DriftDetected (exit 2) or NoDrift (exit 0)."""
        return {1: Outcome.PLAN_FAILED, 2: Outcome.DRIFT_DETECTED}.get(self.exit_code, Outcome.NO_DRIFT)

    @property
    def drifted(self) -> bool:
        """Applying the plan would change something (exit code 2)."""
        return self.exit_code == 2

    @property
    def config_only(self) -> list[ResourceChange]:
        """Moves, imports and forgets that change nothing but Terraform's state."""
        return [c for c in self.changes if c.config_only]

    @property
    def program_version(self) -> str:
        """``Terraform 1.11.4`` or ``OpenTofu 1.10.10`` (version "?" when the input does not say)."""
        return f"{self.program} {self.terraform_version or '?'}"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["import"] = data.pop("import_")
        data.update(drifted=self.drifted, exit_code=self.exit_code, outcome=self.outcome.value)
        return data


def address_matches(pattern: str, address: str) -> bool:
    """True when ``pattern`` matches the whole of ``address``: ``*`` is any run of characters
    (dots and brackets included), every other character is itself (``[0]`` is an index, not a
    character class). Case-sensitive, like Terraform addresses."""
    regex = ".*".join(re.escape(part) for part in pattern.split("*"))
    return re.fullmatch(regex, address, re.DOTALL) is not None


def _ignored(address: str, ignore: Sequence[str]) -> bool:
    return any(address_matches(pattern, address) for pattern in ignore)


def _index(key: Any) -> str:
    return f"[{json.dumps(key)}]" if isinstance(key, str) else f"[{key}]"


def _address(rc: dict[str, Any], doc: dict[str, Any]) -> tuple[str, bool]:
    """(address, index unknown); Terraform 1.0.0 drift entries are rebuilt from their parts."""
    if rc.get("address"):
        return rc["address"], False
    prefix = "data." if rc.get("mode") == "data" else ""
    address = f"{prefix}{rc.get('type', '?')}.{rc.get('name', '?')}"
    module = rc.get("module_address")
    if module:
        address = f"{module}.{address}"
    if rc.get("index") is not None:
        return address + _index(rc["index"]), False
    return address, any(r.get("index") is not None for r in _state_resources(doc, module, rc))


def _state_resources(doc: dict[str, Any], module: str | None, rc: dict[str, Any]) -> list[dict[str, Any]]:
    """The prior-state instances of ``rc``'s resource (to tell whether it has instance keys)."""
    def walk(mod: dict[str, Any]) -> list[dict[str, Any]]:
        if (mod.get("address") or None) == (module or None):
            return [r for r in mod.get("resources") or [] if (r.get("mode"), r.get("type"), r.get("name")) ==
                    (rc.get("mode", "managed"), rc.get("type"), rc.get("name"))]
        return [r for child in mod.get("child_modules") or [] for r in walk(child)]
    root = ((doc.get("prior_state") or {}).get("values") or {}).get("root_module") or {}
    return walk(root)


def _at(value: Any, path: list[Any]) -> Any:
    for step in path:
        if isinstance(value, dict) and isinstance(step, str):
            value = value.get(step, _MISSING)
        elif isinstance(value, list) and isinstance(step, int) and 0 <= step < len(value):
            value = value[step]
        else:
            return _MISSING
    return value


def _relevant(address: str, change: dict[str, Any], relevant: dict[str, list[list[Any]]] | None) -> bool | None:
    """Whether a planned change depends on this drift (None when the plan has no relevant_attributes)."""
    if relevant is None:
        return None
    paths = relevant.get(address, []) + relevant.get("", [])
    before, after = change.get("before"), change.get("after")
    return any(_at(before, path) != _at(after, path) for path in paths)


def _count(summary: PlanSummary, rc: ResourceChange) -> None:
    """Terraform's "Plan: N to import, N to add, N to change, N to destroy" counts, and ours."""
    actions = rc.actions
    summary.import_ += rc.importing
    summary.move += rc.moved
    if actions in (["delete", "create"], ["create", "delete"]):
        summary.add += 1
        summary.remove += 1
    elif actions == ["create"]:
        summary.add += 1
    elif actions == ["update"]:
        summary.change += 1
    elif actions == ["delete"]:
        summary.remove += 1
    elif actions == ["forget"]:
        summary.forget += 1
    elif actions == ["read"]:
        summary.read += 1


def _check_version(kind: str, version: str) -> None:
    if version.split(".")[0] not in SUPPORTED_MAJORS:
        raise PlanFormatError(f"unsupported {kind} {version} (this reader understands 0.x and 1.x; "
                              f"a new major version changed the format)")


def _program(doc: dict[str, Any]) -> str:
    """OpenTofu when a provider comes from its registry (its plans keep the key terraform_version)."""
    names = [rc.get("provider_name") or "" for key in ("resource_changes", "resource_drift")
             for rc in doc.get(key) or []]
    names += [p.get("full_name") or "" for p in ((doc.get("configuration") or {}).get("provider_config") or {}).values()]
    return "OpenTofu" if any(n.startswith(OPENTOFU_REGISTRY) for n in names) else "Terraform"


def parse_show_json(doc: Any, ignore: Sequence[str] = ()) -> PlanSummary:
    """Summarise ``terraform show -json`` output (a dict). Raises PlanFormatError for other input."""
    if not isinstance(doc, dict) or "format_version" not in doc:
        raise PlanFormatError("not a Terraform plan: no format_version (expected `terraform show -json PLANFILE`)")
    version = str(doc["format_version"])
    _check_version("plan format_version", version)
    if "resource_changes" not in doc and "planned_values" not in doc and "resource_drift" not in doc:
        raise PlanFormatError("not a plan: it has no resource_changes (is it `terraform show -json` of a state?)")
    applyable = doc.get("applyable")
    summary = PlanSummary(source="show-json", format_version=version, program=_program(doc),
                          terraform_version=doc.get("terraform_version"), errored=bool(doc.get("errored")),
                          applyable=applyable if isinstance(applyable, bool) else None)
    if summary.errored:
        summary.errors.append("the plan errored (errored: true); Terraform's diagnostics are in its output")
    relevant: dict[str, list[list[Any]]] | None = None
    if "relevant_attributes" in doc:
        relevant = {}
        for attr in doc.get("relevant_attributes") or []:
            relevant.setdefault(attr.get("resource") or "", []).append(attr.get("attribute") or [])
    for rc in doc.get("resource_drift") or []:
        change = rc.get("change") or {}
        actions = change.get("actions") or []
        if actions in ([], ["no-op"]) or change.get("before") == change.get("after"):
            continue  # Terraform 1.0 listed unchanged objects as drift
        address, index_unknown = _address(rc, doc)
        entry = ResourceChange(address, actions, "drift", rc.get("action_reason"),
                               relevant=_relevant(address, change, relevant), index_unknown=index_unknown)
        if _ignored(address, ignore):
            summary.ignored.append(address)
        elif entry.relevant is False:
            summary.irrelevant_drift.append(entry)
        else:
            summary.drift.append(entry)
    for rc in doc.get("resource_changes") or []:
        change = rc.get("change") or {}
        actions = change.get("actions") or []
        entry = ResourceChange(_address(rc, doc)[0], actions, "change", rc.get("action_reason"),
                               importing=change.get("importing") is not None,
                               previous_address=rc.get("previous_address"))
        if actions in ([], ["no-op"]) and not (entry.importing or entry.moved):
            continue
        if actions == ["delete"] and rc.get("mode") == "data":
            continue  # Terraform neither shows nor applies the removal of a data source
        if _ignored(entry.address, ignore):
            summary.ignored.append(entry.address)
            continue
        summary.changes.append(entry)
        _count(summary, entry)
    summary.output_changes = sorted(name for name, oc in (doc.get("output_changes") or {}).items()
                                    if (oc.get("actions") or ["no-op"]) != ["no-op"])
    for ai in doc.get("action_invocations") or []:
        _invocation(summary, ai.get("address") or f"action.{ai.get('type', '?')}.{ai.get('name', '?')}",
                    _trigger((ai.get("lifecycle_action_trigger") or {}).get("triggering_resource_address"),
                             (ai.get("lifecycle_action_trigger") or {}).get("action_trigger_event")),
                    ai.get("provider_name"), ignore)
    return summary


def _trigger(resource: str | None, event: str | None) -> str:
    """``before_create of ADDRESS`` for a resource's action_trigger, ``invoked`` for ``apply -invoke``."""
    if not resource:
        return "invoked"
    words = re.sub(r"(?<=[a-z])(?=[A-Z])", "_", event or "").lower() or "an event"
    return f"{words} of {resource}"


def _invocation(summary: PlanSummary, address: str, trigger: str, provider: str | None, ignore: Sequence[str]) -> None:
    if _ignored(address, ignore):
        summary.ignored.append(address)
    else:
        summary.action_invocations.append(ActionInvocation(address, trigger, provider))


def parse_stream(text: str, ignore: Sequence[str] = ()) -> PlanSummary:
    """Summarise a ``terraform plan -json`` (or ``tofu plan -json``) stream; other lines are skipped.

    Raises PlanFormatError when no line is a Terraform UI message or the UI version is unknown.
    """
    summary = PlanSummary(source="plan-json-stream")
    seen = False
    reported: dict[str, int] | None = None
    for line in plain(text).split("\n"):
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        kind = msg.get("type") if isinstance(msg, dict) else None
        if not kind or "@message" not in msg:
            continue
        seen = True
        if kind == "version":
            if msg.get("ui"):
                _check_version("UI message version", str(msg["ui"]))
            summary.format_version = msg.get("ui")
            summary.program = "OpenTofu" if "tofu" in msg else "Terraform"
            summary.terraform_version = msg.get("tofu") or msg.get("terraform")
        elif kind in ("resource_drift", "planned_change"):
            _stream_change(summary, kind, msg.get("change") or {}, ignore)
        elif kind == "planned_action_invocation":
            inv = msg.get("invocation") or {}
            lifecycle = inv.get("lifecycle_trigger") or {}
            _invocation(summary, (inv.get("action_addr") or {}).get("addr", "?"),
                        _trigger((lifecycle.get("triggering_resource") or {}).get("addr"),
                                 lifecycle.get("triggering_event")), None, ignore)
        elif kind == "change_summary":
            # One per plan: several when a wrapper interleaved the streams of several units.
            changes = msg.get("changes") or {}
            reported = {k: (reported or {}).get(k, 0) + (changes.get(k) or 0) for k in ("add", "change", "import",
                                                                                       "remove")}
        elif kind == "diagnostic":
            diag = msg.get("diagnostic") or {}
            if diag.get("severity") == "error":
                summary.errored = True
                summary.errors.append(truncate(f"{diag.get('summary', '')}: {diag.get('detail', '')}".strip(": "), 500))
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


def diagnostics_text(text: str) -> str:
    """The error diagnostics of a ``plan -json`` stream as Terraform prints them (``Error: summary``
    then the detail), for the lock parser and a condition message; '' when there are none."""
    out = []
    for line in plain(text).split("\n"):
        try:
            msg = json.loads(line) if line.strip().startswith("{") else None
        except ValueError:
            continue
        diag = (msg or {}).get("diagnostic") if isinstance(msg, dict) and msg.get("type") == "diagnostic" else None
        if diag and diag.get("severity") == "error":
            out.append(f"Error: {diag.get('summary', '')}\n\n{diag.get('detail', '')}".rstrip())
    return "\n\n".join(out)


# "on main.tf line 3, in resource ...:" in Terraform's human output; "range": {"filename": ...} in -json.
_CONFIG_FILE = re.compile(r'(?:\bon |"filename":\s*")([^\s",:]+\.tf(?:\.json)?)\b')


def configuration_file(text: str) -> str | None:
    """The configuration file an error diagnostic points at, or None.

    ``text`` is Terraform's error output, human (``on main.tf line 3, in resource ...``) or a
    ``-json`` stream (a diagnostic's ``range.filename``). A diagnostic with a source range is an
    error in the configuration, which only a change to it fixes; a lock held, a timeout or a
    backend that cannot be reached names no file (Terraform's diagnostics format:
    https://developer.hashicorp.com/terraform/internals/machine-readable-ui#diagnostic).
    """
    found = _CONFIG_FILE.search(plain(text))
    return found.group(1) if found else None


def _stream_change(summary: PlanSummary, kind: str, change: dict[str, Any], ignore: Sequence[str]) -> None:
    address = (change.get("resource") or {}).get("addr", "?")
    action = change.get("action", "")
    previous = (change.get("previous_resource") or {}).get("addr")
    entry = ResourceChange(address, STREAM_ACTIONS.get(action, [action]),
                           "drift" if kind == "resource_drift" else "change", change.get("reason"),
                           importing=action == "import" or change.get("importing") is not None,
                           previous_address=previous)
    if entry.actions == ["no-op"] and not (entry.importing or entry.moved):
        return
    if _ignored(address, ignore):
        summary.ignored.append(address)
    elif kind == "resource_drift":
        summary.drift.append(entry)
    else:
        summary.changes.append(entry)
        _count(summary, entry)


@dataclass
class UnitPlan:
    """One plan of an input: ``directory`` is the unit's working directory when the input says it."""

    directory: str | None
    summary: PlanSummary


@dataclass
class PlanSet:
    """Every plan of one input, in input order (one for plain Terraform, one per unit for terragrunt)."""

    plans: list[UnitPlan]

    @property
    def exit_code(self) -> int:
        """The most severe plan's: 1 when any errored, else 2 when any would change something, else 0."""
        codes = {p.summary.exit_code for p in self.plans}
        return 1 if 1 in codes else 2 if 2 in codes else 0


# terragrunt's log prefix on a unit's output ("08:43:10.702 STDOUT [vpc] tofu: ..."), and the older
# --terragrunt-include-module-prefix ("[vpc] {...").
_UNIT_PREFIX = re.compile(r"^(?:[\d:.]+\s+)?(?:STDOUT|STDERR)\s+\[(?P<dir>[^\]]*)\]\s+(?:tofu|terraform):\s?|"
                          r"^\[(?P<old>[^\]]+)\]\s+(?=\{)")


def parse_input(text: str, ignore: Sequence[str] = ()) -> PlanSet:
    """Every plan in ``text``: one ``show -json`` document or ``plan -json`` stream, or several (see the
    module docstring). Raises PlanFormatError naming what is wrong (empty, truncated, not a plan)."""
    stripped = text.lstrip()
    if not stripped:
        raise PlanFormatError("empty input")
    if stripped.startswith("{"):
        try:
            doc = json.loads(stripped)
        except ValueError:
            doc = None
        if isinstance(doc, dict) and "type" not in doc:
            return PlanSet([UnitPlan(None, parse_show_json(doc, ignore))])
    docs, streams, truncated = _units(text)
    if not docs and not streams:
        docs = [(None, d) for d in _concatenated(stripped)]
    if not docs and len(streams) <= 1:
        if truncated or (stripped.startswith("{") and not streams):
            raise PlanFormatError("truncated or invalid JSON: not a complete `terraform show -json` document "
                                  "nor a `terraform plan -json` stream")
        directory = next(iter(streams), None)
        return PlanSet([UnitPlan(directory, parse_stream(text, ignore))])
    if truncated:
        raise PlanFormatError(f"truncated or invalid JSON: {truncated}")
    return PlanSet([UnitPlan(d, parse_show_json(doc, ignore)) for d, doc in docs] +
                   [UnitPlan(d, parse_stream("\n".join(lines), ignore)) for d, lines in streams.items()])


def _units(text: str) -> tuple[list[tuple[str | None, Any]], dict[str | None, list[str]], str]:
    """The ``show -json`` documents and the stream lines of ``text``, each with its unit's directory
    when a prefix says it, and the first line that began a document but did not parse ('' when none)."""
    docs: list[tuple[str | None, Any]] = []
    streams: dict[str | None, list[str]] = {}
    truncated = ""
    for line in plain(text).split("\n"):
        prefix = _UNIT_PREFIX.match(line)
        directory = (prefix.group("dir") or prefix.group("old")) if prefix else None
        body = (line[prefix.end():] if prefix else line).strip()
        if not body.startswith("{"):
            continue
        try:
            msg = json.loads(body)
        except ValueError:
            if body.startswith('{"format_version"') and not truncated:
                where = f" (unit {directory})" if directory else ""
                truncated = f"a `show -json` document{where} is cut short after {len(body)} characters"
            continue
        if isinstance(msg, dict) and "format_version" in msg and "@message" not in msg:
            docs.append((directory, msg))
        elif isinstance(msg, dict) and msg.get("type") and "@message" in msg:
            streams.setdefault(directory, []).append(body)
    return docs, streams, truncated


def _concatenated(text: str) -> list[Any]:
    """Pretty-printed ``show -json`` documents one after another (``jq .`` of each); [] when ``text`` is not."""
    decoder, found, pos = json.JSONDecoder(), [], 0
    while pos < len(text):
        try:
            doc, pos = decoder.raw_decode(text, pos)
        except ValueError:
            return []
        if not (isinstance(doc, dict) and "format_version" in doc):
            return []
        found.append(doc)
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return found if len(found) > 1 else []


def parse_any(text: str, ignore: Sequence[str] = ()) -> PlanSummary:
    """The one plan in ``text`` (see :func:`parse_input`); raises PlanFormatError when it holds several."""
    found = parse_input(text, ignore)
    if len(found.plans) > 1:
        raise PlanFormatError(f"{len(found.plans)} plans in one input: read them with parse_input")
    return found.plans[0].summary


def _delta(before: Any, after: Any) -> Any:
    """The parts of ``after`` that differ from ``before`` (recursively), as ``[before, after]`` pairs."""
    if isinstance(before, dict) and isinstance(after, dict):
        keys = sorted(set(before) | set(after))
        return {k: _delta(before.get(k), after.get(k)) for k in keys if before.get(k) != after.get(k)}
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        return {str(i): _delta(b, a) for i, (b, a) in enumerate(zip(before, after)) if b != a}
    return [before, after]


def checksum(doc: dict[str, Any], inputs: dict[str, str] | None = None) -> str:
    """``sha256:<hex>`` of everything applying the plan would execute; the same plan gives the same
    checksum, so an approval stays valid until what it approved changes, and only until then.

    Covered: each resource change that is not a plain no-op (address, actions, previous address,
    importing, and only the attribute values that differ between ``before`` and ``after``, with
    what is unknown until apply); each output change; each action invocation whole (Terraform 1.14;
    a plan without actions has no such key, so approvals of older plans hold); the value of every
    input variable the plan was made with (``variables``: hashed, so a changed Secret changes the
    checksum without the checksum revealing it); the configuration the plan holds
    (``configuration``: providers' settings, resources, provisioners); and ``inputs``, digests of
    what the JSON leaves out (``terraform.session.Session.plan_inputs``: the plan file's
    configuration snapshot, whose provisioner commands the JSON shows only as references, and the
    backend settings), by name. Left out: drift (what a planned change depends on is in that
    change), values that are equal before and after (a computed attribute that moves on every
    refresh), timestamps. So an approval stays valid until what it approved changes.
    """
    changes = []
    for rc in doc.get("resource_changes") or []:
        change = rc.get("change") or {}
        actions = change.get("actions") or []
        moved = rc.get("previous_address") not in (None, rc.get("address"))
        if actions in ([], ["no-op"]) and not moved and change.get("importing") is None:
            continue
        entry: dict[str, Any] = {"address": rc.get("address"), "actions": actions,
                                 "previous_address": rc.get("previous_address"), "importing": change.get("importing")}
        if "create" in actions or "update" in actions:
            entry["delta"] = _delta(None if actions == ["create"] else change.get("before"), change.get("after"))
            entry["unknown"] = change.get("after_unknown")
        changes.append(entry)
    outputs = {name: {"actions": oc.get("actions"), "delta": _delta(oc.get("before"), oc.get("after")),
                      "unknown": oc.get("after_unknown")}
               for name, oc in (doc.get("output_changes") or {}).items()
               if (oc.get("actions") or ["no-op"]) != ["no-op"]}
    variables = {name: hashlib.sha256(json.dumps((var or {}).get("value"), sort_keys=True, default=str).encode())
                 .hexdigest() for name, var in (doc.get("variables") or {}).items()}
    covered: dict[str, Any] = {"resource_changes": changes, "output_changes": outputs}
    if doc.get("action_invocations"):
        covered["action_invocations"] = doc["action_invocations"]
    if variables:
        covered["variables"] = variables
    if doc.get("configuration"):
        covered["configuration"] = doc["configuration"]
    if inputs:
        covered["inputs"] = dict(inputs)
    canonical = json.dumps(covered, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def provisioners(doc: dict[str, Any]) -> list[str]:
    """Addresses (``module.x.aws_instance.web``) of the resources whose configuration, as the plan
    holds it (``configuration.root_module`` and its module calls), declares a provisioner."""
    found: list[str] = []

    def walk(module: dict[str, Any], prefix: str) -> None:
        for res in module.get("resources") or []:
            if res.get("provisioners"):
                found.append(prefix + (res.get("address") or f"{res.get('type')}.{res.get('name')}"))
        for name, call in (module.get("module_calls") or {}).items():
            walk(call.get("module") or {}, f"{prefix}module.{name}.")

    walk((doc.get("configuration") or {}).get("root_module") or {}, "")
    return found


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
    for ai in doc.get("action_invocations") or []:
        ai["config_values"] = _mask(ai.get("config_values"), ai.get("config_sensitive"))
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
