"""CloudTrail records read by what they mean (``ports.cloudtrail``), one kind at a time.

The records are the samples of AWS's documentation, cited per test: the CloudTrail User Guide
("AWS Management Console sign-in events", "CloudTrail userIdentity element", "CloudTrail record
contents") and the IAM User Guide ("Logging IAM and AWS STS API calls with AWS CloudTrail"), as
published in awsdocs/aws-cloudtrail-user-guide and awsdocs/iam-user-guide before their archiving.
"""
from __future__ import annotations

import copy
import datetime as dt
import gzip
import json

import pytest

from opex_operator.errors import AwsError, is_denied
from opex_operator.ports.cloudtrail import AddressKind, TrailEvent, read_records, source_address
from support.trail_samples import (ASSUME_ROLE, HIDDEN_USER, KMS_ROTATION, SESSION_CALL, SIGN_IN_FAILURE,
                                   SIGN_IN_SUCCESS, UPDATE_TRAIL_ERROR)

def event(record: dict, **changes) -> TrailEvent:
    r = copy.deepcopy(record)
    r.update(changes)
    [e] = read_records([json.dumps(r)]).events
    return e


# ---- 1. a console sign-in's outcome -----------------------------------------------------------

def test_a_failed_console_sign_in_is_a_failure_without_any_error_code():
    e = event(SIGN_IN_FAILURE)
    assert e.error_code is None
    assert (e.sign_in, e.failed, e.denied, e.succeeded) == (True, True, False, False)
    assert e.failure == "Failed authentication" and e.access_key_id is None and e.user_name == "anaya"


def test_a_successful_sign_in_is_a_success():
    e = event(SIGN_IN_SUCCESS)
    assert (e.sign_in, e.failed, e.succeeded, e.failure) == (True, False, True, None)


@pytest.mark.parametrize("event_type", ["AwsConsoleSignIn", "AwsConsoleSignin", None])
def test_the_sign_in_outcome_is_read_whatever_the_event_type_says(event_type):
    r = copy.deepcopy(SIGN_IN_FAILURE)
    if event_type is None:
        del r["eventType"]
    else:
        r["eventType"] = event_type
    e = event(r)
    assert e.sign_in and e.failed


def test_a_sign_in_failure_without_its_response_is_still_a_failure():
    e = event(SIGN_IN_FAILURE, responseElements=None)
    assert e.failed and e.failure == "Failed authentication"


def test_hidden_due_to_security_reasons_is_never_a_user_name():
    e = event(HIDDEN_USER)
    assert e.user_name is None and e.failed and e.failure == "No username found in supplied account"


# ---- 2. denials in every spelling -------------------------------------------------------------

@pytest.mark.parametrize("code", ["AccessDenied", "AccessDeniedException", "Client.UnauthorizedOperation",
                                  "UnauthorizedOperation", "NotAuthorizedException", "Client.NotAuthorized",
                                  "AuthorizationError", "UnauthorizedException"])
def test_every_spelling_of_a_denial_is_a_denial(code):
    e = event(UPDATE_TRAIL_ERROR, errorCode=code)
    assert e.denied and e.failed
    assert AwsError("x", "Y", code, "m").denied


@pytest.mark.parametrize("code", ["TrailNotFoundException", "NoSuchEntity", "ThrottlingException",
                                  "EntityTemporarilyUnmodifiableException", "InvalidParameterValue"])
def test_other_errors_fail_without_being_denials(code):
    e = event(UPDATE_TRAIL_ERROR, errorCode=code)
    assert e.failed and not e.denied and not is_denied(code)


# ---- 3. AWS acting on its own -----------------------------------------------------------------

def test_an_aws_service_event_is_aws_acting():
    e = event(KMS_ROTATION)
    assert e.aws_acting and e.address.kind == AddressKind.SERVICE and e.invoked_by == "AWS Internal"


@pytest.mark.parametrize("changes", [
    {"userAgent": "aws-internal/3 aws-sdk-java/1.11.706 Linux/4.9.184-0.1.ac.235.83.329.metal1.x86_64"},
    {"userAgent": "AWS Internal"},
    {"sourceIPAddress": "lambda.amazonaws.com"},
    {"sourceIPAddress": "AWS Internal"},
    {"userAgent": "AWS Internal", "sessionCredentialFromConsole": "true"},   # the console's backend signs it so
])
def test_a_call_aws_made_in_a_users_name_is_aws_acting(changes):
    assert event(UPDATE_TRAIL_ERROR, **changes).aws_acting


def test_invoked_by_a_service_is_aws_acting():
    r = copy.deepcopy(UPDATE_TRAIL_ERROR)
    r["userIdentity"]["invokedBy"] = "cloudformation.amazonaws.com"
    assert event(r).aws_acting


@pytest.mark.parametrize("changes", [
    {"userAgent": "[S3Console/0.4, aws-internal/3]"},          # a person in the S3 console
    {"userAgent": "console.ec2.amazonaws.com"},                # a person in the EC2 console
])
def test_a_person_at_the_console_is_not_aws_acting(changes):
    assert not event(UPDATE_TRAIL_ERROR, **changes).aws_acting


# ---- 4. addresses -----------------------------------------------------------------------------

@pytest.mark.parametrize("written,kind,ip", [
    ("192.0.2.101", AddressKind.IP, "192.0.2.101"),
    ("203.000.113.067", AddressKind.IP, "203.0.113.67"),      # zero-padded by an exporter
    ("075.050.255.67", AddressKind.IP, "75.50.255.67"),       # as the Stratus Red Team logs write them
    ("225.01.00.16", AddressKind.IP, "225.1.0.16"),
    ("2001:db8:bad:1::7", AddressKind.IP, "2001:db8:bad:1::7"),
    ("[2001:db8::1]", AddressKind.IP, "2001:db8::1"),
    ("::ffff:203.0.113.5", AddressKind.IP, "203.0.113.5"),
    ("lambda.amazonaws.com", AddressKind.SERVICE, None),
    ("AWS Internal", AddressKind.SERVICE, None),
    ("203.0.113", AddressKind.UNPARSED, None),
    ("0xcb.0.113.5", AddressKind.UNPARSED, None),
    ("256.1.1.1", AddressKind.UNPARSED, None),
    ("203.0.113.5:443", AddressKind.UNPARSED, None),
    ("72.xx.xxx.xx", AddressKind.UNPARSED, None),               # masked (canglad/kintail's sample output)
    ("00.00.00.00", AddressKind.UNPARSED, None),                # masked, not the unspecified address
    ("::", AddressKind.UNPARSED, None),
    ("", AddressKind.ABSENT, None),
    (None, AddressKind.ABSENT, None),
])
def test_an_address_is_read_for_what_it_is(written, kind, ip):
    a = source_address(written)
    assert (a.kind, a.ip) == (kind, ip)


def test_an_unparsed_address_is_kept_as_written_and_never_a_service_empty_or_0_0_0_0():
    a = source_address("203.0.113")
    assert (a.written, a.label, a.cidr()) == ("203.0.113", "203.0.113 (unparsed)", None)
    assert a.kind != AddressKind.SERVICE and "0.0.0.0" not in a.label
    assert not event(UPDATE_TRAIL_ERROR, sourceIPAddress="203.0.113").aws_acting


# ---- 5. deliveries ----------------------------------------------------------------------------

def eventbridge(record: dict, detail_type: str, id_: str) -> dict:
    """EventBridge User Guide, "Events from AWS services": an event of a CloudTrail record."""
    return {"version": "0", "id": id_, "detail-type": detail_type, "source": "aws.signin", "account": "123456789012",
            "time": record["eventTime"], "region": "us-east-1", "resources": [], "detail": record}


def test_eventbridge_events_of_both_cloudtrail_detail_types_are_read_whatever_their_id():
    read = read_records([json.dumps(eventbridge(SIGN_IN_FAILURE, "AWS Console Sign In via CloudTrail",
                                                "9343-343434-34343-3772")),
                         json.dumps(eventbridge(UPDATE_TRAIL_ERROR, "AWS API Call via CloudTrail",
                                                "a76750eb-b69f-ae47-b183-4d3cb0700618"))])
    assert [e.event_name for e in read.events] == ["ConsoleLogin", "UpdateTrail"] and not read.skipped


def test_a_firehose_bundle_of_objects_written_back_to_back_is_read_and_what_is_not_a_record_counted():
    guardduty = {"version": "0", "id": "c8c4daa7", "detail-type": "GuardDuty Finding", "source": "aws.guardduty",
                 "detail": {"type": "UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS"}}
    subscription = {"messageType": "DATA_MESSAGE", "owner": "123456789012", "logGroup": "CloudTrail",
                    "logStream": "123456789012_CloudTrail_us-east-1", "subscriptionFilters": ["Destination"],
                    "logEvents": [{"id": "1", "timestamp": 1432826855000, "message": json.dumps(SIGN_IN_SUCCESS)},
                                  {"id": "2", "timestamp": 1432826855000, "message": "not a record"}]}
    control = {"messageType": "CONTROL_MESSAGE", "owner": "CloudwatchLogs", "logEvents": [
        {"id": "", "timestamp": 1432826855000, "message": "CWL CONTROL MESSAGE: Checking health of destination"}]}
    bundle = "".join(json.dumps(x) for x in (subscription, control, guardduty, ASSUME_ROLE, KMS_ROTATION))
    read = read_records([bundle])
    assert [e.event_name for e in read.events] == ["ConsoleLogin", "AssumeRole", "RotateKey"]
    assert read.skipped == {"CloudWatch Logs control message": 1, "GuardDuty Finding": 1, "unreadable text": 1}
    assert read.skipped_note().startswith("skipped 3 objects that are not CloudTrail records")


def test_a_gzipped_records_file_json_lines_lookup_events_and_sns_are_read_and_each_record_once():
    trail_file = gzip.compress(json.dumps({"Records": [ASSUME_ROLE, SESSION_CALL]}).encode())
    lines = "\n".join(json.dumps(r) for r in (SIGN_IN_SUCCESS, ASSUME_ROLE))      # ASSUME_ROLE again
    lookup = {"Events": [{"EventId": "x", "EventName": "UpdateTrail",
                          "CloudTrailEvent": json.dumps(UPDATE_TRAIL_ERROR)}]}
    sns = {"Type": "Notification", "MessageId": "m-1", "Message": json.dumps(eventbridge(
        HIDDEN_USER, "AWS Console Sign In via CloudTrail", "e-1"))}
    read = read_records([trail_file, lines, json.dumps(lookup), json.dumps(sns)])
    assert [e.event_name for e in read.events] == ["AssumeRole", "ListBuckets", "ConsoleLogin", "UpdateTrail",
                                                  "ConsoleLogin"]
    assert read.duplicates == 1 and not read.skipped


def test_text_that_is_not_json_is_skipped_and_counted_never_fatal_and_reading_goes_on():
    text = 'garbage {"half": ' + json.dumps(SIGN_IN_FAILURE) + " trailing words"
    read = read_records([text, b"\x1f\x8bnot really gzip", "[1, 2]", json.dumps({"Insight": 1, "insightDetails": {}})])
    assert [e.event_name for e in read.events] == ["ConsoleLogin"]
    assert read.skipped["unreadable text"] >= 2 and read.skipped["not a CloudTrail record"] == 2
    assert read.skipped["CloudTrail Insights event"] == 1


def test_a_session_record_keeps_its_issuer_and_creation_date():
    e = event(SESSION_CALL)
    assert e.identity_type == "AssumedRole" and e.session_issuer == "arn:aws:iam::123456789012:role/RoleToBeAssumed"
    assert e.session_created == dt.datetime(2013, 11, 2, 1, 6, 28, tzinfo=dt.timezone.utc)
    assert e.access_key_id is None and e.user_name is None


def test_base64_gzipped_deliveries_a_bom_and_a_detail_sent_as_text_are_read():
    """CloudWatch Logs User Guide, "Subscription filters": Lambda receives the subscription message
    base64-encoded and gzipped in ``awslogs.data``; a Firehose HTTP endpoint delivery carries
    base64 ``records[].data`` (Firehose developer guide, "HTTP endpoint delivery request")."""
    import base64

    message = {"messageType": "DATA_MESSAGE", "logEvents": [{"id": "1", "timestamp": 0,
                                                            "message": json.dumps(SIGN_IN_FAILURE)}]}
    packed = base64.b64encode(gzip.compress(json.dumps(message).encode())).decode()
    lambda_event = {"awslogs": {"data": packed}}
    firehose = {"requestId": "r-1", "timestamp": 0, "records": [
        {"data": base64.b64encode(json.dumps(ASSUME_ROLE).encode()).decode()}, {"data": "%%% not base64"}]}
    as_text = {"detail-type": "AWS API Call via CloudTrail", "detail": json.dumps(UPDATE_TRAIL_ERROR)}
    read = read_records([json.dumps(lambda_event), json.dumps(firehose), "\ufeff" + json.dumps(as_text)])
    assert [e.event_name for e in read.events] == ["ConsoleLogin", "AssumeRole", "UpdateTrail"]
    assert read.skipped == {"not a CloudTrail record": 1}
