"""Which state backend a configuration uses, read before Terraform runs and again after ``init``.

Terraform docs, "Backend Configuration": the ``backend`` block sits in the root module's
``terraform`` block, at most one, and holds only literal values (no variables or expressions);
``-backend-config`` values given on the command line override the block's ("Partial
Configuration"). A configuration without a backend block uses ``local``. An HCP Terraform
``cloud`` block is reported as backend ``cloud``.

:func:`declared` reads the block from the configuration's files (``*.tf`` native syntax and
``*.tf.json``) with the spec's ``backendConfig`` merged over it: what ``init`` will use.
:func:`initialised` reads what ``init`` actually recorded (``$TF_DATA_DIR/terraform.tfstate``,
the backend's type and full configuration), so the operator policy is checked once on what a
configuration declares, before any Terraform runs, and once on what Terraform took, before any
state is read for a plan or written by an apply.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class BackendError(ValueError):
    """The configuration's backend cannot be read (several blocks, an unreadable file); the message says which."""


@dataclass(frozen=True)
class Backend:
    """A state backend: ``type`` (``s3``, ``local``, ``cloud``, ...) and its top-level literal
    ``settings`` as strings (nested blocks such as ``assume_role`` as their JSON text)."""

    type: str
    settings: dict[str, str] = field(default_factory=dict)
    source: str = ""   # where the block is: a file name, or "" for the default local backend


_BLOCK = re.compile(r'\b(backend)\s+"([^"]+)"\s*\{|\b(cloud)\s*\{')
_ATTRIBUTE = re.compile(r'^\s*([A-Za-z_][A-Za-z0-9_-]*)\s*=\s*(.+?)\s*$')


def _strip_comments(text: str) -> str:
    """HCL comments (``#``, ``//``, ``/* */``) removed, strings kept as they are."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(text[i:j + 1])
            i = j + 1
        elif c == "#" or text.startswith("//", i):
            while i < n and text[i] != "\n":
                i += 1
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end < 0 else end + 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _body(text: str, start: int) -> tuple[str, int]:
    """The text between the brace before ``start`` and its match, and the index after it."""
    depth, i, in_string = 1, start, False
    while i < len(text) and depth:
        c = text[i]
        if in_string:
            if c == "\\":
                i += 1
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c in "{[":
            depth += 1
        elif c in "}]":
            depth -= 1
        i += 1
    return text[start:i - 1], i


def _literal(value: str) -> str:
    if value.startswith('"') and value.endswith('"'):
        return json.loads(value)
    return value


def _hcl_settings(body: str) -> dict[str, str]:
    """Top-level ``name = literal`` attributes of a block body; nested blocks and objects as text."""
    settings: dict[str, str] = {}
    i, lines = 0, body.split("\n")
    while i < len(lines):
        line = lines[i]
        match = _ATTRIBUTE.match(line)
        opening = line.count("{") + line.count("[") - line.count("}") - line.count("]")
        if match and opening <= 0:
            settings[match.group(1)] = _literal(match.group(2))
        elif opening > 0:  # a nested block or a multi-line object/list: kept whole, by its name
            name = line.strip().split()[0].split("=")[0] if line.strip() else ""
            chunk = [line]
            while opening > 0 and i + 1 < len(lines):
                i += 1
                chunk.append(lines[i])
                opening += lines[i].count("{") + lines[i].count("[") - lines[i].count("}") - lines[i].count("]")
            if name:
                settings[name] = " ".join(part.strip() for part in chunk)
        i += 1
    return settings


def _json_settings(block: dict[str, Any]) -> dict[str, str]:
    return {k: v if isinstance(v, str) else json.dumps(v, sort_keys=True) for k, v in block.items()}


def _from_json(name: str, doc: Any) -> list[Backend]:
    found = []
    terraform = doc.get("terraform") if isinstance(doc, dict) else None
    for block in terraform if isinstance(terraform, list) else [terraform] if terraform else []:
        if not isinstance(block, dict):
            continue
        for kind, body in (block.get("backend") or {}).items():
            body = body[0] if isinstance(body, list) and body else body
            found.append(Backend(kind, _json_settings(body if isinstance(body, dict) else {}), name))
        if "cloud" in block:
            body = block["cloud"][0] if isinstance(block["cloud"], list) else block["cloud"]
            found.append(Backend("cloud", _json_settings(body if isinstance(body, dict) else {}), name))
    return found


def _from_hcl(name: str, text: str) -> list[Backend]:
    text = _strip_comments(text)
    found = []
    for match in _BLOCK.finditer(text):
        body, _ = _body(text, match.end())
        kind = match.group(2) if match.group(1) else "cloud"
        found.append(Backend(kind, _hcl_settings(body), name))
    return found


def declared(files: dict[str, str], backend_config: dict[str, str]) -> Backend:
    """The backend ``init`` will use: the root module's block (from ``files``, file name ->
    text) with ``backend_config`` (``spec.backendConfig``) over it; ``local`` without a block.
    Raises BackendError for several blocks or an unreadable ``.tf.json``."""
    found: list[Backend] = []
    for name in sorted(files):
        text = files[name]
        if name.endswith(".tf.json"):
            try:
                found += _from_json(name, json.loads(text))
            except ValueError as err:
                raise BackendError(f"{name} is not JSON: {err}") from None
        elif name.endswith(".tf") and ("backend" in text or "cloud" in text):
            found += _from_hcl(name, text)
    # *_override.tf files replace the block of the same kind (Terraform docs, "Override Files").
    primary = [b for b in found if not Path(b.source).stem.removesuffix(".tf").endswith("override")]
    overrides = [b for b in found if b not in primary]
    if len(primary) > 1:
        raise BackendError(f"more than one backend block ({', '.join(b.source for b in primary)}); Terraform "
                           f"allows one")
    base = overrides[-1] if overrides else (primary[0] if primary else Backend("local"))
    return Backend(base.type, {**base.settings, **backend_config}, base.source)


def config_files(directory: Path) -> dict[str, str]:
    """The root module's ``.tf`` and ``.tf.json`` files in ``directory`` (name -> text)."""
    return {p.name: p.read_text(errors="replace") for p in sorted(directory.iterdir())
            if p.is_file() and p.name.endswith((".tf", ".tf.json"))}


def initialised(data_dir: Path) -> Backend | None:
    """The backend ``init`` recorded in ``data_dir`` (``TF_DATA_DIR``), None before any ``init``.
    Unset settings (null) are left out."""
    path = data_dir / "terraform.tfstate"
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    backend = doc.get("backend") or {}
    if not backend.get("type"):
        return None
    settings = {k: v if isinstance(v, str) else json.dumps(v, sort_keys=True)
                for k, v in (backend.get("config") or {}).items() if v is not None}
    return Backend(backend["type"], settings, str(path))
