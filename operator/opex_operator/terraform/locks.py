"""Parse Terraform's state-lock errors into a :class:`LockError`: what went wrong with the lock, and the lock.

Layouts (Terraform's ``internal/command/clistate``, ``internal/states/statemgr/locker.go`` and its
diagnostic printer), all read after :func:`opex_operator.termtext.plain` removed colours and the box:

* 0.15 and later: ``Error: Error acquiring the state lock``, then ``Error message: <backend error>``,
  then, when the backend could read the lock, a ``Lock Info:`` block (Consul prints only the block:
  ``Error message: Lock Info:``);
* 0.12–0.14: ``Error: Error locking state: Error acquiring the state lock: <backend error>`` then an
  unboxed ``Lock Info:`` block;
* the backend's own wrapper where a workspace's state is opened (``failed to lock s3 state: ...``,
  ``failed to lock azure state``, ``failed to lock state in Consul``/``in Postgres``, ``Failed to
  lock cos state``, ``failed to lock OSS state``/``oci state``), and bare backend errors a wrapper
  printed without Terraform's heading (``workspace already locked ...``, ``state blob is already
  locked``, ``the state is already locked by another terraform client``).

The ``Lock Info:`` block lists ``ID``, ``Path``, ``Operation``, ``Who``, ``Version``, ``Created``
(Go's ``2006-01-02 15:04:05.999999999 -0700 MST``) and ``Info``.

What went wrong (:class:`LockProblem`), from the backend's error: the first failure the backend
reports is its attempt to take the lock, the rest its attempt to read the holder's Lock Info.

* ``Held``: the lock exists (DynamoDB ``ConditionalCheckFailedException``, S3 and GCS ``412``/
  ``PreconditionFailed``/``conditionNotMet``, azurerm ``state blob is already locked``/
  ``LeaseAlreadyPresent``, pg ``Workspace is already locked``, Kubernetes ``already locked by another
  terraform client`` (``tofu client`` in OpenTofu), HTTP ``409``/``423``, HCP ``workspace already
  locked``, Consul a Lock Info alone). Wait for the holder; force-unlock only an orphan, by its id.
* ``Denied``: the caller may not write (or read) the lock (:mod:`opex_operator.denials`:
  ``AccessDeniedException ... dynamodb:PutItem``, ``googleapi: Error 403``, ``AuthorizationFailed``,
  ``403 Forbidden``, ...). Nothing is held: retrying or unlocking cannot help, a permission can.
* ``BackendFault``: the backend failed (a server error such as Consul's ``Unexpected response code:
  500 (invalid session)``, throttling, the network). Not contention: nothing to unlock.

The id ``terraform force-unlock`` takes depends on the backend, and is offered (:attr:`LockError.lock`)
only when the error gives that id:

* S3 (DynamoDB table or ``use_lockfile``), azurerm, Kubernetes, HTTP, Consul (its session id): the
  Lock Info's ``ID``.
* GCS: the generation number of the lock object (``gs://BUCKET/PREFIX/WORKSPACE.tflock``), which
  Terraform prints as the ``ID`` since 0.11.10; a Lock Info whose ID is not a number (older
  versions print the holder's UUID) names no usable id. The ``.tflock`` suffix alone says nothing:
  S3's lockfile has it too.
* pg: the Lock Info is the *caller's* attempt (its own new id, user and time, filled before the
  advisory lock was tried), and ``force-unlock`` cannot release another session's advisory lock:
  the holder is unknown and is found in ``pg_locks``.
* HCP Terraform / Terraform Enterprise (``cloud`` and ``remote``): ``workspace already locked
  (lock ID: "ORG/WORKSPACE")``; that quoted id is what ``force-unlock`` takes, and the Lock Info
  block describes the run that asked for the lock, not the holder (hashicorp/terraform#34732).

Sources: each backend's ``client.go`` under ``internal/backend/remote-state/`` in hashicorp/terraform
and opentofu/opentofu; ``internal/cloud/state.go`` for HCP Terraform.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, replace
from enum import StrEnum

from .. import denials
from ..api.common import StateLock, truncate
from ..termtext import plain

# Terraform's own headings, the backends' wrappers, and bare backend errors that mean "someone else holds the lock".
MARKERS = ("Error acquiring the state lock", "Error locking state", "failed to lock s3 state",
           "failed to lock azure state", "failed to lock state in Consul", "failed to lock state in Postgres",
           "Failed to lock cos state", "failed to lock OSS state", "failed to lock oci state",
           "workspace already locked", "state blob is already locked", "remote state already locked",
           "state is already locked", "Unable to retrieve item from DynamoDB table")
_MARKERS = tuple(m.lower() for m in MARKERS)  # wrappers re-word them ("error acquiring the state lock: ...")
_HEADINGS = ("error acquiring the state lock", "error locking state")
_KEY = re.compile(r"^\s*(ID|Path|Operation|Who|Version|Created|Info):\s*(.*?)\s*$")
_CREATED = re.compile(r"^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2})(?:\.(\d+))?\s*([+-]\d{4}|Z)?")
_MESSAGE = re.compile(r"(?:Error message:|Error acquiring the state lock:)\s*(?P<text>.*)$", re.I)
_WORKSPACE_ID = re.compile(r'workspace already locked\s*\(lock ID:\s*"(?P<id>[^"]+)"\)')
_END_OF_DETAIL = ("Lock Info:", "Terraform acquires a state lock", "OpenTofu acquires a state lock")
# Which backend wrote the error, from the words only its client uses (message first, then the Lock Info).
_BACKENDS = (
    ("remote", re.compile(r"workspace already locked|\(lock ID: \"[^\"/]+/[^\"]+\"\)")),
    ("s3/dynamodb", re.compile(r"DynamoDB|ConditionalCheckFailed|dynamodb:")),
    ("gcs", re.compile(r"googleapi|gs://|conditionNotMet|storage: object doesn't exist|storage\.googleapis\.com")),
    ("s3", re.compile(r"\bS3\b|\bs3:|PreconditionFailed|failed to lock s3 state|s3://")),
    ("azurerm", re.compile(r"state blob is already locked|LeaseAlreadyPresent|terraformlockid|blobs\.Client|"
                           r"AuthorizationPermissionMismatch|blob\.core\.windows\.net|\bazure\b", re.I)),
    ("http", re.compile(r"HTTP remote state")),
    ("kubernetes", re.compile(r"already locked by another (?:terraform|tofu) client|coordination\.k8s\.io|"
                              r"lock-tfstate-")),
    ("pg", re.compile(r"Workspace is already locked: |already locked for workspace creation|\bpq: |in Postgres|"
                      r"pg_advisory")),
    ("consul", re.compile(r"consul|Unexpected response code: \d{3}", re.I)),
    ("local", re.compile(r"resource temporarily unavailable|another process has locked a portion of the file")),
    ("cos", re.compile(r"cos state|tencentcloud", re.I)),
    ("oss", re.compile(r"OSS state|aliyuncs", re.I)),
    ("oci", re.compile(r"oci state|oraclecloud", re.I)),
)
# The lock exists: the backend refused a second holder.
HELD = re.compile(r"ConditionalCheckFailed|PreconditionFailed|StatusCode:?\s*412\b|Error 412\b|conditionNotMet|"
                  r"already locked|LeaseAlreadyPresent|already a lease present|lock file \S+ exists|"
                  r"StatusCode[=:]\s*409\b", re.I)
# The backend failed: a server error, throttling, or the network on the way to it.
FAULT = re.compile(r"response code:? 5\d\d\b|StatusCode[=:]\s*5\d\d\b|Error 5\d\d\b|HTTP response code 5\d\d\b|"
                   r"\b5\d\d (?:Internal Server Error|Bad Gateway|Service Unavailable|Gateway Timeout)\b|"
                   r"\b(?:InternalServerError|InternalError|ServiceUnavailable|ThrottlingException|"
                   r"ProvisionedThroughputExceeded\w*|RequestLimitExceeded|SlowDown|RequestTimeout)\b|"
                   r"invalid session|consul lock was lost|lost consul lock|dial tcp|i/o timeout|no such host|"
                   r"connection refused|connection reset|TLS handshake timeout|context deadline exceeded|"
                   r"request send failed")
REMOTE_INFO = ("HCP Terraform / Terraform Enterprise workspace lock: the error names the workspace, not who "
               "holds it")
PG_NOTE = ("the pg backend prints the caller's own attempt as Lock Info, not the holder's, and force-unlock "
           "cannot release another session's advisory lock: find the holder with SELECT l.pid, a.usename, "
           "a.client_addr, a.backend_start, a.state FROM pg_locks l JOIN pg_stat_activity a USING (pid) WHERE "
           "l.locktype = 'advisory'; when it is dead, end its session with SELECT pg_terminate_backend(PID)")
MAX_MESSAGE = 500


class LockProblem(StrEnum):
    """What went wrong with the lock (see the module docstring)."""

    HELD = "Held"
    DENIED = "Denied"
    BACKEND_FAULT = "BackendFault"


@dataclass(frozen=True)
class LockError:
    """A state lock Terraform could not acquire.

    ``problem`` says why (another holder, a permission denial, a backend fault); ``lock`` is the
    held lock ``terraform force-unlock`` takes by its id, None when the error gives no usable id
    (or nothing is held); ``holder_info`` the Lock Info when it describes the holder (for GCS it
    may without a usable id; pg and HCP Terraform print the caller's instead); ``backend`` the
    backend the error came from when its words say so ("s3", "gcs", "remote", ...); ``message``
    the backend's error, one line (at most 500 characters); ``denial`` what was refused to whom
    (Denied only); ``note`` what the error cannot say and how to find it.
    """

    message: str
    backend: str | None = None
    lock: StateLock | None = None
    problem: LockProblem = LockProblem.HELD
    holder_info: StateLock | None = None
    denial: denials.Denial | None = None
    note: str = ""

    @property
    def holder(self) -> str:
        """Who holds the lock, or "unknown" when the error does not say."""
        info = self.holder_info or self.lock
        return (info.who if info else None) or "unknown"

    def describe(self) -> str:
        """One line for a condition, an Event or a root cause (at most 1,024 characters)."""
        return truncate(self._describe(), 1024)

    def _describe(self) -> str:
        via = f" ({self.backend} backend)" if self.backend else ""
        if self.problem == LockProblem.DENIED:
            what = self.denial.describe() if self.denial else self.message
            return f"the Terraform state lock could not be written{via}: permission denied: {what}"
        if self.problem == LockProblem.BACKEND_FAULT:
            return (f"the Terraform state backend{via} failed while taking the lock (a backend fault, not another "
                    f"holder): {self.message}")
        info = self.lock or self.holder_info
        if info is None:
            note = f"; {self.note}" if self.note else ""
            return (f"the state is locked{via} but the error names no lock id (holder unknown): {self.message}{note}")
        since = f", since {info.created:%Y-%m-%d %H:%M:%S} UTC" if info.created else ""
        what = f", {info.operation}" if info.operation else ""
        where = f" on {info.path}" if info.path else ""
        name = f"state lock {info.id}" if self.lock else "the state lock"
        note = f"; {self.note}" if self.note and not self.lock else ""
        return f"{name}{where}{via} is held by {self.holder}{what}{since}{note}"


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
    if text.count("\\n") > text.count("\n"):  # a JSON-escaped message (a log shipper, a controller's status)
        text = text.replace("\\n", "\n").replace("\\t", "\t").replace('\\"', '"')
    # Terraform's box pasted as ASCII pipes ("  | Error message: ...") reads as the box does.
    lines = [_ASCII_BOX.sub("", line) for line in plain(text).split("\n")]
    starts = [i for i, line in enumerate(lines) if any(marker in line.lower() for marker in _MARKERS)]
    if not starts:
        return None
    # The last error's first line: markers of one error sit on neighbouring lines.
    start = starts[-1]
    while start - 1 in starts or (start - 2 in starts and not lines[start - 1].strip()):
        start -= 1 if start - 1 in starts else 2
    # A backend's words below the message's first line (a paste that kept only "Error message:" onwards).
    before = [i for i in range(max(0, start - 15), start) if "Error message:" in lines[i]]
    if before and not any(m in lines[start].lower() for m in _HEADINGS):
        start = before[-1]
    block = lines[start:]
    message = _message(block)
    fields = _lock_info(block)
    info = None
    if fields.get("ID") or fields.get("Who"):  # a paste may keep the holder but lose the ID line
        info = StateLock(id=fields.get("ID", ""), path=fields.get("Path") or None,
                         operation=fields.get("Operation") or None, who=fields.get("Who") or None, version=fields.get("Version") or None,
                         created=parse_created(fields["Created"]) if fields.get("Created") else None,
                         info=fields.get("Info") or None)
    clues = " ".join([message, fields.get("Path", ""), fields.get("Info", "")])
    backend = next((name for name, words in _BACKENDS if words.search(clues)), None)
    found = LockError(message=message, backend=backend, problem=_problem(message))
    if found.problem == LockProblem.DENIED:
        return replace(found, denial=_denial(message, backend))
    if found.problem == LockProblem.BACKEND_FAULT:
        return found
    workspace = _WORKSPACE_ID.search(" ".join(block[:12]))
    if workspace:
        return replace(found, backend="remote", lock=StateLock(id=workspace.group("id"), info=REMOTE_INFO))
    if backend == "pg":
        return replace(found, note=PG_NOTE)
    if info is not None and backend == "gcs" and not info.id.isdigit():
        return replace(found, holder_info=info, note=_gcs_note(info, message))
    return replace(found, lock=info if info is not None and info.id else None, holder_info=info)


def _problem(message: str) -> LockProblem:
    """Held, Denied or BackendFault from the backend's error (see the module docstring)."""
    if HELD.search(message) or not message or message == "no detail":
        return LockProblem.HELD
    if denials.DENIED.search(message) or denials.HTTP_DENIED.search(message):
        return LockProblem.DENIED
    if FAULT.search(message):
        return LockProblem.BACKEND_FAULT
    return LockProblem.HELD


def _denial(message: str, backend: str | None) -> denials.Denial | None:
    """What was refused: the denial's own words, or for GCS the write of the lock object Terraform attempted."""
    found = denials.find(message, http=True)
    writing = re.search(r'writing "(?P<object>gs://[^"]+)" failed', message)
    if backend == "gcs" and writing and found is not None and found.action is None:
        return replace(found, action="storage.objects.create", resource=writing.group("object"))
    return found


def _gcs_note(info: StateLock, message: str) -> str:
    written = re.search(r'"(gs://[^"]+)"', message)
    where = (info.path if info.path and info.path.startswith("gs://") else
             written.group(1) if written else "gs://BUCKET/PREFIX/WORKSPACE.tflock")
    named = f"the Lock Info's ID {info.id} is not" if info.id else "the error does not give"
    return (f"{named} the GCS lock object's generation, which force-unlock needs: read it with gcloud storage "
            f"objects describe {where} --format='value(generation)'")


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
    text = text.split("Lock Info:", 1)[0]  # Consul's whole message, or a Lock Info flattened onto the line
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
    return truncate("; ".join(items), MAX_MESSAGE) or "no detail"


_ASCII_BOX = re.compile(r"^\s*\|(?: |$)")
_FIELD = re.compile(r"\b(ID|Path|Operation|Who|Version|Created|Info):")


def _lock_info(block: list[str]) -> dict[str, str]:
    """The ``Lock Info:`` fields, values wrapped onto the next line joined again, or flattened onto one line
    (a wrapper that logged the error without its newlines: ``Lock Info: ID: ... Path: ... Who: ...``)."""
    flat = next((line.split("Lock Info:", 1)[1] for line in block if re.search(r"Lock Info:\s*ID:", line)), None)
    if flat is not None:
        parts = _FIELD.split(flat)[1:]
        return {key: value.strip() for key, value in zip(parts[::2], parts[1::2])}
    try:
        begin = next(i for i, line in enumerate(block) if line.strip().endswith("Lock Info:"))
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
