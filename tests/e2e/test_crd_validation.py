"""Each CRD refuses malformed manifests at the real API server, naming the field.

Every case is created through ``kubectl create`` (strict field validation, as users run it)
and must fail with a message that names the offending field and the rule it broke.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

INCIDENT = {
    "apiVersion": "opex.dev/v1alpha1", "kind": "Incident", "metadata": {"name": "bad"},
    "spec": {"type": "PipelineFailure", "severity": "high", "title": "pipeline failed",
             "environment": "production", "targets": {"pipeline": {"name": "checkout-pipeline"}}},
}
SECURITY = {
    "apiVersion": "opex.dev/v1alpha1", "kind": "Incident", "metadata": {"name": "bad"},
    "spec": {"type": "SecurityIncident", "severity": "high", "title": "leaked access key", "environment": "production",
             "targets": {"security": {
                 "iamUsers": [{"userName": "ci-deployer", "accessKeyIds": ["AKIAIOSFODNN7EXAMPLE"]}],
                 "sourceIps": ["203.0.113.66/32", "2001:db8:bad::/48"],
                 "wafIpSets": [{"name": "blocked-ips", "id": "0f1e2d3c-4b5a-6978-8695-a4b3c2d1e0f9",
                                "scope": "CLOUDFRONT"}],
                 "securityGroups": [{"groupId": "sg-0123456789abcdef0", "protocol": "tcp", "fromPort": 22,
                                     "toPort": 22}]}}},
}
DRIFTCHECK = {
    "apiVersion": "opex.dev/v1alpha1", "kind": "DriftCheck", "metadata": {"name": "bad"},
    "spec": {"schedule": ["0 9 * * *"], "source": {"git": {"url": "file:///srv/infra.git"}}},
}
ROLLBACK = {
    "apiVersion": "opex.dev/v1alpha1", "kind": "Rollback", "metadata": {"name": "bad"},
    "spec": {"lambda": {"functionName": "checkout-api", "to": {"previous": True}}},
}
DELETE = object()


def mutate(base: dict, **changes) -> dict:
    """Copy ``base`` and set (or, with DELETE, remove) dotted paths under spec: ``a__b=1`` sets spec.a.b."""
    doc = copy.deepcopy(base)
    for path, value in changes.items():
        node = doc["spec"]
        keys = path.split("__")
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        if value is DELETE:
            node.pop(keys[-1], None)
        else:
            node[keys[-1]] = value
    return doc


CASES = [
    # --- Incident -----------------------------------------------------------------------------
    ("inc-missing-type", mutate(INCIDENT, type=DELETE), ["spec.type", "Required value"]),
    ("inc-bad-severity", mutate(INCIDENT, severity="urgent"), ["spec.severity", "Unsupported value", '"urgent"']),
    ("inc-missing-title", mutate(INCIDENT, title=DELETE), ["spec.title", "Required value"]),
    ("inc-empty-title", mutate(INCIDENT, title=""), ["spec.title", "at least 1 chars"]),
    ("inc-bad-environment", mutate(INCIDENT, environment="Prod_1"), ["spec.environment", "should match"]),
    ("inc-bad-mode", mutate(INCIDENT, remediation__mode="Yolo"), ["spec.remediation.mode", "Unsupported value"]),
    ("inc-unknown-field", mutate(INCIDENT, colour="red"), ['unknown field "spec.colour"']),
    ("inc-attempts-too-low", mutate(INCIDENT, remediation__steps=[{"id": "retry-stage", "maxAttempts": 0}]),
     ["spec.remediation.steps[0].maxAttempts", "greater than or equal to 1"]),
    ("inc-timeout-too-high", mutate(INCIDENT, remediation__steps=[{"id": "retry-stage", "timeoutSeconds": 99999}]),
     ["spec.remediation.steps[0].timeoutSeconds", "less than or equal to 3600"]),
    ("inc-pipeline-needs-target", mutate(INCIDENT, targets={"region": "us-east-1"}),
     ["spec", "a PipelineFailure incident needs spec.targets.pipeline"]),
    ("inc-security-needs-targets", mutate(SECURITY, targets={"region": "us-east-1"}),
     ["spec", "a SecurityIncident needs spec.targets.security"]),
    ("inc-performance-needs-targets", mutate(INCIDENT, type="PerformanceDegradation", targets={"region": "us-east-1"}),
     ["spec", "a PerformanceDegradation incident needs one of spec.targets.lambda"]),
    ("inc-bad-region", mutate(INCIDENT, targets__region="moon-1"), ["spec.targets.region", "should match"]),
    ("inc-severity-wrong-type", mutate(INCIDENT, severity=5), ["spec.severity", "must be of type string"]),
    ("inc-bad-topic-arn", mutate(INCIDENT, notify={"snsTopicArns": ["oncall"]}),
     ["spec.notify.snsTopicArns[0]", "should match"]),
    ("inc-duplicate-approval", mutate(INCIDENT, remediation__approvedSteps=["retry-stage", "retry-stage"]),
     ["spec.remediation.approvedSteps[1]", "Duplicate value"]),
    ("inc-escalation-level-4", mutate(INCIDENT, escalation={"levels": [{"level": 4, "contact": "CEO"}]}),
     ["spec.escalation.levels[0].level", "less than or equal to 3"]),
    # --- Incident: spec.targets.security and spec.remediation.security -------------------------
    ("sec-bare-ip", mutate(SECURITY, targets__security__sourceIps=["203.0.113.66"]),
     ["spec.targets.security.sourceIps[0]", "must be a CIDR block without host bits"]),
    ("sec-host-bits", mutate(SECURITY, targets__security__knownCidrs=["198.51.100.7/24"]),
     ["spec.targets.security.knownCidrs[0]", "must be a CIDR block without host bits"]),
    ("sec-block-world", mutate(SECURITY, targets__security__sourceIps=["203.0.113.66/32", "0.0.0.0/0"]),
     ["spec", "sourceIps would block 0.0.0.0/0 or ::/0 in WAF", "allowWorldRanges"]),
    ("sec-block-world-v6", mutate(SECURITY, targets__security__sourceIps=["::/0"]),
     ["spec", "sourceIps would block 0.0.0.0/0 or ::/0 in WAF"]),
    ("sec-block-private", mutate(SECURITY, targets__security__sourceIps=["10.20.0.0/16"]),
     ["spec", "sourceIps would block a private range in WAF", "allowPrivateRanges"]),
    ("sec-block-private-v6", mutate(SECURITY, targets__security__sourceIps=["fd12:3456::/32"]),
     ["spec", "sourceIps would block a private range in WAF"]),
    ("sec-block-range-holding-private", mutate(SECURITY, targets__security__sourceIps=["8.0.0.0/5"]),
     ["spec", "sourceIps would block a private range in WAF"]),
    ("sec-cloudfront-elsewhere", mutate(SECURITY, targets__security__wafIpSets=[
        {"name": "blocked-ips", "id": "0f1e2d3c-4b5a-6978-8695-a4b3c2d1e0f9", "scope": "CLOUDFRONT",
         "region": "eu-west-1"}]),
     ["spec.targets.security.wafIpSets[0]", "an IP set of scope CLOUDFRONT is managed in us-east-1"]),
    ("sec-bad-waf-scope", mutate(SECURITY, targets__security__wafIpSets=[
        {"name": "blocked-ips", "id": "0f1e2d3c-4b5a-6978-8695-a4b3c2d1e0f9", "scope": "GLOBAL"}]),
     ["spec.targets.security.wafIpSets[0].scope", "Unsupported value"]),
    ("sec-key-without-user", mutate(SECURITY, targets__security__iamUsers=[{"accessKeyIds": ["AKIAIOSFODNN7EXAMPLE"]}]),
     ["spec.targets.security.iamUsers[0].userName", "Required value"]),
    ("sec-session-key", mutate(SECURITY, targets__security__iamUsers=[
        {"userName": "ci-deployer", "accessKeyIds": ["ASIAIOSFODNN7EXAMPLE"]}]),
     ["spec.targets.security.iamUsers[0].accessKeyIds[0]", "should match"]),
    ("sec-three-keys", mutate(SECURITY, targets__security__iamUsers=[
        {"userName": "ci-deployer", "accessKeyIds": ["AKIAAAAAAAAAAAAAAAA1", "AKIAAAAAAAAAAAAAAAA2", "AKIAAAAAAAAAAAAAAAA3"]}]),
     ["spec.targets.security.iamUsers[0].accessKeyIds", "must have at most 2 items"]),
    ("sec-tcp-without-ports", mutate(SECURITY, targets__security__securityGroups=[
        {"groupId": "sg-0123456789abcdef0", "protocol": "tcp"}]),
     ["spec.targets.security.securityGroups[0]", "tcp and udp rules need fromPort and toPort"]),
    ("sec-ports-reversed", mutate(SECURITY, targets__security__securityGroups=[
        {"groupId": "sg-0123456789abcdef0", "fromPort": 23, "toPort": 22}]),
     ["spec.targets.security.securityGroups[0]", "with fromPort <= toPort"]),
    ("sec-all-traffic-with-ports", mutate(SECURITY, targets__security__securityGroups=[
        {"groupId": "sg-0123456789abcdef0", "protocol": "-1", "fromPort": 22, "toPort": 22}]),
     ["spec.targets.security.securityGroups[0]", "protocol -1 (all traffic) takes no fromPort/toPort"]),
    ("sec-bad-group-id", mutate(SECURITY, targets__security__securityGroups=[
        {"groupId": "bastion", "fromPort": 22, "toPort": 22}]),
     ["spec.targets.security.securityGroups[0].groupId", "should match"]),
    ("sec-bad-secret-id", mutate(SECURITY, targets__security__secrets=["prod db password"]),
     ["spec.targets.security.secrets[0]", "should match"]),
    ("sec-lookback-too-long", mutate(SECURITY, targets__security__lookbackHours=5000),
     ["spec.targets.security.lookbackHours", "less than or equal to 2160"]),
    ("sec-bad-key-action", mutate(SECURITY, remediation={"security": {"accessKeyAction": "Disable"}}),
     ["spec.remediation.security.accessKeyAction", "Unsupported value"]),
    # --- Incident: the performance runbook's fields ---------------------------------------------
    ("inc-window-beyond-retention", mutate(INCIDENT, targets__metrics={"periodSeconds": 60, "windowSeconds": 1296001}),
     ["spec.targets.metrics", "longer than CloudWatch keeps datapoints at this period"]),
    ("inc-window-beyond-high-resolution", mutate(INCIDENT, targets__metrics={"periodSeconds": 10, "windowSeconds": 10801}),
     ["spec.targets.metrics", "longer than CloudWatch keeps datapoints at this period"]),
    ("inc-period-not-cloudwatch", mutate(INCIDENT, targets__metrics={"periodSeconds": 90}),
     ["spec.targets.metrics", "periodSeconds must be 1, 5, 10, 30 or a multiple of 60"]),
    ("inc-window-under-one-period", mutate(INCIDENT, targets__metrics={"windowSeconds": 60}),
     ["spec.targets.metrics", "windowSeconds must be at least one period"]),
    ("inc-threshold-over-100-percent", mutate(INCIDENT, targets__metrics={"thresholds": {"lambdaNearTimeoutPercent": 150}}),
     ["spec.targets.metrics.thresholds.lambdaNearTimeoutPercent", "less than or equal to 100"]),
    ("inc-cloudfront-bad-id", mutate(INCIDENT, targets__cloudFront={"distributionId": "e2-cdn"}),
     ["spec.targets.cloudFront.distributionId", "should match"]),
    ("inc-http-probe-not-http", mutate(INCIDENT, targets__probes={"http": {"url": "ftp://api.example.com/x"}}),
     ["spec.targets.probes.http.url", "should match"]),
    ("inc-http-probe-two-bodies", mutate(INCIDENT, targets__probes={"http": {
        "url": "https://api.example.com/prod/orders", "body": {"test": "data"},
        "bodySecretRef": {"name": "probe", "key": "body"}}}),
     ["spec.targets.probes.http", "set body or bodySecretRef, not both"]),
    ("inc-http-probe-bad-status", mutate(INCIDENT, targets__probes={"http": {
        "url": "https://api.example.com/prod/orders", "expectedStatus": 42}}),
     ["spec.targets.probes.http.expectedStatus", "greater than or equal to 100"]),
    ("inc-db-probe-two-credentials", mutate(INCIDENT, targets__probes={"database": {
        "host": "db.internal", "secretRef": {"name": "db"}, "secretsManager": {"secretId": "prod/db"}}}),
     ["spec.targets.probes.database", "set exactly one of secretRef or secretsManager"]),
    ("inc-db-probe-no-credentials", mutate(INCIDENT, targets__probes={"database": {"host": "db.internal"}}),
     ["spec.targets.probes.database", "set exactly one of secretRef or secretsManager"]),
    ("inc-db-probe-nowhere-to-connect", mutate(INCIDENT, targets__probes={"database": {"secretRef": {"name": "db"}}}),
     ["spec.targets", "probes.database needs a host, or an rds target whose endpoint it connects to"]),
    ("inc-db-probe-timeout-zero", mutate(INCIDENT, targets__probes={"database": {
        "host": "db.internal", "secretRef": {"name": "db"}, "timeoutSeconds": 0}}),
     ["spec.targets.probes.database.timeoutSeconds", "greater than or equal to 1"]),
    ("inc-memory-over-its-cap", mutate(INCIDENT, remediation__performance={"lambdaMemory": {"sizeMb": 4096, "maxMb": 1024}}),
     ["spec.remediation.performance.lambdaMemory", "sizeMb must not exceed maxMb"]),
    ("inc-memory-beyond-lambda", mutate(INCIDENT, remediation__performance={"lambdaMemory": {"sizeMb": 20480, "maxMb": 10240}}),
     ["spec.remediation.performance.lambdaMemory.sizeMb", "less than or equal to 10240"]),
    ("inc-cache-size-unknown", mutate(INCIDENT, remediation__performance={"apiStage": {"cacheSizeGb": "2"}}),
     ["spec.remediation.performance.apiStage.cacheSizeGb", "Unsupported value"]),
    # --- Incident: the on-call loop's fields ----------------------------------------------------
    ("inc-re-escalate-too-soon", mutate(INCIDENT, escalation={"reEscalateAfter": "30s"}),
     ["spec.escalation.reEscalateAfter", "must be at least 60s"]),
    ("inc-acknowledgement-without-by", mutate(INCIDENT, acknowledgement={"note": "on it"}),
     ["spec.acknowledgement.by", "Required value"]),
    ("inc-step-approved-twice", mutate(INCIDENT, remediation__approvals=[{"step": "retry-stage", "by": "alice"},
                                                                       {"step": "retry-stage", "by": "bob"}]),
     ["spec.remediation.approvals[1]", "Duplicate value"]),
    ("inc-unknown-sender", mutate(INCIDENT, escalation={"levels": [{"level": 1, "contact": "x", "senders": ["Email"]}]}),
     ["spec.escalation.levels[0].senders[0]", "Unsupported value"]),
    ("inc-slack-two-ways", mutate(INCIDENT, notify={"slack": {
        "channel": "C0OPEX", "tokenSecretRef": {"name": "slack", "key": "token"},
        "webhookUrlSecretRef": {"name": "slack", "key": "url"}}}),
     ["spec.notify.slack", "set exactly one of slack.tokenSecretRef (with channel) or slack.webhookUrlSecretRef"]),
    ("inc-slack-token-without-channel", mutate(INCIDENT, notify={"slack": {"tokenSecretRef": {"name": "s", "key": "t"}}}),
     ["spec.notify.slack", "slack.channel goes with slack.tokenSecretRef"]),
    ("inc-pagerduty-level-4", mutate(INCIDENT, notify={"pagerDuty": {"routes": [
        {"level": 4, "routingKeySecretRef": {"name": "pd", "key": "l4"}}]}}),
     ["spec.notify.pagerDuty.routes[0].level", "less than or equal to 3"]),
    # --- DriftCheck ---------------------------------------------------------------------------
    ("dc-missing-schedule", mutate(DRIFTCHECK, schedule=DELETE), ["spec.schedule", "Required value"]),
    ("dc-bad-cron", mutate(DRIFTCHECK, schedule=["every day at nine"]),
     ["spec.schedule[0]", "must be a cron expression of five fields"]),
    ("dc-empty-schedule", mutate(DRIFTCHECK, schedule=[]), ["spec.schedule", "at least 1 items"]),
    ("dc-bad-timezone", mutate(DRIFTCHECK, timeZone="Mars Base"), ["spec.timeZone", "should match"]),
    # values out of range and unknown zones, refused at admission (CEL), not later by a condition
    ("dc-hour-25", mutate(DRIFTCHECK, schedule=["0 9 * * *", "0 25 * * *"]),
     ["spec.schedule[1]", "the hour (2nd field) must be 0-23"]),
    ("dc-step-zero", mutate(DRIFTCHECK, schedule=["*/0 * * * *"]),
     ["spec.schedule[0]", "the minute (1st field) must be 0-59", "step /n of at least 1"]),
    ("dc-day-32", mutate(DRIFTCHECK, schedule=["0 9 32 * *"]), ["spec.schedule[0]", "the day of month (3rd field)"]),
    ("dc-month-13", mutate(DRIFTCHECK, schedule=["0 9 * 13 *"]), ["spec.schedule[0]", "the month (4th field)"]),
    ("dc-weekday-8", mutate(DRIFTCHECK, schedule=["0 9 * * 8"]), ["spec.schedule[0]", "the day of week (5th field)"]),
    ("dc-unknown-timezone", mutate(DRIFTCHECK, timeZone="Mars/Olympus_Mons"),
     ["spec.timeZone", "unknown time zone Mars/Olympus_Mons", "must be an IANA time zone"]),
    ("dc-local-timezone", mutate(DRIFTCHECK, timeZone="Local"), ["spec.timeZone", "must be an IANA time zone"]),
    ("dc-orphaned-after-0s", mutate(DRIFTCHECK, lock={"forceUnlock": "IfOrphaned", "orphanedAfter": "0s"}),
     ["spec.lock.orphanedAfter", "must be at least 60s"]),
    ("dc-bad-duration", mutate(DRIFTCHECK, lock={"timeout": "5 minutes"}),
     ["spec.lock.timeout", "must be a duration such as 90s, 5m or 1h30m"]),
    ("dc-two-sources", mutate(DRIFTCHECK, source__configMapRef={"name": "tf"}),
     ["spec.source", "set exactly one of source.git or source.configMapRef"]),
    ("dc-missing-source", mutate(DRIFTCHECK, source=DELETE), ["spec.source", "Required value"]),
    ("dc-approver-without-approval", mutate(DRIFTCHECK, resolution={"strategy": "Apply", "approvedBy": "alice"}),
     ["spec.resolution", "approvedBy names who approved approvedPlanChecksum: set both"]),
    ("dc-bad-strategy", mutate(DRIFTCHECK, resolution={"strategy": "Destroy"}),
     ["spec.resolution.strategy", "Unsupported value"]),
    ("dc-import-without-imports", mutate(DRIFTCHECK, resolution={"strategy": "Import"}),
     ["spec.resolution", "strategy Import needs at least one entry in resolution.imports"]),
    ("dc-timeout-too-low", mutate(DRIFTCHECK, timeoutSeconds=5), ["spec.timeoutSeconds", "greater than or equal to 30"]),
    ("dc-bad-checksum", mutate(DRIFTCHECK, resolution={"strategy": "Apply", "approvedPlanChecksum": "abc"}),
     ["spec.resolution.approvedPlanChecksum", "should match"]),
    ("dc-unknown-field", mutate(DRIFTCHECK, interval="5m"), ['unknown field "spec.interval"']),
    ("dc-bad-concurrency", mutate(DRIFTCHECK, concurrencyPolicy="Allow"),
     ["spec.concurrencyPolicy", "Unsupported value"]),
    ("dc-keep-zero", mutate(DRIFTCHECK, report={"keep": 0}), ["spec.report.keep", "greater than or equal to 1"]),
    ("dc-path-escapes", mutate(DRIFTCHECK, source__git__path="../secrets"),
     ["spec.source.git.path", "path must be relative and stay inside the repository"]),
    ("dc-schedule-wrong-type", mutate(DRIFTCHECK, schedule="0 9 * * *"), ["spec.schedule", "must be of type array"]),
    ("dc-bad-import-address", mutate(DRIFTCHECK, resolution={"strategy": "Import", "imports": [
        {"address": "aws_route53_record this", "id": "Z1"}]}), ["spec.resolution.imports[0].address", "should match"]),
    ("dc-unquoted-import-key", mutate(DRIFTCHECK, resolution={"strategy": "Import", "imports": [
        {"address": "aws_route53_record.this[www A]", "id": "Z1"}]}), ["spec.resolution.imports[0].address",
                                                                        "should match"]),
    # --- Rollback -----------------------------------------------------------------------------
    ("rb-no-target", mutate(ROLLBACK, **{"lambda": DELETE}), ["spec", "set exactly one target: lambda or staticSite"]),
    ("rb-approver-without-approval", mutate(ROLLBACK, approvedBy="alice"),
     ["spec", "approvedBy names who set approved: true; set both"]),
    ("rb-two-targets", mutate(ROLLBACK, staticSite={"bucket": "www-site", "backupPrefix": "backups/1/"}),
     ["spec", "set exactly one target: lambda or staticSite"]),
    ("rb-two-versions", mutate(ROLLBACK, lambda__to={"previous": True, "version": "3"}),
     ["spec.lambda.to", "set exactly one of to.version, to.s3 or to.previous: true"]),
    ("rb-bad-function-name", mutate(ROLLBACK, lambda__functionName="bad name!"),
     ["spec.lambda.functionName", "should match"]),
    ("rb-bad-version", mutate(ROLLBACK, lambda__to={"version": "v3"}), ["spec.lambda.to.version", "should match"]),
    ("rb-bad-bucket", mutate(ROLLBACK, **{"lambda": DELETE}, staticSite={"bucket": "Bad_Bucket", "backupPrefix": "b/"}),
     ["spec.staticSite.bucket", "should match"]),
    ("rb-missing-backup-prefix", mutate(ROLLBACK, **{"lambda": DELETE}, staticSite={"bucket": "www-site"}),
     ["spec.staticSite.backupPrefix", "Required value"]),
    ("rb-bad-approval", mutate(ROLLBACK, approval="Sometimes"), ["spec.approval", "Unsupported value"]),
    ("rb-deadline-too-short", mutate(ROLLBACK, progressDeadlineSeconds=5),
     ["spec.progressDeadlineSeconds", "greater than or equal to 30"]),
    ("rb-bad-invalidation-path", mutate(ROLLBACK, **{"lambda": DELETE}, staticSite={
        "bucket": "www-site", "backupPrefix": "b/", "cloudFront": {"distributionId": "E123", "paths": ["index.html"]}}),
     ["spec.staticSite.cloudFront.paths[0]", "should match"]),
    ("rb-unknown-field", mutate(ROLLBACK, force=True), ['unknown field "spec.force"']),
    ("rb-dryrun-wrong-type", mutate(ROLLBACK, dryRun="yes"), ["spec.dryRun", "must be of type boolean"]),
    ("rb-missing-to", mutate(ROLLBACK, lambda__to=DELETE), ["spec.lambda.to", "Required value"]),
    # --- guard rails: plan gates and the bake window ---------------------------------------------
    ("dc-gate-unknown-action", mutate(DRIFTCHECK, resolution={"gates": {"denyActions": ["destroy"]}}),
     ["spec.resolution.gates.denyActions[0]", "Unsupported value", '"destroy"']),
    ("dc-gate-misspelt", mutate(DRIFTCHECK, resolution={"gates": {"denyAction": ["delete"]}}),
     ['unknown field "spec.resolution.gates.denyAction"']),
    ("dc-gate-negative-max", mutate(DRIFTCHECK, resolution={"gates": {"maxChangedResources": -1}}),
     ["spec.resolution.gates.maxChangedResources", "greater than or equal to 0"]),
    ("inc-verify-nothing-to-watch", mutate(INCIDENT, remediation__verify={"window": "5m"}),
     ["spec.remediation.verify", "verify needs alarms, promql or both"]),
    ("inc-verify-window-too-long", mutate(INCIDENT, remediation__verify={"window": "2h", "alarms": ["errors"]}),
     ["spec.remediation.verify.window", "must be between 30s and 60m"]),
    ("inc-verify-bool-comparison", mutate(INCIDENT, remediation__verify={
        "window": "5m", "promql": "sum(rate(errors_total[1m])) < bool 5"}),
     ["spec.remediation.verify.promql", "not with bool"]),
    ("inc-verify-outlasts-escalation", mutate(INCIDENT, remediation__verify={"window": "20m", "alarms": ["errors"]},
                                              escalation={"levels": [{"level": 1, "contact": "DevOps lead"},
                                                                     {"level": 2, "contact": "EM", "afterSeconds": 600},
                                                                     {"level": 3, "contact": "CTO", "afterSeconds": 3600,
                                                                      "severities": ["critical"]}]}),
     ["spec", "spec.remediation.verify.window is longer than the incident's escalation window"]),
]


@pytest.mark.parametrize("manifest,expected", [(m, e) for _, m, e in CASES], ids=[c[0] for c in CASES])
def test_invalid_manifest_is_refused_naming_the_field(kubectl, module_namespace, manifest, expected):
    result = kubectl.create(json.dumps(manifest), module_namespace, check=False)
    assert result.returncode != 0, f"accepted: {json.dumps(manifest['spec'])}"
    for fragment in expected:
        assert fragment in result.stderr, f"{fragment!r} not in: {result.stderr}"
    assert kubectl("get", manifest["kind"].lower(), "-n", module_namespace, "-o", "name").stdout == ""


def test_at_least_ten_distinct_refusals_per_kind():
    per_kind = {}
    for case_id, manifest, _ in CASES:
        per_kind.setdefault(manifest["kind"], set()).add(case_id)
    assert {k: len(v) >= 10 for k, v in per_kind.items()} == {"Incident": True, "DriftCheck": True, "Rollback": True}


def test_examples_are_accepted_by_the_api_server(kubectl, module_namespace):
    for path in sorted(EXAMPLES.glob("*.yaml")):
        result = kubectl("apply", "--dry-run=server", "-n", module_namespace, "-f", str(path), check=False)
        assert result.returncode == 0, f"{path.name}: {result.stderr}"


def test_every_valid_terraform_address_and_ignore_pattern_is_accepted(kubectl, module_namespace):
    imports = [{"address": a, "id": "x"} for a in (
        'aws_route53_record.this["www A"]', 'module.dns["eu west"].aws_route53_record.this["api AAAA"]',
        'aws_iam_user.u["ops@example.com"]', 'aws_s3_object.site["assets/img/logo.png"]', "aws_instance.web[0]",
        'aws_ssm_parameter.p["say \\"hi\\""]', "module.net.aws_subnet.private[2]")]
    manifest = mutate(DRIFTCHECK, ignore=["aws_instance.web[0]", "module.legacy.*", 'aws_route53_record.this["* A"]'],
                      resolution={"strategy": "Import", "imports": imports})
    result = kubectl("create", "--dry-run=server", "-n", module_namespace, "-f", "-", input=json.dumps(manifest), check=False)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("schedule", ["0 9 * * *", "*/15 8-18 * * MON-FRI", "0 9 L * *", "0 9 15W * *",
                                      "0 9 * * 1#2", "30 6 1,15 JAN-JUN/2 ?", "5/15 0-23/2 * * 7", "@daily"])
def test_valid_schedules_zones_and_lock_ages_are_accepted(kubectl, module_namespace, schedule):
    manifest = mutate(DRIFTCHECK, schedule=[schedule], timeZone="America/Argentina/Buenos_Aires",
                      lock={"forceUnlock": "IfOrphaned", "orphanedAfter": "1m"})
    result = kubectl("create", "--dry-run=server", "-n", module_namespace, "-f", "-", input=json.dumps(manifest), check=False)
    assert result.returncode == 0, result.stderr


def test_api_server_applies_schema_defaults(kubectl, namespace):
    kubectl.create(json.dumps(mutate(INCIDENT)), namespace)
    spec = kubectl.get("incident", "bad", namespace)["spec"]
    assert spec["remediation"]["mode"] == "Manual"
    assert spec["remediation"]["forceUnlock"]["minLockAgeSeconds"] == 900
    assert spec["closed"] is False


def test_security_ranges_are_accepted_when_allowed_or_not_blocked(kubectl, namespace):
    """Private and world ranges pass with the matching allowance, or when no WAF IP set would block them."""
    allowed = mutate(SECURITY, targets__security__sourceIps=["10.20.0.0/16", "::/0"],
                     remediation={"security": {"allowPrivateRanges": True, "allowWorldRanges": True}})
    kubectl.create(json.dumps(allowed), namespace)
    searched_only = mutate(SECURITY, targets__security__sourceIps=["10.20.0.0/16"], targets__security__wafIpSets=DELETE)
    searched_only["metadata"]["name"] = "searched-only"
    kubectl.create(json.dumps(searched_only), namespace)
    spec = kubectl.get("incident", "searched-only", namespace)["spec"]
    assert spec["remediation"]["security"] == {"accessKeyAction": "Deactivate", "allowPrivateRanges": False,
                                               "allowWorldRanges": False}
    assert spec["targets"]["security"]["securityGroups"][0]["cidrs"] == ["0.0.0.0/0", "::/0"]
    assert spec["targets"]["security"]["lookbackHours"] == 24


def test_performance_spec_keeps_the_probe_body_and_fills_defaults(kubectl, namespace):
    manifest = mutate(INCIDENT, type="PerformanceDegradation",
                      targets__probes={"http": {"url": "http://127.0.0.1:8080/prod/orders",
                                                "body": {"test": "data", "items": [{"sku": "A1", "qty": 2}]}}},
                      remediation__performance={"apiStage": {"metricsEnabled": True}},
                      targets__metrics={})
    kubectl.create(json.dumps(manifest), namespace)
    spec = kubectl.get("incident", "bad", namespace)["spec"]
    assert spec["targets"]["probes"]["http"]["body"] == {"test": "data", "items": [{"sku": "A1", "qty": 2}]}
    assert spec["targets"]["probes"]["http"]["method"] == "POST"
    assert (spec["targets"]["metrics"]["windowSeconds"], spec["targets"]["metrics"]["periodSeconds"]) == (3600, 300)
    assert spec["targets"]["metrics"]["thresholds"]["lambdaDurationMs"] == 3000
    assert spec["remediation"]["performance"]["lambdaMemory"]["maxMb"] == 3008


def test_a_bake_window_within_the_escalation_window_and_gates_are_accepted(kubectl, namespace):
    """The window counts against the levels of the incident's severity only; without levels in the spec (or
    with Level 1 alone, which has no window) the operator checks the policy's matrix itself."""
    levels = [{"level": 1, "contact": "DevOps lead"}, {"level": 2, "contact": "EM", "afterSeconds": 1800},
              {"level": 3, "contact": "CTO", "afterSeconds": 600, "severities": ["critical"]}]
    within = mutate(INCIDENT, escalation={"levels": levels},
                    remediation={"mode": "Auto", "gates": {"denyActions": ["delete", "replace"]},
                                 "verify": {"window": "20m", "alarms": ["checkout-errors"],
                                            "promql": "sum(rate(errors_total[1m])) < 5"}})
    kubectl.create(json.dumps(within), namespace)
    only_level_one = mutate(INCIDENT, escalation={"levels": [{"level": 1, "contact": "DevOps lead"}]},
                            remediation__verify={"window": "1h", "alarms": ["checkout-errors"]})
    only_level_one["metadata"]["name"] = "no-window"
    kubectl.create(json.dumps(only_level_one), namespace)
    check = mutate(DRIFTCHECK, resolution={"strategy": "Apply", "approval": "Auto", "gates": {
        "denyActions": ["delete"], "maxChangedResources": 3, "deniedResourceTypes": ["aws_iam_*"],
        "denyChangesToIgnored": True}})
    kubectl.create(json.dumps(check), namespace)
    assert kubectl.get("driftcheck", "bad", namespace)["spec"]["resolution"]["gates"]["maxChangedResources"] == 3


def test_incident_type_is_immutable_and_closed_cannot_be_reopened(kubectl, namespace):
    kubectl.create(json.dumps(mutate(INCIDENT, closed=True)), namespace)
    changed = kubectl("patch", "incident", "bad", "-n", namespace, "--type=merge",
                      "-p", '{"spec":{"type":"SecurityIncident"}}', check=False)
    assert changed.returncode != 0 and "spec.type" in changed.stderr and "type is immutable" in changed.stderr
    reopened = kubectl("patch", "incident", "bad", "-n", namespace, "--type=merge",
                       "-p", '{"spec":{"closed":false}}', check=False)
    assert reopened.returncode != 0 and "a closed Incident cannot be reopened" in reopened.stderr


def test_rollback_target_is_immutable(kubectl, namespace):
    kubectl.create(json.dumps(ROLLBACK), namespace)
    changed = kubectl("patch", "rollback", "bad", "-n", namespace, "--type=merge",
                      "-p", '{"spec":{"lambda":{"functionName":"other-fn"}}}', check=False)
    assert changed.returncode != 0 and "the lambda target is immutable" in changed.stderr
    approved = kubectl("patch", "rollback", "bad", "-n", namespace, "--type=merge", "-p", '{"spec":{"approved":true}}')
    assert approved.returncode == 0


def test_examples_hold_each_kind():
    kinds = {doc["kind"] for p in EXAMPLES.glob("*.yaml") for doc in yaml.safe_load_all(p.read_text())}
    assert {"Incident", "DriftCheck", "Rollback"} <= kinds
