"""What the alert and event mappings share: their rules files, and Incident names and namespaces.

Both intakes read YAML rules into a pydantic model once at start-up (``MappingError`` names the file
and the field) and refuse an Incident in a namespace the operator does not watch (nobody would
reconcile it).
"""
from __future__ import annotations

import fnmatch
import re
from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel

M = TypeVar("M", bound=BaseModel)
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def slug(text: str, limit: int = 40) -> str:
    """``text`` as the start of an object name: lower case, runs of other characters as one ``-``."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit].strip("-")


def cut(text: str, limit: int) -> str:
    """``text`` within ``limit`` characters, ending in an ellipsis when it was longer."""
    return text if len(text) <= limit else text[:limit - 1] + "…"


def watched(namespace: str, globs: tuple[str, ...]) -> bool:
    """True when the operator watches ``namespace`` (``OPEX_NAMESPACES`` globs; all when empty)."""
    return not globs or any(fnmatch.fnmatchcase(namespace, g) for g in globs)


def namespace_refusal(namespace: str, globs: tuple[str, ...]) -> str | None:
    """Why no Incident may be written in ``namespace`` (not a namespace name, or one the operator
    does not watch: an Incident nobody reconciles), or None."""
    if not DNS_LABEL.match(namespace) or len(namespace) > 63:
        return f"namespace {namespace!r} is not a namespace name"
    if not watched(namespace, globs):
        return f"namespace {namespace} is not watched by this operator (OPEX_NAMESPACES={','.join(globs)})"
    return None


class MappingError(ValueError):
    """A mapping file is unusable; the message names the file and the field."""


class Rules(BaseModel):
    """Base of the rules models: camelCase keys in the file, unknown keys refused."""

    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)


def load_rules(model: type[M], path: Path | None, what: str) -> M:
    """The rules in the YAML file ``path`` as ``model`` (its defaults when None); ``what`` names
    the file in errors (``alert mapping``). Raises MappingError."""
    if path is None:
        return model()
    try:
        data = yaml.safe_load(path.read_text()) or {}
        return model.model_validate(data)
    except OSError as err:
        raise MappingError(f"{what} {path}: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise MappingError(f"{what} {path}: not YAML: {err}") from None
    except ValidationError as err:
        first = err.errors()[0]
        raise MappingError(f"{what} {path}: {'.'.join(map(str, first['loc']))}: {first['msg']}") from None
