"""Secret rotation's four findings: no rotation configured, the rotation function missing, a rotation in
progress and a rotation stuck. Only "in progress" is retried.

Responses are DescribeSecret and ListSecretVersionIds in the shape of the Secrets Manager API
reference's examples (boto3 gives datetimes); RotateSecret's failure is the ResourceNotFoundException
it answers for a function that does not exist.
"""
from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from botocore.exceptions import ClientError

from opex_operator.aws.errors import translate
from opex_operator.aws.secrets import (PendingRotation, RotateSecretParams, RotationFunctionMissing,
                                       RotationInProgress, RotationNotConfigured, RotationState, RotationStuck,
                                       SecretsActions, pending_rotation, rotation_window)
from opex_operator.steps import action_of
from opex_operator.steps.secret_rotation import RotateSecretParams as StepParams

NOW = dt.datetime(2026, 11, 29, 9, 0, tzinfo=dt.timezone.utc)
ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/checkout-db-a1b2c3"
FUNCTION = "arn:aws:lambda:us-east-1:123456789012:function:SecretsManagerRDSPostgreSQLRotationSingleUser"
CURRENT, OTHER = "EXAMPLE1-90ab-cdef-fedc-ba987EXAMPLE", "EXAMPLE2-90ab-cdef-fedc-ba987EXAMPLE"
TOKEN = "0f8e7d6c-5b4a-4392-8180-7f6e5d4c3b2a"


def described(pending_since: dt.timedelta | None = None, rotated: bool = True, rules=None, function=FUNCTION,
              enabled: bool = True) -> tuple[dict, list]:
    """DescribeSecret and ListSecretVersionIds of prod/checkout-db, with OTHER pending since ``pending_since`` ago."""
    stages = {CURRENT: ["AWSCURRENT"]}
    versions = [{"VersionId": CURRENT, "VersionStages": ["AWSCURRENT"], "CreatedDate": NOW - dt.timedelta(days=30)}]
    if pending_since is not None:
        stages[OTHER] = ["AWSPENDING"]
        versions.append({"VersionId": OTHER, "VersionStages": ["AWSPENDING"], "CreatedDate": NOW - pending_since})
    secret = {"ARN": ARN, "Name": "prod/checkout-db", "RotationEnabled": enabled,
              "RotationRules": rules or {"AutomaticallyAfterDays": 30}, "VersionIdsToStages": stages,
              "LastChangedDate": NOW - (pending_since or dt.timedelta(days=30))}
    if function:
        secret["RotationLambdaARN"] = function
    if rotated:
        secret["LastRotatedDate"] = NOW - dt.timedelta(days=30)
    return secret, versions


class FakeClient:
    """The secretsmanager client SecretsActions calls: the responses above; RotateSecret as configured."""

    def __init__(self, secret: dict, versions: list, rotate_error: ClientError | None = None):
        self.secret, self.versions, self.rotate_error, self.rotated = secret, versions, rotate_error, []

    def describe_secret(self, SecretId):
        return self.secret

    def list_secret_version_ids(self, SecretId, IncludeDeprecated):
        return {"Versions": self.versions, "ARN": ARN, "Name": self.secret["Name"]}

    def rotate_secret(self, SecretId, ClientRequestToken, RotateImmediately):
        if self.rotate_error is not None:
            raise translate(self.rotate_error, "secretsmanager")
        self.rotated.append(ClientRequestToken)
        self.secret["VersionIdsToStages"][ClientRequestToken] = ["AWSPENDING"]
        self.versions.append({"VersionId": ClientRequestToken, "VersionStages": ["AWSPENDING"], "CreatedDate": NOW})
        return {"ARN": ARN, "Name": self.secret["Name"], "VersionId": ClientRequestToken}


def actions(client: FakeClient) -> SecretsActions:
    sm = SecretsActions.__new__(SecretsActions)
    sm.sm = client
    return sm


def rotate(client: FakeClient, now: dt.datetime = NOW):
    return actions(client).rotate(RotateSecretParams(secret_id=ARN, client_request_token=TOKEN), now)


def not_found_for_the_function() -> ClientError:
    return ClientError({"Error": {"Code": "ResourceNotFoundException",
                                  "Message": f"Secrets Manager can't find the specified Lambda function {FUNCTION}."},
                        "ResponseMetadata": {"HTTPStatusCode": 400}}, "RotateSecret")


# ---- the four findings ----------------------------------------------------------------------------------------------
def test_no_rotation_configured_is_refused_before_any_call():
    client = FakeClient(*described(function=None, enabled=False))
    with pytest.raises(RotationNotConfigured, match="has no rotation configured"):
        rotate(client)
    assert client.rotated == []


def test_a_missing_rotation_function_is_named_and_nothing_changed():
    client = FakeClient(*described(), rotate_error=not_found_for_the_function())
    with pytest.raises(RotationFunctionMissing, match=f"rotation function {FUNCTION} does not exist"):
        rotate(client)


def test_a_rotation_in_progress_within_its_window_is_in_progress():
    with pytest.raises(RotationInProgress, match=f"an earlier rotation \\(version {OTHER}\\) has not finished"):
        rotate(FakeClient(*described(pending_since=dt.timedelta(minutes=10))))


def test_a_pending_version_older_than_the_window_is_stuck_and_says_how_to_clear_it():
    with pytest.raises(RotationStuck, match="longer than the rotation window of 2.0 h") as err:
        rotate(FakeClient(*described(pending_since=dt.timedelta(hours=5), rules={"Duration": "2h",
                                                                                 "ScheduleExpression": "rate(10 days)"})))
    assert f"--remove-from-version-id {OTHER}" in str(err.value)


def test_a_pending_version_on_a_secret_that_never_finished_a_rotation_is_stuck():
    with pytest.raises(RotationStuck, match="never finished a rotation"):
        rotate(FakeClient(*described(pending_since=dt.timedelta(minutes=10), rotated=False)))


def test_this_steps_own_rotation_past_its_window_is_stuck_not_followed_forever():
    client = FakeClient(*described())
    started = rotate(client)
    assert started.state == RotationState.IN_PROGRESS
    later = actions(client).rotation(ARN, TOKEN, NOW + dt.timedelta(hours=25))
    assert later.state == RotationState.STUCK
    assert actions(client).rotation(ARN, TOKEN, NOW + dt.timedelta(minutes=5)).state == RotationState.IN_PROGRESS


@pytest.mark.parametrize("rules,window", [({"Duration": "3h"}, 3), ({"ScheduleExpression": "rate(4 hours)"}, 1),
                                          ({"AutomaticallyAfterDays": 30}, 24),
                                          ({"ScheduleExpression": "cron(0 16 1,15 * ? *)"}, 24)])
def test_the_rotation_window_follows_the_rotation_rules(rules, window):
    assert rotation_window({"RotationRules": rules}) == dt.timedelta(hours=window)


def test_without_version_dates_the_secrets_last_change_dates_the_pending_version():
    secret, _ = described(pending_since=dt.timedelta(hours=30))
    assert pending_rotation(secret, [], OTHER, NOW)[0] == PendingRotation.STUCK
    secret, _ = described(pending_since=dt.timedelta(minutes=3))
    assert pending_rotation(secret, [], OTHER, NOW)[0] == PendingRotation.IN_PROGRESS


# ---- only "in progress" is retried ----------------------------------------------------------------------------------
class Ports:
    def __init__(self, error: Exception):
        self.error = error

    def secrets(self, region, role):
        return self

    def rotate(self, p, now=None):
        raise self.error


class Ctx:
    def __init__(self, error: Exception):
        self.aws, self.now = Ports(error), NOW
        self.ref = type("Ref", (), {"uid": "5d0c1b2a-0000-4000-8000-000000000001"})()
        self.step = type("Step", (), {"id": "rotate-secret-prod-checkout-db"})()

    def region_role(self):
        return None, None


@pytest.mark.parametrize("error,retried", [(RotationNotConfigured("not configured"), False),
                                           (RotationFunctionMissing("function missing"), False),
                                           (RotationInProgress("in progress"), True),
                                           (RotationStuck("stuck"), False)])
def test_only_a_rotation_in_progress_is_retried(error, retried):
    outcome = asyncio.run(action_of("secretsmanager:RotateSecret").execute(Ctx(error), StepParams(secret_id=ARN)))
    assert outcome.done and not outcome.ok and outcome.retryable is retried and outcome.error == str(error)

