"""CloudTrail records read by what they mean, from every way they are delivered (pure).

A record is not "a call by this key, denied if ``errorCode`` is set". What it means:

* **Outcome**: ``errorCode`` says a call failed, and whether it was *denied* has several
  spellings (``errors.is_denied``). A console sign-in carries its outcome in
  ``responseElements.ConsoleLogin`` (``Success``/``Failure``) and its reason in
  ``errorMessage``, with no ``errorCode`` (CloudTrail User Guide, "AWS Management Console
  sign-in events"); the same holds for the other sign-in events (``CheckMfa``, ``SwitchRole``).
* **Who**: ``userIdentity`` (CloudTrail User Guide, "CloudTrail userIdentity element"): its
  ``type``, ``userName`` (``HIDDEN_DUE_TO_SECURITY_REASONS`` when a sign-in named a user that
  does not exist: never a name), ``accessKeyId`` (empty for console sign-ins), and for sessions
  ``arn`` and ``sessionContext`` (``sessionIssuer``, ``attributes.creationDate``).
* **AWS acting on its own** (:attr:`TrailEvent.aws_acting`): ``userAgent`` starting
  ``aws-internal``/``AWS Internal``, ``userIdentity.invokedBy``, ``type`` ``AWSService``, or a
  ``sourceIPAddress`` that is a service name (``lambda.amazonaws.com``, ``AWS Internal``). A user
  agent that merely *contains* ``aws-internal`` (``[S3Console/0.4, aws-internal/3]``) or names a
  console (``console.ec2.amazonaws.com``) is a person at the console, not AWS.
* **From where** (:func:`source_address`): an address, an AWS service, absent, or *unparsed*:
  written in a form that is not an address, or as the unspecified address some exporters mask
  with (``00.00.00.00``, ``72.xx.xxx.xx``): kept as written, never an AWS service, never
  ``0.0.0.0``. Dotted quads padded with leading zeros (``203.000.113.067``, as some exporters
  and anonymisers write them) are decimal and are normalised (``203.0.113.67``): CloudTrail itself
  writes decimal, and no exporter writes octal.

Deliveries (:func:`read_records`): a record; a ``{"Records": [...]}`` file as CloudTrail writes
to S3 (gzipped or not); an EventBridge event of any ``... via CloudTrail`` detail-type (its
``id`` need not be a UUID); LookupEvents' ``Events[].CloudTrailEvent``; a CloudWatch Logs
subscription message (``logEvents[].message``), also base64 and gzipped as Lambda's ``awslogs``
event or a Firehose HTTP delivery's ``records[].data`` carry it; an SNS notification wrapping one
of these; and any number of these written back to back without separators (Firehose to S3) or as
JSON lines.
What is not a CloudTrail record (another service's event, a control message, an Insights event,
unreadable text) is skipped and counted, never fatal.
"""
from __future__ import annotations

import base64
import binascii
import datetime as dt
import enum
import gzip
import ipaddress
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

from ..errors import is_denied

HIDDEN = "HIDDEN_DUE_TO_SECURITY_REASONS"
SIGN_IN_SOURCE = "signin.amazonaws.com"
# CloudTrail records one read keeps (a log group filtered for the leaked keys and users).
MAX_TRAIL_RECORDS = 2000
MAX_TEXT = 500               # errorMessage and userAgent characters kept
MAX_DEPTH = 6                # envelopes inside envelopes
_SERVICE = re.compile(r"^[a-z0-9][a-z0-9.-]*\.amazonaws\.com(\.cn)?$", re.IGNORECASE)
_DOTTED = re.compile(r"^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$")
_GZIP = b"\x1f\x8b"


class AddressKind(enum.StrEnum):
    IP = "ip"
    SERVICE = "service"          # an AWS service acting ("lambda.amazonaws.com", "AWS Internal")
    UNPARSED = "unparsed"        # written, but not as an address: kept as written
    ABSENT = "absent"


@dataclass(frozen=True)
class SourceAddress:
    """``sourceIPAddress`` read by its meaning: ``ip`` is the normalised address (kind IP only)."""

    written: str | None
    kind: AddressKind
    ip: str | None = None

    @property
    def label(self) -> str:
        """How findings name it: the address, the service, ``<as written> (unparsed)``, ``unknown``."""
        if self.kind == AddressKind.IP:
            return self.ip or ""
        if self.kind == AddressKind.UNPARSED:
            return f"{self.written} (unparsed)"
        return self.written or "unknown"

    def network(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
        return ipaddress.ip_address(self.ip) if self.ip else None

    def cidr(self) -> str | None:
        """The address as a one-address block (``/32``, ``/128``), for WAF; None unless an address."""
        addr = self.network()
        return f"{addr}/{addr.max_prefixlen}" if addr else None


def source_address(value: Any) -> SourceAddress:
    """What ``sourceIPAddress`` (or any address field) says: see the module docstring."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return SourceAddress(None, AddressKind.ABSENT)
    text = str(value).strip()
    if text.lower() == "aws internal" or _SERVICE.match(text):
        return SourceAddress(text, AddressKind.SERVICE)
    bare = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    try:
        addr: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(bare)
    except ValueError:
        addr = None
        m = _DOTTED.match(bare)
        if m and all(int(part) <= 255 for part in m.groups()):
            addr = ipaddress.ip_address(".".join(str(int(part)) for part in m.groups()))
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
        addr = addr.ipv4_mapped
    if addr is None or addr.is_unspecified:   # 0.0.0.0 is a masked or missing address, never a source
        return SourceAddress(text, AddressKind.UNPARSED)
    return SourceAddress(text, AddressKind.IP, str(addr))


def parse_time(value: Any) -> dt.datetime | None:
    """``eventTime`` (ISO 8601, ``Z`` or an offset; UTC when none) or None."""
    try:
        when = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00")) if value else None
    except ValueError:
        return None
    return when.replace(tzinfo=when.tzinfo or dt.timezone.utc) if when else None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any, limit: int = MAX_TEXT) -> str | None:
    return str(value)[:limit] if value not in (None, "") else None


@dataclass
class TrailEvent:
    """One CloudTrail record (CloudTrail User Guide, "CloudTrail record contents"), reduced to
    what the runbooks read. ``source_ip`` and ``user_agent`` are as written; read the address
    through :attr:`address`, the outcome through :attr:`failed` and :attr:`denied`."""

    time: dt.datetime | None
    event_name: str
    event_source: str
    error_code: str | None = None
    error_message: str | None = None
    principal: str | None = None       # userIdentity.arn (or principalId)
    source_ip: str | None = None       # sourceIPAddress as written
    user_agent: str | None = None
    access_key_id: str | None = None   # userIdentity.accessKeyId (None when empty)
    user_name: str | None = None       # userIdentity.userName (None when HIDDEN_DUE_TO_SECURITY_REASONS)
    event_id: str | None = None
    event_type: str | None = None      # AwsApiCall, AwsConsoleSignIn, AwsServiceEvent, ...
    identity_type: str | None = None   # IAMUser, AssumedRole, FederatedUser, Root, AWSService, AWSAccount, ...
    principal_id: str | None = None
    account_id: str | None = None
    invoked_by: str | None = None      # userIdentity.invokedBy: the service that made the call
    session_issuer: str | None = None  # sessionContext.sessionIssuer.arn (the role or user behind a session)
    session_created: dt.datetime | None = None   # sessionContext.attributes.creationDate
    request: dict[str, Any] = field(default_factory=dict)    # requestParameters
    response: dict[str, Any] = field(default_factory=dict)   # responseElements
    additional: dict[str, Any] = field(default_factory=dict)  # additionalEventData

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> "TrailEvent":
        """A CloudTrail record (raw, or the ``detail`` of an EventBridge event). Raises
        AttributeError when it is no object."""
        detail = record.get("detail")
        if isinstance(detail, dict) and "eventName" in detail:
            record = detail
        identity = _dict(record.get("userIdentity"))
        context = _dict(identity.get("sessionContext"))
        issuer = _dict(context.get("sessionIssuer"))
        user = identity.get("userName")
        return cls(time=parse_time(record.get("eventTime")), event_name=str(record.get("eventName") or ""),
                   event_source=str(record.get("eventSource") or ""), error_code=_text(record.get("errorCode"), 128),
                   error_message=_text(record.get("errorMessage")),
                   principal=_text(identity.get("arn") or identity.get("principalId"), 512),
                   source_ip=_text(record.get("sourceIPAddress"), 256), user_agent=_text(record.get("userAgent"), 256),
                   access_key_id=_text(identity.get("accessKeyId"), 128) if identity.get("accessKeyId") != HIDDEN
                   else None,
                   user_name=_text(user, 128) if user != HIDDEN else None, event_id=_text(record.get("eventID"), 128),
                   event_type=_text(record.get("eventType"), 64), identity_type=_text(identity.get("type"), 64),
                   principal_id=_text(identity.get("principalId"), 256), account_id=_text(identity.get("accountId"), 32),
                   invoked_by=_text(identity.get("invokedBy"), 128), session_issuer=_text(issuer.get("arn"), 512),
                   session_created=parse_time(_dict(context.get("attributes")).get("creationDate")),
                   request=_dict(record.get("requestParameters")), response=_dict(record.get("responseElements")),
                   additional=_dict(record.get("additionalEventData")))

    # -- what it means ----------------------------------------------------------------------------
    @property
    def api(self) -> str:
        """``iam:CreateUser``: the IAM action name (service prefix of eventSource, then eventName)."""
        return f"{self.event_source.split('.')[0]}:{self.event_name}" if self.event_source else self.event_name

    @property
    def address(self) -> SourceAddress:
        return source_address(self.source_ip)

    @property
    def sign_in(self) -> bool:
        """A console sign-in event (ConsoleLogin and the sign-in steps; eventType AwsConsoleSignIn,
        which some records spell AwsConsoleSignin or leave out)."""
        return (self.event_source == SIGN_IN_SOURCE or (self.event_type or "").lower() == "awsconsolesignin"
                or self.event_name == "ConsoleLogin")

    @property
    def console_login(self) -> bool:
        return self.event_name == "ConsoleLogin"

    @property
    def denied(self) -> bool:
        return is_denied(self.error_code)

    @property
    def failed(self) -> bool:
        """Did not succeed: an errorCode, or a sign-in whose response says ``Failure`` (or that
        names an error without saying Success)."""
        if self.error_code:
            return True
        if not self.sign_in:
            return False
        said = self.response.get(self.event_name)
        return said.lower() != "success" if isinstance(said, str) else bool(self.error_message)

    @property
    def succeeded(self) -> bool:
        return not self.failed

    @property
    def failure(self) -> str | None:
        """Why it did not succeed: ``errorCode: errorMessage``, or a sign-in's errorMessage."""
        if not self.failed:
            return None
        return ": ".join(p for p in (self.error_code, self.error_message) if p) or "Failure"

    @property
    def aws_acting(self) -> bool:
        """AWS itself made the call (see the module docstring), not the identity's holder."""
        agent = (self.user_agent or "").strip().lower()
        return (self.identity_type == "AWSService" or agent.startswith(("aws-internal", "aws internal"))
                or bool(self.invoked_by) or self.address.kind == AddressKind.SERVICE)


# ---- deliveries ---------------------------------------------------------------------------------

@dataclass
class TrailRead:
    """Records read from one or more deliveries: each record once (by eventID), what was skipped
    and why, and, for reads from AWS, how many calls it took and whether a bound stopped it."""

    events: list[TrailEvent] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)      # kind of thing skipped -> how many
    duplicates: int = 0
    calls: int = 0                                          # AWS calls (pages) made
    truncated: bool = False                                 # a record, page or call bound stopped it
    unread: list[tuple[str, str]] = field(default_factory=list)   # lookups not made (the call bound)
    _seen: set[str] = field(default_factory=set, repr=False)

    def add(self, event: TrailEvent) -> None:
        if event.event_id and event.event_id in self._seen:
            self.duplicates += 1
            return
        if event.event_id:
            self._seen.add(event.event_id)
        self.events.append(event)

    def merge(self, other: "TrailRead") -> "TrailRead":
        for event in other.events:
            self.add(event)
        self.skipped.update(other.skipped)
        self.duplicates += other.duplicates
        self.calls += other.calls
        self.truncated = self.truncated or other.truncated
        self.unread = list(dict.fromkeys(self.unread + other.unread))
        return self

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())

    def skipped_note(self) -> str | None:
        """``skipped 3 objects that are not CloudTrail records (GuardDuty Finding ×2, unreadable text ×1)``."""
        if not self.skipped:
            return None
        kinds = ", ".join(f"{k} ×{n}" for k, n in self.skipped.most_common())
        return f"skipped {self.skipped_total} objects that are not CloudTrail records ({kinds})"


def read_records(texts: Iterable[str | bytes]) -> TrailRead:
    """The CloudTrail records in ``texts`` (each a delivery in any format of the module
    docstring; bytes may be gzipped), each record once. Never raises for bad input."""
    read = TrailRead()
    for text in texts:
        for value in _values(_decoded(text), read):
            _unwrap(value, read, 0)
    return read


def trail_events(texts: Iterable[str | bytes]) -> list[TrailEvent]:
    """The records of :func:`read_records`, without the account of what was skipped."""
    return read_records(texts).events


def _decoded(text: str | bytes) -> str:
    if isinstance(text, bytes):
        if text.startswith(_GZIP):
            try:
                text = gzip.decompress(text)
            except (OSError, EOFError):
                pass
        text = text.decode("utf-8", errors="replace")
    return text.removeprefix("\ufeff")


def _base64(data: str) -> str | None:
    """A base64 payload (gzipped or not), as Kinesis, Firehose and Lambda's awslogs carry records."""
    try:
        return _decoded(base64.b64decode(data, validate=True))
    except (binascii.Error, ValueError):
        return None


_DECODER = json.JSONDecoder()


def _values(text: str, read: TrailRead) -> Iterator[Any]:
    """Every JSON value in ``text``, written back to back, on lines, or alone; a stretch that is
    not JSON is counted once and reading goes on at the next ``{``."""
    pos, end = 0, len(text)
    while True:
        while pos < end and text[pos] in " \t\r\n,\x1e":
            pos += 1
        if pos >= end:
            return
        try:
            value, pos = _DECODER.raw_decode(text, pos)
        except ValueError:
            read.skipped["unreadable text"] += 1
            nxt = text.find("{", pos + 1)
            if nxt < 0:
                return
            pos = nxt
            continue
        yield value


def _is_record(value: dict[str, Any]) -> bool:
    return isinstance(value.get("eventName"), str) and any(k in value for k in ("eventSource", "eventTime",
                                                                                "eventVersion"))


def _unwrap(value: Any, read: TrailRead, depth: int) -> None:
    if depth > MAX_DEPTH:
        read.skipped["nested too deep"] += 1
        return
    if isinstance(value, list):
        for item in value:
            _unwrap(item, read, depth + 1)
        return
    if not isinstance(value, dict):
        read.skipped["not a CloudTrail record"] += 1
        return
    if _is_record(value):
        read.add(TrailEvent.from_record(value))
    elif isinstance(value.get("Records"), list):                  # a CloudTrail log file (S3)
        _unwrap(value["Records"], read, depth + 1)
    elif isinstance(value.get("CloudTrailEvent"), str):            # one LookupEvents event
        for inner in _values(value["CloudTrailEvent"], read):
            _unwrap(inner, read, depth + 1)
    elif isinstance(value.get("Events"), list):                   # a LookupEvents response
        _unwrap(value["Events"], read, depth + 1)
    elif isinstance(value.get("awslogs"), dict) or isinstance(value.get("records"), list):
        # Lambda's CloudWatch Logs event ({"awslogs": {"data": ...}}), a Firehose HTTP delivery
        # ({"records": [{"data": ...}]}): base64, usually gzipped, holding any of these formats.
        payloads = [value["awslogs"]] if isinstance(value.get("awslogs"), dict) else value["records"]
        for item in payloads:
            text = _base64(item["data"]) if isinstance(item, dict) and isinstance(item.get("data"), str) else None
            if text is None:
                read.skipped["not a CloudTrail record"] += 1
                continue
            for inner in _values(text, read):
                _unwrap(inner, read, depth + 1)
    elif value.get("messageType") == "CONTROL_MESSAGE":
        read.skipped["CloudWatch Logs control message"] += 1
    elif isinstance(value.get("logEvents"), list):                # a CloudWatch Logs subscription message
        for entry in value["logEvents"]:
            message = entry.get("message") if isinstance(entry, dict) else None
            if isinstance(message, str):
                for inner in _values(message, read):
                    _unwrap(inner, read, depth + 1)
            else:
                read.skipped["not a CloudTrail record"] += 1
    elif "detail-type" in value:                                   # an EventBridge event
        detail = value.get("detail")
        if isinstance(detail, str):                                # some pipelines forward it as text
            detail = next(iter(_values(detail, read)), None)
        if isinstance(detail, dict) and _is_record(detail):
            read.add(TrailEvent.from_record(detail))
        else:
            read.skipped[str(value["detail-type"])[:64] or "EventBridge event"] += 1
    elif isinstance(value.get("Message"), str) and value.get("Type") == "Notification":   # SNS
        for inner in _values(value["Message"], read):
            _unwrap(inner, read, depth + 1)
    elif value.get("eventType") == "AwsCloudTrailInsight" or "insightDetails" in value:
        read.skipped["CloudTrail Insights event"] += 1
    else:
        read.skipped["not a CloudTrail record"] += 1
