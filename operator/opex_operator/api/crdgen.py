"""Render the CustomResourceDefinitions from the pydantic models (``make crds`` writes ``crds/``),
and the JSON Schema of a values file (:func:`values_schema`: ``opex crds --policy-schema`` writes the
operator policy's into the chart's values schema).

Pydantic's JSON Schema (draft 2020-12) is turned into the structural OpenAPI v3 subset the API
server accepts (apiextensions.k8s.io/v1, "Specifying a structural schema"): ``$ref`` inlined,
``Optional`` unwrapped (an absent field is how the API says "unset"), ``title`` dropped,
``additionalProperties: false`` dropped (unknown fields are refused by strict field validation,
and pruned otherwise), ``const`` turned into a one-value ``enum``. ``x-kubernetes-*`` keys come
from the models' ``json_schema_extra``.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from .. import GROUP, VERSION
from . import KINDS, Kind

_DROP = {"title", "discriminator"}


def _resolve(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_resolve(n, defs) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = copy.deepcopy(defs[node["$ref"].split("/")[-1]])
        extra = {k: v for k, v in node.items() if k != "$ref"}
        return _resolve({**target, **extra}, defs)
    if "allOf" in node and len(node["allOf"]) == 1:
        merged = {**node["allOf"][0], **{k: v for k, v in node.items() if k != "allOf"}}
        return _resolve(merged, defs)
    if "anyOf" in node:
        branches = [b for b in node["anyOf"] if b != {"type": "null"}]
        if len(branches) != 1:
            raise ValueError(f"a union is not structural: {node['anyOf']}")
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        if rest.get("default", 0) is None:
            del rest["default"]
        merged = {**_resolve(branches[0], defs), **rest}
        return _resolve(merged, defs)
    return {k: _resolve(v, defs) for k, v in node.items()}


def _structural(node: Any) -> Any:
    if isinstance(node, list):
        return [_structural(n) for n in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP:
            continue
        if key == "properties":
            out[key] = {name: _structural(prop) for name, prop in value.items()}
        elif key == "additionalProperties" and value is False:
            continue
        elif key == "const":
            out["enum"] = [value]
        elif key in ("exclusiveMinimum", "exclusiveMaximum"):
            raise ValueError("use ge/le: OpenAPI v3.0 exclusive bounds are booleans")
        else:
            out[key] = _structural(value)
    if "default" in out and out["default"] is None:
        del out["default"]
    if out.get("required") == []:
        del out["required"]
    return out


def openapi_schema(model: type) -> dict[str, Any]:
    """The structural OpenAPI v3 schema of a pydantic model (a plain dict).

    Raises ValueError when the model uses a construct a structural schema cannot express.
    """
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.pop("$defs", {})
    return _structural(_resolve(raw, defs))


def values_schema(model: type) -> dict[str, Any]:
    """The JSON Schema (draft-07, as Helm validates values) of a pydantic model: ``$ref`` inlined,
    ``Optional`` unwrapped, titles dropped, and every object closed (``additionalProperties:
    false``) so that a misspelt key in a values file is refused by ``helm install`` instead of being
    ignored by the model."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.pop("$defs", {})

    def closed(node: Any) -> Any:
        if isinstance(node, list):
            return [closed(n) for n in node]
        if not isinstance(node, dict):
            return node
        out = {k: (({n: closed(v) for n, v in value.items()} if k == "properties" else closed(value)))
               for k, value in node.items() if k not in _DROP}
        if "properties" in out:
            out.setdefault("additionalProperties", False)
        if out.get("default", 0) is None:
            del out["default"]
        return out

    return closed(_resolve(raw, defs))


def crd(kind: Kind) -> dict[str, Any]:
    """The CustomResourceDefinition of one kind (apiextensions.k8s.io/v1)."""
    spec_schema = openapi_schema(kind.spec)
    status_schema = openapi_schema(kind.status)
    status_schema["description"] = status_schema.get("description", f"Observed state of the {kind.kind}.")
    schema = {
        "type": "object",
        "description": kind.description,
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string", "description": "APIVersion of this representation of an object."},
            "kind": {"type": "string", "description": "Kind of the REST resource this object represents."},
            "metadata": {"type": "object"},
            "spec": spec_schema,
            "status": status_schema,
        },
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{kind.plural}.{GROUP}",
                     "labels": {"app.kubernetes.io/name": "opex-operator", "app.kubernetes.io/part-of": "opex"}},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {"kind": kind.kind, "listKind": f"{kind.kind}List", "plural": kind.plural,
                      "singular": kind.singular, "shortNames": [kind.short_name], "categories": ["opex"]},
            "versions": [{
                "name": VERSION,
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "additionalPrinterColumns": kind.printer_columns,
                "schema": {"openAPIV3Schema": schema},
            }],
        },
    }


def render(kind: Kind) -> str:
    """The CRD of ``kind`` as the YAML committed in ``crds/``."""
    header = "# Generated by `make crds` from operator/opex_operator/api; do not edit by hand.\n"
    return header + yaml.safe_dump(crd(kind), sort_keys=False, width=120)


def write_all(directory: Path) -> list[Path]:
    """Write one ``<plural>.yaml`` per kind into ``directory``; returns the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for kind in KINDS:
        path = directory / f"{GROUP}_{kind.plural}.yaml"
        path.write_text(render(kind))
        paths.append(path)
    return paths


if __name__ == "__main__":
    import sys

    for p in write_all(Path(sys.argv[1] if len(sys.argv) > 1 else "crds")):
        print(p)
