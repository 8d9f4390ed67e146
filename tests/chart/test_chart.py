"""The Helm chart rendered by the real helm, without a cluster: lint, schema, RBAC, security, shards.

What the API server says about the rendered manifests is in tests/e2e/test_chart_install.py.
"""
from __future__ import annotations

import json
import os
import re

import pytest
import yaml

from helpers import CHART
from opex_operator import rbac
from opex_operator.alerts.mapping import MappingRules
from opex_operator.config import Settings
from opex_operator.events.mapping import EventRules
from opex_operator.config import __doc__ as SETTINGS_TABLE
from opex_operator.policy import Policy

ROOT = CHART.parent.parent
FULL = CHART / "ci" / "full-values.yaml"
NAMESPACED = CHART / "ci" / "namespaced-values.yaml"
# Settings the chart leaves to extraEnv: the intake's basic auth (the chart gives it the bearer token
# Alertmanager's authorization.credentials_file presents).
NOT_RENDERED = {"OPEX_ALERT_INTAKE_USERNAME"}
RULES, DASHBOARD = CHART / "files" / "prometheus-rules.yaml", CHART / "files" / "grafana-dashboard.json"


def of_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


def container(deployment: dict) -> dict:
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    return only


def env(deployment: dict) -> dict[str, str]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(deployment)["env"]}


def rule_triples(role: dict) -> set[tuple[str, str, str]]:
    return {(group, resource, verb) for r in role["rules"] for group in r["apiGroups"]
            for resource in r["resources"] for verb in r["verbs"]}


def test_chart_crds_are_the_generated_crds_byte_for_byte():
    top = sorted(p.name for p in (ROOT / "crds").glob("*.yaml"))
    assert top == sorted(p.name for p in (CHART / "crds").glob("*.yaml"))
    for name in top:
        assert (CHART / "crds" / name).read_bytes() == (ROOT / "crds" / name).read_bytes(), (
            f"charts/opex-operator/crds/{name} differs from crds/{name}: run `make crds`")


@pytest.mark.parametrize("values", [(), (FULL,), (NAMESPACED,)], ids=["default", "full", "namespaced"])
def test_helm_lint_strict_passes(helm, values):
    args = ["lint", "--strict", str(CHART)] + [a for v in values for a in ("-f", str(v))]
    assert "0 chart(s) failed" in helm.run(*args).stdout


def test_default_values_render_one_restricted_deployment_with_probes_on_the_health_port(helm):
    docs = helm.template()
    (deployment,) = of_kind(docs, "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert not of_kind(docs, "PodDisruptionBudget")  # one replica: nothing to keep available
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"] == {"runAsNonRoot": True, "runAsUser": 65532, "runAsGroup": 65532,
                                      "fsGroup": 65532, "seccompProfile": {"type": "RuntimeDefault"}}
    c = container(deployment)
    assert c["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                    "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]},
                                    "seccompProfile": {"type": "RuntimeDefault"}}
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert c[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"metrics": 8080, "health": 8081}
    assert c["resources"]["requests"] and c["resources"]["limits"]["memory"]
    # Everything the operator writes lands on emptyDirs: the root filesystem stays read-only.
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    e = env(deployment)
    for path in (e["OPEX_WORK_DIR"], e["OPEX_CACHE_DIR"], e["HOME"], e["TMPDIR"]):
        mount = next(m for m in mounts if path == m or path.startswith(m + "/"))
        assert "emptyDir" in volumes[mounts[mount]], path
    assert e["OPEX_NAMESPACES"] == "" and "OPEX_SHARD" not in e and "OPEX_POLICY_FILE" not in e
    assert "AWS_ENDPOINT_URL" not in e  # AWS itself unless a test estate is named
    # The one ConfigMap is the plan Job's template (no policy, no alert mapping by default).
    assert [c["metadata"]["name"] for c in of_kind(docs, "ConfigMap")] == ["opex-opex-operator-plan-job"]
    assert not of_kind(docs, "ServiceMonitor")


def test_full_values_render_a_deployment_and_pdb_per_shard_with_irsa_policy_and_monitoring(helm):
    docs = helm.template(FULL)
    deployments = {d["metadata"]["name"]: d for d in of_kind(docs, "Deployment")}
    assert set(deployments) == {"opex-default", "opex-payments"}
    assert {n: d["spec"]["replicas"] for n, d in deployments.items()} == {"opex-default": 2, "opex-payments": 3}
    assert {n: env(d)["OPEX_SHARD"] for n, d in deployments.items()} == {"opex-default": "default",
                                                                         "opex-payments": "payments"}
    assert {env(d)["OPEX_DEFAULT_SHARD"] for d in deployments.values()} == {"default"}
    assert {n: env(d)["OPEX_LEASE_NAME"] for n, d in deployments.items()} == {
        "opex-default": "opex-leader-default", "opex-payments": "opex-leader-payments"}
    assert container(deployments["opex-payments"])["resources"]["limits"]["memory"] == "2Gi"
    # Each PDB picks exactly its own Deployment's pods.
    pdbs = {p["metadata"]["name"]: p for p in of_kind(docs, "PodDisruptionBudget")}
    assert set(pdbs) == set(deployments)
    for name, pdb in pdbs.items():
        assert pdb["spec"]["selector"]["matchLabels"] == deployments[name]["spec"]["selector"]["matchLabels"]
        assert pdb["spec"]["maxUnavailable"] == 1
    selectors = [tuple(sorted(d["spec"]["selector"]["matchLabels"].items())) for d in deployments.values()]
    assert len(set(selectors)) == 2
    first = deployments["opex-default"]
    e = env(first)
    assert e["OPEX_NAMESPACES"] == "payments-*,platform" and e["AWS_REGION"] == "eu-west-1"
    assert e["AWS_STS_REGIONAL_ENDPOINTS"] == "regional" and e["OPEX_METRICS_PORT"] == "9090"
    assert container(first)["image"].startswith("123456789012.dkr.ecr.us-east-1.amazonaws.com/opex-operator@sha256:")
    assert container(first)["args"] == ["--verbose"]
    (sa,) = [a for a in of_kind(docs, "ServiceAccount") if a["metadata"]["name"] != "opex-plan-job"]
    assert sa["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/opex-operator",
                                             "eks.amazonaws.com/sts-regional-endpoints": "true"}
    assert {d["spec"]["template"]["spec"]["serviceAccountName"] for d in deployments.values()} == {"opex"}
    # The policy ConfigMap holds what the operator's own policy model accepts, and is mounted where
    # OPEX_POLICY_FILE points.
    (policy_cm,) = [c for c in of_kind(docs, "ConfigMap") if c["metadata"]["name"] == "opex-policy"]
    policy = Policy.model_validate(yaml.safe_load(policy_cm["data"]["policy.yaml"]))
    assert policy.check("payments-api", "deployer", "eu-west-1", "lambda:UpdateFunctionCode") is None
    assert "not allowed" in policy.check("platform", None, "eu-west-1", "lambda:UpdateFunctionCode")
    mount = next(m for m in container(first)["volumeMounts"] if m["name"] == "policy")
    assert e["OPEX_POLICY_FILE"] == f"{mount['mountPath']}/policy.yaml"
    assert "checksum/policy" in first["spec"]["template"]["metadata"]["annotations"]
    (service,) = of_kind(docs, "Service")
    assert {p["name"]: p["port"] for p in service["spec"]["ports"]} == {"metrics": 9090, "alerts": 9093, "receivers": 9094}
    for d in deployments.values():  # the Service reaches every shard's pods
        labels = d["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= labels.items()
    (monitor,) = of_kind(docs, "ServiceMonitor")
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()


def test_every_operator_setting_is_set_by_the_chart_and_nothing_else(helm):
    documented = set(re.findall(r"^(OPEX_[A-Z_]+|AWS_REGION)\s", SETTINGS_TABLE, re.M))
    (deployment,) = of_kind(helm.template(FULL, sets=("sharding.shards=null",), check=True), "Deployment")
    rendered = {name for name in env(deployment) if name.startswith("OPEX_") or name == "AWS_REGION"}
    rendered |= {"OPEX_SHARD", "OPEX_DEFAULT_SHARD"}  # set only when sharded (the other test)
    assert rendered == documented - NOT_RENDERED


def test_a_policy_with_limits_is_accepted_and_rendered_as_the_operator_reads_it(helm, tmp_path):
    local = yaml.safe_load((ROOT / "hack" / "policy-local.yaml").read_text())
    assert local["rules"][0]["limits"]  # the local stack's policy caps what a step may set
    (values := tmp_path / "values.yaml").write_text(yaml.safe_dump({"policy": local}))
    (policy_cm,) = [c for c in of_kind(helm.template(values), "ConfigMap") if c["metadata"]["name"].endswith("-policy")]
    (tmp_path / "policy.yaml").write_text(policy_cm["data"]["policy.yaml"])
    cap = Policy.load(tmp_path / "policy.yaml").limits("any").lambda_memory_mb
    assert cap == local["rules"][0]["limits"]["lambdaMemoryMb"]


def test_a_test_estates_endpoint_reaches_the_pods_as_aws_endpoint_url(helm):
    (deployment,) = of_kind(helm.template(sets=("aws.endpointUrl=http://192.0.2.2:5000",)), "Deployment")
    assert env(deployment)["AWS_ENDPOINT_URL"] == "http://192.0.2.2:5000"


def test_the_rendered_environment_is_what_the_operators_settings_read(helm, monkeypatch, tmp_path):
    docs = helm.template(FULL)
    deployments = {d["metadata"]["name"]: d for d in of_kind(docs, "Deployment")}
    for key in [k for k in os.environ if k.startswith(("OPEX_", "AWS_"))]:
        monkeypatch.delenv(key)
    rendered = env(deployments["opex-payments"])
    mounts = {m["name"]: m["mountPath"] for m in container(deployments["opex-payments"])["volumeMounts"]}
    assert rendered["OPEX_ALERT_INTAKE_TOKEN_FILE"] == f"{mounts['alert-token']}/token"
    assert rendered["OPEX_ALERT_MAPPING_FILE"] == f"{mounts['alert-mapping']}/mapping.yaml"
    (token := tmp_path / "token").write_text("t")  # the Secret, as the kubelet mounts it
    rendered["OPEX_ALERT_INTAKE_TOKEN_FILE"] = str(token)
    assert rendered["OPEX_PAGERDUTY_WEBHOOK_SECRET_FILE"] == f"{mounts['pagerduty-secret']}/secret"
    assert rendered["OPEX_SLACK_SIGNING_SECRET_FILE"] == f"{mounts['slack-signing-secret']}/signing-secret"
    for variable in ("OPEX_PAGERDUTY_WEBHOOK_SECRET_FILE", "OPEX_SLACK_SIGNING_SECRET_FILE"):
        (secret := tmp_path / variable).write_text("s")
        rendered[variable] = str(secret)
    for name, value in rendered.items():
        monkeypatch.setenv(name, value if isinstance(value, str) else "opex-system")  # valueFrom: the Pod's namespace
    settings = Settings.from_env()
    intake = settings.alert_intake
    assert (intake.port, intake.path, intake.default_namespace, intake.max_body_bytes) == (9093, "/alerts", "platform",
                                                                                          1048576)
    (mapping,) = [c for c in of_kind(docs, "ConfigMap") if c["metadata"]["name"].endswith("-alert-mapping")]
    (tmp_path / "mapping.yaml").write_text(mapping["data"]["mapping.yaml"])
    rules = MappingRules.load(tmp_path / "mapping.yaml")
    assert rules.type.by_alertname == {"CheckoutApiErrors": "DeploymentFailure"} and rules.severity.default == "high"
    assert (settings.workers, settings.max_workers, settings.resync_seconds, settings.shutdown_grace) == (8, 16, 600, 40)
    assert settings.restart_spread == 60
    assert settings.leader_election and (settings.lease_name, settings.lease_seconds) == ("opex-leader-payments", 20)
    assert settings.lease_namespace == "opex-system"
    assert settings.aws_rates["logs:FilterLogEvents"] == 2.5 and settings.aws_rates["codepipeline"] == 1
    assert settings.aws_background_share == 0.1 and settings.aws_region == "eu-west-1"
    assert (settings.shard, settings.default_shard) == ("payments", "default")
    assert settings.namespaces == ("payments-*", "platform") and settings.metrics_port == 9090
    receivers = settings.receivers
    assert (receivers.port, receivers.max_body_bytes) == (9094, 65536)
    assert receivers.pagerduty_secret_file and receivers.slack_secret_file
    assert settings.pagerduty_events_url == "https://events.eu.pagerduty.com/v2/enqueue"
    assert settings.slack_api_url == "https://slack.com/api"


def test_the_event_intake_runs_in_the_default_shard_with_its_queues_roles_and_rules(helm, monkeypatch, tmp_path):
    docs = helm.template(FULL)
    deployments = {d["metadata"]["name"]: d for d in of_kind(docs, "Deployment")}
    assert not any(k.startswith("OPEX_EVENT_") for k in env(deployments["opex-payments"]))  # the default shard's alone
    rendered = env(deployments["opex-default"])
    mounts = {m["name"]: m["mountPath"] for m in container(deployments["opex-default"])["volumeMounts"]}
    assert rendered["OPEX_EVENT_MAPPING_FILE"] == f"{mounts['event-mapping']}/mapping.yaml"
    for key in [k for k in os.environ if k.startswith(("OPEX_", "AWS_"))]:
        monkeypatch.delenv(key)
    for name in ("OPEX_EVENT_QUEUES", "OPEX_EVENT_VISIBILITY_SECONDS", "OPEX_EVENT_NAMESPACE"):
        monkeypatch.setenv(name, rendered[name])
    intake = Settings.from_env().event_intake
    assert [(q.name, q.region, q.role_key) for q in intake.queues] == [("opex-events", "eu-west-1", None),
                                                                     ("payments-events", "eu-west-1", "deployer")]
    assert (intake.visibility_seconds, intake.default_namespace) == (90, "platform")
    (mapping,) = [c for c in of_kind(docs, "ConfigMap") if c["metadata"]["name"].endswith("-event-mapping")]
    (tmp_path / "mapping.yaml").write_text(mapping["data"]["mapping.yaml"])
    assert EventRules.load(tmp_path / "mapping.yaml").rules[0].namespace == "payments-prod"
    annotations = deployments["opex-default"]["spec"]["template"]["metadata"]["annotations"]
    assert "checksum/event-mapping" in annotations  # a changed mapping rolls the pods that read it


@pytest.mark.parametrize("values,sets,expected", [
    ((), (), (rbac.WATCHED, "ClusterRole")),
    ((), ("watch.namespaces={team-*,platform}",), (rbac.WATCHED + rbac.NAMESPACE_SCAN, "ClusterRole")),
    ((), ("watch.namespaces={checkout,payments}",), (rbac.WATCHED, "Role")),
    ((NAMESPACED,), (), (rbac.WATCHED, "Role")),
], ids=["all-namespaces", "globs", "exact-names-cluster-scope", "namespaced"])
def test_rendered_rbac_grants_exactly_the_rules_listed_beside_the_code(helm, values, sets, expected):
    rules, kind = expected
    docs = helm.template(*values, sets=sets)
    runner = [r for r in of_kind(docs, "Role") if r["metadata"]["name"] == "opex-plan-job"]
    watched = [r for r in of_kind(docs, kind) if not r["metadata"]["name"].endswith("-leader-election")
               and r not in runner]
    if kind == "Role":
        assert sorted(r["metadata"]["namespace"] for r in watched) == ["checkout", "payments"]
        assert not of_kind(docs, "ClusterRole") and not of_kind(docs, "ClusterRoleBinding")
    else:
        assert len(watched) == 1
    for role in watched:
        assert rule_triples(role) == rbac.triples(rules)
    (election,) = [r for r in of_kind(docs, "Role") if r["metadata"]["name"].endswith("-leader-election")]
    assert election["metadata"]["namespace"] == "opex-system"
    assert rule_triples(election) == rbac.triples(rbac.OWN_NAMESPACE)
    # Every Role is bound to the chart's ServiceAccount and to nothing else.
    # In each exact watched namespace, the plan Jobs' runner ServiceAccount may only create ConfigMaps.
    assert sorted(r["metadata"]["namespace"] for r in runner) == (
        ["checkout", "payments"] if kind == "Role" else ["platform"] if sets and "platform" in sets[0] else [])
    for role in runner:
        assert rule_triples(role) == rbac.triples(rbac.PLAN_JOB)
    bindings = [b for b in of_kind(docs, "RoleBinding") + of_kind(docs, "ClusterRoleBinding")
                if b["roleRef"]["name"] != "opex-plan-job"]
    assert len(bindings) == len(watched) + 1
    for b in bindings:
        assert b["subjects"] == [{"kind": "ServiceAccount", "name": "opex-opex-operator", "namespace": "opex-system"}]
        assert b["roleRef"]["name"] in {r["metadata"]["name"] for r in watched + [election]}


@pytest.mark.parametrize("values", [(), (FULL,), (NAMESPACED,)], ids=["default", "full", "namespaced"])
def test_no_wildcard_and_no_cluster_admin(helm, values):
    docs = helm.template(*values)
    for role in of_kind(docs, "ClusterRole") + of_kind(docs, "Role"):
        for rule in role["rules"]:
            for field in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule[field], (role["metadata"]["name"], rule)
            assert not {"escalate", "bind"} & set(rule["verbs"])
            if "impersonate" in rule["verbs"]:  # only named users: the on-call receivers' (next test)
                assert rule["resources"] == ["users"] and rule["resourceNames"], (role["metadata"]["name"], rule)
    for binding in of_kind(docs, "ClusterRoleBinding") + of_kind(docs, "RoleBinding"):
        assert binding["roleRef"]["name"] not in ("cluster-admin", "admin", "edit")


def test_the_operator_may_impersonate_exactly_the_policys_oncall_users_and_only_with_the_receivers_on(helm):
    docs = helm.template(FULL)
    (role,) = [r for r in of_kind(docs, "ClusterRole") if r["metadata"]["name"] == "opex-oncall-impersonation"]
    assert role["rules"] == [{"apiGroups": [""], "resources": ["users"], "verbs": ["impersonate"],
                              "resourceNames": ["alice@example.com", "bob@example.com"]}]
    assert rule_triples(role) == rbac.triples(rbac.IMPERSONATION)
    (binding,) = [b for b in of_kind(docs, "ClusterRoleBinding") if b["roleRef"]["name"] == "opex-oncall-impersonation"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "opex", "namespace": "opex-system"}]
    off = helm.template(FULL, sets=("receivers.enabled=false",))
    assert not [r for r in of_kind(off, "ClusterRole") if "impersonate" in str(r["rules"])]


@pytest.mark.parametrize("override,phrase", [
    ("replicaCount: 2\n", "additional properties 'replicaCount' not allowed"),
    ("serviceAccount:\n  awsRoleARN: arn:aws:iam::123456789012:role/x\n", "additional properties 'awsRoleARN' not allowed"),
    ("replicas: two\n", "at '/replicas': got string, want integer"),
    ("replicas: 0\n", "at '/replicas'"),
    ("watch:\n  scope: cluster\n", "at '/watch/scope'"),
    ("operator:\n  metricsPort: \"8080\"\n", "at '/operator/metricsPort': got string, want integer"),
    ("serviceMonitor:\n  enabled: yes please\n", "at '/serviceMonitor/enabled': got string, want boolean"),
    ("image:\n  digest: latest\n", "at '/image/digest'"),
    ("serviceAccount:\n  awsRoleArn: my-role\n", "at '/serviceAccount/awsRoleArn'"),
    ("policy:\n  rules:\n    - namespace: [payments]\n", "at '/policy/rules/0'"),
    ("policy:\n  roles:\n    deployer: {roleArn: deployer}\n", "at '/policy/roles/deployer/roleArn'"),
    ("sharding:\n  shards: [{name: Payments}]\n", "at '/sharding/shards/0/name'"),
    ("aws:\n  endpointUrl: 192.0.2.2:5000\n", "at '/aws/endpointUrl'"),
    ("planJob:\n  namespaces: [payments-*]\n", "at '/planJob/namespaces/0'"),
], ids=["typo-top", "typo-nested", "string-for-int", "zero-replicas", "enum", "quoted-port", "bool", "digest",
        "role-arn", "policy-typo", "policy-role-arn", "shard-name", "endpoint-without-scheme", "plan-job-glob"])
def test_a_values_file_with_a_typo_or_a_wrong_type_is_refused_by_the_schema(helm, tmp_path, override, phrase):
    values = tmp_path / "values.yaml"
    values.write_text(override)
    proc = helm.template(values, check=False)
    assert proc.returncode != 0
    assert "values don't meet the specifications of the schema" in proc.stderr and phrase in proc.stderr, proc.stderr


@pytest.mark.parametrize("sets,phrase", [
    (("sharding.shards[0].name=payments", "sharding.defaultShard=default"),
     'sharding.defaultShard "default" is not one of sharding.shards [payments]'),
    (("sharding.shards[0].name=a", "sharding.shards[1].name=a", "sharding.defaultShard=a"), 'shard "a" is listed twice'),
    (("watch.scope=Namespaced",), "watch.scope Namespaced needs watch.namespaces"),
    (("watch.scope=Namespaced", "watch.namespaces={team-*}"), "exact namespace names"),
    (("alertIntake.enabled=true",), "alertIntake.enabled needs alertIntake.tokenSecret.name"),
    (("eventIntake.enabled=true",), "eventIntake.enabled needs eventIntake.queues"),
])
def test_inconsistent_values_fail_at_install_with_a_message_naming_the_value(helm, sets, phrase):
    proc = helm.template(sets=sets, check=False)
    assert proc.returncode != 0 and phrase in proc.stderr, proc.stderr


def test_the_prometheus_rule_and_dashboard_are_the_shipped_files(helm):
    docs = helm.template(sets=("prometheusRule.enabled=true", "grafanaDashboard.enabled=true"))
    (rule,) = of_kind(docs, "PrometheusRule")
    assert rule["spec"]["groups"] == yaml.safe_load(RULES.read_text())["groups"]
    (dashboard,) = [c for c in of_kind(docs, "ConfigMap") if c["metadata"]["name"].endswith("-dashboard")]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard["data"]["opex-operator.json"]) == json.loads(DASHBOARD.read_text())


@pytest.mark.parametrize("grace", [18, 25, 90])
def test_the_pods_termination_grace_leaves_terraform_time_to_release_its_lock(helm, grace):
    """The kubelet's SIGKILL comes only after the operator's own stop: passes, then Terraform's
    SIGINT grace (OPEX_SHUTDOWN_GRACE), plus time to record it and flush Events."""
    (deployment,) = of_kind(helm.template(sets=(f"operator.shutdownGraceSeconds={grace}",)), "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env["OPEX_SHUTDOWN_GRACE"] == str(grace) and pod["terminationGracePeriodSeconds"] == grace + 15
    refused = helm.template(sets=("operator.shutdownGraceSeconds=10",), check=False)
    assert refused.returncode != 0 and "/operator/shutdownGraceSeconds" in refused.stderr


def test_the_admission_policies_name_approvals_everywhere_and_the_two_person_rule_where_asked(helm):
    default = [(d["kind"], d["metadata"]["name"]) for d in helm.template() if "AdmissionPolicy" in d["kind"]]
    assert default == [("ValidatingAdmissionPolicy", "opex-opex-operator-named-approvals"),
                       ("ValidatingAdmissionPolicyBinding", "opex-opex-operator-named-approvals")]
    binding = next(d for d in helm.template() if d["kind"] == "ValidatingAdmissionPolicyBinding")
    assert binding["spec"]["validationActions"] == ["Deny"] and binding["spec"]["matchResources"] == {
        "namespaceSelector": {}}
    docs = helm.template(FULL)
    policies = {d["metadata"]["name"]: d for d in of_kind(docs, "ValidatingAdmissionPolicy")}
    bindings = {d["metadata"]["name"]: d for d in of_kind(docs, "ValidatingAdmissionPolicyBinding")}
    assert sorted(policies) == sorted(bindings) == ["opex-named-approvals", "opex-two-person-rule"]
    two = policies["opex-two-person-rule"]["spec"]
    assert {v["name"]: v["expression"] for v in two["variables"]}["severities"] == '["critical","high"]'
    assert bindings["opex-two-person-rule"]["spec"]["matchResources"]["namespaceSelector"] == {
        "matchLabels": {"opex.dev/two-person-rule": "true"}}
    for policy in policies.values():
        rules = policy["spec"]["matchConstraints"]["resourceRules"]
        assert rules == [{"apiGroups": ["opex.dev"], "apiVersions": ["*"], "operations": ["CREATE", "UPDATE"],
                          "resources": ["incidents", "driftchecks", "rollbacks"]}]  # never the status writes
        assert policy["spec"]["failurePolicy"] == "Fail"
    assert not [d for d in helm.template(sets=("admission.enabled=false",)) if "AdmissionPolicy" in d["kind"]]


@pytest.mark.parametrize("value", ["183438", "true", "team-a"])
def test_a_namespace_label_value_that_reads_as_a_number_binds_as_a_string_with_set_string(helm, value):
    """Label values are strings. ``--set`` types ``183438`` as a number and ``true`` as a boolean, which
    the schema refuses with the value's path (CI hit it with a random run id); ``--set-string`` binds
    either as the label value, quoted in the rendered manifest."""
    key = "admission.twoPersonRule.namespaceSelector.matchLabels.team"
    docs = helm.template(sets=("admission.twoPersonRule.enabled=true",), strings=(f"{key}={value}",))
    (binding,) = [d for d in of_kind(docs, "ValidatingAdmissionPolicyBinding") if "two-person" in d["metadata"]["name"]]
    assert binding["spec"]["matchResources"]["namespaceSelector"] == {"matchLabels": {"team": value}}
    if value != "team-a":
        refused = helm.template(sets=("admission.twoPersonRule.enabled=true", f"{key}={value}"), check=False)
        assert refused.returncode != 0
        assert "/admission/twoPersonRule/namespaceSelector/matchLabels/team" in refused.stderr, refused.stderr
