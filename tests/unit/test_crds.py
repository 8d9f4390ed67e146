"""The committed CRDs are exactly what the API models generate, and they are structural."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from opex_operator.api import KINDS, INCIDENT
from opex_operator.api.crdgen import crd, render, values_schema
from opex_operator.api.incident import IncidentSpec, RemediationMode

CRDS = Path(__file__).resolve().parents[2] / "crds"


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
def test_committed_crd_equals_generated(kind):
    committed = (CRDS / f"opex.dev_{kind.plural}.yaml").read_text()
    assert committed == render(kind), "crds/ is stale: run `make crds` and commit the result"


def test_the_charts_policy_schema_is_the_policy_models():
    import json

    from opex_operator.policy import Policy

    chart = json.loads((CRDS.parent / "charts" / "opex-operator" / "values.schema.json").read_text())
    committed = {k: v for k, v in chart["properties"]["policy"].items() if k != "description"}
    assert committed == values_schema(Policy), "values.schema.json is stale: run `make crds` and commit the result"


def test_a_misspelt_policy_key_is_refused_by_the_values_schema():
    from opex_operator.policy import Policy

    rule = values_schema(Policy)["properties"]["rules"]["items"]
    assert rule["additionalProperties"] is False and "terraform" in rule["properties"]


def _walk(node, path="openAPIV3Schema"):
    yield path, node
    for name, prop in (node.get("properties") or {}).items():
        yield from _walk(prop, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from _walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _walk(node["additionalProperties"], f"{path}{{}}")


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
def test_schema_is_structural(kind):
    schema = crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in _walk(schema):
        assert "type" in node, f"{path} has no type"
        for banned in ("$ref", "anyOf", "oneOf", "allOf", "title", "const"):
            assert banned not in node, f"{path} carries {banned}"
        if node["type"] == "array":
            assert "maxItems" in node, f"{path}: unbounded list (status lists must be capped)"
        if node["type"] == "object" and "properties" in node:
            assert node.get("additionalProperties") is None, f"{path}: properties with additionalProperties"


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
def test_crd_names_group_and_subresources(kind):
    spec = crd(kind)["spec"]
    assert spec["group"] == "opex.dev" and spec["scope"] == "Namespaced"
    assert spec["names"]["categories"] == ["opex"]
    assert spec["names"]["shortNames"] == [kind.short_name]
    version = spec["versions"][0]
    assert version["name"] == "v1alpha1" and version["subresources"] == {"status": {}}
    conditions = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    assert set(conditions["items"]["required"]) >= {"type", "status", "reason", "message", "lastTransitionTime"}


def test_schema_defaults_are_the_model_defaults():
    """The API server fills the same defaults the operator assumes (one source of truth)."""
    schema = crd(INCIDENT)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    remediation = schema["properties"]["remediation"]
    assert remediation["default"] == {}
    assert remediation["properties"]["mode"]["default"] == "Manual"
    spec = IncidentSpec.model_validate({"type": "PipelineFailure", "severity": "high", "title": "t",
                                        "environment": "production", "targets": {"pipeline": {"name": "p"}}})
    assert spec.remediation.mode is RemediationMode.MANUAL


def test_committed_yaml_parses_as_one_document_per_kind():
    files = sorted(CRDS.glob("*.yaml"))
    assert [f.name for f in files] == sorted(f"opex.dev_{k.plural}.yaml" for k in KINDS)
    for f in files:
        assert yaml.safe_load(f.read_text())["kind"] == "CustomResourceDefinition"


@pytest.mark.parametrize("part", ["spec", "status"])
@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
def test_every_field_is_described_for_kubectl_explain(kind, part):
    schema = crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"][part]
    undocumented = [path for path, node in _walk(schema, part) if path != part and not node.get("description")
                    and not (path.endswith(("[]", "{}")) and node["type"] != "object")]  # scalars: the field says
    assert undocumented == []
    assert "seed" not in render(kind)  # the operator's own wording, not our internal notes
