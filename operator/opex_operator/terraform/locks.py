"""Parse Terraform's "Error acquiring the state lock" output into a :class:`StateLock`.

Two layouts exist (Terraform's ``internal/command/clistate`` and its diagnostic printer):

* boxed (0.15+): every diagnostic line is prefixed ``│ `` between ``╷`` and ``╵``; the prose
  ("Error message: ...") is word-wrapped to the terminal width, so a long value may continue on
  the next ``│`` line;
* flat (0.12–0.14): ``Error: Error locking state: Error acquiring the state lock: ...`` then an
  unboxed ``Lock Info:`` block.

In both, the ``Lock Info:`` block lists ``ID``, ``Path``, ``Operation``, ``Who``, ``Version``,
``Created`` (Go's ``2006-01-02 15:04:05.999999999 -0700 MST``) and ``Info``. IDs are UUIDs for
most backends but not all (the local and consul backends differ), so any token is accepted.
"""
from __future__ import annotations

import datetime as dt
import re

from ..api.common import StateLock

MARKERS = ("Error acquiring the state lock", "Error locking state")
_KEY = re.compile(r"^\s*(ID|Path|Operation|Who|Version|Created|Info):\s*(.*?)\s*$")
_CREATED = re.compile(r"^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2})(?:\.(\d+))?\s*([+-]\d{4}|Z)?")
_BOX = re.compile(r"^\s*[│|]\s?")


def _unbox(text: str) -> list[str]:
    lines = []
    for raw in text.replace("\r\n", "\n").split("\n"):
        if raw.strip() in ("╷", "╵"):
            lines.append("")
            continue
        lines.append(_BOX.sub("", raw, count=1) if raw.lstrip().startswith("│") else raw)
    return lines


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


def has_lock_error(text: str) -> bool:
    """True when ``text`` reports a state lock that could not be acquired."""
    return any(marker in text for marker in MARKERS)


def parse_state_lock(text: str) -> StateLock | None:
    """The lock reported in ``text`` (Terraform's stderr or a build log), or None when there is none.

    Raises nothing: text without a complete ``Lock Info`` block (at least an ``ID``) gives None.
    """
    lines = _unbox(text)
    joined = "\n".join(lines)
    start = min((i for i in (joined.find(m) for m in MARKERS) if i >= 0), default=-1)
    if start < 0:
        return None
    lines = joined[start:].split("\n")
    try:
        begin = next(i for i, line in enumerate(lines) if line.strip() == "Lock Info:")
    except StopIteration:
        return None
    fields: dict[str, str] = {}
    last = None
    for line in lines[begin + 1:]:
        if not line.strip():
            if fields:
                break
            continue
        m = _KEY.match(line)
        if m:
            last = m.group(1)
            fields[last] = m.group(2)
        elif last is not None and not line.startswith(("  ", "\t")):
            # A value wrapped onto the next boxed line: paths and ids have no spaces to break at.
            prev = fields[last]
            fields[last] = prev + ("" if " " not in prev else " ") + line.strip()
        else:
            break
    if not fields.get("ID"):
        return None
    return StateLock(id=fields["ID"], path=fields.get("Path") or None, operation=fields.get("Operation") or None,
                     who=fields.get("Who") or None, version=fields.get("Version") or None,
                     created=parse_created(fields["Created"]) if fields.get("Created") else None,
                     info=fields.get("Info") or None)
