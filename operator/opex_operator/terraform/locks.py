"""Parse Terraform's state-lock errors into a :class:`LockError` (and the :class:`StateLock` it names).

Layouts (Terraform's ``internal/command/clistate``, ``internal/states/statemgr/locker.go`` and its
diagnostic printer), all read after :func:`opex_operator.termtext.plain` removed colours and the box:

* 0.15 and later: ``Error: Error acquiring the state lock``, then ``Error message: <backend error>``,
  then, when the backend could read the lock, a ``Lock Info:`` block;
* 0.12–0.14: ``Error: Error locking state: Error acquiring the state lock: <backend error>`` then an
  unboxed ``Lock Info:`` block;
* the bare backend error (``failed to lock s3 state: ...``, ``workspace already locked ...``) where
  a wrapper printed it without Terraform's heading.

The ``Lock Info:`` block lists ``ID``, ``Path``, ``Operation``, ``Who``, ``Version``, ``Created``
(Go's ``2006-01-02 15:04:05.999999999 -0700 MST``) and ``Info``. IDs are UUIDs for most backends
but not all, so any token is accepted.

Backend-specific forms:

* HCP Terraform / Terraform Enterprise (``cloud`` and ``remote`` backends): ``workspace already
  locked (lock ID: "ORG/WORKSPACE")``. That quoted id is what ``terraform force-unlock`` takes for
  these backends (it force-unlocks the workspace), and the ``Lock Info`` block below it describes
  the run that asked for the lock, not the holder (hashicorp/terraform#34732): the holder is unknown.
* S3 with a DynamoDB table: when the lock item cannot be read back, the error is
  ``ConditionalCheckFailedException ... unexpected end of JSON input`` with no ``Lock Info``.
  A lock error without a lock id is still a lock error (retry after the holder finishes), but
  nothing can be force-unlocked from it.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from ..api.common import StateLock
from ..termtext import plain

# Terraform's own headings, and backend errors that mean "someone else holds the lock".
MARKERS = ("Error acquiring the state lock", "Error locking state", "failed to lock s3 state",
           "workspace already locked", "state blob is already locked", "remote state already locked",
           "state is already locked")
_KEY = re.compile(r"^\s*(ID|Path|Operation|Who|Version|Created|Info):\s*(.*?)\s*$")
_CREATED = re.compile(r"^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2})(?:\.(\d+))?\s*([+-]\d{4}|Z)?")
_MESSAGE = re.compile(r"(?:Error message:|Error acquiring the state lock:)\s*(?P<text>.*)$")
_WORKSPACE_ID = re.compile(r'workspace already locked\s*\(lock ID:\s*"(?P<id>[^"]+)"\)')
_END_OF_DETAIL = ("Lock Info:", "Terraform acquires a state lock")
# Which backend wrote the error, from the words only its client uses.
_BACKENDS = (
    ("remote", re.compile(r"workspace already locked")),
    ("s3/dynamodb", re.compile(r"DynamoDB|ConditionalCheckFailed")),
    ("s3", re.compile(r"\bS3\b|PreconditionFailed|\.tflock|failed to lock s3 state")),
    ("gcs", re.compile(r"googleapi|gs://|conditionNotMet")),
    ("azurerm", re.compile(r"state blob is already locked|azure|LeaseAlreadyPresent", re.I)),
    ("http", re.compile(r"HTTP remote state already locked")),
    ("kubernetes", re.compile(r"state is already locked by another terraform client")),
    ("consul", re.compile(r"consul", re.I)),
)
REMOTE_INFO = ("HCP Terraform / Terraform Enterprise workspace lock: the error names the workspace, not who "
               "holds it")
MAX_MESSAGE = 500


@dataclass(frozen=True)
class LockError:
    """A state lock Terraform could not acquire.

    ``lock`` is the lock to wait for or force-unlock, None when the error gives no lock id;
    ``backend`` the backend the error came from when its words say so ("s3", "remote", ...);
    ``message`` the backend's error, one line (at most 500 characters).
    """

    message: str
    backend: str | None = None
    lock: StateLock | None = None

    @property
    def holder(self) -> str:
        """Who holds the lock, or "unknown" when the error does not say."""
        return (self.lock.who if self.lock else None) or "unknown"

    def describe(self) -> str:
        """One line for a condition, an Event or a root cause."""
        via = f" ({self.backend} backend)" if self.backend else ""
        if self.lock is None:
            return (f"the state is locked{via} but the error names no lock id (holder unknown): {self.message}"
                    )[:1024]
        lock = self.lock
        since = f", since {lock.created:%Y-%m-%d %H:%M:%S} UTC" if lock.created else ""
        what = f", {lock.operation}" if lock.operation else ""
        where = f" on {lock.path}" if lock.path else ""
        return f"state lock {lock.id}{where}{via} is held by {self.holder}{what}{since}"[:1024]


def parse_created(value: str) -> dt.datetime | None:
    """Go's time.String() form, e.g. ``2026-11-29 08:55:12.123456789 +0000 UTC`` (None if unparseable)."""
    m = _CREATED.match(value.strip())
    if not m:
        return None
    date, clock, frac, offset = m.groups()
    micro = (frac or "0")[:6].ljust(6, "0")
    tz = dt.timezone.utc
    if offset and offset != "Z":
        sign = 1 if offset[0] == "+" else -1
        tz = dt.timezone(sign * dt.timedelta(hours=int(offset[1:3]), minutes=int(offset[3:5])))
    return dt.datetime.fromisoformat(f"{date}T{clock}.{micro}").replace(tzinfo=tz).astimezone(dt.timezone.utc)


def parse_lock_error(text: str) -> LockError | None:
    """The state-lock error in ``text`` (Terraform's output or a build log, raw), or None when there is none.

    Raises nothing. Output with several lock errors gives the last one (the one the command ended on).
    """
    lines = plain(text).split("\n")
    starts = [i for i, line in enumerate(lines) if any(marker in line for marker in MARKERS)]
    if not starts:
        return None
    # The last error's first line: markers of one error sit on neighbouring lines.
    start = starts[-1]
    while start - 1 in starts or (start - 2 in starts and not lines[start - 1].strip()):
        start -= 1 if start - 1 in starts else 2
    block = lines[start:]
    message = _message(block)
    backend = next((name for name, words in _BACKENDS if words.search(message)), None)
    workspace = _WORKSPACE_ID.search(" ".join(block[:12]))
    if workspace:
        lock = StateLock(id=workspace.group("id"), info=REMOTE_INFO)
        return LockError(message=message, backend="remote", lock=lock)
    fields = _lock_info(block)
    lock = None
    if fields.get("ID"):
        lock = StateLock(id=fields["ID"], path=fields.get("Path") or None, operation=fields.get("Operation") or None,
                         who=fields.get("Who") or None, version=fields.get("Version") or None,
                         created=parse_created(fields["Created"]) if fields.get("Created") else None,
                         info=fields.get("Info") or None)
    return LockError(message=message, backend=backend, lock=lock)


def parse_state_lock(text: str) -> StateLock | None:
    """The lock a state-lock error in ``text`` names, or None (no lock error, or one without a lock id)."""
    found = parse_lock_error(text)
    return found.lock if found else None


def _message(block: list[str]) -> str:
    """The backend's error: the text after ``Error message:`` (or the bare backend error on the first
    line) with the lines that continue it; Go's multi-error bullets (``* ...``) become ``; ``-separated."""
    first = next(((i, m.group("text")) for i, m in enumerate(_MESSAGE.search(line) for line in block) if m), None)
    if first is None:
        head = block[0].strip()
        first = (0, "" if head.startswith(("Error: Error acquiring", "Error acquiring")) else
                 re.sub(r"^Error:\s*", "", head))
    index, text = first
    items = [text.strip()] if text.strip() else []
    for line in block[index + 1:]:
        stripped = line.strip()
        if not stripped:
            if items and items[-1].endswith(":"):
                continue  # "2 error(s) occurred:" then a blank line, then the bullets
            break
        if stripped.startswith(_END_OF_DETAIL) or _KEY.match(line):
            break
        if stripped.startswith("* ") or not items:
            items.append(stripped.lstrip("* "))
        else:
            items[-1] = f"{items[-1]} {stripped}"
    items = [item.removesuffix(":") if item.endswith("occurred:") else item for item in items]
    return "; ".join(items)[:MAX_MESSAGE] or "no detail"


def _lock_info(block: list[str]) -> dict[str, str]:
    """The ``Lock Info:`` fields, values wrapped onto the next line joined again."""
    try:
        begin = next(i for i, line in enumerate(block) if line.strip() == "Lock Info:")
    except StopIteration:
        return {}
    fields: dict[str, str] = {}
    last = None
    for line in block[begin + 1:]:
        if not line.strip():
            if fields:
                break
            continue
        m = _KEY.match(line)
        if m:
            last = m.group(1)
            fields[last] = m.group(2)
        elif last is not None and not line.startswith(("  ", "\t")):
            # A value cut at the terminal's edge: paths and ids have no spaces to break at.
            prev = fields[last]
            fields[last] = prev + ("" if " " not in prev else " ") + line.strip()
        else:
            break
    return fields
