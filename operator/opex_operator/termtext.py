"""Terminal output as plain text: colour codes, Terraform's diagnostic box and its line wrapping undone.

Everything the operator parses out of command output (a build log, Terraform's stderr, a file a
person pasted) goes through :func:`plain` or :func:`plain_lines` first, once, so the parsers
behind it see only text:

* ANSI escape sequences (SGR colours, cursor moves, OSC hyperlinks) are removed. Terraform colours
  its diagnostics unless ``-no-color`` is given, also when its output is piped (Terraform docs,
  "Command: plan", ``-no-color``), so CodeBuild logs carry them. So are escapes a copy and paste
  mangled: the ESC byte replaced by U+FFFD (a viewer decoding it as text), shown as ``^[``, ``␛``,
  ``\\e``, ``\\033``, ``\\x1b`` or ``\\u001b`` (a JSON-escaped or ``cat -v`` log), or dropped, leaving a
  bare colour code such as ``[31m`` (one not followed by a duration: Terraform's ``[1m20s elapsed]``
  keeps its minutes).
* A carriage return inside a line keeps what a terminal would show: the text after the last one.
* Terraform's diagnostic box (``internal/command/format/diagnostic.go``: ``╷`` opens it, every line
  starts with ``│ ``, ``╵`` closes it) is removed, leaving a blank line where a border was.
* Inside a box, the detail text is word-wrapped to the terminal's width less three columns (75 when
  the output is not a terminal); lines that start with a space are never wrapped. A line is joined
  to the one before it when both are prose of the same box and the earlier one could not have held
  the next word (``len(previous) + 1 + len(next word)`` exceeds the widest line of the box), unless
  the line is a heading such as ``Lock Info:``.
"""
from __future__ import annotations

import re
from typing import Iterable

# CSI (colours, cursor), OSC (titles, hyperlinks, ended by BEL or ST) and two-character escapes.
ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-Z\\-_]")
# The same sequences after a paste mangled the ESC byte (see the module docstring), and bare colour codes.
_ESC_MANGLED = r"(?:\ufffd|\^\[|\u241b|\\e|\\033|\\x1[bB]|\\u001[bB])"
MANGLED = re.compile(rf"{_ESC_MANGLED}\[[0-?]*[ -/]*[@-~]|{_ESC_MANGLED}\][^\x07]*?(?:\x07|{_ESC_MANGLED}\\)|"
                     r"\[\d{1,3}(?:;\d{1,3})*m(?!\d+(?:\.\d+)?s\b)")
# The box may follow a log shipper's timestamp (``2026-11-29T08:57:01.123Z │ Error: ...``).
_STAMP = r"(?:\d{4}[-/]\d{2}[-/]\d{2}[T ][\d:.]+Z?\s+)?"
_BORDER = re.compile(rf"^\s*{_STAMP}[╷╵]\s*$")
_BOXED = re.compile(rf"^\s*{_STAMP}│ ?(?P<text>.*)$")
_HEADING = re.compile(r"^[A-Z][\w ]{0,40}:$")
_SUMMARY = re.compile(r"^(Error|Warning): ")
# Terraform's paragraph width when its output is not a terminal (78 columns less the rule and a space).
MIN_WRAP = 75


def strip_ansi(text: str) -> str:
    """``text`` without ANSI escape sequences, whole or mangled by a paste."""
    return MANGLED.sub("", ANSI.sub("", text))


def _screen(line: str) -> str:
    """What a terminal shows of ``line``: the part after its last carriage return."""
    return line.rsplit("\r", 1)[-1] if "\r" in line else line


def plain_lines(lines: Iterable[str]) -> list[tuple[int, str]]:
    """Each logical line of ``lines`` as ``(index of the input line it starts at, text)``.

    ``lines`` are raw output lines (one log event each); the result has no escapes or box
    characters, and a boxed paragraph that was wrapped is one line again.
    """
    out: list[tuple[int, str]] = []
    box: list[tuple[int, str]] = []

    def close_box() -> None:
        # The summary line and indented lines are never wrapped, so they say nothing of the width.
        width = max([MIN_WRAP] + [len(text) for i, (_, text) in enumerate(box)
                                  if text[:1].strip() and not (i == 0 and _SUMMARY.match(text))])
        joined: list[tuple[int, str]] = []
        previous = ""
        for index, text in box:
            if joined and box_joinable(previous, text, width):
                joined[-1] = (joined[-1][0], f"{joined[-1][1]} {text}")
            else:
                joined.append((index, text))
            previous = text
        out.extend(joined)
        box.clear()

    for index, raw in enumerate(lines):
        for part in _screen(strip_ansi(raw)).split("\n"):
            if _BORDER.match(part):
                if box:
                    close_box()
                out.append((index, ""))
                continue
            boxed = _BOXED.match(part)
            if boxed:
                box.append((index, boxed.group("text").rstrip()))
                continue
            if box:
                close_box()
            out.append((index, part.rstrip()))
    if box:
        close_box()
    return out


def box_joinable(previous: str, line: str, width: int) -> bool:
    """True when ``line`` continues ``previous`` after Terraform word-wrapped it at ``width`` or less."""
    if not previous or not line or previous[0].isspace() or line[0].isspace() or _HEADING.match(line) \
            or _SUMMARY.match(previous):
        return False
    return len(previous) + 1 + len(line.split(" ", 1)[0]) > width


def plain(text: str) -> str:
    """``text`` (any line endings) as plain text; see the module docstring."""
    return "\n".join(line for _, line in plain_lines(text.replace("\r\n", "\n").split("\n")))
