"""Plain fakes of the ports (``opex_operator.ports``) for controller unit tests: no cluster, no AWS.

Each fake keeps the state a real service would (functions, objects, locks) and records the
calls that change it, so a test asserts what was changed, and that nothing ran twice. Status
goes through the real :class:`StatusWriter` into a :class:`ListSink`, so Ready is derived as in
production.
"""
from __future__ import annotations

import copy
import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from opex_operator.api.security import parse_cidr, parse_cidr_loose
from opex_operator.aws.ec2 import IngressChange
from opex_operator.aws.iam import AccessKeyChange, InlinePolicyChange, LoginProfileChange, PolicyChange
from opex_operator.aws.perf_actions import Change
from opex_operator.aws.secrets import RotationNotConfigured, RotationState, SecretRotation
from opex_operator.aws.waf import IpSetChange
from opex_operator.controllers.base import Observed
from opex_operator.controllers.status import StatusWriter
from opex_operator.errors import AwsError, KubeError
from opex_operator.kube import MAX_CONFIG_MAP_BYTES, ObjectRef
from opex_operator.ports.cloudtrail import TrailRead
from opex_operator.ports.facts import Execution, FunctionState, LambdaVersion, ObjectInfo
from opex_operator.ports.performance import (Credentials, DbProbeResult, GroupIngress, HttpProbeResult, LambdaConfig,
                                               RdsConfig, Series, StageConfig)
from opex_operator.playbooks.security.investigation import IngressRule, SecurityGroupRules
from opex_operator.policy import Policy
from opex_operator.terraform.backend import Backend
from opex_operator.terraform.runner import Result, TerraformError
from opex_operator.terraform.session import PolicyRefused

T0 = dt.datetime(2026, 11, 29, 9, 0, tzinfo=dt.timezone.utc)


class Clock:
    """An injected clock: ``clock()`` is now; ``advance(seconds)`` moves it."""

    def __init__(self, now: dt.datetime = T0):
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> dt.datetime:
        self.now += dt.timedelta(seconds=seconds)
        return self.now


# -- status and the object ------------------------------------------------------------------------

class ListSink:
    """Keeps the status patches and Events a StatusWriter sends."""

    def __init__(self):
        self.patches: list[dict[str, Any]] = []
        self.events: list[tuple[str, str, str]] = []

    async def patch(self, patch: dict[str, Any]) -> None:
        self.patches.append(patch)

    def event(self, type_, reason: str, message: str) -> None:
        self.events.append((str(type_), reason, message))

    def reasons(self) -> list[str]:
        return [reason for _, reason, _ in self.events]


def observed(status: Any, spec: dict[str, Any], plural: str, generation: int = 1, name: str = "x",
             annotations: dict[str, str] | None = None, created_at: dt.datetime | None = None,
             namespace: str = "ns") -> Observed:
    """One reconcile pass's view of an object whose status goes through a real StatusWriter."""
    sink = ListSink()
    writer = StatusWriter(sink, {}, generation)
    ref = ObjectRef(plural, namespace, name, f"uid-{name}", plural[:-1].capitalize())
    return Observed(ref=ref, generation=generation, annotations=dict(annotations or {}), labels={}, spec=spec,
                    status=status, recorder=writer, created_at=created_at or T0)


def drive(controller: Any, obj: Observed, passes: int = 60) -> float | None:
    """Reconcile until the controller waits (returns anything but 0, "at once"); returns that wait."""
    import asyncio

    for _ in range(passes):
        delay = asyncio.run(controller.reconcile(obj))
        if delay != 0.0:
            asyncio.run(obj.recorder.flush())  # as the runtime does when a chain of passes ends
            return delay
    raise AssertionError(f"the controller never waited in {passes} passes")


class IncidentWorld:
    """An Incident on fakes: subclasses set ``ctl`` (its controller), ``obj`` (observed) and ``status``."""

    ctl: Any
    obj: Observed
    status: Any

    def drive(self) -> float | None:
        return drive(self.ctl, self.obj)

    def change_spec(self, **remediation) -> None:
        """Merge ``remediation`` into spec.remediation: a new generation, as ``kubectl patch`` makes."""
        self.obj.spec["remediation"].update(remediation)
        self.obj.generation += 1
        self.obj.recorder.generation = self.obj.generation

    def step(self, step_id: str):
        return next(s for s in self.status.steps if s.id == step_id)

    def reasons(self) -> list[str]:
        return sink_of(self.obj).reasons()


def sink_of(obj: Observed) -> ListSink:
    return obj.recorder.sink


def condition(status: Any, type_: str):
    return next((c for c in status.conditions if c.type == type_), None)


def aws_error(service: str, code: str, operation: str, status: int = 400, message: str = "") -> AwsError:
    return AwsError(service, operation, code, message or code, status)


# -- AWS ------------------------------------------------------------------------------------------

class FakeLambda:
    """Functions with published versions; code changes settle after ``settle_after`` reads."""

    def __init__(self):
        self.functions: dict[str, FunctionState] = {}
        self.published: dict[str, list[LambdaVersion]] = {}
        self.aliases: dict[tuple[str, str], str] = {}
        self.calls: list[tuple] = []
        self.settle_after = 0
        self._unsettled = 0

    def add(self, name: str, shas: list[str], latest: str | None = None, environment: dict | None = None) -> None:
        """A function with versions 1..n of ``shas``; $LATEST runs ``latest`` (default: the last)."""
        self.published[name] = [LambdaVersion(str(i + 1), sha) for i, sha in enumerate(shas)]
        self.functions[name] = FunctionState(name, "$LATEST", latest or shas[-1], "Active", "Successful",
                                             environment=dict(environment or {}))

    def _missing(self, name: str) -> None:
        if name not in self.functions:
            raise aws_error("lambda", "ResourceNotFoundException", "GetFunction", 404, f"Function not found: {name}")

    def current(self, name: str, alias: str | None = None) -> FunctionState:
        self._missing(name)
        state = copy.deepcopy(self.functions[name])
        if self._unsettled:
            self._unsettled -= 1
            state.state, state.last_update_status = "Active", "InProgress"
        if alias:
            version = self.aliases[(name, alias)]
            state.version, state.code_sha256 = version, self.version_sha(name, version)
        return state

    def versions(self, name: str) -> list[LambdaVersion]:
        self._missing(name)
        return list(self.published[name])

    def version_sha(self, name: str, version: str) -> str:
        self._missing(name)
        for v in self.published[name]:
            if v.version == version:
                return v.code_sha256
        raise aws_error("lambda", "ResourceNotFoundException", "GetFunction", 404, f"no version {version}")

    def package_sha(self, bucket: str, key: str, object_version: str | None = None) -> str:
        raise aws_error("s3", "NoSuchKey", "GetObject", 404)

    def point_alias(self, name: str, alias: str, version: str) -> None:
        self.calls.append(("UpdateAlias", name, alias, version))
        self.aliases[(name, alias)] = version

    def restore_code_from_version(self, name: str, version: str) -> None:
        self.calls.append(("UpdateFunctionCode", name, version))
        self.functions[name].code_sha256 = self.version_sha(name, version)
        self._unsettled = self.settle_after

    def restore_code_from_s3(self, name: str, bucket: str, key: str, object_version: str | None = None) -> None:
        self.calls.append(("UpdateFunctionCode", name, f"s3://{bucket}/{key}"))

    def set_environment(self, name: str, variables: dict[str, str], current: dict[str, str]) -> None:
        self.calls.append(("UpdateFunctionConfiguration", name, tuple(sorted(variables))))
        self.functions[name].environment = {**current, **variables}

    def mutations(self) -> list[tuple]:
        return list(self.calls)


class FakeSite:
    """S3 buckets (key -> ObjectInfo) and CloudFront distributions."""

    def __init__(self):
        self.buckets: dict[str, dict[str, ObjectInfo]] = {}
        self.distributions: set[str] = set()
        self.invalidations: dict[str, str] = {}   # caller reference -> id
        self.copies: list[str] = []
        self.deletes: list[str] = []
        self.fail_copy: AwsError | None = None

    def bucket_exists(self, bucket: str) -> bool:
        return bucket in self.buckets

    def listing(self, bucket: str, prefix: str, exclude: str | None = None) -> dict[str, ObjectInfo]:
        return {k: v for k, v in self.buckets[bucket].items()
                if k.startswith(prefix) and not (exclude and k.startswith(exclude))}

    def copy(self, source_bucket: str, source_key: str, bucket: str, key: str) -> None:
        if self.fail_copy is not None:
            raise self.fail_copy
        self.copies.append(key)
        self.buckets[bucket][key] = self.buckets[source_bucket][source_key]

    def delete(self, bucket: str, keys: list[str]) -> list[str]:
        for key in keys:
            self.deletes.append(key)
            self.buckets[bucket].pop(key, None)
        return []

    def distribution_exists(self, distribution_id: str) -> bool:
        return distribution_id in self.distributions

    def invalidate(self, distribution_id: str, paths: list[str], reference: str) -> dict[str, Any]:
        self.invalidations.setdefault(reference, f"I{len(self.invalidations) + 1}")
        return {"Id": self.invalidations[reference], "Status": "InProgress"}

    def invalidation_status(self, distribution_id: str, invalidation_id: str) -> str:
        return "Completed"


class FakePipeline:
    """One pipeline's executions, newest first: [id, status, startTime]; stage states per execution."""

    def __init__(self):
        self.executions: list[list] = []
        self.stages: dict[tuple[str, str], str] = {}
        self.calls: list[tuple] = []

    def stage_status(self, pipeline: str, stage: str, execution_id: str) -> str | None:
        return self.stages.get((stage, execution_id))

    def retry_stage(self, pipeline: str, stage: str, execution_id: str) -> str:
        self.calls.append(("RetryStageExecution", stage, execution_id))
        self.stages[(stage, execution_id)] = "InProgress"
        return execution_id

    def start(self, pipeline: str, client_request_token: str | None = None) -> str:
        execution = f"e-{len(self.executions) + 1}"
        self.calls.append(("StartPipelineExecution", pipeline, client_request_token))
        self.executions.insert(0, [execution, "InProgress", T0])
        return execution

    def execution_status(self, pipeline: str, execution_id: str) -> str:
        return next(e[1] for e in self.executions if e[0] == execution_id)

    def newest_execution(self, pipeline: str):
        return tuple(self.executions[0]) if self.executions else None


class Calls:
    """Mutating calls a fake received, and AWS errors to answer them with first (per operation)."""

    def __init__(self, service: str):
        self.service = service
        self.calls: list[tuple] = []
        self.errors: dict[str, list[AwsError]] = {}

    def fail(self, operation: str, *errors: AwsError) -> None:
        """The next calls of ``operation`` raise ``errors``, one each, before it works again."""
        self.errors.setdefault(operation, []).extend(errors)

    def call(self, operation: str, *args) -> None:
        if self.errors.get(operation):
            raise self.errors[operation].pop(0)
        self.calls.append((operation, *args))

    def count(self, operation: str) -> int:
        return sum(1 for c in self.calls if c[0] == operation)


class FakeIam(Calls):
    """IAM users with access keys (id -> Active/Inactive) and console passwords."""

    def __init__(self):
        super().__init__("iam")
        self.keys: dict[str, dict[str, str]] = {}
        self.login_profiles: set[str] = set()
        self.attached: dict[str, list[str]] = {}          # "user/x", "role/y" -> managed policy ARNs
        self.inline: dict[str, dict[str, str]] = {}       # "user/x" -> policy name -> document

    def add_principal(self, kind: str, name: str, attached=(), inline: dict | None = None) -> None:
        self.attached[f"{kind}/{name}"] = list(attached)
        self.inline[f"{kind}/{name}"] = dict(inline or {})
        if kind == "user":
            self.keys.setdefault(name, {})

    def attached_policies(self, kind, name):
        found = self.attached.get(f"{kind.value if hasattr(kind, 'value') else kind}/{name}")
        return None if found is None else list(found)

    def inline_policies(self, kind, name):
        found = self.inline.get(f"{kind.value if hasattr(kind, 'value') else kind}/{name}")
        return None if found is None else list(found)

    def detach_policy(self, p):
        key = f"{p.principal_type.value}/{p.principal_name}"
        present = self.attached.get(key)
        changed = bool(present) and p.policy_arn in present
        if changed:
            self.call("DetachPolicy", key, p.policy_arn)
            present.remove(p.policy_arn)
        return PolicyChange(changed=changed, principal_type=p.principal_type, principal_name=p.principal_name,
                            policy_arn=p.policy_arn, attached=False, gone=present is None)

    def quarantine(self, p):
        key = f"{p.principal_type.value}/{p.principal_name}"
        present = self.attached.get(key)
        changed = present is not None and p.policy_arn not in present
        if changed:
            self.call("AttachPolicy", key, p.policy_arn)
            present.append(p.policy_arn)
        return PolicyChange(changed=changed, principal_type=p.principal_type, principal_name=p.principal_name,
                            policy_arn=p.policy_arn, attached=True, gone=present is None)

    def delete_inline_policy(self, p):
        key = f"{p.principal_type.value}/{p.principal_name}"
        present = self.inline.get(key)
        change = InlinePolicyChange(changed=False, principal_type=p.principal_type, principal_name=p.principal_name,
                                    policy_name=p.policy_name, event_id=p.event_id, gone=present is None)
        if not present or p.policy_name not in present:
            return change
        self.call("DeletePolicy", key, p.policy_name)
        return change.model_copy(update={"changed": True, "document": present.pop(p.policy_name)})

    def add_user(self, user: str, *keys: str, console: bool = True) -> None:
        self.keys[user] = {k: "Active" for k in keys}
        if console:
            self.login_profiles.add(user)

    def _user(self, user: str, operation: str) -> dict[str, str]:
        if user not in self.keys:
            raise aws_error("iam", "NoSuchEntity", operation, 404, f"The user with name {user} cannot be found.")
        return self.keys[user]

    def access_key(self, user_name, access_key_id):
        status = self._user(user_name, "ListAccessKeys").get(access_key_id)
        return {"AccessKeyId": access_key_id, "Status": status} if status else None

    def has_login_profile(self, user_name):
        self._user(user_name, "GetLoginProfile")
        return user_name in self.login_profiles

    def _existing(self, p) -> str:
        key = self.access_key(p.user_name, p.access_key_id)
        if key is None:
            raise LookupError(f"access key {p.access_key_id} is not a key of IAM user {p.user_name}")
        return key["Status"]

    def deactivate_access_key(self, p):
        previous = self._existing(p)
        if previous != "Inactive":
            self.call("UpdateAccessKey", p.user_name, p.access_key_id)
            self.keys[p.user_name][p.access_key_id] = "Inactive"
        return AccessKeyChange(changed=previous != "Inactive", user_name=p.user_name, access_key_id=p.access_key_id,
                               previous_status=previous, status="Inactive")

    def delete_access_key(self, p):
        if self.access_key(p.user_name, p.access_key_id) is None and p.missing_ok:
            return AccessKeyChange(changed=False, user_name=p.user_name, access_key_id=p.access_key_id,
                                   previous_status=None, status="Deleted")
        previous = self._existing(p)
        self.call("DeleteAccessKey", p.user_name, p.access_key_id)
        del self.keys[p.user_name][p.access_key_id]
        return AccessKeyChange(changed=True, user_name=p.user_name, access_key_id=p.access_key_id,
                               previous_status=previous, status="Deleted")

    def remove_login_profile(self, p):
        if not self.has_login_profile(p.user_name):
            return LoginProfileChange(changed=False, user_name=p.user_name)
        self.call("DeleteLoginProfile", p.user_name)
        self.login_profiles.discard(p.user_name)
        return LoginProfileChange(changed=True, user_name=p.user_name)


class FakeWaf(Calls):
    """WAFv2 IP sets by id: (name, scope, IPV4/IPV6, addresses)."""

    def __init__(self):
        super().__init__("wafv2")
        self.sets: dict[str, dict[str, Any]] = {}

    def add(self, name: str, set_id: str, scope: str = "REGIONAL", version: str = "IPV4", addresses=()) -> None:
        self.sets[set_id] = {"name": name, "scope": scope, "version": version, "addresses": list(addresses)}

    def _get(self, name, set_id, scope) -> dict[str, Any]:
        found = self.sets.get(set_id)
        if found is None or found["name"] != name or found["scope"] != str(scope.value if hasattr(scope, "value")
                                                                             else scope):
            raise aws_error("wafv2", "WAFNonexistentItemException", "GetIPSet", 400)
        return found

    def addresses(self, name, id, scope, region=None):
        found = self._get(name, id, scope)
        return found["version"], list(found["addresses"])

    def block_addresses(self, p):
        try:
            found = self._get(p.name, p.id, p.scope)
        except AwsError:
            raise LookupError(f"WAF IP set {p.name} with id {p.id} does not exist") from None
        fits = [a for a in p.addresses if f"IPV{parse_cidr(a).version}" == found["version"]]
        present = [a for a in fits if any(parse_cidr_loose(a) == parse_cidr_loose(c) for c in found["addresses"])]
        new = [a for a in fits if a not in present]
        if new:
            self.call("UpdateIPSet", p.id, tuple(new))
            found["addresses"] += new
        return IpSetChange(changed=bool(new), name=p.name, id=p.id, scope=p.scope, region=p.region or "us-east-1",
                           ip_address_version=found["version"], added=new, already_present=present,
                           other_version=[a for a in p.addresses if a not in fits], writes=1 if new else 0)


class FakeEc2(Calls):
    """Security groups by id with their inbound rules."""

    def __init__(self):
        super().__init__("ec2")
        self.groups: dict[str, list[IngressRule]] = {}

    def add(self, group_id: str, *rules: IngressRule) -> None:
        self.groups[group_id] = list(rules)

    def security_groups(self, group_ids):
        missing = [g for g in group_ids if g not in self.groups]
        if missing:
            raise aws_error("ec2", "InvalidGroup.NotFound", "DescribeSecurityGroups", 400,
                            f"The security group '{missing[0]}' does not exist")
        return [SecurityGroupRules(group_id=g, name=g, ingress=list(self.groups[g])) for g in group_ids]

    def revoke_ingress(self, p):
        [group] = self.security_groups([p.group_id])
        revoked = [r for r in group.ingress if any(r.matches(p.protocol.value, p.from_port, p.to_port, c)
                                                   for c in p.cidrs)]
        if revoked:
            self.call("RevokeSecurityGroupIngress", p.group_id, tuple(r.cidr for r in revoked))
            self.groups[p.group_id] = [r for r in group.ingress if r not in revoked]
        return IngressChange(changed=bool(revoked), group_id=p.group_id, revoked=revoked,
                             absent=[c for c in p.cidrs if not any(parse_cidr_loose(r.cidr) == parse_cidr_loose(c)
                                                                   for r in revoked)])


class FakeSecrets(Calls):
    """Secrets with their versions (version id -> labels) and whether rotation is configured; a
    rotation finishes at once unless ``hold`` is set (then AWSPENDING until ``finish``)."""

    def __init__(self):
        super().__init__("secretsmanager")
        self.secrets: dict[str, dict[str, Any]] = {}
        self.hold = False

    def add(self, name: str, rotation: bool = True) -> None:
        self.secrets[name] = {"rotation": rotation, "versions": {"v1": ["AWSCURRENT"]}}

    def _secret(self, secret_id: str) -> dict[str, Any]:
        if secret_id not in self.secrets:
            raise aws_error("secretsmanager", "ResourceNotFoundException", "DescribeSecret", 400,
                            "Secrets Manager can't find the specified secret.")
        return self.secrets[secret_id]

    def rotate(self, p, now=None):
        secret = self._secret(p.secret_id)
        token = p.client_request_token
        if token in secret["versions"]:
            return self.rotation(p.secret_id, token)
        if not secret["rotation"]:
            raise RotationNotConfigured(f"secret {p.secret_id} has no rotation configured, so it was not rotated "
                                        f"(nothing changed). Configure a rotation function")
        self.call("RotateSecret", p.secret_id, token)
        previous = next(v for v, labels in secret["versions"].items() if "AWSCURRENT" in labels)
        secret["versions"][token] = ["AWSPENDING"]
        if not self.hold:
            self.finish(p.secret_id)
        return self.rotation(p.secret_id, token).model_copy(update={"changed": True,
                                                                    "previous_version_id": previous})

    def finish(self, secret_id: str) -> None:
        versions = self.secrets[secret_id]["versions"]
        pending = next(v for v, labels in versions.items() if "AWSPENDING" in labels)
        for labels in versions.values():
            labels[:] = ["AWSPREVIOUS"] if "AWSCURRENT" in labels else [x for x in labels if x != "AWSPREVIOUS"]
        versions[pending] = ["AWSCURRENT"]

    def rotation(self, secret_id, version_id, now=None):
        versions = self._secret(secret_id)["versions"]
        if version_id not in versions:
            raise LookupError(f"secret {secret_id} has no version {version_id}")
        state = RotationState.IN_PROGRESS if versions[version_id] == ["AWSPENDING"] else RotationState.ROTATED
        previous = next((v for v, labels in versions.items()
                         if ("AWSPREVIOUS" if state == RotationState.ROTATED else "AWSCURRENT") in labels), None)
        return SecretRotation(changed=False, secret_arn=f"arn:aws:secretsmanager:us-east-1:123456789012:secret:"
                                                        f"{secret_id}", name=secret_id, previous_version_id=previous,
                              version_id=version_id, state=state)


class FakeSns:
    def __init__(self):
        self.published: list[tuple[str, str, dict]] = []

    def publish(self, topic_arn: str, subject: str, body: str, attributes: dict[str, str]) -> str:
        self.published.append((topic_arn, subject, attributes))
        return f"m-{len(self.published)}"


class FakeReader:
    """``ports.Reader``: the facts a test sets; unset sources raise not-found like AWS does."""

    def __init__(self, pipeline=None, builds=(), log=(), lambdas=(), errors_after=(), rds=None, trail=None):
        self.the_pipeline, self.the_builds, self.log, self.the_rds = pipeline, list(builds), list(log), rds
        self.lambdas = {fn.name: fn for fn in lambdas}
        self.errors_after = list(errors_after)   # LogLines returned by filtered_lines (verification, access logs)
        self.trail = trail                       # CloudTrail records in the log group (None: no such group)
        self.reads = 0
        self.execution_reads = 0                  # ListPipelineExecutions calls (executions)
        self.trail_reads: list[list[str]] = []   # the terms of each CloudTrail read
        self.the_executions: list[Execution] = []  # the pipeline's executions, newest first (see executions)

    def executions(self, name):
        """Newest first: ``the_executions`` when a test set them, else the pipeline's own execution."""
        self.reads += 1
        self.execution_reads += 1
        if self.the_pipeline is None:
            raise aws_error("codepipeline", "PipelineNotFoundException", "ListPipelineExecutions", 400)
        p = self.the_pipeline
        return list(self.the_executions or [Execution(p.execution_id, p.status, p.started_at)])

    def pipeline(self, name, execution_id, recent=None):
        self.reads += 1
        if self.the_pipeline is None:
            raise aws_error("codepipeline", "PipelineNotFoundException", "GetPipelineState", 400)
        return self.the_pipeline

    def builds(self, project, ids=()):
        self.reads += 1
        return self.the_builds

    def stream_lines(self, group, stream):
        self.reads += 1
        return self.log

    def filtered_lines(self, group, since, pattern=None, limit=None):
        self.reads += 1
        return [line for line in self.errors_after if line.group == group]

    def lambda_function(self, name, since):
        self.reads += 1
        if name not in self.lambdas:
            raise aws_error("lambda", "ResourceNotFoundException", "GetFunction", 404)
        return self.lambdas[name]

    def api_stages(self, rest_api_id):
        return []

    def rds(self, instance_id):
        if self.the_rds is None:
            raise aws_error("rds", "DBInstanceNotFound", "DescribeDBInstances", 404)
        return self.the_rds

    def trail_errors_from_logs(self, group, since):
        return []

    def trail_errors_lookup(self, since):
        return []

    def trail_records_from_logs(self, group, since, terms, limit=2000, max_calls=5):
        """One call per read; the records that name a term as a user, key, session or in a parameter."""
        self.reads += 1
        self.trail_reads.append(list(terms))
        if self.trail is None:
            raise aws_error("logs", "ResourceNotFoundException", "FilterLogEvents", 400,
                            "The specified log group does not exist.")
        found = TrailRead(calls=1)
        for e in self.trail:
            if any(t and t in mentions(e) for t in terms):
                found.add(e)
        return found

    def trail_records_lookup(self, since, attributes, max_pages=3, max_calls=20):
        raise aws_error("cloudtrail", "", "LookupEvents", 500, "HTTP 500 without an AWS error body")


def mentions(e) -> str:
    """What a CloudWatch Logs term filter would find a record by: its identity and parameters."""
    return " ".join(str(v) for v in (e.user_name, e.access_key_id, e.principal, e.principal_id, e.request,
                                     e.response) if v)


class FakeCloudWatch:
    """``ports.MetricsPort``: datapoints by series key (``function/x:Duration:p99``), stamped with the
    start of their period as CloudWatch answers (the highest value of a period stands for its
    statistic); ``reads`` records each call's window as (start, end)."""

    def __init__(self):
        self.points: dict[str, list[tuple[dt.datetime, float]]] = {}
        self.reads: list[tuple[dt.datetime, dt.datetime]] = []

    def put(self, key: str, at: dt.datetime, value: float) -> None:
        self.points.setdefault(key, []).append((at, value))

    def read(self, specs, end, window_seconds, period_seconds):
        start = end - dt.timedelta(seconds=window_seconds)
        self.reads.append((start, end))
        period = dt.timedelta(seconds=period_seconds)
        out = []
        for spec in specs:
            periods: dict[dt.datetime, float] = {}
            for at, value in self.points.get(spec.key, []):
                if start <= at < end:
                    bucket = start + (at - start) // period * period
                    periods[bucket] = max(value, periods.get(bucket, value))
            out.append(Series(spec, sorted(periods), [periods[t] for t in sorted(periods)]))
        return out


class FakePerfReader:
    """``ports.PerfReaderPort``: configurations and Secrets Manager credentials a test sets; unset ones
    raise not-found as AWS does."""

    def __init__(self):
        self.lambdas: dict[str, LambdaConfig] = {}
        self.stages: dict[tuple[str, str], StageConfig] = {}
        self.databases: dict[str, tuple[RdsConfig, list[GroupIngress]]] = {}
        self.credentials: dict[str, Credentials | LookupError] = {}

    def lambda_config(self, name, since):
        if name not in self.lambdas:
            raise aws_error("lambda", "ResourceNotFoundException", "GetFunctionConfiguration", 404)
        return copy.deepcopy(self.lambdas[name])

    def stage_config(self, rest_api_id, stage):
        if (rest_api_id, stage) not in self.stages:
            raise aws_error("apigateway", "NotFoundException", "GetStage", 404)
        return copy.deepcopy(self.stages[(rest_api_id, stage)])

    def rds_config(self, instance_id):
        if instance_id not in self.databases:
            raise aws_error("rds", "DBInstanceNotFound", "DescribeDBInstances", 404)
        return copy.deepcopy(self.databases[instance_id])

    def database_credentials(self, secret_id, region=None):
        found = self.credentials.get(secret_id)
        if found is None:
            raise aws_error("secretsmanager", "ResourceNotFoundException", "GetSecretValue", 400)
        if isinstance(found, LookupError):
            raise found
        return found


class FakePerfActions:
    """``ports.PerfActionsPort`` over a FakePerfReader's configurations; ``calls`` records every change made."""

    def __init__(self, reader: FakePerfReader):
        self.reader = reader
        self.calls: list[tuple] = []
        self.settling = 0   # reads that still see an update InProgress after a change

    def set_lambda_memory(self, function_name, memory_mb):
        config = self.reader.lambdas[function_name]
        before = f"{config.memory_mb} MB"
        if config.memory_mb == memory_mb:
            settling, self.settling = self.settling > 0, max(0, self.settling - 1)
            return Change(False, before, f"{memory_mb} MB", settling=settling)
        self.calls.append(("UpdateFunctionConfiguration", function_name, memory_mb))
        config.memory_mb = memory_mb
        return Change(True, before, f"{memory_mb} MB")

    def enable_performance_insights(self, p):
        config, _ = self.reader.databases[p.db_instance_identifier]
        if config.performance_insights:
            return Change(False, "on", "on")
        self.calls.append(("ModifyDBInstance", p.db_instance_identifier, p.retention_days))
        config.performance_insights, config.performance_insights_retention_days = True, p.retention_days
        return Change(True, "off", f"on ({p.retention_days} days)")

    def update_stage(self, p):
        stage = self.reader.stages[(p.rest_api_id, p.stage_name)]
        if all(want is None or want == has for want, has in (
                (p.caching_enabled, stage.cache_cluster_enabled and stage.caching_enabled),
                (p.caching_enabled, stage.cache_cluster_enabled or stage.caching_enabled),
                (p.metrics_enabled, stage.metrics_enabled))):
            return Change(False, "as asked", "as asked")  # no call, as the adapter reads the stage first
        self.calls.append(("UpdateStage", p.stage_name, p.caching_enabled, p.metrics_enabled))
        if p.caching_enabled is not None:
            stage.cache_cluster_enabled = stage.caching_enabled = p.caching_enabled
        if p.metrics_enabled is not None:
            stage.metrics_enabled = p.metrics_enabled
        return Change(True, "before", "after")


class FakeProbes:
    """``ports.ProbesPort``: each probe answers the last result a test set (``http``, ``database``);
    ``hang`` makes them never answer. ``calls`` records (probe, target, user or headers)."""

    def __init__(self):
        self.http_result: HttpProbeResult | None = None
        self.database_result: DbProbeResult | None = None
        self.hang = False
        self.calls: list[tuple] = []

    async def _maybe_hang(self):
        if self.hang:
            import asyncio
            await asyncio.Event().wait()

    async def http(self, method, url, expected_status, headers, body, timeout_seconds, guard=None):
        self.calls.append(("http", url, dict(headers), body))
        await self._maybe_hang()
        return copy.deepcopy(self.http_result)

    async def database(self, host, port, database, credentials, tls, timeout_seconds, guard=None):
        self.calls.append(("database", f"{host}:{port}/{database}", credentials))
        await self._maybe_hang()
        return copy.deepcopy(self.database_result)


class FakeAws:
    """``ports.AwsPorts``: the same fake per service whatever the region and role."""

    default_region = "us-east-1"

    def __init__(self, reader: Any = None):
        self.the_reader, self.the_lambda, self.the_site = reader, FakeLambda(), FakeSite()
        self.the_pipeline, self.the_sns = FakePipeline(), FakeSns()
        self.the_iam, self.the_waf, self.the_ec2, self.the_secrets = FakeIam(), FakeWaf(), FakeEc2(), FakeSecrets()
        self.the_cloudwatch, self.the_perf_reader, self.the_probes = FakeCloudWatch(), FakePerfReader(), FakeProbes()
        self.the_perf_actions = FakePerfActions(self.the_perf_reader)

    def reader(self, region, role_key):
        return self.the_reader

    def lambda_(self, region, role_key):
        return self.the_lambda

    def pipeline(self, region, role_key):
        return self.the_pipeline

    def site(self, region, role_key):
        return self.the_site

    def sns(self, region, role_key):
        return self.the_sns

    def iam(self, region, role_key):
        return self.the_iam

    def waf(self, region, role_key):
        return self.the_waf

    def ec2(self, region, role_key):
        return self.the_ec2

    def secrets(self, region, role_key):
        return self.the_secrets

    def security_calls(self) -> list[tuple]:
        """Every mutating call of the security runbook's services, in order of service."""
        return self.the_iam.calls + self.the_waf.calls + self.the_ec2.calls + self.the_secrets.calls
    def cloudwatch(self, region, role_key):
        return self.the_cloudwatch

    def perf_reader(self, region, role_key):
        return self.the_perf_reader

    def perf_actions(self, region, role_key):
        return self.the_perf_actions

    def probes(self):
        return self.the_probes


# -- Kubernetes -----------------------------------------------------------------------------------

class FakeObjects:
    """``ports.Objects``: custom resources by (plural, namespace, name), ConfigMaps and Secrets."""

    def __init__(self):
        self.custom: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.config_maps: dict[tuple[str, str], dict[str, Any]] = {}
        self.secrets: dict[tuple[str, str], dict[str, str]] = {}
        self.created: list[str] = []
        self.fail_put: KubeError | None = None

    def get(self, plural, namespace, name):
        return copy.deepcopy(self.custom.get((plural, namespace, name)))

    def create(self, plural, namespace, body):
        key = (plural, namespace, body["metadata"]["name"])
        if key in self.custom:
            return None
        self.created.append(body["metadata"]["name"])
        self.custom[key] = copy.deepcopy(body)
        return body

    def put_config_map(self, namespace, name, data, owner, labels=None, binary=None):
        """As the API server: values over 1 MiB in all (binaryData decoded) are refused with 422;
        ``fail_put`` (a KubeError) refuses every write."""
        import base64

        if self.fail_put is not None:
            raise self.fail_put
        size = sum(len(v.encode()) for v in data.values()) + sum(len(base64.b64decode(v)) for v in (binary or {}).values())
        if size > MAX_CONFIG_MAP_BYTES:
            raise KubeError(422, "Invalid", f'ConfigMap "{name}" is invalid: []: Too long: may not be more than '
                                            f'{MAX_CONFIG_MAP_BYTES} bytes', "put_config_map")
        self.config_maps[(namespace, name)] = {"data": data, "labels": labels or {}, "binary": binary or {}}

    def config_map_data(self, namespace, name):
        cm = self.config_maps.get((namespace, name))
        return None if cm is None else cm["data"]

    def secret_data(self, namespace, name):
        return self.secrets.get((namespace, name))

    def secret_value(self, namespace, name, key):
        return (self.secrets.get((namespace, name)) or {}).get(key)

    def config_map_names(self, namespace, selector):
        key, value = selector.split("=")
        return [n for (ns, n), cm in self.config_maps.items() if ns == namespace and cm["labels"].get(key) == value]

    def delete_config_map(self, namespace, name):
        self.config_maps.pop((namespace, name), None)


class FakeIncidentStore:
    """``ports.IncidentStore``: Incidents with a resourceVersion that every write bumps, as the API
    server keeps them. ``race`` holds writes another writer makes just before each of ours (a
    conflict); ``fail`` is raised by the next write."""

    def __init__(self, namespaces: tuple[str, ...] = ("alerts",)):
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.namespaces = namespaces
        self.version = 0
        self.race: list[dict[str, Any]] = []
        self.fail: KubeError | None = None
        self.events: list[tuple[str, str, str, str]] = []
        self.writes = 0

    def _bump(self, obj: dict[str, Any]) -> None:
        self.version += 1
        obj["metadata"]["resourceVersion"] = str(self.version)

    def _write(self) -> None:
        self.writes += 1
        if self.fail is not None:
            err, self.fail = self.fail, None
            raise err

    def get(self, plural, namespace, name):
        return copy.deepcopy(self.objects.get((namespace, name)))

    def create(self, plural, namespace, body):
        self._write()
        if namespace not in self.namespaces:
            raise KubeError(404, "NotFound", f'namespaces "{namespace}" not found', "create")
        key = (namespace, body["metadata"]["name"])
        if key in self.objects:
            return None
        obj = copy.deepcopy(body)
        obj["metadata"]["uid"] = f"uid-{key[1]}"
        self._bump(obj)
        self.objects[key] = obj
        return copy.deepcopy(obj)

    def patch_status(self, ref, status, resource_version=None):
        self._write()
        obj = self.objects[(ref.namespace, ref.name)]
        if self.race:
            obj.setdefault("status", {}).update(self.race.pop(0))
            self._bump(obj)
        if resource_version is not None and resource_version != obj["metadata"]["resourceVersion"]:
            raise KubeError(409, "Conflict", "the object has been modified", "patch_status")
        current = obj.setdefault("status", {})
        for key, value in status.items():  # a merge patch one level down is all the intake sends
            merged = {**(current.get(key) or {}), **value}
            current[key] = {k: v for k, v in merged.items() if v is not None}
        self._bump(obj)
        return copy.deepcopy(obj)

    def annotate(self, ref, annotations):
        self._write()
        obj = self.objects[(ref.namespace, ref.name)]
        obj["metadata"].setdefault("annotations", {}).update(annotations)
        self._bump(obj)

    def post_event(self, ref, type_, reason, message, component, instance=""):
        self.events.append((ref.name, type_, reason, message))

    def alert(self, namespace: str, name: str) -> dict[str, Any]:
        return self.objects[(namespace, name)]["status"]["alert"]


# -- Terraform ------------------------------------------------------------------------------------

def result(command: str, exit_code: int | None, stdout: str = "", stderr: str = "") -> Result:
    return Result(command, exit_code, stdout, stderr, 0.1, timed_out=exit_code is None)


def stream_line(kind: str, **fields: Any) -> str:
    """One line of ``terraform plan -json`` (Terraform's machine-readable UI)."""
    import json

    return json.dumps({"@level": "info", "@message": kind, "type": kind, **fields})


def plan_doc(*changes: tuple[str, list[str]], marker: str = "") -> dict[str, Any]:
    """A ``terraform show -json`` plan with ``changes`` as (address, actions); ``marker`` makes it unique."""
    return {"format_version": "1.2", "terraform_version": "1.11.4",
            "resource_changes": [{"address": a, "mode": "managed", "type": a.split(".")[0], "name": a.split(".")[1],
                                  "change": {"actions": acts, "before": {"v": "old"}, "after": {"v": marker or "new"}}}
                                 for a, acts in changes]}


# Terraform may do everything, on an s3 backend, in every namespace (the unit tests' operator policy).
TERRAFORM_POLICY = Policy.model_validate({"rules": [{"namespaces": ["*"], "actions": ["terraform:*"],
                                                     "terraform": {"backends": [{"type": "s3"}]}}]})


@dataclass
class FakeSession:
    """``ports.TerraformSession`` scripted by a FakeWorkspaces: plans answer from its queue."""

    workspaces: "FakeWorkspaces"
    version: str = "1.11.4"
    revision: str = "abc123"
    plan_file: str = "/var/lib/opex/work/ns/x/check/drift.tfplan"
    secret_values: frozenset[str] = frozenset()
    last_result: Result | None = None
    remote: str | None = None   # what the ref names, as the check left running will say (None: no check)
    check: str = ""             # what became of that check: "asked" or "cancelled"

    def plan_inputs(self) -> dict[str, str]:
        return dict(self.workspaces.plan_inputs)

    async def source_moved(self) -> bool:
        import asyncio

        if self.remote is None or self.check:
            return False
        self.check = "asking"
        try:
            await asyncio.sleep(self.workspaces.source_check_seconds)
        except asyncio.CancelledError:
            self.check = "cancelled"
            raise
        self.check = "asked"
        if self.workspaces.source_check_error is not None:
            raise self.workspaces.source_check_error
        return self.remote != self.revision

    async def cancel_source_check(self) -> None:
        if self.remote is not None and not self.check:
            self.check = "cancelled"

    def has_saved_plan(self) -> bool:
        return self.workspaces.saved is not None

    async def plan(self, lock_timeout: str, json_stream: bool = False) -> Result:
        """As Terraform answers: with ``json_stream`` a failure's text is an error diagnostic message
        and a plan without changes a change_summary of zeros."""
        ws = self.workspaces
        ws.calls.append("plan")
        outcome = ws.plans.pop(0) if len(ws.plans) > 1 else ws.plans[0]
        if isinstance(outcome, Result):
            if json_stream and outcome.exit_code == 1:
                summary, _, detail = outcome.stderr.partition("\n")
                return result("plan", 1, stream_line("diagnostic", diagnostic={
                    "severity": "error", "summary": summary.strip("│ ").removeprefix("Error: "),
                    "detail": "\n".join(line.lstrip("│ ") for line in detail.splitlines())}))
            return outcome
        ws.saved = outcome
        changed = bool(outcome.get("resource_changes"))
        stream = "\n".join([stream_line("version", terraform="1.11.4", ui="1.2"),
                            stream_line("change_summary", changes={"add": 0, "change": 0, "import": 0, "remove": 0,
                                                                   "operation": "plan"})])
        return result("plan", 2 if changed else 0, stream if json_stream and not changed else "")

    async def show_plan(self) -> dict[str, Any]:
        return self.workspaces.saved

    async def apply_saved_plan(self, lock_timeout: str) -> Result:
        self.workspaces.calls.append("apply")
        return self.workspaces.apply_result

    async def apply_refresh_only(self, lock_timeout: str) -> Result:
        self.workspaces.calls.append("refresh")
        return result("apply", 0)

    async def import_(self, address: str, resource_id: str, lock_timeout: str) -> Result:
        self.workspaces.calls.append(f"import {address}")
        self.workspaces.state.append(address)
        return result("import", 0)

    async def state_list(self) -> list[str]:
        return list(self.workspaces.state)

    async def force_unlock(self, lock_id: str) -> Result:
        self.workspaces.calls.append(f"force-unlock {lock_id}")
        return result("force-unlock", 0, "Terraform state has been successfully unlocked!")


@dataclass
class FakeWorkspaces:
    """``ports.Workspaces``: ``plans`` is the queue of what each plan finds (a plan document, or a
    Result such as a lock error); the last one repeats. ``calls`` records every command."""

    plans: list[Any] = field(default_factory=lambda: [plan_doc()])
    apply_result: Result = field(default_factory=lambda: result("apply", 0))
    state: list[str] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    saved: dict[str, Any] | None = None
    open_error: Exception | None = None
    backend_type: str = "s3"                     # the backend the configuration declares
    secret_values: frozenset[str] = frozenset()  # what its varsFrom/envFrom Secrets hold
    plan_inputs: dict[str, str] = field(default_factory=lambda: {"configuration": "c0", "backend": "b0"})
    grants: list[Any] = field(default_factory=list)
    exported: str = "abc123"    # the revision in the run directory
    remote: str = "abc123"      # the one the source's ref names now (the source moved when they differ)
    source_check_error: Exception | None = None   # what asking the remote raises
    source_check_seconds: float = 0.0             # how long asking the remote takes
    sessions: list[FakeSession] = field(default_factory=list)
    opens: list[str] = field(default_factory=list)   # how each open checked the source

    async def open(self, namespace, name, spec, timeout, grant, purpose="", check_source_later=False):
        """As the adapter: the grant's verdict on the declared backend first, then the workspace;
        the exported revision, checked against the remote first unless ``check_source_later``."""
        self.grants.append(grant)
        self.opens.append("source checked later" if check_source_later else "source checked first")
        if refused := grant.refusal(Backend(self.backend_type, dict(spec.backend_config))):
            raise PolicyRefused(f"{grant.action} refused: {refused}")
        if self.open_error is not None:
            raise self.open_error
        if not check_source_later:
            self.exported = self.remote
        session = FakeSession(self, revision=self.exported, secret_values=self.secret_values,
                              remote=self.remote if check_source_later else None)
        self.sessions.append(session)
        return session

    def opens_by_reading(self, spec, grant, purpose=""):
        return True

    def discard(self, namespace, name):
        self.calls.append(f"discard {namespace}/{name}")


def init_failed() -> TerraformError:
    return TerraformError("terraform init failed", result("init", 1, stderr="Error: Failed to get existing workspaces"))
